// CUDA row reductions: a block reduces one chunk of one row (strided loads, warp shuffles, shared memory across
// warps); long rows take a second pass over per-chunk partials. Fixed partitions make results deterministic.
#include <cmath>

#include "kernels/cuda/backend.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
constexpr unsigned kThreads = 256;
constexpr int64_t kMinChunk = 4096;

template <Reduce op>
struct Combine {
  __host__ __device__ __forceinline__ static float identity() {
    return op == Reduce::Sum ? 0.f : (op == Reduce::Max ? -INFINITY : INFINITY);
  }
  __host__ __device__ __forceinline__ static float apply(float a, float b) {
    if (op == Reduce::Sum) return a + b;
    if (b != b) return b;  // NaN wins, as on the CPU
    if (a != a) return a;
    return op == Reduce::Max ? (b > a ? b : a) : (b < a ? b : a);
  }
};

// out[row * nchunks + c] = reduce(x[row, c*chunk .. min(cols, (c+1)*chunk)))
template <Reduce op>
__global__ void reduce_chunks(const float* __restrict__ x, int64_t rows, int64_t cols, int64_t chunk,
                              float* __restrict__ out) {
  using C = Combine<op>;
  NASH_SHARED(float, warp_part, [kThreads / 32]);
  const int64_t nchunks = gridDim.x;
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const int64_t begin = blockIdx.x * chunk;
    const int64_t end = begin + chunk < cols ? begin + chunk : cols;
    const float* p = x + row * cols;
    float acc = C::identity();
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) acc = C::apply(acc, p[i]);
    for (int o = 16; o > 0; o /= 2) acc = C::apply(acc, __shfl_down_sync(0xffffffffu, acc, o));
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_part[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = lane < blockDim.x / 32 ? warp_part[lane] : C::identity();
      for (int o = 16; o > 0; o /= 2) acc = C::apply(acc, __shfl_down_sync(0xffffffffu, acc, o));
      if (lane == 0) out[row * nchunks + blockIdx.x] = acc;
    }
    __syncthreads();  // warp_part is reused by the next row
  }
}

// Short rows: one thread reduces a whole row serially (many rows, few columns, e.g. a reduction over a batch).
template <Reduce op>
__global__ void reduce_short_rows(const float* __restrict__ x, int64_t rows, int64_t cols, float* __restrict__ out) {
  using C = Combine<op>;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float* p = x + row * cols;
    float acc = C::identity();
    for (int64_t i = 0; i < cols; ++i) acc = C::apply(acc, p[i]);
    out[row] = acc;
  }
}

__global__ void argmax_kernel(const float* __restrict__ x, int64_t rows, int64_t cols, float* __restrict__ out) {
  NASH_SHARED(float, best_v, [kThreads / 32]);
  NASH_SHARED(int64_t, best_i, [kThreads / 32]);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* p = x + row * cols;
    float bv = -INFINITY;
    int64_t bi = cols;  // "none yet"
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      if (bi == cols || p[i] > bv) {
        bv = p[i];
        bi = i;
      }
    // Ties and merges keep the smallest index, like the CPU loop.
    for (int o = 16; o > 0; o /= 2) {
      float ov = __shfl_down_sync(0xffffffffu, bv, o);
      int64_t oi = __shfl_down_sync(0xffffffffu, bi, o);
      if (oi != cols && (bi == cols || ov > bv || (ov == bv && oi < bi))) {
        bv = ov;
        bi = oi;
      }
    }
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
      best_v[warp] = bv;
      best_i[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (unsigned w = 1; w < blockDim.x / 32; ++w)
        if (best_i[w] != cols && (bi == cols || best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi))) {
          bv = best_v[w];
          bi = best_i[w];
        }
      out[row] = static_cast<float>(bi == cols ? 0 : bi);
    }
    __syncthreads();
  }
}

constexpr int64_t kShortRow = 64;

template <Reduce op>
void run(const float* x, int64_t rows, int64_t cols, float* out, Device device) {
  if (cols <= kShortRow) {
    launch("reduce_short_rows", reduce_short_rows<op>, dim3(blocks_for(rows, kThreads)), dim3(kThreads), 0,
           current_stream(), x, rows, cols, out);
    return;
  }
  // Enough blocks to fill the device: split long rows into chunks, then reduce the chunk partials.
  int64_t want_chunks = rows >= 512 ? 1 : (512 + rows - 1) / rows;
  int64_t max_chunks = (cols + kMinChunk - 1) / kMinChunk;
  int64_t nchunks = want_chunks < max_chunks ? want_chunks : max_chunks;
  if (nchunks < 1) nchunks = 1;
  int64_t chunk = (cols + nchunks - 1) / nchunks;
  unsigned gy = static_cast<unsigned>(rows < 65535 ? rows : 65535);
  if (nchunks == 1) {
    launch("reduce_rows", reduce_chunks<op>, dim3(1, gy), dim3(kThreads), 0, current_stream(), x, rows, cols,
           cols, out);
    return;
  }
  Tensor partial = empty({rows, nchunks}, DType::Float32, device);
  launch("reduce_rows_partial", reduce_chunks<op>, dim3(static_cast<unsigned>(nchunks), gy), dim3(kThreads), 0,
         current_stream(), x, rows, cols, chunk, partial.data_ptr<float>());
  launch("reduce_rows_final", reduce_chunks<op>, dim3(1, gy), dim3(kThreads), 0, current_stream(),
         static_cast<const float*>(partial.data_ptr<float>()), rows, nchunks, nchunks, out);
}
}  // namespace

void reduce_rows(Reduce op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out) {
  require_float32("reduce", x);
  if (rows == 0) return;
  const float* xp = x.data_ptr<float>();
  float* op_ = out.data_ptr<float>();
  if (cols == 0) {
    fill_raw(op_, rows, DType::Float32, 0.0, current_stream());
    return;
  }
  switch (op) {
    case Reduce::Sum: run<Reduce::Sum>(xp, rows, cols, op_, x.device()); break;
    case Reduce::Max: run<Reduce::Max>(xp, rows, cols, op_, x.device()); break;
    case Reduce::Min: run<Reduce::Min>(xp, rows, cols, op_, x.device()); break;
  }
}

void argmax_rows(const Tensor& x, int64_t rows, int64_t cols, const Tensor& out) {
  require_float32("argmax", x);
  if (rows == 0) return;
  launch("argmax", argmax_kernel, dim3(static_cast<unsigned>(rows < 65535 ? rows : 65535)), dim3(kThreads), 0,
         current_stream(), x.data_ptr<float>(), rows, cols, out.data_ptr<float>());
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
