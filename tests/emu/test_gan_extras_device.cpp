// Class-conditional G, the projection D and DiffAugment on the CUDA backends (emulated always, a real GPU when one answers): the
// same scores and gradients as on the CPU, labels given on the host.
#include <cmath>
#include <vector>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;
using nash_test::parameter_grads;
using nash_test::relative_error;

namespace {

class ConditionalDevice : public nash_test::DeviceTest {};

}  // namespace

TEST_P(ConditionalDevice, GeneratorAndProjectionDiscriminatorMatchTheCpu) {
  nn::DcganOptions o;
  o.z_dim = 4;
  o.width = 2;
  auto make = [&] {
    manual_seed(11);
    auto g = std::make_shared<nn::ConditionalGenerator>(o, 10);
    auto d = std::make_shared<nn::ProjectionDiscriminator>(nn::sngan_discriminator(o), 10, true);
    return std::make_pair(g, d);
  };
  auto [gc, dc, gd, dd] = nash_test::twin_pairs(make, device_);
  const Tensor z = nash_test::randn32({3, 4}, 2);
  const Tensor y = from_vector(std::vector<float>{7, 0, 3}, {3});
  const Tensor sc = dc->forward(gc->forward(z, y), y);
  const Tensor sd = dd->forward(gd->forward(z.to(device_), y), y);
  nash_test::expect_scores_and_grads_match(sc, sd, *gc, *dc, *gd, *dd);
}

// DiffAugment's ops (per-image adds and products, means, batched shift products) on the device: the CPU's images.
TEST_P(ConditionalDevice, DiffAugmentMatchesTheCpu) {
  const Tensor x = nash_test::randn32({4, 2, 16, 16}, 3);
  Generator a(6), b(6);
  const Tensor c = nn::diff_augment(x, {}, &a), d = nn::diff_augment(x.to(device_), {}, &b);
  EXPECT_EQ(d.device(), device_);
  EXPECT_LT(nash_test::rel_error(d.to(Device::cpu()), c), 1e-6);
}

NASH_INSTANTIATE_DEVICE_TEST(ConditionalDevice);
