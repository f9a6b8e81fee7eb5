// Learning-rate schedules: the factor sequences, their application to every group's base lr, and their errors.
#include <cmath>

#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {
std::vector<double> factors(const optim::LRSchedule& s, int n) {
  std::vector<double> f;
  for (int t = 0; t < n; ++t) f.push_back(s.factor(t));
  return f;
}
}  // namespace

TEST(Schedule, FactorSequences) {
  EXPECT_EQ(factors(optim::ConstantLR(), 3), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(factors(optim::LinearDecayLR(4), 7), (std::vector<double>{1, 0.75, 0.5, 0.25, 0, 0, 0}));
  EXPECT_EQ(factors(optim::StepLR(2, 0.5), 7), (std::vector<double>{1, 1, 0.5, 0.5, 0.25, 0.25, 0.125}));
  expect_error([] { optim::LinearDecayLR(0); }, {"LinearDecayLR", "total_steps"});
  expect_error([] { optim::StepLR(0, 0.5); }, {"StepLR", "step_size"});
  expect_error([] { optim::StepLR(3, -1.0); }, {"StepLR", "gamma"});
}

TEST(Schedule, StepSetsEveryGroupToItsBaseTimesTheFactor) {
  Tensor a = from_vector(std::vector<double>{1, 2}, {2}).requires_grad_();
  Tensor b = from_vector(std::vector<double>{3}, {1}).requires_grad_();
  optim::SGD opt(std::vector<optim::ParamGroup>{{{a}, 0.1, "a", {}}, {{b}, 0.3, "b", {}}});
  optim::LinearDecayLR sched(4);
  std::vector<std::pair<double, double>> seen;
  for (int t = 0; t < 5; ++t) {
    sched.step(opt);
    seen.emplace_back(opt.lr(0), opt.lr(1));
  }
  ASSERT_EQ(sched.steps(), 5);
  const double f[] = {1, 0.75, 0.5, 0.25, 0};
  for (int t = 0; t < 5; ++t) {
    EXPECT_DOUBLE_EQ(seen[t].first, 0.1 * f[t]) << t;
    EXPECT_DOUBLE_EQ(seen[t].second, 0.3 * f[t]) << t;
  }
  EXPECT_EQ(sched.base_lrs(), (std::vector<double>{0.1, 0.3}));
  optim::SGD other({a});
  expect_error([&] { sched.step(other); }, {"LRSchedule.step", "another optimizer"});
  opt.set_lr(1, 0.6);  // e.g. a loaded calibration
  sched.rebase(opt);
  EXPECT_EQ(sched.base_lrs()[1], 0.6);
  EXPECT_EQ(sched.steps(), 5);
}

// The scheduled lr is the one the next step uses: an nSGDA step's norm follows StepLR exactly.
TEST(Schedule, NsgdaStepNormsFollowTheSchedule) {
  Tensor p = from_vector(std::vector<double>{0.5, -1, 2}, {3}).requires_grad_();
  optim::NSGDA opt({p}, {0.2});
  optim::StepLR sched(1, 0.5);
  for (int t = 0; t < 4; ++t) {
    std::vector<double> before = p.to_vector<double>();
    p.set_grad(from_vector(std::vector<double>{0.3, 0.1 * t, -0.2}, {3}));
    sched.step(opt);
    opt.step();
    std::vector<double> after = p.to_vector<double>();
    double n = 0;
    for (int i = 0; i < 3; ++i) n += (after[i] - before[i]) * (after[i] - before[i]);
    EXPECT_NEAR(std::sqrt(n), 0.2 * std::pow(0.5, t), 1e-15) << t;
  }
}
