// Kernel distance (KID): unbiased MMD² under the cubic polynomial kernel, averaged over random subsets.
#include "nash/metrics/kid.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"

namespace nash {
namespace metrics {

namespace {

// A feature set on the host: its values (checked finite) and dtype.
struct HostSet {
  std::vector<double> v;
  int64_t n = 0, d = 0;
  DType dtype = DType::Float32;
  // The rows `rows` (all of them when empty) as a contiguous tensor of the set's dtype.
  Tensor rows(const std::vector<int64_t>& rows) const {
    const int64_t m = rows.empty() ? n : static_cast<int64_t>(rows.size());
    std::vector<double> out(static_cast<std::size_t>(m * d));
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = rows.empty() ? i : rows[static_cast<std::size_t>(i)];
      std::copy_n(v.begin() + r * d, d, out.begin() + i * d);
    }
    Tensor t = from_vector(out, {m, d});
    return dtype == DType::Float64 ? t : t.to(DType::Float32);
  }
};

HostSet host_features(const Tensor& x, const char* what) {
  NASH_CHECK(x.defined() && x.dim() == 2 && x.size(0) >= 1 && x.size(1) >= 1, "kernel_distance: ", what,
             " features must be (N, d), got ", shape_str(x));
  NASH_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, "kernel_distance: ", what,
             " features must be float32 or float64, got ", x.str());
  HostSet h;
  h.v = x.detach().to(Device::cpu()).contiguous().to_vector<double>();
  h.n = x.size(0);
  h.d = x.size(1);
  h.dtype = x.dtype();
  for (std::size_t i = 0; i < h.v.size(); ++i)
    NASH_CHECK(std::isfinite(h.v[i]), "kernel_distance: ", what, " features hold a non-finite value (", h.v[i],
               ") at row ", i / static_cast<std::size_t>(h.d));
  return h;
}

// m distinct row indices of [0, n), uniformly (a partial Fisher-Yates shuffle).
std::vector<int64_t> draw_rows(int64_t n, int64_t m, Generator& gen) {
  std::vector<int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t j = i + std::min<int64_t>(n - i - 1, static_cast<int64_t>(gen.next_uniform() * (n - i)));
    std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
  }
  idx.resize(static_cast<std::size_t>(m));
  return idx;
}

// Σ over the entries of (a bᵀ / d + 1)³, the diagonal left out when `skip_diagonal` (a and b the same rows).
template <class T>
double cube_sum(const T* g, std::size_t rows, std::size_t cols, double d, bool skip_diagonal) {
  double s = 0;
  for (std::size_t i = 0; i < rows; ++i) {
    double row = 0;
    for (std::size_t j = 0; j < cols; ++j) {
      const double t = static_cast<double>(g[i * cols + j]) / d + 1.0;
      row += t * t * t;
    }
    if (skip_diagonal) {
      const double t = static_cast<double>(g[i * cols + i]) / d + 1.0;
      row -= t * t * t;
    }
    s += row;
  }
  return s;
}

double kernel_sum(const Tensor& a, const Tensor& b, bool skip_diagonal) {
  const double d = static_cast<double>(a.size(1));
  const Tensor g = matmul(a, b.t()).contiguous();
  const std::size_t rows = static_cast<std::size_t>(a.size(0)), cols = static_cast<std::size_t>(b.size(0));
  return g.dtype() == DType::Float64 ? cube_sum(g.data_ptr<double>(), rows, cols, d, skip_diagonal)
                                     : cube_sum(g.data_ptr<float>(), rows, cols, d, skip_diagonal);
}

}  // namespace

KernelDistance kernel_distance(const Tensor& real, const Tensor& fake, int64_t subsets, int64_t subset_size,
                               uint64_t seed) {
  NASH_CHECK(subsets >= 1, "kernel_distance: subsets must be >= 1, got ", subsets);
  NoGradGuard ng;
  const HostSet x = host_features(real, "real"), y = host_features(fake, "fake");
  NASH_CHECK(x.d == y.d, "kernel_distance: real features have dimension ", x.d, ", fake ones ", y.d);
  NASH_CHECK(x.dtype == y.dtype, "kernel_distance: real features are ", real.str(), ", fake ones ", fake.str(),
             " (one dtype for both)");
  const int64_t m = std::min({subset_size, x.n, y.n});
  NASH_CHECK(m >= 2, "kernel_distance: subsets need >= 2 rows of each set (subset_size ", subset_size, ", ", x.n,
             " real and ", y.n, " fake rows)");
  Generator gen(seed);
  const double md = static_cast<double>(m);
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; ++s) {
    // A set no larger than the subsets is used whole (every subset the same rows).
    const Tensor xs = x.rows(m == x.n ? std::vector<int64_t>() : draw_rows(x.n, m, gen));
    const Tensor ys = y.rows(m == y.n ? std::vector<int64_t>() : draw_rows(y.n, m, gen));
    const double kxx = kernel_sum(xs, xs, true), kyy = kernel_sum(ys, ys, true), kxy = kernel_sum(xs, ys, false);
    values.push_back((kxx + kyy) / (md * (md - 1)) - 2.0 * kxy / (md * md));
  }
  KernelDistance r;
  r.subsets = subsets;
  r.subset_size = m;
  for (double v : values) r.mean += v;
  r.mean /= static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0;
    for (double v : values) ss += (v - r.mean) * (v - r.mean);
    r.std = std::sqrt(ss / static_cast<double>(values.size() - 1));
  }
  return r;
}

}  // namespace metrics
}  // namespace nash
