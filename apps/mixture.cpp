// `nash mixture`: trains a small MLP GAN on a 2-D Gaussian mixture with GanTrainer and reports mode coverage.
#include "apps/mixture.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "apps/cli.h"
#include "apps/plot.h"
#include "apps/progress.h"
#include "apps/workers.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/threads.h"
#include "nash/nn/layers.h"
#include "nash/nn/regularizers.h"
#include "nash/nn/spectral_norm.h"
#include "nash/nn/weight_norm.h"
#include "nash/optim/balanced.h"
#include "nash/optim/gan_trainer.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

using cli::prepare_output_dir;
using cli::write_atomic;
using cli::Named;
using cli::name_of;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const Named<MixtureDist> kDists[] = {{MixtureDist::Ring, "ring"}, {MixtureDist::Grid, "grid"}};
const Named<MixtureLoss> kLosses[] = {
    {MixtureLoss::NS, "ns"}, {MixtureLoss::Hinge, "hinge"}, {MixtureLoss::WganGP, "wgan-gp"}, {MixtureLoss::LS, "ls"}};
const Named<MixtureOptimizer> kOptimizers[] = {{MixtureOptimizer::SGDA, "sgda"},
                                               {MixtureOptimizer::Adam, "adam"},
                                               {MixtureOptimizer::NSGDA, "nsgda"},
                                               {MixtureOptimizer::AdaNSGDA, "ada-nsgda"},
                                               {MixtureOptimizer::AdaDir, "adadir"}};
const Named<MixtureDNorm> kDNorms[] = {
    {MixtureDNorm::None, "none"}, {MixtureDNorm::SN, "sn"}, {MixtureDNorm::WN, "wn"}, {MixtureDNorm::BN, "bn"}};
const Named<MixtureDReg> kDRegs[] = {{MixtureDReg::Default, "default"},
                                     {MixtureDReg::None, "none"},
                                     {MixtureDReg::GP, "gp"},
                                     {MixtureDReg::R1, "r1"},
                                     {MixtureDReg::Ortho, "ortho"}};


// in -> 3 x (Linear(hidden), activation) -> Linear(out); every Linear wrapped in spectral or weight normalization,
// or batch norm after each hidden Linear, as norm says.
std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out, bool leaky, MixtureDNorm norm) {
  auto net = std::make_shared<nn::Sequential>();
  auto linear = [&](int64_t i, int64_t o) -> nn::ModulePtr {
    auto l = std::make_shared<nn::Linear>(i, o);
    if (norm == MixtureDNorm::SN) return nn::spectral_norm(l);
    if (norm == MixtureDNorm::WN) return nn::weight_norm(l);
    return l;
  };
  int64_t width = in;
  for (int i = 0; i < 3; ++i) {
    net->push_back(linear(width, hidden));
    if (norm == MixtureDNorm::BN) net->push_back(std::make_shared<nn::BatchNorm1d>(hidden));
    if (leaky) net->push_back(std::make_shared<nn::LeakyReLU>(0.2));
    else net->push_back(std::make_shared<nn::ReLU>());
    width = hidden;
  }
  net->push_back(linear(width, out));
  return net;
}

// Global groups for SGD and Adam; layer-wise for the balanced rules, whose norms are taken per group.
std::unique_ptr<optim::Optimizer> make_optimizer(const MixtureConfig& c, const nn::Module& player, double lr) {
  switch (c.optimizer) {
    case MixtureOptimizer::SGDA: {
      optim::SGDOptions o;
      o.lr = lr;
      return std::make_unique<optim::SGD>(optim::ParamGroup::global(player.named_parameters()), o);
    }
    case MixtureOptimizer::Adam: {
      optim::AdamOptions o;
      o.lr = lr;
      o.beta1 = c.beta1;
      o.beta2 = c.beta2;
      return std::make_unique<optim::Adam>(optim::ParamGroup::global(player.named_parameters()), o);
    }
    case MixtureOptimizer::NSGDA: {
      optim::NSGDAOptions o;
      o.lr = lr;
      return std::make_unique<optim::NSGDA>(optim::ParamGroup::layerwise(player.named_parameters()), o);
    }
    case MixtureOptimizer::AdaNSGDA:
    case MixtureOptimizer::AdaDir: {
      optim::AdaGraftOptions o;  // Adam's betas, so the graft differs from the Adam runs in the graft alone
      o.lr = lr;
      o.beta1 = c.beta1;
      o.beta2 = c.beta2;
      auto groups = optim::ParamGroup::layerwise(player.named_parameters());
      if (c.optimizer == MixtureOptimizer::AdaNSGDA) return std::make_unique<optim::AdaNSGDA>(std::move(groups), o);
      return std::make_unique<optim::AdaDir>(std::move(groups), o);
    }
  }
  detail::fail("mixture: unknown optimizer");
}

std::string fmt(double v, int precision = 6) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

// JSON has no infinity; an undefined KL (no high-quality sample) becomes null.
std::string json_number(double v) { return std::isfinite(v) ? fmt(v, 8) : "null"; }

