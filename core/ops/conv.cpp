// conv2d, conv2d_grad_input, conv2d_grad_weight (one family whose backwards are each other) and conv_transpose2d.
#include <algorithm>
#include <string>

#include "core/ops/common.h"

namespace nash {

using V = std::vector<Tensor>;

namespace {

std::string hw(Int2 v) { return "(" + std::to_string(v.h) + ", " + std::to_string(v.w) + ")"; }

// A history-free contiguous copy (or view) for the kernels.
Tensor raw(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

void check_4d(const char* op, const char* what, const Tensor& t, const char* layout) {
  NASH_CHECK(t.dim() == 4, op, ": ", what, " must be 4-D ", layout, ", got ", shape_str(t.shape()));
}

void check_kernel(const char* op, const Tensor& w) {
  NASH_CHECK(w.size(2) > 0 && w.size(3) > 0, op, ": weight ", shape_str(w.shape()),
             " must have a positive kernel size");
}

void check_params(const char* op, Int2 stride, Int2 padding, Int2 dilation) {
  NASH_CHECK(stride.h > 0 && stride.w > 0, op, ": stride must be positive, got ", hw(stride));
  NASH_CHECK(padding.h >= 0 && padding.w >= 0, op, ": padding must be non-negative, got ", hw(padding));
  NASH_CHECK(dilation.h > 0 && dilation.w > 0, op, ": dilation must be positive, got ", hw(dilation));
}

// The conv2d output size for this input, checked to be positive.
Int2 output_hw(const char* op, Int2 in, Int2 k, Int2 s, Int2 p, Int2 d) {
  Int2 o = conv2d_output_hw(in, k, s, p, d);
  NASH_CHECK(o.h > 0 && o.w > 0, op, ": output size would be ", hw(o), " for input size ", hw(in), ", kernel ", hw(k),
             ", stride ", hw(s), ", padding ", hw(p), ", dilation ", hw(d),
             " (the dilated kernel must fit inside the padded input)");
  return o;
}

}  // namespace

Int2 conv2d_output_hw(Int2 in, Int2 k, Int2 s, Int2 p, Int2 d) {
  NASH_CHECK(s.h > 0 && s.w > 0 && d.h > 0 && d.w > 0, "conv2d_output_hw: stride ", hw(s), " and dilation ", hw(d),
             " must be positive");
  auto one = [](int64_t n, int64_t k, int64_t s, int64_t p, int64_t d) -> int64_t {
    int64_t span = n + 2 * p - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
  };
  return {one(in.h, k.h, s.h, p.h, d.h), one(in.w, k.w, s.w, p.w, d.w)};
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Int2 stride, Int2 padding, Int2 dilation) {
  const char* op = "conv2d";
  if (b.defined())
    detail::require_same_device_dtype(op, {&x, &w, &b});
  else
    detail::require_same_device_dtype(op, {&x, &w});
  check_4d(op, "input", x, "(N, Cin, H, W)");
  check_4d(op, "weight", w, "(Cout, Cin, kh, kw)");
  check_kernel(op, w);
  NASH_CHECK(x.size(1) == w.size(1), op, ": input ", shape_str(x.shape()), " has ", x.size(1), " channels but weight ",
             shape_str(w.shape()), " expects ", w.size(1), " (weight is (Cout, Cin, kh, kw))");
  NASH_CHECK(x.size(1) > 0, op, ": input ", shape_str(x.shape()), " has no channels");
  NASH_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), op, ": bias ", shape_str(b.shape()),
             " must be (", w.size(0), ") for weight ", shape_str(w.shape()));
  check_params(op, stride, padding, dilation);
  const Int2 in{x.size(2), x.size(3)}, k{w.size(2), w.size(3)};
  const Int2 o = output_hw(op, in, k, stride, padding, dilation);
  Tensor out = empty({x.size(0), w.size(0), o.h, o.w}, x.dtype(), x.device());
  detail::call(op, out.device(), &detail::Backend::conv2d, raw(x), raw(w), raw(b), stride, padding, dilation, out);
  if (!autograd::any_requires_grad({&x, &w, &b})) return out;
  // x is needed only for the weight gradient, w only for the input gradient.
  Tensor sx = w.requires_grad() ? x : Tensor(), sw = x.requires_grad() ? w : Tensor();
  return autograd::record(op, out, {x, w, b}, {sx, sw},
                          [in, k, stride, padding, dilation](const BackwardContext& c, const Tensor& g) {
                            Tensor gx, gw, gb;
                            if (c.needs(0)) gx = conv2d_grad_input(g, c.saved(1), in, stride, padding, dilation);
                            if (c.needs(1)) gw = conv2d_grad_weight(c.saved(0), g, k, stride, padding, dilation);
                            if (c.needs(2)) gb = sum(g, {0, 2, 3});
                            return V{gx, gw, gb};
                          });
}

