// GanTrainer: update counts (n_dis), diagnostics against their definitions, penalties, the CSV log, and the
// measured cost of the diagnostics.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "nash/optim/balanced.h"
#include "nash/optim/gan_trainer.h"
#include "support.h"

using namespace nash;

namespace {
std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out) {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(in, hidden), std::make_shared<nn::LeakyReLU>(0.2),
      std::make_shared<nn::Linear>(hidden, out)});
}
optim::GanTrainer::Sampler real_sampler() {
  return [] { return randn({16, 2}) * 0.3 + 1.0; };
}
optim::GanTrainer::Sampler latent_sampler() {
  return [] { return randn({16, 4}); };
}
}  // namespace

TEST(GanTrainer, DiagnosticsMatchTheirDefinitionsUnderSgd) {
  manual_seed(5);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::SGDOptions so;
  so.lr = 0.05;
  optim::SGD opt_g(g->parameters(), so), opt_d(d->parameters(), so);
  optim::GanTrainerOptions o;
  o.n_dis = 3;
  optim::GanTrainer trainer(g, d, opt_g, opt_d, o);
  optim::StepStats s = trainer.step(real_sampler(), latent_sampler());
  EXPECT_EQ(opt_d.step_count(), 3);
  EXPECT_EQ(opt_g.step_count(), 1);
  // Plain SGD moves by exactly lr * ||g||.
  EXPECT_NEAR(s.update_norm_d, 0.05 * s.grad_norm_d, 1e-6 * (1 + s.grad_norm_d));
  EXPECT_NEAR(s.update_norm_g, 0.05 * s.grad_norm_g, 1e-6 * (1 + s.grad_norm_g));
  EXPECT_NEAR(s.rel_speed_d, 0.05 * s.grad_norm_d / s.param_norm_d, 1e-9);
  EXPECT_NEAR(s.update_ratio, s.update_norm_g / s.update_norm_d, 1e-9);
  EXPECT_NEAR(s.grad_ratio, 2.0, 1e-9);  // both ratios are 1 at the first step
  EXPECT_GT(s.grad_norm_d, 0);
  EXPECT_TRUE(std::isfinite(s.d_loss) && std::isfinite(s.g_loss));
  optim::StepStats s2 = trainer.step(real_sampler(), latent_sampler());
  EXPECT_EQ(s2.step, 2);
  EXPECT_NE(s2.grad_ratio, 2.0);
}

namespace {
// A user-written optimizer: plain SGD through nash ops, with no step norms of its own, so GanTrainer measures it
// with its snapshot passes.
class OpsSgd : public optim::Optimizer {
 public:
  OpsSgd(std::vector<Tensor> params, double lr) : Optimizer(optim::ParamGroup::global(params, ""), lr, "OpsSgd") {}
  void step() override {
    NoGradGuard ng;
    for (Tensor& p : groups_[0].params)
      if (p.grad().defined()) p.copy_(sub(p.detach(), mul(p.grad(), groups_[0].lr)));
    ++steps_;
  }
};
}  // namespace

// The norms the step kernels record and the snapshot passes used for other optimizers agree on the same run.
TEST(GanTrainer, KernelStepNormsMatchTheSnapshotPasses) {
  manual_seed(8);
  auto g1 = mlp(4, 8, 2), d1 = mlp(2, 8, 1);
  manual_seed(8);
  auto g2 = mlp(4, 8, 2), d2 = mlp(2, 8, 1);
  optim::SGD sgd_g(g1->parameters(), {0.05}), sgd_d(d1->parameters(), {0.05});
  OpsSgd ops_g(g2->parameters(), 0.05), ops_d(d2->parameters(), 0.05);
  EXPECT_FALSE(ops_g.can_record_step_norms());
  nash_test::expect_error([&] { ops_g.record_step_norms(true); }, {"OpsSgd", "cannot record"});
  optim::GanTrainerOptions o;
  o.n_dis = 2;
  optim::GanTrainer t1(g1, d1, sgd_g, sgd_d, o), t2(g2, d2, ops_g, ops_d, o);
  for (int step = 0; step < 3; ++step) {
    manual_seed(100 + step);
    optim::StepStats a = t1.step(real_sampler(), latent_sampler());
    manual_seed(100 + step);
    optim::StepStats b = t2.step(real_sampler(), latent_sampler());
    ASSERT_NE(sgd_d.last_step_norms(), nullptr);
    EXPECT_EQ(ops_d.last_step_norms(), nullptr);
    for (auto f : {&optim::StepStats::grad_norm_d, &optim::StepStats::grad_norm_g, &optim::StepStats::update_norm_d,
                   &optim::StepStats::update_norm_g, &optim::StepStats::param_norm_d, &optim::StepStats::param_norm_g}) {
      EXPECT_GT(a.*f, 0);
      EXPECT_NEAR(a.*f, b.*f, 1e-5 * b.*f) << "step " << step;
    }
  }
}

