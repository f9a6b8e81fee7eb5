// foreach_lerp_: every pair against the formula in float64 (sources with odd sizes, a transposed one, an empty pair,
// float32 sizes on both sides of the kernels' chunks), version bumps, and errors that name the bad pair.
#include <cmath>

#include "nash/nash.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;

TEST(ForeachLerp, EveryPairMovesTowardsItsSourceByTheWeight) {
  Generator g(3);
  const std::vector<Shape> shapes = {{5}, {3, 7}, {0}, {2, 3, 4}};
  std::vector<Tensor> dst, src, before;
  for (const Shape& s : shapes) {
    dst.push_back(randn(s, DType::Float64, Device::cpu(), &g));
    src.push_back(randn(s, DType::Float64, Device::cpu(), &g));
    before.push_back(dst.back().clone());
  }
  src[1] = randn({7, 3}, DType::Float64, Device::cpu(), &g).transpose(0, 1);  // not contiguous
  const uint64_t v0 = dst[0].impl()->storage->version();
  foreach_lerp_(dst, src, 0.3);
  for (std::size_t i = 0; i < dst.size(); ++i) {
    const std::vector<double> d = dst[i].to_vector<double>(), b = before[i].to_vector<double>(),
                              s = src[i].contiguous().to_vector<double>();
    ASSERT_EQ(d.size(), b.size());
    for (std::size_t k = 0; k < d.size(); ++k) EXPECT_NEAR(d[k], b[k] + 0.3 * (s[k] - b[k]), 1e-15) << i << " " << k;
  }
  EXPECT_GT(dst[0].impl()->storage->version(), v0);
  // Weight 1 copies the source, weight 0 keeps the destination.
  foreach_lerp_(dst, src, 1.0);
  nash_test::expect_close(dst[3], src[3], 1e-15, 0);
  const Tensor kept = dst[3].clone();
  foreach_lerp_(dst, src, 0.0);
  nash_test::expect_close(dst[3], kept, 0, 0);

  // float32 tensors longer than one chunk of the CPU kernel (16,384) and shorter than one vector.
  auto f32 = [&](int64_t n) { return randn({n}, DType::Float32, Device::cpu(), &g); };
  std::vector<Tensor> a{f32(40000), f32(3)};
  std::vector<Tensor> b{f32(40000), f32(3)};
  const Tensor a0 = a[0].clone(), a1 = a[1].clone();
  foreach_lerp_(a, b, 0.001);
  nash_test::expect_close(a[0], add(a0, mul(sub(b[0], a0), 0.001)), 1e-6, 1e-6);
  nash_test::expect_close(a[1], add(a1, mul(sub(b[1], a1), 0.001)), 1e-6, 1e-6);
}

TEST(ForeachLerp, BadPairsAreRefusedByName) {
  const Tensor x = zeros({3}), y = ones({3});
  expect_error([&] { foreach_lerp_({x}, {y, y}, 0.5); }, {"foreach_lerp_", "1 destinations", "2 sources"});
  expect_error([&] { foreach_lerp_({x}, {ones({4})}, 0.5); }, {"pair 0", "[3]", "[4]"});
  expect_error([&] { foreach_lerp_({x, x.clone()}, {y, Tensor()}, 0.5); }, {"pair 1", "undefined"});
  expect_error([&] { foreach_lerp_({x}, {ones({3}, DType::Float64)}, 0.5); }, {"foreach_lerp_", "float64"});
  expect_error([&] { foreach_lerp_({x}, {y}, std::nan("")); }, {"weight", "finite"});
  expect_error([&] { foreach_lerp_({zeros({2, 3}).transpose(0, 1)}, {ones({3, 2})}, 0.5); }, {"destination 0",
                                                                                          "contiguous"});
  Tensor leaf = zeros({3});
  leaf.requires_grad_(true);
  expect_error([&] { foreach_lerp_({leaf}, {y}, 0.5); }, {"destination 0", "requires grad"});
  expect_error([&] { foreach_lerp_({x}, {x.reshape({3})}, 0.5); }, {"pair 0", "share memory"});
  expect_error([&] { foreach_lerp_({x, x.reshape({1, 3})}, {y, ones({1, 3})}, 0.5); }, {"destinations 0 and 1"});
  nash_test::expect_values(x, {0, 0, 0}, 0.0);  // nothing was written by a refused call
}