std::string run_title(const MixtureConfig& c) {
  return std::string(mixture_name(c.dist)) + ", " + mixture_name(c.loss) + ", " + mixture_name(c.optimizer) +
         (c.d_norm != MixtureDNorm::None ? std::string(" + D ") + mixture_name(c.d_norm) : std::string()) +
         (c.d_reg == MixtureDReg::R1 || c.d_reg == MixtureDReg::Ortho ? std::string(" + ") + mixture_name(c.d_reg)
                                                                         : std::string()) +
         (c.d_clip > 0 ? ", clip " + fmt(c.d_clip, 3) : std::string()) + ", lr D " + fmt(c.lr_d, 3) + " / G " + fmt(c.lr_g, 3) + ", seed " +
         std::to_string(c.seed);
}

// The generated samples over the modes and their 3-std circles, on a fixed frame around the distribution.
plot::Figure samples_figure(const MixtureResult& r, const data::GaussianMixture2D& dist) {
  const metrics::ModeCoverage& cov = r.coverage;
  double extent = 0;
  for (const auto& c : dist.centre_list()) extent = std::max({extent, std::fabs(c[0]), std::fabs(c[1])});
  extent += 1.0;
  plot::Figure f;
  f.width = 720;
  f.height = 720;
  f.equal_aspect = true;
  f.xmin = f.ymin = -extent;
  f.xmax = f.ymax = extent;
  char head[160];
  std::snprintf(head, sizeof head, "%lld/%lld modes, %.1f%% high quality, KL %.3f",
                static_cast<long long>(cov.modes_covered), static_cast<long long>(cov.num_modes),
                100.0 * cov.high_quality_share, cov.kl_uniform);
  f.title = head;
  plot::Series s{"generated", {}, {}, true, 0x1f77b4, 1.2};
  int64_t outside = 0;
  for (std::size_t i = 0; i + 1 < r.samples.size(); i += 2) {
    s.x.push_back(r.samples[i]);
    s.y.push_back(r.samples[i + 1]);
    if (!(std::fabs(r.samples[i]) <= extent && std::fabs(r.samples[i + 1]) <= extent)) ++outside;
  }
  plot::Series circles{"3 std of a mode", {}, {}, false, 0xd62728};
  plot::Series centres{"", {}, {}, true, 0xd62728, 1.5};
  const double rad = 3 * dist.std(), two_pi = 2 * std::acos(-1.0);
  for (const auto& c : dist.centre_list()) {
    for (int k = 0; k <= 48; ++k) {
      circles.x.push_back(c[0] + rad * std::cos(two_pi * k / 48));
      circles.y.push_back(c[1] + rad * std::sin(two_pi * k / 48));
    }
    circles.x.push_back(NAN);  // lifts the pen between circles
    circles.y.push_back(NAN);
    centres.x.push_back(c[0]);
    centres.y.push_back(c[1]);
  }
  f.series = {s, circles, centres};
  f.xlabel = run_title(r.config) + (outside ? ", " + std::to_string(outside) + " samples outside the frame" : "");
  return f;
}

// Losses over training, and the G/D update-norm ratio on a log axis.
std::vector<plot::Figure> training_figures(const MixtureResult& r) {
  plot::Figure losses, ratio;
  losses.title = "losses (" + run_title(r.config) + ")";
  losses.xlabel = "step";
  losses.ylabel = "loss";
  ratio.title = "G/D update ratio |dG| / |dD| per step";
  ratio.xlabel = "step";
  ratio.ylabel = "ratio";
  ratio.log_y = true;
  plot::Series d{"D loss", {}, {}}, g{"G loss", {}, {}}, gp{"gradient penalty", {}, {}}, u{"update ratio", {}, {}};
  for (const MixtureLogRow& row : r.log) {
    const double x = static_cast<double>(row.step);
    d.x.push_back(x);
    d.y.push_back(row.d_loss);
    g.x.push_back(x);
    g.y.push_back(row.g_loss);
    gp.x.push_back(x);
    gp.y.push_back(row.penalty);
    u.x.push_back(x);
    u.y.push_back(row.update_ratio);
  }
  losses.series = {d, g};
  if (r.config.d_reg != MixtureDReg::None) losses.series.push_back(gp);  // GP, R1 or ortho
  ratio.series = {u};
  // One point at 1 keeps the "balanced" level in view even when every ratio is far from it.
  ratio.series.push_back(plot::Series{"balanced (1)", {u.x.front(), u.x.back()}, {1.0, 1.0}, false, 0x999999});
  return {losses, ratio};
}

