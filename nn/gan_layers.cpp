// PixelNorm, MinibatchStdDev, ScaledLeakyReLU and Upsample, each a composition of differentiable nash ops.
#include "nash/nn/gan_layers.h"

#include <string>

namespace nash {
namespace nn {

Tensor pixel_norm(const Tensor& x, double eps) {
  NASH_CHECK(x.defined() && x.dim() >= 2, "pixel_norm: expected (N, C) or (N, C, ...), got ", shape_str(x));
  NASH_CHECK(eps > 0, "pixel_norm: eps must be positive, got ", eps);
  return mul(x, pow(add(mean(square(x), {1}, true), eps), -0.5));
}

int64_t minibatch_stddev_group(int64_t n, int64_t group_size) {
  NASH_CHECK(n > 0 && group_size > 0, "minibatch_stddev: batch (", n, ") and group size (", group_size,
             ") must be positive");
  for (int64_t g = group_size < n ? group_size : n; g > 1; --g)
    if (n % g == 0) return g;
  return 1;
}

Tensor minibatch_stddev(const Tensor& x, int64_t group_size, double eps) {
  NASH_CHECK(x.defined() && (x.dim() == 4 || x.dim() == 2), "minibatch_stddev: expected (N, C, H, W) or (N, C), got ",
             shape_str(x));
  NASH_CHECK(eps > 0, "minibatch_stddev: eps must be positive, got ", eps);
  if (x.dim() == 2) {
    Tensor y = minibatch_stddev(x.reshape({x.size(0), x.size(1), 1, 1}), group_size, eps);
    return y.reshape({x.size(0), x.size(1) + 1});
  }
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t g = minibatch_stddev_group(n, group_size), m = n / g;
  // Sample i = gi * m + mi sits in group mi, as in StyleGAN's reshape to (G, M, ...).
  Tensor y = x.reshape({g, m, c, h, w});
  y = sub(y, mean(y, {0}, true));
  y = sqrt(add(mean(square(y), {0}), eps));  // (M, C, H, W)
  y = mean(y, {1, 2, 3});                    // (M)
  y = y.reshape({1, m, 1, 1, 1}).expand({g, m, 1, h, w}).reshape({n, 1, h, w});
  return cat({x, y}, 1);
}

MinibatchStdDev::MinibatchStdDev(int64_t group_size_, double eps_)
    : Module("MinibatchStdDev"), group_size(group_size_), eps(eps_) {
  NASH_CHECK(group_size > 0 && eps > 0,
             "MinibatchStdDev: group_size and eps must be positive, got group_size=", group_size, " eps=", eps);
}

Tensor ScaledLeakyReLU::forward(const Tensor& x) {
  NASH_CHECK(x.defined(), "ScaledLeakyReLU: got an undefined input");
  Tensor y = leaky_relu(x, slope);
  return gain == 1.0 ? y : mul(y, gain);
}

Upsample::Upsample(int64_t scale_) : Module("Upsample"), scale(scale_) {
  NASH_CHECK(scale > 0, "Upsample: scale must be a positive integer, got ", scale);
}

Tensor Upsample::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4, "Upsample: expected (N, C, H, W), got ", shape_str(x));
  return scale == 1 ? x : upsample_nearest2d(x, scale);
}

}  // namespace nn
}  // namespace nash
