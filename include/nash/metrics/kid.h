// Kernel distance (KID; Bińkowski et al., "Demystifying MMD GANs", 2018): the squared maximum mean discrepancy
// between two feature sets under the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, estimated without bias on
// random subsets and averaged over them. Unlike FID, whose estimate is biased upward by an amount that depends on the
// sample count (so FIDs of 5,000 and 10,000 images are not comparable), KID's expectation does not depend on the set
// sizes, and it is 0 in expectation for two samples of one distribution (single estimates can be slightly negative).
//
// Each subset draws `subset_size` rows of each set without replacement (a subset's real and fake rows
// independently); per subset, MMD²_u = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) − 2 mean_{i,j} k(x_i, y_j).
// The reported value is the mean over subsets and its spread their standard deviation (torch-fidelity's and
// clean-fid's convention: 100 subsets of 1,000).
#pragma once
#include <cstdint>

#include "nash/core/tensor.h"

namespace nash {
namespace metrics {

struct KernelDistance {
  double mean = 0, std = 0;      // over the subsets (std 0 for one subset)
  int64_t subsets = 0, subset_size = 0;
};

// real (N, d) and fake (M, d), float32 or float64 on any device (copied to the host), every value finite;
// subset_size is capped at min(N, M) and must then be >= 2; subsets >= 1. `seed` draws the subsets. Errors name the
// bad argument.
KernelDistance kernel_distance(const Tensor& real, const Tensor& fake, int64_t subsets = 100,
                               int64_t subset_size = 1000, uint64_t seed = 0);

}  // namespace metrics
}  // namespace nash
