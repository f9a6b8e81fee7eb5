// Learning-rate schedules: a factor of optimizer step t applied to every group's base lr (constant, linear decay
// to zero, step decay).
#pragma once
#include <cstdint>
#include <vector>

#include "nash/optim/optimizer.h"

namespace nash {
namespace optim {

// Call step(opt) before each optimizer step: optimizer step t (0-based) then runs with lr = base_lr * factor(t) in
// every group. The base lrs are the groups' lrs at the first call (per group, so per-layer step sizes such as a
// loaded calibration keep their ratios). A schedule drives one optimizer.
class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual double factor(int64_t t) const = 0;
  void step(Optimizer& opt);
  // Steps taken so far (the t the next step(opt) applies).
  int64_t steps() const { return t_; }
  const std::vector<double>& base_lrs() const { return base_; }
  // Re-reads the base lrs from the optimizer (e.g. after loading a calibration), keeping t.
  void rebase(const Optimizer& opt);

 private:
  const Optimizer* bound_ = nullptr;
  std::vector<double> base_;
  int64_t t_ = 0;
};

class ConstantLR : public LRSchedule {
 public:
  double factor(int64_t) const override { return 1.0; }
};

// factor(t) = max(0, 1 - t / total_steps): reaches zero at step total_steps (WGAN-GP's schedule).
class LinearDecayLR : public LRSchedule {
 public:
  explicit LinearDecayLR(int64_t total_steps);
  double factor(int64_t t) const override;

 private:
  int64_t total_;
};

// factor(t) = gamma ^ floor(t / step_size).
class StepLR : public LRSchedule {
 public:
  StepLR(int64_t step_size, double gamma);
  double factor(int64_t t) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

}  // namespace optim
}  // namespace nash
