// Mode coverage of 2-D generator samples against a known Gaussian mixture (modes covered, quality, KL).
#pragma once
#include <cstdint>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace metrics {

struct ModeCoverage {
  int64_t num_samples = 0;
  int64_t num_modes = 0;
  int64_t modes_covered = 0;       // modes holding >= min_share of all samples within the radius
  int64_t high_quality = 0;        // samples within the radius of some mode
  double high_quality_share = 0;   // high_quality / num_samples
  std::vector<int64_t> per_mode;   // high-quality samples per mode (each assigned to its nearest mode)
  // KL(p || uniform) = sum_k p_k log(K p_k) of the high-quality samples' mode histogram p: 0 when they are
  // spread evenly, log(K) when all sit on one mode; +infinity when no sample is high quality.
  double kl_uniform = 0;
};

// samples (N, 2), centres (K, 2), any float dtype and device. A sample is high quality when it lies within
// radius_stds * std of its nearest centre; a mode is covered when it holds >= min_share * N of them.
// Non-finite samples count as low quality.
ModeCoverage mode_coverage(const Tensor& samples, const Tensor& centres, double std, double radius_stds = 3.0,
                           double min_share = 0.01);

}  // namespace metrics
}  // namespace nash
