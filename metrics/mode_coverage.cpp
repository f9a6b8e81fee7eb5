// mode_coverage: nearest-centre assignment of 2-D samples and the coverage statistics derived from it.
#include "nash/metrics/mode_coverage.h"

#include <cmath>
#include <limits>

namespace nash {
namespace metrics {

ModeCoverage mode_coverage(const Tensor& samples, const Tensor& centres, double std, double radius_stds,
                           double min_share) {
  NASH_CHECK(samples.defined() && centres.defined(), "mode_coverage: samples and centres must be defined");
  NASH_CHECK(samples.dim() == 2 && samples.size(1) == 2, "mode_coverage: samples must be (N, 2), got ",
             shape_str(samples.shape()));
  NASH_CHECK(centres.dim() == 2 && centres.size(1) == 2 && centres.size(0) >= 1,
             "mode_coverage: centres must be (K, 2) with K >= 1, got ", shape_str(centres.shape()));
  NASH_CHECK(samples.size(0) >= 1, "mode_coverage: needs at least one sample, got shape ", shape_str(samples.shape()));
  NASH_CHECK(std::isfinite(std) && std > 0, "mode_coverage: std must be finite and > 0, got ", std);
  NASH_CHECK(std::isfinite(radius_stds) && radius_stds > 0, "mode_coverage: radius_stds must be > 0, got ",
             radius_stds);
  NASH_CHECK(min_share >= 0 && min_share <= 1, "mode_coverage: min_share must be in [0, 1], got ", min_share);

  const std::vector<double> x = samples.detach().to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const std::vector<double> c = centres.detach().to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const int64_t n = samples.size(0), k = centres.size(0);
  const double r2 = (radius_stds * std) * (radius_stds * std);

  ModeCoverage out;
  out.num_samples = n;
  out.num_modes = k;
  out.per_mode.assign(static_cast<std::size_t>(k), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = -1;
    double best_d2 = std::numeric_limits<double>::infinity();
    for (int64_t m = 0; m < k; ++m) {
      double dx = x[2 * i] - c[2 * m], dy = x[2 * i + 1] - c[2 * m + 1];
      double d2 = dx * dx + dy * dy;
      if (d2 < best_d2) {  // false for NaN, so a NaN sample never gets a mode
        best_d2 = d2;
        best = m;
      }
    }
    if (best >= 0 && best_d2 <= r2) {
      ++out.per_mode[best];
      ++out.high_quality;
    }
  }
  out.high_quality_share = static_cast<double>(out.high_quality) / static_cast<double>(n);
  const double need = min_share * static_cast<double>(n);
  for (int64_t m = 0; m < k; ++m)
    if (out.per_mode[m] > 0 && static_cast<double>(out.per_mode[m]) >= need) ++out.modes_covered;

  if (out.high_quality == 0) {
    out.kl_uniform = std::numeric_limits<double>::infinity();
  } else {
    double kl = 0;
    for (int64_t m = 0; m < k; ++m) {
      if (out.per_mode[m] == 0) continue;
      double p = static_cast<double>(out.per_mode[m]) / static_cast<double>(out.high_quality);
      kl += p * std::log(p * static_cast<double>(k));
    }
    out.kl_uniform = std::max(0.0, kl);  // rounding can leave a tiny negative for an even histogram
  }
  return out;
}

}  // namespace metrics
}  // namespace nash
