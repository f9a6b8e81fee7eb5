// Shape ops: views (reshape, transpose, permute, narrow, expand...), broadcasting helpers, cat/stack, narrow_scatter.
#include <numeric>

#include "core/ops/common.h"

namespace nash {
namespace detail {

int64_t wrap_dim(const char* op, int64_t dim, int64_t n) {
  int64_t lo = n == 0 ? -1 : -n, hi = n == 0 ? 1 : n;
  NASH_CHECK(dim >= lo && dim < hi, op, ": dim ", dim, " is out of range for a tensor with ", n, " dims");
  return dim < 0 ? dim + std::max<int64_t>(n, 1) : dim;
}

std::vector<int64_t> wrap_dims(const char* op, const std::vector<int64_t>& dims, int64_t n) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    out.resize(n);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  std::vector<bool> seen(std::max<int64_t>(n, 1), false);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(op, d, n);
    NASH_CHECK(!seen[w], op, ": dim ", d, " appears twice");
    seen[w] = true;
  }
  for (int64_t i = 0; i < static_cast<int64_t>(seen.size()); ++i)
    if (seen[i] && i < n) out.push_back(i);
  return out;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    NASH_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor raw_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl()->storage;
  impl->dtype = t.dtype();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  return Tensor(impl);
}

Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  const Shape& s = t.shape();
  if (s == shape) return t;  // nothing to broadcast: no new view (a size-1 dim keeps its stride, never read)
  NASH_CHECK(s.size() <= shape.size(), "expand: cannot expand shape ", shape_str(s), " to ", shape_str(shape));
  std::size_t lead = shape.size() - s.size();
  Shape st(shape.size(), 0);
  for (std::size_t i = 0; i < s.size(); ++i) {
    NASH_CHECK(s[i] == shape[lead + i] || s[i] == 1, "expand: cannot expand shape ", shape_str(s), " to ",
               shape_str(shape));
    st[lead + i] = s[i] == 1 ? 0 : t.strides()[i];
  }
  return raw_view(t, shape, st, t.storage_offset());
}

}  // namespace detail

using detail::raw_view;
using detail::wrap_dim;

namespace {
Tensor view_of(const char* name, const Tensor& x, const Shape& shape, const Shape& strides, int64_t offset,
               BackwardFn fn) {
  Tensor out = raw_view(x, shape, strides, offset);
  return autograd::record(name, out, {x}, {}, std::move(fn));
}
}  // namespace

Tensor Tensor::reshape(const Shape& s) const {
  require_defined("reshape");
  Shape target = s;
  int64_t infer = -1, known = 1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      NASH_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(s));
      infer = static_cast<int64_t>(i);
    } else {
      NASH_CHECK(target[i] >= 0, "reshape: negative size in ", shape_str(s));
      known *= target[i];
    }
  }
  if (infer >= 0) {
    NASH_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", shape_str(shape()), " (", numel(),
               " elements) to ", shape_str(s));
    target[infer] = numel() / known;
  }
  NASH_CHECK(shape_numel(target) == numel(), "reshape: cannot reshape ", shape_str(shape()), " (", numel(),
             " elements) to ", shape_str(s));
  Tensor src = contiguous();
  Shape from = shape();
  return view_of("reshape", src, target, contiguous_strides(target), src.storage_offset(),
                 [from](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g.reshape(from)}; });
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  int64_t n = dim();
  if (n == 0) return reshape({1});
  int64_t a = wrap_dim("flatten", start_dim, n), b = wrap_dim("flatten", end_dim, n);
  NASH_CHECK(a <= b, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape s;
  for (int64_t i = 0; i < a; ++i) s.push_back(shape()[i]);
  int64_t m = 1;
  for (int64_t i = a; i <= b; ++i) m *= shape()[i];
  s.push_back(m);
  for (int64_t i = b + 1; i < n; ++i) s.push_back(shape()[i]);
  return reshape(s);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim();
  NASH_CHECK(d >= -(n + 1) && d <= n, "unsqueeze: dim ", d, " out of range for shape ", shape_str(shape()));
  if (d < 0) d += n + 1;
  Shape s = shape(), st = strides();
  int64_t stride = d < n ? st[d] * s[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return view_of("unsqueeze", *this, s, st, storage_offset(),
                 [d](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g.squeeze(d)}; });
}

