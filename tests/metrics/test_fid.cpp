// Tests for FID: feature statistics against two-pass references, the Jacobi eigensolver, the Fréchet distance
// against closed forms and a brute-force matrix square root, the feature network and its save/load.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "nash/io/safetensors.h"
#include "nash/metrics/fid.h"
#include "support.h"

namespace fs = std::filesystem;
using nash::metrics::FeatureStats;
using Mat = std::vector<double>;

namespace {

Mat randn_mat(int64_t rows, int64_t cols, uint64_t seed) {
  nash::Generator g(seed);
  return nash::randn({rows, cols}, nash::DType::Float64, nash::Device::cpu(), &g).to_vector<double>();
}

Mat mul(const Mat& a, const Mat& b, int64_t n, int64_t k, int64_t m) {  // (n,k) @ (k,m)
  Mat c(static_cast<std::size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < k; ++l)
      for (int64_t j = 0; j < m; ++j) c[i * m + j] += a[i * k + l] * b[l * m + j];
  return c;
}

Mat transpose(const Mat& a, int64_t n, int64_t m) {
  Mat t(a.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) t[j * n + i] = a[i * m + j];
  return t;
}

// A random orthogonal matrix: Gram-Schmidt on a Gaussian one.
Mat orthogonal(int64_t n, uint64_t seed) {
  Mat q = randn_mat(n, n, seed);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double d = 0;
      for (int64_t i = 0; i < n; ++i) d += q[i * n + j] * q[i * n + k];
      for (int64_t i = 0; i < n; ++i) q[i * n + j] -= d * q[i * n + k];
    }
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += q[i * n + j] * q[i * n + j];
    for (int64_t i = 0; i < n; ++i) q[i * n + j] /= std::sqrt(s);
  }
  return q;
}

// Q diag(d) Qᵀ.
Mat with_spectrum(const Mat& q, const std::vector<double>& d) {
  const int64_t n = static_cast<int64_t>(d.size());
  Mat qd = q;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) qd[i * n + j] *= d[j];
  return mul(qd, transpose(q, n, n), n, n, n);
}

// A random SPD matrix G Gᵀ / n + shift I.
Mat random_spd(int64_t n, uint64_t seed, double shift = 0.1) {
  Mat g = randn_mat(n, n, seed);
  Mat a = mul(g, transpose(g, n, n), n, n, n);
  for (double& v : a) v /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) a[i * n + i] += shift;
  return a;
}

FeatureStats stats_of(const std::vector<double>& mean, const Mat& cov) {
  FeatureStats s;
  s.n = 1000;
  s.dim = static_cast<int64_t>(mean.size());
  s.mean = mean;
  s.cov = cov;
  return s;
}

double max_abs_diff(const Mat& a, const Mat& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Gauss-Jordan inverse with partial pivoting (test reference only).
Mat inverse(Mat a, int64_t n) {
  Mat inv(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    int64_t p = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[p * n + c])) p = r;
    for (int64_t j = 0; j < n; ++j) {
      std::swap(a[c * n + j], a[p * n + j]);
      std::swap(inv[c * n + j], inv[p * n + j]);
    }
    const double d = a[c * n + c];
    for (int64_t j = 0; j < n; ++j) a[c * n + j] /= d, inv[c * n + j] /= d;
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      for (int64_t j = 0; j < n; ++j) a[r * n + j] -= f * a[c * n + j], inv[r * n + j] -= f * inv[c * n + j];
    }
  }
  return inv;
}

// tr(sqrtm(M)) of a non-symmetric M with positive real eigenvalues, by the Denman-Beavers iteration.
double trace_sqrtm_denman_beavers(const Mat& m, int64_t n) {
  Mat y = m, z(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) z[i * n + i] = 1;
  for (int it = 0; it < 60; ++it) {
    Mat yi = inverse(y, n), zi = inverse(z, n);
    for (std::size_t k = 0; k < y.size(); ++k) {
      y[k] = 0.5 * (y[k] + zi[k]);
      z[k] = 0.5 * (z[k] + yi[k]);
    }
  }
  double tr = 0;
  for (int64_t i = 0; i < n; ++i) tr += y[i * n + i];
  return tr;
}

}  // namespace

