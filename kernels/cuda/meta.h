// Kernel-side tensor geometry: sizes and per-operand element strides passed by value into CUDA kernels.
#pragma once
#include <cstdint>

#include "kernels/cuda/compat.h"
#include "nash/core/tensor.h"

namespace nash {
namespace NASH_CUDA_NS {

constexpr int kMaxDims = 8;

// Up to N operands over one iteration shape (the output's); offsets computed from a linear index.
template <int N>
struct Strided {
  int nd = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  __host__ __device__ __forceinline__ void offsets(int64_t linear, int64_t* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t i = linear % size[d];
      linear /= size[d];
      for (int k = 0; k < N; ++k) off[k] += i * stride[k][d];
    }
  }
};

// Builds the geometry for operands that all have `shape` (broadcast operands carry stride 0).
template <int N>
Strided<N> make_strided(const Shape& shape, const Tensor* const (&ops)[N]) {
  Strided<N> m;
  NASH_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "CUDA kernels support up to ", kMaxDims, " dims, got ",
             shape_str(shape));
  m.nd = static_cast<int>(shape.size());
  for (int d = 0; d < m.nd; ++d) {
    m.size[d] = shape[d];
    for (int k = 0; k < N; ++k) m.stride[k][d] = ops[k]->strides()[d];
  }
  return m;
}

inline bool dense(const Tensor& t, const Shape& shape) { return t.shape() == shape && t.is_contiguous(); }

}  // namespace NASH_CUDA_NS
}  // namespace nash
