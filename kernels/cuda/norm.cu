// CUDA batch normalization in training mode (ops.h batch_norm_train): one block per channel reads the channel's
// N planes to its statistics (the mean, then the squared deviations from it) and writes the output (forward), or
// reads them to the two sums of the backward and writes the input gradient: one launch per pass, against the eight
// or so launches and temporaries of the composite formula.
#include <cmath>

#include "kernels/cuda/backend.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
constexpr unsigned kThreads = 256;

// The sum of every thread's v, returned to all threads (each adds the warps' partials in the same order).
__device__ __forceinline__ float block_sum(float v, float* part) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float t = 0.f;
  for (unsigned k = 0; k < blockDim.x / 32; ++k) t += part[k];
  __syncthreads();  // part is reused by the next sum
  return t;
}

// Element j < N * S of channel c in a contiguous (N, C, S) tensor.
__device__ __forceinline__ int64_t at(int64_t j, int64_t c, int64_t C, int64_t S) {
  const int64_t n = j / S;
  return (n * C + c) * S + (j - n * S);
}

__global__ void bn_forward(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                           float eps, int64_t N, int64_t C, int64_t S, float* __restrict__ y,
                           float* __restrict__ mean, float* __restrict__ var, float* __restrict__ inv) {
  NASH_SHARED(float, part, [kThreads / 32]);
  const int64_t M = N * S;
  const float fm = static_cast<float>(M);
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) s += x[at(j, c, C, S)];
    const float m = block_sum(s, part) / fm;
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      const float d = x[at(j, c, C, S)] - m;
      q += d * d;
    }
    const float v = block_sum(q, part) / fm;
    const float is = 1.f / sqrtf(v + eps);
    if (threadIdx.x == 0) {
      mean[c] = m;
      var[c] = v;
      inv[c] = is;
    }
    const float k = (w ? w[c] : 1.f) * is, d = (b ? b[c] : 0.f) - m * k;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      const int64_t i = at(j, c, C, S);
      y[i] = x[i] * k + d;
    }
  }
}

__global__ void bn_backward(const float* __restrict__ g, const float* __restrict__ x, const float* __restrict__ mean,
                            const float* __restrict__ inv, const float* __restrict__ w, int64_t N, int64_t C, int64_t S,
                            float* __restrict__ gx, float* __restrict__ gw, float* __restrict__ gb) {
  NASH_SHARED(float, part, [kThreads / 32]);
  const int64_t M = N * S;
  const float fm = static_cast<float>(M);
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const float m = mean[c], is = inv[c];
    float sg = 0.f, sgd = 0.f;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      const int64_t i = at(j, c, C, S);
      sg += g[i];
      sgd += g[i] * (x[i] - m);
    }
    sg = block_sum(sg, part);
    sgd = block_sum(sgd, part);
    if (threadIdx.x == 0) {
      gb[c] = sg;
      gw[c] = sgd * is;
    }
    if (!gx) continue;
    // gx = w * invstd * (g - mean(g) - xhat * mean(g * xhat)) = a * g + e * x + f.
    const float a = (w ? w[c] : 1.f) * is;
    const float e = -a * is * is * sgd / fm;
    const float f = -a * sg / fm - e * m;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      const int64_t i = at(j, c, C, S);
      gx[i] = a * g[i] + e * x[i] + f;
    }
  }
}

unsigned channel_blocks(int64_t C) { return static_cast<unsigned>(C < 65535 * 8 ? C : 65535 * 8); }

const float* data_or_null(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& mean, const Tensor& var, const Tensor& invstd) {
  require_float32("batch_norm_train", x);
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  launch("batch_norm_forward", bn_forward, dim3(channel_blocks(C)), dim3(kThreads), 0, current_stream(),
         x.data_ptr<float>(), data_or_null(weight), data_or_null(bias), static_cast<float>(eps), N, C, S,
         out.data_ptr<float>(), mean.data_ptr<float>(), var.data_ptr<float>(), invstd.data_ptr<float>());
}

void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& weight, const Tensor& grad_in, const Tensor& grad_weight,
                         const Tensor& grad_bias) {
  require_float32("batch_norm_train", x);
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  launch("batch_norm_backward", bn_backward, dim3(channel_blocks(C)), dim3(kThreads), 0, current_stream(),
         grad_out.data_ptr<float>(), x.data_ptr<float>(), mean.data_ptr<float>(), invstd.data_ptr<float>(),
         data_or_null(weight), N, C, S, grad_in.defined() ? grad_in.data_ptr<float>() : nullptr,
         grad_weight.data_ptr<float>(), grad_bias.data_ptr<float>());
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
