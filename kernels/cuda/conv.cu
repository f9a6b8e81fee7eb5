// CUDA convolutions as implicit GEMMs (no im2col buffer): forward, gradient w.r.t. input and w.r.t. weight,
// each a gather policy over NCHW tensors fed to the shared tiled GEMM of igemm.h. Strided input gradients run one
// GEMM per stride phase (the phases as groups of one launch), few-channel input gradients a direct kernel, GEMMs
// with few output tiles split K (igemm.h plans it), and index math is 32-bit wherever the tensors allow, with the
// per-k-tile divisions by launch-time divisors (fastdiv.h).
#include <algorithm>
#include <type_traits>
#include <vector>

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

// A[c, (o, kh, kw)] = w[o, c, kh, kw]
template <class I>
struct GradInA {
  static constexpr bool kKFast = true;
  const float* w;
  ConvGeomT<I> g;
  Divisor<I> khw_div;
  GradInA(const float* w_, const ConvGeomT<I>& g_) : w(w_), g(g_), khw_div(g_.kh * g_.kw) {}
  using Outer = I;
  using Step = I;
  __host__ __device__ __forceinline__ Outer outer(int64_t c) const { return static_cast<I>(c) * g.kh * g.kw; }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    I o, khw;
    khw_div.divmod(static_cast<I>(k), o, khw);
    return o * g.c * g.kh * g.kw + khw;
  }
  __device__ __forceinline__ float load(Outer o, Step s) const { return __ldg(w + (o + s)); }
};
// B[(o, kh, kw), (n, h, w)] = gy[n, o, oh, ow] where h = oh*s - p + kh*d (likewise w), 0 where no output pixel
// lands: the general input gradient (dilated, or 64-bit indices).
template <class I>
struct GradInB {
  static constexpr bool kKFast = false;
  const float* gy;
  ConvGeomT<I> g;
  Divisor<I> kw_div, kh_div;
  GradInB(const float* gy_, const ConvGeomT<I>& g_) : gy(gy_), g(g_), kw_div(g_.kw), kh_div(g_.kh) {}
  struct Outer {
    I base, th, tw;  // gy's plane 0 of image n; h + ph, w + pw
  };
  struct Step {
    I off, dh, dw;  // plane o; kh*dh, kw*dw
  };
  __host__ __device__ __forceinline__ Outer outer(int64_t col64) const {
    const I col = static_cast<I>(col64);
    const I iw = col % g.w, ih = (col / g.w) % g.h, n = col / (g.w * g.h);
    return {n * g.o * g.oh * g.ow, ih + g.ph, iw + g.pw};
  }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    I q, kw, o, kh;
    kw_div.divmod(static_cast<I>(k), q, kw);
    kh_div.divmod(q, o, kh);
    return {o * g.oh * g.ow, kh * g.dh, kw * g.dw};
  }
  __device__ __forceinline__ float load(const Outer& p, const Step& t) const {
    const I th = p.th - t.dh, tw = p.tw - t.dw;
    if (th < 0 || tw < 0) return 0.f;
    const I oh = th / g.sh, ow = tw / g.sw;
    if (oh * g.sh != th || ow * g.sw != tw || oh >= g.oh || ow >= g.ow) return 0.f;
    return __ldg(gy + (p.base + t.off + oh * g.ow + ow));
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
// input gradient without the divisibility tests. The phases write disjoint pixels, so up to kPhasesPerLaunch of
// them run as the groups of one launch (a DCGAN layer's four phases fill the device together, not one by one).
// Index math is 32-bit (checked at launch).
struct Phase {
  int n, c, h, w, o, kh, kw, oh, ow, sh, sw;
  int qh, qw;          // the tap phase: kh = qh + t * sh
  int rh, rw;          // the first input row/column of the phase
  int th, tw;          // taps per phase
  int hq, wq;          // the phase's input rows/columns
  int bh, bw;          // oh = bh + i - t for the phase's i-th row and tap t
  Divisor<int> th_div, tw_div, wq_div, hq_div;
};
__host__ __device__ __forceinline__ void phase_tap(const Phase& q, int64_t k64, int& o, int& t_h, int& t_w) {
  int r;
  q.tw_div.divmod(static_cast<int>(k64), r, t_w);
  q.th_div.divmod(r, o, t_h);
}
struct PhaseA {  // A[c, (o, t_h, t_w)] = w[o, c, qh + t_h*sh, qw + t_w*sw]
  static constexpr bool kKFast = true;
  const float* w;
  Phase q;
  using Outer = int;
  using Step = int;
  __host__ __device__ __forceinline__ Outer outer(int64_t c) const { return static_cast<int>(c) * q.kh * q.kw; }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    int o, t_h, t_w;
    phase_tap(q, k, o, t_h, t_w);
    return (o * q.c * q.kh + q.qh + t_h * q.sh) * q.kw + q.qw + t_w * q.sw;
  }
  __device__ __forceinline__ float load(Outer o, Step s) const { return __ldg(w + (o + s)); }
};
struct PhaseB {  // B[(o, t_h, t_w), (n, i, j)] = gy[n, o, bh + i - t_h, bw + j - t_w], 0 outside
  static constexpr bool kKFast = false;
  const float* gy;
  Phase q;
  using Outer = Pixel<int>;
  using Step = Tap<int>;
  __host__ __device__ __forceinline__ Outer outer(int64_t col64) const {
    const int col = static_cast<int>(col64);
    const int j = col % q.wq, i = (col / q.wq) % q.hq, n = col / (q.wq * q.hq);
    const int r = q.bh + i, c = q.bw + j;
    return {(n * q.o * q.oh + r) * q.ow + c, r, c};
  }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    int o, t_h, t_w;
    phase_tap(q, k, o, t_h, t_w);
    return {(o * q.oh - t_h) * q.ow - t_w, -t_h, -t_w};
  }
  __device__ __forceinline__ float load(const Outer& p, const Step& t) const {
    return patch_load<int>(gy, q.oh, q.ow, p, t);
  }
};
struct PhaseStore {  // gx[n, c, rh + i*sh, rw + j*sw]
  float* gx;
  Phase q;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t c64, int64_t col64, float v) const {
    const int c = static_cast<int>(c64);
    int t, j, i, n;
    q.wq_div.divmod(static_cast<int>(col64), t, j);
    q.hq_div.divmod(t, n, i);
    gx[((n * q.c + c) * q.h + q.rh + i * q.sh) * q.w + q.rw + j * q.sw] = v;
  }
};
constexpr int kPhasesPerLaunch = 4;
struct PhaseJob {  // the phases of one launch: group g is phase q[g]
  using A = PhaseA;
  using B = PhaseB;
  const float* w;
  const float* gy;
  float* gx;
  Phase q[kPhasesPerLaunch];
  __host__ __device__ __forceinline__ Gemm<PhaseA, PhaseB, PhaseStore> group(unsigned g) const {
    const Phase& p = q[g];
    return {p.c, int64_t{p.n} * p.hq * p.wq, int64_t{p.o} * p.th * p.tw, PhaseA{w, p}, PhaseB{gy, p},
            PhaseStore{gx, p}};
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

// A[o, (n, oh, ow)] = gy[n, o, oh, ow]
template <class I>
struct GradWA {
  static constexpr bool kKFast = true;
  const float* gy;
  ConvGeomT<I> g;
  Divisor<I> sp_div;
  GradWA(const float* gy_, const ConvGeomT<I>& g_) : gy(gy_), g(g_), sp_div(g_.oh * g_.ow) {}
  using Outer = I;
  using Step = I;
  __host__ __device__ __forceinline__ Outer outer(int64_t o) const { return static_cast<I>(o) * g.oh * g.ow; }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    I n, sp;
    sp_div.divmod(static_cast<I>(k), n, sp);
    return n * g.o * g.oh * g.ow + sp;
  }
  __device__ __forceinline__ float load(Outer o, Step s) const { return __ldg(gy + (o + s)); }
};
// B[(n, oh, ow), (c, kh, kw)] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw], 0 in the padding: the forward's
// gather with the roles of pixel and tap swapped. Neighbouring k are neighbouring output pixels (adjacent input at
// stride 1), so a warp fetches runs of k.
template <class I>
struct GradWB {
  static constexpr bool kKFast = true;
  const float* x;
  ConvGeomT<I> g;
  Divisor<I> ow_div, oh_div;
  GradWB(const float* x_, const ConvGeomT<I>& g_) : x(x_), g(g_), ow_div(g_.ow), oh_div(g_.oh) {}
  using Outer = Tap<I>;
  using Step = Pixel<I>;
  __host__ __device__ __forceinline__ Outer outer(int64_t col64) const {
    const I col = static_cast<I>(col64);
    const I kw = col % g.kw, kh = (col / g.kw) % g.kh, c = col / (g.kw * g.kh);
    return input_tap(g, c, kh, kw);
  }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    I q, ow, n, oh;
    ow_div.divmod(static_cast<I>(k), q, ow);
    oh_div.divmod(q, n, oh);
    const I r = oh * g.sh - g.ph, c = ow * g.sw - g.pw;
    return {(n * g.c * g.h + r) * g.w + c, r, c};
  }
  __device__ __forceinline__ float load(const Outer& t, const Step& p) const {
    return patch_load<I>(x, g.h, g.w, p, t);
  }
};
struct DenseStore {  // out[m, n]
  float* out;
  int64_t N;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t m, int64_t n, float v) const {
    out[m * N + n] = v;
  }
};

