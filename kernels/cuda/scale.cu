// CUDA scaled copy out = x * c (the equalized-learning-rate weight scaling), four floats per thread when aligned.
#include "kernels/cuda/backend.h"
#include "kernels/math.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
constexpr unsigned kThreads = 256;

__global__ void scale_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, float c, bool vec) {
  const math::UnaryF<math::Unary::MulScalar, float> f{{c, 0.f}};
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x * 4;
  for (int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * 4; i < n; i += step) {
    if (vec && i + 4 <= n) {
      float4 v = *reinterpret_cast<const float4*>(x + i);
      v.x = f(v.x);
      v.y = f(v.y);
      v.z = f(v.z);
      v.w = f(v.w);
      *reinterpret_cast<float4*>(y + i) = v;
    } else {
      for (int64_t j = i; j < n && j < i + 4; ++j) y[j] = f(x[j]);
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
}  // namespace

void scale(const Tensor& x, double c, const Tensor& out) {
  require_float32("scale", out);
  NASH_CHECK(x.is_contiguous() && out.is_contiguous() && x.numel() == out.numel() && x.dtype() == out.dtype(),
             "scale: expects contiguous x and out of one dtype and size, got ", x.str(), " and ", out.str());
  const int64_t n = out.numel();
  const float* xp = x.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  launch("scale", scale_kernel, dim3(blocks_for((n + 3) / 4, kThreads)), dim3(kThreads), 0, current_stream(), xp, yp, n,
         static_cast<float>(c), aligned16(xp) && aligned16(yp));
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
