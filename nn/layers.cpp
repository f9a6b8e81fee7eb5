// Layers: Linear, Conv2d, ConvTranspose2d, BatchNorm1d/2d (composed from differentiable ops), Reshape, Sequential.
#include "nash/nn/layers.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "nash/core/autograd.h"
#include "nash/nn/init.h"

namespace nash {
namespace nn {

namespace {

// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's bias default for Linear and convolutions.
void default_bias_(Tensor& bias, int64_t fan_in) {
  double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  init::uniform_(bias, -bound, bound);
}

// Shared by BatchNorm1d/2d: normalises x over every dim but 1 (the channels). In training the batch statistics
// are used (biased variance) and the running ones are updated with the unbiased variance, as in PyTorch.
Tensor batch_norm(const char* op, bool training, const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, double eps, double momentum,
                  const BatchStatsReducer* sync) {
  const int64_t c = running_mean.numel();
  Shape pshape(static_cast<std::size_t>(x.dim()), 1);
  pshape[1] = c;
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != 1) dims.push_back(d);

  auto update_running = [&](const Tensor& mu, const Tensor& v, int64_t n) {
    NoGradGuard ng;
    Tensor rm = running_mean, rv = running_var;
    rm.mul_(1.0 - momentum).add_(mu.detach().reshape({c}), momentum);
    const double unbias = static_cast<double>(n) / static_cast<double>(n - 1);
    rv.mul_(1.0 - momentum).add_(v.detach().reshape({c}), momentum * unbias);
  };
  Tensor y;
  if (training) {
    const bool synced = sync && sync->sum && sync->replicas > 1;
    const int64_t n = x.numel() / c * (synced ? sync->replicas : 1);
    NASH_CHECK(n > 1, op, ": training needs more than 1 value per channel, got input of shape ",
               shape_str(x.shape()));
    if (!synced) {
      // The fused kernels (ops.h batch_norm_train): statistics, normalization and affine transform in one pass
      // each way.
      Tensor mu, v;
      y = batch_norm_train(x, weight, bias, eps, &mu, &v);
      update_running(mu, v, n);
      return y;
    }
    // Two passes over the global batch, as var() does over a local one: the mean, then the mean squared
    // deviation from it, each a local sum all-reduced over the replicas.
    const Tensor mu = mul(sync->sum(sum(x, dims, true)), 1.0 / static_cast<double>(n));
    const Tensor v = mul(sync->sum(sum(square(sub(x, mu)), dims, true)), 1.0 / static_cast<double>(n));
    y = mul(sub(x, mu), pow(add(v, eps), -0.5));
    update_running(mu, v, n);
  } else {
    y = mul(sub(x, running_mean.reshape(pshape)), pow(add(running_var.reshape(pshape), eps), -0.5));
  }
  if (weight.defined()) y = add(mul(y, weight.reshape(pshape)), bias.reshape(pshape));
  return y;
}

}  // namespace

// ---- Linear ------------------------------------------------------------------------------------------------
Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias) : Module("Linear") {
  NASH_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got in=", in_features,
             " out=", out_features);
  weight = register_parameter("weight", empty({out_features, in_features}));
  init::default_weight_(weight);
  if (has_bias) {
    bias = register_parameter("bias", empty({out_features}));
    default_bias_(bias, in_features);
  }
}

Tensor Linear::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 2 && x.size(1) == weight.size(1), "Linear: expected input (N, ",
             weight.size(1), "), got ", shape_str(x));
  return linear(x, weight, bias);
}

// ---- convolutions -----------------------------------------------------------------------------------------
namespace {
void check_conv_args(const char* op, int64_t in, int64_t out, Int2 k, Int2 stride, Int2 padding, Int2 dilation) {
  NASH_CHECK(in > 0 && out > 0 && k.h > 0 && k.w > 0, op, ": channels and kernel size must be positive, got in=", in,
             " out=", out, " kernel=(", k.h, ", ", k.w, ")");
  NASH_CHECK(stride.h > 0 && stride.w > 0 && dilation.h > 0 && dilation.w > 0 && padding.h >= 0 && padding.w >= 0,
             op, ": needs positive stride and dilation and non-negative padding, got stride=(", stride.h, ", ",
             stride.w, ") padding=(", padding.h, ", ", padding.w, ") dilation=(", dilation.h, ", ", dilation.w, ")");
}
}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride_, Int2 padding_,
               bool has_bias, Int2 dilation_)
    : Module("Conv2d"), stride(stride_), padding(padding_), dilation(dilation_) {
  check_conv_args("Conv2d", in_channels, out_channels, kernel_size, stride, padding, dilation);
  weight = register_parameter("weight", empty({out_channels, in_channels, kernel_size.h, kernel_size.w}));
  init::default_weight_(weight);
  if (has_bias) {
    bias = register_parameter("bias", empty({out_channels}));
    default_bias_(bias, init::fan_in(weight));
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == weight.size(1), "Conv2d: expected input (N, ",
             weight.size(1), ", H, W), got ", shape_str(x));
  return conv2d(x, weight, bias, stride, padding, dilation);
}

