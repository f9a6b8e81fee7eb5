// nn::WeightEma on the CUDA backends (emulated always, a real GPU when one answers): the same updates as on the CPU.
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

NASH_INSTANTIATE_DEVICE_TEST(WeightEmaDevice);
