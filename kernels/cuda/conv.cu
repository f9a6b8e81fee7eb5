// CUDA convolutions as implicit GEMMs (no im2col buffer): forward, gradient w.r.t. input and w.r.t. weight,
// each a gather policy over NCHW tensors fed to the shared tiled GEMM of igemm.h. Strided input gradients run one
// GEMM per stride phase, few-channel input gradients a direct kernel, GEMMs with few output tiles split K, and index
// math is 32-bit wherever the tensors allow.
#include <type_traits>

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

template <class I>
struct FwdStore {  // out[n, m, oh, ow] = v + bias[m]
  float* out;
  const float* bias;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t m64, int64_t col64, float v) const {
    const I m = static_cast<I>(m64), col = static_cast<I>(col64);
    const I sp = col % (g.oh * g.ow), n = col / (g.oh * g.ow);
    out[(n * g.o + m) * g.oh * g.ow + sp] = v + (bias ? bias[m] : 0.f);
  }
};

template <class I>
struct GradInA {  // A[c, (o, kh, kw)] = w[o, c, kh, kw]
  const float* w;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ float operator()(int64_t c64, int64_t k64) const {
    const I c = static_cast<I>(c64), k = static_cast<I>(k64);
    const I khw = k % (g.kh * g.kw), o = k / (g.kh * g.kw);
    return w[(o * g.c + c) * g.kh * g.kw + khw];
  }
};
template <class I>
struct GradInB {  // B[(o, kh, kw), (n, h, w)] = gy[n, o, oh, ow] where h = oh*s - p + kh*d
  const float* gy;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ float operator()(int64_t k64, int64_t col64) const {
    const I k = static_cast<I>(k64), col = static_cast<I>(col64);
    const I kw = k % g.kw, kh = (k / g.kw) % g.kh, o = k / (g.kw * g.kh);
    const I iw = col % g.w, ih = (col / g.w) % g.h, n = col / (g.w * g.h);
    const I th = ih + g.ph - kh * g.dh, tw = iw + g.pw - kw * g.dw;
    if (th < 0 || tw < 0 || th % g.sh != 0 || tw % g.sw != 0) return 0.f;
    const I oh = th / g.sh, ow = tw / g.sw;
    if (oh >= g.oh || ow >= g.ow) return 0.f;
    return gy[((n * g.o + o) * g.oh + oh) * g.ow + ow];
  }
};
template <class I>
struct GradInStore {  // gx[n, c, h, w]
  float* gx;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t c64, int64_t col64, float v) const {
    const I c = static_cast<I>(c64), col = static_cast<I>(col64);
    const I sp = col % (g.h * g.w), n = col / (g.h * g.w);
    gx[(n * g.c + c) * g.h * g.w + sp] = v;
  }
};

