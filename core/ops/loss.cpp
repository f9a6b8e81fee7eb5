// Losses composed of differentiable ops (so double backward holds): BCE-with-logits, cross-entropy, MSE; one_hot.
#include <cmath>

#include "core/ops/common.h"

namespace nash {

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets) {
  NASH_CHECK(logits.defined() && targets.defined(), "binary_cross_entropy_with_logits: undefined input");
  NASH_CHECK(logits.shape() == targets.shape(), "binary_cross_entropy_with_logits: logits ",
             shape_str(logits.shape()), " and targets ", shape_str(targets.shape()), " differ in shape");
  return mean(sub(softplus(logits), mul(logits, targets)));
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  NASH_CHECK(indices.defined() && indices.dim() == 1, "one_hot: expected a 1-D tensor of class indices, got ",
             indices.str());
  NASH_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  std::vector<double> idx = indices.to_vector<double>();
  int64_t n = static_cast<int64_t>(idx.size());
  std::vector<double> v(static_cast<std::size_t>(n * num_classes), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double c = idx[i];
    NASH_CHECK(std::floor(c) == c && c >= 0 && c < static_cast<double>(num_classes), "one_hot: index ", i, " is ", c,
               ", expected an integer in [0, ", num_classes, ")");
    v[static_cast<std::size_t>(i * num_classes + static_cast<int64_t>(c))] = 1.0;
  }
  // Built on the host in the target dtype, then moved: device backends do not convert dtypes.
  return from_vector(v, {n, num_classes}).to(indices.dtype()).to(indices.device());
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  NASH_CHECK(logits.defined() && logits.dim() == 2, "cross_entropy: logits must be (N, C), got ",
             shape_str(logits));
  NASH_CHECK(targets.defined() && targets.dim() == 1 && targets.size(0) == logits.size(0),
             "cross_entropy: targets must be (N) = (", logits.size(0), "), got ",
             shape_str(targets));
  Tensor oh = one_hot(targets.detach(), logits.size(1)).to(logits.dtype());
  return neg(mean(sum(mul(oh, log_softmax(logits, 1)), {1})));
}

Tensor mse_loss(const Tensor& a, const Tensor& b) {
  NASH_CHECK(a.defined() && b.defined() && a.shape() == b.shape(), "mse_loss: shapes ",
             shape_str(a), " and ", shape_str(b),
             " differ");
  return mean(square(sub(a, b)));
}

}  // namespace nash
