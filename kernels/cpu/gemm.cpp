// Row-major GEMM: the cblas dispatch, and the built-in blocked GEMM (packed panels, a register-tiled micro-kernel
// on GCC vector types with AVX2+FMA code picked at run time on x86-64, OpenMP across tiles of C).
#include "kernels/cpu/gemm.h"
#include "nash/core/error.h"
#include "nash/core/threads.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(NASH_WITH_OPENBLAS)
#include <cblas.h>
#endif

#if defined(__GNUC__)
#define NASH_GEMM_INLINE inline __attribute__((always_inline))
#else
#define NASH_GEMM_INLINE inline
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NASH_GEMM_AVX2 1
#endif

namespace nash {
namespace cpu {

namespace {

std::atomic<int> g_single_thread_depth{0};
std::atomic<bool> g_force_portable{false};

// One GEMM with its blocking: C is cut into tiles of mc x nc, each owned by one thread, whose K range is walked
// in slices of kc (the packed A block stays in L2, one packed B micro-panel in L1).
template <class T>
struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  T alpha;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  T beta;
  T* C;
  int64_t ldc;
  int64_t mc, nc, kc, mtiles, ntiles;
};

// Copies op(A)[i0 : i0+mc, k0 : k0+kc] into row panels of MR: panel r holds MR rows interleaved by k, zero-padded.
template <class T, int MR>
NASH_GEMM_INLINE void pack_a(const Problem<T>& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
  for (int64_t r = 0; r < mc; r += MR, dst += MR * kc) {
    const int64_t rows = std::min<int64_t>(MR, mc - r);
    if (p.ta) {  // op(A)(i, k) = A[k, i]: the MR rows of a panel are contiguous in memory
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = p.A + (k0 + k) * p.lda + i0 + r;
        for (int64_t i = 0; i < rows; ++i) dst[k * MR + i] = src[i];
        for (int64_t i = rows; i < MR; ++i) dst[k * MR + i] = T(0);
      }
    } else {
      for (int64_t i = 0; i < rows; ++i) {
        const T* src = p.A + (i0 + r + i) * p.lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
      }
      for (int64_t i = rows; i < MR; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
    }
  }
}

// Copies op(B)[k0 : k0+kc, j0 : j0+nc] into column panels of NR: panel c holds NR columns interleaved by k.
template <class T, int NR>
NASH_GEMM_INLINE void pack_b(const Problem<T>& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
  for (int64_t c = 0; c < nc; c += NR, dst += NR * kc) {
    const int64_t cols = std::min<int64_t>(NR, nc - c);
    if (p.tb) {  // op(B)(k, j) = B[j, k]
      for (int64_t j = 0; j < cols; ++j) {
        const T* src = p.B + (j0 + c + j) * p.ldb + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
      }
      for (int64_t j = cols; j < NR; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = p.B + (k0 + k) * p.ldb + j0 + c;
        T* d = dst + k * NR;
        if (cols == NR) {
          std::memcpy(d, src, sizeof(T) * NR);
        } else {
          for (int64_t j = 0; j < cols; ++j) d[j] = src[j];
          for (int64_t j = cols; j < NR; ++j) d[j] = T(0);
        }
      }
    }
  }
}

// C[0:mr, 0:nr] = alpha * (packed A panel x packed B panel) + beta * C, with the MR x NR sum in NV vectors a row.
template <class T, int MR, int NV, class V>
NASH_GEMM_INLINE void micro(int64_t kc, const T* a, const T* b, T alpha, T beta, T* c, int64_t ldc, int64_t mr,
                            int64_t nr) {
  constexpr int L = sizeof(V) / sizeof(T), NR = NV * L;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR) {
    V bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + v * L, sizeof(V));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] += bv[v] * ai;
    }
  }
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        T* cp = c + i * ldc + v * L;
        V out = acc[i][v] * alpha;
        if (beta != T(0)) {
          V old;
          std::memcpy(&old, cp, sizeof(V));
          out += old * beta;
        }
        std::memcpy(cp, &out, sizeof(V));
      }
    return;
  }
  T tmp[MR][NR];
  std::memcpy(tmp, acc, sizeof(tmp));
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) {
      T* cp = c + i * ldc + j;
      *cp = beta != T(0) ? alpha * tmp[i][j] + beta * *cp : alpha * tmp[i][j];
    }
}

