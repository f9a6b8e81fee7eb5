// Gather policies of the implicit-GEMM convolution forward (conv geometry, the weight as A and the input patches
// as B), shared by the plain conv (conv.cu) and the fused scale/bias/activation conv (conv_fused.cu).
#pragma once
#include "kernels/cuda/compat.h"
#include "nash/core/ops.h"
#include "nash/core/tensor.h"

namespace nash {
namespace NASH_CUDA_NS {

// Geometry of one convolution: input (N, C, H, W), weight (O, C, KH, KW), output (N, O, OH, OW).
struct ConvGeom {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int64_t sh, sw, ph, pw, dh, dw;
};

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

// x[n, c, oh*s - p + kh*d, ow*s - p + kw*d], 0 in the padding. k = (c, kh, kw), col = (n, oh, ow).
__host__ __device__ __forceinline__ float gather_x(const float* x, const ConvGeom& g, int64_t k, int64_t col) {
  const int64_t kw = k % g.kw, kh = (k / g.kw) % g.kh, c = k / (g.kw * g.kh);
  const int64_t ow = col % g.ow, oh = (col / g.ow) % g.oh, n = col / (g.ow * g.oh);
  const int64_t ih = oh * g.sh - g.ph + kh * g.dh, iw = ow * g.sw - g.pw + kw * g.dw;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.f;
  return x[((n * g.c + c) * g.h + ih) * g.w + iw];
}

struct FwdA {  // weight as (O, C*KH*KW)
  const float* w;
  int64_t K;
  __host__ __device__ __forceinline__ float operator()(int64_t m, int64_t k) const { return w[m * K + k]; }
};
struct FwdB {
  const float* x;
  ConvGeom g;
  __host__ __device__ __forceinline__ float operator()(int64_t k, int64_t col) const { return gather_x(x, g, k, col); }
};

}  // namespace NASH_CUDA_NS
}  // namespace nash
