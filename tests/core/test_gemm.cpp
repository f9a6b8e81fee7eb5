// The CPU GEMM wrapper and the built-in blocked GEMM against a naive triple loop: every transpose combination, odd
// and block-crossing sizes, padded leading dimensions, alpha/beta, float and double, threaded and not.
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "support.h"

using nash::cpu::builtin_gemm;
using nash::cpu::gemm;

namespace {

template <class T>
using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,
                        int64_t);

struct Case {
  int64_t M, N, K;
};

// Sizes around the built-in GEMM's register tile (6 x 8/16), its blocks (96 rows, 256 deep, 1024 wide) and tiny
// degenerate shapes.
const Case kCases[] = {{1, 1, 1}, {7, 5, 3}, {6, 16, 256}, {13, 17, 1}, {97, 33, 300}, {5, 1031, 7}, {31, 9, 257}};

template <class T>
std::vector<T> random_vec(std::size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(d(g));
  return v;
}

// Runs fn on random operands stored with padded leading dimensions and checks every element of C against a
// double-precision triple loop, and that the padding of C is untouched.
template <class T>
void check(GemmFn<T> fn, const char* name, bool ta, bool tb, const Case& c, T alpha, T beta, uint32_t seed,
           bool nan_in_c = false) {
  const int64_t M = c.M, N = c.N, K = c.K;
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
  const int64_t lda = a_cols + 3, ldb = b_cols + 1, ldc = N + 2;
  std::vector<T> A = random_vec<T>(a_rows * lda, seed), B = random_vec<T>(b_rows * ldb, seed + 1),
                 C = random_vec<T>(M * ldc, seed + 2);
  if (nan_in_c)
    for (T& x : C) x = std::numeric_limits<T>::quiet_NaN();
  const std::vector<T> C0 = C;
  fn(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  const double eps = std::numeric_limits<T>::epsilon();
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
        mag += std::fabs(a * b);
      }
      const double c0 = C0[i * ldc + j];
      const double want = beta == T(0) ? alpha * s : alpha * s + beta * c0;
      mag = std::fabs(alpha) * mag + (beta == T(0) ? 0.0 : std::fabs(beta * c0));
      const double got = C[i * ldc + j];
      ASSERT_LE(std::fabs(got - want), 4 * (K + 2) * eps * mag + 1e-30)
          << name << " ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K << " alpha=" << alpha
          << " beta=" << beta << ": C(" << i << "," << j << ") = " << got << ", want " << want;
    }
    for (int64_t j = N; j < ldc; ++j)
      if (!nan_in_c) ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]) << name << ": wrote past column " << N;
  }
}

template <class T>
void check_all(GemmFn<T> fn, const char* name) {
  const T ab[][2] = {{T(1), T(0)}, {T(0.5), T(-1.5)}, {T(-2), T(1)}};
  uint32_t seed = 1;
  for (const Case& c : kCases)
    for (int t = 0; t < 4; ++t)
      for (const auto& p : ab) check<T>(fn, name, t & 1, t & 2, c, p[0], p[1], seed++);
}

}  // namespace

TEST(Gemm, WrapperMatchesNaiveFloat) { check_all<float>(gemm<float>, nash::cpu::gemm_backend()); }
TEST(Gemm, WrapperMatchesNaiveDouble) { check_all<double>(gemm<double>, nash::cpu::gemm_backend()); }
TEST(Gemm, BuiltinMatchesNaiveFloat) { check_all<float>(builtin_gemm<float>, "builtin"); }
TEST(Gemm, BuiltinMatchesNaiveDouble) { check_all<double>(builtin_gemm<double>, "builtin"); }

TEST(Gemm, BetaZeroIgnoresNanAndAlphaZeroOnlyScales) {
  for (bool builtin : {false, true}) {
    GemmFn<float> f = builtin ? builtin_gemm<float> : gemm<float>;
    GemmFn<double> d = builtin ? builtin_gemm<double> : gemm<double>;
    check<float>(f, "beta=0 over NaN", false, true, {9, 11, 5}, 1.5f, 0.0f, 7, /*nan_in_c=*/true);
    check<double>(d, "beta=0 over NaN", true, false, {9, 11, 5}, -0.5, 0.0, 8, /*nan_in_c=*/true);
    check<double>(d, "alpha=0", false, false, {9, 11, 5}, 0.0, 0.75, 9);
    check<float>(f, "K=0", false, false, {4, 3, 0}, 1.0f, 2.0f, 10);
  }
}

