// CUDA fill of a contiguous device buffer (the first kernel of the CUDA backend; used by Tensor::fill_ on CUDA).
#include <cuda_runtime.h>

#include "core/backend.h"

namespace nash {
namespace detail {

namespace {
template <class T>
__global__ void fill_kernel(T* __restrict__ p, int64_t n, T v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = v;
}
}  // namespace

void cuda_fill(void* data, int64_t n, DType dtype, double value, int device) {
  if (n == 0) return;
  NASH_CHECK(cudaSetDevice(device) == cudaSuccess, "cuda_fill: cannot select cuda:", device);
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
  if (dtype == DType::Float32)
    fill_kernel<float><<<blocks, threads>>>(static_cast<float*>(data), n, static_cast<float>(value));
  else
    fill_kernel<double><<<blocks, threads>>>(static_cast<double*>(data), n, value);
  cudaError_t err = cudaGetLastError();
  NASH_CHECK(err == cudaSuccess, "cuda_fill: kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace detail
}  // namespace nash
