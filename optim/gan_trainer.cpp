// GanTrainer: the D and G updates of one GAN step and the balance diagnostics around them.
#include "nash/optim/gan_trainer.h"

#include "nash/nn/conditional.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/optim/balanced.h"

namespace nash {
namespace optim {

double global_norm(const std::vector<Tensor>& tensors) {
  double s = 0;
  NoGradGuard ng;
  for (const Tensor& t : tensors)
    if (t.defined()) s += sum(square(t)).item();
  return std::sqrt(s);
}

GanTrainer::GanTrainer(std::shared_ptr<nn::Module> generator, std::shared_ptr<nn::Module> discriminator,
                       Optimizer& opt_g, Optimizer& opt_d, GanTrainerOptions options)
    : g_(std::move(generator)), d_(std::move(discriminator)), opt_g_(opt_g), opt_d_(opt_d), opt_(std::move(options)) {
  NASH_CHECK(g_ && d_, "GanTrainer: generator and discriminator must be set");
  NASH_CHECK(opt_.n_dis >= 1, "GanTrainer: n_dis must be >= 1, got ", opt_.n_dis);
  NASH_CHECK(opt_.gp_lambda >= 0 && std::isfinite(opt_.gp_lambda), "GanTrainer: gp_lambda must be >= 0, got ",
             opt_.gp_lambda);
  NASH_CHECK(opt_.shard_count >= 1 && opt_.shard_rank >= 0 && opt_.shard_rank < opt_.shard_count,
             "GanTrainer: shard_rank must be in [0, shard_count), got ", opt_.shard_rank, " of ", opt_.shard_count);
  NASH_CHECK(opt_.r1_gamma >= 0 && std::isfinite(opt_.r1_gamma), "GanTrainer: r1_gamma must be >= 0, got ",
             opt_.r1_gamma);
  if (!opt_.log_path.empty()) {
    log_.open(opt_.log_path, std::ios::out | std::ios::trunc);
    NASH_CHECK(log_.good(), "GanTrainer: cannot open the log file ", opt_.log_path, ": ", std::strerror(errno));
    log_ << "step,d_loss,g_loss,penalty,grad_norm_d,grad_norm_g,update_norm_d,update_norm_g,param_norm_d,"
            "param_norm_g,rel_speed_d,rel_speed_g,update_ratio,grad_ratio,seconds\n";
    if (dynamic_cast<FusedOptimizer*>(&opt_g_) || dynamic_cast<FusedOptimizer*>(&opt_d_)) {
      const std::string layers = opt_.log_path + ".layers.csv";
      layer_log_.open(layers, std::ios::out | std::ios::trunc);
      NASH_CHECK(layer_log_.good(), "GanTrainer: cannot open the log file ", layers, ": ", std::strerror(errno));
      layer_log_ << "step,player,group,grad_norm,oracle_norm\n";
    }
  }
}

namespace {

// Sums of squares with four independent accumulators (keeps the loops vectorisable and the order fixed).
template <class T, class F>
double sum4(int64_t n, F term) {
  double a[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) a[k] += term(i + k);
  for (; i < n; ++i) a[0] += term(i);
  return (a[0] + a[1]) + (a[2] + a[3]);
}

// One pass before the update: copies p into the snapshot s and returns ‖p‖² (and ‖g‖² when g is given).
template <class T>
double snapshot_sumsq(const T* __restrict p, const T* __restrict g, T* __restrict s, int64_t n, double& gsq) {
  for (int64_t i = 0; i < n; ++i) s[i] = p[i];
  if (g) gsq += sum4<T>(n, [&](int64_t i) { return static_cast<double>(g[i]) * static_cast<double>(g[i]); });
  return sum4<T>(n, [&](int64_t i) { return static_cast<double>(s[i]) * static_cast<double>(s[i]); });
}
// One pass after it: ‖p - s‖², the difference taken in double (exact for float parameters).
template <class T>
double diff_sumsq(const T* __restrict p, const T* __restrict s, int64_t n) {
  return sum4<T>(n, [&](int64_t i) {
    double d = static_cast<double>(p[i]) - static_cast<double>(s[i]);
    return d * d;
  });
}

bool host_dense(const std::vector<Tensor>& ts) {
  for (const Tensor& t : ts)
    if (t.defined() && !(t.device().is_cpu() && t.is_contiguous())) return false;
  return true;
}

// ‖g‖² over a player's gradients with one host synchronisation (the Skip policy's check before an update). An
// overflow to inf counts as non-finite too: such a step would wreck the parameters all the same.
double grad_sumsq(const std::vector<Tensor>& params) {
  NoGradGuard ng;
  Tensor acc;
  for (const Tensor& p : params) {
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    Tensor s = sum(square(g));
    acc = acc.defined() ? add(acc, s) : s;
  }
  return acc.defined() ? acc.item() : 0.0;
}

}  // namespace

void GanTrainer::restore(const State& s) {
  NASH_CHECK(s.steps >= 0 && s.skipped >= 0, "GanTrainer::restore: steps and skipped must be >= 0, got ", s.steps,
             " and ", s.skipped);
  NASH_CHECK(std::isfinite(s.g0) && std::isfinite(s.d0) && s.g0 >= 0 && s.d0 >= 0,
             "GanTrainer::restore: the first gradient norms must be finite and >= 0, got G ", s.g0, ", D ", s.d0);
  steps_ = s.steps;
  g0_ = s.g0;
  d0_ = s.d0;
  skipped_ = s.skipped;
}

void GanTrainer::fail_nonfinite(char who, const char* what, double value) const {
  const char* player = who == 'D' ? "discriminator" : "generator";
  std::ostringstream os;
  os << "GanTrainer: step " << steps_ << ": the " << player << "'s " << what << " is "
     << (std::isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf");
  if (std::string(what) == "loss")
    os << "; its update was not applied (try a smaller learning rate, or skip such steps)";
  else
    os << " (seen by the update that has just been applied: the " << player
       << "'s parameters are no longer usable; resume from the last checkpoint with a smaller learning rate)";
  throw NonFiniteError(os.str(), steps_, who);
}

double GanTrainer::update(char who, nn::Module& player, Optimizer& opt, Snapshot& snap, const Tensor& loss,
                          double& grad_norm, double& update_norm, double& param_norm, bool* applied) {
  const bool skip = opt_.on_nonfinite == NonFinitePolicy::Skip;
  *applied = false;
  grad_norm = update_norm = param_norm = 0;
  const double value = opt_.reduce_scalar ? opt_.reduce_scalar(loss.item()) : loss.item();
  if (!std::isfinite(value)) {
    if (!skip) fail_nonfinite(who, "loss", value);
    return value;
  }
  opt.zero_grad();
  if (opt_.before_backward) opt_.before_backward(who);
  loss.backward();
  if (opt_.after_backward) opt_.after_backward(who);
  if (skip) {
    const double gsq = grad_sumsq(player.parameters());
    if (!std::isfinite(gsq)) {
      opt.zero_grad();
      grad_norm = gsq;
      return value;
    }
  }
  *applied = true;
  // Optimizers stepping through the multi-tensor kernels report their step's norms as they write the parameters
  // (set per step: an optimizer may serve several trainers); for the others a snapshot pass before the step and a
  // difference pass after it measure the same.
  if (opt.can_record_step_norms()) opt.record_step_norms(opt_.diagnostics);
  if (!opt_.diagnostics) {
    opt.step();
    return value;
  }
  measure_step(player, opt, snap, grad_norm, update_norm, param_norm);
  if (!skip && !std::isfinite(grad_norm)) fail_nonfinite(who, "gradient norm", grad_norm);
  return value;
}

void GanTrainer::measure_step(nn::Module& player, Optimizer& opt, Snapshot& snap, double& grad_norm,
                              double& update_norm, double& param_norm) {
  if (opt.can_record_step_norms()) {
    opt.step();
    const StepNorms* n = opt.last_step_norms();
    grad_norm = n ? n->grad_norm() : 0.0;
    param_norm = n ? n->param_norm() : 0.0;
    update_norm = n ? n->update_norm() : 0.0;
    return;
  }
  std::vector<Tensor> params = player.parameters(), grads;
  for (const Tensor& p : params) grads.push_back(p.grad());
  if (host_dense(params) && host_dense(grads)) {
    // One pass before the step (‖g‖², ‖Y‖², snapshot) and one after (‖ΔY‖²), into a buffer kept across steps:
    // a few parameter-sized passes, no allocations.
    int64_t total = 0;
    for (const Tensor& p : params) total += p.numel();
    snap.bytes.resize(static_cast<std::size_t>(total) * sizeof(double));
    double gsq = 0, psq = 0;
    std::size_t off = 0;  // bytes
    for (std::size_t k = 0; k < params.size(); ++k) {
      const Tensor &p = params[k], &g = grads[k];
      unsigned char* s = snap.bytes.data() + off;
      if (p.dtype() == DType::Float32)
        psq += snapshot_sumsq(p.data_ptr<float>(), g.defined() ? g.data_ptr<float>() : nullptr,
                              reinterpret_cast<float*>(s), p.numel(), gsq);
      else
        psq += snapshot_sumsq(p.data_ptr<double>(), g.defined() ? g.data_ptr<double>() : nullptr,
                              reinterpret_cast<double*>(s), p.numel(), gsq);
      off += static_cast<std::size_t>(p.numel()) * element_size(p.dtype());
    }
    opt.step();
    double usq = 0;
    off = 0;
    for (const Tensor& p : params) {
      const unsigned char* s = snap.bytes.data() + off;
      usq += p.dtype() == DType::Float32
                 ? diff_sumsq(p.data_ptr<float>(), reinterpret_cast<const float*>(s), p.numel())
                 : diff_sumsq(p.data_ptr<double>(), reinterpret_cast<const double*>(s), p.numel());
      off += static_cast<std::size_t>(p.numel()) * element_size(p.dtype());
    }
    grad_norm = std::sqrt(gsq);
    param_norm = std::sqrt(psq);
    update_norm = std::sqrt(usq);
    return;
  }
  // Device tensors: the same quantities through nash ops.
  grad_norm = global_norm(grads);
  std::vector<Tensor> before;
  {
    NoGradGuard ng;
    for (const Tensor& p : params) before.push_back(p.detach().clone());
  }
  param_norm = global_norm(before);
  opt.step();
  NoGradGuard ng;
  std::vector<Tensor> delta;
  for (std::size_t i = 0; i < params.size(); ++i) delta.push_back(sub(params[i].detach(), before[i]));
  update_norm = global_norm(delta);
}

StepStats GanTrainer::step(const Sampler& real_batch, const Sampler& latent_batch) {
  NASH_CHECK(!dynamic_cast<nn::ConditionalModule*>(g_.get()) && !dynamic_cast<nn::ConditionalModule*>(d_.get()),
             "GanTrainer.step: G or D is class-conditional; train it with step_conditional and labelled samplers");
  return run_step([&] { return Labeled{real_batch(), Tensor()}; }, [&] { return Labeled{latent_batch(), Tensor()}; },
                  [this](const Tensor& z, const Tensor&) { return g_->forward(z); },
                  [this](const Tensor& x, const Tensor&) { return d_->forward(x); });
}

StepStats GanTrainer::step_conditional(const LabeledSampler& real_batch, const LabeledSampler& latent_batch) {
  auto* g = dynamic_cast<nn::ConditionalModule*>(g_.get());
  auto* d = dynamic_cast<nn::ConditionalModule*>(d_.get());
  NASH_CHECK(g && d, "GanTrainer.step_conditional: G (", g_->type_name(), ") and D (", d_->type_name(),
             ") must both be class-conditional (nn::ConditionalModule)");
  NASH_CHECK(g->num_classes() == d->num_classes(), "GanTrainer.step_conditional: G has ", g->num_classes(),
             " classes and D ", d->num_classes());
  auto check = [](const Labeled& b, const char* what) {
    NASH_CHECK(b.x.defined() && b.y.defined() && b.y.dim() == 1 && b.x.dim() >= 1 && b.y.size(0) == b.x.size(0),
               "GanTrainer.step_conditional: the ", what, " sampler must give a batch and its (N) labels, got ",
               b.x.defined() ? shape_str(b.x.shape()) : std::string("no batch"), " with ",
               b.y.defined() ? shape_str(b.y.shape()) : std::string("no labels"));
    return b;
  };
  return run_step([&] { return check(real_batch(), "real"); }, [&] { return check(latent_batch(), "latent"); },
                  [g](const Tensor& z, const Tensor& y) { return g->forward(z, y); },
                  [d](const Tensor& x, const Tensor& y) { return d->forward(x, y); });
}

StepStats GanTrainer::run_step(const LabeledSampler& real_batch, const LabeledSampler& latent_batch, const Net& G,
                               const Net& plain_d) {
  const Net D = !opt_.augment ? plain_d : Net([&](const Tensor& x, const Tensor& y) {
    return plain_d(opt_.augment(x), y);
  });
  auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  s.step = ++steps_;
  for (int64_t k = 0; k < opt_.n_dis; ++k) {
    const Labeled rb = real_batch(), zb = latent_batch();
    const Tensor& real = rb.x;
    Tensor fake;
    {
      NoGradGuard ng;
      fake = G(zb.x, zb.y);
    }
    // Fakes scored first, then reals: the order of every earlier result (a spectral norm's power iteration and batch
    // norm's running statistics advance with each forward), now explicit rather than the compiler's.
    const Tensor fake_scores = D(fake, zb.y);
    const Tensor real_scores = D(real, rb.y);
    Tensor loss = nn::d_loss(opt_.loss, real_scores, fake_scores);
    Tensor penalty;
    nn::Critic critic = [&D, &rb](const Tensor& x) { return D(x, rb.y); };
    if (opt_.gp_lambda > 0) {
      if (opt_.shard_count > 1) {
        // eps for the whole global batch, this rank's rows of it: the draws a single process would make.
        Shape es(static_cast<std::size_t>(real.dim()), 1);
        es[0] = real.size(0) * opt_.shard_count;
        Tensor eps;
        {
          NoGradGuard ng;
          // This rank's rows of the global draw: rank, rank + count, ... (as dist::Shard slices batches).
          Shape rs = es;
          rs[0] = opt_.shard_count;
          rs.insert(rs.begin(), real.size(0));
          eps = rand(es, real.dtype(), real.device()).reshape(rs).select(1, opt_.shard_rank).contiguous();
        }
        penalty = nn::gradient_penalty(critic, real, fake, eps, opt_.gp_lambda);
      } else {
        penalty = nn::gradient_penalty(critic, real, fake, opt_.gp_lambda);
      }
    }
    if (opt_.r1_gamma > 0) {
      Tensor r1 = nn::r1_penalty(critic, real, opt_.r1_gamma);
      penalty = penalty.defined() ? add(penalty, r1) : r1;
    }
    if (opt_.d_regularizer) {
      Tensor r = opt_.d_regularizer();
      NASH_CHECK(r.defined() && r.numel() == 1, "GanTrainer: d_regularizer must return a scalar tensor");
      penalty = penalty.defined() ? add(penalty, r) : r;
    }
    if (penalty.defined()) {
      s.penalty = opt_.reduce_scalar ? opt_.reduce_scalar(penalty.item()) : penalty.item();
      loss = add(loss, penalty);
    }
    bool applied = false;
    s.d_loss = update('D', *d_, opt_d_, snap_d_, loss, s.grad_norm_d, s.update_norm_d, s.param_norm_d, &applied);
    if (!applied)
      ++s.skipped_d;
    else if (opt_.after_d_update)
      opt_.after_d_update();
  }
  const Labeled gb = latent_batch();
  Tensor gl = nn::g_loss(opt_.loss, D(G(gb.x, gb.y), gb.y));
  bool applied = false;
  s.g_loss = update('G', *g_, opt_g_, snap_g_, gl, s.grad_norm_g, s.update_norm_g, s.param_norm_g, &applied);
  if (!applied) ++s.skipped_g;
  skipped_ += s.skipped_d + s.skipped_g;
  d_->zero_grad();  // the G update also filled D's gradients; they are not used
  if (opt_.diagnostics) {
    if (steps_ == 1) {
      g0_ = s.grad_norm_g;
      d0_ = s.grad_norm_d;
    }
    s.rel_speed_d = s.param_norm_d > 0 ? opt_d_.lr() * s.grad_norm_d / s.param_norm_d : 0;
    s.rel_speed_g = s.param_norm_g > 0 ? opt_g_.lr() * s.grad_norm_g / s.param_norm_g : 0;
    s.update_ratio = s.update_norm_d > 0 ? s.update_norm_g / s.update_norm_d : 0;
    s.grad_ratio = (g0_ > 0 ? s.grad_norm_g / g0_ : 0) + (d0_ > 0 ? s.grad_norm_d / d0_ : 0);
  }
  if (auto* f = dynamic_cast<FusedOptimizer*>(&opt_d_)) {
    s.layer_grad_norms_d = f->grad_norms();
    s.layer_oracle_norms_d = f->oracle_norms();
  }
  if (auto* f = dynamic_cast<FusedOptimizer*>(&opt_g_)) {
    s.layer_grad_norms_g = f->grad_norms();
    s.layer_oracle_norms_g = f->oracle_norms();
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (log_.is_open()) log(s);
  return s;
}

void GanTrainer::log(const StepStats& s) {
  log_ << s.step << ',' << s.d_loss << ',' << s.g_loss << ',' << s.penalty << ',' << s.grad_norm_d << ','
       << s.grad_norm_g << ',' << s.update_norm_d << ',' << s.update_norm_g << ',' << s.param_norm_d << ','
       << s.param_norm_g << ',' << s.rel_speed_d << ',' << s.rel_speed_g << ',' << s.update_ratio << ','
       << s.grad_ratio << ',' << s.seconds << '\n';
  NASH_CHECK(log_.good(), "GanTrainer: writing the log file ", opt_.log_path, " failed");
  if (!layer_log_.is_open()) return;
  auto rows = [&](const char* player, Optimizer& opt, const std::vector<double>& g, const std::vector<double>& a) {
    auto* f = dynamic_cast<FusedOptimizer*>(&opt);
    for (std::size_t i = 0; f && i < g.size(); ++i)
      layer_log_ << s.step << ',' << player << ',' << f->group_name(i) << ',' << g[i] << ',' << (i < a.size() ? a[i] : 0)
                 << '\n';
  };
  rows("D", opt_d_, s.layer_grad_norms_d, s.layer_oracle_norms_d);
  rows("G", opt_g_, s.layer_grad_norms_g, s.layer_oracle_norms_g);
  NASH_CHECK(layer_log_.good(), "GanTrainer: writing the log file ", opt_.log_path, ".layers.csv failed");
}

}  // namespace optim
}  // namespace nash
