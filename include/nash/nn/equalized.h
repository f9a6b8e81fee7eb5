// Equalized-learning-rate layers (Karras et al., ProGAN): weights stored as N(0, 1) / lr_multiplier and scaled at
// run time by c = gain / sqrt(fan_in) * lr_multiplier; biases stored as zeros and used times lr_multiplier.
#pragma once
#include <optional>
#include <vector>

#include "nash/core/ops.h"
#include "nash/nn/gan_layers.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

struct EqualizedOptions {
  bool bias = true;
  // Scales the parameters' effective learning rate (StyleGAN's mapping network uses 0.01).
  double lr_multiplier = 1.0;
  // He gain in c = gain / sqrt(fan_in).
  double gain = kSqrt2;
  // The effective initial bias (the parameter holds bias_init / lr_multiplier).
  double bias_init = 0.0;
  // When set, the layer ends with activation_gain * leaky_relu(., activation_slope) (slope 1: gain only), fused into
  // the conv/linear epilogue on CUDA. Needs activation_slope >= 0 and activation_gain > 0.
  bool activation = false;
  double activation_slope = 0.2;
  double activation_gain = kSqrt2;

  EqualizedOptions& with_bias(bool on) {
    bias = on;
    return *this;
  }
  EqualizedOptions& with_lr_multiplier(double v) {
    lr_multiplier = v;
    return *this;
  }
  EqualizedOptions& with_gain(double v) {
    gain = v;
    return *this;
  }
  EqualizedOptions& with_bias_init(double v) {
    bias_init = v;
    return *this;
  }
  EqualizedOptions& with_activation(double slope = 0.2, double act_gain = kSqrt2) {
    activation = true;
    activation_slope = slope;
    activation_gain = act_gain;
    return *this;
  }
};

// What the three equalized layers share: the parameters, the coefficients and the activation.
class EqualizedModule : public Module {
 public:
  // c = gain / sqrt(fan_in) * lr_multiplier: forward uses weight * c (the weight's equalization coefficient).
  double equalization_coefficient() const { return coef_; }
  double runtime_scale() const { return coef_; }
  // The bias is used as bias * lr_multiplier.
  double bias_coefficient() const { return opt_.lr_multiplier; }
  double lr_multiplier() const { return opt_.lr_multiplier; }
  double gain() const { return opt_.gain; }
  int64_t fan_in() const { return fan_in_; }
  const EqualizedOptions& options() const { return opt_; }

  Tensor weight, bias;
  // On CUDA devices the activation is fused into the conv/linear when allowed (tests turn it off to compare).
  bool allow_fused = true;

 protected:
  // Registers weight (shape, ~ N(0, 1) / lr_multiplier) and bias (bias_channels), and their coefficients.
  EqualizedModule(const char* type_name, Shape weight_shape, int64_t fan_in, int64_t bias_channels,
                  const EqualizedOptions& opt);
  // The bias as used (bias * lr_multiplier), or undefined.
  Tensor scaled_bias() const;
  // The unfused activation (identity when none is attached).
  Tensor activate(const Tensor& y) const;
  bool fused_on(const Tensor& x) const { return allow_fused && opt_.activation && !x.device().is_cpu(); }

 private:
  EqualizedOptions opt_;
  int64_t fan_in_;
  double coef_;
};

// y = x (weight * c)ᵀ + bias * lr_multiplier; weight (out, in), fan_in = in.
class EqualizedLinear : public EqualizedModule {
 public:
  EqualizedLinear(int64_t in_features, int64_t out_features, const EqualizedOptions& opt = {});
  Tensor forward(const Tensor& x) override;
};

// conv2d(x, weight * c, bias * lr_multiplier); weight (out, in, kh, kw), fan_in = in * kh * kw. With an activation on
// a CUDA device: one conv2d_scaled_bias_act launch.
class EqualizedConv2d : public EqualizedModule {
 public:
  EqualizedConv2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride = 1, Int2 padding = 0,
                  const EqualizedOptions& opt = {});
  Tensor forward(const Tensor& x) override;
  Int2 stride, padding;
};

// conv_transpose2d(x, weight * c, bias * lr_multiplier); weight (in, out, kh, kw). fan_in = in * kh * kw, ProGAN's
// choice for its upscaling conv (PyTorch's init would use out * kh * kw). The activation is never fused here.
class EqualizedConvTranspose2d : public EqualizedModule {
 public:
  EqualizedConvTranspose2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride = 1,
                           Int2 padding = 0, Int2 output_padding = 0, const EqualizedOptions& opt = {});
  Tensor forward(const Tensor& x) override;
  Int2 stride, padding, output_padding;
};

// The equalization coefficient of a parameter made by an equalized layer: c for its weight, lr_multiplier for its
// bias; std::nullopt for any other tensor. Keyed by the parameter's identity, which Module::to() keeps.
std::optional<double> equalization_coefficient(const Tensor& param);
// The same for a list of parameters (e.g. an optimizer's), 1.0 where a parameter has none.
std::vector<double> equalization_coefficients(const std::vector<Tensor>& params);

}  // namespace nn
}  // namespace nash
