// The multi-tensor optimizer step shared by every backend: its descriptor (a whole model's parameters in one call)
// and the per-element and per-group update math, written once for the CPU, CUDA and the per-tensor reference.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/math.h"
#include "nash/core/device.h"

namespace nash {
namespace detail {

// Update rules (all minimise: the step is subtracted). g is the gradient, A = m̂ / (sqrt(v̂) + eps) Adam's oracle.
//   Adam:     p -= step_size * m / (sqrt(v) / denom_scale + eps)        elementwise, no group norm
//   NSGDA:    p -= lr * g / ||g||                                        per group
//   AdaNSGDA: p -= lr * ||A|| * g / (||g|| + eps)                        per group (Adam's magnitude, g's direction)
//   AdaDir:   p -= lr * ||g|| * A / (||A|| + eps)                        per group (g's magnitude, Adam's direction)
//   SGD:      d = g + wd p; b = momentum_decay * b + grad_weight * d;    elementwise, heavy-ball momentum in exp_avg
//             p -= step_size * (nesterov ? d + beta1 * b : b)            (no exp_avg: p -= step_size * d)
enum class StepRule : int32_t { Adam = 0, NSGDA = 1, AdaNSGDA = 2, AdaDir = 3, SGD = 4 };

inline bool rule_has_norms(StepRule r) { return r != StepRule::Adam && r != StepRule::SGD; }

// One parameter tensor: every buffer contiguous with `numel` elements, on the step's device, of the step's dtype.
struct StepTensor {
  void* param = nullptr;
  const void* grad = nullptr;
  void* exp_avg = nullptr;     // null: the first moment is the gradient itself (LREQAdam keeps no m)
  void* exp_avg_sq = nullptr;  // null for NSGDA
  int64_t numel = 0;
  int32_t group = 0;
  // Per tensor, because each tensor counts its own steps (a parameter without a gradient skips a step).
  double step_size = 0;     // Adam rule: lr / (1 - beta1^t); LREQAdam: lr * c * sqrt(1 - beta2^t)
  double denom_scale = 1;   // sqrt(1 - beta2^t): sqrt(v) / denom_scale = sqrt(v̂); 1 keeps v uncorrected
  double oracle_scale = 1;  // 1 / (1 - beta1^t): A = oracle_scale * m / (sqrt(v) / denom_scale + eps)
  // SGD rule: the momentum buffer's update. PyTorch's form starts the buffer at d (decay 0, weight 1) and then
  // keeps momentum * b + (1 - dampening) * d.
  double momentum_decay = 0, grad_weight = 1;
};

// A whole model's step. Tensors are ordered by group (group ids non-decreasing, each < group_lr.size()), so each
// group's work is one contiguous range for the backends' fixed-order reductions.
struct MultiTensorStep {
  StepRule rule = StepRule::Adam;
  Device device = Device::cpu();
  DType dtype = DType::Float32;
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;  // weight_decay: Adam and SGD rules (L2 added to g)
  bool nesterov = false;                                    // SGD rule (beta1 is the momentum)
  std::vector<StepTensor> tensors;
  std::vector<double> group_lr;
  // Norm rules: float64 device memory with 3 values per group, written for every group that has tensors:
  // [0] = ||g||, [1] = ||A|| (0 for NSGDA), [2] += ||A|| (a running sum for calibration). Null: not recorded.
  double* group_stats = nullptr;
  // Any rule: host memory with 3 values per group, written for every group that has tensors: [0] = sum of g²
  // (the raw gradient), [1] = sum of p² before the step, [2] = sum of (p_after - p_before)², the difference taken
  // in double. Each is summed in a fixed order, so results do not depend on thread counts. Null: not recorded
  // (the kernels then skip the extra arithmetic).
  double* step_norms = nullptr;
};

// Elementwise coefficients in the kernel's precision.
template <class T>
struct MomentCoeffs {
  T b1, one_b1, b2, one_b2, eps, wd;
  static MomentCoeffs make(const MultiTensorStep& s) {
    return {static_cast<T>(s.beta1),       static_cast<T>(1.0 - s.beta1), static_cast<T>(s.beta2),
            static_cast<T>(1.0 - s.beta2), static_cast<T>(s.eps),         static_cast<T>(s.weight_decay)};
  }
};

template <class T>
NASH_HD T first_moment(const MomentCoeffs<T>& c, T m, T d) {
  return c.b1 * m + c.one_b1 * d;
}
template <class T>
NASH_HD T second_moment(const MomentCoeffs<T>& c, T v, T d) {
  return c.b2 * v + c.one_b2 * d * d;
}
// m / (sqrt(v) / denom_scale + eps): times lr / bc1 it is Adam's step, times 1 / bc1 the oracle A.
template <class T>
NASH_HD T adam_ratio(T m, T v, T denom_scale, T eps) {
  return m / (std::sqrt(v) / denom_scale + eps);
}

// SGD rule, one element: moves the momentum buffer b (when has_buffer) and returns the step's direction.
template <class T>
NASH_HD T sgd_direction(bool has_buffer, bool nesterov, T momentum, T decay, T weight, T d, T& b) {
  if (!has_buffer) return d;
  b = decay * b + weight * d;
  return nesterov ? d + momentum * b : b;
}

// The factor a norm rule multiplies its direction (g, or A for AdaDir) by, from the group's norms. A zero
// denominator means a zero direction (no gradient reached the group): the group does not move rather than
// turning 0/0 into NaN.
NASH_HD double group_scale(StepRule rule, double lr, double grad_norm, double oracle_norm, double eps) {
  if (rule == StepRule::NSGDA) return grad_norm > 0 ? lr / grad_norm : 0.0;
  if (rule == StepRule::AdaNSGDA) return grad_norm + eps > 0 ? lr * oracle_norm / (grad_norm + eps) : 0.0;
  if (rule == StepRule::AdaDir) return oracle_norm + eps > 0 ? lr * grad_norm / (oracle_norm + eps) : 0.0;
  return 0.0;
}

}  // namespace detail
}  // namespace nash
