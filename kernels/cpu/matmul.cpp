// CPU matmul through the GEMM wrapper (OpenBLAS or built-in); transposed views are passed as GEMM transposes, never
// copied.
#include <omp.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {
// A 2-D operand as BLAS sees it: row-major data, whether it is transposed, and its leading dimension.
struct BlasView {
  Tensor t;
  bool trans = false;
  int64_t ld = 1;
};

BlasView as_blas(const Tensor& m) {
  int64_t r = m.size(0), c = m.size(1);
  const Shape& s = m.strides();
  if ((s[1] == 1 || c == 1) && s[0] >= std::max<int64_t>(c, 1)) return {m, false, std::max<int64_t>(s[0], 1)};
  if ((s[0] == 1 || r == 1) && s[1] >= std::max<int64_t>(r, 1)) return {m, true, std::max<int64_t>(s[1], 1)};
  Tensor cm = empty(m.shape(), m.dtype(), m.device());
  copy(m, cm);
  return {cm, false, std::max<int64_t>(c, 1)};
}
}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    fill(out, 0.0);
    return;
  }
  BlasView A = as_blas(a), B = as_blas(b);
  Tensor C = out;
  bool copy_back = !(out.strides()[1] == 1 && out.strides()[0] >= N);
  if (copy_back) C = empty(out.shape(), out.dtype(), out.device());
  const int64_t ldc = copy_back ? N : out.strides()[0];
  if (a.dtype() == DType::Float32) {
    gemm<float>(A.trans, B.trans, M, N, K, 1.0f, A.t.data_ptr<float>(), A.ld, B.t.data_ptr<float>(), B.ld, 0.0f,
                C.data_ptr<float>(), ldc);
  } else {
    gemm<double>(A.trans, B.trans, M, N, K, 1.0, A.t.data_ptr<double>(), A.ld, B.t.data_ptr<double>(), B.ld, 0.0,
                 C.data_ptr<double>(), ldc);
  }
  if (copy_back) copy(C, out);
}

void matmul_batch(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out) {
  const int64_t n = static_cast<int64_t>(out.size());
  double macs = 0;
  for (int64_t i = 0; i < n; ++i)
    macs += static_cast<double>(a[i].size(0)) * static_cast<double>(a[i].size(1)) * static_cast<double>(b[i].size(1));
  // A product below ~16M multiply-adds (self-attention's are 64 of 256 x 4 x 256) split across the threads spends
  // much of its time starting and joining the team; such batches give each thread whole products instead (inside
  // the region gemm runs on its own thread). Large products keep their own split.
  const bool by_product = n >= 2 && static_cast<int64_t>(omp_get_max_threads()) > 1 && !omp_in_parallel() &&
                          macs / static_cast<double>(n) < 16.0 * (1 << 20);
  parallel_for(n, by_product, [&](int64_t i) { matmul(a[i], b[i], out[i]); });
}

}  // namespace cpu
}  // namespace nash
