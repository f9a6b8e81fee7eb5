// CUDA matmul: nash's tiled SGEMM (igemm.h) on operands with a unit stride in either direction (others are copied
// first), and cuBLAS as the selectable vendor engine.
#include <cstdint>

#include "kernels/cuda/backend.h"
#include "kernels/cuda/igemm.h"
#include "nash/core/engine.h"

#if !defined(NASH_CUDA_EMULATION)
#include <cublas_v2.h>

#include <mutex>

#include "kernels/cuda/check.h"

namespace nash {
namespace detail {
inline bool status_ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
inline const char* status_text(cublasStatus_t s) { return cublasGetStatusString(s); }
}  // namespace detail
}  // namespace nash
#endif

namespace nash {
namespace NASH_CUDA_NS {

namespace {
// A matrix operand of the GEMM as (outer, k): element (i, k) at p[i * ld + k] when KContig (unit stride along k),
// at p[k * ld + i] otherwise (unit stride along the outer index). float4 fetches when the pointer is 16-byte aligned,
// ld a multiple of 4 and the contiguous extent too (then every group of four is wholly in or out of range).
template <bool KContig>
struct MatrixOperand {
  static constexpr bool kKFast = KContig;
  const float* p;
  int64_t ld;
  using Outer = int64_t;
  using Step = int64_t;
  __host__ __device__ __forceinline__ Outer outer(int64_t i) const { return KContig ? i * ld : i; }
  __host__ __device__ __forceinline__ Step step(int64_t k) const { return KContig ? k : k * ld; }
  __device__ __forceinline__ float load(Outer o, Step s) const { return __ldg(p + (o + s)); }
  __device__ __forceinline__ float4 load4(Outer o, Step s) const { return ldg_float4(p + (o + s)); }
  bool vec4_ok(int64_t outer_extent, int64_t K) const {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 4 == 0 && (KContig ? K : outer_extent) % 4 == 0;
  }
};
struct MatrixStore {
  float* p;
  int64_t rs, cs;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t r, int64_t c, float v) const {
    p[r * rs + c * cs] = v;
  }
};

// An operand (rows x cols, element (r, c) at r * rs + c * cs) as the GEMM sees it, with `outer_is_row` telling
// whether rows are its outer index (A) or its reduction index (B): which direction has unit stride, and the other
// stride. False when neither does (the caller copies it contiguous).
bool operand_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool outer_is_row, bool& k_contig,
                    int64_t& ld) {
  const int64_t outer_n = outer_is_row ? rows : cols, k_n = outer_is_row ? cols : rows;
  const int64_t outer_s = outer_is_row ? rs : cs, k_s = outer_is_row ? cs : rs;
  if (k_s == 1 || k_n == 1) {
    k_contig = true, ld = outer_s;
    return true;
  }
  if (outer_s == 1 || outer_n == 1) {
    k_contig = false, ld = k_s;
    return true;
  }
  return false;
}

template <bool KA, bool KB>
void nash_matmul_as(const Tensor& a, int64_t lda, const Tensor& b, int64_t ldb, const Tensor& out) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  igemm("matmul", M, N, K, MatrixOperand<KA>{a.data_ptr<float>(), lda}, MatrixOperand<KB>{b.data_ptr<float>(), ldb},
        MatrixStore{out.data_ptr<float>(), out.strides()[0], out.strides()[1]}, true, out.device());
}

void nash_matmul(const Tensor& a0, const Tensor& b0, const Tensor& out) {
  Tensor a = a0, b = b0;
  bool ka = true, kb = true;
  int64_t lda = 0, ldb = 0;
  if (!operand_layout(a.size(0), a.size(1), a.strides()[0], a.strides()[1], true, ka, lda)) {
    a = a0.contiguous();
    ka = true, lda = a.size(1);
  }
  if (!operand_layout(b.size(0), b.size(1), b.strides()[0], b.strides()[1], false, kb, ldb)) {
    b = b0.contiguous();
    kb = false, ldb = b.size(1);
  }
  if (ka && kb)
    nash_matmul_as<true, true>(a, lda, b, ldb, out);
  else if (ka)
    nash_matmul_as<true, false>(a, lda, b, ldb, out);
  else if (kb)
    nash_matmul_as<false, true>(a, lda, b, ldb, out);
  else
    nash_matmul_as<false, false>(a, lda, b, ldb, out);
}

#if !defined(NASH_CUDA_EMULATION)
cublasHandle_t handle(int device) {
  static std::mutex mu;
  static cublasHandle_t handles[64] = {};
  std::lock_guard<std::mutex> lock(mu);
  NASH_CHECK(device >= 0 && device < 64, "cuBLAS: invalid device ", device);
  if (!handles[device]) NASH_CUDA_CHECK(cublasCreate(&handles[device]));
  return handles[device];
}

// A row-major operand as cuBLAS (column-major) sees it: a matrix stored with unit column stride is, read
// column-major, its own transpose.
bool blas_layout(const Tensor& m, bool& trans, int64_t& ld) {
  const int64_t r = m.size(0), c = m.size(1), rs = m.strides()[0], cs = m.strides()[1];
  if ((cs == 1 || c == 1) && rs >= std::max<int64_t>(c, 1)) {
    trans = false;
    ld = std::max<int64_t>(rs, 1);
    return true;
  }
  if ((rs == 1 || r == 1) && cs >= std::max<int64_t>(r, 1)) {
    trans = true;
    ld = std::max<int64_t>(cs, 1);
    return true;
  }
  return false;
}

void cublas_matmul(const Tensor& a0, const Tensor& b0, const Tensor& out) {
  Tensor a = a0, b = b0;
  bool ta, tb;
  int64_t lda, ldb;
  if (!blas_layout(a, ta, lda)) {
    a = a0.contiguous();
    blas_layout(a, ta, lda);
  }
  if (!blas_layout(b, tb, ldb)) {
    b = b0.contiguous();
    blas_layout(b, tb, ldb);
  }
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  NASH_CHECK(out.strides()[1] == 1 && out.strides()[0] >= N, "matmul (cuBLAS): output must have unit column stride");
  const float alpha = 1.f, beta = 0.f;
  // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ.
  NASH_CUDA_CHECK(cublasSgemm(handle(out.device().index), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha,
                                b.data_ptr<float>(), static_cast<int>(ldb), a.data_ptr<float>(), static_cast<int>(lda),
                                &beta, out.data_ptr<float>(), static_cast<int>(out.strides()[0])));
}
#endif
}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  require_float32("matmul", a);
  if (a.size(1) == 0) {
    fill(out, 0.0);
    return;
  }
#if !defined(NASH_CUDA_EMULATION)
  if (matmul_engine() == MatmulEngine::CuBLAS && out.strides()[1] == 1) {
    cublas_matmul(a, b, out);
    return;
  }
#endif
  nash_matmul(a, b, out);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
