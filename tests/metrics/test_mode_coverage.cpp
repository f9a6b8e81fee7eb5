// Tests for mode_coverage on hand-made sample sets with known coverage, quality and KL.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "nash/data/synthetic.h"
#include "nash/core/ops.h"
#include "nash/metrics/mode_coverage.h"

using nash::data::GaussianMixture2D;
using nash::metrics::mode_coverage;

namespace {

// n points: point i sits on mode modes[i % modes.size()] offset by (dx, dy).
nash::Tensor on_modes(const GaussianMixture2D& g, const std::vector<int>& modes, int64_t n, double dx = 0,
                      double dy = 0) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    const auto& c = g.centre_list()[modes[i % modes.size()]];
    v.insert(v.end(), {c[0] + dx, c[1] + dy});
  }
  return nash::from_vector(v, {n, 2});
}

}  // namespace

TEST(ModeCoverage, AllOnOneMode) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  auto r = mode_coverage(on_modes(ring, {3}, 400, 0.01, -0.02), ring.centres(), ring.std());
  EXPECT_EQ(r.num_samples, 400);
  EXPECT_EQ(r.num_modes, 8);
  EXPECT_EQ(r.modes_covered, 1);
  EXPECT_EQ(r.high_quality, 400);
  EXPECT_DOUBLE_EQ(r.high_quality_share, 1.0);
  EXPECT_EQ(r.per_mode, (std::vector<int64_t>{0, 0, 0, 400, 0, 0, 0, 0}));
  EXPECT_NEAR(r.kl_uniform, std::log(8.0), 1e-12);
}

TEST(ModeCoverage, UniformOverModes) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  auto r = mode_coverage(on_modes(ring, {0, 1, 2, 3, 4, 5, 6, 7}, 800), ring.centres(), ring.std());
  EXPECT_EQ(r.modes_covered, 8);
  EXPECT_DOUBLE_EQ(r.high_quality_share, 1.0);
  EXPECT_NEAR(r.kl_uniform, 0.0, 1e-12);
  for (int64_t c : r.per_mode) EXPECT_EQ(c, 100);
}

TEST(ModeCoverage, SampledRingIsFullyCovered) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  nash::Generator gen(1);
  auto r = mode_coverage(ring.sample(4000, &gen), ring.centres(), ring.std());
  EXPECT_EQ(r.modes_covered, 8);
  EXPECT_GT(r.high_quality_share, 0.98);  // a 2-D Gaussian keeps 1 - exp(-4.5) = 98.9% within 3 std
  EXPECT_LT(r.kl_uniform, 0.01);
}

TEST(ModeCoverage, FarAwaySamplesAreNotHighQuality) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  // The origin and points just beyond 3 std of a mode are both low quality.
  std::vector<double> v = {0.0, 0.0, 2.0 + 0.061, 0.0, 100.0, -50.0, 2.0, 0.0601};
  auto r = mode_coverage(nash::from_vector(v, {4, 2}), ring.centres(), ring.std());
  EXPECT_EQ(r.high_quality, 0);
  EXPECT_EQ(r.modes_covered, 0);
  EXPECT_DOUBLE_EQ(r.high_quality_share, 0.0);
  EXPECT_TRUE(std::isinf(r.kl_uniform));
}

TEST(ModeCoverage, OnePercentThreshold) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  // Of 1000 points: 981 on mode 0, 10 on mode 5 (exactly 1%: covered), 9 on mode 6 (0.9%: not covered).
  std::vector<double> v;
  auto put = [&](int m, int n) {
    for (int i = 0; i < n; ++i) v.insert(v.end(), {ring.centre_list()[m][0], ring.centre_list()[m][1]});
  };
  put(0, 981);
  put(5, 10);
  put(6, 9);
  auto r = mode_coverage(nash::from_vector(v, {1000, 2}), ring.centres(), ring.std());
  EXPECT_EQ(r.per_mode[5], 10);
  EXPECT_EQ(r.per_mode[6], 9);
  EXPECT_EQ(r.modes_covered, 2);
  // KL of (0.981, 0.010, 0.009) against uniform over 8, by hand.
  double kl = 0.981 * std::log(0.981 * 8) + 0.010 * std::log(0.010 * 8) + 0.009 * std::log(0.009 * 8);
  EXPECT_NEAR(r.kl_uniform, kl, 1e-12);
}

TEST(ModeCoverage, HalfGoodHalfNoise) {
  GaussianMixture2D grid = GaussianMixture2D::grid();
  nash::Tensor good = on_modes(grid, {0, 6, 12, 18, 24}, 500, 0.1, 0.0);  // 2 std off: high quality
  nash::Tensor bad = on_modes(grid, {0, 6, 12, 18, 24}, 500, 1.0, 1.0);   // between modes
  auto r = mode_coverage(nash::cat({good, bad}, 0), grid.centres(), grid.std());
  EXPECT_EQ(r.high_quality, 500);
  EXPECT_DOUBLE_EQ(r.high_quality_share, 0.5);
  EXPECT_EQ(r.modes_covered, 5);
  EXPECT_NEAR(r.kl_uniform, std::log(5.0), 1e-12);  // uniform over 5 of 25 modes
}

TEST(ModeCoverage, NonFiniteSamplesAreLowQuality) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {nan, 0.0, inf, 2.0, 2.0, 0.0};
  auto r = mode_coverage(nash::from_vector(v, {3, 2}), ring.centres(), ring.std());
  EXPECT_EQ(r.high_quality, 1);
  EXPECT_EQ(r.per_mode[0], 1);
}

TEST(ModeCoverage, BadArguments) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  nash::Tensor c = ring.centres();
  EXPECT_THROW(mode_coverage(nash::zeros({4, 3}), c, 0.02), nash::Error);
  EXPECT_THROW(mode_coverage(nash::zeros({0, 2}), c, 0.02), nash::Error);
  EXPECT_THROW(mode_coverage(nash::ones({4, 2}), nash::zeros({8}), 0.02), nash::Error);
  EXPECT_THROW(mode_coverage(nash::ones({4, 2}), c, 0.0), nash::Error);
  EXPECT_THROW(mode_coverage(nash::ones({4, 2}), c, std::nan("")), nash::Error);
}
