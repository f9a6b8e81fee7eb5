// Elementwise ops with broadcasting: forward through the backend kernels, backward written in nash ops.
#include "core/ops/common.h"

namespace nash {

using math::Binary;
using math::Unary;
using V = std::vector<Tensor>;

namespace {

// Runs a unary kernel without recording.
Tensor unary_raw(const char* name, Unary k, const Tensor& x, double a = 0, double b = 0) {
  NASH_CHECK(x.defined(), name, ": got an undefined tensor");
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  detail::call(name, x.device(), &detail::Backend::unary, k, a, b, x, out);
  return out;
}

Tensor binary_raw(const char* name, Binary k, const Tensor& a, const Tensor& b) {
  detail::require_same_device_dtype(name, {&a, &b});
  Shape s = detail::broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = empty(s, a.dtype(), a.device());
  detail::call(name, a.device(), &detail::Backend::binary, k, detail::broadcast_view(a, s), detail::broadcast_view(b, s),
               out);
  return out;
}

Tensor unary_op(const char* name, Unary k, const Tensor& x, BackwardFn fn, bool save_input, bool save_output,
                double a = 0, double b = 0) {
  Tensor out = unary_raw(name, k, x, a, b);
  if (!autograd::any_requires_grad({&x})) return out;
  V saved;
  if (save_input) saved.push_back(x);
  if (save_output) saved.push_back(out);
  return autograd::record(name, out, {x}, saved, std::move(fn));
}

}  // namespace

// ---- unary ----------------------------------------------------------------------------------------
Tensor neg(const Tensor& x) {
  return unary_op("neg", Unary::Neg, x, [](const BackwardContext&, const Tensor& g) { return V{neg(g)}; }, false, false);
}
Tensor sqrt(const Tensor& x) {
  return unary_op("sqrt", Unary::Sqrt, x,
                  [](const BackwardContext& c, const Tensor& g) { return V{div(g, mul(c.saved(0), 2.0))}; }, false, true);
}
Tensor exp(const Tensor& x) {
  return unary_op("exp", Unary::Exp, x, [](const BackwardContext& c, const Tensor& g) { return V{mul(g, c.saved(0))}; },
                  false, true);
}
Tensor log(const Tensor& x) {
  return unary_op("log", Unary::Log, x, [](const BackwardContext& c, const Tensor& g) { return V{div(g, c.saved(0))}; },
                  true, false);
}
Tensor abs(const Tensor& x) {
  return unary_op("abs", Unary::Abs, x,
                  [](const BackwardContext& c, const Tensor& g) { return V{mul(g, sign(c.saved(0)))}; }, true, false);
}
Tensor square(const Tensor& x) {
  return unary_op("square", Unary::Square, x,
                  [](const BackwardContext& c, const Tensor& g) { return V{mul(g, mul(c.saved(0), 2.0))}; }, true, false);
}
Tensor relu(const Tensor& x) {
  return unary_op("relu", Unary::Relu, x,
                  [](const BackwardContext& c, const Tensor& g) { return V{mul(g, gt(c.saved(0), 0.0))}; }, true, false);
}
Tensor leaky_relu(const Tensor& x, double slope) {
  return unary_op(
      "leaky_relu", Unary::LeakyRelu, x,
      [slope](const BackwardContext& c, const Tensor& g) {
        return V{mul(g, unary_raw("leaky_relu_backward", Unary::LeakyReluSlope, c.saved(0), slope))};
      },
      true, false, slope);
}
Tensor sigmoid(const Tensor& x) {
  return unary_op("sigmoid", Unary::Sigmoid, x,
                  [](const BackwardContext& c, const Tensor& g) {
                    const Tensor& y = c.saved(0);
                    return V{mul(g, mul(y, rsub(y, 1.0)))};
                  },
                  false, true);
}
Tensor tanh(const Tensor& x) {
  return unary_op("tanh", Unary::Tanh, x,
                  [](const BackwardContext& c, const Tensor& g) {
                    const Tensor& y = c.saved(0);
                    return V{mul(g, rsub(square(y), 1.0))};
                  },
                  false, true);
}
Tensor softplus(const Tensor& x) {
  return unary_op("softplus", Unary::Softplus, x,
                  [](const BackwardContext& c, const Tensor& g) { return V{mul(g, sigmoid(c.saved(0)))}; }, true, false);
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  NASH_CHECK(!(lo > hi), "clamp: min ", lo, " is greater than max ", hi);
  return unary_op(
      "clamp", Unary::Clamp, x,
      [lo, hi](const BackwardContext& c, const Tensor& g) {
        const Tensor& xs = c.saved(0);
        return V{mul(g, mul(ge(xs, lo), le(xs, hi)))};
      },
      true, false, lo, hi);
}
Tensor clamp_min(const Tensor& x, double lo) { return clamp(x, lo, std::numeric_limits<double>::infinity()); }
Tensor clamp_max(const Tensor& x, double hi) { return clamp(x, -std::numeric_limits<double>::infinity(), hi); }

Tensor pow(const Tensor& x, double p) {
  if (p == 1.0) return x;
  return unary_op(
      "pow", Unary::PowScalar, x,
      [p](const BackwardContext& c, const Tensor& g) { return V{mul(g, mul(pow(c.saved(0), p - 1.0), p))}; }, true,
      false, p);
}
Tensor add(const Tensor& x, double s) {
  return unary_op("add", Unary::AddScalar, x, [](const BackwardContext&, const Tensor& g) { return V{g}; }, false,
                  false, s);
}
Tensor mul(const Tensor& x, double s) {
  return unary_op("mul", Unary::MulScalar, x, [s](const BackwardContext&, const Tensor& g) { return V{mul(g, s)}; },
                  false, false, s);
}
Tensor rsub(const Tensor& x, double s) {
  return unary_op("rsub", Unary::RSubScalar, x, [](const BackwardContext&, const Tensor& g) { return V{neg(g)}; },
                  false, false, s);
}
Tensor rdiv(const Tensor& x, double s) {
  // d(s/x)/dx = -s/x^2
  return unary_op("rdiv", Unary::RDivScalar, x,
                  [s](const BackwardContext& c, const Tensor& g) {
                    return V{div(mul(g, -s), square(c.saved(0)))};
                  },
                  true, false, s);
}

// ---- non-differentiable masks ---------------------------------------------------------------------
Tensor sign(const Tensor& x) { return unary_raw("sign", Unary::Sign, x); }
Tensor gt(const Tensor& x, double v) { return unary_raw("gt", Unary::Gt, x, v); }
Tensor ge(const Tensor& x, double v) { return unary_raw("ge", Unary::Ge, x, v); }
Tensor lt(const Tensor& x, double v) { return unary_raw("lt", Unary::Lt, x, v); }
Tensor le(const Tensor& x, double v) { return unary_raw("le", Unary::Le, x, v); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw("eq", Binary::Eq, a, b); }

// ---- binary -----------------------------------------------------------------------------------------
namespace {
Tensor binary_op(const char* name, Binary k, const Tensor& a, const Tensor& b, BackwardFn fn) {
  Tensor out = binary_raw(name, k, a, b);
  return autograd::record(name, out, {a, b}, {a, b, out}, std::move(fn));
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("add", Binary::Add, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return autograd::record("add", out, {a, b}, {}, [sa, sb](const BackwardContext& c, const Tensor& g) {
    return V{c.needs(0) ? sum_to(g, sa) : Tensor(), c.needs(1) ? sum_to(g, sb) : Tensor()};
  });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("sub", Binary::Sub, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return autograd::record("sub", out, {a, b}, {}, [sa, sb](const BackwardContext& c, const Tensor& g) {
    return V{c.needs(0) ? sum_to(g, sa) : Tensor(), c.needs(1) ? sum_to(neg(g), sb) : Tensor()};
  });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("mul", Binary::Mul, a, b);
  if (!autograd::any_requires_grad({&a, &b})) return out;
  // Save an operand only when the other one needs its gradient.
  Tensor sa = b.requires_grad() ? a : Tensor(), sb = a.requires_grad() ? b : Tensor();
  Shape sha = a.shape(), shb = b.shape();
  return autograd::record("mul", out, {a, b}, {sa, sb}, [sha, shb](const BackwardContext& c, const Tensor& g) {
    return V{c.needs(0) ? sum_to(mul(g, c.saved(1)), sha) : Tensor(),
             c.needs(1) ? sum_to(mul(g, c.saved(0)), shb) : Tensor()};
  });
}
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("div", Binary::Div, a, b);
  if (!autograd::any_requires_grad({&a, &b})) return out;
  Shape sha = a.shape(), shb = b.shape();
  return autograd::record("div", out, {a, b}, {a, b}, [sha, shb](const BackwardContext& c, const Tensor& g) {
    const Tensor &x = c.saved(0), &y = c.saved(1);
    return V{c.needs(0) ? sum_to(div(g, y), sha) : Tensor(),
             c.needs(1) ? sum_to(neg(div(mul(g, x), square(y))), shb) : Tensor()};
  });
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return binary_op("pow", Binary::Pow, a, b, [sha = a.shape(), shb = b.shape()](const BackwardContext& c, const Tensor& g) {
    const Tensor &x = c.saved(0), &y = c.saved(1), &out = c.saved(2);
    return V{c.needs(0) ? sum_to(mul(g, mul(y, pow(x, sub(y, ones_like(y))))), sha) : Tensor(),
             c.needs(1) ? sum_to(mul(g, mul(out, log(x))), shb) : Tensor()};
  });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::require_same_device_dtype("where", {&cond, &a, &b});
  Shape s = detail::broadcast_shapes("where", detail::broadcast_shapes("where", cond.shape(), a.shape()), b.shape());
  Tensor out = empty(s, a.dtype(), a.device());
  detail::call("where", a.device(), &detail::Backend::where, detail::broadcast_view(cond, s),
               detail::broadcast_view(a, s), detail::broadcast_view(b, s), out);
  Tensor c0 = cond.detach();
  return autograd::record("where", out, {a, b}, {c0}, [sha = a.shape(), shb = b.shape()](const BackwardContext& c,
                                                                                         const Tensor& g) {
    Tensor z = zeros({}, g.dtype(), g.device());
    return V{c.needs(0) ? sum_to(where(c.saved(0), g, z), sha) : Tensor(),
             c.needs(1) ? sum_to(where(c.saved(0), z, g), shb) : Tensor()};
  });
}

// ---- operators ----------------------------------------------------------------------------------------
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
Tensor operator-(double a, const Tensor& b) { return rsub(b, a); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
Tensor operator/(double a, const Tensor& b) { return rdiv(b, a); }

}  // namespace nash