// Undilated input gradients by stride phase: the input pixels whose (ih + ph) % sh == qh receive only the kernel
// taps kh = qh + t*sh (likewise in w), so each of the sh*sw phases is a dense GEMM of K = O * Th * Tw instead of
// one GEMM over all O*KH*KW taps of which all but 1/(sh*sw) read zeros; at stride 1 the one phase is the plain
// input gradient without the divisibility tests. Index math is 32-bit (checked at launch).
struct Phase {
  int c, h, w, o, kh, kw, oh, ow, sh, sw;
  int qh, qw;          // the tap phase: kh = qh + t * sh
  int rh, rw;          // the first input row/column of the phase
  int th, tw;          // taps per phase
  int hq, wq;          // the phase's input rows/columns
  int bh, bw;          // oh = bh + i - t for the phase's i-th row and tap t
};
struct PhaseA {  // A[c, (o, t_h, t_w)] = w[o, c, qh + t_h*sh, qw + t_w*sw]
  const float* w;
  Phase q;
  __host__ __device__ __forceinline__ float operator()(int64_t c64, int64_t k64) const {
    const int c = static_cast<int>(c64), k = static_cast<int>(k64);
    const int t_w = k % q.tw, t_h = (k / q.tw) % q.th, o = k / (q.tw * q.th);
    return w[((o * q.c + c) * q.kh + q.qh + t_h * q.sh) * q.kw + q.qw + t_w * q.sw];
  }
};
struct PhaseB {  // B[(o, t_h, t_w), (n, i, j)] = gy[n, o, bh + i - t_h, bw + j - t_w], 0 outside
  const float* gy;
  Phase q;
  __host__ __device__ __forceinline__ float operator()(int64_t k64, int64_t col64) const {
    const int k = static_cast<int>(k64), col = static_cast<int>(col64);
    const int t_w = k % q.tw, t_h = (k / q.tw) % q.th, o = k / (q.tw * q.th);
    const int j = col % q.wq, i = (col / q.wq) % q.hq, n = col / (q.wq * q.hq);
    const int oh = q.bh + i - t_h, ow = q.bw + j - t_w;
    if (oh < 0 || oh >= q.oh || ow < 0 || ow >= q.ow) return 0.f;
    return gy[((n * q.o + o) * q.oh + oh) * q.ow + ow];
  }
};
struct PhaseStore {  // gx[n, c, rh + i*sh, rw + j*sw]
  float* gx;
  Phase q;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t c64, int64_t col64, float v) const {
    const int c = static_cast<int>(c64), col = static_cast<int>(col64);
    const int j = col % q.wq, i = (col / q.wq) % q.hq, n = col / (q.wq * q.hq);
    gx[((n * q.c + c) * q.h + q.rh + i * q.sh) * q.w + q.rw + j * q.sw] = v;
  }
};

// Input gradients with few input channels (the image layer of a discriminator, a generator's output layer): a GEMM
// with M = C <= kSmallC would leave most of its 64-row tiles empty, so one thread computes one input pixel for all
// channels, visiting only the taps that land on an output pixel.
constexpr int kSmallC = 4;
__global__ void grad_input_small_c(const float* __restrict__ gy, const float* __restrict__ w, ConvGeom g,
                                   float* __restrict__ gx) {
  const int64_t pixels = g.n * g.h * g.w;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pixels;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int iw = static_cast<int>(p % g.w), ih = static_cast<int>((p / g.w) % g.h), n = static_cast<int>(p / (g.w * g.h));
    const int sh = static_cast<int>(g.sh), sw = static_cast<int>(g.sw), dh = static_cast<int>(g.dh),
              dw = static_cast<int>(g.dw);
    const int KH = static_cast<int>(g.kh), KW = static_cast<int>(g.kw), C = static_cast<int>(g.c);
    const int OH = static_cast<int>(g.oh), OW = static_cast<int>(g.ow), O = static_cast<int>(g.o);
    float acc[kSmallC] = {0.f, 0.f, 0.f, 0.f};
    for (int kh = 0; kh < KH; ++kh) {
      const int th = ih + static_cast<int>(g.ph) - kh * dh;
      if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
      for (int kw = 0; kw < KW; ++kw) {
        const int tw = iw + static_cast<int>(g.pw) - kw * dw;
        if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;
        const float* gyp = gy + (static_cast<int64_t>(n) * O * OH + th / sh) * OW + tw / sw;
        const float* wp = w + kh * KW + kw;
        for (int o = 0; o < O; ++o) {
          const float v = gyp[static_cast<int64_t>(o) * OH * OW];
NASH_UNROLL
          for (int c = 0; c < kSmallC; ++c)
            if (c < C) acc[c] += v * __ldg(wp + (static_cast<int64_t>(o) * C + c) * KH * KW);
        }
      }
    }
    for (int c = 0; c < C; ++c) gx[((static_cast<int64_t>(n) * C + c) * g.h + ih) * g.w + iw] = acc[c];
  }
}

