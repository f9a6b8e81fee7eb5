// Orthonormal regularization and WGAN weight clipping.
#include "nash/nn/regularizers.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/nn/equalized.h"
#include "nash/nn/layers.h"

namespace nash {
namespace nn {

namespace {

// The n × n identity on w's device and dtype.
Tensor identity_like(int64_t n, const Tensor& w) {
  std::vector<double> e(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) e[static_cast<std::size_t>(i * n + i)] = 1.0;
  return from_vector(e, {n, n}).to(w.dtype()).to(w.device());
}

// Rows along `dim` (moved first), the other dims flattened in order; with history.
Tensor as_matrix(const Tensor& w, int64_t dim) {
  if (dim == 0) return w.reshape({w.size(0), -1});
  Shape perm{dim};
  for (int64_t d = 0; d < w.dim(); ++d)
    if (d != dim) perm.push_back(d);
  return w.permute(perm).reshape({w.size(dim), -1});
}

bool is_transposed_conv(const Module& m) {
  return dynamic_cast<const ConvTranspose2d*>(&m) != nullptr ||
         dynamic_cast<const EqualizedConvTranspose2d*>(&m) != nullptr;
}

void collect(const Module& m, std::set<const Module*>& seen, std::vector<std::pair<Tensor, int64_t>>& out) {
  if (!seen.insert(&m).second) return;
  for (const auto& p : m.named_parameters(false))
    if (p.first == "weight" && p.second.dim() >= 2) out.emplace_back(p.second, is_transposed_conv(m) ? 1 : 0);
  for (const auto& c : m.named_children()) collect(*c.second, seen, out);
}

Tensor total(const std::vector<std::pair<Tensor, int64_t>>& weights, double beta) {
  Tensor acc;
  for (const auto& w : weights) {
    Tensor p = orthonormal_penalty(w.first, beta, w.second);
    acc = acc.defined() ? add(acc, p) : p;
  }
  return acc.defined() ? acc : zeros({});
}

}  // namespace

Tensor orthonormal_penalty(const Tensor& w, double beta, int64_t dim) {
  NASH_CHECK(w.defined() && w.dim() >= 2 && w.numel() > 0, "orthonormal_penalty: needs a weight of dim >= 2, got ",
             shape_str(w));
  NASH_CHECK(dim >= 0 && dim < w.dim(), "orthonormal_penalty: dim ", dim, " is out of range for a weight of shape ",
             shape_str(w.shape()));
  NASH_CHECK(std::isfinite(beta) && beta >= 0, "orthonormal_penalty: beta must be finite and >= 0, got ", beta);
  Tensor m = as_matrix(w, dim);
  const int64_t rows = m.size(0), cols = m.size(1);
  Tensor gram = rows <= cols ? matmul(m, m.t()) : matmul(m.t(), m);
  return mul(sum(square(sub(gram, identity_like(std::min(rows, cols), w)))), beta);
}

Tensor orthonormal_penalty(const Module& module, double beta) {
  std::set<const Module*> seen;
  std::vector<std::pair<Tensor, int64_t>> weights;
  collect(module, seen, weights);
  return total(weights, beta);
}

Tensor orthonormal_penalty(const std::vector<Tensor>& params, double beta) {
  std::vector<std::pair<Tensor, int64_t>> weights;
  for (const Tensor& p : params)
    if (p.defined() && p.dim() >= 2) weights.emplace_back(p, 0);
  return total(weights, beta);
}

void clip_weights_(Module& module, double c) {
  NASH_CHECK(std::isfinite(c) && c > 0, "clip_weights_: c must be finite and positive, got ", c);
  NoGradGuard ng;
  for (Tensor& p : module.parameters()) p.copy_(clamp(p.detach(), -c, c));
}

}  // namespace nn
}  // namespace nash