// One mc x nc tile of C over the whole K range; abuf and bbuf hold the packed blocks.
template <class T, int MR, int NV, class V>
NASH_GEMM_INLINE void run_tile(const Problem<T>& p, int64_t tile, T* abuf, T* bbuf) {
  constexpr int NR = NV * static_cast<int>(sizeof(V) / sizeof(T));
  const int64_t i0 = (tile % p.mtiles) * p.mc, j0 = (tile / p.mtiles) * p.nc;
  const int64_t mc = std::min(p.mc, p.M - i0), nc = std::min(p.nc, p.N - j0);
  for (int64_t k0 = 0; k0 < p.K; k0 += p.kc) {
    const int64_t kc = std::min(p.kc, p.K - k0);
    pack_a<T, MR>(p, i0, mc, k0, kc, abuf);
    pack_b<T, NR>(p, k0, kc, j0, nc, bbuf);
    const T beta = k0 == 0 ? p.beta : T(1);  // later K slices accumulate onto the first
    for (int64_t jr = 0; jr < nc; jr += NR)
      for (int64_t ir = 0; ir < mc; ir += MR)
        micro<T, MR, NV, V>(kc, abuf + ir * kc, bbuf + jr * kc, p.alpha, beta, p.C + (i0 + ir) * p.ldc + j0 + jr,
                            p.ldc, std::min<int64_t>(MR, mc - ir), std::min<int64_t>(NR, nc - jr));
  }
}

typedef float F32x4 __attribute__((vector_size(16)));
typedef float F32x8 __attribute__((vector_size(32)));
typedef double F64x2 __attribute__((vector_size(16)));
typedef double F64x4 __attribute__((vector_size(32)));

// A tile routine and the register tile it packs for. Six rows of two vectors keep 12 accumulators, two B vectors
// and one broadcast in the 16 vector registers of SSE2 and AVX2 alike.
template <class T>
struct Kernel {
  void (*tile)(const Problem<T>&, int64_t, T*, T*);
  int mr, nr;
  const char* name;
};

void tile_f32_portable(const Problem<float>& p, int64_t t, float* a, float* b) {
  run_tile<float, 6, 2, F32x4>(p, t, a, b);
}
void tile_f64_portable(const Problem<double>& p, int64_t t, double* a, double* b) {
  run_tile<double, 6, 2, F64x2>(p, t, a, b);
}
#if defined(NASH_GEMM_AVX2)
__attribute__((target("avx2,fma"))) void tile_f32_avx2(const Problem<float>& p, int64_t t, float* a, float* b) {
  run_tile<float, 6, 2, F32x8>(p, t, a, b);
}
__attribute__((target("avx2,fma"))) void tile_f64_avx2(const Problem<double>& p, int64_t t, double* a, double* b) {
  run_tile<double, 6, 2, F64x4>(p, t, a, b);
}
bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes && !g_force_portable.load(std::memory_order_relaxed);
}
#endif

const Kernel<float>& kernel(float*) {
#if defined(NASH_GEMM_AVX2)
  static const Kernel<float> avx2{tile_f32_avx2, 6, 16, "avx2"};
  if (has_avx2_fma()) return avx2;
#endif
  static const Kernel<float> portable{tile_f32_portable, 6, 8, "portable"};
  return portable;
}
const Kernel<double>& kernel(double*) {
#if defined(NASH_GEMM_AVX2)
  static const Kernel<double> avx2{tile_f64_avx2, 6, 8, "avx2"};
  if (has_avx2_fma()) return avx2;
#endif
  static const Kernel<double> portable{tile_f64_portable, 6, 4, "portable"};
  return portable;
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

constexpr int64_t kBlockK = 256;                  // packed B micro-panel (kc x NR) fits in L1
constexpr int64_t kBlockM = 96;                   // packed A block (mc x kc) fits in L2
constexpr int64_t kBlockN = 1024;                 // widest tile; narrowed when that leaves threads idle
constexpr double kParallelFlops = 1.0e7;          // below this a GEMM stays on one thread (fork-join costs)

// Per-thread packing buffers, kept between calls so that many small GEMMs do not allocate.
template <class T>
std::vector<T>& scratch(int which) {
  thread_local std::vector<T> bufs[2];
  return bufs[which];
}

template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* row = C + i * ldc;
    if (beta == T(0))
      std::fill(row, row + N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
  }
}

}  // namespace