void write_outputs(const fs::path& dir, const MixtureResult& r, const data::GaussianMixture2D& dist) {
  const MixtureConfig& cfg = r.config;
  std::string s = "x,y\n";
  for (std::size_t i = 0; i + 1 < r.samples.size(); i += 2)
    s += fmt(r.samples[i]) + "," + fmt(r.samples[i + 1]) + "\n";
  write_atomic(dir / "samples.csv", s);

  std::string m = "step,d_loss,g_loss,penalty,grad_norm_d,grad_norm_g,update_norm_d,update_norm_g,update_ratio\n";
  for (const MixtureLogRow& row : r.log)
    m += std::to_string(row.step) + "," + fmt(row.d_loss) + "," + fmt(row.g_loss) + "," + fmt(row.penalty) + "," +
         fmt(row.grad_norm_d) + "," + fmt(row.grad_norm_g) + "," + fmt(row.update_norm_d) + "," +
         fmt(row.update_norm_g) + "," + fmt(row.update_ratio) + "\n";
  write_atomic(dir / "metrics.csv", m);

  const metrics::ModeCoverage& c = r.coverage;
  std::ostringstream j;
  j << "{\n"
    << "  \"dist\": \"" << mixture_name(cfg.dist) << "\",\n  \"loss\": \"" << mixture_name(cfg.loss)
    << "\",\n  \"optimizer\": \"" << mixture_name(cfg.optimizer) << "\",\n  \"sn\": " << (cfg.sn ? "true" : "false")
    << ",\n  \"d_norm\": \"" << mixture_name(cfg.d_norm) << "\",\n  \"d_reg\": \"" << mixture_name(cfg.d_reg)
    << "\",\n  \"reg_weight\": " << fmt(cfg.reg_weight) << ",\n  \"d_clip\": " << fmt(cfg.d_clip)
    << ",\n  \"steps\": " << cfg.steps << ",\n  \"n_dis\": " << cfg.n_dis << ",\n  \"batch\": " << cfg.batch
    << ",\n  \"lr_d\": " << fmt(cfg.lr_d) << ",\n  \"lr_g\": " << fmt(cfg.lr_g)
    << ",\n  \"gp_lambda\": " << fmt(cfg.d_reg == MixtureDReg::GP ? cfg.gp_lambda : 0.0)
    << ",\n  \"z_dim\": " << cfg.z_dim << ",\n  \"hidden\": " << cfg.hidden << ",\n  \"seed\": " << cfg.seed
    << ",\n  \"processes\": " << r.world_size
    << ",\n  \"eval_samples\": " << cfg.eval_samples << ",\n  \"num_modes\": " << c.num_modes
    << ",\n  \"modes_covered\": " << c.modes_covered
    << ",\n  \"high_quality_share\": " << json_number(c.high_quality_share)
    << ",\n  \"kl_uniform\": " << json_number(c.kl_uniform) << ",\n  \"per_mode\": [";
  for (std::size_t k = 0; k < c.per_mode.size(); ++k) j << (k ? ", " : "") << c.per_mode[k];
  j << "],\n  \"final_d_loss\": " << json_number(r.log.empty() ? NAN : r.log.back().d_loss)
    << ",\n  \"final_g_loss\": " << json_number(r.log.empty() ? NAN : r.log.back().g_loss)
    << ",\n  \"final_update_ratio\": " << json_number(r.log.empty() ? NAN : r.log.back().update_ratio)
    << ",\n  \"train_seconds\": " << json_number(r.train_seconds)
    << ",\n  \"wall_seconds\": " << json_number(r.wall_seconds) << "\n}\n";
  write_atomic(dir / "summary.json", j.str());

  if (!cfg.plots) return;
  try {
    plot::save_png(samples_figure(r, dist), (dir / "samples.png").string());
    plot::save_png(training_figures(r), (dir / "training.png").string());
  } catch (const Error& e) {
    throw OutputError(e.what());
  }
}

}  // namespace

const char* mixture_name(MixtureDist d) { return name_of(kDists, d); }
const char* mixture_name(MixtureLoss l) { return name_of(kLosses, l); }
const char* mixture_name(MixtureOptimizer o) { return name_of(kOptimizers, o); }
MixtureDist parse_mixture_dist(const std::string& n) { return cli::parse_named(kDists, n, "mixture", "distribution"); }
nn::GanLoss mixture_gan_loss(MixtureLoss l) {
  switch (l) {
    case MixtureLoss::NS: return nn::GanLoss::NonSaturating;
    case MixtureLoss::Hinge: return nn::GanLoss::Hinge;
    case MixtureLoss::WganGP: return nn::GanLoss::Wasserstein;
    case MixtureLoss::LS: return nn::GanLoss::LeastSquares;
  }
  detail::fail("mixture: unknown loss ", static_cast<int>(l));
}
MixtureLoss parse_mixture_loss(const std::string& n) { return cli::parse_named(kLosses, n, "mixture", "loss"); }
MixtureOptimizer parse_mixture_optimizer(const std::string& n) {
  return cli::parse_named(kOptimizers, n, "mixture", "optimizer");
}
const char* mixture_name(MixtureDNorm n) { return name_of(kDNorms, n); }
const char* mixture_name(MixtureDReg r) { return name_of(kDRegs, r); }
MixtureDNorm parse_mixture_d_norm(const std::string& n) {
  return cli::parse_named(kDNorms, n, "mixture", "D normalization");
}
MixtureDReg parse_mixture_d_reg(const std::string& n) {
  return cli::parse_named(kDRegs, n, "mixture", "D regularizer");
}