template <class I>
struct GradWA {  // A[o, (n, oh, ow)] = gy[n, o, oh, ow]
  const float* gy;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ float operator()(int64_t o64, int64_t k64) const {
    const I o = static_cast<I>(o64), k = static_cast<I>(k64);
    const I sp = k % (g.oh * g.ow), n = k / (g.oh * g.ow);
    return gy[(n * g.o + o) * g.oh * g.ow + sp];
  }
};
template <class I>
struct GradWB {  // B[(n, oh, ow), (c, kh, kw)] = x gathered
  const float* x;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ float operator()(int64_t k, int64_t col) const {
    return gather_x<I>(x, g, static_cast<I>(col), static_cast<I>(k));
  }
};
struct DenseStore {  // out[m, n]
  float* out;
  int64_t N;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t m, int64_t n, float v) const {
    out[m * N + n] = v;
  }
};
struct SliceStore {  // partial[slice, m, n]
  float* part;
  int64_t M, N;
  __host__ __device__ __forceinline__ void operator()(unsigned slice, int64_t m, int64_t n, float v) const {
    part[(static_cast<int64_t>(slice) * M + m) * N + n] = v;
  }
};

// The finish of a K-split GEMM: store(m, n, sum over s of part[s, m, n]), added in slice order (deterministic).
template <class Store>
__global__ void sum_slices_into(const float* __restrict__ part, int64_t slices, int64_t M, int64_t N, Store store) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int64_t k = 0; k < slices; ++k) s += part[k * total + i];
    store(0, i / N, i % N, s);
  }
}

// K-slices that let a GEMM with few output tiles fill the device (about two blocks per SM), 1 when it already
// does or when K is too short to be worth splitting.
int64_t k_slices(int64_t M, int64_t N, int64_t K) {
  const int64_t tiles = ((M + kTileM - 1) / kTileM) * ((N + kTileN - 1) / kTileN);
  const int64_t want = 2 * static_cast<int64_t>(device_sm_count());
  if (tiles >= want) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(K / 256, (want + tiles - 1) / tiles));
}

// C = A·B into store, the reduction split over K-slices (partials, then a fixed-order sum) when few output tiles
// would leave most multiprocessors idle.
template <class A, class B, class Store>
void gemm_into(const char* name, int64_t M, int64_t N, int64_t K, const A& a, const B& b, const Store& store,
               Device device) {
  const int64_t slices = k_slices(M, N, K);
  if (slices == 1) {
    igemm(name, M, N, K, 1, a, b, store, current_stream());
    return;
  }
  Tensor part = empty({slices, M, N}, DType::Float32, device);
  igemm(name, M, N, K, slices, a, b, SliceStore{part.data_ptr<float>(), M, N}, current_stream());
  launch(name, sum_slices_into<Store>, dim3(blocks_for(M * N, 256)), dim3(256), 0, current_stream(),
         static_cast<const float*>(part.data_ptr<float>()), slices, M, N, store);
}

template <class I>
void conv2d_as(const ConvGeomT<I>& g, const Tensor& x, const Tensor& w, const float* bias, const Tensor& out) {
  const int64_t K = int64_t{g.c} * g.kh * g.kw;
  gemm_into("conv2d", g.o, int64_t{g.n} * g.oh * g.ow, K, FwdA{w.data_ptr<float>(), K},
            FwdBT<I>{x.data_ptr<float>(), g}, FwdStore<I>{out.data_ptr<float>(), bias, g}, x.device());
}

template <class I>
void conv2d_grad_weight_as(const ConvGeomT<I>& g, const Tensor& x, const Tensor& grad_out, const Tensor& grad_w) {
  // The reduction runs over the batch and every output pixel, so the small (O, C*KH*KW) output splits K.
  const int64_t M = g.o, N = int64_t{g.c} * g.kh * g.kw, K = int64_t{g.n} * g.oh * g.ow;
  gemm_into("conv2d_grad_weight", M, N, K, GradWA<I>{grad_out.data_ptr<float>(), g},
            GradWB<I>{x.data_ptr<float>(), g}, DenseStore{grad_w.data_ptr<float>(), N}, x.device());
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
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if (fits_int32(g))
    conv2d_as(narrow<int>(g), x, w, b, out);
  else
    conv2d_as(g, x, w, b, out);
}

void conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                       const Tensor& grad_in) {
  require_float32("conv2d_grad_input", grad_out);
#if !defined(NASH_CUDA_EMULATION)
  if (conv_engine() == ConvEngine::CuDNN)
    return cudnn_conv2d_grad_input(grad_out, w, stride, padding, dilation, grad_in, current_stream());
#endif
  ConvGeom g = geom(grad_in, grad_out, w.size(0), w.size(1), w.size(2), w.size(3), stride, padding, dilation, true);
  const bool small_index = fits_int32(g);
  if (g.c <= kSmallC && small_index) {
    launch("conv2d_grad_input_small_c", grad_input_small_c, dim3(blocks_for(g.n * g.h * g.w, 256)), dim3(256), 0,
           current_stream(), grad_out.data_ptr<float>(), w.data_ptr<float>(), g, grad_in.data_ptr<float>());
    return;
  }
  if (g.dh == 1 && g.dw == 1 && small_index) {
    // One GEMM per phase (in turn on the stream; each writes its own input pixels).
    for (int64_t qh = 0; qh < g.sh; ++qh)
      for (int64_t qw = 0; qw < g.sw; ++qw) {
        Phase q{};
        q.c = int(g.c), q.h = int(g.h), q.w = int(g.w), q.o = int(g.o), q.kh = int(g.kh), q.kw = int(g.kw);
        q.oh = int(g.oh), q.ow = int(g.ow), q.sh = int(g.sh), q.sw = int(g.sw), q.qh = int(qh), q.qw = int(qw);
        q.rh = int(((qh - g.ph) % g.sh + g.sh) % g.sh);
        q.rw = int(((qw - g.pw) % g.sw + g.sw) % g.sw);
        q.th = qh < g.kh ? int((g.kh - qh + g.sh - 1) / g.sh) : 0;
        q.tw = qw < g.kw ? int((g.kw - qw + g.sw - 1) / g.sw) : 0;
        q.hq = q.rh < q.h ? (q.h - q.rh + q.sh - 1) / q.sh : 0;
        q.wq = q.rw < q.w ? (q.w - q.rw + q.sw - 1) / q.sw : 0;
        q.bh = int((q.rh + g.ph - qh) / g.sh);
        q.bw = int((q.rw + g.pw - qw) / g.sw);
        // A phase without taps still runs (K = 0): its pixels receive no gradient and are written as zeros.
        gemm_into("conv2d_grad_input", g.c, g.n * q.hq * q.wq, g.o * q.th * q.tw, PhaseA{w.data_ptr<float>(), q},
                  PhaseB{grad_out.data_ptr<float>(), q}, PhaseStore{grad_in.data_ptr<float>(), q}, grad_in.device());
      }
    return;
  }
  auto run = [&](const auto& gi) {
    using I = std::decay_t<decltype(gi.n)>;
    gemm_into("conv2d_grad_input", g.c, g.n * g.h * g.w, g.o * g.kh * g.kw, GradInA<I>{w.data_ptr<float>(), gi},
              GradInB<I>{grad_out.data_ptr<float>(), gi}, GradInStore<I>{grad_in.data_ptr<float>(), gi},
              grad_in.device());
  };
  if (small_index)
    run(narrow<int>(g));
  else
    run(g);
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
  if (fits_int32(g))
    conv2d_grad_weight_as(narrow<int>(g), x, grad_out, grad_w);
  else
    conv2d_grad_weight_as(g, x, grad_out, grad_w);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
