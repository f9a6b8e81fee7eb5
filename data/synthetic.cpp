// Samplers for the ring and grid Gaussian mixtures, drawing modes and noise from a Philox generator.
#include "nash/data/synthetic.h"

#include <cmath>

namespace nash {
namespace data {

GaussianMixture2D::GaussianMixture2D(std::vector<std::array<double, 2>> centres, double std)
    : centres_(std::move(centres)), std_(std) {
  NASH_CHECK(!centres_.empty(), "GaussianMixture2D: needs at least one centre");
  NASH_CHECK(std::isfinite(std_) && std_ >= 0, "GaussianMixture2D: std must be finite and >= 0, got ", std_);
  for (const auto& c : centres_)
    NASH_CHECK(std::isfinite(c[0]) && std::isfinite(c[1]), "GaussianMixture2D: centre (", c[0], ", ", c[1],
               ") is not finite");
}

GaussianMixture2D GaussianMixture2D::ring(int64_t modes, double radius, double std) {
  NASH_CHECK(modes >= 1, "GaussianMixture2D::ring: modes must be >= 1, got ", modes);
  NASH_CHECK(std::isfinite(radius) && radius > 0, "GaussianMixture2D::ring: radius must be > 0, got ", radius);
  const double two_pi = 2.0 * std::acos(-1.0);
  std::vector<std::array<double, 2>> c;
  for (int64_t k = 0; k < modes; ++k) {
    double a = two_pi * static_cast<double>(k) / static_cast<double>(modes);
    c.push_back({radius * std::cos(a), radius * std::sin(a)});
  }
  return GaussianMixture2D(std::move(c), std);
}

GaussianMixture2D GaussianMixture2D::grid(int64_t side, double spacing, double std) {
  NASH_CHECK(side >= 1, "GaussianMixture2D::grid: side must be >= 1, got ", side);
  NASH_CHECK(std::isfinite(spacing) && spacing > 0, "GaussianMixture2D::grid: spacing must be > 0, got ", spacing);
  const double half = 0.5 * static_cast<double>(side - 1);
  std::vector<std::array<double, 2>> c;
  for (int64_t i = 0; i < side; ++i)
    for (int64_t j = 0; j < side; ++j)
      c.push_back({(static_cast<double>(i) - half) * spacing, (static_cast<double>(j) - half) * spacing});
  return GaussianMixture2D(std::move(c), std);
}

Tensor GaussianMixture2D::sample(int64_t n, Generator* gen, DType dtype) const {
  return sample(n, nullptr, gen, dtype);
}

Tensor GaussianMixture2D::sample(int64_t n, std::vector<int64_t>* modes, Generator* gen, DType dtype) const {
  NASH_CHECK(n >= 1, "GaussianMixture2D::sample: n must be >= 1, got ", n);
  // Whole tensors from the generator (two draws) rather than per-sample calls keep sampling cheap.
  std::vector<double> u = rand({n}, DType::Float64, Device::cpu(), gen).to_vector<double>();
  std::vector<double> noise = randn({n, 2}, DType::Float64, Device::cpu(), gen).to_vector<double>();
  const int64_t k = num_modes();
  std::vector<double> xy(static_cast<std::size_t>(2 * n));
  if (modes) modes->resize(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t m = std::min<int64_t>(static_cast<int64_t>(u[i] * static_cast<double>(k)), k - 1);
    xy[2 * i] = centres_[m][0] + std_ * noise[2 * i];
    xy[2 * i + 1] = centres_[m][1] + std_ * noise[2 * i + 1];
    if (modes) (*modes)[i] = m;
  }
  Tensor out = from_vector(xy, {n, 2});
  return dtype == DType::Float64 ? out : out.to(dtype);
}

Tensor GaussianMixture2D::centres(DType dtype) const {
  std::vector<double> v;
  for (const auto& c : centres_) v.insert(v.end(), {c[0], c[1]});
  Tensor out = from_vector(v, {num_modes(), 2});
  return dtype == DType::Float64 ? out : out.to(dtype);
}

}  // namespace data
}  // namespace nash
