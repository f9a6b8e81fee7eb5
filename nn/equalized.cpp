// Equalized-learning-rate layers and the registry mapping their parameters to equalization coefficients.
#include "nash/nn/equalized.h"

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "nash/nn/init.h"

namespace nash {
namespace nn {

namespace {

// Parameter identity -> coefficient. The weak pointer tells a live entry from one whose tensor died and whose
// address was reused.
struct Registry {
  struct Entry {
    std::weak_ptr<TensorImpl> impl;
    double coef;
  };
  std::mutex mu;
  std::unordered_map<const TensorImpl*, Entry> map;
  std::size_t prune_at = 64;

  void add(const Tensor& t, double coef) {
    std::lock_guard<std::mutex> lock(mu);
    if (map.size() >= prune_at) {
      for (auto it = map.begin(); it != map.end();) it = it->second.impl.expired() ? map.erase(it) : std::next(it);
      prune_at = 2 * map.size() + 64;
    }
    map[t.impl()] = Entry{t.impl_ptr(), coef};
  }
  std::optional<double> find(const Tensor& t) {
    if (!t.defined()) return std::nullopt;
    std::lock_guard<std::mutex> lock(mu);
    auto it = map.find(t.impl());
    if (it == map.end()) return std::nullopt;
    if (it->second.impl.lock().get() != t.impl()) {
      map.erase(it);
      return std::nullopt;
    }
    return it->second.coef;
  }
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: modules may outlive static destruction order
  return *r;
}

void check_options(const char* op, const EqualizedOptions& o) {
  NASH_CHECK(o.lr_multiplier > 0 && std::isfinite(o.lr_multiplier), op, ": lr_multiplier must be positive, got ",
             o.lr_multiplier);
  NASH_CHECK(o.gain > 0 && std::isfinite(o.gain), op, ": gain must be positive, got ", o.gain);
  NASH_CHECK(!o.activation || (o.activation_slope >= 0 && o.activation_gain > 0), op,
             ": the activation needs activation_slope >= 0 and activation_gain > 0, got slope=", o.activation_slope,
             " gain=", o.activation_gain);
}

}  // namespace

std::optional<double> equalization_coefficient(const Tensor& param) { return registry().find(param); }

std::vector<double> equalization_coefficients(const std::vector<Tensor>& params) {
  std::vector<double> out;
  out.reserve(params.size());
  for (const Tensor& p : params) out.push_back(equalization_coefficient(p).value_or(1.0));
  return out;
}

EqualizedModule::EqualizedModule(const char* type_name, Shape weight_shape, int64_t fan_in, int64_t bias_channels,
                                 const EqualizedOptions& opt)
    : Module(type_name), opt_(opt), fan_in_(fan_in) {
  check_options(type_name, opt);
  for (int64_t s : weight_shape)
    NASH_CHECK(s > 0, type_name, ": sizes must be positive, got weight shape ", shape_str(weight_shape));
  coef_ = opt.gain / std::sqrt(static_cast<double>(fan_in)) * opt.lr_multiplier;
  weight = register_parameter("weight", empty(weight_shape));
  init::normal_(weight, 0.0, 1.0 / opt.lr_multiplier);
  registry().add(weight, coef_);
  if (opt.bias) {
    bias = register_parameter("bias", full({bias_channels}, opt.bias_init / opt.lr_multiplier));
    registry().add(bias, opt.lr_multiplier);
  }
}

Tensor EqualizedModule::scaled_bias() const {
  if (!bias.defined()) return Tensor();
  return opt_.lr_multiplier == 1.0 ? bias : mul(bias, opt_.lr_multiplier);
}

Tensor EqualizedModule::activate(const Tensor& y) const {
  if (!opt_.activation) return y;
  Tensor a = opt_.activation_slope == 1.0 ? y : leaky_relu(y, opt_.activation_slope);
  return opt_.activation_gain == 1.0 ? a : mul(a, opt_.activation_gain);
}

// ---- layers ------------------------------------------------------------------------------------------------
EqualizedLinear::EqualizedLinear(int64_t in_features, int64_t out_features, const EqualizedOptions& opt)
    : EqualizedModule("EqualizedLinear", {out_features, in_features}, in_features, out_features, opt) {}

Tensor EqualizedLinear::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 2 && x.size(1) == weight.size(1), "EqualizedLinear: expected input (N, ",
             weight.size(1), "), got ", shape_str(x));
  const EqualizedOptions& o = options();
  if (fused_on(x))
    return linear_scaled_bias_act(x, weight, equalization_coefficient(), bias, o.lr_multiplier, o.activation_slope,
                                  o.activation_gain);
  return activate(linear(x, scale_weight(weight, equalization_coefficient()), scaled_bias()));
}

EqualizedConv2d::EqualizedConv2d(int64_t in_channels, int64_t out_channels, Int2 k, Int2 stride_, Int2 padding_,
                                 const EqualizedOptions& opt)
    : EqualizedModule("EqualizedConv2d", {out_channels, in_channels, k.h, k.w}, in_channels * k.h * k.w, out_channels,
                      opt),
      stride(stride_),
      padding(padding_) {}

Tensor EqualizedConv2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == weight.size(1), "EqualizedConv2d: expected input (N, ",
             weight.size(1), ", H, W), got ", shape_str(x));
  const EqualizedOptions& o = options();
  if (fused_on(x))
    return conv2d_scaled_bias_act(x, weight, equalization_coefficient(), bias, o.lr_multiplier, o.activation_slope,
                                  o.activation_gain, stride, padding);
  return activate(conv2d(x, scale_weight(weight, equalization_coefficient()), scaled_bias(), stride, padding));
}

EqualizedConvTranspose2d::EqualizedConvTranspose2d(int64_t in_channels, int64_t out_channels, Int2 k, Int2 stride_,
                                                   Int2 padding_, Int2 output_padding_, const EqualizedOptions& opt)
    : EqualizedModule("EqualizedConvTranspose2d", {in_channels, out_channels, k.h, k.w}, in_channels * k.h * k.w,
                      out_channels, opt),
      stride(stride_),
      padding(padding_),
      output_padding(output_padding_) {}

Tensor EqualizedConvTranspose2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == weight.size(0),
             "EqualizedConvTranspose2d: expected input (N, ", weight.size(0), ", H, W), got ", shape_str(x));
  return activate(conv_transpose2d(x, scale_weight(weight, equalization_coefficient()), scaled_bias(), stride, padding,
                                   output_padding));
}

}  // namespace nn
}  // namespace nash
