// CPU row reductions (sum in double, max, min, argmax) with a thread-count-independent summation order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {
constexpr int64_t kSumBlock = 4096;

template <class T>
double sum_row(const T* p, int64_t n) {
  // Pairwise over fixed blocks: accurate and identical for any number of threads.
  double acc = 0;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    int64_t e = std::min(n, b + kSumBlock);
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = b;
    for (; i + 4 <= e; i += 4) {
      s0 += p[i];
      s1 += p[i + 1];
      s2 += p[i + 2];
      s3 += p[i + 3];
    }
    for (; i < e; ++i) s0 += p[i];
    acc += (s0 + s1) + (s2 + s3);
  }
  return acc;
}

template <class T>
void reduce_typed(Reduce op, const T* x, int64_t rows, int64_t cols, T* out) {
  if (rows == 1 && op == Reduce::Sum && cols >= 2 * kParallelGrain) {
    // One long row: per-block partial sums in parallel, combined in block order.
    int64_t nb = (cols + kSumBlock - 1) / kSumBlock;
    std::vector<double> part(nb);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; ++b) part[b] = sum_row(x + b * kSumBlock, std::min(kSumBlock, cols - b * kSumBlock));
    double acc = 0;
    for (double v : part) acc += v;
    out[0] = static_cast<T>(acc);
    return;
  }
  parallel_for(rows, rows * cols >= kParallelGrain, [&](int64_t r) {
    const T* p = x + r * cols;
    if (op == Reduce::Sum) {
      out[r] = static_cast<T>(sum_row(p, cols));
    } else if (op == Reduce::Max) {
      T m = p[0];
      for (int64_t i = 1; i < cols; ++i) m = (p[i] > m || std::isnan(p[i])) ? p[i] : m;
      out[r] = m;
    } else {
      T m = p[0];
      for (int64_t i = 1; i < cols; ++i) m = (p[i] < m || std::isnan(p[i])) ? p[i] : m;
      out[r] = m;
    }
  });
}
}  // namespace

void reduce_rows(Reduce op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out) {
  if (x.dtype() == DType::Float32) reduce_typed(op, x.data_ptr<float>(), rows, cols, out.data_ptr<float>());
  else reduce_typed(op, x.data_ptr<double>(), rows, cols, out.data_ptr<double>());
}

void argmax_rows(const Tensor& x, int64_t rows, int64_t cols, const Tensor& out) {
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const T* p = x.data_ptr<T>();
    T* o = out.data_ptr<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = p + r * cols;
      int64_t best = 0;
      for (int64_t i = 1; i < cols; ++i)
        if (row[i] > row[best]) best = i;
      o[r] = static_cast<T>(best);
    }
  };
  if (x.dtype() == DType::Float32) run(0.0f);
  else run(0.0);
}

}  // namespace cpu
}  // namespace nash
