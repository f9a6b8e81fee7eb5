// Learning-rate schedules: base lrs captured per group at the first step, then lr = base * factor(t).
#include "nash/optim/schedule.h"

#include <cmath>

namespace nash {
namespace optim {

void LRSchedule::rebase(const Optimizer& opt) {
  bound_ = &opt;
  base_.clear();
  for (const ParamGroup& g : opt.param_groups()) base_.push_back(g.lr);
}

void LRSchedule::step(Optimizer& opt) {
  if (!bound_) rebase(opt);
  NASH_CHECK(bound_ == &opt, "LRSchedule.step: this schedule drives another optimizer; use one schedule per optimizer");
  NASH_CHECK(opt.param_groups().size() == base_.size(), "LRSchedule.step: the optimizer has ",
             opt.param_groups().size(), " groups but the schedule recorded ", base_.size(), " base lrs");
  const double f = factor(t_);
  NASH_CHECK(std::isfinite(f) && f >= 0, "LRSchedule.step: factor(", t_, ") = ", f, " is not a finite value >= 0");
  for (std::size_t g = 0; g < base_.size(); ++g) opt.set_lr(g, base_[g] * f);
  ++t_;
}

LinearDecayLR::LinearDecayLR(int64_t total_steps) : total_(total_steps) {
  NASH_CHECK(total_steps > 0, "LinearDecayLR: total_steps must be > 0, got ", total_steps);
}

double LinearDecayLR::factor(int64_t t) const {
  if (t >= total_) return 0.0;
  return 1.0 - static_cast<double>(t) / static_cast<double>(total_);
}

StepLR::StepLR(int64_t step_size, double gamma) : step_size_(step_size), gamma_(gamma) {
  NASH_CHECK(step_size > 0, "StepLR: step_size must be > 0, got ", step_size);
  NASH_CHECK(std::isfinite(gamma) && gamma >= 0, "StepLR: gamma must be finite and >= 0, got ", gamma);
}

double StepLR::factor(int64_t t) const { return std::pow(gamma_, static_cast<double>(t / step_size_)); }

}  // namespace optim
}  // namespace nash
