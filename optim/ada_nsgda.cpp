// Ada-nSGDA (Adam's step norm on the gradient's direction, per group) and the Adam oracle shared with AdaDir;
// Ada-nSGDA's per-group mean ||A||2 is the calibration nSGDA loads.
#include <cmath>

#include "kernels/optim_step.h"
#include "nash/optim/balanced.h"

namespace nash {
namespace optim {

AdamGraft::AdamGraft(std::vector<ParamGroup> groups, AdaGraftOptions opt, const char* name, detail::StepRule rule)
    : FusedOptimizer(std::move(groups), opt.lr, name, rule, Moments::Both, opt.fused, false), opt_(opt) {
  NASH_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1, name_,
             ": betas must be in [0, 1), got beta1=", opt.beta1, " beta2=", opt.beta2);
  NASH_CHECK(opt.eps >= 0, name_, ": eps must be >= 0, got ", opt.eps);
}

void AdamGraft::tensor_scalars(std::size_t, std::size_t, int64_t t, double& step_size, double& denom_scale,
                               double& oracle_scale) const {
  step_size = 0.0;  // the group's lr enters through the group scale
  denom_scale = std::sqrt(1.0 - std::pow(opt_.beta2, static_cast<double>(t)));
  oracle_scale = 1.0 / (1.0 - std::pow(opt_.beta1, static_cast<double>(t)));
}

void AdamGraft::fill_hyper(detail::MultiTensorStep& s) const {
  s.beta1 = opt_.beta1;
  s.beta2 = opt_.beta2;
  s.eps = opt_.eps;
}

AdaNSGDA::AdaNSGDA(std::vector<ParamGroup> groups, AdaGraftOptions opt)
    : AdamGraft(std::move(groups), opt, "AdaNSGDA", detail::StepRule::AdaNSGDA) {}

Calibration AdaNSGDA::calibration() const {
  Calibration c;
  c.steps = steps_;
  const std::vector<double> sums = oracle_norm_sums();
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    NASH_CHECK(group_steps_[g] > 0, "AdaNSGDA.calibration: group ", g, " ('", group_name(g),
               "') has not taken a step (no gradient reached it), so it has no mean ||A||");
    c.names.push_back(group_name(g));
    c.values.push_back(sums[g] / static_cast<double>(group_steps_[g]));
  }
  return c;
}

void AdaNSGDA::save_calibration(const std::string& path) const { optim::save_calibration(path, calibration()); }

}  // namespace optim
}  // namespace nash