Tensor conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 input_hw, Int2 stride, Int2 padding,
                         Int2 dilation) {
  const char* op = "conv2d_grad_input";
  detail::require_same_device_dtype(op, {&grad_out, &w});
  check_4d(op, "grad_out", grad_out, "(N, Cout, Ho, Wo)");
  check_4d(op, "weight", w, "(Cout, Cin, kh, kw)");
  check_kernel(op, w);
  NASH_CHECK(grad_out.size(1) == w.size(0), op, ": grad_out ", shape_str(grad_out.shape()), " has ", grad_out.size(1),
             " channels but weight ", shape_str(w.shape()), " has ", w.size(0), " output channels");
  NASH_CHECK(input_hw.h > 0 && input_hw.w > 0, op, ": input size must be positive, got ", hw(input_hw));
  check_params(op, stride, padding, dilation);
  const Int2 k{w.size(2), w.size(3)};
  const Int2 o = output_hw(op, input_hw, k, stride, padding, dilation);
  NASH_CHECK(o.h == grad_out.size(2) && o.w == grad_out.size(3), op, ": grad_out ", shape_str(grad_out.shape()),
             " does not match the conv2d output size ", hw(o), " of an input of size ", hw(input_hw), " with kernel ",
             hw(k), ", stride ", hw(stride), ", padding ", hw(padding), ", dilation ", hw(dilation));
  Tensor out = empty({grad_out.size(0), w.size(1), input_hw.h, input_hw.w}, w.dtype(), w.device());
  detail::call(op, out.device(), &detail::Backend::conv2d_grad_input, raw(grad_out), raw(w), stride, padding, dilation,
               out);
  if (!autograd::any_requires_grad({&grad_out, &w})) return out;
  Tensor sg = w.requires_grad() ? grad_out : Tensor(), sw = grad_out.requires_grad() ? w : Tensor();
  // Bilinear in (grad_out, w): each gradient is the family member with the other operand fixed.
  return autograd::record(op, out, {grad_out, w}, {sg, sw},
                          [k, stride, padding, dilation](const BackwardContext& c, const Tensor& g) {
                            Tensor dg, dw;
                            if (c.needs(0)) dg = conv2d(g, c.saved(1), Tensor(), stride, padding, dilation);
                            if (c.needs(1)) dw = conv2d_grad_weight(g, c.saved(0), k, stride, padding, dilation);
                            return V{dg, dw};
                          });
}