// PyTorch takes the fan-in of a transposed convolution from weight.size(1) * kh * kw (its out_channels), which is
// what init::fan_in computes for the (in, out, kh, kw) weight.
ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride_,
                                 Int2 padding_, Int2 output_padding_, bool has_bias, Int2 dilation_)
    : Module("ConvTranspose2d"), stride(stride_), padding(padding_), output_padding(output_padding_),
      dilation(dilation_) {
  check_conv_args("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding, dilation);
  NASH_CHECK(output_padding.h >= 0 && output_padding.w >= 0 && output_padding.h < std::max(stride.h, dilation.h) &&
                 output_padding.w < std::max(stride.w, dilation.w),
             "ConvTranspose2d: output_padding (", output_padding.h, ", ", output_padding.w,
             ") must be non-negative and smaller than either stride or dilation");
  weight = register_parameter("weight", empty({in_channels, out_channels, kernel_size.h, kernel_size.w}));
  init::default_weight_(weight);
  if (has_bias) {
    bias = register_parameter("bias", empty({out_channels}));
    default_bias_(bias, init::fan_in(weight));
  }
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == weight.size(0), "ConvTranspose2d: expected input (N, ",
             weight.size(0), ", H, W), got ", shape_str(x));
  return conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation);
}

// ---- BatchNorm ---------------------------------------------------------------------------------------------
namespace {
void check_batch_norm_args(const char* op, int64_t num_features, double eps, double momentum) {
  NASH_CHECK(num_features > 0, op, ": num_features must be positive, got ", num_features);
  NASH_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, op, ": needs eps > 0 and momentum in [0, 1], got eps=", eps,
             " momentum=", momentum);
}
}  // namespace

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps_, double momentum_, bool affine)
    : Module("BatchNorm2d"), eps(eps_), momentum(momentum_) {
  check_batch_norm_args("BatchNorm2d", num_features, eps, momentum);
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  running_mean = register_buffer("running_mean", zeros({num_features}));
  running_var = register_buffer("running_var", ones({num_features}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == running_mean.numel(), "BatchNorm2d: expected input (N, ",
             running_mean.numel(), ", H, W), got ", shape_str(x));
  return batch_norm("BatchNorm2d", is_training(), x, weight, bias, running_mean, running_var, eps, momentum,
                    stats_reducer.get());
}

BatchNorm1d::BatchNorm1d(int64_t num_features, double eps_, double momentum_, bool affine)
    : Module("BatchNorm1d"), eps(eps_), momentum(momentum_) {
  check_batch_norm_args("BatchNorm1d", num_features, eps, momentum);
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  running_mean = register_buffer("running_mean", zeros({num_features}));
  running_var = register_buffer("running_var", ones({num_features}));
}

Tensor BatchNorm1d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && (x.dim() == 2 || x.dim() == 3) && x.size(1) == running_mean.numel(),
             "BatchNorm1d: expected input (N, ", running_mean.numel(), ") or (N, ", running_mean.numel(), ", L), got ",
             shape_str(x));
  return batch_norm("BatchNorm1d", is_training(), x, weight, bias, running_mean, running_var, eps, momentum,
                    stats_reducer.get());
}

// ---- shapes and containers ---------------------------------------------------------------------------------
Tensor Reshape::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() >= 1, "Reshape: expected an input with a batch dim, got ",
             shape_str(x));
  Shape s{x.size(0)};
  s.insert(s.end(), shape.begin(), shape.end());
  return x.reshape(s);
}

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const ModulePtr& m : modules) push_back(m);
}

Sequential& Sequential::push_back(ModulePtr m) {
  NASH_CHECK(m != nullptr, "Sequential.push_back: module ", layers_.size(), " is null");
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const ModulePtr& m : layers_) h = m->forward(h);
  return h;
}

}  // namespace nn
}  // namespace nash
