// metrics::manifold_scores / knn_radii: every score against a brute-force float64 reference (several blocks of
// rows, both dtypes), the behaviour the papers describe on synthetic sets (matching sets, a dropped mode, a
// shifted set), and the errors for bad feature sets.
#include <algorithm>
#include <cmath>
#include <vector>

#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

using Rows = std::vector<std::vector<double>>;

Rows rows_of(const Tensor& x) {
  const std::vector<double> v = x.contiguous().to_vector<double>();
  const int64_t n = x.size(0), d = x.size(1);
  Rows r(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) r[i].assign(v.begin() + i * d, v.begin() + (i + 1) * d);
  return r;
}

double dist2(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

std::vector<double> radii2(const Rows& x, int64_t k) {
  std::vector<double> r;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::vector<double> d;
    for (std::size_t j = 0; j < x.size(); ++j)
      if (j != i) d.push_back(dist2(x[i], x[j]));
    std::sort(d.begin(), d.end());
    r.push_back(d[static_cast<std::size_t>(k - 1)]);
  }
  return r;
}

metrics::ManifoldScores brute_force(const Tensor& real, const Tensor& fake, int64_t k) {
  const Rows R = rows_of(real), F = rows_of(fake);
  const std::vector<double> rr = radii2(R, k), rf = radii2(F, k);
  metrics::ManifoldScores s;
  int64_t in_real = 0, balls = 0, in_fake = 0, covered = 0;
  for (const auto& f : F) {
    int64_t c = 0;
    for (std::size_t i = 0; i < R.size(); ++i) c += dist2(f, R[i]) <= rr[i];
    in_real += c > 0;
    balls += c;
  }
  for (std::size_t i = 0; i < R.size(); ++i) {
    bool in = false, cov = false;
    for (std::size_t j = 0; j < F.size(); ++j) {
      in = in || dist2(R[i], F[j]) <= rf[j];
      cov = cov || dist2(R[i], F[j]) <= rr[i];
    }
    in_fake += in;
    covered += cov;
  }
  s.precision = double(in_real) / F.size();
  s.recall = double(in_fake) / R.size();
  s.density = double(balls) / (double(k) * F.size());
  s.coverage = double(covered) / R.size();
  return s;
}

Tensor gaussian(int64_t n, int64_t d, uint64_t seed, double shift = 0.0, DType t = DType::Float64) {
  Generator g(seed);
  Tensor x = randn({n, d}, t, Device::cpu(), &g);
  return shift != 0.0 ? x + shift : x;
}

}  // namespace

TEST(ManifoldScores, MatchABruteForceReference) {
  for (DType t : {DType::Float64, DType::Float32})
    for (int64_t k : {1, 3, 5}) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " k " + std::to_string(k));
      const Tensor real = gaussian(70, 6, 1, 0.0, t), fake = gaussian(50, 6, 2, 0.4, t);
      const metrics::ManifoldScores got = metrics::manifold_scores(real, fake, k), want = brute_force(real, fake, k);
      EXPECT_EQ(got.k, k);
      EXPECT_EQ(got.n_real, 70);
      EXPECT_EQ(got.n_fake, 50);
      // float32 inner products may move a sample across a ball's boundary; float64 ones never do here.
      const double tol = t == DType::Float64 ? 1e-12 : 0.03;
      EXPECT_NEAR(got.precision, want.precision, tol);
      EXPECT_NEAR(got.recall, want.recall, tol);
      EXPECT_NEAR(got.density, want.density, tol);
      EXPECT_NEAR(got.coverage, want.coverage, tol);
      const std::vector<double> r = metrics::knn_radii(real, k), w = radii2(rows_of(real), k);
      ASSERT_EQ(r.size(), w.size());
      for (std::size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(r[i], std::sqrt(w[i]), t == DType::Float64 ? 1e-9 : 1e-4);
    }
}

// Large enough sets run in several blocks of rows (the block holds 4M inner products).
TEST(ManifoldScores, BlocksOfRowsGiveTheSameScores) {
  const Tensor real = gaussian(2100, 3, 3), fake = gaussian(2050, 3, 4, 0.3);
  const metrics::ManifoldScores got = metrics::manifold_scores(real, fake, 3);
  const metrics::ManifoldScores full = brute_force(real, fake, 3);
  EXPECT_DOUBLE_EQ(got.precision, full.precision);
  EXPECT_DOUBLE_EQ(got.recall, full.recall);
  EXPECT_DOUBLE_EQ(got.coverage, full.coverage);
  EXPECT_DOUBLE_EQ(got.density, full.density);
}

TEST(ManifoldScores, SeparateQualityFromDiversity) {
  // Matching sets: every score near its ideal.
  const Tensor real = gaussian(1000, 4, 5);
  const metrics::ManifoldScores same = metrics::manifold_scores(real, gaussian(1000, 4, 6), 5);
  EXPECT_GT(same.precision, 0.9);
  EXPECT_GT(same.recall, 0.9);
  EXPECT_GT(same.coverage, 0.9);
  EXPECT_NEAR(same.density, 1.0, 0.15);
  // Real: two far modes; fake: only one of them. Precision stays, recall and coverage halve.
  const Tensor two = cat({gaussian(500, 4, 7, -10.0), gaussian(500, 4, 8, 10.0)}, 0);
  const metrics::ManifoldScores dropped = metrics::manifold_scores(two, gaussian(1000, 4, 9, 10.0), 5);
  EXPECT_GT(dropped.precision, 0.9);
  EXPECT_GT(dropped.recall, 0.4);
  EXPECT_LT(dropped.recall, 0.55);
  EXPECT_LT(dropped.coverage, 0.55);
  EXPECT_GT(dropped.coverage, 0.4);
  // Fakes far off the real data: nothing is inside anything.
  const metrics::ManifoldScores off = metrics::manifold_scores(real, gaussian(1000, 4, 10, 20.0), 5);
  EXPECT_EQ(off.precision, 0.0);
  EXPECT_EQ(off.recall, 0.0);
  EXPECT_EQ(off.coverage, 0.0);
  EXPECT_EQ(off.density, 0.0);
  // The balls are computed once per real set and reused.
  metrics::RealManifold m(real, 5);
  EXPECT_EQ(m.size(), 1000);
  EXPECT_DOUBLE_EQ(m.score(gaussian(1000, 4, 6)).recall, same.recall);
}

TEST(ManifoldScores, BadFeatureSetsAreNamed) {
  const Tensor real = gaussian(10, 3, 1);
  expect_error([&] { metrics::manifold_scores(real, gaussian(10, 4, 2), 3); }, {"4 dimensions", "3"});
  expect_error([&] { metrics::manifold_scores(real, gaussian(10, 3, 2, 0.0, DType::Float32), 3); },
               {"float32", "float64"});
  expect_error([&] { metrics::manifold_scores(real, gaussian(3, 3, 2), 3); }, {"3 fake samples", "k = 3"});
  expect_error([&] { metrics::manifold_scores(real, real, 0); }, {"k must be >= 1"});
  expect_error([&] { metrics::manifold_scores(real.reshape({30}), real, 3); }, {"(N, d)", "[30]"});
  Tensor bad = real.clone();
  bad.fill_(NAN);
  expect_error([&] { metrics::manifold_scores(real, bad, 3); }, {"fake", "non-finite", "row 0"});
  expect_error([&] { metrics::knn_radii(real, 10); }, {"knn_radii", "10"});
}
