// Synthetic 2-D Gaussian mixtures for GAN mode-coverage tests: the 8-mode ring and the 5x5 grid.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "nash/core/random.h"
#include "nash/core/tensor.h"

namespace nash {
namespace data {

// An equal-weight mixture of isotropic 2-D Gaussians sharing one standard deviation.
class GaussianMixture2D {
 public:
  GaussianMixture2D(std::vector<std::array<double, 2>> centres, double std);

  // modes centres at angle 2*pi*k/modes on a circle of `radius` about the origin.
  static GaussianMixture2D ring(int64_t modes = 8, double radius = 2.0, double std = 0.02);
  // side x side centres `spacing` apart, centred on the origin (5x5: -4, -2, 0, 2, 4 on each axis).
  static GaussianMixture2D grid(int64_t side = 5, double spacing = 2.0, double std = 0.05);

  // n samples (n, 2): a mode drawn uniformly, then Gaussian noise around its centre. gen = nullptr uses
  // nash's default generator; the same generator state gives the same samples.
  Tensor sample(int64_t n, Generator* gen = nullptr, DType dtype = DType::Float32) const;
  // As sample(), also returning each sample's mode index in *modes (when not null).
  Tensor sample(int64_t n, std::vector<int64_t>* modes, Generator* gen = nullptr,
                DType dtype = DType::Float32) const;

  const std::vector<std::array<double, 2>>& centre_list() const { return centres_; }
  Tensor centres(DType dtype = DType::Float64) const;  // (modes, 2)
  int64_t num_modes() const { return static_cast<int64_t>(centres_.size()); }
  double std() const { return std_; }

 private:
  std::vector<std::array<double, 2>> centres_;
  double std_;
};

}  // namespace data
}  // namespace nash