// Large enough for the built-in GEMM to split C across threads (and to narrow its tiles to feed them).
TEST(Gemm, BuiltinThreadedLargeProblems) {
  check<float>(builtin_gemm<float>, "threaded", false, false, {200, 300, 260}, 1.0f, 0.0f, 21);
  check<double>(builtin_gemm<double>, "threaded", true, true, {130, 90, 520}, 0.5, 2.0, 22);
  check<float>(builtin_gemm<float>, "threaded wide", false, true, {20, 2100, 300}, 1.0f, 1.0f, 23);
}

// Large enough for the wrapper to cut C across the team (by columns when N >= M, else by rows; with OpenBLAS each
// slice is one single-threaded BLAS call): every transpose combination and both cuts, slice edges off the 16-element
// grid, padded leading dimensions, beta != 0, and a team of three.
TEST(Gemm, WrapperSplitsLargeProblemsAcrossTheTeam) {
  nash::NumThreadsGuard threads(3);
  const Case cases[] = {{200, 300, 260}, {300, 130, 100}, {150, 1, 20000}, {70, 1000, 33}};
  uint32_t seed = 40;
  for (const Case& c : cases)
    for (int t = 0; t < 4; ++t) {
      check<float>(gemm<float>, "split", t & 1, t & 2, c, 1.0f, 0.0f, seed++);
      check<double>(gemm<double>, "split", t & 1, t & 2, c, -0.5, 1.5, seed++);
    }
}

// Inside an OpenMP region and under the single-thread guard each call must stay on its thread and stay correct.
TEST(Gemm, SingleThreadGuardAndNestedRegions) {
  const int64_t M = 70, N = 90, K = 900;  // enough work for the built-in GEMM to use threads
  std::vector<float> A = random_vec<float>(M * K, 31), B = random_vec<float>(K * N, 32);
  std::vector<float> ref(M * N);
  builtin_gemm<float>(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, ref.data(), N);
  for (bool builtin : {false, true}) {
    GemmFn<float> f = builtin ? builtin_gemm<float> : gemm<float>;
    std::vector<std::vector<float>> out(4, std::vector<float>(M * N, 0.0f));
    {
      nash::cpu::GemmSingleThreadGuard outer;
      nash::cpu::GemmSingleThreadGuard inner;  // guards nest
#pragma omp parallel for num_threads(2)
      for (int t = 0; t < 4; ++t) f(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, out[t].data(), N);
    }
    for (int t = 0; t < 4; ++t)
      for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(out[t][i], ref[i], 1e-3f) << "copy " << t << " element " << i;
    // After the guards are gone, a threaded call still matches.
    std::vector<float> again(M * N);
    f(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, again.data(), N);
    for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(again[i], ref[i], 1e-3f) << "element " << i;
  }
}

// The portable micro-kernel (the one non-x86 machines and CPUs without AVX2 run) on the same cases.
TEST(Gemm, BuiltinPortableKernelMatchesNaive) {
  struct Portable {
    Portable() { nash::cpu::builtin_gemm_force_portable(true); }
    ~Portable() { nash::cpu::builtin_gemm_force_portable(false); }
  } portable;
  EXPECT_STREQ(nash::cpu::builtin_gemm_kernel(), "portable");
  check_all<float>(builtin_gemm<float>, "builtin portable");
  check_all<double>(builtin_gemm<double>, "builtin portable");
  check<float>(builtin_gemm<float>, "portable threaded", true, false, {150, 260, 270}, 1.0f, 0.5f, 41);
}

TEST(Gemm, BackendIsNamed) {
  const std::string b = nash::cpu::gemm_backend();
  EXPECT_TRUE(b == "openblas" || b == "builtin") << b;
  const std::string k = nash::cpu::builtin_gemm_kernel();
  EXPECT_TRUE(k == "avx2" || k == "portable") << k;
}
