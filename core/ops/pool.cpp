// Pooling and resampling ops: avg_pool2d / avg_pool2d_grad and upsample_nearest2d / sum_pool2d; each pair is the other's backward.
#include <string>

#include "core/ops/common.h"

namespace nash {

using V = std::vector<Tensor>;

namespace {

std::string hw(Int2 v) { return "(" + std::to_string(v.h) + ", " + std::to_string(v.w) + ")"; }

Tensor raw(const Tensor& t) { return t.detach().contiguous(); }

void check_input(const char* op, const char* what, const Tensor& x) {
  NASH_CHECK(x.defined(), op, ": got an undefined tensor");
  NASH_CHECK(x.dim() == 4, op, ": ", what, " must be 4-D (N, C, H, W), got ", shape_str(x.shape()));
}

// Resolves stride 0 to the kernel and validates the pooling window; returns the output size for input `in`.
Int2 pool_output_hw(const char* op, Int2 in, Int2 kernel, Int2& stride, Int2 padding) {
  if (stride.h == 0) stride.h = kernel.h;
  if (stride.w == 0) stride.w = kernel.w;
  NASH_CHECK(kernel.h > 0 && kernel.w > 0, op, ": kernel must be positive, got ", hw(kernel));
  NASH_CHECK(stride.h > 0 && stride.w > 0, op, ": stride must be positive (or 0 for the kernel size), got ",
             hw(stride));
  NASH_CHECK(padding.h >= 0 && padding.w >= 0 && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w, op,
             ": padding ", hw(padding), " must be non-negative and at most half the kernel ", hw(kernel));
  Int2 o = conv2d_output_hw(in, kernel, stride, padding, 1);
  NASH_CHECK(o.h > 0 && o.w > 0, op, ": output size would be ", hw(o), " for input size ", hw(in), ", kernel ",
             hw(kernel), ", stride ", hw(stride), ", padding ", hw(padding));
  return o;
}

}  // namespace

Tensor avg_pool2d(const Tensor& x, Int2 kernel, Int2 stride, Int2 padding) {
  const char* op = "avg_pool2d";
  check_input(op, "input", x);
  const Int2 in{x.size(2), x.size(3)};
  const Int2 o = pool_output_hw(op, in, kernel, stride, padding);
  Tensor out = empty({x.size(0), x.size(1), o.h, o.w}, x.dtype(), x.device());
  detail::call(op, out.device(), &detail::Backend::avg_pool2d, raw(x), kernel, stride, padding, out);
  return autograd::record(op, out, {x}, {}, [in, kernel, stride, padding](const BackwardContext&, const Tensor& g) {
    return V{avg_pool2d_grad(g, in, kernel, stride, padding)};
  });
}

Tensor avg_pool2d_grad(const Tensor& grad_out, Int2 input_hw, Int2 kernel, Int2 stride, Int2 padding) {
  const char* op = "avg_pool2d_grad";
  check_input(op, "grad_out", grad_out);
  NASH_CHECK(input_hw.h > 0 && input_hw.w > 0, op, ": input size must be positive, got ", hw(input_hw));
  const Int2 o = pool_output_hw(op, input_hw, kernel, stride, padding);
  NASH_CHECK(o.h == grad_out.size(2) && o.w == grad_out.size(3), op, ": grad_out ", shape_str(grad_out.shape()),
             " does not match the avg_pool2d output size ", hw(o), " of an input of size ", hw(input_hw));
  Tensor out = empty({grad_out.size(0), grad_out.size(1), input_hw.h, input_hw.w}, grad_out.dtype(), grad_out.device());
  detail::call(op, out.device(), &detail::Backend::avg_pool2d_grad, raw(grad_out), kernel, stride, padding, out);
  // A linear map whose adjoint is the pooling itself.
  return autograd::record(op, out, {grad_out}, {}, [kernel, stride, padding](const BackwardContext&, const Tensor& g) {
    return V{avg_pool2d(g, kernel, stride, padding)};
  });
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  const char* op = "upsample_nearest2d";
  check_input(op, "input", x);
  NASH_CHECK(scale >= 1, op, ": scale must be a positive integer, got ", scale);
  Tensor out = empty({x.size(0), x.size(1), x.size(2) * scale, x.size(3) * scale}, x.dtype(), x.device());
  detail::call(op, out.device(), &detail::Backend::upsample_nearest2d, raw(x), scale, out);
  return autograd::record(op, out, {x}, {},
                          [scale](const BackwardContext&, const Tensor& g) { return V{sum_pool2d(g, scale)}; });
}

Tensor sum_pool2d(const Tensor& x, int64_t scale) {
  const char* op = "sum_pool2d";
  check_input(op, "input", x);
  NASH_CHECK(scale >= 1, op, ": scale must be a positive integer, got ", scale);
  NASH_CHECK(x.size(2) % scale == 0 && x.size(3) % scale == 0, op, ": input ", shape_str(x.shape()),
             " has a spatial size not divisible by the scale ", scale);
  Tensor out = empty({x.size(0), x.size(1), x.size(2) / scale, x.size(3) / scale}, x.dtype(), x.device());
  detail::call(op, out.device(), &detail::Backend::sum_pool2d, raw(x), scale, out);
  return autograd::record(op, out, {x}, {},
                          [scale](const BackwardContext&, const Tensor& g) { return V{upsample_nearest2d(g, scale)}; });
}

}  // namespace nash
