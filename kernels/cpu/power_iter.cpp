// CPU power iteration for spectral normalization: v = normalize(Wᵀu), u = normalize(Wv), sums in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {
constexpr int64_t kColBlock = 256;  // columns of Wᵀu one thread accumulates together

// x /= max(||x||, eps) with the norm summed in a fixed order.
template <class T>
void normalize(const std::vector<double>& acc, T* out, double eps) {
  double ss = 0;
  for (double a : acc) ss += a * a;
  const double inv = 1.0 / std::max(std::sqrt(ss), eps);
  for (std::size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<T>(acc[i] * inv);
}

// w (A, R, K) with strides (sa, sr, sk) is the R x (A*K) matrix W[r, a*K + k] = w[a, r, k].
template <class T>
void run(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps) {
  const int64_t A = w.size(0), rows = w.size(1), K = w.size(2), cols = A * K;
  const int64_t sa = w.strides()[0], sr = w.strides()[1], sk = w.strides()[2];
  const T* W = w.data_ptr<T>();
  T* U = u.data_ptr<T>();
  T* V = v.data_ptr<T>();
  std::vector<double> vacc(static_cast<std::size_t>(cols)), uacc(static_cast<std::size_t>(rows));
  const bool parallel = rows * cols >= kParallelGrain;
  const int64_t kblocks = (K + kColBlock - 1) / kColBlock, nblocks = A * kblocks;
  for (int64_t it = 0; it < n_iters; ++it) {
    // Wᵀu: each thread owns blocks of columns and walks the rows in order, so a row-major W is read along rows
    // and every column's sum has the same order for any thread count.
    parallel_for(nblocks, parallel, [&](int64_t b) {
      const int64_t a = b / kblocks, k0 = (b % kblocks) * kColBlock, k1 = std::min(K, k0 + kColBlock);
      double* acc = vacc.data() + a * K + k0;
      std::fill(acc, acc + (k1 - k0), 0.0);
      for (int64_t i = 0; i < rows; ++i) {
        const double ui = static_cast<double>(U[i]);
        const T* p = W + a * sa + i * sr;
        for (int64_t k = k0; k < k1; ++k) acc[k - k0] += static_cast<double>(p[k * sk]) * ui;
      }
    });
    normalize(vacc, V, eps);
    // Wv: one dot product per row.
    parallel_for(rows, parallel, [&](int64_t i) {
      double s0 = 0, s1 = 0;
      for (int64_t a = 0; a < A; ++a) {
        const T* p = W + a * sa + i * sr;
        const T* q = V + a * K;
        int64_t k = 0;
        for (; k + 2 <= K; k += 2) {
          s0 += static_cast<double>(p[k * sk]) * static_cast<double>(q[k]);
          s1 += static_cast<double>(p[(k + 1) * sk]) * static_cast<double>(q[k + 1]);
        }
        for (; k < K; ++k) s0 += static_cast<double>(p[k * sk]) * static_cast<double>(q[k]);
      }
      uacc[static_cast<std::size_t>(i)] = s0 + s1;
    });
    normalize(uacc, U, eps);
  }
}
}  // namespace

void power_iteration(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps) {
  if (w.dtype() == DType::Float32) run<float>(w, u, v, n_iters, eps);
  else run<double>(w, u, v, n_iters, eps);
}

void power_iteration_many(const std::vector<PowerIterationItem>& items, int64_t n_iters, double eps) {
  for (const PowerIterationItem& it : items) cpu::power_iteration(it.w, it.u, it.v, n_iters, eps);
}

}  // namespace cpu
}  // namespace nash