double mixture_default_lr(MixtureOptimizer o) {
  switch (o) {
    case MixtureOptimizer::SGDA: return 0.05;
    case MixtureOptimizer::Adam: return 1e-3;
    case MixtureOptimizer::NSGDA: return 0.02;
    case MixtureOptimizer::AdaNSGDA: return 1e-3;
    case MixtureOptimizer::AdaDir: return 0.05;
  }
  return 1e-3;
}

data::GaussianMixture2D mixture_distribution(MixtureDist d) {
  return d == MixtureDist::Grid ? data::GaussianMixture2D::grid(5, 2.0, 0.05)
                                 : data::GaussianMixture2D::ring(8, 2.0, 0.02);
}

metrics::ModeCoverage mixture_coverage(const data::GaussianMixture2D& d, const Tensor& samples) {
  return metrics::mode_coverage(samples, d.centres(), d.std(), 3.0, 0.01);
}

MixtureConfig MixtureConfig::resolved() const {
  MixtureConfig c = *this;
  if (c.n_dis == 0) c.n_dis = c.loss == MixtureLoss::WganGP ? 5 : 1;
  NASH_CHECK(!c.sn || c.d_norm == MixtureDNorm::None || c.d_norm == MixtureDNorm::SN,
             "mixture: --sn and --d-norm ", mixture_name(c.d_norm), " ask for two normalizations of D");
  if (c.sn) c.d_norm = MixtureDNorm::SN;
  c.sn = c.d_norm == MixtureDNorm::SN;
  if (c.d_reg == MixtureDReg::Default) c.d_reg = c.loss == MixtureLoss::WganGP ? MixtureDReg::GP : MixtureDReg::None;
  if (c.reg_weight < 0) c.reg_weight = c.d_reg == MixtureDReg::Ortho ? 1e-4 : c.d_reg == MixtureDReg::R1 ? 10.0 : 0.0;
  NASH_CHECK(std::isfinite(c.reg_weight), "mixture: reg_weight must be finite, got ", c.reg_weight);
  NASH_CHECK(std::isfinite(c.d_clip) && c.d_clip >= 0, "mixture: d_clip must be finite and >= 0, got ", c.d_clip);
  if (c.lr_d == 0) c.lr_d = 2 * mixture_default_lr(c.optimizer);  // TTUR: D twice as fast (see --help)
  if (c.lr_g == 0) c.lr_g = mixture_default_lr(c.optimizer);
  NASH_CHECK(c.steps >= 1, "mixture: steps must be >= 1, got ", c.steps);
  NASH_CHECK(c.n_dis >= 1 && c.n_dis <= 100, "mixture: n_dis must be in [1, 100] (0: automatic), got ", c.n_dis);
  NASH_CHECK(c.batch >= 1, "mixture: batch must be >= 1, got ", c.batch);
  NASH_CHECK(std::isfinite(c.lr_d) && c.lr_d > 0, "mixture: lr_d must be finite and > 0 (0: default), got ", c.lr_d);
  NASH_CHECK(std::isfinite(c.lr_g) && c.lr_g > 0, "mixture: lr_g must be finite and > 0 (0: default), got ", c.lr_g);
  NASH_CHECK(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1, "mixture: Adam betas must be in [0, 1), got (",
             c.beta1, ", ", c.beta2, ")");
  NASH_CHECK(std::isfinite(c.gp_lambda) && c.gp_lambda >= 0, "mixture: gp_lambda must be >= 0, got ", c.gp_lambda);
  NASH_CHECK(c.z_dim >= 1, "mixture: z_dim must be >= 1, got ", c.z_dim);
  NASH_CHECK(c.hidden >= 1, "mixture: hidden must be >= 1, got ", c.hidden);
  NASH_CHECK(c.eval_samples >= 1, "mixture: eval_samples must be >= 1, got ", c.eval_samples);
  NASH_CHECK(c.threads >= 0, "mixture: threads must be >= 0, got ", c.threads);
  NASH_CHECK(c.log_every >= 1, "mixture: log_every must be >= 1, got ", c.log_every);
  return c;
}

