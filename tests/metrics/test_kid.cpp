// Kernel distance (KID): the unbiased estimate against a brute-force float64 evaluation of its definition, the
// subset average's behaviour (near 0 for two samples of one distribution, growing with a shift between them,
// independent of the set sizes in expectation, unlike FID) and the errors that name a bad input.
#include <cmath>
#include <vector>

#include "nash/nash.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

Tensor gaussian(int64_t n, int64_t d, double shift, uint64_t seed, DType dt = DType::Float64) {
  Generator g(seed);
  return randn({n, d}, dt, Device::cpu(), &g) + shift;
}

// The definition, term by term in float64.
double mmd2_unbiased(const Tensor& x, const Tensor& y) {
  const std::vector<double> a = x.to_vector<double>(), b = y.to_vector<double>();
  const std::size_t d = static_cast<std::size_t>(x.size(1)), n = a.size() / d, m = b.size() / d;
  auto k = [&](const std::vector<double>& u, std::size_t i, const std::vector<double>& v, std::size_t j) {
    double dot = 0;
    for (std::size_t t = 0; t < d; ++t) dot += u[i * d + t] * v[j * d + t];
    return std::pow(dot / static_cast<double>(d) + 1.0, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (i != j) xx += k(a, i, a, j);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < m; ++j)
      if (i != j) yy += k(b, i, b, j);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < m; ++j) xy += k(a, i, b, j);
  return xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2 * xy / (double(n) * m);
}

}  // namespace

TEST(KernelDistance, OneWholeSubsetIsTheUnbiasedMmdOfTheDefinition) {
  const Tensor x = gaussian(30, 5, 0.0, 1), y = gaussian(30, 5, 0.4, 2);
  const metrics::KernelDistance r = metrics::kernel_distance(x, y, 1, 1000);
  EXPECT_EQ(r.subset_size, 30);  // capped at the sets' size
  EXPECT_EQ(r.subsets, 1);
  EXPECT_EQ(r.std, 0.0);
  const double want = mmd2_unbiased(x, y);
  EXPECT_NEAR(r.mean, want, 1e-12 * (1 + std::fabs(want)));
  EXPECT_GT(want, 0);
  // Float32 features: the same within float32 rounding of the inner products.
  const metrics::KernelDistance f = metrics::kernel_distance(x.to(DType::Float32), y.to(DType::Float32), 1, 30);
  EXPECT_NEAR(f.mean, want, 1e-5 * (1 + std::fabs(want)));
  // Symmetric in the two sets, 0 for a set against itself only in expectation (unbiased: here it is not 0).
  EXPECT_NEAR(metrics::kernel_distance(y, x, 1, 30).mean, r.mean, 1e-12);
  // Subsets of the larger set are drawn; the smaller is used whole in every subset.
  const Tensor big = gaussian(200, 5, 0.4, 3);
  const metrics::KernelDistance s = metrics::kernel_distance(x, big, 4, 30, 7);
  EXPECT_EQ(s.subset_size, 30);
  EXPECT_GT(s.std, 0);
  EXPECT_EQ(metrics::kernel_distance(x, big, 4, 30, 7).mean, s.mean);  // the seed fixes the subsets
  EXPECT_NE(metrics::kernel_distance(x, big, 4, 30, 8).mean, s.mean);
}

TEST(KernelDistance, NearZeroForOneDistributionAndGrowingWithAShift) {
  const Tensor real = gaussian(2000, 8, 0.0, 11);
  const metrics::KernelDistance same = metrics::kernel_distance(real, gaussian(1000, 8, 0.0, 12), 50, 200);
  EXPECT_LT(std::fabs(same.mean), 4 * same.std / std::sqrt(50.0) + 1e-4);
  double last = same.mean;
  for (double shift : {0.2, 0.5, 1.0}) {
    SCOPED_TRACE(shift);
    const metrics::KernelDistance k = metrics::kernel_distance(real, gaussian(1000, 8, shift, 13), 50, 200);
    EXPECT_GT(k.mean, last);
    EXPECT_GT(k.mean, 4 * k.std / std::sqrt(50.0));
    last = k.mean;
  }
  // Unbiased: the estimate's expectation does not depend on the subset size (FID's bias shrinks with the size).
  const Tensor fake = gaussian(2000, 8, 0.3, 14);
  const metrics::KernelDistance small = metrics::kernel_distance(real, fake, 200, 50, 1);
  const metrics::KernelDistance large = metrics::kernel_distance(real, fake, 20, 500, 2);
  EXPECT_NEAR(small.mean, large.mean,
              4 * std::sqrt(small.std * small.std / 200 + large.std * large.std / 20));
}

TEST(KernelDistance, BadInputsAreNamed) {
  const Tensor x = gaussian(10, 3, 0.0, 1);
  expect_error([&] { metrics::kernel_distance(x, gaussian(10, 4, 0.0, 2)); }, {"dimension 3", "4"});
  expect_error([&] { metrics::kernel_distance(x, x.to(DType::Float32)); }, {"one dtype"});
  expect_error([&] { metrics::kernel_distance(x, x, 0); }, {"subsets", "0"});
  expect_error([&] { metrics::kernel_distance(x, gaussian(1, 3, 0.0, 2)); }, {">= 2 rows", "1 fake"});
  expect_error([&] { metrics::kernel_distance(x, zeros({3})); }, {"fake", "(N, d)"});
  Tensor bad = x.clone();
  bad.data_ptr<double>()[7] = NAN;
  expect_error([&] { metrics::kernel_distance(bad, x); }, {"real", "non-finite", "row 2"});
}
