// k-nearest-neighbour manifold scores of a generated feature set against a real one: precision and recall
// (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative Models", 2019) and density
// and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", 2020). FID mixes
// sample quality and diversity into one number; these split them: a generator that drops modes keeps its precision
// and loses recall and coverage, one that covers every mode badly does the reverse.
//
// Each sample's manifold ball is centred on it with the radius of its k-th nearest neighbour in its own set (the
// sample itself excluded). precision: the share of fake samples inside at least one real ball; recall: the share of
// real samples inside at least one fake ball; density: the mean number of real balls holding a fake sample, over k
// (about 1 when the sets match, above 1 where fakes crowd dense real regions); coverage: the share of real samples
// whose ball holds at least one fake sample. "Inside" includes the boundary. The scores depend on the set sizes and
// on k; compare them at equal sizes and k only (the papers use k = 3 and k = 5).
#pragma once
#include <cstdint>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace metrics {

struct ManifoldScores {
  double precision = 0, recall = 0, density = 0, coverage = 0;
  int64_t k = 0, n_real = 0, n_fake = 0;
};

// The distance of each row of x (N, d) to its k-th nearest other row; needs N > k >= 1. Float32 or float64 on any
// device: inner products by one matrix product per block of rows on that device, distances in float64 on the host.
std::vector<double> knn_radii(const Tensor& x, int64_t k);

// The real set's balls, computed once and scored against any number of fake sets.
class RealManifold {
 public:
  // real (N, d) with N > k >= 1; every value finite (an error names the problem otherwise).
  RealManifold(const Tensor& real, int64_t k = 3);
  // fake (M, d) with M > k, the same d and dtype as the real set (any device).
  ManifoldScores score(const Tensor& fake) const;
  int64_t k() const { return k_; }
  int64_t size() const { return real_.size(0); }

 private:
  Tensor real_;
  int64_t k_;
  std::vector<double> radii_;  // squared
  std::vector<double> norms_;  // squared row norms
};

// RealManifold(real, k).score(fake).
ManifoldScores manifold_scores(const Tensor& real, const Tensor& fake, int64_t k = 3);

}  // namespace metrics
}  // namespace nash
