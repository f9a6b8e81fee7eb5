// nSGDA: p -= lr * g / ||g||2 per group, with per-group step sizes loadable from an Ada-nSGDA calibration.
#include <cmath>

#include "kernels/optim_step.h"
#include "nash/optim/balanced.h"

namespace nash {
namespace optim {

NSGDA::NSGDA(std::vector<ParamGroup> groups, NSGDAOptions opt)
    : FusedOptimizer(std::move(groups), opt.lr, "NSGDA", detail::StepRule::NSGDA, Moments::None, opt.fused, false),
      opt_(opt) {}

void NSGDA::fill_hyper(detail::MultiTensorStep& s) const { s.eps = 0.0; }

void NSGDA::apply_calibration(const Calibration& c, double scale) {
  NASH_CHECK(std::isfinite(scale) && scale >= 0, "NSGDA.apply_calibration: scale must be finite and >= 0, got ", scale);
  NASH_CHECK(c.names.size() == c.values.size(), "NSGDA.apply_calibration: the calibration has ", c.names.size(),
             " names but ", c.values.size(), " values");
  const std::size_t n = std::min(c.names.size(), groups_.size());
  for (std::size_t i = 0; i < n; ++i)
    NASH_CHECK(c.names[i] == group_name(i), "NSGDA.apply_calibration: group ", i, " is '", group_name(i),
               "' in the optimizer but '", c.names[i], "' in the calibration (the groups must match in order)");
  NASH_CHECK(c.names.size() == groups_.size(), "NSGDA.apply_calibration: the calibration has ", c.names.size(),
             " groups but the optimizer has ", groups_.size(), "; first unmatched: ",
             c.names.size() > groups_.size() ? "calibration group '" + c.names[n] + "'"
                                             : "optimizer group '" + group_name(n) + "'");
  for (std::size_t i = 0; i < n; ++i) {
    NASH_CHECK(std::isfinite(c.values[i]) && c.values[i] >= 0, "NSGDA.apply_calibration: group '", c.names[i],
               "' has step size ", c.values[i]);
    set_lr(i, scale * c.values[i]);
  }
}

void NSGDA::load_calibration(const std::string& path, double scale) {
  apply_calibration(optim::load_calibration(path), scale);
}

}  // namespace optim
}  // namespace nash
