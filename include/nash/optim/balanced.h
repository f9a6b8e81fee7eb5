// Balanced optimizers for GAN players: LREQAdam (ALAE's equalized-learning-rate Adam), nSGDA (normalized
// gradients), Ada-nSGDA (Adam's magnitude grafted onto the gradient's direction) and AdaDir (the reverse graft),
// over layer-wise or global parameter groups, each step one multi-tensor kernel for the whole model.
//
// Sign convention: "Dissecting adaptive methods in GANs" writes the updates with ∓ (the discriminator ascends, the
// generator descends). nash trains both players by minimising their own losses, so every rule here subtracts
// its step: Y <- Y - step. A maximising player minimises the negated objective.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nash/optim/calibration.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace detail {
struct MultiTensorStep;
enum class StepRule : int32_t;
}  // namespace detail

namespace optim {

// The common machinery of the optimizers below: per-parameter Adam moments (when the rule has them), per-group
// norm statistics, and one step over the whole model through the multi-tensor kernel (fused) or the per-tensor
// loops (CPU only; the reference the kernels are tested against).
class FusedOptimizer : public Optimizer {
 public:
  void step() override;
  bool can_record_step_norms() const override { return true; }
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  // Each group's ||g||2 (and ||A||2, Adam's oracle, for the Adam-oracle rules) at its last step; 0 before.
  std::vector<double> grad_norms() const { return stat(0); }
  std::vector<double> oracle_norms() const { return stat(1); }
  // "name" of group i, or "group<i>" when unnamed.
  std::string group_name(std::size_t i) const;
  bool fused() const { return fused_; }

 protected:
  enum class Moments { None, SecondOnly, Both };
  FusedOptimizer(std::vector<ParamGroup> groups, double default_lr, const char* name, detail::StepRule rule,
                 Moments moments, bool fused, bool takes_coefficients);
  // Fills the per-tensor scalars of the rule for parameter pi of group gi at its step t (1-based).
  virtual void tensor_scalars(std::size_t gi, std::size_t pi, int64_t t, double& step_size, double& denom_scale,
                              double& oracle_scale) const = 0;
  virtual void fill_hyper(detail::MultiTensorStep& s) const = 0;
  std::vector<double> stat(int which) const;
  // Calibration: the running sum of ||A||2 and the number of steps recorded, per group.
  std::vector<double> oracle_norm_sums() const { return stat(2); }
  const std::vector<int64_t>& group_steps() const { return group_steps_; }

  detail::StepRule rule_;
  Moments moments_;
  bool fused_;
  std::vector<std::vector<Tensor>> exp_avg_, exp_avg_sq_;
  std::vector<std::vector<int64_t>> param_steps_;
  Tensor stats_;                      // float64 [3 * groups] on the parameters' device (see kernels/optim_step.h)
  std::vector<int64_t> group_steps_;  // steps in which the group had a gradient
};

// ALAE's LREQAdam as the critique (lreq-adam-critique.txt) describes it, not ProGAN's plain Adam: beta1 must be 0
// (there is no first moment), only the second moment is bias-corrected, and each parameter's step is multiplied by
// its equalization coefficient c (ParamGroup::coefficients, default 1; the equalized layers' runtime scale):
//   v = b2 v + (1 - b2) d²,  d = g + wd p;   p -= lr * c * sqrt(1 - b2^t) * d / (sqrt(v) + eps)
// eps sits on the uncorrected sqrt(v) as in ALAE's code (equivalently eps / sqrt(1 - b2^t) on the corrected one).
struct LREQAdamOptions {
  double lr = 0.002;
  double beta1 = 0.0;  // anything else is an error
  double beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool fused = true;
};

class LREQAdam : public FusedOptimizer {
 public:
  LREQAdam(std::vector<ParamGroup> groups, LREQAdamOptions opt = {});
  LREQAdam(const std::vector<Tensor>& params, LREQAdamOptions opt = {})
      : LREQAdam(ParamGroup::global(params, ""), opt) {}
  const LREQAdamOptions& options() const { return opt_; }

 protected:
  void tensor_scalars(std::size_t gi, std::size_t pi, int64_t t, double& step_size, double& denom_scale,
                      double& oracle_scale) const override;
  void fill_hyper(detail::MultiTensorStep& s) const override;

