// Gather policies of the implicit-GEMM convolution forward (conv geometry, the weight as A and the input patches
// as B), shared by the plain conv (conv.cu) and the fused scale/bias/activation conv (conv_fused.cu).
#pragma once
#include "kernels/cuda/compat.h"
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

// x[n, c, oh*s - p + kh*d, ow*s - p + kw*d], 0 in the padding. k = (c, kh, kw), col = (n, oh, ow).
template <class I>
__host__ __device__ __forceinline__ float gather_x(const float* x, const ConvGeomT<I>& g, I k, I col) {
  const I kw = k % g.kw, kh = (k / g.kw) % g.kh, c = k / (g.kw * g.kh);
  const I ow = col % g.ow, oh = (col / g.ow) % g.oh, n = col / (g.ow * g.oh);
  const I ih = oh * g.sh - g.ph + kh * g.dh, iw = ow * g.sw - g.pw + kw * g.dw;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.f;
  return x[((n * g.c + c) * g.h + ih) * g.w + iw];
}

struct FwdA {  // weight as (O, C*KH*KW)
  const float* w;
  int64_t K;
  __host__ __device__ __forceinline__ float operator()(int64_t m, int64_t k) const { return w[m * K + k]; }
};
template <class I>
struct FwdBT {
  const float* x;
  ConvGeomT<I> g;
  __host__ __device__ __forceinline__ float operator()(int64_t k, int64_t col) const {
    return gather_x<I>(x, g, static_cast<I>(k), static_cast<I>(col));
  }
};
using FwdB = FwdBT<int64_t>;

}  // namespace NASH_CUDA_NS
}  // namespace nash
