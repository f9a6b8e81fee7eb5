// GanTrainer: the D and G updates of one GAN step and the balance diagnostics around them.
#include "nash/optim/gan_trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
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

double GanTrainer::update(nn::Module& player, Optimizer& opt, const Tensor& loss, double& grad_norm,
                          double& update_norm, double& param_norm) {
  opt.zero_grad();
  loss.backward();
  std::vector<Tensor> params = player.parameters();
  std::vector<Tensor> before;
  if (opt_.diagnostics) {
    std::vector<Tensor> grads;
    for (const Tensor& p : params) grads.push_back(p.grad());
    grad_norm = global_norm(grads);
    NoGradGuard ng;
    for (const Tensor& p : params) before.push_back(p.detach().clone());
    param_norm = global_norm(before);
  }
  opt.step();
  if (opt_.diagnostics) {
    NoGradGuard ng;
    std::vector<Tensor> delta;
    for (std::size_t i = 0; i < params.size(); ++i) delta.push_back(sub(params[i].detach(), before[i]));
    update_norm = global_norm(delta);
  }
  return loss.item();
}

StepStats GanTrainer::step(const Sampler& real_batch, const Sampler& latent_batch) {
  auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  s.step = ++steps_;
  for (int64_t k = 0; k < opt_.n_dis; ++k) {
    Tensor real = real_batch(), z = latent_batch();
    Tensor fake;
    {
      NoGradGuard ng;
      fake = g_->forward(z);
    }
    Tensor loss = nn::d_loss(opt_.loss, d_->forward(real), d_->forward(fake));
    Tensor penalty;
    nn::Critic critic = [this](const Tensor& x) { return d_->forward(x); };
    if (opt_.gp_lambda > 0) penalty = nn::gradient_penalty(critic, real, fake, opt_.gp_lambda);
    if (opt_.r1_gamma > 0) {
      Tensor r1 = nn::r1_penalty(critic, real, opt_.r1_gamma);
      penalty = penalty.defined() ? add(penalty, r1) : r1;
    }
    if (penalty.defined()) {
      s.penalty = penalty.item();
      loss = add(loss, penalty);
    }
    s.d_loss = update(*d_, opt_d_, loss, s.grad_norm_d, s.update_norm_d, s.param_norm_d);
  }
  Tensor gl = nn::g_loss(opt_.loss, d_->forward(g_->forward(latent_batch())));
  s.g_loss = update(*g_, opt_g_, gl, s.grad_norm_g, s.update_norm_g, s.param_norm_g);
  d_->zero_grad();  // the G update also filled D's gradients; they are not used
  NASH_CHECK(std::isfinite(s.d_loss) && std::isfinite(s.g_loss), "GanTrainer: step ", s.step,
             " produced a non-finite loss (D ", s.d_loss, ", G ", s.g_loss, ")");
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
