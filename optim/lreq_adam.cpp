// LREQAdam: ALAE's Adam for equalized-learning-rate layers (beta1 = 0, only v bias-corrected, step times the
// parameter's equalization coefficient), run as the Adam rule of the multi-tensor step with no first moment.
#include <cmath>

#include "kernels/optim_step.h"
#include "nash/optim/balanced.h"

namespace nash {
namespace optim {

LREQAdam::LREQAdam(std::vector<ParamGroup> groups, LREQAdamOptions opt)
    : FusedOptimizer(std::move(groups), opt.lr, "LREQAdam", detail::StepRule::Adam, Moments::SecondOnly, opt.fused,
                     true),
      opt_(opt) {
  NASH_CHECK(opt.beta1 == 0.0,
             "LREQAdam: beta1 must be 0 (ALAE's LREQAdam keeps no first moment), got beta1=", opt.beta1);
  NASH_CHECK(opt.beta2 >= 0 && opt.beta2 < 1, "LREQAdam: beta2 must be in [0, 1), got ", opt.beta2);
  NASH_CHECK(opt.eps >= 0 && opt.weight_decay >= 0, "LREQAdam: eps and weight_decay must be >= 0, got eps=", opt.eps,
             " weight_decay=", opt.weight_decay);
  for (std::size_t g = 0; g < groups_.size(); ++g)
    for (std::size_t i = 0; i < groups_[g].coefficients.size(); ++i)
      NASH_CHECK(std::isfinite(groups_[g].coefficients[i]) && groups_[g].coefficients[i] > 0, "LREQAdam: coefficient ",
                 i, " of group ", g, " is ", groups_[g].coefficients[i], "; expected a finite value > 0");
}

void LREQAdam::tensor_scalars(std::size_t gi, std::size_t pi, int64_t t, double& step_size, double& denom_scale,
                              double& oracle_scale) const {
  const ParamGroup& g = groups_[gi];
  const double coef = g.coefficients.empty() ? 1.0 : g.coefficients[pi];
  step_size = g.lr * coef * std::sqrt(1.0 - std::pow(opt_.beta2, static_cast<double>(t)));
  denom_scale = 1.0;  // eps on the uncorrected sqrt(v)
  oracle_scale = 1.0;
}

void LREQAdam::fill_hyper(detail::MultiTensorStep& s) const {
  s.beta1 = 0.0;
  s.beta2 = opt_.beta2;
  s.eps = opt_.eps;
  s.weight_decay = opt_.weight_decay;
}

}  // namespace optim
}  // namespace nash
