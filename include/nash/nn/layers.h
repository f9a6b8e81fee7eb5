// Layers: Linear, Conv2d, ConvTranspose2d, BatchNorm2d, activations, Flatten, Reshape and Sequential.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>

#include "nash/core/ops.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

// y = x Wᵀ + b; W (out, in) and b drawn from U(-1/sqrt(in), 1/sqrt(in)) like PyTorch.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
};

// NCHW convolution; W (out, in, k, k), PyTorch's default initialisation.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride = 1, Int2 padding = 0,
         bool bias = true, Int2 dilation = 1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Int2 stride, padding, dilation;
};

// Transposed convolution; W (in, out, k, k).
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride = 1, Int2 padding = 0,
                  Int2 output_padding = 0, bool bias = true, Int2 dilation = 1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Int2 stride, padding, output_padding, dilation;
};

// Batch normalisation over (N, H, W) per channel; running statistics used in eval mode.
// Sums a per-channel batch statistic over data-parallel replicas, differentiably (dist::sync_batch_norm sets it):
// with it, batch norm normalizes with the statistics of the global batch (replicas x the local batch).
struct BatchStatsReducer {
  std::function<Tensor(const Tensor&)> sum;
  int64_t replicas = 1;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var;
  double eps, momentum;
  std::shared_ptr<BatchStatsReducer> stats_reducer;  // null: statistics of the local batch
};

// Batch normalisation over N per feature for (N, C) inputs.
class BatchNorm1d : public Module {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var;
  double eps, momentum;
  std::shared_ptr<BatchStatsReducer> stats_reducer;  // null: statistics of the local batch
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override { return relu(x); }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.2) : Module("LeakyReLU"), slope(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, slope); }
  double slope;
};
class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
};
class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& x) override { return tanh(x); }
};
class Flatten : public Module {
 public:
  Flatten() : Module("Flatten") {}
  Tensor forward(const Tensor& x) override { return x.flatten(1); }
};
// Reshapes (N, ...) to (N, shape...).
class Reshape : public Module {
 public:
  explicit Reshape(Shape shape) : Module("Reshape"), shape(std::move(shape)) {}
  Tensor forward(const Tensor& x) override;
  Shape shape;
};

// Runs its children in order; children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);
  Sequential& push_back(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  std::size_t size() const { return layers_.size(); }
  const ModulePtr& operator[](std::size_t i) const { return layers_.at(i); }

 private:
  std::vector<ModulePtr> layers_;
};

}  // namespace nn
}  // namespace nash