MixtureResult train_mixture(const MixtureConfig& config, std::shared_ptr<dist::ProcessGroup> group) {
  const MixtureConfig cfg = config.resolved();
  const Clock::time_point t0 = Clock::now();
  if (!group && cfg.distributed) group = dist::init_process_group(dist::Backend::Auto, Device::cpu());
  const bool parallel = group && group->world_size() > 1;
  const dist::Shard shard = group ? dist::shard_of(*group) : dist::Shard{};
  if (parallel) shard.local_batch(cfg.batch);  // the global batch must split evenly (clear error otherwise)
  const bool write = !cfg.out_dir.empty() && shard.rank == 0;
  if (write) prepare_output_dir(cfg.out_dir);
  NumThreadsGuard threads(cfg.threads);  // OpenMP and the BLAS: small GEMMs run best single-threaded

  manual_seed(cfg.seed);  // before the networks: their initialisation draws from the default generator
  const data::GaussianMixture2D target = mixture_distribution(cfg.dist);
  auto G = mlp(cfg.z_dim, cfg.hidden, 2, false, MixtureDNorm::None);
  auto D = mlp(2, cfg.hidden, 1, true, cfg.d_norm);
  std::unique_ptr<optim::Optimizer> opt_d = make_optimizer(cfg, *D, cfg.lr_d);
  std::unique_ptr<optim::Optimizer> opt_g = make_optimizer(cfg, *G, cfg.lr_g);
  optim::GanTrainerOptions to;
  to.loss = mixture_gan_loss(cfg.loss);
  to.n_dis = cfg.n_dis;
  to.gp_lambda = cfg.d_reg == MixtureDReg::GP ? cfg.gp_lambda : 0.0;
  to.r1_gamma = cfg.d_reg == MixtureDReg::R1 ? cfg.reg_weight : 0.0;
  if (cfg.d_reg == MixtureDReg::Ortho) {
    nn::Module* d = D.get();
    const double beta = cfg.reg_weight;
    to.d_regularizer = [d, beta] { return nn::orthonormal_penalty(*d, beta); };
  }
  if (cfg.d_clip > 0) {
    nn::Module* d = D.get();
    const double clip = cfg.d_clip;
    to.after_d_update = [d, clip] { nn::clip_weights_(*d, clip); };
  }
  to.diagnostics = true;  // the update ratio and gradient norms of metrics.csv
  // Data-parallel: every rank draws the global batch from the shared seed and keeps its rows (see GanDataParallel).
  std::unique_ptr<dist::GanDataParallel> dp;
  if (parallel) {
    dp = std::make_unique<dist::GanDataParallel>(group, *G, *D, cfg.sync_bn);
    dp->configure(to);
  }
  optim::GanTrainer trainer(G, D, *opt_g, *opt_d, to);
  const optim::GanTrainer::Sampler real = [&] { return shard.slice(target.sample(cfg.batch)); };
  const optim::GanTrainer::Sampler latent = [&] { return shard.slice(randn({cfg.batch, cfg.z_dim})); };

  MixtureResult r;
  r.config = cfg;
  r.world_size = shard.count;
  const bool talk = !cfg.quiet && shard.rank == 0;
  cli::ProgressBar bar(cfg.steps, std::cout, talk && cli::ProgressBar::stdout_is_tty());
  MixtureLogRow acc;
  int64_t n_acc = 0;
  const Clock::time_point t_train = Clock::now();
  for (int64_t step = 1; step <= cfg.steps; ++step) {
    optim::StepStats s;
    try {
      s = trainer.step(real, latent);
    } catch (const Error& e) {
      throw Error(std::string("mixture: training diverged (") + e.what() + "); try smaller learning rates");
    }
    acc.d_loss += s.d_loss;
    acc.g_loss += s.g_loss;
    acc.penalty += s.penalty;
    acc.grad_norm_d += s.grad_norm_d;
    acc.grad_norm_g += s.grad_norm_g;
    acc.update_norm_d += s.update_norm_d;
    acc.update_norm_g += s.update_norm_g;
    acc.update_ratio += s.update_ratio;
    ++n_acc;
    if (step % cfg.log_every == 0 || step == cfg.steps) {
      const double k = 1.0 / static_cast<double>(n_acc);
      r.log.push_back({step, acc.d_loss * k, acc.g_loss * k, acc.penalty * k, acc.grad_norm_d * k,
                       acc.grad_norm_g * k, acc.update_norm_d * k, acc.update_norm_g * k, acc.update_ratio * k});
      acc = MixtureLogRow{};
      n_acc = 0;
    }
    if (talk) bar.update(step, {{"D", s.d_loss}, {"G", s.g_loss}, {"G/D", s.update_ratio}});
  }
  if (talk) bar.finish();
  r.train_seconds = seconds_since(t_train);
  if (dp) dp->check("after training");  // the replicas must still be identical
  r.params_g = cli::flat_parameters(*G);
  r.params_d = cli::flat_parameters(*D);

  {
    NoGradGuard no_grad;
    G->eval();
    Tensor x = G->forward(randn({cfg.eval_samples, cfg.z_dim}));
    r.samples = x.contiguous().to_vector<float>();
    r.coverage = mixture_coverage(target, x);
  }
  r.wall_seconds = seconds_since(t0);
  if (write) write_outputs(cfg.out_dir, r, target);
  return r;
}

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  m.n = static_cast<int64_t>(v.size());
  if (v.empty()) {
    m.mean = m.std = NAN;
    return m;
  }
  double s = 0;
  for (double x : v) s += x;
  m.mean = s / static_cast<double>(v.size());
  double q = 0;
  for (double x : v) q += (x - m.mean) * (x - m.mean);
  m.std = v.size() > 1 ? std::sqrt(q / static_cast<double>(v.size() - 1)) : 0.0;
  return m;
}

