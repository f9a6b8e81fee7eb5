// WeightNorm: W = g · V / ‖V‖ per output unit for a wrapped Linear/Conv2d/ConvTranspose2d.
#include "nash/nn/weight_norm.h"

#include <string>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/nn/layers.h"

namespace nash {
namespace nn {

namespace {

void check_dim(const char* op, const Tensor& v, int64_t dim) {
  NASH_CHECK(v.defined() && v.dim() >= 1 && v.numel() > 0, op, ": needs a non-empty weight, got ",
             shape_str(v));
  NASH_CHECK(dim >= 0 && dim < v.dim(), op, ": dim ", dim, " is out of range for a weight of shape ",
             shape_str(v.shape()));
}

// Every dim of v but `dim`: the dims one norm runs over.
std::vector<int64_t> other_dims(const Tensor& v, int64_t dim) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < v.dim(); ++d)
    if (d != dim) dims.push_back(d);
  return dims;
}

// v's shape with every dim but `dim` set to 1.
Shape g_shape(const Tensor& v, int64_t dim) {
  Shape s(static_cast<std::size_t>(v.dim()), 1);
  s[static_cast<std::size_t>(dim)] = v.size(dim);
  return s;
}

}  // namespace

Tensor weight_norm_g_like(const Tensor& v, int64_t dim) {
  check_dim("weight_norm_g_like", v, dim);
  NoGradGuard ng;
  const std::vector<int64_t> dims = other_dims(v, dim);
  Tensor n = dims.empty() ? abs(v.detach()) : norm(v.detach(), 2.0, dims, true);
  return n.contiguous();
}

Tensor weight_normalized(const Tensor& v, const Tensor& g, int64_t dim, double eps) {
  const char* op = "weight_normalized";
  check_dim(op, v, dim);
  NASH_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  NASH_CHECK(g.defined() && g.shape() == g_shape(v, dim), op, ": weight ", shape_str(v.shape()), " with dim ", dim,
             " needs g of shape ", shape_str(g_shape(v, dim)), ", got ", shape_str(g));
  NASH_CHECK(g.device() == v.device() && g.dtype() == v.dtype(), op, ": g ", g.str(), " must match the weight ",
             v.str());
  const std::vector<int64_t> dims = other_dims(v, dim);
  // A 1-D weight is one value per unit: its "norm" is |v|.
  Tensor n = dims.empty() ? abs(v) : norm(v, 2.0, dims, true);
  return mul(v, div(g, clamp_min(n, eps)));
}

// ---- WeightNorm --------------------------------------------------------------------------------------------
WeightNorm::WeightNorm(ModulePtr module, int64_t dim, double eps_)
    : Module("WeightNorm"), eps(eps_), module_(std::move(module)) {
  NASH_CHECK(module_ != nullptr, "WeightNorm: the module to wrap is null");
  NASH_CHECK(eps > 0, "WeightNorm: eps must be positive, got ", eps);
  if (dynamic_cast<Linear*>(module_.get())) kind_ = Kind::Linear;
  else if (dynamic_cast<Conv2d*>(module_.get())) kind_ = Kind::Conv2d;
  else if (dynamic_cast<ConvTranspose2d*>(module_.get())) kind_ = Kind::ConvTranspose2d;
  else
    NASH_CHECK(false, "WeightNorm: can wrap Linear, Conv2d or ConvTranspose2d, got ", module_->type_name());
  const Tensor& v = weight();
  dim_ = dim >= 0 ? dim : (kind_ == Kind::ConvTranspose2d ? 1 : 0);
  check_dim("WeightNorm", v, dim_);
  register_module("module", module_);
  weight_g = register_parameter("weight_g", weight_norm_g_like(v, dim_));
}

const Tensor& WeightNorm::weight() const {
  switch (kind_) {
    case Kind::Linear: return static_cast<const Linear&>(*module_).weight;
    case Kind::Conv2d: return static_cast<const Conv2d&>(*module_).weight;
    case Kind::ConvTranspose2d: break;
  }
  return static_cast<const ConvTranspose2d&>(*module_).weight;
}

Tensor WeightNorm::normalized_weight() const { return weight_normalized(weight(), weight_g, dim_, eps); }

Tensor WeightNorm::forward(const Tensor& x) {
  const Tensor& v = weight();
  switch (kind_) {
    case Kind::Linear:
      NASH_CHECK(x.defined() && x.dim() == 2 && x.size(1) == v.size(1), "WeightNorm(Linear): expected input (N, ",
                 v.size(1), "), got ", shape_str(x));
      return linear(x, normalized_weight(), static_cast<const Linear&>(*module_).bias);
    case Kind::Conv2d: {
      NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == v.size(1), "WeightNorm(Conv2d): expected input (N, ",
                 v.size(1), ", H, W), got ", shape_str(x));
      const auto& c = static_cast<const Conv2d&>(*module_);
      return conv2d(x, normalized_weight(), c.bias, c.stride, c.padding, c.dilation);
    }
    case Kind::ConvTranspose2d: break;
  }
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == v.size(0), "WeightNorm(ConvTranspose2d): expected input (N, ",
             v.size(0), ", H, W), got ", shape_str(x));
  const auto& t = static_cast<const ConvTranspose2d&>(*module_);
  return conv_transpose2d(x, normalized_weight(), t.bias, t.stride, t.padding, t.output_padding, t.dilation);
}

std::shared_ptr<WeightNorm> weight_norm(ModulePtr module, int64_t dim, double eps) {
  return std::make_shared<WeightNorm>(std::move(module), dim, eps);
}

}  // namespace nn
}  // namespace nash
