// Small GAN layers composed of differentiable ops (so double backward holds): PixelNorm, MinibatchStdDev,
// ScaledLeakyReLU (leaky ReLU times a gain, √2 in StyleGAN) and nearest-neighbour Upsample.
#pragma once
#include <cstdint>

#include "nash/core/ops.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

inline constexpr double kSqrt2 = 1.4142135623730951;

// x / sqrt(mean(x², dim 1) + eps): each sample's feature vector (at every pixel) normalised to unit RMS (ProGAN).
// x is (N, C) or (N, C, ...).
Tensor pixel_norm(const Tensor& x, double eps = 1e-8);

// The group size MinibatchStdDev uses for a batch of n: the largest divisor of n that is at most group_size (so
// any batch works; group_size itself whenever it divides n, as StyleGAN requires).
int64_t minibatch_stddev_group(int64_t n, int64_t group_size);

// Appends one feature map holding, for each sample, the mean over (C, H, W) of the stddev of every feature across
// the sample's group (StyleGAN: samples n and n' share a group when n ≡ n' mod N/G). x is (N, C, H, W) or (N, C);
// the result is (N, C + 1, H, W) or (N, C + 1). The stddev is sqrt(population variance + eps).
Tensor minibatch_stddev(const Tensor& x, int64_t group_size = 4, double eps = 1e-8);

class PixelNorm : public Module {
 public:
  explicit PixelNorm(double eps_ = 1e-8) : Module("PixelNorm"), eps(eps_) {}
  Tensor forward(const Tensor& x) override { return pixel_norm(x, eps); }
  double eps;
};

class MinibatchStdDev : public Module {
 public:
  explicit MinibatchStdDev(int64_t group_size = 4, double eps = 1e-8);
  Tensor forward(const Tensor& x) override { return minibatch_stddev(x, group_size, eps); }
  int64_t group_size;
  double eps;
};

// y = leaky_relu(x, slope) * gain; gain √2 keeps the activations' second moment under He-style scaling.
class ScaledLeakyReLU : public Module {
 public:
  explicit ScaledLeakyReLU(double slope_ = 0.2, double gain_ = kSqrt2)
      : Module("ScaledLeakyReLU"), slope(slope_), gain(gain_) {}
  Tensor forward(const Tensor& x) override;
  double slope, gain;
};

// Nearest-neighbour upsampling of (N, C, H, W) by an integer factor.
class Upsample : public Module {
 public:
  explicit Upsample(int64_t scale = 2);
  Tensor forward(const Tensor& x) override;
  int64_t scale;
};

}  // namespace nn
}  // namespace nash
