// batch_norm_train: argument checks, the fused forward kernel, and a backward that runs the fused kernel unless its
// own graph is being recorded (create_graph), where it is the composite formula so that it differentiates again.
#include <cmath>

#include "core/ops/common.h"

namespace nash {

using V = std::vector<Tensor>;

namespace {

// A history-free contiguous copy (or view) for the kernels.
Tensor raw(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

// The dims the statistics run over (all but 1) and the (1, C, 1, ...) shape of a per-channel tensor.
std::vector<int64_t> stat_dims(const Tensor& x) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != 1) dims.push_back(d);
  return dims;
}
Shape channel_shape(const Tensor& x) {
  Shape s(static_cast<std::size_t>(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

// The backward written in differentiable ops. The statistics are recomputed from x (not taken from the forward),
// so a second derivative sees how they depend on x.
V composite_backward(const BackwardContext& c, const Tensor& x, const Tensor& w, const Tensor& g, double eps) {
  const std::vector<int64_t> dims = stat_dims(x);
  const Tensor inv = pow(add(var(x, dims, false, true), eps), -0.5);
  const Tensor xhat = mul(sub(x, mean(x, dims, true)), inv);
  V out(3);
  if (c.needs(0)) {
    const Tensor gh = w.defined() ? mul(g, w.reshape(channel_shape(x))) : g;
    out[0] = mul(inv, sub(sub(gh, mean(gh, dims, true)), mul(xhat, mean(mul(gh, xhat), dims, true))));
  }
  if (c.needs(1)) out[1] = sum(mul(g, xhat), dims);
  if (c.needs(2)) out[2] = sum(g, dims);
  return out;
}

void check_channel_param(const char* op, const char* what, const Tensor& p, const Tensor& x) {
  if (!p.defined()) return;
  NASH_CHECK(p.dim() == 1 && p.size(0) == x.size(1), op, ": ", what, " ", shape_str(p.shape()), " must be (",
             x.size(1), ") for input ", shape_str(x.shape()));
}

}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor* mean_out,
                        Tensor* var_out) {
  const char* op = "batch_norm_train";
  NASH_CHECK(x.defined(), op, ": input is undefined");
  for (const Tensor* p : {&weight, &bias})
    if (p->defined()) detail::require_same_device_dtype(op, {&x, p});
  NASH_CHECK(x.dim() >= 2 && x.size(1) > 0, op, ": input must be (N, C, ...) with C > 0, got ", shape_str(x.shape()));
  NASH_CHECK(x.numel() / x.size(1) > 1, op, ": training needs more than 1 value per channel, got input of shape ",
             shape_str(x.shape()));
  NASH_CHECK(std::isfinite(eps) && eps > 0, op, ": eps must be positive and finite, got ", eps);
  check_channel_param(op, "weight", weight, x);
  check_channel_param(op, "bias", bias, x);
  const int64_t C = x.size(1);
  const Tensor xr = raw(x);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  Tensor mu = empty({C}, x.dtype(), x.device()), v = empty({C}, x.dtype(), x.device()),
         inv = empty({C}, x.dtype(), x.device());
  detail::call(op, x.device(), &detail::Backend::batch_norm_forward, xr, raw(weight), raw(bias), eps, out, mu, v, inv);
  if (mean_out) *mean_out = mu;
  if (var_out) *var_out = v;
  if (!autograd::any_requires_grad({&x, &weight, &bias})) return out;
  return autograd::record(op, out, {x, weight, bias}, {x, weight, mu, inv},
                          [eps, op](const BackwardContext& c, const Tensor& g) {
                            const Tensor &xs = c.saved(0), &w = c.saved(1);
                            if (GradMode::is_enabled() &&
                                (g.requires_grad() || xs.requires_grad() || (w.defined() && w.requires_grad())))
                              return composite_backward(c, xs, w, g, eps);
                            const int64_t ch = xs.size(1);
                            Tensor gx = c.needs(0) ? empty(xs.shape(), xs.dtype(), xs.device()) : Tensor();
                            Tensor gw = empty({ch}, xs.dtype(), xs.device()), gb = empty({ch}, xs.dtype(), xs.device());
                            detail::call(op, xs.device(), &detail::Backend::batch_norm_backward, raw(g), raw(xs),
                                         c.saved(2), c.saved(3), raw(w), gx, gw, gb);
                            return V{gx, c.needs(1) ? gw : Tensor(), c.needs(2) ? gb : Tensor()};
                          });
}

}  // namespace nash