namespace {

// What a worker process writes to its pipe (plain bytes: parent and child are the same binary).
struct Wire {
  int32_t ok;
  int64_t num_modes, modes_covered;
  double high_quality_share, kl_uniform, train_seconds, wall_seconds;
  char error[400];
};

Wire run_one(const MixtureConfig& c) {
  Wire w{};
  try {
    MixtureResult r = train_mixture(c);
    w.ok = 1;
    w.num_modes = r.coverage.num_modes;
    w.modes_covered = r.coverage.modes_covered;
    w.high_quality_share = r.coverage.high_quality_share;
    w.kl_uniform = r.coverage.kl_uniform;
    w.train_seconds = r.train_seconds;
    w.wall_seconds = r.wall_seconds;
  } catch (const std::exception& e) {
    std::snprintf(w.error, sizeof w.error, "%s", e.what());
  }
  return w;
}

MixtureRunRecord to_record(const Wire& w) {
  MixtureRunRecord r;
  r.ok = w.ok == 1;
  r.num_modes = w.num_modes;
  r.modes_covered = w.modes_covered;
  r.high_quality_share = w.high_quality_share;
  r.kl_uniform = w.kl_uniform;
  r.train_seconds = w.train_seconds;
  r.wall_seconds = w.wall_seconds;
  r.error = std::string(w.error, strnlen(w.error, sizeof w.error));
  return r;
}

}  // namespace

std::vector<MixtureRunRecord> run_mixture_batch(
    const std::vector<MixtureConfig>& runs, int jobs,
    const std::function<void(std::size_t index, const MixtureRunRecord& record)>& on_done) {
  std::vector<MixtureConfig> cfgs;
  for (const MixtureConfig& c : runs) {
    MixtureConfig q = c.resolved();  // bad configs fail here, not inside a worker
    q.quiet = true;
    q.threads = 1;
    cfgs.push_back(q);
  }
  const std::size_t n = cfgs.size();
  std::vector<MixtureRunRecord> out(n);
  run_forked<Wire>(
      "mixture", n, jobs, [&](std::size_t i) { return run_one(cfgs[i]); },
      [&](std::size_t i, const Wire* w, const std::string& failure) {
        if (w) {
          out[i] = to_record(*w);
        } else {
          out[i].ok = false;
          out[i].error = failure;
        }
        if (on_done) on_done(i, out[i]);
      });
  return out;
}

