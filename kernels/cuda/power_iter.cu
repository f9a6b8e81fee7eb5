// CUDA power iteration for spectral normalization: one block per matrix runs all its iterations, with barriers
// between the two matvecs; the matrices of a whole model go in one launch, described in the kernel's parameters.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/backend.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
constexpr unsigned kThreads = 256;
constexpr unsigned kWarps = kThreads / 32;
// Descriptors travel in the launch's parameter space (4 KiB), so no separate upload or host sync is needed.
constexpr int kMaxPerLaunch = 48;

// w (A, rows, K) with strides (sa, sr, sk): the rows x (A*K) matrix W[r, a*K + k] = w[a, r, k]; u, v contiguous.
struct PowerIterDesc {
  const float* w;
  float* u;
  float* v;
  int64_t A, rows, K, sa, sr, sk;
};
struct PowerIterBatch {
  PowerIterDesc d[kMaxPerLaunch];
};
static_assert(sizeof(PowerIterBatch) + 16 <= 4096, "power_iteration: descriptors exceed the kernel parameter space");

// Block-wide sum, returned to every thread; part has kWarps + 1 slots. Called by all threads of the block.
__device__ __forceinline__ float block_sum(float x, float* part) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_down_sync(0xffffffffu, x, o);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = x;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (unsigned w = 0; w < kWarps; ++w) t += part[w];  // fixed order: deterministic
    part[kWarps] = t;
  }
  __syncthreads();
  return part[kWarps];
}

// Block b iterates matrix b: v = normalize(Wᵀu) with a thread per column (neighbouring threads read neighbouring
// elements of a row of W), then u = normalize(Wv) with a warp per row. Each thread rescales exactly the
// entries it wrote, so only the next matvec needs a barrier.
__global__ void __launch_bounds__(kThreads) power_iter_kernel(PowerIterBatch batch, int n_iters, float eps) {
  NASH_SHARED(float, part, [kWarps + 1]);
  const PowerIterDesc d = batch.d[blockIdx.x];
  const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t cols = d.A * d.K;
  for (int it = 0; it < n_iters; ++it) {
    float ss = 0.f;
    for (int64_t j = tid; j < cols; j += kThreads) {
      const int64_t a = j / d.K;
      const float* col = d.w + a * d.sa + (j - a * d.K) * d.sk;
      float acc = 0.f;
      for (int64_t i = 0; i < d.rows; ++i) acc += col[i * d.sr] * d.u[i];
      d.v[j] = acc;
      ss += acc * acc;
    }
    float inv = 1.f / fmaxf(sqrtf(block_sum(ss, part)), eps);
    for (int64_t j = tid; j < cols; j += kThreads) d.v[j] *= inv;
    __syncthreads();

    ss = 0.f;
    for (int64_t i = warp; i < d.rows; i += kWarps) {  // warp-uniform trip count: full-mask shuffles are safe
      const float* row = d.w + i * d.sr;
      float acc = 0.f;
      // Column j = a*K + k advanced by 32 without a division per element.
      int64_t a = lane / d.K, k = lane - a * d.K;
      for (int64_t j = lane; j < cols; j += 32) {
        acc += row[a * d.sa + k * d.sk] * d.v[j];
        for (k += 32; k >= d.K; k -= d.K) ++a;
      }
      for (int o = 16; o > 0; o /= 2) acc += __shfl_down_sync(0xffffffffu, acc, o);
      if (lane == 0) {
        d.u[i] = acc;
        ss += acc * acc;
      }
    }
    inv = 1.f / fmaxf(sqrtf(block_sum(ss, part)), eps);
    if (lane == 0)
      for (int64_t i = warp; i < d.rows; i += kWarps) d.u[i] *= inv;
    __syncthreads();
  }
}
}  // namespace

void power_iteration_many(const std::vector<PowerIterationItem>& items, int64_t n_iters, double eps) {
  for (const PowerIterationItem& it : items) require_float32("power_iteration", it.w);
  if (n_iters <= 0) return;
  for (std::size_t start = 0; start < items.size(); start += kMaxPerLaunch) {
    const std::size_t n = std::min<std::size_t>(kMaxPerLaunch, items.size() - start);
    PowerIterBatch batch{};
    for (std::size_t k = 0; k < n; ++k) {
      const PowerIterationItem& it = items[start + k];
      const Shape& st = it.w.strides();
      batch.d[k] = {it.w.data_ptr<float>(), it.u.data_ptr<float>(), it.v.data_ptr<float>(), it.w.size(0),
                    it.w.size(1), it.w.size(2), st[0], st[1], st[2]};
    }
    launch("power_iteration", power_iter_kernel, dim3(static_cast<unsigned>(n)), dim3(kThreads), 0,
           current_stream(), batch, static_cast<int>(n_iters), static_cast<float>(eps));
  }
}

void power_iteration(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps) {
  NASH_CUDA_NS::power_iteration_many({PowerIterationItem{w, u, v}}, n_iters, eps);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