TEST(GanTrainer, WassersteinWithGradientPenaltyAndLog) {
  manual_seed(6);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::AdamOptions ao;
  ao.lr = 1e-3;
  ao.beta1 = 0;
  ao.beta2 = 0.9;
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  std::string path = (std::filesystem::temp_directory_path() / ("nash_trainer_" + std::to_string(::getpid()) + ".csv")).string();
  optim::GanTrainerOptions o;
  o.loss = nn::GanLoss::Wasserstein;
  o.gp_lambda = 10;
  o.n_dis = 2;
  o.log_path = path;
  {
    optim::GanTrainer trainer(g, d, opt_g, opt_d, o);
    for (int i = 0; i < 4; ++i) {
      optim::StepStats s = trainer.step(real_sampler(), latent_sampler());
      EXPECT_GT(s.penalty, 0);
    }
  }
  std::ifstream f(path);
  std::string line;
  int rows = 0;
  std::getline(f, line);
  EXPECT_EQ(line.rfind("step,d_loss,g_loss,penalty", 0), 0u);
  while (std::getline(f, line)) ++rows;
  EXPECT_EQ(rows, 4);
  std::remove(path.c_str());
}

TEST(GanTrainer, LogsPerLayerAdamMagnitudesOfBalancedOptimizers) {
  manual_seed(8);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::AdaGraftOptions ao;
  ao.lr = 1e-3;
  optim::AdaNSGDA opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  std::string path = (std::filesystem::temp_directory_path() / ("nash_layers_" + std::to_string(::getpid()) + ".csv")).string();
  optim::GanTrainerOptions o;
  o.log_path = path;
  optim::StepStats s;
  {
    optim::GanTrainer trainer(g, d, opt_g, opt_d, o);
    for (int i = 0; i < 3; ++i) s = trainer.step(real_sampler(), latent_sampler());
  }
  ASSERT_EQ(s.layer_oracle_norms_d.size(), d->parameters().size());  // layer-wise: one group per tensor
  ASSERT_EQ(s.layer_grad_norms_g.size(), g->parameters().size());
  for (double a : s.layer_oracle_norms_d) EXPECT_GT(a, 0);
  std::ifstream f(path + ".layers.csv");
  std::string line;
  int rows = 0;
  std::getline(f, line);
  EXPECT_EQ(line, "step,player,group,grad_norm,oracle_norm");
  while (std::getline(f, line)) ++rows;
  EXPECT_EQ(rows, 3 * static_cast<int>(g->parameters().size() + d->parameters().size()));
  std::remove(path.c_str());
  std::remove((path + ".layers.csv").c_str());
}

TEST(GanTrainer, BadOptionsAreErrors) {
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::SGD opt_g(g->parameters()), opt_d(d->parameters());
  optim::GanTrainerOptions o;
  o.n_dis = 0;
  nash_test::expect_error([&] { optim::GanTrainer(g, d, opt_g, opt_d, o); }, {"n_dis"});
  o.n_dis = 1;
  o.log_path = "/nonexistent-dir/log.csv";
  nash_test::expect_error([&] { optim::GanTrainer(g, d, opt_g, opt_d, o); }, {"/nonexistent-dir/log.csv"});
}