// ---- eigensolver -----------------------------------------------------------------------------------------------
// Both eigensolvers: the default (LAPACK's dsyevd when nash has it) and the Jacobi fallback.
using EigenFn = void (*)(const std::vector<double>&, int64_t, std::vector<double>*, std::vector<double>*);
const std::vector<std::pair<const char*, EigenFn>>& eigensolvers() {
  static const std::vector<std::pair<const char*, EigenFn>> fns = {
      {"default", &nash::metrics::symmetric_eigen}, {"jacobi", &nash::metrics::symmetric_eigen_jacobi}};
  return fns;
}

TEST(Fid, EigenRecoversKnownSpectrum) {
  for (const auto& [name, eigen] : eigensolvers()) {
    SCOPED_TRACE(name);
    const int64_t n = 24;
    std::vector<double> d(n);
    for (int64_t i = 0; i < n; ++i) d[i] = 0.5 * static_cast<double>(i) - 3.0;  // negative, zero and positive
    d[7] = d[8];                                                                  // a repeated eigenvalue
    Mat q = orthogonal(n, 11);
    Mat a = with_spectrum(q, d);
    std::vector<double> lam, v;
    eigen(a, n, &lam, &v);
    std::vector<double> want = d;
    std::sort(want.begin(), want.end());
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(lam[i], want[i], 1e-12) << i;
    // Orthonormal eigenvectors that rebuild the matrix.
    Mat vtv = mul(transpose(v, n, n), v, n, n, n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) ASSERT_NEAR(vtv[i * n + j], i == j ? 1.0 : 0.0, 1e-12);
    EXPECT_LT(max_abs_diff(with_spectrum(v, lam), a), 1e-12);
  }
}

TEST(Fid, EigenOnRandomSymmetricAndTrivialMatrices) {
  for (const auto& [name, eigen] : eigensolvers()) {
    SCOPED_TRACE(name);
    const int64_t n = 40;
    Mat g = randn_mat(n, n, 3), a(g.size());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) a[i * n + j] = g[i * n + j] + g[j * n + i];
    std::vector<double> lam, v;
    eigen(a, n, &lam, &v);
    EXPECT_LT(max_abs_diff(with_spectrum(v, lam), a), 1e-11);
    for (int64_t i = 1; i < n; ++i) EXPECT_LE(lam[i - 1], lam[i]);
    double tr = 0, sum = 0;
    for (int64_t i = 0; i < n; ++i) tr += a[i * n + i], sum += lam[i];
    EXPECT_NEAR(tr, sum, 1e-10);

    eigen({4.0}, 1, &lam, &v);
    EXPECT_EQ(lam, (std::vector<double>{4.0}));
    eigen({3, 0, 0, 0, 1, 0, 0, 0, 2}, 3, &lam, &v);
    EXPECT_EQ(lam, (std::vector<double>{1, 2, 3}));
    nash_test::expect_error([&] { std::vector<double> l, w; eigen({1, 2, 3}, 2, &l, &w); },
                            {"symmetric_eigen", "2 x 2"});
    nash_test::expect_error([&] { std::vector<double> l, w; eigen({1, NAN, NAN, 1}, 2, &l, &w); },
                            {"symmetric_eigen", "non-finite"});
  }
  // The two agree on a covariance of FID's size: a rank-deficient one (fewer samples than dimensions) included.
  for (int64_t samples : {300, 100}) {
    SCOPED_TRACE(samples);
    const int64_t n = 256;
    Mat x = randn_mat(samples, n, 5), c(static_cast<std::size_t>(n * n), 0.0);
    for (int64_t k = 0; k < samples; ++k)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * n + j] += x[k * n + i] * x[k * n + j] / samples;
    std::vector<double> l1, v1, l2, v2;
    nash::metrics::symmetric_eigen(c, n, &l1, &v1);
    nash::metrics::symmetric_eigen_jacobi(c, n, &l2, &v2);
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(l1[i], l2[i], 1e-11 * (1 + std::fabs(l2[i]))) << i;
    EXPECT_LT(max_abs_diff(with_spectrum(v1, l1), c), 1e-11);
  }
}

TEST(Fid, SymmetricSqrtSquaresBack) {
  const int64_t n = 12;
  Mat a = random_spd(n, 5, 0.0);  // G Gᵀ/n: PSD, possibly with tiny eigenvalues
  Mat s = nash::metrics::symmetric_sqrt(a, n);
  EXPECT_LT(max_abs_diff(s, transpose(s, n, n)), 1e-13);
  EXPECT_LT(max_abs_diff(mul(s, s, n, n, n), a), 1e-12);
}

