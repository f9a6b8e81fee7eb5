// Reductions (sum, mean, amax/amin, norm, var, logsumexp, softmax) and sum_to, the reverse of broadcasting.
#include <cmath>

#include "core/ops/common.h"

namespace nash {

using V = std::vector<Tensor>;

namespace {

struct ReducePlan {
  std::vector<int64_t> dims;  // reduced, wrapped, sorted
  Shape keep_shape;           // x's shape with reduced dims set to 1
  Shape out_shape;            // keep_shape without the reduced dims (or = keep_shape with keepdim)
  int64_t rows = 1, cols = 1;
};

ReducePlan plan(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReducePlan p;
  int64_t n = x.dim();
  p.dims = detail::wrap_dims(op, dims, n);
  std::vector<bool> red(n, false);
  for (int64_t d : p.dims) red[d] = true;
  for (int64_t i = 0; i < n; ++i) {
    p.keep_shape.push_back(red[i] ? 1 : x.shape()[i]);
    if (red[i]) p.cols *= x.shape()[i];
    else p.rows *= x.shape()[i];
    if (!red[i] || keepdim) p.out_shape.push_back(red[i] ? 1 : x.shape()[i]);
  }
  return p;
}

// Reduces x over p.dims with a backend kernel; kept dims become rows, reduced dims columns.
Tensor reduce_raw(const char* op, math::Reduce kind, const Tensor& x, const ReducePlan& p) {
  if (kind != math::Reduce::Sum)
    NASH_CHECK(p.cols > 0, op, ": cannot reduce an empty dimension (shape ", shape_str(x.shape()), ")");
  int64_t n = x.dim();
  Shape perm;
  std::vector<bool> red(n, false);
  for (int64_t d : p.dims) red[d] = true;
  for (int64_t i = 0; i < n; ++i)
    if (!red[i]) perm.push_back(i);
  for (int64_t d : p.dims) perm.push_back(d);
  Tensor xs = x.detach();
  Shape ps, pst;
  for (int64_t d : perm) {
    ps.push_back(xs.shape()[d]);
    pst.push_back(xs.strides()[d]);
  }
  Tensor xp = detail::raw_view(xs, ps, pst, xs.storage_offset()).contiguous();
  Tensor out = empty(p.out_shape, x.dtype(), x.device());
  detail::call(op, x.device(), &detail::Backend::reduce_rows, kind, xp, p.rows, p.cols, out);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  NASH_CHECK(x.defined(), "sum: got an undefined tensor");
  ReducePlan p = plan("sum", x, dims, keepdim);
  Tensor out = reduce_raw("sum", math::Reduce::Sum, x, p);
  Shape keep = p.keep_shape, full = x.shape();
  return autograd::record("sum", out, {x}, {}, [keep, full](const BackwardContext&, const Tensor& g) {
    return V{g.reshape(keep).expand(full)};
  });
}
Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReducePlan p = plan("mean", x, dims, keepdim);
  NASH_CHECK(p.cols > 0, "mean: mean over an empty dimension (shape ", shape_str(x.shape()), ")");
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(p.cols));
}
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

namespace {
Tensor extreme(const char* op, math::Reduce kind, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  NASH_CHECK(x.defined(), op, ": got an undefined tensor");
  ReducePlan p = plan(op, x, dims, keepdim);
  Tensor out = reduce_raw(op, kind, x, p);
  Shape keep = p.keep_shape;
  std::vector<int64_t> rd = p.dims;
  return autograd::record(op, out, {x}, {x, out}, [keep, rd](const BackwardContext& c, const Tensor& g) {
    // Ties share the gradient equally; the mask and its count carry no history.
    const Tensor& xs = c.saved(0);
    Tensor mask = eq(xs, c.saved(1).detach().reshape(keep));
    Tensor count = sum(mask, rd, true);
    return V{mul(g.reshape(keep), div(mask, count))};
  });
}
}  // namespace

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme("amax", math::Reduce::Max, x, dims, keepdim);
}
Tensor amax(const Tensor& x) { return amax(x, {}, false); }
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme("amin", math::Reduce::Min, x, dims, keepdim);
}
Tensor max(const Tensor& x) { return amax(x); }
Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return amax(x, {dim}, keepdim); }
Tensor min(const Tensor& x) { return amin(x, {}, false); }