TEST(GanTrainer, DISABLED_DiagnosticsCostIsReported) {  // run with --gtest_also_run_disabled_tests
  // Not asserted (timings on shared machines are noisy). Two trainers over the same models and optimizers, one
  // with diagnostics and one without, take turns step by step; the medians of their step times are compared.
  manual_seed(7);
  auto g = mlp(64, 512, 256), d = mlp(256, 512, 1);
  optim::Adam opt_g(g->parameters()), opt_d(d->parameters());
  optim::GanTrainerOptions on_opt, off_opt;
  off_opt.diagnostics = false;
  optim::GanTrainer with(g, d, opt_g, opt_d, on_opt), without(g, d, opt_g, opt_d, off_opt);
  auto real = [] { return randn({64, 256}); };
  auto z = [] { return randn({64, 64}); };
  std::vector<double> t_on, t_off;
  for (int i = 0; i < 5; ++i) with.step(real, z), without.step(real, z);
  for (int i = 0; i < 200; ++i) {
    t_on.push_back(with.step(real, z).seconds);
    t_off.push_back(without.step(real, z).seconds);
  }
  std::sort(t_on.begin(), t_on.end());
  std::sort(t_off.begin(), t_off.end());
  double on = t_on[t_on.size() / 2], off = t_off[t_off.size() / 2];
  std::printf("[ trainer  ] median step %.3f ms without diagnostics, %.3f ms with (%+.1f%%)\n", off * 1e3, on * 1e3,
              100 * (on / off - 1));
  // What the diagnostics add to the step itself, less exposed to the machine's noise than whole steps: both
  // players' optimizer steps with and without recorded norms, in alternating pairs (the parameters keep their
  // gradients; each step moves them a little, which does not change the cost).
  std::vector<double> s_on, s_off;
  auto time_steps = [&](bool record) {
    auto t0 = std::chrono::steady_clock::now();
    for (optim::Optimizer* o : {static_cast<optim::Optimizer*>(&opt_d), static_cast<optim::Optimizer*>(&opt_g)}) {
      o->record_step_norms(record);
      o->step();
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0; i < 400; ++i) {
    s_on.push_back(time_steps(true));
    s_off.push_back(time_steps(false));
  }
  std::sort(s_on.begin(), s_on.end());
  std::sort(s_off.begin(), s_off.end());
  const double extra = s_on[s_on.size() / 2] - s_off[s_off.size() / 2];
  std::printf("[ trainer  ] optimizer steps %.1f us without norms, %.1f us with: %+.1f us = %+.2f%% of a step\n",
              s_off[s_off.size() / 2] * 1e6, s_on[s_on.size() / 2] * 1e6, extra * 1e6, 100 * extra / off);
  SUCCEED();
}

namespace {
// Copies of every parameter's values, to compare before and after an update.
std::vector<std::vector<float>> values(const nn::Module& m) {
  std::vector<std::vector<float>> v;
  for (const Tensor& p : m.parameters()) v.push_back(p.contiguous().to_vector<float>());
  return v;
}
// A real batch that is NaN on the calls listed (1-based), finite otherwise.
optim::GanTrainer::Sampler poisoned(std::vector<int> bad_calls) {
  auto calls = std::make_shared<int>(0);
  return [calls, bad_calls] {
    const int k = ++*calls;
    Tensor x = randn({16, 2}) * 0.3 + 1.0;
    if (std::find(bad_calls.begin(), bad_calls.end(), k) != bad_calls.end()) x = x * NAN;
    return x;
  };
}
}  // namespace

TEST(GanTrainer, NonFiniteLossStopsBeforeTheBadUpdateAndNamesIt) {
  manual_seed(3);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::AdamOptions ao;
  ao.lr = 1e-3;
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainer trainer(g, d, opt_g, opt_d);
  const auto real = poisoned({2});
  trainer.step(real, latent_sampler());
  const auto d_before = values(*d), g_before = values(*g);
  try {
    trainer.step(real, latent_sampler());
    FAIL() << "a NaN loss went through";
  } catch (const optim::NonFiniteError& e) {
    EXPECT_EQ(e.step, 2);
    EXPECT_EQ(e.player, 'D');
    const std::string m = e.what();
    EXPECT_NE(m.find("step 2"), std::string::npos) << m;
    EXPECT_NE(m.find("discriminator's loss is NaN"), std::string::npos) << m;
  }
  EXPECT_EQ(values(*d), d_before);  // the bad update was never applied
  EXPECT_EQ(values(*g), g_before);
  EXPECT_EQ(opt_d.step_count(), 1);
}

TEST(GanTrainer, SkipPolicyDropsBadUpdatesCountsThemAndGoesOn) {
  manual_seed(4);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::AdamOptions ao;
  ao.lr = 1e-3;
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainerOptions o;
  o.n_dis = 2;
  o.on_nonfinite = optim::NonFinitePolicy::Skip;
  optim::GanTrainer trainer(g, d, opt_g, opt_d, o);
  const auto real = poisoned({3, 4});  // both D updates of step 2
  trainer.step(real, latent_sampler());
  const auto d_before = values(*d);
  optim::StepStats s = trainer.step(real, latent_sampler());
  EXPECT_EQ(s.skipped_d, 2);
  EXPECT_EQ(s.skipped_g, 0);
  EXPECT_EQ(values(*d), d_before);
  EXPECT_EQ(opt_d.step_count(), 2);  // the two updates of step 1 only
  EXPECT_EQ(opt_g.step_count(), 2);
  s = trainer.step(real, latent_sampler());
  EXPECT_EQ(s.skipped_d, 0);
  EXPECT_EQ(trainer.skipped_updates(), 2);
  EXPECT_EQ(opt_d.step_count(), 4);
  for (const auto& v : values(*d))
    for (float x : v) ASSERT_TRUE(std::isfinite(x));
}

TEST(GanTrainer, SkipPolicyCatchesAnInfiniteGradientBehindAFiniteLoss) {
  manual_seed(6);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::SGDOptions so;
  so.lr = 0.01;
  optim::SGD opt_g(g->parameters(), so), opt_d(d->parameters(), so);
  optim::GanTrainerOptions o;
  o.on_nonfinite = optim::NonFinitePolicy::Skip;
  optim::GanTrainer trainer(g, d, opt_g, opt_d, o);
  // Inputs of 1e30 keep the NS loss finite (it saturates) while D's first-layer gradient overflows.
  const optim::GanTrainer::Sampler huge = [] { return randn({16, 2}) * 1e30f; };
  const auto d_before = values(*d);
  optim::StepStats s = trainer.step(huge, latent_sampler());
  ASSERT_TRUE(std::isfinite(s.d_loss)) << "the test needs a finite loss";
  EXPECT_EQ(s.skipped_d, 1) << "D loss " << s.d_loss << ", grad norm " << s.grad_norm_d;
  EXPECT_EQ(values(*d), d_before);
}

TEST(GanTrainer, RestoreContinuesTheStepCountAndTheGradRatio) {
  manual_seed(8);
  auto g = mlp(4, 8, 2), d = mlp(2, 8, 1);
  optim::SGDOptions so;
  so.lr = 0.01;
  optim::SGD opt_g(g->parameters(), so), opt_d(d->parameters(), so);
  optim::GanTrainer a(g, d, opt_g, opt_d);
  a.step(real_sampler(), latent_sampler());
  optim::GanTrainer b(g, d, opt_g, opt_d);
  b.restore(a.state());
  EXPECT_EQ(b.steps_done(), 1);
  manual_seed(9);
  optim::StepStats sb = b.step(real_sampler(), latent_sampler());
  EXPECT_EQ(sb.step, 2);
  EXPECT_NE(sb.grad_ratio, 2.0);  // measured against step 1's norms, not its own
  optim::GanTrainer::State bad;
  bad.g0 = NAN;
  EXPECT_THROW(b.restore(bad), Error);
}
