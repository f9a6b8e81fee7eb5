// matmul (2-D and batched 3-D) and linear, with backward through matmul of transposed views.
#include "core/ops/common.h"

namespace nash {

using V = std::vector<Tensor>;

namespace {
// Runs out[b] = a[b] @ b[b] for each batch index on history-free 2-D views: through the backend's batch entry when
// it has one, else the 2-D kernel in turn.
void batched_matmul_raw(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t B = out.size(0);
  auto slice = [](const Tensor& t, int64_t i) {
    if (t.dim() == 2) return t.detach();
    return detail::raw_view(t, {t.size(1), t.size(2)}, {t.strides()[1], t.strides()[2]},
                            t.storage_offset() + i * t.strides()[0]);
  };
  if (detail::backend("matmul", out.device()).matmul_batch) {
    V as, bs, outs;
    for (int64_t i = 0; i < B; ++i) {
      as.push_back(slice(a, i));
      bs.push_back(slice(b, i));
      outs.push_back(slice(out, i));
    }
    detail::call("matmul", out.device(), &detail::Backend::matmul_batch, as, bs, outs);
    return;
  }
  for (int64_t i = 0; i < B; ++i)
    detail::call("matmul", out.device(), &detail::Backend::matmul, slice(a, i), slice(b, i), slice(out, i));
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::require_same_device_dtype("matmul", {&a, &b});
  NASH_CHECK((a.dim() == 2 || a.dim() == 3) && (b.dim() == 2 || b.dim() == 3) && !(a.dim() == 2 && b.dim() == 3),
             "matmul: expected (M,K)@(K,N), (B,M,K)@(B,K,N) or (B,M,K)@(K,N), got ", shape_str(a.shape()), " @ ",
             shape_str(b.shape()));
  int64_t K = a.size(-1);
  NASH_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
             " (", K, " vs ", b.size(-2), ")");
  if (a.dim() == 3 && b.dim() == 3)
    NASH_CHECK(a.size(0) == b.size(0), "matmul: batch sizes differ: ", shape_str(a.shape()), " @ ",
               shape_str(b.shape()));
  Tensor out;
  if (a.dim() == 2) {
    out = empty({a.size(0), b.size(1)}, a.dtype(), a.device());
    detail::call("matmul", a.device(), &detail::Backend::matmul, a.detach(), b.detach(), out);
  } else {
    out = empty({a.size(0), a.size(1), b.size(-1)}, a.dtype(), a.device());
    batched_matmul_raw(a, b, out);
  }
  bool b2 = b.dim() == 2 && a.dim() == 3;
  return autograd::record("matmul", out, {a, b}, {a, b}, [b2](const BackwardContext& c, const Tensor& g) {
    const Tensor &x = c.saved(0), &y = c.saved(1);
    Tensor ga, gb;
    if (c.needs(0)) ga = matmul(g, y.transpose(-1, -2));
    if (c.needs(1)) {
      if (b2) gb = matmul(x.reshape({-1, x.size(-1)}).t(), g.reshape({-1, g.size(-1)}));
      else gb = matmul(x.transpose(-1, -2), g);
    }
    return V{ga, gb};
  });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  NASH_CHECK(x.defined() && w.defined(), "linear: input and weight must be defined");
  NASH_CHECK(w.dim() == 2, "linear: weight must be (out, in), got ", shape_str(w.shape()));
  NASH_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input ", shape_str(x.shape()),
             " does not match weight ", shape_str(w.shape()), " (last dim must be ", w.size(1), ")");
  Tensor x2 = x.dim() == 2 ? x : x.reshape({-1, w.size(1)});
  Tensor y = matmul(x2, w.t());
  if (b.defined()) {
    NASH_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias ", shape_str(b.shape()), " does not match weight ",
               shape_str(w.shape()));
    y = add(y, b);
  }
  if (x.dim() != 2) {
    Shape s = x.shape();
    s.back() = w.size(0);
    y = y.reshape(s);
  }
  return y;
}

}  // namespace nash
