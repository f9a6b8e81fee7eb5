// CUDA convolutions as implicit GEMMs (no im2col buffer): forward, gradient w.r.t. input and w.r.t. weight,
// each a gather policy over NCHW tensors fed to the shared tiled GEMM of igemm.h.
#include "kernels/cuda/backend.h"
#include "kernels/cuda/conv_gather.h"
#include "kernels/cuda/igemm.h"
#include "nash/core/engine.h"

#if !defined(NASH_CUDA_EMULATION)  // the emulation never runs cuDNN
#include "kernels/cuda/cudnn_conv.h"
#endif

namespace nash {
namespace NASH_CUDA_NS {

namespace {

struct FwdStore {  // out[n, m, oh, ow] = v + bias[m]
  float* out;
  const float* bias;
  ConvGeom g;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t m, int64_t col, float v) const {
    const int64_t sp = col % (g.oh * g.ow), n = col / (g.oh * g.ow);
    out[(n * g.o + m) * g.oh * g.ow + sp] = v + (bias ? bias[m] : 0.f);
  }
};

struct GradInA {  // A[c, (o, kh, kw)] = w[o, c, kh, kw]
  const float* w;
  ConvGeom g;
  __host__ __device__ __forceinline__ float operator()(int64_t c, int64_t k) const {
    const int64_t khw = k % (g.kh * g.kw), o = k / (g.kh * g.kw);
    return w[(o * g.c + c) * g.kh * g.kw + khw];
  }
};
struct GradInB {  // B[(o, kh, kw), (n, h, w)] = gy[n, o, oh, ow] where h = oh*s - p + kh*d
  const float* gy;
  ConvGeom g;
  __host__ __device__ __forceinline__ float operator()(int64_t k, int64_t col) const {
    const int64_t kw = k % g.kw, kh = (k / g.kw) % g.kh, o = k / (g.kw * g.kh);
    const int64_t iw = col % g.w, ih = (col / g.w) % g.h, n = col / (g.w * g.h);
    const int64_t th = ih + g.ph - kh * g.dh, tw = iw + g.pw - kw * g.dw;
    if (th < 0 || tw < 0 || th % g.sh != 0 || tw % g.sw != 0) return 0.f;
    const int64_t oh = th / g.sh, ow = tw / g.sw;
    if (oh >= g.oh || ow >= g.ow) return 0.f;
    return gy[((n * g.o + o) * g.oh + oh) * g.ow + ow];
  }
};
struct GradInStore {  // gx[n, c, h, w]
  float* gx;
  ConvGeom g;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t c, int64_t col, float v) const {
    const int64_t sp = col % (g.h * g.w), n = col / (g.h * g.w);
    gx[(n * g.c + c) * g.h * g.w + sp] = v;
  }
};

struct GradWA {  // A[o, (n, oh, ow)] = gy[n, o, oh, ow]
  const float* gy;
  ConvGeom g;
  __host__ __device__ __forceinline__ float operator()(int64_t o, int64_t k) const {
    const int64_t sp = k % (g.oh * g.ow), n = k / (g.oh * g.ow);
    return gy[(n * g.o + o) * g.oh * g.ow + sp];
  }
};
struct GradWB {  // B[(n, oh, ow), (c, kh, kw)] = x gathered
  const float* x;
  ConvGeom g;
  __host__ __device__ __forceinline__ float operator()(int64_t k, int64_t col) const { return gather_x(x, g, col, k); }
};
struct SliceStore {  // partial[slice, m, n]
  float* part;
  int64_t M, N;
  __host__ __device__ __forceinline__ void operator()(unsigned slice, int64_t m, int64_t n, float v) const {
    part[(static_cast<int64_t>(slice) * M + m) * N + n] = v;
  }
};

// out[i] = sum over s of part[s, i], in slice order (deterministic).
__global__ void sum_slices(const float* __restrict__ part, int64_t slices, int64_t n, float* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int64_t k = 0; k < slices; ++k) s += part[k * n + i];
    out[i] = s;
  }
}

}  // namespace

void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Int2 stride, Int2 padding, Int2 dilation,
            const Tensor& out) {
  require_float32("conv2d", x);
#if !defined(NASH_CUDA_EMULATION)
  if (conv_engine() == ConvEngine::CuDNN)
    return cudnn_conv2d(x, w, bias, stride, padding, dilation, out, current_stream());
#endif
  ConvGeom g = geom(x, out, w.size(0), w.size(1), w.size(2), w.size(3), stride, padding, dilation, true);
  const int64_t K = g.c * g.kh * g.kw;
  igemm("conv2d", g.o, g.n * g.oh * g.ow, K, 1, FwdA{w.data_ptr<float>(), K}, FwdB{x.data_ptr<float>(), g},
        FwdStore{out.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, g}, current_stream());
}

void conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                       const Tensor& grad_in) {
  require_float32("conv2d_grad_input", grad_out);
#if !defined(NASH_CUDA_EMULATION)
  if (conv_engine() == ConvEngine::CuDNN)
    return cudnn_conv2d_grad_input(grad_out, w, stride, padding, dilation, grad_in, current_stream());
#endif
  ConvGeom g = geom(grad_in, grad_out, w.size(0), w.size(1), w.size(2), w.size(3), stride, padding, dilation, true);
  igemm("conv2d_grad_input", g.c, g.n * g.h * g.w, g.o * g.kh * g.kw, 1, GradInA{w.data_ptr<float>(), g},
        GradInB{grad_out.data_ptr<float>(), g}, GradInStore{grad_in.data_ptr<float>(), g}, current_stream());
}

void conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 stride, Int2 padding, Int2 dilation,
                        const Tensor& grad_w) {
  require_float32("conv2d_grad_weight", x);
#if !defined(NASH_CUDA_EMULATION)
  if (conv_engine() == ConvEngine::CuDNN)
    return cudnn_conv2d_grad_weight(x, grad_out, stride, padding, dilation, grad_w, current_stream());
#endif
  ConvGeom g = geom(x, grad_out, grad_w.size(0), grad_w.size(1), grad_w.size(2), grad_w.size(3), stride, padding,
                    dilation, true);
  const int64_t M = g.o, N = g.c * g.kh * g.kw, K = g.n * g.oh * g.ow;
  // The reduction runs over the batch and every output pixel; split it so the small (O, C*KH*KW) output
  // still fills the device, then add the slices in a fixed order.
  const int64_t tiles = ((M + kTileM - 1) / kTileM) * ((N + kTileN - 1) / kTileN);
  int64_t slices = std::max<int64_t>(1, std::min<int64_t>(K / 256, (264 + tiles - 1) / tiles));
  Tensor part = empty({slices, M, N}, DType::Float32, x.device());
  igemm("conv2d_grad_weight", M, N, K, slices, GradWA{grad_out.data_ptr<float>(), g}, GradWB{x.data_ptr<float>(), g},
        SliceStore{part.data_ptr<float>(), M, N}, current_stream());
  launch("conv2d_grad_weight_sum", sum_slices, dim3(blocks_for(M * N, 256)), dim3(256), 0, current_stream(),
         static_cast<const float*>(part.data_ptr<float>()), slices, M * N, grad_w.data_ptr<float>());
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
