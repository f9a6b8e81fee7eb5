// Internal helpers shared by the op definitions: dim normalisation, broadcasting, raw views.
#pragma once
#include <vector>

#include "core/backend.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"

namespace nash {
namespace detail {

// Maps dim in [-n, n) to [0, n); names op and shape otherwise.
int64_t wrap_dim(const char* op, int64_t dim, int64_t n);
// Sorted unique wrapped dims; empty input means all dims.
std::vector<int64_t> wrap_dims(const char* op, const std::vector<int64_t>& dims, int64_t n);
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// A history-free view of t with the given geometry (sharing storage).
Tensor raw_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);
// A history-free stride-0 view of t broadcast to shape (t's shape must broadcast to it).
Tensor broadcast_view(const Tensor& t, const Shape& shape);
// Whether a and b are views of one storage (an in-place op's operands must not be).
inline bool same_storage(const Tensor& a, const Tensor& b) { return a.impl()->storage == b.impl()->storage; }

}  // namespace detail
}  // namespace nash