Tensor norm(const Tensor& x, double p, const std::vector<int64_t>& dims, bool keepdim) {
  NASH_CHECK(p == 1.0 || p == 2.0, "norm: p = ", p, " is not supported (use 1 or 2)");
  if (p == 1.0) return sum(abs(x), dims, keepdim);
  ReducePlan pl = plan("norm", x, dims, keepdim);
  Tensor out;
  {
    NoGradGuard ng;
    out = sqrt(sum(square(x), dims, keepdim));
  }
  Shape keep = pl.keep_shape;
  return autograd::record("norm", out, {x}, {x, out}, [keep](const BackwardContext& c, const Tensor& g) {
    // d||x|| / dx = x / ||x||, taken as 0 where the norm is 0 (then x is 0 too).
    Tensor n = clamp_min(c.saved(1).reshape(keep), 1e-30);
    return V{mul(c.saved(0), div(g.reshape(keep), n))};
  });
}
Tensor norm(const Tensor& x, double p) { return norm(x, p, {}, false); }

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  ReducePlan p = plan("var", x, dims, keepdim);
  NASH_CHECK(p.cols > (unbiased ? 1 : 0), "var: needs at least ", unbiased ? 2 : 1, " elements per reduction, got ",
             p.cols);
  Tensor centered = sub(x, mean(x, dims, true));
  Tensor s = sum(square(centered), dims, keepdim);
  return mul(s, 1.0 / static_cast<double>(unbiased ? p.cols - 1 : p.cols));
}

Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  // The shift is a constant for differentiation: logsumexp is shift-invariant.
  Tensor m = amax(x.detach(), {dim}, true);
  Tensor r = add(log(sum(exp(sub(x, m)), {dim}, true)), m);
  return keepdim ? r : r.squeeze(dim);
}

Tensor log_softmax(const Tensor& x, int64_t dim) { return sub(x, logsumexp(x, dim, true)); }
// One recorded op (shifted exp over its sum, computed without history) instead of the composition exp(log_softmax):
// one exp instead of two and a four-op backward, dx = y (g - Σ_dim g y), which is itself differentiable through the
// saved output (attention maps in gradient penalties).
Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor y;
  {
    NoGradGuard ng;
    const Tensor e = exp(sub(x, amax(x, {dim}, true)));
    y = div(e, sum(e, {dim}, true));
  }
  return autograd::record("softmax", y, {x}, {y}, [dim](const BackwardContext& c, const Tensor& g) {
    const Tensor& s = c.saved(0);
    return V{mul(s, sub(g, sum(mul(g, s), {dim}, true)))};
  });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const Shape& s = x.shape();
  NASH_CHECK(shape.size() <= s.size(), "sum_to: cannot sum shape ", shape_str(s), " to ", shape_str(shape));
  std::size_t lead = s.size() - shape.size();
  std::vector<int64_t> dims;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<int64_t>(i));
      continue;
    }
    int64_t t = shape[i - lead];
    NASH_CHECK(t == s[i] || t == 1, "sum_to: cannot sum shape ", shape_str(s), " to ", shape_str(shape));
    if (t == 1 && s[i] != 1) dims.push_back(static_cast<int64_t>(i));
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

Tensor argmax(const Tensor& x, int64_t dim) {
  int64_t n = x.dim();
  dim = detail::wrap_dim("argmax", dim, n);
  ReducePlan p = plan("argmax", x, {dim}, false);
  NASH_CHECK(p.cols > 0, "argmax: empty dimension in shape ", shape_str(x.shape()));
  Shape perm;
  for (int64_t i = 0; i < n; ++i)
    if (i != dim) perm.push_back(i);
  perm.push_back(dim);
  Tensor xp;
  {
    NoGradGuard ng;
    xp = x.detach().permute(perm).contiguous();
  }
  Tensor out = empty(p.out_shape, x.dtype(), x.device());
  detail::call("argmax", x.device(), &detail::Backend::argmax_rows, xp, p.rows, p.cols, out);
  return out;
}

}  // namespace nash
