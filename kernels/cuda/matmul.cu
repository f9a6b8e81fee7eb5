// CUDA matmul: nash's tiled SGEMM (igemm.h) on strided operands, and cuBLAS as the selectable vendor engine.
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
struct StridedMatrix {  // element (r, c) at p[r * rs + c * cs]
  const float* p;
  int64_t rs, cs;
  __host__ __device__ __forceinline__ float operator()(int64_t r, int64_t c) const { return p[r * rs + c * cs]; }
};
struct MatrixStore {
  float* p;
  int64_t rs, cs;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t r, int64_t c, float v) const {
    p[r * rs + c * cs] = v;
  }
};

void nash_matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  igemm("matmul", M, N, K, 1, StridedMatrix{a.data_ptr<float>(), a.strides()[0], a.strides()[1]},
        StridedMatrix{b.data_ptr<float>(), b.strides()[0], b.strides()[1]},
        MatrixStore{out.data_ptr<float>(), out.strides()[0], out.strides()[1]}, current_stream());
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