 private:
  LREQAdamOptions opt_;
};

// nSGDA, eq. 6 of "Dissecting adaptive methods in GANs": Y <- Y - lr * g / ||g||2 per group (a group with a zero
// gradient does not move). Layer-wise groups by default; Grouping::Global takes one norm over the whole model.
// Per-group constant step sizes come from the groups' lr, or from an Ada-nSGDA calibration (load_calibration).
struct NSGDAOptions {
  double lr = 0.01;
  Grouping grouping = Grouping::LayerWise;  // for the parameter-list constructor
  bool fused = true;
};

class NSGDA : public FusedOptimizer {
 public:
  NSGDA(std::vector<ParamGroup> groups, NSGDAOptions opt = {});
  NSGDA(const std::vector<Tensor>& params, NSGDAOptions opt = {})
      : NSGDA(ParamGroup::grouped(params, opt.grouping), opt) {}
  // Sets group i's lr to scale * c.values[i] (the paper's per-layer constant step sizes, Fig. 5): scale = 1 takes
  // the mean ||A|| itself; the Ada-nSGDA run's lr reproduces that run's mean step norm per group. The groups must
  // match c's count and names in order; errors name the first mismatch.
  void apply_calibration(const Calibration& c, double scale = 1.0);
  void load_calibration(const std::string& path, double scale = 1.0);
  const NSGDAOptions& options() const { return opt_; }

 protected:
  void tensor_scalars(std::size_t, std::size_t, int64_t, double&, double&, double&) const override {}
  void fill_hyper(detail::MultiTensorStep& s) const override;

 private:
  NSGDAOptions opt_;
};

// The Adam oracle A = m̂ / (sqrt(v̂) + eps) of the grafted rules is nash Adam's (m, v with (1 - beta) factors and
// both bias corrections; the paper's Algorithm 1 omits them, which rescales ||A|| but not its direction), so
// lr * A is exactly nash's Adam step and the grafts have its norm or its direction.
struct AdaGraftOptions {
  double lr = 1e-3;
  double beta1 = 0.0;  // the paper's setting
  double beta2 = 0.99;
  double eps = 1e-8;  // in A's denominator and in the graft's norm denominator, as in eq. 3
  Grouping grouping = Grouping::LayerWise;
  bool fused = true;
};

// Shared by the two grafts: Adam's moments and oracle.
class AdamGraft : public FusedOptimizer {
 public:
  const AdaGraftOptions& options() const { return opt_; }

 protected:
  AdamGraft(std::vector<ParamGroup> groups, AdaGraftOptions opt, const char* name, detail::StepRule rule);
  void tensor_scalars(std::size_t gi, std::size_t pi, int64_t t, double& step_size, double& denom_scale,
                      double& oracle_scale) const override;
  void fill_hyper(detail::MultiTensorStep& s) const override;
  AdaGraftOptions opt_;
};

// Ada-nSGDA, eq. 3: Y <- Y - lr * ||A||2 * g / (||g||2 + eps) per group: Adam's step norm, the gradient's
// direction. Records each group's mean ||A||2 over the run: calibration() / save_calibration() give nSGDA its
// constant per-layer step sizes (the paper's Fig. 5 procedure for StyleGAN2).
class AdaNSGDA : public AdamGraft {
 public:
  AdaNSGDA(std::vector<ParamGroup> groups, AdaGraftOptions opt = {});
  AdaNSGDA(const std::vector<Tensor>& params, AdaGraftOptions opt = {})
      : AdaNSGDA(ParamGroup::grouped(params, opt.grouping), opt) {}
  // Mean ||A||2 per group over the steps in which the group had a gradient (errors when a group has none).
  Calibration calibration() const;
  void save_calibration(const std::string& path) const;
};

// AdaDir: Y <- Y - lr * ||g||2 * A / (||A||2 + eps) per group: SGD's magnitude on Adam's direction.
class AdaDir : public AdamGraft {
 public:
  AdaDir(std::vector<ParamGroup> groups, AdaGraftOptions opt = {});
  AdaDir(const std::vector<Tensor>& params, AdaGraftOptions opt = {})
      : AdaDir(ParamGroup::grouped(params, opt.grouping), opt) {}
};

}  // namespace optim
}  // namespace nash
