// CUDA pooling and resampling on NCHW: one thread per output element; gradients are gathers, not atomics.
#include "kernels/cuda/backend.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
constexpr unsigned kThreads = 256;

struct PoolGeom {
  int64_t planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
};

__host__ __device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

__global__ void avg_pool_fwd(const float* __restrict__ x, float* __restrict__ y, PoolGeom g) {
  const int64_t n = g.planes * g.oh * g.ow;
  const float inv = 1.f / static_cast<float>(g.kh * g.kw);  // count_include_pad
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = i % g.ow, oh = (i / g.ow) % g.oh, pl = i / (g.ow * g.oh);
    const int64_t h0 = max64(oh * g.sh - g.ph, 0), h1 = min64(oh * g.sh - g.ph + g.kh, g.h);
    const int64_t w0 = max64(ow * g.sw - g.pw, 0), w1 = min64(ow * g.sw - g.pw + g.kw, g.w);
    const float* p = x + pl * g.h * g.w;
    float acc = 0.f;
    for (int64_t a = h0; a < h1; ++a)
      for (int64_t b = w0; b < w1; ++b) acc += p[a * g.w + b];
    y[i] = acc * inv;
  }
}

// Each input element sums the output gradients of the windows that cover it.
__global__ void avg_pool_bwd(const float* __restrict__ gy, float* __restrict__ gx, PoolGeom g) {
  const int64_t n = g.planes * g.h * g.w;
  const float inv = 1.f / static_cast<float>(g.kh * g.kw);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t w = i % g.w, h = (i / g.w) % g.h, pl = i / (g.w * g.h);
    // Windows oh with oh*s - p <= h < oh*s - p + k.
    const int64_t th = h + g.ph, tw = w + g.pw;
    const int64_t oh0 = th - g.kh + 1 <= 0 ? 0 : (th - g.kh + 1 + g.sh - 1) / g.sh, oh1 = min64(th / g.sh, g.oh - 1);
    const int64_t ow0 = tw - g.kw + 1 <= 0 ? 0 : (tw - g.kw + 1 + g.sw - 1) / g.sw, ow1 = min64(tw / g.sw, g.ow - 1);
    const float* p = gy + pl * g.oh * g.ow;
    float acc = 0.f;
    for (int64_t a = oh0; a <= oh1; ++a)
      for (int64_t b = ow0; b <= ow1; ++b) acc += p[a * g.ow + b];
    gx[i] = acc * inv;
  }
}

__global__ void upsample_fwd(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t h, int64_t w,
                             int64_t sc) {
  const int64_t oh = h * sc, ow = w * sc, n = planes * oh * ow;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % ow, r = (i / ow) % oh, pl = i / (ow * oh);
    y[i] = x[(pl * h + r / sc) * w + c / sc];
  }
}

__global__ void sum_pool_fwd(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t oh,
                             int64_t ow, int64_t sc) {
  const int64_t n = planes * oh * ow, w = ow * sc;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % ow, r = (i / ow) % oh, pl = i / (ow * oh);
    const float* p = x + (pl * oh * sc + r * sc) * w + c * sc;
    float acc = 0.f;
    for (int64_t a = 0; a < sc; ++a)
      for (int64_t b = 0; b < sc; ++b) acc += p[a * w + b];
    y[i] = acc;
  }
}

PoolGeom pool_geom(const Tensor& in, const Tensor& out, Int2 k, Int2 s, Int2 p) {
  return PoolGeom{in.size(0) * in.size(1), in.size(2), in.size(3), out.size(2), out.size(3), k.h, k.w,
                  s.h,                     s.w,        p.h,        p.w};
}
}  // namespace

void avg_pool2d(const Tensor& x, Int2 kernel, Int2 stride, Int2 padding, const Tensor& out) {
  require_float32("avg_pool2d", x);
  launch("avg_pool2d", avg_pool_fwd, dim3(blocks_for(out.numel(), kThreads)), dim3(kThreads), 0, current_stream(),
         x.data_ptr<float>(), out.data_ptr<float>(), pool_geom(x, out, kernel, stride, padding));
}

void avg_pool2d_grad(const Tensor& grad_out, Int2 kernel, Int2 stride, Int2 padding, const Tensor& grad_in) {
  require_float32("avg_pool2d_grad", grad_out);
  launch("avg_pool2d_grad", avg_pool_bwd, dim3(blocks_for(grad_in.numel(), kThreads)), dim3(kThreads), 0,
         current_stream(), grad_out.data_ptr<float>(), grad_in.data_ptr<float>(),
         pool_geom(grad_in, grad_out, kernel, stride, padding));
}

void upsample_nearest2d(const Tensor& x, int64_t scale, const Tensor& out) {
  require_float32("upsample_nearest2d", x);
  launch("upsample_nearest2d", upsample_fwd, dim3(blocks_for(out.numel(), kThreads)), dim3(kThreads), 0,
         current_stream(), x.data_ptr<float>(), out.data_ptr<float>(), x.size(0) * x.size(1), x.size(2), x.size(3),
         scale);
}

void sum_pool2d(const Tensor& x, int64_t scale, const Tensor& out) {
  require_float32("sum_pool2d", x);
  launch("sum_pool2d", sum_pool_fwd, dim3(blocks_for(out.numel(), kThreads)), dim3(kThreads), 0, current_stream(),
         x.data_ptr<float>(), out.data_ptr<float>(), out.size(0) * out.size(1), out.size(2), out.size(3), scale);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
