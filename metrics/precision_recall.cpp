// Manifold scores: squared distances |a|² + |b|² − 2 a·b, the inner products one matrix product per block of rows
// on the features' device, the rest in float64 on the host; k-th neighbours by partial selection per row.
#include "nash/metrics/precision_recall.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cpu/strided.h"
#include "nash/core/autograd.h"
#include "nash/core/error.h"
#include "nash/core/ops.h"

namespace nash {
namespace metrics {

namespace {

constexpr int64_t kBlockElements = int64_t(1) << 22;  // inner products per block: 32 MiB of doubles on the host

// Checks a feature set (what: "real", "fake", ...) and returns its squared row norms.
std::vector<double> checked_norms(const Tensor& x, const char* where, const char* what, int64_t k) {
  NASH_CHECK(x.defined() && x.dim() == 2, where, ": ", what, " features must be (N, d), got ",
             shape_str(x));
  NASH_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, where, ": ", what,
             " features must be float32 or float64, got ", dtype_name(x.dtype()));
  NASH_CHECK(k >= 1, where, ": k must be >= 1, got ", k);
  NASH_CHECK(x.size(0) > k, where, ": ", x.size(0), " ", what, " samples; the k-th nearest neighbour (k = ", k,
             ") needs more than k");
  NASH_CHECK(x.size(1) >= 1, where, ": ", what, " features have no dimensions");
  const int64_t n = x.size(0), d = x.size(1);
  const std::vector<double> v = x.to(Device::cpu()).contiguous().to_vector<double>();
  std::vector<double> norms(static_cast<std::size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double e = v[static_cast<std::size_t>(i * d + j)];
      NASH_CHECK(std::isfinite(e), where, ": ", what, " features hold a non-finite value (", e, ") at row ", i,
                 ", column ", j);
      s += e * e;
    }
    norms[static_cast<std::size_t>(i)] = s;
  }
  return norms;
}

// Calls body(first_row, rows, d2) for consecutive blocks of a's rows, d2 (rows x b.size(0), row-major) holding the
// squared distances between those rows of a and every row of b.
template <class F>
void for_distance_blocks(const Tensor& a, const std::vector<double>& na, const Tensor& b,
                         const std::vector<double>& nb, F&& body) {
  NoGradGuard ng;
  const int64_t n = a.size(0), m = b.size(0);
  const Tensor bt = b.t().contiguous();
  const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(n, kBlockElements / std::max<int64_t>(m, 1)));
  for (int64_t i0 = 0; i0 < n; i0 += rows) {
    const int64_t r = std::min(rows, n - i0);
    std::vector<double> d2 = matmul(a.narrow(0, i0, r), bt).to(Device::cpu()).contiguous().to_vector<double>();
    cpu::parallel_for(r, r * m >= cpu::kParallelGrain, [&](int64_t i) {
      double* row = d2.data() + i * m;
      const double ni = na[static_cast<std::size_t>(i0 + i)];
      for (int64_t j = 0; j < m; ++j) row[j] = std::max(0.0, ni + nb[static_cast<std::size_t>(j)] - 2.0 * row[j]);
    });
    body(i0, r, d2);
  }
}

// Squared distance of each row of x to its k-th nearest other row (x's own row, at distance 0, is the 0-th).
std::vector<double> knn_radii2(const Tensor& x, const std::vector<double>& norms, int64_t k) {
  const int64_t n = x.size(0);
  std::vector<double> out(static_cast<std::size_t>(n));
  for_distance_blocks(x, norms, x, norms, [&](int64_t i0, int64_t r, std::vector<double>& d2) {
    cpu::parallel_for(r, r * n >= cpu::kParallelGrain, [&](int64_t i) {
      double* row = d2.data() + i * n;
      row[i0 + i] = 0.0;  // itself, exactly
      std::nth_element(row, row + k, row + n);
      out[static_cast<std::size_t>(i0 + i)] = row[k];
    });
  });
  return out;
}

}  // namespace

