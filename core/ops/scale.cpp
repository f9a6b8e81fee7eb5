// Equalized-learning-rate ops: scale_weight (w * c) and the conv/linear with scale, bias and activation fused.
#include <cmath>
#include <string>

#include "core/ops/common.h"

namespace nash {

using V = std::vector<Tensor>;

namespace {

Tensor raw(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

std::string hw(Int2 v) { return "(" + std::to_string(v.h) + ", " + std::to_string(v.w) + ")"; }

// act_gain * d leaky_relu / dz at every element, read from the output y: with act_slope >= 0 and act_gain > 0,
// y > 0 exactly where the pre-activation z > 0, so no pre-activation tensor has to be kept. History-free.
Tensor activation_slope_mask(const Tensor& y, double act_slope, double act_gain) {
  Tensor m = empty(y.shape(), y.dtype(), y.device());
  detail::call("conv2d_scaled_bias_act_backward", y.device(), &detail::Backend::unary, math::Unary::LeakyReluSlope,
               act_slope, 0.0, raw(y), m);
  if (act_gain != 1.0) m.mul_(act_gain);
  return m;
}

}  // namespace

Tensor scale_weight(const Tensor& w, double c) {
  NASH_CHECK(w.defined(), "scale_weight: got an undefined tensor");
  NASH_CHECK(std::isfinite(c), "scale_weight: the scale must be finite, got ", c, " for weight ", w.str());
  Tensor out = empty(w.shape(), w.dtype(), w.device());
  // The weight-scaling kernel is the backends' vectorised unary MulScalar (float4 on CUDA).
  detail::call("scale_weight", w.device(), &detail::Backend::unary, math::Unary::MulScalar, c, 0.0, raw(w), out);
  return autograd::record("scale_weight", out, {w}, {},
                          [c](const BackwardContext&, const Tensor& g) { return V{scale_weight(g, c)}; });
}

Tensor conv2d_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& b, double bias_scale,
                              double act_slope, double act_gain, Int2 stride, Int2 padding, Int2 dilation) {
  const char* op = "conv2d_scaled_bias_act";
  NASH_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  if (b.defined())
    detail::require_same_device_dtype(op, {&x, &w, &b});
  else
    detail::require_same_device_dtype(op, {&x, &w});
  NASH_CHECK(x.dim() == 4, op, ": input must be 4-D (N, Cin, H, W), got ", shape_str(x.shape()));
  NASH_CHECK(w.dim() == 4 && w.size(2) > 0 && w.size(3) > 0, op,
             ": weight must be 4-D (Cout, Cin, kh, kw) with a positive kernel, got ", shape_str(w.shape()));
  NASH_CHECK(x.size(1) == w.size(1) && x.size(1) > 0, op, ": input ", shape_str(x.shape()), " has ", x.size(1),
             " channels but weight ", shape_str(w.shape()), " expects ", w.size(1));
  NASH_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), op, ": bias ", shape_str(b.shape()),
             " must be (", w.size(0), ") for weight ", shape_str(w.shape()));
  NASH_CHECK(std::isfinite(scale) && std::isfinite(bias_scale), op, ": scale ", scale, " and bias_scale ", bias_scale,
             " must be finite");
  NASH_CHECK(act_slope >= 0 && std::isfinite(act_slope) && act_gain > 0 && std::isfinite(act_gain), op,
             ": needs act_slope >= 0 and act_gain > 0 (the backward reads the slope from the output's sign), got "
             "act_slope=",
             act_slope, " act_gain=", act_gain);
  NASH_CHECK(stride.h > 0 && stride.w > 0 && dilation.h > 0 && dilation.w > 0 && padding.h >= 0 && padding.w >= 0, op,
             ": needs positive stride and dilation and non-negative padding, got stride=", hw(stride),
             " padding=", hw(padding), " dilation=", hw(dilation));
  const Int2 in{x.size(2), x.size(3)}, k{w.size(2), w.size(3)};
  const Int2 o = conv2d_output_hw(in, k, stride, padding, dilation);
  NASH_CHECK(o.h > 0 && o.w > 0, op, ": output size would be ", hw(o), " for input ", shape_str(x.shape()), ", kernel ",
             hw(k), ", stride ", hw(stride), ", padding ", hw(padding), ", dilation ", hw(dilation));

  Tensor out = empty({x.size(0), w.size(0), o.h, o.w}, x.dtype(), x.device());
  detail::call(op, out.device(), &detail::Backend::conv2d_scaled_bias_act, raw(x), raw(w), scale, raw(b), bias_scale,
               act_slope, act_gain, stride, padding, dilation, out);
  if (!autograd::any_requires_grad({&x, &w, &b})) return out;

  // The backward goes through the unfused ops (conv2d_grad_input/weight, sum), so it differentiates again. The
  // activation's slope comes from the saved output (see activation_slope_mask); with act_slope = 1 nothing is saved.
  const bool identity = act_slope == 1.0;
  Tensor sx = w.requires_grad() ? x : Tensor(), sw = x.requires_grad() ? w : Tensor();
  Tensor sy = identity ? Tensor() : out;
  return autograd::record(op, out, {x, w, b}, {sx, sw, sy},
                          [in, k, scale, bias_scale, act_slope, act_gain, identity, stride, padding, dilation](
                              const BackwardContext& c, const Tensor& g) {
                            // gz: the gradient at the pre-activation z = conv * scale + bias * bias_scale.
                            Tensor gz = identity ? (act_gain == 1.0 ? g : mul(g, act_gain))
                                                 : mul(g, activation_slope_mask(c.saved(2), act_slope, act_gain));
                            Tensor gx, gw, gb;
                            if (c.needs(0) || c.needs(1)) {
                              Tensor gs = scale == 1.0 ? gz : mul(gz, scale);
                              if (c.needs(0)) gx = conv2d_grad_input(gs, c.saved(1), in, stride, padding, dilation);
                              if (c.needs(1)) gw = conv2d_grad_weight(c.saved(0), gs, k, stride, padding, dilation);
                            }
                            if (c.needs(2)) {
                              gb = sum(gz, {0, 2, 3});
                              if (bias_scale != 1.0) gb = mul(gb, bias_scale);
                            }
                            return V{gx, gw, gb};
                          });
}

Tensor linear_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& b, double bias_scale,
                              double act_slope, double act_gain) {
  const char* op = "linear_scaled_bias_act";
  NASH_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  NASH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), op, ": expected x (N, in) and w (out, in), got ",
             shape_str(x.shape()), " and ", shape_str(w.shape()));
  Tensor y = conv2d_scaled_bias_act(x.reshape({x.size(0), x.size(1), 1, 1}), w.reshape({w.size(0), w.size(1), 1, 1}),
                                    scale, b, bias_scale, act_slope, act_gain);
  return y.reshape({x.size(0), w.size(0)});
}

}  // namespace nash