template <class T>
void builtin_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                  int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const Kernel<T>& ker = kernel(static_cast<T*>(nullptr));
  Problem<T> p{ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0, 0, 0, 0, 0};
  p.kc = std::min(K, kBlockK);
  p.mc = std::min(round_up(M, ker.mr), kBlockM);
  p.nc = std::min(round_up(N, ker.nr), kBlockN);
  p.mtiles = (M + p.mc - 1) / p.mc;
  int threads = 1;
  if (!omp_in_parallel() && g_single_thread_depth.load(std::memory_order_relaxed) == 0 &&
      2.0 * M * N * K >= kParallelFlops)
    threads = omp_get_max_threads();
  if (threads > 1 && p.mtiles * ((N + p.nc - 1) / p.nc) < threads) {
    // Narrow the tiles (down to a few micro-panels) until every thread has one.
    const int64_t want_n = (threads + p.mtiles - 1) / p.mtiles;
    p.nc = std::max<int64_t>(4 * ker.nr, round_up((N + want_n - 1) / want_n, ker.nr));
  }
  p.ntiles = (N + p.nc - 1) / p.nc;
  const int64_t tiles = p.mtiles * p.ntiles;
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
  const std::size_t a_size = static_cast<std::size_t>(p.mc * p.kc), b_size = static_cast<std::size_t>(p.nc * p.kc);
  auto buffers = [&](T*& a, T*& b) {
    std::vector<T>& abuf = scratch<T>(0);
    std::vector<T>& bbuf = scratch<T>(1);
    if (abuf.size() < a_size) abuf.resize(a_size);
    if (bbuf.size() < b_size) bbuf.resize(b_size);
    a = abuf.data();
    b = bbuf.data();
  };
  if (threads <= 1) {  // no OpenMP region at all: small GEMMs are called often, from inside parallel regions too
    T *a, *b;
    buffers(a, b);
    for (int64_t t = 0; t < tiles; ++t) ker.tile(p, t, a, b);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    T *a, *b;
    buffers(a, b);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) ker.tile(p, t, a, b);
  }
}

// OpenBLAS always runs on the calling thread: nash sets its thread count to 1 before the first call and splits
// large GEMMs across its own OpenMP team (gemm() below). Two thread pools on the same cores fought: after an
// OpenMP region libgomp's workers spin for a while (the default wait policy), taking the core an OpenBLAS worker
// needed, whose master then spun and yielded in turn. A GAN step of the mixture app's 3 x 128 MLPs took 24.6 ms
// with both pools, 3.5 ms with OMP_WAIT_POLICY=passive and 4.0 ms with OpenBLAS on one thread.
void blas_on_calling_thread() {
#if defined(NASH_WITH_OPENBLAS)
  static const bool pinned = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)pinned;
#endif
}

#if defined(NASH_WITH_OPENBLAS)
namespace {

template <class T>
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
               int64_t ldb, T beta, T* C, int64_t ldc) {
  const auto oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, oa, ob, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, oa, ob, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

constexpr int64_t kMinSlice = 32;  // rows or columns of C per thread, at least (and slices start on multiples of 16)
constexpr double kSplitFlops = 2.0e6;  // below this a GEMM stays on one thread (~20 us of work; a team costs ~2)

}  // namespace
#endif

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
#if defined(NASH_WITH_OPENBLAS)
  blas_on_calling_thread();
  int parts = 1;
  if (M > 0 && N > 0 && !omp_in_parallel() && g_single_thread_depth.load(std::memory_order_relaxed) == 0 &&
      2.0 * M * N * K >= kSplitFlops)
    parts = omp_get_max_threads();
  // C is cut along its longer side into one contiguous slice per thread. Every element still comes from one BLAS
  // call over the whole K (no partial sums are added), though OpenBLAS may pick another micro-kernel for a slice
  // than for the whole, so the last bits can differ from a single-threaded call's.
  const bool by_cols = N >= M;
  const int64_t D = by_cols ? N : M;
  parts = static_cast<int>(std::min<int64_t>(parts, D / kMinSlice));
  if (parts <= 1) {
    blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    auto edge = [&](int64_t k) { return k >= nt ? D : std::min(D, D * k / nt / 16 * 16); };
    const int64_t lo = edge(t), hi = edge(t + 1);
    if (hi > lo) {
      if (by_cols)  // columns [lo, hi) of op(B): B's columns, or the rows of a transposed B
        blas_gemm(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + lo * ldb : B + lo, ldb, beta, C + lo, ldc);
      else  // rows [lo, hi) of op(A): A's rows, or the columns of a transposed A
        blas_gemm(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + lo * lda, lda, B, ldb, beta, C + lo * ldc, ldc);
    }
  }
#else
  builtin_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void builtin_gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                  int64_t, float, float*, int64_t);
template void builtin_gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                   const double*, int64_t, double, double*, int64_t);

const char* builtin_gemm_kernel() { return kernel(static_cast<float*>(nullptr)).name; }
void builtin_gemm_force_portable(bool on) { g_force_portable = on; }

const char* gemm_backend() {
#if defined(NASH_WITH_OPENBLAS)
  return "openblas";
#else
  return "builtin";
#endif
}

GemmSingleThreadGuard::GemmSingleThreadGuard() { g_single_thread_depth.fetch_add(1); }

GemmSingleThreadGuard::~GemmSingleThreadGuard() { g_single_thread_depth.fetch_sub(1); }

}  // namespace cpu

void set_num_threads(int n) {
  NASH_CHECK(n >= 1, "set_num_threads: need at least one thread, got ", n);
  omp_set_num_threads(n);  // OpenBLAS stays on one thread: gemm() splits across this team
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace nash