// ---- the Fréchet distance against closed forms --------------------------------------------------------------------
TEST(Fid, DiagonalGaussiansMatchTheAnalyticValue) {
  const std::vector<double> m1{0.5, -1.0, 2.0, 0.0, 3.0}, m2{1.5, 1.0, 2.5, -0.5, 3.0};
  const std::vector<double> s1{1.0, 0.25, 4.0, 2.0, 0.01}, s2{2.0, 1.0, 1.0, 2.0, 0.5};
  const int64_t d = 5;
  double want = 0;
  for (int64_t i = 0; i < d; ++i)
    want += (m1[i] - m2[i]) * (m1[i] - m2[i]) + s1[i] + s2[i] - 2.0 * std::sqrt(s1[i] * s2[i]);
  Mat c1(d * d, 0.0), c2(d * d, 0.0);
  for (int64_t i = 0; i < d; ++i) c1[i * d + i] = s1[i], c2[i * d + i] = s2[i];
  EXPECT_NEAR(nash::metrics::frechet_distance(stats_of(m1, c1), stats_of(m2, c2)), want, 1e-12 * want);
  // The same pair in a rotated basis (the covariances still commute; the distance is rotation invariant).
  Mat q = orthogonal(d, 21);
  std::vector<double> r1 = mul(q, m1, d, d, 1), r2 = mul(q, m2, d, d, 1);
  EXPECT_NEAR(nash::metrics::frechet_distance(stats_of(r1, with_spectrum(q, s1)), stats_of(r2, with_spectrum(q, s2))),
              want, 1e-10 * want);
}

TEST(Fid, TwoByTwoNonCommutingClosedForm) {
  // For 2x2 A B with positive eigenvalues, tr √(A B) = √(tr(A B) + 2 √(det A det B)).
  const Mat a{2.0, 0.7, 0.7, 1.0}, b{0.5, -0.3, -0.3, 3.0};
  const Mat ab = mul(a, b, 2, 2, 2);
  const double det_a = a[0] * a[3] - a[1] * a[2], det_b = b[0] * b[3] - b[1] * b[2];
  const double want = std::sqrt(ab[0] + ab[3] + 2.0 * std::sqrt(det_a * det_b));
  EXPECT_NEAR(nash::metrics::trace_sqrt_product(a, b, 2), want, 1e-13);
  const double fd = nash::metrics::frechet_distance(stats_of({1, 2}, a), stats_of({0, 0}, b));
  EXPECT_NEAR(fd, 5.0 + 3.0 + 3.5 - 2.0 * want, 1e-12);
}

TEST(Fid, GeneralCovariancesMatchBruteForceSqrtm) {
  const int64_t n = 7;
  Mat a = random_spd(n, 8), b = random_spd(n, 9);
  const double want = trace_sqrtm_denman_beavers(mul(a, b, n, n, n), n);
  EXPECT_NEAR(nash::metrics::trace_sqrt_product(a, b, n), want, 1e-10 * want);
  // And the order of the pair does not matter.
  EXPECT_NEAR(nash::metrics::trace_sqrt_product(b, a, n), want, 1e-10 * want);
}

TEST(Fid, IdenticalSetsGiveZero) {
  const int64_t n = 800, d = 48;
  Mat x = mul(randn_mat(n, d, 1), randn_mat(d, d, 2), n, d, d);  // correlated features
  for (double& v : x) v = v * 3.0 + 10.0;
  FeatureStats s = nash::metrics::feature_stats(nash::from_vector(x, {n, d}));
  EXPECT_NEAR(nash::metrics::frechet_distance(s, s), 0.0, 1e-6);
  // Rank-deficient covariances (features + 1 samples, many zero-variance features) still give a real value >= 0.
  Mat y = randn_mat(d + 1, d, 4);
  for (int64_t i = 0; i <= d; ++i)
    for (int64_t j = d / 2; j < d; ++j) y[i * d + j] = 0.0;
  FeatureStats t = nash::metrics::feature_stats(nash::from_vector(y, {d + 1, d}));
  EXPECT_NEAR(nash::metrics::frechet_distance(t, t), 0.0, 1e-6);
  const double fd = nash::metrics::frechet_distance(s, t);
  EXPECT_TRUE(std::isfinite(fd));
  EXPECT_GT(fd, 0.0);
}

