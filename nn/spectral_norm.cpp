// SpectralNorm: W / σ(W) for a wrapped Linear/Conv2d/ConvTranspose2d, σ = uᵀ W v with u, v from power iteration.
#include "nash/nn/spectral_norm.h"

#include <set>
#include <string>

#include "nash/core/autograd.h"
#include "nash/core/random.h"
#include "nash/nn/layers.h"

namespace nash {
namespace nn {

namespace {

constexpr int64_t kWarmupIterations = 15;

// dim first, the other dims in order.
Shape rows_first(int64_t dim, int64_t n) {
  Shape perm{dim};
  for (int64_t d = 0; d < n; ++d)
    if (d != dim) perm.push_back(d);
  return perm;
}

void check_dim(const char* op, const Tensor& w, int64_t dim) {
  NASH_CHECK(w.defined() && w.dim() >= 1 && w.numel() > 0, op, ": needs a non-empty weight, got ",
             shape_str(w));
  NASH_CHECK(dim >= 0 && dim < w.dim(), op, ": dim ", dim, " is out of range for a weight of shape ",
             shape_str(w.shape()));
}

// u vᵀ laid out like w (a fresh tensor, no history): sum(w * outer) = uᵀ W_mat v.
Tensor outer_like_weight(const Tensor& w, const Tensor& u, const Tensor& v, int64_t dim) {
  const char* op = "spectral_normalized_weight";
  check_dim(op, w, dim);
  const int64_t rows = w.size(dim), cols = w.numel() / rows;
  NASH_CHECK(u.defined() && v.defined() && u.numel() == rows && v.numel() == cols, op, ": weight ",
             shape_str(w.shape()), " with dim ", dim, " needs u (", rows, ") and v (", cols, "), got ",
             shape_str(u), " and ",
             shape_str(v));
  NASH_CHECK(u.device() == w.device() && v.device() == w.device() && u.dtype() == w.dtype() && v.dtype() == w.dtype(),
             op, ": u ", u.str(), " and v ", v.str(), " must match the weight ", w.str());
  NoGradGuard ng;
  Tensor m = mul(u.detach().reshape({rows, 1}), v.detach().reshape({1, cols}));
  if (dim == 0) return m.reshape(w.shape());
  const Shape perm = rows_first(dim, w.dim());
  Shape permuted_shape, inverse(perm.size());
  for (std::size_t k = 0; k < perm.size(); ++k) {
    permuted_shape.push_back(w.size(perm[k]));
    inverse[static_cast<std::size_t>(perm[k])] = static_cast<int64_t>(k);
  }
  return m.reshape(permuted_shape).permute(inverse);
}

Tensor unit_normal(int64_t n, const Tensor& like, double eps) {
  Tensor z = randn({n}, like.dtype(), like.device());
  return div(z, clamp_min(norm(z), eps)).contiguous();
}

}  // namespace

Tensor spectral_weight_matrix(const Tensor& w, int64_t dim) {
  check_dim("spectral_weight_matrix", w, dim);
  NoGradGuard ng;
  Tensor d = w.detach();
  const int64_t rows = w.size(dim);
  if (dim == 0) return d.reshape({rows, -1});
  return d.permute(rows_first(dim, w.dim())).reshape({rows, -1});
}

Tensor spectral_iteration_view(const Tensor& w, int64_t dim) {
  check_dim("spectral_iteration_view", w, dim);
  if (dim != 1) return spectral_weight_matrix(w, dim);
  NoGradGuard ng;
  return w.detach().reshape({w.size(0), w.size(1), -1});
}

Tensor spectral_normalized_weight(const Tensor& w, const Tensor& u, const Tensor& v, int64_t dim, double eps) {
  NASH_CHECK(eps > 0, "spectral_normalized_weight: eps must be positive, got ", eps);
  Tensor outer = outer_like_weight(w, u, v, dim);
  Tensor sigma = sum(mul(w, outer));
  return div(w, clamp_min(sigma, eps));
}

// ---- SpectralNorm ------------------------------------------------------------------------------------------
SpectralNorm::SpectralNorm(ModulePtr module, int64_t n_iters, double eps_, int64_t dim)
    : Module("SpectralNorm"), n_power_iterations(n_iters), eps(eps_), module_(std::move(module)) {
  NASH_CHECK(module_ != nullptr, "SpectralNorm: the module to wrap is null");
  NASH_CHECK(n_power_iterations >= 0 && eps > 0, "SpectralNorm: needs n_power_iterations >= 0 and eps > 0, got ",
             n_power_iterations, " and ", eps);
  if (dynamic_cast<Linear*>(module_.get())) kind_ = Kind::Linear;
  else if (dynamic_cast<Conv2d*>(module_.get())) kind_ = Kind::Conv2d;
  else if (dynamic_cast<ConvTranspose2d*>(module_.get())) kind_ = Kind::ConvTranspose2d;
  else
    NASH_CHECK(false, "SpectralNorm: can wrap Linear, Conv2d or ConvTranspose2d, got ", module_->type_name());
  const Tensor& w = weight();
  dim_ = dim >= 0 ? dim : (kind_ == Kind::ConvTranspose2d ? 1 : 0);
  check_dim("SpectralNorm", w, dim_);
  register_module("module", module_);
  const int64_t rows = w.size(dim_), cols = w.numel() / rows;
  NoGradGuard ng;
  weight_u = register_buffer("weight_u", unit_normal(rows, w, eps));
  weight_v = register_buffer("weight_v", unit_normal(cols, w, eps));
  power_iterate(kWarmupIterations);
}

const Tensor& SpectralNorm::weight() const {
  switch (kind_) {
    case Kind::Linear: return static_cast<const Linear&>(*module_).weight;
    case Kind::Conv2d: return static_cast<const Conv2d&>(*module_).weight;
    case Kind::ConvTranspose2d: break;
  }
  return static_cast<const ConvTranspose2d&>(*module_).weight;
}

void SpectralNorm::power_iterate(int64_t n_iters) {
  NoGradGuard ng;
  power_iteration(spectral_iteration_view(weight(), dim_), weight_u, weight_v, n_iters, eps);
}

Tensor SpectralNorm::sigma() const {
  NoGradGuard ng;
  return sum(mul(weight().detach(), outer_like_weight(weight(), weight_u, weight_v, dim_)));
}

Tensor SpectralNorm::normalized_weight() const {
  return spectral_normalized_weight(weight(), weight_u, weight_v, dim_, eps);
}

Tensor SpectralNorm::forward(const Tensor& x) {
  const Tensor& w = weight();
  switch (kind_) {
    case Kind::Linear:
      NASH_CHECK(x.defined() && x.dim() == 2 && x.size(1) == w.size(1), "SpectralNorm(Linear): expected input (N, ",
                 w.size(1), "), got ", shape_str(x));
      break;
    case Kind::Conv2d:
    case Kind::ConvTranspose2d: {
      const int64_t in = kind_ == Kind::Conv2d ? w.size(1) : w.size(0);
      NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in, "SpectralNorm(", module_->type_name(),
                 "): expected input (N, ", in, ", H, W), got ", shape_str(x));
      break;
    }
  }
  if (is_training() && !external_update) power_iterate(n_power_iterations);
  Tensor w_sn = normalized_weight();
  switch (kind_) {
    case Kind::Linear: return linear(x, w_sn, static_cast<const Linear&>(*module_).bias);
    case Kind::Conv2d: {
      const auto& c = static_cast<const Conv2d&>(*module_);
      return conv2d(x, w_sn, c.bias, c.stride, c.padding, c.dilation);
    }
    case Kind::ConvTranspose2d: break;
  }
  const auto& t = static_cast<const ConvTranspose2d&>(*module_);
  return conv_transpose2d(x, w_sn, t.bias, t.stride, t.padding, t.output_padding, t.dilation);
}

std::shared_ptr<SpectralNorm> spectral_norm(ModulePtr module, int64_t n_power_iterations, double eps, int64_t dim) {
  return std::make_shared<SpectralNorm>(std::move(module), n_power_iterations, eps, dim);
}

// ---- model-wide update -------------------------------------------------------------------------------------
namespace {
void collect(Module& m, std::set<const Module*>& seen, std::vector<SpectralNorm*>& out) {
  if (!seen.insert(&m).second) return;
  if (auto* sn = dynamic_cast<SpectralNorm*>(&m)) out.push_back(sn);
  for (auto& c : m.named_children()) collect(*c.second, seen, out);
}
}  // namespace

std::vector<SpectralNorm*> spectral_norm_layers(Module& root) {
  std::set<const Module*> seen;
  std::vector<SpectralNorm*> out;
  collect(root, seen, out);
  return out;
}

int64_t spectral_norm_update_all(Module& root) {
  struct Group {
    Device device;
    DType dtype;
    int64_t n_iters;
    double eps;
    std::vector<PowerIterationItem> items;
  };
  std::vector<Group> groups;
  std::vector<SpectralNorm*> updated;
  NoGradGuard ng;
  for (SpectralNorm* sn : spectral_norm_layers(root)) {
    if (!sn->is_training()) continue;
    const Tensor& w = sn->weight();
    Group* g = nullptr;
    for (Group& cand : groups)
      if (cand.device == w.device() && cand.dtype == w.dtype() && cand.n_iters == sn->n_power_iterations &&
          cand.eps == sn->eps)
        g = &cand;
    if (!g) {
      groups.push_back(Group{w.device(), w.dtype(), sn->n_power_iterations, sn->eps, {}});
      g = &groups.back();
    }
    g->items.push_back({spectral_iteration_view(w, sn->dim()), sn->weight_u, sn->weight_v});
    updated.push_back(sn);
  }
  for (const Group& g : groups) power_iteration_many(g.items, g.n_iters, g.eps);
  for (SpectralNorm* sn : updated) sn->external_update = true;
  return static_cast<int64_t>(updated.size());
}

}  // namespace nn
}  // namespace nash