std::vector<double> knn_radii(const Tensor& x, int64_t k) {
  std::vector<double> r = knn_radii2(x, checked_norms(x, "knn_radii", "the", k), k);
  for (double& v : r) v = std::sqrt(v);
  return r;
}

RealManifold::RealManifold(const Tensor& real, int64_t k) : real_(real.detach()), k_(k) {
  norms_ = checked_norms(real_, "RealManifold", "real", k);
  radii_ = knn_radii2(real_, norms_, k);
}

ManifoldScores RealManifold::score(const Tensor& fake) const {
  const char* where = "RealManifold::score";
  const std::vector<double> nf = checked_norms(fake, where, "fake", k_);
  NASH_CHECK(fake.size(1) == real_.size(1), where, ": fake features have ", fake.size(1),
             " dimensions, the real ones ", real_.size(1));
  NASH_CHECK(fake.dtype() == real_.dtype(), where, ": fake features are ", dtype_name(fake.dtype()),
             ", the real ones ", dtype_name(real_.dtype()));
  const Tensor f = fake.detach().to(real_.device());
  const int64_t n = real_.size(0), m = f.size(0);
  const std::vector<double> rf = knn_radii2(f, nf, k_);
  std::vector<char> real_in(static_cast<std::size_t>(n), 0), real_covered(static_cast<std::size_t>(n), 0);
  std::vector<int64_t> balls(static_cast<std::size_t>(m), 0);  // real balls holding each fake sample
  for_distance_blocks(real_, norms_, f, nf, [&](int64_t i0, int64_t r, std::vector<double>& d2) {
    // Per fake sample (column): the real balls of this block that hold it, a range of columns per task so that
    // each walks its rows contiguously.
    const int64_t chunk = 256, chunks = (m + chunk - 1) / chunk;
    cpu::parallel_for(chunks, r * m >= cpu::kParallelGrain, [&](int64_t c) {
      const int64_t j0 = c * chunk, j1 = std::min(m, j0 + chunk);
      for (int64_t i = 0; i < r; ++i) {
        const double* row = d2.data() + i * m;
        const double ri = radii_[static_cast<std::size_t>(i0 + i)];
        for (int64_t j = j0; j < j1; ++j) balls[static_cast<std::size_t>(j)] += row[j] <= ri;
      }
    });
    // Per real sample (row): does a fake ball hold it, does its ball hold a fake sample.
    cpu::parallel_for(r, r * m >= cpu::kParallelGrain, [&](int64_t i) {
      const double* row = d2.data() + i * m;
      const double ri = radii_[static_cast<std::size_t>(i0 + i)];
      bool in = false, covered = false;
      for (int64_t j = 0; j < m && !(in && covered); ++j) {
        in = in || row[j] <= rf[static_cast<std::size_t>(j)];
        covered = covered || row[j] <= ri;
      }
      real_in[static_cast<std::size_t>(i0 + i)] = in;
      real_covered[static_cast<std::size_t>(i0 + i)] = covered;
    });
  });
  ManifoldScores s;
  s.k = k_;
  s.n_real = n;
  s.n_fake = m;
  int64_t total_balls = 0, fake_in = 0;
  for (int64_t c : balls) {
    total_balls += c;
    fake_in += c > 0;
  }
  s.precision = static_cast<double>(fake_in) / static_cast<double>(m);
  s.recall = static_cast<double>(std::count(real_in.begin(), real_in.end(), 1)) / static_cast<double>(n);
  s.coverage = static_cast<double>(std::count(real_covered.begin(), real_covered.end(), 1)) / static_cast<double>(n);
  s.density = static_cast<double>(total_balls) / (static_cast<double>(k_) * static_cast<double>(m));
  return s;
}

ManifoldScores manifold_scores(const Tensor& real, const Tensor& fake, int64_t k) {
  return RealManifold(real, k).score(fake);
}

}  // namespace metrics
}  // namespace nash
