// Row-major GEMM for the CPU kernels: OpenBLAS when the build found it, else nash's built-in blocked GEMM.
#pragma once
#include <cstdint>

namespace nash {
namespace cpu {

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, op(X) = X, or Xᵀ when ta / tb; row-major with leading
// dimensions lda, ldb, ldc. BLAS semantics: beta == 0 means C is not read (NaN in C does not propagate).
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);

// The built-in implementation, whichever one gemm() uses (exposed so tests cover it in OpenBLAS builds too).
template <class T>
void builtin_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                  int64_t ldb, T beta, T* C, int64_t ldc);

extern template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                 int64_t, float, float*, int64_t);
extern template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                  const double*, int64_t, double, double*, int64_t);
extern template void builtin_gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                         const float*, int64_t, float, float*, int64_t);
extern template void builtin_gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                          const double*, int64_t, double, double*, int64_t);

// Sets OpenBLAS (when the build uses it) to run every call on the calling thread, once per process; gemm() calls
// it, and so must any other entry into OpenBLAS (LAPACK), so that its thread pool never runs beside nash's team.
void blas_on_calling_thread();

// "openblas" or "builtin": what gemm() calls in this build.
const char* gemm_backend();
// The built-in GEMM's micro-kernel: "avx2" (x86-64 with AVX2 and FMA, chosen at run time) or "portable".
const char* builtin_gemm_kernel();
// For tests: makes the built-in GEMM use its portable kernel even where AVX2 is available.
void builtin_gemm_force_portable(bool on);

// While one is alive, every gemm() call runs on the calling thread only: for code that already splits its work
// across an OpenMP team (a threaded BLAS nested inside would oversubscribe the cores). Create it outside the
// parallel region; guards nest.
class GemmSingleThreadGuard {
 public:
  GemmSingleThreadGuard();
  ~GemmSingleThreadGuard();
  GemmSingleThreadGuard(const GemmSingleThreadGuard&) = delete;
  GemmSingleThreadGuard& operator=(const GemmSingleThreadGuard&) = delete;
};

}  // namespace cpu
}  // namespace nash
