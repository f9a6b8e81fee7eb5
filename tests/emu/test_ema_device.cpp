// nn::WeightEma on the CUDA backends (emulated always, a real GPU when one answers): the same updates as on the CPU,
// and the multi-tensor lerp it runs.
#include <cmath>
#include <vector>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;

namespace {

class WeightEmaDevice : public nash_test::DeviceTest {};

std::vector<double> values(const nn::Module& m) {
  std::vector<double> out;
  for (const auto& p : m.parameters()) {
    std::vector<double> v = p.to(Device::cpu()).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

TEST_P(WeightEmaDevice, MatchesTheCpu) {
  auto make = [] { return std::make_shared<nn::Linear>(5, 3); };
  manual_seed(7);
  auto cpu_model = make(), cpu_avg = make();
  manual_seed(7);
  auto dev_model = make(), dev_avg = make();
  dev_model->to(device_);
  dev_avg->to(device_);
  nn::EmaOptions o;
  o.decay = 0.8;
  nn::WeightEma a(cpu_model, cpu_avg, o), b(dev_model, dev_avg, o);
  for (int step = 0; step < 3; ++step) {
    // The same parameter change on both: w <- w * 0.5 + step.
    for (auto* m : {cpu_model.get(), dev_model.get()}) {
      NoGradGuard ng;
      for (auto& p : m->parameters()) p.mul_(0.5).add_(full(p.shape(), step + 1.0, p.dtype(), p.device()));
    }
    a.update();
    b.update();
  }
  const std::vector<double> x = values(*cpu_avg), y = values(*dev_avg);
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], 1e-6 + 1e-6 * std::fabs(x[i])) << i;
  EXPECT_NE(x, values(*cpu_model));
}

// The one-launch update itself: tensors of odd sizes, one spanning several of the kernel's 4096-element blocks, one
// empty, against the CPU.
TEST_P(WeightEmaDevice, ForeachLerpMatchesTheCpu) {
  std::vector<Tensor> dc, sc, dd, sd;
  uint64_t seed = 30;
  for (int64_t n : {1, 7, 4096 * 2 + 5, 0, 130}) {
    dc.push_back(nash_test::randn32({n}, seed++));
    sc.push_back(nash_test::randn32({n}, seed++));
    dd.push_back(dc.back().to(device_));
    sd.push_back(sc.back().to(device_));
  }
  foreach_lerp_(dc, sc, 0.125);
  foreach_lerp_(dd, sd, 0.125);
  for (std::size_t i = 0; i < dc.size(); ++i) nash_test::expect_close(dd[i].to(Device::cpu()), dc[i], 1e-6, 1e-6);
}

NASH_INSTANTIATE_DEVICE_TEST(WeightEmaDevice);