Tensor conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 kernel_hw, Int2 stride, Int2 padding,
                          Int2 dilation) {
  const char* op = "conv2d_grad_weight";
  detail::require_same_device_dtype(op, {&x, &grad_out});
  check_4d(op, "input", x, "(N, Cin, H, W)");
  check_4d(op, "grad_out", grad_out, "(N, Cout, Ho, Wo)");
  NASH_CHECK(x.size(0) == grad_out.size(0), op, ": input ", shape_str(x.shape()), " and grad_out ",
             shape_str(grad_out.shape()), " have different batch sizes");
  NASH_CHECK(kernel_hw.h > 0 && kernel_hw.w > 0, op, ": kernel size must be positive, got ", hw(kernel_hw));
  check_params(op, stride, padding, dilation);
  const Int2 in{x.size(2), x.size(3)};
  const Int2 o = output_hw(op, in, kernel_hw, stride, padding, dilation);
  NASH_CHECK(o.h == grad_out.size(2) && o.w == grad_out.size(3), op, ": grad_out ", shape_str(grad_out.shape()),
             " does not match the conv2d output size ", hw(o), " of input ", shape_str(x.shape()), " with kernel ",
             hw(kernel_hw), ", stride ", hw(stride), ", padding ", hw(padding), ", dilation ", hw(dilation));
  Tensor out = empty({grad_out.size(1), x.size(1), kernel_hw.h, kernel_hw.w}, x.dtype(), x.device());
  detail::call(op, out.device(), &detail::Backend::conv2d_grad_weight, raw(x), raw(grad_out), stride, padding, dilation,
               out);
  if (!autograd::any_requires_grad({&x, &grad_out})) return out;
  Tensor sx = grad_out.requires_grad() ? x : Tensor(), sg = x.requires_grad() ? grad_out : Tensor();
  return autograd::record(op, out, {x, grad_out}, {sx, sg},
                          [in, stride, padding, dilation](const BackwardContext& c, const Tensor& g) {
                            Tensor dx, dg;
                            if (c.needs(0)) dx = conv2d_grad_input(c.saved(1), g, in, stride, padding, dilation);
                            if (c.needs(1)) dg = conv2d(c.saved(0), g, Tensor(), stride, padding, dilation);
                            return V{dx, dg};
                          });
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, Int2 stride, Int2 padding,
                        Int2 output_padding, Int2 dilation) {
  const char* op = "conv_transpose2d";
  if (b.defined())
    detail::require_same_device_dtype(op, {&x, &w, &b});
  else
    detail::require_same_device_dtype(op, {&x, &w});
  check_4d(op, "input", x, "(N, Cin, H, W)");
  check_4d(op, "weight", w, "(Cin, Cout, kh, kw)");
  check_kernel(op, w);
  NASH_CHECK(x.size(1) == w.size(0), op, ": input ", shape_str(x.shape()), " has ", x.size(1), " channels but weight ",
             shape_str(w.shape()), " expects ", w.size(0), " (weight is (Cin, Cout, kh, kw))");
  NASH_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(1)), op, ": bias ", shape_str(b.shape()),
             " must be (", w.size(1), ") for weight ", shape_str(w.shape()));
  check_params(op, stride, padding, dilation);
  const Int2 op_ = output_padding;
  NASH_CHECK(
      op_.h >= 0 && op_.w >= 0 && op_.h < std::max(stride.h, dilation.h) && op_.w < std::max(stride.w, dilation.w), op,
      ": output_padding ", hw(op_), " must be non-negative and smaller than either stride ", hw(stride),
      " or dilation ", hw(dilation));
  const Int2 k{w.size(2), w.size(3)};
  auto out_len = [](int64_t n, int64_t k, int64_t s, int64_t p, int64_t opad, int64_t d) {
    return (n - 1) * s - 2 * p + d * (k - 1) + opad + 1;
  };
  const Int2 out_hw{out_len(x.size(2), k.h, stride.h, padding.h, op_.h, dilation.h),
                    out_len(x.size(3), k.w, stride.w, padding.w, op_.w, dilation.w)};
  NASH_CHECK(out_hw.h > 0 && out_hw.w > 0, op, ": output size would be ", hw(out_hw), " for input ",
             shape_str(x.shape()), ", kernel ", hw(k), ", stride ", hw(stride), ", padding ", hw(padding),
             ", output_padding ", hw(op_), ", dilation ", hw(dilation));
  // conv_transpose2d is the input gradient of the conv2d that maps out_hw back to x's size. When output_padding
  // reaches the stride (allowed when dilation is larger), that conv2d has a larger output: x is its top-left
  // corner and the rest is zero.
  Tensor xin = x;
  const Int2 conv_o = conv2d_output_hw(out_hw, k, stride, padding, dilation);
  if (conv_o.h != x.size(2)) xin = narrow_scatter(xin, {x.size(0), x.size(1), conv_o.h, x.size(3)}, 2, 0);
  if (conv_o.w != x.size(3)) xin = narrow_scatter(xin, {x.size(0), x.size(1), conv_o.h, conv_o.w}, 3, 0);
  Tensor y = conv2d_grad_input(xin, w, out_hw, stride, padding, dilation);
  if (b.defined()) y = add(y, b.reshape({1, w.size(1), 1, 1}));
  return y;
}

}  // namespace nash