TEST(Fid, SampledGaussiansApproachTheAnalyticValue) {
  const int64_t n = 20000, d = 3;
  const std::vector<double> m1{0, 1, -1}, m2{1, 1, 0.5}, sd1{1.0, 0.5, 2.0}, sd2{0.5, 0.5, 1.0};
  Mat z1 = randn_mat(n, d, 31), z2 = randn_mat(n, d, 32);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      z1[i * d + j] = m1[j] + sd1[j] * z1[i * d + j];
      z2[i * d + j] = m2[j] + sd2[j] * z2[i * d + j];
    }
  double want = 0;
  for (int64_t j = 0; j < d; ++j) want += (m1[j] - m2[j]) * (m1[j] - m2[j]) + (sd1[j] - sd2[j]) * (sd1[j] - sd2[j]);
  const double got = nash::metrics::frechet_distance(nash::metrics::feature_stats(nash::from_vector(z1, {n, d})),
                                                     nash::metrics::feature_stats(nash::from_vector(z2, {n, d})));
  EXPECT_NEAR(got, want, 0.03 * want);  // sampling error of 20000 draws
}

// ---- statistics ------------------------------------------------------------------------------------------------
TEST(Fid, StatsMatchTwoPassAndSurviveLargeOffsets) {
  const int64_t n = 3001, d = 6;
  Mat dev = mul(randn_mat(n, d, 41), randn_mat(d, d, 42), n, d, d);
  // The reference: two-pass mean and covariance of the deviations alone.
  std::vector<double> mu(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) mu[j] += dev[i * d + j] / n;
  Mat cov(d * d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      for (int64_t k = 0; k < d; ++k) cov[j * d + k] += (dev[i * d + j] - mu[j]) * (dev[i * d + k] - mu[k]) / (n - 1);

  const double offset = 1e7;  // a one-pass sum of squares would lose every digit here
  Mat x = dev;
  for (double& v : x) v += offset;
  nash::metrics::FeatureAccumulator acc(d);
  // Uneven chunks, including one of a single row, exercise the merge.
  const int64_t cuts[] = {0, 1, 500, 1777, 1778, 3001};
  for (int c = 0; c + 1 < 6; ++c) {
    Mat part(x.begin() + cuts[c] * d, x.begin() + cuts[c + 1] * d);
    acc.add(nash::from_vector(part, {cuts[c + 1] - cuts[c], d}));
  }
  FeatureStats s = acc.stats();
  EXPECT_EQ(s.n, n);
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(s.mean[j], mu[j] + offset, 1e-7);
  EXPECT_LT(max_abs_diff(s.cov, cov), 1e-8);
  // float32 features are accepted and give the same statistics within float32 rounding.
  std::vector<float> f(dev.begin(), dev.end());
  FeatureStats sf = nash::metrics::feature_stats(nash::from_vector(f, {n, d}));
  EXPECT_LT(max_abs_diff(sf.cov, cov), 1e-5);
}

TEST(Fid, TooFewSamplesAndMismatchesAreErrors) {
  nash_test::expect_error([] { nash::metrics::feature_stats(nash_test::randn32({16, 16}, 1)); },
                          {"16 samples", "16 features", "17"});
  nash::metrics::FeatureAccumulator acc(4);
  nash_test::expect_error([&] { acc.add(nash::zeros({3, 5})); }, {"(B, 4)", "[3, 5]"});
  nash_test::expect_error([&] { acc.add(nash::full({3, 4}, NAN)); }, {"non-finite"});
  FeatureStats a = nash::metrics::feature_stats(nash_test::randn32({10, 3}, 2));
  FeatureStats b = nash::metrics::feature_stats(nash_test::randn32({10, 2}, 3));
  nash_test::expect_error([&] { nash::metrics::frechet_distance(a, b); }, {"3 vs 2"});
}

// ---- the feature network -----------------------------------------------------------------------------------------
TEST(Fid, NetworkFidOfASetWithItselfIsZeroAndPaddingIsCropped) {
  nash::manual_seed(3);
  nash::metrics::FeatureNet net(128);
  EXPECT_EQ(net.forward(nash_test::randn32({4, 1, 28, 28}, 1)).shape(), (nash::Shape{4, 10}));
  EXPECT_EQ(net.features(nash_test::randn32({4, 1, 32, 32}, 1)).shape(), (nash::Shape{4, 128}));
  nash::Tensor imgs = nash::clamp(nash_test::randn32({150, 1, 28, 28}, 2) * 0.5, -1.0, 1.0);
  EXPECT_NEAR(nash::metrics::fid(net, imgs, imgs, 64), 0.0, 1e-6);
  EXPECT_TRUE(net.is_training());  // the mode is restored
  // The same images padded to 32x32 with the background -1 are cropped back: identical features.
  std::vector<float> v = imgs.to_vector<float>(), p(150 * 32 * 32, -1.0f);
  for (int64_t i = 0; i < 150; ++i)
    for (int64_t y = 0; y < 28; ++y)
      for (int64_t x = 0; x < 28; ++x) p[(i * 32 + y + 2) * 32 + x + 2] = v[(i * 28 + y) * 28 + x];
  nash::Tensor padded = nash::from_vector(p, {150, 1, 32, 32});
  EXPECT_NEAR(nash::metrics::fid(net, imgs, padded, 50), 0.0, 1e-6);
  nash::Tensor other = nash::clamp(nash_test::randn32({150, 1, 28, 28}, 3) * 0.5 + 0.3, -1.0, 1.0);
  EXPECT_GT(nash::metrics::fid(net, imgs, other, 64), 1e-3);
  nash_test::expect_error([&] { net.features(nash::zeros({2, 1, 30, 30})); }, {"FeatureNet", "[2, 1, 30, 30]"});
  nash_test::expect_error([&] { nash::metrics::fid(net, imgs.narrow(0, 0, 100), imgs, 64); },
                          {"100 samples", "128 features"});
}

TEST(Fid, SaveLoadRoundTripKeepsTheRandomStream) {
  fs::path dir = fs::temp_directory_path() / ("nash_test_fid_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "net.safetensors").string();
  nash::manual_seed(9);
  nash::metrics::FeatureNet net(160);
  // Train-mode passes move the batch-norm running statistics away from their initial values.
  for (int i = 0; i < 2; ++i) net.forward(nash_test::randn32({8, 1, 28, 28}, 10 + i));
  nash::metrics::save_feature_net(path, net, {{"test_accuracy", "0.5"}});

  nash::manual_seed(77);
  nash::default_generator().next_u32();
  const uint64_t offset = nash::default_generator().offset();
  std::map<std::string, std::string> meta;
  auto loaded = nash::metrics::load_feature_net(path, nash::Device::cpu(), &meta);
  EXPECT_EQ(nash::default_generator().seed(), 77u);
  EXPECT_EQ(nash::default_generator().offset(), offset);
  EXPECT_EQ(meta["test_accuracy"], "0.5");
  EXPECT_EQ(loaded->feature_dim(), 160);
  EXPECT_FALSE(loaded->is_training());
  net.eval();
  nash::Tensor x = nash_test::randn32({5, 1, 28, 28}, 12);
  nash::NoGradGuard ng;
  EXPECT_EQ(net.features(x).to_vector<float>(), loaded->features(x).to_vector<float>());

  const std::string other = (dir / "other.safetensors").string();
  nash::io::save_safetensors(other, {{"w", nash::zeros({2})}}, {{"format", "x"}});
  nash_test::expect_error([&] { nash::metrics::load_feature_net(other); }, {other.c_str(), "architecture"});
  fs::remove_all(dir);
}

TEST(ClassifierScore, ClosedFormsOfTheInceptionScoreFormula) {
  using nash::metrics::ClassifierScoreAccumulator;
  // Confident predictions spread evenly over the 10 classes: KL = log 10 for every sample, score 10.
  std::vector<float> z(20 * 10, -60.f);
  for (int i = 0; i < 20; ++i) z[i * 10 + i % 10] = 60.f;
  ClassifierScoreAccumulator a;
  a.add(nash::from_vector(z, {20, 10}));
  EXPECT_NEAR(a.score(), 10.0, 1e-9);
  // Every sample confidently the same class, or every sample uniform: p(y|x) = p(y), score 1.
  std::vector<float> same(8 * 10, 0.f), uniform(8 * 10, 3.f);
  for (int i = 0; i < 8; ++i) same[i * 10 + 2] = 80.f;
  ClassifierScoreAccumulator b, c;
  b.add(nash::from_vector(same, {8, 10}));
  c.add(nash::from_vector(uniform, {8, 10}));
  EXPECT_NEAR(b.score(), 1.0, 1e-9);
  EXPECT_NEAR(c.score(), 1.0, 1e-12);
  // Two classes, half the samples p = (0.5, 0.5), half confident in class 0 (batches added separately):
  // p(y) = (0.75, 0.25); E KL = 0.5 * (0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)) + 0.5 * log(1/0.75).
  ClassifierScoreAccumulator d(2);
  d.add(nash::from_vector(std::vector<float>{0.f, 0.f, 0.f, 0.f}, {2, 2}));
  d.add(nash::from_vector(std::vector<float>{90.f, -90.f, 90.f, -90.f}, {2, 2}));
  const double kl = 0.5 * (0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25)) + 0.5 * std::log(1 / 0.75);
  EXPECT_NEAR(d.score(), std::exp(kl), 1e-9);
  ClassifierScoreAccumulator e;
  EXPECT_THROW(e.score(), nash::Error);
  EXPECT_THROW(e.add(nash::from_vector(std::vector<float>{1.f, 2.f}, {1, 2})), nash::Error);
}

// ---- intra-FID -------------------------------------------------------------------------------------------------
TEST(Fid, IntraFidIsTheMeanOfEachClasssFrechetDistance) {
  // Three classes of 4-D Gaussians, each with its own mean; 60 samples of each, labels interleaved.
  const int64_t d = 4, per = 60, k = 3;
  nash::Generator g(21);
  std::vector<float> v, lab;
  for (int64_t i = 0; i < per * k; ++i) {
    const int64_t c = i % k;
    for (int64_t j = 0; j < d; ++j) v.push_back(static_cast<float>(g.next_normal() + (j == c ? 3.0 : 0.0)));
    lab.push_back(static_cast<float>(c));
  }
  const nash::Tensor x = nash::from_vector(v, {per * k, d}), y = nash::from_vector(lab, {per * k});
  const std::vector<nash::metrics::FeatureStats> real = nash::metrics::class_feature_stats(x, y, k);
  ASSERT_EQ(real.size(), 3u);
  // Each class's statistics are those of its rows.
  for (int64_t c = 0; c < k; ++c) {
    std::vector<float> rows;
    for (int64_t i = c; i < per * k; i += k) rows.insert(rows.end(), v.begin() + i * d, v.begin() + (i + 1) * d);
    const nash::metrics::FeatureStats want = nash::metrics::feature_stats(nash::from_vector(rows, {per, d}));
    EXPECT_EQ(real[c].n, per);
    EXPECT_LT(max_abs_diff(real[c].mean, want.mean), 1e-12);
    EXPECT_LT(max_abs_diff(real[c].cov, want.cov), 1e-12);
  }
  // The same set scores ~0; a fake set of other samples scores the mean of the three distances.
  EXPECT_LT(nash::metrics::intra_fid(real, x, y).mean, 1e-8);
  std::vector<float> w;
  for (int64_t i = 0; i < per * k; ++i)
    for (int64_t j = 0; j < d; ++j) w.push_back(static_cast<float>(g.next_normal() + (j == i % k ? 2.0 : 0.0)));
  const nash::Tensor f = nash::from_vector(w, {per * k, d});
  const nash::metrics::IntraFid r = nash::metrics::intra_fid(real, f, y);
  const std::vector<nash::metrics::FeatureStats> fake = nash::metrics::class_feature_stats(f, y, k);
  ASSERT_EQ(r.per_class.size(), 3u);
  double sum = 0;
  for (int64_t c = 0; c < k; ++c) {
    const double fd = nash::metrics::frechet_distance(real[c], fake[c]);
    EXPECT_NEAR(r.per_class[c], fd, 1e-12);
    EXPECT_GT(fd, 0.5);  // means 1 apart in one coordinate
    sum += fd;
  }
  EXPECT_NEAR(r.mean, sum / 3, 1e-12);
  // Labels that do not match the images (every class shifted by one) cost far more than the whole-set FID.
  std::vector<float> shifted;
  for (float c : lab) shifted.push_back(static_cast<float>((static_cast<int>(c) + 1) % k));
  const double wrong = nash::metrics::intra_fid(real, x, nash::from_vector(shifted, {per * k})).mean;
  EXPECT_GT(wrong, 10.0);
  EXPECT_LT(nash::metrics::frechet_distance(nash::metrics::feature_stats(x), nash::metrics::feature_stats(x)), 1e-8);
  // Errors name the class and the counts, or the label.
  nash_test::expect_error([&] { nash::metrics::class_feature_stats(x.narrow(0, 0, 9), y.narrow(0, 0, 9), k); },
                          {"class 0", "3 samples", "4 features"});
  std::vector<float> bad = lab;
  bad[5] = 3;
  nash_test::expect_error([&] { nash::metrics::class_feature_stats(x, nash::from_vector(bad, {per * k}), k); },
                          {"label 5", "3", "[0, 3)"});
}
