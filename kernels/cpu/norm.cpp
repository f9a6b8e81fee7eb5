// CPU batch normalization (ops.h batch_norm_train): one channel per loop iteration, so a thread computes a
// channel's statistics and then writes its output while the channel's N planes are still in its cache. Sums run in
// double with eight independent accumulators (vectorizable, and deterministic for any thread count).
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {

// x, g: contiguous (N, C, S); a channel is N planes of S elements, C * S apart.
struct Layout {
  int64_t N, C, S;
  explicit Layout(const Tensor& x) : N(x.size(0)), C(x.size(1)), S(x.numel() / (x.size(0) * x.size(1))) {}
  int64_t count() const { return N * S; }
};

// sum over the channel's planes of f(i) for the S elements of each plane, f(p) taking the plane's offset.
template <class F>
double channel_sum(const Layout& l, int64_t c, F&& term) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t n = 0; n < l.N; ++n) {
    const int64_t base = (n * l.C + c) * l.S;
    int64_t i = 0;
    for (; i + 8 <= l.S; i += 8)
      for (int k = 0; k < 8; ++k) acc[k] += term(base + i + k);
    for (; i < l.S; ++i) acc[i % 8] += term(base + i);
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

bool parallel(const Layout& l) { return l.N * l.C * l.S >= kParallelGrain; }

template <class T>
void forward_typed(const Tensor& xt, const Tensor& wt, const Tensor& bt, double eps, const Tensor& outt,
                   const Tensor& meant, const Tensor& vart, const Tensor& invt) {
  const Layout l(xt);
  const T* x = xt.data_ptr<T>();
  const T* w = wt.defined() ? wt.data_ptr<T>() : nullptr;
  const T* b = bt.defined() ? bt.data_ptr<T>() : nullptr;
  T* y = outt.data_ptr<T>();
  T *mean = meant.data_ptr<T>(), *var = vart.data_ptr<T>(), *inv = invt.data_ptr<T>();
  const double M = static_cast<double>(l.count());
  parallel_for(l.C, parallel(l), [&](int64_t c) {
    // Two passes (the mean, then the squared deviations from it): no cancellation when |mean| >> std.
    const double m = channel_sum(l, c, [&](int64_t i) { return static_cast<double>(x[i]); }) / M;
    const double v = channel_sum(l, c, [&](int64_t i) {
                       const double d = static_cast<double>(x[i]) - m;
                       return d * d;
                     }) / M;
    const double is = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(v);
    inv[c] = static_cast<T>(is);
    // y = x * k + d with k = w * invstd, d = b - mean * k.
    const double kd = (w ? static_cast<double>(w[c]) : 1.0) * is;
    const T k = static_cast<T>(kd), d = static_cast<T>((b ? static_cast<double>(b[c]) : 0.0) - m * kd);
    for (int64_t n = 0; n < l.N; ++n) {
      const int64_t base = (n * l.C + c) * l.S;
      for (int64_t i = 0; i < l.S; ++i) y[base + i] = x[base + i] * k + d;
    }
  });
}

template <class T>
void backward_typed(const Tensor& gt, const Tensor& xt, const Tensor& meant, const Tensor& invt, const Tensor& wt,
                    const Tensor& gxt, const Tensor& gwt, const Tensor& gbt) {
  const Layout l(xt);
  const T *g = gt.data_ptr<T>(), *x = xt.data_ptr<T>(), *mean = meant.data_ptr<T>(), *inv = invt.data_ptr<T>();
  const T* w = wt.defined() ? wt.data_ptr<T>() : nullptr;
  T* gx = gxt.defined() ? gxt.data_ptr<T>() : nullptr;
  T *gw = gwt.data_ptr<T>(), *gb = gbt.data_ptr<T>();
  const double M = static_cast<double>(l.count());
  parallel_for(l.C, parallel(l), [&](int64_t c) {
    const double m = mean[c], is = inv[c];
    const double sg = channel_sum(l, c, [&](int64_t i) { return static_cast<double>(g[i]); });
    const double sgd = channel_sum(l, c, [&](int64_t i) {
      return static_cast<double>(g[i]) * (static_cast<double>(x[i]) - m);
    });
    gb[c] = static_cast<T>(sg);
    gw[c] = static_cast<T>(sgd * is);  // sum of g * xhat
    if (!gx) return;
    // gx = w * invstd * (g - mean(g) - xhat * mean(g * xhat)) = a * g + e * x + f per channel.
    const double a = (w ? static_cast<double>(w[c]) : 1.0) * is;
    const double e = -a * is * is * sgd / M;
    const double f = -a * sg / M - e * m;
    const T at = static_cast<T>(a), et = static_cast<T>(e), ft = static_cast<T>(f);
    for (int64_t n = 0; n < l.N; ++n) {
      const int64_t base = (n * l.C + c) * l.S;
      for (int64_t i = 0; i < l.S; ++i) gx[base + i] = at * g[base + i] + et * x[base + i] + ft;
    }
  });
}

}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& mean, const Tensor& var, const Tensor& invstd) {
  if (x.dtype() == DType::Float32)
    forward_typed<float>(x, weight, bias, eps, out, mean, var, invstd);
  else
    forward_typed<double>(x, weight, bias, eps, out, mean, var, invstd);
}

void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& weight, const Tensor& grad_in, const Tensor& grad_weight,
                         const Tensor& grad_bias) {
  if (x.dtype() == DType::Float32)
    backward_typed<float>(grad_out, x, mean, invstd, weight, grad_in, grad_weight, grad_bias);
  else
    backward_typed<double>(grad_out, x, mean, invstd, weight, grad_in, grad_weight, grad_bias);
}

}  // namespace cpu
}  // namespace nash
