// CPU pooling and resampling on NCHW planes: average pooling and its gradient, nearest upsampling and block sums.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {

// Calls body(plane) for each of the N*C planes, in parallel when the work is large enough.
template <class F>
void for_planes(const Tensor& big, int64_t planes, F&& body) {
  parallel_for(planes, big.numel() >= kParallelGrain, body);
}

void require_contiguous(const char* op, const Tensor& a, const Tensor& b) {
  NASH_CHECK(a.is_contiguous() && b.is_contiguous(), op, ": the CPU kernel needs contiguous tensors");
}

// Window of output index o along one axis, clipped to the unpadded input [0, size).
inline void window(int64_t o, int64_t k, int64_t s, int64_t p, int64_t size, int64_t& lo, int64_t& hi) {
  lo = std::max<int64_t>(o * s - p, 0);
  hi = std::min<int64_t>(o * s - p + k, size);
}

template <class T>
void avg_pool_forward(const T* x, T* y, int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, Int2 k, Int2 s,
                      Int2 p, const Tensor& big) {
  // count_include_pad: the divisor is the full window, padding included.
  const T inv = T(1) / static_cast<T>(k.h * k.w);
  for_planes(big, planes, [&](int64_t pl) {
    const T* xp = x + pl * H * W;
    T* yp = y + pl * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; ++oh) {
      int64_t h0, h1;
      window(oh, k.h, s.h, p.h, H, h0, h1);
      for (int64_t ow = 0; ow < Wo; ++ow) {
        int64_t w0, w1;
        window(ow, k.w, s.w, p.w, W, w0, w1);
        T acc = 0;
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) acc += xp[i * W + j];
        yp[oh * Wo + ow] = acc * inv;
      }
    }
  });
}

template <class T>
void avg_pool_backward(const T* gy, T* gx, int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, Int2 k, Int2 s,
                       Int2 p, const Tensor& big) {
  const T inv = T(1) / static_cast<T>(k.h * k.w);
  for_planes(big, planes, [&](int64_t pl) {
    const T* gp = gy + pl * Ho * Wo;
    T* xp = gx + pl * H * W;
    std::fill(xp, xp + H * W, T(0));
    for (int64_t oh = 0; oh < Ho; ++oh) {
      int64_t h0, h1;
      window(oh, k.h, s.h, p.h, H, h0, h1);
      for (int64_t ow = 0; ow < Wo; ++ow) {
        int64_t w0, w1;
        window(ow, k.w, s.w, p.w, W, w0, w1);
        const T v = gp[oh * Wo + ow] * inv;
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) xp[i * W + j] += v;
      }
    }
  });
}

template <class T>
void upsample_forward(const T* x, T* y, int64_t planes, int64_t H, int64_t W, int64_t sc, const Tensor& big) {
  const int64_t Wo = W * sc;
  for_planes(big, planes, [&](int64_t pl) {
    const T* xp = x + pl * H * W;
    T* yp = y + pl * H * sc * Wo;
    for (int64_t i = 0; i < H; ++i) {
      T* row = yp + i * sc * Wo;
      for (int64_t j = 0; j < W; ++j) std::fill(row + j * sc, row + (j + 1) * sc, xp[i * W + j]);
      for (int64_t r = 1; r < sc; ++r) std::memcpy(row + r * Wo, row, sizeof(T) * Wo);
    }
  });
}

template <class T>
void sum_pool_forward(const T* x, T* y, int64_t planes, int64_t Ho, int64_t Wo, int64_t sc, const Tensor& big) {
  const int64_t W = Wo * sc;
  for_planes(big, planes, [&](int64_t pl) {
    const T* xp = x + pl * Ho * sc * W;
    T* yp = y + pl * Ho * Wo;
    for (int64_t i = 0; i < Ho; ++i) {
      T* out = yp + i * Wo;
      std::fill(out, out + Wo, T(0));
      for (int64_t r = 0; r < sc; ++r) {
        const T* row = xp + (i * sc + r) * W;
        for (int64_t j = 0; j < Wo; ++j) {
          T acc = 0;
          for (int64_t c = 0; c < sc; ++c) acc += row[j * sc + c];
          out[j] += acc;
        }
      }
    }
  });
}

}  // namespace

void avg_pool2d(const Tensor& x, Int2 kernel, Int2 stride, Int2 padding, const Tensor& out) {
  require_contiguous("avg_pool2d", x, out);
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), Ho = out.size(2), Wo = out.size(3);
  if (x.dtype() == DType::Float32)
    avg_pool_forward(x.data_ptr<float>(), out.data_ptr<float>(), planes, H, W, Ho, Wo, kernel, stride, padding, x);
  else
    avg_pool_forward(x.data_ptr<double>(), out.data_ptr<double>(), planes, H, W, Ho, Wo, kernel, stride, padding, x);
}

void avg_pool2d_grad(const Tensor& grad_out, Int2 kernel, Int2 stride, Int2 padding, const Tensor& grad_in) {
  require_contiguous("avg_pool2d_grad", grad_out, grad_in);
  const Tensor& g = grad_out;
  const int64_t planes = g.size(0) * g.size(1), H = grad_in.size(2), W = grad_in.size(3), Ho = g.size(2),
                Wo = g.size(3);
  if (g.dtype() == DType::Float32)
    avg_pool_backward(g.data_ptr<float>(), grad_in.data_ptr<float>(), planes, H, W, Ho, Wo, kernel, stride, padding,
                      grad_in);
  else
    avg_pool_backward(g.data_ptr<double>(), grad_in.data_ptr<double>(), planes, H, W, Ho, Wo, kernel, stride, padding,
                      grad_in);
}

void upsample_nearest2d(const Tensor& x, int64_t scale, const Tensor& out) {
  require_contiguous("upsample_nearest2d", x, out);
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  if (x.dtype() == DType::Float32)
    upsample_forward(x.data_ptr<float>(), out.data_ptr<float>(), planes, H, W, scale, out);
  else
    upsample_forward(x.data_ptr<double>(), out.data_ptr<double>(), planes, H, W, scale, out);
}

void sum_pool2d(const Tensor& x, int64_t scale, const Tensor& out) {
  require_contiguous("sum_pool2d", x, out);
  const int64_t planes = out.size(0) * out.size(1), Ho = out.size(2), Wo = out.size(3);
  if (x.dtype() == DType::Float32)
    sum_pool_forward(x.data_ptr<float>(), out.data_ptr<float>(), planes, Ho, Wo, scale, x);
  else
    sum_pool_forward(x.data_ptr<double>(), out.data_ptr<double>(), planes, Ho, Wo, scale, x);
}

}  // namespace cpu
}  // namespace nash
