// power_iteration / power_iteration_many: argument checks, w brought to the (A, rows, K) form the kernels take, and
// dispatch of spectral normalization's state update.
#include <climits>

#include "core/ops/common.h"

namespace nash {

namespace {

void check_item(const char* op, std::size_t index, const PowerIterationItem& it, const PowerIterationItem& first) {
  NASH_CHECK(it.w.defined() && it.u.defined() && it.v.defined(), op, ": item ", index, " has an undefined w, u or v");
  NASH_CHECK((it.w.dim() == 2 || it.w.dim() == 3) && it.w.numel() > 0, op, ": item ", index,
             ": w must be a non-empty (rows, cols) matrix or (A, rows, K) tensor, got ", shape_str(it.w.shape()));
  const int64_t rows = it.w.size(-2), cols = it.w.numel() / rows;
  NASH_CHECK(it.u.dim() == 1 && it.u.size(0) == rows && it.v.dim() == 1 && it.v.size(0) == cols, op, ": item ", index,
             ": w ", shape_str(it.w.shape()), " needs u (", rows, ") and v (", cols, "), got u ",
             shape_str(it.u.shape()), " and v ", shape_str(it.v.shape()));
  detail::require_same_device_dtype(op, {&first.w, &it.w, &it.u, &it.v});
  NASH_CHECK(it.u.is_contiguous() && it.v.is_contiguous(), op, ": item ", index, ": u and v must be contiguous");
  NASH_CHECK(!it.u.requires_grad() && !it.v.requires_grad(), op, ": item ", index,
             ": u and v are state updated in place and must not require grad");
  NASH_CHECK(!detail::same_storage(it.u, it.v) && !detail::same_storage(it.u, it.w) && !detail::same_storage(it.v, it.w), op, ": item ",
             index, ": w, u and v must not share memory");
}

void check_common(const char* op, int64_t n_iters, double eps) {
  NASH_CHECK(n_iters >= 0 && n_iters <= INT_MAX, op, ": n_iters must be in [0, ", INT_MAX, "], got ", n_iters);
  NASH_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
}

// The (A, rows, K) history-free view the kernels take. A matrix is A = 1; an (A, rows, 1) tensor is the matrix
// (rows, A) with w's dim-0 stride as column stride, so the kernels' column loops never step over a unit K.
Tensor kernel_view(const Tensor& w) {
  const Shape& st = w.strides();
  if (w.dim() == 2) return detail::raw_view(w, {1, w.size(0), w.size(1)}, {0, st[0], st[1]}, w.storage_offset());
  if (w.size(2) == 1) return detail::raw_view(w, {1, w.size(1), w.size(0)}, {0, st[1], st[0]}, w.storage_offset());
  return w.detach();
}

void bump(const std::vector<PowerIterationItem>& items) {
  for (const PowerIterationItem& it : items) {
    it.u.impl()->storage->bump_version();
    it.v.impl()->storage->bump_version();
  }
}

}  // namespace

void power_iteration(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps) {
  check_common("power_iteration", n_iters, eps);
  PowerIterationItem it{w, u, v};
  check_item("power_iteration", 0, it, it);
  if (n_iters == 0) return;
  NoGradGuard ng;
  detail::call("power_iteration", w.device(), &detail::Backend::power_iteration, kernel_view(w), u, v, n_iters, eps);
  bump({it});
}

void power_iteration_many(const std::vector<PowerIterationItem>& items, int64_t n_iters, double eps) {
  const char* op = "power_iteration_many";
  check_common(op, n_iters, eps);
  if (items.empty()) return;
  for (std::size_t i = 0; i < items.size(); ++i) check_item(op, i, items[i], items[0]);
  // On CUDA the items run concurrently, so a state vector shared by two items would be a race.
  for (std::size_t i = 0; i < items.size(); ++i)
    for (std::size_t j = i + 1; j < items.size(); ++j) {
      const Tensor* a[2] = {&items[i].u, &items[i].v};
      const Tensor* b[2] = {&items[j].u, &items[j].v};
      for (const Tensor* x : a)
        for (const Tensor* y : b)
          NASH_CHECK(!detail::same_storage(*x, *y), op, ": items ", i, " and ", j, " share a u or v tensor");
    }
  if (n_iters == 0) return;
  NoGradGuard ng;
  std::vector<PowerIterationItem> raw;
  raw.reserve(items.size());
  for (const PowerIterationItem& it : items) raw.push_back({kernel_view(it.w), it.u, it.v});
  detail::call(op, items[0].w.device(), &detail::Backend::power_iteration_many, raw, n_iters, eps);
  bump(items);
}

}  // namespace nash