template <class I>
void conv2d_as(const ConvGeomT<I>& g, const Tensor& x, const Tensor& w, const float* bias, const Tensor& out) {
  const int64_t K = int64_t{g.c} * g.kh * g.kw;
  igemm("conv2d", g.o, int64_t{g.n} * g.oh * g.ow, K, FwdA{w.data_ptr<float>(), K}, FwdBT<I>(x.data_ptr<float>(), g),
        FwdStore<I>{out.data_ptr<float>(), bias, g}, true, x.device());
}

template <class I>
void conv2d_grad_weight_as(const ConvGeomT<I>& g, const Tensor& x, const Tensor& grad_out, const Tensor& grad_w) {
  // The reduction runs over the batch and every output pixel, so the small (O, C*KH*KW) output splits K.
  const int64_t M = g.o, N = int64_t{g.c} * g.kh * g.kw, K = int64_t{g.n} * g.oh * g.ow;
  igemm("conv2d_grad_weight", M, N, K, GradWA<I>(grad_out.data_ptr<float>(), g), GradWB<I>(x.data_ptr<float>(), g),
        DenseStore{grad_w.data_ptr<float>(), N}, true, x.device());
}

// The input gradient of an undilated convolution with 32-bit indices, by stride phase (see Phase).
void conv2d_grad_input_phases(const ConvGeom& g, const Tensor& grad_out, const Tensor& w, const Tensor& grad_in) {
  std::vector<Phase> phases;
  for (int64_t qh = 0; qh < g.sh; ++qh)
    for (int64_t qw = 0; qw < g.sw; ++qw) {
      Phase q{};
      q.n = int(g.n), q.c = int(g.c), q.h = int(g.h), q.w = int(g.w), q.o = int(g.o), q.kh = int(g.kh);
      q.kw = int(g.kw), q.oh = int(g.oh), q.ow = int(g.ow), q.sh = int(g.sh), q.sw = int(g.sw);
      q.qh = int(qh), q.qw = int(qw);
      q.rh = int(((qh - g.ph) % g.sh + g.sh) % g.sh);
      q.rw = int(((qw - g.pw) % g.sw + g.sw) % g.sw);
      q.th = qh < g.kh ? int((g.kh - qh + g.sh - 1) / g.sh) : 0;
      q.tw = qw < g.kw ? int((g.kw - qw + g.sw - 1) / g.sw) : 0;
      q.hq = q.rh < q.h ? (q.h - q.rh + q.sh - 1) / q.sh : 0;
      q.wq = q.rw < q.w ? (q.w - q.rw + q.sw - 1) / q.sw : 0;
      q.bh = int((q.rh + g.ph - qh) / g.sh);
      q.bw = int((q.rw + g.pw - qw) / g.sw);
      q.th_div = Divisor<int>(q.th), q.tw_div = Divisor<int>(q.tw);
      q.hq_div = Divisor<int>(q.hq), q.wq_div = Divisor<int>(q.wq);
      // A phase without taps still runs (K = 0): its pixels receive no gradient and are written as zeros.
      if (q.hq > 0 && q.wq > 0) phases.push_back(q);
    }
  for (size_t first = 0; first < phases.size(); first += kPhasesPerLaunch) {
    const size_t count = std::min<size_t>(kPhasesPerLaunch, phases.size() - first);
    PhaseJob job{w.data_ptr<float>(), grad_out.data_ptr<float>(), grad_in.data_ptr<float>(), {}};
    int64_t N = 0, K = 0;
    for (size_t i = 0; i < count; ++i) {
      const Phase& q = phases[first + i];
      job.q[i] = q;
      N = std::max<int64_t>(N, int64_t{q.n} * q.hq * q.wq);
      K = std::max<int64_t>(K, int64_t{q.o} * q.th * q.tw);
    }
    const auto groups = static_cast<int64_t>(count);
    run_igemm("conv2d_grad_input", plan_for_device(g.c, N, K, true, groups, large_tile_fits<PhaseJob>()), false,
              g.c, N, K, groups, job, grad_in.device());
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
    conv2d_grad_input_phases(g, grad_out, w, grad_in);
    return;
  }
  auto run = [&](const auto& gi) {
    using I = std::decay_t<decltype(gi.n)>;
    igemm("conv2d_grad_input", g.c, g.n * g.h * g.w, g.o * g.kh * g.kw, GradInA<I>(w.data_ptr<float>(), gi),
          GradInB<I>(grad_out.data_ptr<float>(), gi), GradInStore<I>{grad_in.data_ptr<float>(), gi}, true,
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
