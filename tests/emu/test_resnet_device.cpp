// The residual G and critic on the CUDA backends (emulated always, a real GPU when one answers): the CPU's images,
// scores and gradients (also of the class-conditional pair), and the critic's gradient penalty (a double backward
// through its blocks).
#include <cmath>
#include <vector>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;
using nash_test::parameter_grads;
using nash_test::relative_error;

namespace {

class ResNetDevice : public nash_test::DeviceTest {};

// Width 4 and a 4-dimensional latent: every block kind at 32 pixels, cheap enough to emulate.
nn::ResNetOptions tiny() {
  nn::ResNetOptions o;
  o.z_dim = 4;
  o.width = 4;
  return o;
}

}  // namespace

TEST_P(ResNetDevice, GeneratorAndCriticMatchTheCpu) {
  const nn::ResNetOptions o = tiny();
  auto make = [&] {
    manual_seed(21);
    auto g = nn::resnet_generator(o);
    auto d = nn::resnet_discriminator(o, nn::DNorm::Spectral);
    return std::make_pair(g, d);
  };
  auto [gc, dc, gd, dd] = nash_test::twin_pairs(make, device_);
  const Tensor z = nash_test::randn32({3, 4}, 2);
  const Tensor xc = gc->forward(z), xd = gd->forward(z.to(device_));
  EXPECT_LT(nash_test::rel_error(xd.to(Device::cpu()), xc), 1e-4);
  const Tensor sc = dc->forward(xc), sd = dd->forward(xd);
  nash_test::expect_scores_and_grads_match(sc, sd, *gc, *dc, *gd, *dd);
}

TEST_P(ResNetDevice, ConditionalGeneratorAndProjectionCriticMatchTheCpu) {
  const nn::ResNetOptions o = tiny();
  auto make = [&] {
    manual_seed(23);
    auto g = std::make_shared<nn::ConditionalResNetGenerator>(o, 3);
    auto d = std::make_shared<nn::ProjectionDiscriminator>(nn::resnet_discriminator(o, nn::DNorm::Spectral), 3, true);
    return std::make_pair(g, d);
  };
  auto [gc, dc, gd, dd] = nash_test::twin_pairs(make, device_);
  const Tensor z = nash_test::randn32({3, 4}, 5);
  const Tensor y = from_vector(std::vector<float>{2, 0, 1}, {3});
  const Tensor xc = gc->forward(z, y), xd = gd->forward(z.to(device_), y.to(device_));
  EXPECT_LT(nash_test::rel_error(xd.to(Device::cpu()), xc), 1e-4);
  const Tensor sc = dc->forward(xc, y), sd = dd->forward(xd, y.to(device_));
  nash_test::expect_scores_and_grads_match(sc, sd, *gc, *dc, *gd, *dd);
}

TEST_P(ResNetDevice, CriticGradientPenaltyMatchesTheCpu) {
  nn::ResNetOptions o;
  o.width = 4;
  auto make = [&] {
    manual_seed(22);
    return nn::resnet_discriminator(o);
  };
  auto dc = make();
  auto dd = make();
  dd->to(device_);
  const Tensor real = nash_test::randn32({2, 1, 32, 32}, 3), fake = nash_test::randn32({2, 1, 32, 32}, 4);
  const Tensor eps = from_vector(std::vector<float>{0.25f, 0.75f}, {2, 1, 1, 1});
  const Tensor pc = nn::gradient_penalty([&](const Tensor& x) { return dc->forward(x); }, real, fake, eps, 10.0);
  const Tensor pd = nn::gradient_penalty([&](const Tensor& x) { return dd->forward(x); }, real.to(device_),
                                         fake.to(device_), eps.to(device_), 10.0);
  EXPECT_LT(nash_test::rel_error(pd.to(Device::cpu()), pc), 1e-4);
  pc.backward();
  pd.backward();
  // The penalty leaves the biases without a gradient (they only move D's ReLU masks, a zero derivative).
  EXPECT_LT(relative_error(parameter_grads(*dd, false), parameter_grads(*dc, false)), 1e-3)
      << "the penalty's gradients";
}

NASH_INSTANTIATE_DEVICE_TEST(ResNetDevice);