namespace {

// A learning-rate flag: "auto" (0, the optimizer's default) or a number in (0, 10].
double parse_lr(const std::string& flag, const std::string& v) {
  if (v == "auto") return 0;
  double x = cli::parse_double(flag, v);
  if (!(x > 0 && x <= 10)) throw cli::UsageError(flag + ": expected 'auto' or a value in (0, 10], got " + v);
  return x;
}

template <class F>
auto parse_choice(const std::string& flag, const std::string& v, F parse) {
  try {
    return parse(v);
  } catch (const Error& e) {
    std::string msg = e.what();
    const std::string prefix = "mixture: ";
    if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
    throw cli::UsageError(flag + ": " + msg);
  }
}

int available_cores() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace

int run_mixture(int argc, const char* const* argv, int first) {
  const MixtureConfig def;
  cli::Parser p(
      "nash mixture",
      "Trains a GAN (G and D: MLPs with 3 hidden layers) on a 2-D Gaussian mixture - a ring of 8 (radius 2,\n"
      "std 0.02) or a 5x5 grid (spacing 2, std 0.05) - and reports the modes covered (>= 1% of the samples within\n"
      "3 std), the share of high-quality samples (within 3 std of a mode) and the KL of their mode histogram to\n"
      "uniform. Writes DIR/samples.csv, metrics.csv (losses, gradient norms, G/D update ratio), summary.json,\n"
      "samples.png (the samples over the modes) and training.png (losses; G/D update ratio).\n"
      "Optimizers (both players; default lr of each in brackets): sgda = plain SGD [0.05]; adam = Adam, betas\n"
      "--beta1/--beta2 [0.001]; nsgda = normalized SGD, one step of norm lr per layer [0.02]; ada-nsgda = Adam's\n"
      "step norm on the gradient's direction, per layer [0.001]; adadir = the gradient's norm on Adam's direction,\n"
      "per layer [0.05]. The grafted ones use Adam's betas too. By default lr_g is that rate and lr_d twice it\n"
      "(TTUR: Adam covers all 8 modes of the ring far more often at lr_d = 2 lr_g than at lr_d = lr_g). With\n"
      "wgan-gp, sgda and adadir need smaller rates (a quarter of the defaults works).\n"
      "--seeds N trains seeds --seed .. --seed+N-1 (each in DIR/seed<k>) and prints the mean and std.\n"
      "Exit codes: 0 ok, 1 training failed, 2 bad flags or an output directory that cannot be written.");
  p.add_string("dist", "ring", "target distribution: ring (8 modes) or grid (25 modes)")
      .add_string("loss", "ns", "GAN loss: ns (non-saturating), hinge, wgan-gp (Wasserstein + gradient penalty) or ls "
                  "(least squares, LSGAN)")
      .add_string("optimizer", "adam", "sgda, adam, nsgda, ada-nsgda or adadir (both players)")
      .add_bool("sn", def.sn, "spectral normalization on every layer of D (same as --d-norm sn)")
      .add_string("d-norm", "none", "D's normalization: none, sn (spectral), wn (weight norm) or bn (batch norm)")
      .add_string("d-reg", "default", "D's regularizer: default (gp with wgan-gp, else none), none, gp, r1 or ortho")
      .add_double("d-reg-weight", -1, "weight of r1 and ortho (< 0: r1 10, ortho 1e-4; gp uses --gp-lambda)", -1, 1e6)
      .add_double("d-clip", 0, "clip D's parameters to [-c, c] after each D update (0: off; the original WGAN)", 0,
                  1e6)
      .add_int("steps", def.steps, "generator updates (each after --n-dis D updates)", 1, 10000000)
      .add_int("n-dis", def.n_dis, "D updates per G update (0: 5 for wgan-gp, else 1)", 0, 100)
      .add_int("batch", def.batch, "batch size", 1, 65536)
      .add_string("lr-d", "auto", "discriminator learning rate (auto: twice the optimizer's default)")
      .add_string("lr-g", "auto", "generator learning rate (auto: the optimizer's default)")
      .add_double("beta1", def.beta1, "Adam's beta1", 0.0, 0.999)
      .add_double("beta2", def.beta2, "Adam's beta2", 0.0, 0.9999)
      .add_double("gp-lambda", def.gp_lambda, "gradient-penalty weight of wgan-gp", 0.0, 1000.0)
      .add_int("z-dim", def.z_dim, "latent dimension", 1, 256)
      .add_int("hidden", def.hidden, "width of the 3 hidden layers of G and D", 1, 4096)
      .add_int("seed", static_cast<int64_t>(def.seed), "random seed (data, initialisation, latents)", 0)
      .add_int("seeds", 1, "number of seeds to run, from --seed on", 1, 1000)
      .add_int("jobs", 0, "with --seeds: runs at a time, each its own process (0: one per core)", 0, 1024)
      .add_string("out", def.out_dir, "output directory DIR (created if needed)")
      .add_bool("plots", def.plots, "write samples.png and training.png")
      .add_int("eval-samples", def.eval_samples, "generated samples for the final metrics and samples.csv", 1,
               1000000)
      .add_int("log-every", def.log_every, "steps per row of metrics.csv (values averaged over them)", 1, 10000000)
      .add_int("threads", def.threads, "CPU threads for the kernels and the BLAS (0: leave the process default)", 0,
               1024)
      .add_bool("quiet", def.quiet, "no progress bar and no summary on stdout")
      .add_bool("distributed", def.distributed,
                "data-parallel over the processes of an MPI launch (mpirun -np N nash mixture --distributed): "
                "--batch is the global batch, rank 0 writes the outputs")
      .add_bool("sync-bn", def.sync_bn, "with --distributed and --d-norm bn: batch statistics over all processes "
                "(--sync-bn=false: per process)");
  const char* name = "nash mixture";
  MixtureConfig cfg;
  int64_t seeds = 1;
  int jobs = 0;
  try {
    p.parse(argc, argv, first);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
    cfg.dist = parse_choice("--dist", p.get_string("dist"), parse_mixture_dist);
    cfg.loss = parse_choice("--loss", p.get_string("loss"), parse_mixture_loss);
    cfg.optimizer = parse_choice("--optimizer", p.get_string("optimizer"), parse_mixture_optimizer);
    cfg.lr_d = parse_lr("--lr-d", p.get_string("lr-d"));
    cfg.lr_g = parse_lr("--lr-g", p.get_string("lr-g"));
    cfg.d_norm = parse_choice("--d-norm", p.get_string("d-norm"), parse_mixture_d_norm);
    cfg.d_reg = parse_choice("--d-reg", p.get_string("d-reg"), parse_mixture_d_reg);
  } catch (const cli::UsageError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  cfg.sn = p.get_bool("sn");
  cfg.reg_weight = p.get_double("d-reg-weight");
  cfg.d_clip = p.get_double("d-clip");
  cfg.steps = p.get_int("steps");
  cfg.n_dis = p.get_int("n-dis");
  cfg.batch = p.get_int("batch");
  cfg.beta1 = p.get_double("beta1");
  cfg.beta2 = p.get_double("beta2");
  cfg.gp_lambda = p.get_double("gp-lambda");
  cfg.z_dim = p.get_int("z-dim");
  cfg.hidden = p.get_int("hidden");
  cfg.seed = static_cast<uint64_t>(p.get_int("seed"));
  cfg.out_dir = p.get_string("out");
  cfg.plots = p.get_bool("plots");
  cfg.eval_samples = p.get_int("eval-samples");
  cfg.log_every = p.get_int("log-every");
  cfg.threads = static_cast<int>(p.get_int("threads"));
  cfg.quiet = p.get_bool("quiet");
  cfg.distributed = p.get_bool("distributed");
  cfg.sync_bn = p.get_bool("sync-bn");
  seeds = p.get_int("seeds");
  jobs = static_cast<int>(p.get_int("jobs"));
  try {
    NASH_CHECK(!cfg.distributed || seeds == 1, "mixture: --distributed trains one run over all processes; it "
               "cannot be combined with --seeds ", seeds);
    if (cfg.distributed && dist::launch_info().rank != 0) cfg.quiet = true;  // rank 0 reports
    if (seeds == 1) {
      MixtureResult r = train_mixture(cfg);
      if (!cfg.quiet) {
        const metrics::ModeCoverage& c = r.coverage;
        const MixtureConfig& rc = r.config;
        std::printf("%s: %s, %s, %s%s, lr D %g / G %g, n_dis %lld\n", name, mixture_name(rc.dist),
                    mixture_name(rc.loss), mixture_name(rc.optimizer),
                    rc.d_norm != MixtureDNorm::None ? (std::string(" + D ") + mixture_name(rc.d_norm)).c_str() : "",
                    rc.lr_d, rc.lr_g,
                    static_cast<long long>(rc.n_dis));
        if (r.world_size > 1)
          std::printf("data-parallel over %d processes (global batch %lld, %lld per process)\n", r.world_size,
                      static_cast<long long>(rc.batch), static_cast<long long>(rc.batch / r.world_size));
        std::printf("modes covered: %lld/%lld  high-quality: %.1f%%  KL(modes||uniform): %.4f  wall: %.2f s "
                    "(train %.2f s, %.0f it/s)\n",
                    static_cast<long long>(c.modes_covered), static_cast<long long>(c.num_modes),
                    100.0 * c.high_quality_share, c.kl_uniform, r.wall_seconds, r.train_seconds,
                    static_cast<double>(cfg.steps) / r.train_seconds);
        if (!cfg.out_dir.empty())
          std::printf("wrote %s/{samples.csv,metrics.csv,summary.json%s}\n", cfg.out_dir.c_str(),
                      cfg.plots ? ",samples.png,training.png" : "");
      }
      return 0;
    }
    // Several seeds: each its own process and directory, the same config otherwise.
    std::vector<MixtureConfig> runs;
    for (int64_t k = 0; k < seeds; ++k) {
      MixtureConfig c = cfg;
      c.seed = cfg.seed + static_cast<uint64_t>(k);
      if (!cfg.out_dir.empty()) {
        c.out_dir = (fs::path(cfg.out_dir) / ("seed" + std::to_string(c.seed))).string();
        prepare_output_dir(c.out_dir);
      }
      runs.push_back(c);
    }
    const int j = jobs > 0 ? jobs : std::min<int>(available_cores(), static_cast<int>(seeds));
    if (!cfg.quiet) std::printf("%s: %lld seeds on %d processes...\n", name, static_cast<long long>(seeds), j);
    std::fflush(stdout);
    const std::vector<MixtureRunRecord> recs = run_mixture_batch(runs, j);
    std::vector<double> modes, hq, kl, wall;
    int failed = 0, kl_undefined = 0;
    for (std::size_t k = 0; k < recs.size(); ++k) {
      const MixtureRunRecord& r = recs[k];
      if (!r.ok) {
        ++failed;
        std::fprintf(stderr, "%s: seed %llu failed: %s\n", name, static_cast<unsigned long long>(runs[k].seed),
                     r.error.c_str());
        continue;
      }
      modes.push_back(static_cast<double>(r.modes_covered));
      hq.push_back(100.0 * r.high_quality_share);
      if (std::isfinite(r.kl_uniform)) kl.push_back(r.kl_uniform);
      else ++kl_undefined;
      wall.push_back(r.wall_seconds);
      if (!cfg.quiet)
        std::printf("seed %llu: %lld/%lld modes, high-quality %.1f%%, KL %.4f, %.1f s\n",
                    static_cast<unsigned long long>(runs[k].seed), static_cast<long long>(r.modes_covered),
                    static_cast<long long>(r.num_modes), 100.0 * r.high_quality_share, r.kl_uniform, r.wall_seconds);
    }
    if (!cfg.quiet && !modes.empty()) {
      const MeanStd m = mean_std(modes), h = mean_std(hq), k = mean_std(kl), w = mean_std(wall);
      std::printf("mean ± std over %lld seeds: modes %.2f ± %.2f, high-quality %.1f ± %.1f%%, KL %.4f ± %.4f%s, "
                  "%.1f ± %.1f s a run\n",
                  static_cast<long long>(m.n), m.mean, m.std, h.mean, h.std, k.mean, k.std,
                  kl_undefined ? (" (undefined for " + std::to_string(kl_undefined) + ")").c_str() : "", w.mean,
                  w.std);
    }
    return failed ? cli::kRuntimeExit : 0;
  } catch (const OutputError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    if (cfg.distributed) dist::abort_job(cli::kUsageExit);
    return cli::kUsageExit;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    if (cfg.distributed) dist::abort_job(cli::kRuntimeExit);
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
