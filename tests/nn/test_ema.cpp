// nn::WeightEma: the averaging rule against a float64 reference, the warm-up schedule, buffers copied or averaged,
// the checks on the two modules (the CUDA backends: tests/emu/test_ema_device.cpp).
#include <cmath>
#include <vector>

#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

std::shared_ptr<nn::Sequential> small_net(int64_t hidden = 4) {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(3, hidden), std::make_shared<nn::BatchNorm1d>(hidden),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(hidden, 2)});
}

std::vector<double> flat(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<double> out;
  for (const auto& p : named) {
    std::vector<double> v = p.second.to(Device::cpu()).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Moves the model's parameters by one SGD step on a random regression batch (and its batch norm's running stats by
// the forward pass).
void train_step(nn::Module& net, uint64_t seed, Device dev = Device::cpu()) {
  Generator g(seed);
  Tensor x = randn({8, 3}, DType::Float32, Device::cpu(), &g).to(dev);
  Tensor y = randn({8, 2}, DType::Float32, Device::cpu(), &g).to(dev);
  net.zero_grad();
  mse_loss(net.forward(x), y).backward();
  NoGradGuard ng;
  for (auto& p : net.parameters()) p.add_(p.grad(), -0.5);
}

}  // namespace

TEST(WeightEma, StartsAsACopyAndFollowsTheAveragingRule) {
  manual_seed(1);
  auto model = small_net();
  auto avg = small_net();  // different initial weights
  ASSERT_NE(flat(model->named_parameters()), flat(avg->named_parameters()));
  nn::EmaOptions o;
  o.decay = 0.9;
  o.warmup = false;
  nn::WeightEma ema(model, avg, o);
  EXPECT_EQ(flat(avg->named_parameters()), flat(model->named_parameters()));
  for (auto& p : avg->parameters()) EXPECT_FALSE(p.requires_grad());

  std::vector<double> ref = flat(model->named_parameters());
  for (int step = 0; step < 5; ++step) {
    train_step(*model, 10 + step);
    ema.update();
    const std::vector<double> m = flat(model->named_parameters());
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = 0.9 * ref[i] + 0.1 * m[i];
    const std::vector<double> a = flat(avg->named_parameters());
    ASSERT_EQ(a.size(), ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(a[i], ref[i], 1e-6 + 1e-6 * std::fabs(ref[i])) << i;
    EXPECT_NE(a, m);  // an average, not a copy
  }
  EXPECT_EQ(ema.updates(), 5);
  // Buffers (batch norm's running statistics) are copied by default.
  EXPECT_EQ(flat(avg->named_buffers()), flat(model->named_buffers()));
  ema.reset();
  EXPECT_EQ(flat(avg->named_parameters()), flat(model->named_parameters()));
  EXPECT_EQ(ema.updates(), 5);
}

TEST(WeightEma, WarmupFollowsTheModelEarlyAndReachesTheDecay) {
  auto model = small_net(), avg = small_net();
  nn::EmaOptions o;
  o.decay = 0.99;
  nn::WeightEma ema(model, avg, o);
  EXPECT_DOUBLE_EQ(ema.decay_at(0), 0.1);
  EXPECT_DOUBLE_EQ(ema.decay_at(10), 11.0 / 20.0);
  EXPECT_DOUBLE_EQ(ema.decay_at(890), 0.99);  // (1 + t) / (10 + t) passes 0.99 at t = 891
  EXPECT_DOUBLE_EQ(ema.decay_at(100000), 0.99);
  o.warmup = false;
  nn::WeightEma flat_decay(model, avg, o);
  EXPECT_DOUBLE_EQ(flat_decay.decay_at(0), 0.99);
  // The first warm-up update weighs the model 0.9.
  const std::vector<double> before = flat(avg->named_parameters());
  train_step(*model, 3);
  ema.update();
  const std::vector<double> m = flat(model->named_parameters()), a = flat(avg->named_parameters());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], 0.1 * before[i] + 0.9 * m[i], 1e-6) << i;
}

TEST(WeightEma, BuffersCanBeAveraged) {
  auto model = small_net(), avg = small_net();
  nn::EmaOptions o;
  o.decay = 0.5;
  o.warmup = false;
  o.buffers = nn::EmaBuffers::Average;
  nn::WeightEma ema(model, avg, o);
  const std::vector<double> b0 = flat(model->named_buffers());
  train_step(*model, 4);  // the forward pass moves the running statistics
  const std::vector<double> b1 = flat(model->named_buffers());
  ASSERT_NE(b0, b1);
  ema.update();
  const std::vector<double> a = flat(avg->named_buffers());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], 0.5 * b0[i] + 0.5 * b1[i], 1e-6) << i;
}

TEST(WeightEma, RejectsModulesThatDoNotMatch) {
  auto model = small_net();
  expect_error([&] { nn::WeightEma(model, small_net(5)); }, {"WeightEma", "shape", "[5, 3]", "[4, 3]"});
  expect_error([&] { nn::WeightEma(model, model); }, {"second module"});
  auto other = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(4, 2)});
  expect_error([&] { nn::WeightEma(model, other); }, {"WeightEma", "parameters"});
  auto dbl = small_net();
  dbl->to(DType::Float64);
  expect_error([&] { nn::WeightEma(model, dbl); }, {"float64", "float32"});
  nn::EmaOptions o;
  o.decay = 1.0;
  expect_error([&] { nn::WeightEma(model, small_net(), o); }, {"decay", "[0, 1)"});
  o.decay = NAN;
  expect_error([&] { nn::WeightEma(model, small_net(), o); }, {"decay"});
  auto avg = small_net();
  nn::WeightEma ema(model, avg);
  expect_error([&] { ema.set_updates(-1); }, {"set_updates", "-1"});
  // A mismatch that appears later (the average moved, the model not) is caught by update(), which changes nothing.
  avg->to(DType::Float64);
  const std::vector<double> before = flat(avg->named_parameters());
  expect_error([&] { ema.update(); }, {"update", "float32", "float64"});
  EXPECT_EQ(flat(avg->named_parameters()), before);
  EXPECT_EQ(ema.updates(), 0);
}
