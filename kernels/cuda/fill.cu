// CUDA fill of a contiguous device buffer (used by Tensor::fill_ on CUDA tensors).
#include "kernels/cuda/compat.h"
#include "kernels/cuda/backend.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
template <class T>
__global__ void fill_kernel(T* __restrict__ p, int64_t n, T v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = v;
}
}  // namespace

void fill_raw(void* data, int64_t n, DType dtype, double value, Stream stream) {
  const unsigned threads = 256;
  const unsigned blocks = blocks_for(n, threads);
  if (dtype == DType::Float32)
    launch("fill", fill_kernel<float>, dim3(blocks), dim3(threads), 0, stream, static_cast<float*>(data), n,
           static_cast<float>(value));
  else
    launch("fill", fill_kernel<double>, dim3(blocks), dim3(threads), 0, stream, static_cast<double*>(data), n, value);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