Tensor Tensor::squeeze(int64_t d) const {
  int64_t n = dim();
  d = wrap_dim("squeeze", d, n);
  if (n == 0 || shape()[d] != 1) return *this;
  Shape s = shape(), st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return view_of("squeeze", *this, s, st, storage_offset(),
                 [d](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g.unsqueeze(d)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  int64_t n = dim();
  d0 = wrap_dim("transpose", d0, n);
  d1 = wrap_dim("transpose", d1, n);
  Shape s = shape(), st = strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return view_of("transpose", *this, s, st, storage_offset(), [d0, d1](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{g.transpose(d0, d1)};
  });
}

Tensor Tensor::permute(const Shape& dims) const {
  int64_t n = dim();
  NASH_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: got ", dims.size(), " dims for a tensor of shape ",
             shape_str(shape()));
  Shape s(n), st(n), inv(n);
  std::vector<bool> seen(n, false);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim("permute", dims[i], n);
    NASH_CHECK(!seen[d], "permute: dim ", dims[i], " repeated in ", shape_str(dims));
    seen[d] = true;
    s[i] = shape()[d];
    st[i] = strides()[d];
    inv[d] = i;
  }
  return view_of("permute", *this, s, st, storage_offset(),
                 [inv](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g.permute(inv)}; });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  int64_t n = dim();
  d = wrap_dim("narrow", d, n);
  int64_t size = shape()[d];
  if (start < 0) start += size;
  NASH_CHECK(start >= 0 && length >= 0 && start + length <= size, "narrow: range [", start, ", ", start + length,
             ") is out of bounds for dim ", d, " of size ", size, " (shape ", shape_str(shape()), ")");
  Shape s = shape();
  s[d] = length;
  Shape full = shape();
  return view_of("narrow", *this, s, strides(), storage_offset() + start * strides()[d],
                 [full, d, start](const BackwardContext&, const Tensor& g) {
                   return std::vector<Tensor>{narrow_scatter(g, full, d, start)};
                 });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim("select", d, dim());
  int64_t size = shape()[d];
  NASH_CHECK(index >= -size && index < size, "select: index ", index, " out of range for dim ", d, " of size ", size);
  if (index < 0) index += size;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& s) const {
  require_defined("expand");
  if (s == shape()) return *this;
  Tensor v = detail::broadcast_view(*this, s);
  Shape from = shape();
  return autograd::record("expand", v, {*this}, {}, [from](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, from)};
  });
}

Tensor narrow_scatter(const Tensor& x, const Shape& shape, int64_t dim, int64_t start) {
  dim = wrap_dim("narrow_scatter", dim, static_cast<int64_t>(shape.size()));
  NASH_CHECK(x.dim() == static_cast<int64_t>(shape.size()) && start >= 0 && start + x.size(dim) <= shape[dim],
             "narrow_scatter: a slice of shape ", shape_str(x.shape()), " does not fit shape ", shape_str(shape),
             " at dim ", dim, " offset ", start);
  Tensor out = zeros(shape, x.dtype(), x.device());
  Tensor dst = raw_view(out, x.shape(), out.strides(), start * out.strides()[dim]);
  detail::call("narrow_scatter", x.device(), &detail::Backend::copy, x, dst);
  int64_t len = x.size(dim);
  return autograd::record("narrow_scatter", out, {x}, {}, [dim, start, len](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{g.narrow(dim, start, len)};
  });
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  NASH_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  int64_t n = first.dim();
  NASH_CHECK(n > 0, "cat: zero-dimensional tensors cannot be concatenated");
  dim = wrap_dim("cat", dim, n);
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::require_same_device_dtype("cat", {&first, &t});
    bool ok = t.dim() == n;
    for (int64_t d = 0; ok && d < n; ++d) ok = d == dim || t.shape()[d] == first.shape()[d];
    NASH_CHECK(ok, "cat: tensor ", i, " has shape ", shape_str(t.shape()), " but tensor 0 has shape ",
               shape_str(first.shape()), " (all dims but ", dim, " must match)");
    out_shape[dim] += t.shape()[dim];
  }
  Tensor out = empty(out_shape, first.dtype(), first.device());
  int64_t offset = 0;
  std::vector<int64_t> starts, lens;
  for (const Tensor& t : tensors) {
    Tensor dst = raw_view(out, t.shape(), out.strides(), offset * out.strides()[dim]);
    detail::call("cat", t.device(), &detail::Backend::copy, t, dst);
    starts.push_back(offset);
    lens.push_back(t.shape()[dim]);
    offset += t.shape()[dim];
  }
  return autograd::record("cat", out, tensors, {}, [dim, starts, lens](const BackwardContext& ctx, const Tensor& g) {
    std::vector<Tensor> grads(starts.size());
    for (std::size_t i = 0; i < starts.size(); ++i)
      if (ctx.needs(i)) grads[i] = g.narrow(dim, starts[i], lens[i]);
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  NASH_CHECK(!tensors.empty(), "stack: expected at least one tensor");
  int64_t n = tensors[0].dim();
  NASH_CHECK(dim >= -(n + 1) && dim <= n, "stack: dim ", dim, " out of range for tensors of shape ",
             shape_str(tensors[0].shape()));
  if (dim < 0) dim += n + 1;
  std::vector<Tensor> parts;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    NASH_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " has shape ",
               shape_str(tensors[i].shape()), " but tensor 0 has shape ", shape_str(tensors[0].shape()));
    parts.push_back(tensors[i].unsqueeze(dim));
  }
  return cat(parts, dim);
}

}  // namespace nash
