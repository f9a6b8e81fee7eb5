// Gather policies of the implicit-GEMM convolution forward (conv geometry, the weight as A and the input patches
// as B), shared by the plain conv (conv.cu) and the fused scale/bias/activation conv (conv_fused.cu), and the
// pixel/tap decomposition the gradients' gathers reuse.
#pragma once
#include <type_traits>

#include "kernels/cuda/compat.h"
#include "kernels/cuda/fastdiv.h"
#include "nash/core/ops.h"
#include "nash/core/tensor.h"

namespace nash {
namespace NASH_CUDA_NS {

// Geometry of one convolution: input (N, C, H, W), weight (O, C, KH, KW), output (N, O, OH, OW). The gathers run
// in I arithmetic: 32-bit where every index fits (a 64-bit division costs several times a 32-bit one, and the
// gathers are most of an implicit GEMM's integer work), 64-bit otherwise.
template <class I>
struct ConvGeomT {
  I n, c, h, w, o, kh, kw, oh, ow;
  I sh, sw, ph, pw, dh, dw;
};
using ConvGeom = ConvGeomT<int64_t>;

inline ConvGeom geom(const Tensor& x_like, const Tensor& out_like, int64_t o, int64_t c, int64_t kh, int64_t kw, Int2 s,
                     Int2 p, Int2 d, bool x_is_input) {
  ConvGeom g{};
  const Tensor& in = x_is_input ? x_like : out_like;
  const Tensor& outp = x_is_input ? out_like : x_like;
  g.n = in.size(0);
  g.c = c;
  g.h = in.size(2);
  g.w = in.size(3);
  g.o = o;
  g.kh = kh;
  g.kw = kw;
  g.oh = outp.size(2);
  g.ow = outp.size(3);
  g.sh = s.h;
  g.sw = s.w;
  g.ph = p.h;
  g.pw = p.w;
  g.dh = d.h;
  g.dw = d.w;
  return g;
}

// Whether every index of the convolution (input, output, weight, and the GEMM's column and reduction ranges) fits
// in 32 bits.
inline bool fits_int32(const ConvGeom& g) {
  const int64_t lim = int64_t{1} << 31;
  return g.n * g.c * g.h * g.w < lim && g.n * g.o * g.oh * g.ow < lim && g.o * g.c * g.kh * g.kw < lim &&
         g.n * g.h * g.w < lim;
}

template <class I>
ConvGeomT<I> narrow(const ConvGeom& g) {
  return {I(g.n),  I(g.c),  I(g.h),  I(g.w),  I(g.o),  I(g.kh), I(g.kw), I(g.oh),
          I(g.ow), I(g.sh), I(g.sw), I(g.ph), I(g.pw), I(g.dh), I(g.dw)};
}

// The implicit GEMMs' gathers read an image (rows x cols per plane) at pixel + tap: a Pixel (a GEMM row or column
// fixed for a whole block) holds the address and position the tap (0, 0) reads, a Tap (a reduction index, once per
// k-tile) its offset; the element is one add, two unsigned range tests and a load.
template <class I>
struct Pixel {
  I base, r, c;  // image[base] is row r, column c of its plane (r, c may lie in the padding)
};
template <class I>
struct Tap {
  I off, dr, dc;  // off = dr * cols + dc + (the plane offset)
};
template <class I>
__host__ __device__ __forceinline__ bool in_extent(I v, I n) {
  using U = std::make_unsigned_t<I>;
  return static_cast<U>(v) < static_cast<U>(n);  // 0 <= v < n
}
template <class I>
__device__ __forceinline__ float patch_load(const float* img, I rows, I cols, const Pixel<I>& p, const Tap<I>& t) {
  return in_extent<I>(p.r + t.dr, rows) && in_extent<I>(p.c + t.dc, cols) ? __ldg(img + (p.base + t.off)) : 0.f;
}

// The output pixel col = (n, oh, ow) as the input position its tap (0, 0) reads.
template <class I>
__host__ __device__ __forceinline__ Pixel<I> output_pixel(const ConvGeomT<I>& g, int64_t col64) {
  const I col = static_cast<I>(col64);
  const I ow = col % g.ow, oh = (col / g.ow) % g.oh, n = col / (g.ow * g.oh);
  const I r = oh * g.sh - g.ph, c = ow * g.sw - g.pw;
  return {(n * g.c * g.h + r) * g.w + c, r, c};
}
// The input tap (c, kh, kw).
template <class I>
__host__ __device__ __forceinline__ Tap<I> input_tap(const ConvGeomT<I>& g, I c, I kh, I kw) {
  const I dr = kh * g.dh, dc = kw * g.dw;
  return {(c * g.h + dr) * g.w + dc, dr, dc};
}

// A[o, (c, kh, kw)] = w[o, c, kh, kw]: the weight as (O, C*KH*KW), contiguous.
struct FwdA {
  static constexpr bool kKFast = true;
  const float* w;
  int64_t K;
  using Outer = int64_t;
  using Step = int64_t;
  __host__ __device__ __forceinline__ Outer outer(int64_t m) const { return m * K; }
  __host__ __device__ __forceinline__ Step step(int64_t k) const { return k; }
  __device__ __forceinline__ float load(Outer o, Step s) const { return __ldg(w + (o + s)); }
};
// B[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw], 0 in the padding. Neighbouring
// columns are neighbouring output pixels (adjacent input at stride 1), so a warp fetches runs of columns.
template <class I>
struct FwdBT {
  static constexpr bool kKFast = false;
  const float* x;
  ConvGeomT<I> g;
  Divisor<I> kw_div, kh_div;
  FwdBT(const float* x_, const ConvGeomT<I>& g_) : x(x_), g(g_), kw_div(g_.kw), kh_div(g_.kh) {}
  using Outer = Pixel<I>;
  using Step = Tap<I>;
  __host__ __device__ __forceinline__ Outer outer(int64_t col) const { return output_pixel(g, col); }
  __host__ __device__ __forceinline__ Step step(int64_t k) const {
    I q, kw, c, kh;
    kw_div.divmod(static_cast<I>(k), q, kw);
    kh_div.divmod(q, c, kh);
    return input_tap(g, c, kh, kw);
  }
  __device__ __forceinline__ float load(const Outer& p, const Step& t) const {
    return patch_load<I>(x, g.h, g.w, p, t);
  }
};
using FwdB = FwdBT<int64_t>;

}  // namespace NASH_CUDA_NS
}  // namespace nash
