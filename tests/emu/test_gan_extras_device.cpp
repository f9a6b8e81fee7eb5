// Class-conditional G, the projection D and DiffAugment on the CUDA backends (emulated always, a real GPU when one answers): the
// same scores and gradients as on the CPU, labels given on the host.
#include <cmath>
#include <vector>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;

namespace {

class ConditionalDevice : public nash_test::DeviceTest {};

std::vector<double> grads(const nn::Module& m) {
  std::vector<double> out;
  for (const auto& p : m.parameters()) {
    EXPECT_TRUE(p.grad().defined());
    std::vector<double> v = p.grad().to(Device::cpu()).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

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
  auto [gc, dc] = make();
  auto [gd, dd] = make();
  gd->to(device_);
  dd->to(device_);
  const Tensor z = nash_test::randn32({3, 4}, 2);
  const Tensor y = from_vector(std::vector<float>{7, 0, 3}, {3});
  const Tensor sc = dc->forward(gc->forward(z, y), y);
  const Tensor sd = dd->forward(gd->forward(z.to(device_), y), y);
  EXPECT_LT(nash_test::rel_error(sd.to(Device::cpu()), sc), 1e-4);
  sum(sc).backward();
  sum(sd).backward();
  const std::vector<double> a = grads(*gc), b = grads(*gd), c = grads(*dc), d = grads(*dd);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(c.size(), d.size());
  double ga = 0, gd_err = 0, da = 0, dd_err = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ga += a[i] * a[i], gd_err += (a[i] - b[i]) * (a[i] - b[i]);
  for (std::size_t i = 0; i < c.size(); ++i) da += c[i] * c[i], dd_err += (c[i] - d[i]) * (c[i] - d[i]);
  EXPECT_GT(ga, 0);
  EXPECT_LT(std::sqrt(gd_err / ga), 1e-4) << "G's gradients";
  EXPECT_LT(std::sqrt(dd_err / da), 1e-4) << "D's gradients";
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
