// CUDA matmul: nash's tiled SGEMM (igemm.h) on operands with a unit stride in either direction (others are copied
// first), and cuBLAS as the selectable vendor engine.
#include <cstdint>
#include <type_traits>
#include <vector>

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

// Calls f(std::bool_constant<ka>, std::bool_constant<kb>): the operand layouts as template arguments.
template <class F>
void with_layouts(bool ka, bool kb, F&& f) {
  if (ka && kb)
    f(std::true_type{}, std::true_type{});
  else if (ka)
    f(std::true_type{}, std::false_type{});
  else if (kb)
    f(std::false_type{}, std::true_type{});
  else
    f(std::false_type{}, std::false_type{});
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
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  with_layouts(ka, kb, [&](auto KA, auto KB) {
    igemm("matmul", M, N, K, MatrixOperand<decltype(KA)::value>{a.data_ptr<float>(), lda},
          MatrixOperand<decltype(KB)::value>{b.data_ptr<float>(), ldb},
          MatrixStore{out.data_ptr<float>(), out.strides()[0], out.strides()[1]}, true, out.device());
  });
}

// A batch of products with one shape and layout whose operands lie a fixed number of elements apart (0: shared by
// every product): the igemm's groups, one launch for the batch.
template <bool KA, bool KB>
struct BatchJob {
  using A = MatrixOperand<KA>;
  using B = MatrixOperand<KB>;
  int64_t M, N, K;
  A a;
  B b;
  MatrixStore store;
  int64_t sa, sb, so;  // batch strides of A, B and C, in elements
  __host__ __device__ __forceinline__ Gemm<A, B, MatrixStore> group(unsigned g) const {
    const int64_t i = static_cast<int64_t>(g);
    return {M, N, K, A{a.p + i * sa, a.ld}, B{b.p + i * sb, b.ld}, MatrixStore{store.p + i * so, store.rs, store.cs}};
  }
};

// The batch stride of ts (all of one shape and strides, each starting `stride` elements after the one before), or
// false when they are not laid out that way.
bool uniform_batch(const std::vector<Tensor>& ts, int64_t& stride) {
  const float* p0 = ts[0].data_ptr<float>();
  stride = ts.size() > 1 ? ts[1].data_ptr<float>() - p0 : 0;
  for (std::size_t i = 0; i < ts.size(); ++i)
    if (ts[i].shape() != ts[0].shape() || ts[i].strides() != ts[0].strides() ||
        ts[i].data_ptr<float>() != p0 + static_cast<int64_t>(i) * stride)
      return false;
  return true;
}

template <bool KA, bool KB>
void batched_as(const std::vector<Tensor>& a, int64_t lda, int64_t sa, const std::vector<Tensor>& b, int64_t ldb,
                int64_t sb, const std::vector<Tensor>& out, int64_t so) {
  const int64_t M = a[0].size(0), K = a[0].size(1), N = b[0].size(1), groups = static_cast<int64_t>(out.size());
  const BatchJob<KA, KB> job{M,  N,  K,  {a[0].data_ptr<float>(), lda}, {b[0].data_ptr<float>(), ldb},
                             {out[0].data_ptr<float>(), out[0].strides()[0], out[0].strides()[1]}, sa, sb, so};
  // Float4 fetches when the first product's operands allow them and every other product's start stays aligned.
  const bool vec4 = job.a.vec4_ok(M, K) && job.b.vec4_ok(N, K) && sa % 4 == 0 && sb % 4 == 0;
  const GemmPlan plan = plan_for_device(M, N, K, true, groups, large_tile_fits<BatchJob<KA, KB>>());
  run_igemm("matmul", plan, vec4, M, N, K, groups, job, out[0].device());
}

// Whether the batch ran as one igemm launch: float32 products of one shape whose operands are uniformly strided,
// each with a unit stride in some direction, on the nash engine.
bool batched_matmul(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out) {
  int64_t sa = 0, sb = 0, so = 0;
  if (!uniform_batch(a, sa) || !uniform_batch(b, sb) || !uniform_batch(out, so)) return false;
  if (a[0].size(1) == 0 || static_cast<int64_t>(out.size()) > 65535) return false;
  bool ka = true, kb = true;
  int64_t lda = 0, ldb = 0;
  if (!operand_layout(a[0].size(0), a[0].size(1), a[0].strides()[0], a[0].strides()[1], true, ka, lda) ||
      !operand_layout(b[0].size(0), b[0].size(1), b[0].strides()[0], b[0].strides()[1], false, kb, ldb))
    return false;
  with_layouts(ka, kb, [&](auto KA, auto KB) {
    batched_as<decltype(KA)::value, decltype(KB)::value>(a, lda, sa, b, ldb, sb, out, so);
  });
  return true;
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

// A uniform batch (see uniform_batch) as one cublasSgemmStridedBatched call; false when it is not one.
bool cublas_batched(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out) {
  int64_t sa = 0, sb = 0, so = 0;
  if (!uniform_batch(a, sa) || !uniform_batch(b, sb) || !uniform_batch(out, so)) return false;
  bool ta = false, tb = false;
  int64_t lda = 0, ldb = 0;
  if (!blas_layout(a[0], ta, lda) || !blas_layout(b[0], tb, ldb)) return false;
  const int64_t M = a[0].size(0), K = a[0].size(1), N = b[0].size(1);
  if (K == 0 || out[0].strides()[1] != 1 || out[0].strides()[0] < N) return false;
  const float alpha = 1.f, beta = 0.f;
  // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ, product by product.
  NASH_CUDA_CHECK(cublasSgemmStridedBatched(
      handle(out[0].device().index), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, b[0].data_ptr<float>(),
      static_cast<int>(ldb), sb, a[0].data_ptr<float>(), static_cast<int>(lda), sa, &beta, out[0].data_ptr<float>(),
      static_cast<int>(out[0].strides()[0]), so, static_cast<int>(out.size())));
  return true;
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

void matmul_batch(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out) {
  if (out.empty()) return;
  require_float32("matmul", a[0]);
  bool done = false;
#if !defined(NASH_CUDA_EMULATION)
  if (matmul_engine() == MatmulEngine::CuBLAS)
    done = cublas_batched(a, b, out);
  else
#endif
    done = batched_matmul(a, b, out);
  if (!done)
    for (std::size_t i = 0; i < out.size(); ++i) matmul(a[i], b[i], out[i]);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
