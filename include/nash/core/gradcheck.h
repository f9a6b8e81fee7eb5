// Finite-difference checks of gradients (gradcheck) and of gradients of gradients (gradgradcheck) for any nash function.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace autograd {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  std::string message;  // the first mismatch: input, element, analytic and numeric values
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Compares autograd's gradient of sum(f(inputs) * v) (v a fixed random tensor) with central
// differences of step eps, element by element, for every input that requires grad. Use float64 inputs.
// Passes when |analytic - numeric| <= atol + rtol * |numeric|.
GradcheckResult gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, double eps = 1e-6,
                          double atol = 1e-5, double rtol = 1e-3);

// gradcheck of the first gradients themselves (built with create_graph): checks double backward.
GradcheckResult gradgradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, double eps = 1e-6,
                              double atol = 1e-5, double rtol = 1e-3);

}  // namespace autograd
}  // namespace nash
