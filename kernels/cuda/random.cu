// CUDA random fills from the same Philox stream as the CPU backend: equal seeds give equal tensors on both devices.
#include "kernels/cuda/backend.h"
#include "kernels/philox.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
template <bool normal>
__global__ void fill_random(float* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<float>(normal ? philox::normal_at(seed, offset, i) : philox::uniform_at(seed, offset, i));
}
}  // namespace

void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset) {
  require_float32("rand", out);
  const int64_t n = out.numel();
  launch("fill_uniform", fill_random<false>, dim3(blocks_for(n, 256)), dim3(256), 0, current_stream(),
         out.data_ptr<float>(), n, seed, offset);
}

void fill_normal(const Tensor& out, uint64_t seed, uint64_t offset) {
  require_float32("randn", out);
  const int64_t n = out.numel();
  launch("fill_normal", fill_random<true>, dim3(blocks_for(n, 256)), dim3(256), 0, current_stream(),
         out.data_ptr<float>(), n, seed, offset);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
