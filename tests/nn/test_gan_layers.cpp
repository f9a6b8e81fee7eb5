// PixelNorm, MinibatchStdDev, ScaledLeakyReLU, Upsample (and the existing Tanh) against plain-loop references, with
// gradcheck and gradgradcheck in float64.
#include <cmath>

#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::expect_values;
using nash_test::leaf64;

namespace {

// MinibatchStdDev by hand: sample i shares its group with every j such that j ≡ i (mod n / g).
std::vector<double> naive_mbstd(const Tensor& x, int64_t g, double eps) {
  std::vector<double> v = x.to_vector<double>();
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), m = n / g;
  std::vector<double> stat(static_cast<std::size_t>(m), 0.0);
  for (int64_t mi = 0; mi < m; ++mi) {
    double acc = 0;
    for (int64_t f = 0; f < c * hw; ++f) {
      double mu = 0, var = 0;
      for (int64_t gi = 0; gi < g; ++gi) mu += v[(gi * m + mi) * c * hw + f];
      mu /= static_cast<double>(g);
      for (int64_t gi = 0; gi < g; ++gi) var += std::pow(v[(gi * m + mi) * c * hw + f] - mu, 2);
      acc += std::sqrt(var / static_cast<double>(g) + eps);
    }
    stat[mi] = acc / static_cast<double>(c * hw);
  }
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t f = 0; f < c * hw; ++f) out.push_back(v[i * c * hw + f]);
    for (int64_t p = 0; p < hw; ++p) out.push_back(stat[i % m]);
  }
  return out;
}

}  // namespace

TEST(GanLayers, PixelNormNormalisesEachPixelsFeatureVector) {
  Tensor x = leaf64({2, 5, 3, 2}, 1);
  std::vector<double> v = x.to_vector<double>(), want(v.size());
  const int64_t c = 5, hw = 6;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t p = 0; p < hw; ++p) {
      double ms = 0;
      for (int64_t k = 0; k < c; ++k) ms += std::pow(v[(n * c + k) * hw + p], 2);
      ms /= static_cast<double>(c);
      for (int64_t k = 0; k < c; ++k) want[(n * c + k) * hw + p] = v[(n * c + k) * hw + p] / std::sqrt(ms + 1e-8);
    }
  nn::PixelNorm pn;
  Tensor y = pn(x);
  expect_values(y, want, 1e-12);
  // Unit RMS over the channels.
  expect_values(mean(square(y), {1}), std::vector<double>(12, 1.0), 1e-6);
  auto f = [](const std::vector<Tensor>& in) { return nn::pixel_norm(in[0]); };
  EXPECT_GRADCHECK(f, {x});
  EXPECT_GRADGRADCHECK(f, {x});
  Tensor x2 = leaf64({3, 4}, 2);
  EXPECT_GRADGRADCHECK(f, {x2});
  expect_error([] { nn::pixel_norm(ones({3})); }, {"pixel_norm", "(N, C)"});
}

TEST(GanLayers, MinibatchStdDevGroupChoice) {
  EXPECT_EQ(nn::minibatch_stddev_group(8, 4), 4);
  EXPECT_EQ(nn::minibatch_stddev_group(6, 4), 3);  // largest divisor of the batch not above the group size
  EXPECT_EQ(nn::minibatch_stddev_group(2, 4), 2);
  EXPECT_EQ(nn::minibatch_stddev_group(7, 4), 1);
  EXPECT_EQ(nn::minibatch_stddev_group(12, 1), 1);
  expect_error([] { nn::minibatch_stddev_group(0, 4); }, {"minibatch_stddev", "positive"});
  expect_error([] { nn::MinibatchStdDev(0); }, {"MinibatchStdDev", "group_size"});
}

TEST(GanLayers, MinibatchStdDevMatchesTheGroupedStatistic) {
  for (int64_t n : {8, 6, 2, 5}) {
    SCOPED_TRACE("batch " + std::to_string(n));
    Tensor x = leaf64({n, 3, 2, 3}, static_cast<uint64_t>(n));
    nn::MinibatchStdDev layer(4);
    Tensor y = layer(x);
    EXPECT_EQ(y.shape(), (Shape{n, 4, 2, 3}));
    expect_values(y, naive_mbstd(x, nn::minibatch_stddev_group(n, 4), 1e-8), 1e-12);
  }
  // (N, C) inputs get one more feature.
  Tensor x2 = leaf64({4, 3}, 9);
  Tensor y2 = nn::minibatch_stddev(x2, 2);
  EXPECT_EQ(y2.shape(), (Shape{4, 4}));
  expect_values(y2, naive_mbstd(x2.reshape({4, 3, 1, 1}), 2, 1e-8), 1e-12);
  expect_error([] { nn::minibatch_stddev(ones({2, 3, 4})); }, {"minibatch_stddev", "(N, C, H, W)"});
}

TEST(GanLayers, MinibatchStdDevGradcheckAndGradgradcheck) {
  Tensor x = leaf64({4, 2, 2, 2}, 3);
  auto f = [](const std::vector<Tensor>& in) { return nn::minibatch_stddev(in[0], 2); };
  EXPECT_GRADCHECK(f, {x});
  EXPECT_GRADGRADCHECK(f, {x});
}

TEST(GanLayers, ScaledLeakyReLUAppliesTheGain) {
  Tensor x = from_vector(std::vector<double>{-2.0, -0.5, 0.0, 1.5}, {4});
  nn::ScaledLeakyReLU act;  // slope 0.2, gain √2
  const double r2 = std::sqrt(2.0);
  expect_values(act(x), {-0.4 * r2, -0.1 * r2, 0.0, 1.5 * r2}, 1e-15);
  nn::ScaledLeakyReLU plain(0.1, 1.0);
  expect_values(plain(x), {-0.2, -0.05, 0.0, 1.5}, 1e-15);
  Tensor xr = leaf64({3, 5}, 4);
  auto f = [&](const std::vector<Tensor>& in) { return act(in[0]); };
  EXPECT_GRADCHECK(f, {xr});
  EXPECT_GRADGRADCHECK(f, {xr});
}

TEST(GanLayers, UpsampleRepeatsEachPixel) {
  Tensor x = leaf64({2, 3, 2, 3}, 5);
  nn::Upsample up(2);
  Tensor y = up(x);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4, 6}));
  std::vector<double> v = x.to_vector<double>(), want;
  for (int64_t nc = 0; nc < 6; ++nc)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t w = 0; w < 6; ++w) want.push_back(v[(nc * 2 + h / 2) * 3 + w / 2]);
  expect_values(y, want, 0.0);
  auto f = [](const std::vector<Tensor>& in) { return nn::Upsample(3)(in[0]); };
  EXPECT_GRADCHECK(f, {x});
  EXPECT_GRADGRADCHECK(f, {x});
  expect_error([] { nn::Upsample(0); }, {"Upsample", "scale"});
  expect_error([] { nn::Upsample(2)(ones({2, 3})); }, {"Upsample", "(N, C, H, W)"});
}

TEST(GanLayers, TanhOutputDifferentiatesTwice) {
  Tensor x = leaf64({2, 3}, 6);
  nn::Tanh t;
  auto f = [&](const std::vector<Tensor>& in) { return t(in[0]); };
  EXPECT_GRADCHECK(f, {x});
  EXPECT_GRADGRADCHECK(f, {x});
}
