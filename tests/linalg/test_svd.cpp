// linalg::singular_values: matrices built as U diag(s) Vᵀ from Givens rotations (so the singular values are known
// exactly), wide and tall and rank-deficient, the tensor overload, and the errors.
#include <cmath>
#include <vector>

#include "nash/linalg/svd.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

// An n × n orthogonal matrix (row-major): a product of Givens rotations in every (i, j) plane, angles from a seed.
std::vector<double> rotations(int64_t n, double seed) {
  std::vector<double> q(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) q[i * n + i] = 1.0;
  double angle = seed;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      angle = std::fmod(angle * 1.7 + 0.9, 3.0);
      const double c = std::cos(angle), s = std::sin(angle);
      for (int64_t r = 0; r < n; ++r) {  // q = q G(i, j)
        const double a = q[r * n + i], b = q[r * n + j];
        q[r * n + i] = c * a - s * b;
        q[r * n + j] = s * a + c * b;
      }
    }
  return q;
}

// U[:, :k] diag(s) V[:, :k]ᵀ for orthogonal U (rows × rows), V (cols × cols), k = s.size() <= min(rows, cols).
std::vector<double> with_singular_values(int64_t rows, int64_t cols, const std::vector<double>& s) {
  std::vector<double> u = rotations(rows, 0.3), v = rotations(cols, 1.1), a(static_cast<std::size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double acc = 0;
      for (std::size_t k = 0; k < s.size(); ++k) acc += u[i * rows + k] * s[k] * v[j * cols + k];
      a[i * cols + j] = acc;
    }
  return a;
}

#define REQUIRE_LAPACK() \
  if (!linalg::lapack_available()) GTEST_SKIP() << "this nash was built without LAPACK"

}  // namespace

TEST(Svd, RecoversKnownSingularValuesTallAndWide) {
  REQUIRE_LAPACK();
  const std::vector<double> s = {3.0, 1.5, 0.25};
  const std::vector<double> tall = with_singular_values(5, 3, s);
  std::vector<double> got = linalg::singular_values(tall, 5, 3);
  ASSERT_EQ(got.size(), 3u);
  for (std::size_t k = 0; k < s.size(); ++k) EXPECT_NEAR(got[k], s[k], 1e-10) << "k " << k;
  // The transpose (3, 5) has the same singular values.
  std::vector<double> wide(15);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) wide[j * 5 + i] = tall[i * 3 + j];
  got = linalg::singular_values(wide, 3, 5);
  ASSERT_EQ(got.size(), 3u);
  for (std::size_t k = 0; k < s.size(); ++k) EXPECT_NEAR(got[k], s[k], 1e-10) << "k " << k;
}

TEST(Svd, RankDeficientAndUnsortedInputsComeBackDescending) {
  REQUIRE_LAPACK();
  // Rank 2 in a (4, 6) matrix, the values given out of order to the builder.
  std::vector<double> got = linalg::singular_values(with_singular_values(4, 6, {0.5, 7.0}), 4, 6);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_NEAR(got[0], 7.0, 1e-10);
  EXPECT_NEAR(got[1], 0.5, 1e-10);
  EXPECT_NEAR(got[2], 0.0, 1e-10);
  EXPECT_NEAR(got[3], 0.0, 1e-10);
  for (std::size_t k = 1; k < got.size(); ++k) EXPECT_LE(got[k], got[k - 1]);
  // A 1 × n matrix: its one singular value is its norm.
  got = linalg::singular_values({3.0, 0.0, -4.0}, 1, 3);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NEAR(got[0], 5.0, 1e-12);
}

TEST(Svd, TensorOverloadTakesAnyFloatDtype) {
  REQUIRE_LAPACK();
  const std::vector<double> s = {2.0, 1.0, 0.5, 0.125};
  Tensor a = from_vector(with_singular_values(4, 7, s), {4, 7});
  Tensor got = linalg::singular_values(a);
  EXPECT_EQ(got.shape(), (Shape{4}));
  EXPECT_EQ(got.dtype(), DType::Float64);
  nash_test::expect_values(got, s, 1e-10);
  // float32 input: the values to float32 accuracy; a transposed (non-contiguous) view works too.
  nash_test::expect_values(linalg::singular_values(a.to(DType::Float32)), s, 1e-5);
  nash_test::expect_values(linalg::singular_values(a.t()), s, 1e-10);
}

TEST(Svd, ErrorsNameTheProblem) {
  expect_error([] { linalg::singular_values(std::vector<double>{1, 2, 3}, 2, 2); }, {"singular_values", "4 values"});
  expect_error([] { linalg::singular_values(std::vector<double>{}, 0, 3); }, {"singular_values", "non-empty"});
  expect_error([] { linalg::singular_values({1.0, NAN, 0.0, 1.0}, 2, 2); }, {"singular_values", "(0, 1)", "nan"});
  expect_error([] { linalg::singular_values(zeros({2, 2, 2})); }, {"singular_values", "2-D", "[2, 2, 2]"});
  if (!linalg::lapack_available())
    expect_error([] { linalg::singular_values({1.0}, 1, 1); }, {"without LAPACK"});
}
