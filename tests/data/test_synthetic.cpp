// Tests for the synthetic 2-D Gaussian mixtures: centre placement, sample statistics and seeding.
#include <gtest/gtest.h>

#include <cmath>

#include "nash/data/synthetic.h"

using nash::data::GaussianMixture2D;

TEST(Synthetic, RingCentres) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  ASSERT_EQ(ring.num_modes(), 8);
  EXPECT_DOUBLE_EQ(ring.std(), 0.02);
  const double pi = std::acos(-1.0);
  for (int k = 0; k < 8; ++k) {
    EXPECT_NEAR(ring.centre_list()[k][0], 2.0 * std::cos(2 * pi * k / 8), 1e-12);
    EXPECT_NEAR(ring.centre_list()[k][1], 2.0 * std::sin(2 * pi * k / 8), 1e-12);
  }
  nash::Tensor c = ring.centres();
  EXPECT_EQ(c.shape(), (nash::Shape{8, 2}));
  EXPECT_EQ(c.dtype(), nash::DType::Float64);
  EXPECT_NEAR(c.to_vector<double>()[2 * 2 + 1], 2.0, 1e-12);  // mode 2 at angle pi/2
}

TEST(Synthetic, GridCentres) {
  GaussianMixture2D grid = GaussianMixture2D::grid();
  ASSERT_EQ(grid.num_modes(), 25);
  EXPECT_DOUBLE_EQ(grid.std(), 0.05);
  double sx = 0, sy = 0, minx = 1e9, maxx = -1e9;
  for (const auto& c : grid.centre_list()) {
    sx += c[0];
    sy += c[1];
    minx = std::min(minx, c[0]);
    maxx = std::max(maxx, c[0]);
    EXPECT_NEAR(std::fmod(c[0] + 4.0, 2.0), 0.0, 1e-12);
  }
  EXPECT_NEAR(sx, 0.0, 1e-12);
  EXPECT_NEAR(sy, 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(minx, -4.0);
  EXPECT_DOUBLE_EQ(maxx, 4.0);
}

// Samples sit near their labelled mode with the right spread, and the modes are drawn about equally.
TEST(Synthetic, RingSampleStatistics) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  nash::Generator gen(7);
  std::vector<int64_t> modes;
  const int64_t n = 16000;
  nash::Tensor x = ring.sample(n, &modes, &gen, nash::DType::Float64);
  ASSERT_EQ(x.shape(), (nash::Shape{n, 2}));
  std::vector<double> v = x.to_vector<double>();
  std::vector<int64_t> count(8, 0);
  double sq = 0, mean_dx = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_GE(modes[i], 0);
    ASSERT_LT(modes[i], 8);
    ++count[modes[i]];
    double dx = v[2 * i] - ring.centre_list()[modes[i]][0], dy = v[2 * i + 1] - ring.centre_list()[modes[i]][1];
    sq += dx * dx + dy * dy;
    mean_dx += dx;
  }
  EXPECT_NEAR(std::sqrt(sq / (2.0 * n)), 0.02, 0.001);  // per-axis std
  EXPECT_NEAR(mean_dx / n, 0.0, 0.001);
  for (int64_t c : count) EXPECT_NEAR(static_cast<double>(c), n / 8.0, 5 * std::sqrt(n / 8.0));
}

TEST(Synthetic, GridSamplesNearTheirModes) {
  GaussianMixture2D grid = GaussianMixture2D::grid();
  nash::Generator gen(3);
  std::vector<int64_t> modes;
  nash::Tensor x = grid.sample(5000, &modes, &gen);
  EXPECT_EQ(x.dtype(), nash::DType::Float32);
  std::vector<float> v = x.to_vector<float>();
  std::vector<int64_t> count(25, 0);
  for (int64_t i = 0; i < 5000; ++i) {
    const auto& c = grid.centre_list()[modes[i]];
    EXPECT_LT(std::hypot(v[2 * i] - c[0], v[2 * i + 1] - c[1]), 0.05 * 6);
    ++count[modes[i]];
  }
  for (int64_t c : count) EXPECT_GT(c, 0);
}

TEST(Synthetic, SeededAndAdvancing) {
  GaussianMixture2D ring = GaussianMixture2D::ring();
  nash::Generator a(11), b(11);
  std::vector<float> xa = ring.sample(64, &a).to_vector<float>();
  std::vector<float> xb = ring.sample(64, &b).to_vector<float>();
  EXPECT_EQ(xa, xb);
  std::vector<float> xa2 = ring.sample(64, &a).to_vector<float>();
  EXPECT_NE(xa, xa2);  // the generator advanced

  nash::manual_seed(5);
  std::vector<float> d1 = ring.sample(32).to_vector<float>();
  nash::manual_seed(5);
  std::vector<float> d2 = ring.sample(32).to_vector<float>();
  EXPECT_EQ(d1, d2);
}

TEST(Synthetic, BadArguments) {
  EXPECT_THROW(GaussianMixture2D::ring(0), nash::Error);
  EXPECT_THROW(GaussianMixture2D::ring(8, -1.0), nash::Error);
  EXPECT_THROW(GaussianMixture2D::grid(5, 2.0, -0.1), nash::Error);
  EXPECT_THROW(GaussianMixture2D({}, 0.1), nash::Error);
  EXPECT_THROW(GaussianMixture2D::ring().sample(0), nash::Error);
}
