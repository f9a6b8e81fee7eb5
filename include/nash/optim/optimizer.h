// Optimizers over parameter groups: the base class, SGD (momentum) and Adam (bias-corrected, beta1 = 0 allowed).
// Every nash optimizer minimises its own loss (p -= step); a GAN's players each minimise theirs.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace optim {

// How a parameter list becomes groups: one group per tensor ("layer-wise", the default of the norm-based
// optimizers) or one group for the whole model ("global"). Norm-based rules take one norm per group.
enum class Grouping { LayerWise, Global };

// A set of parameters sharing hyper-parameters; options not set use the optimizer's defaults.
struct ParamGroup {
  std::vector<Tensor> params;
  double lr = -1;  // < 0: the optimizer's default
  std::string name;
  // Per-parameter equalization coefficients (LREQAdam multiplies each parameter's step by its own); empty = all 1.
  std::vector<double> coefficients;

  // One group per tensor, named "param<i>" (or by the given names, e.g. a module's named_parameters()).
  static std::vector<ParamGroup> layerwise(const std::vector<Tensor>& params);
  static std::vector<ParamGroup> layerwise(const std::vector<std::pair<std::string, Tensor>>& named);
  // One group holding every tensor.
  static std::vector<ParamGroup> global(const std::vector<Tensor>& params, std::string name = "global");
  static std::vector<ParamGroup> global(const std::vector<std::pair<std::string, Tensor>>& named,
                                        std::string name = "global");
  static std::vector<ParamGroup> grouped(const std::vector<Tensor>& params, Grouping grouping);
};

// What one step did, per parameter group: sums of squares of the gradient, of the parameters before the step and
// of the update (Y_after - Y_before), as the multi-tensor step kernels compute them while they write the
// parameters (no extra passes). Only parameters that had a gradient count.
struct StepNorms {
  std::vector<double> grad_sq, param_sq, update_sq;  // one entry per group (0 for a group without gradients)
  double grad_norm() const;    // ‖g‖₂ over every group
  double param_norm() const;   // ‖Y‖₂ before the step
  double update_norm() const;  // ‖ΔY‖₂
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Applies one update from the parameters' current .grad (parameters without a grad are skipped).
  virtual void step() = 0;
  void zero_grad();
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  double lr(std::size_t group = 0) const { return groups_.at(group).lr; }
  void set_lr(double lr);                  // every group
  void set_lr(std::size_t group, double lr);
  int64_t step_count() const { return steps_; }
  // Per-parameter state tensors ("exp_avg", "momentum_buffer", ...), keyed by group and index, for checkpoints.
  virtual std::map<std::string, Tensor> state() const { return {}; }
  virtual void load_state(const std::map<std::string, Tensor>& state) {}

  // Step norms: optimizers whose step runs through the multi-tensor kernels (SGD, Adam, the balanced ones) can
  // report StepNorms of each step when asked to; recording costs a few flops per element and no extra pass.
  virtual bool can_record_step_norms() const { return false; }
  void record_step_norms(bool on);
  // The norms of the last step(), or null when it recorded none (not asked, not supported, or nothing stepped).
  const StepNorms* last_step_norms() const { return norms_step_ == steps_ && steps_ > 0 ? &norms_ : nullptr; }

 protected:
  Optimizer(std::vector<ParamGroup> groups, double default_lr, const char* name);
  // Helpers for subclasses' step(): the gradient of p as a contiguous tensor matching p (undefined when p has
  // none), after checking that p is a contiguous tensor the update loops can write through, on the CPU unless
  // any_device (the multi-tensor kernels).
  Tensor step_grad(const Tensor& p, bool any_device = false) const;
  // "group{g}.param{i}.{what}", the state key of one parameter's state tensor.
  static std::string state_key(std::size_t group, std::size_t param, const std::string& what);
  // Splits a state key into its parts, checking the group and parameter exist (errors name the key).
  void parse_state_key(const std::string& key, std::size_t& group, std::size_t& param, std::string& what) const;
  // A private copy of a loaded state tensor with like's shape, dtype and device (errors name the key).
  Tensor loaded_tensor(const std::string& key, const Tensor& src, const Tensor& like) const;
  // For subclasses' step(): a zeroed host buffer of 3 values per group for MultiTensorStep::step_norms when
  // recording (else null), and, after the step, turning it into last_step_norms() for the step about to count.
  double* step_norms_buffer();
  void publish_step_norms();
  std::string name_;
  std::vector<ParamGroup> groups_;
  int64_t steps_ = 0;

 private:
  bool record_norms_ = false;
  std::vector<double> norms_buf_;
  StepNorms norms_;
  int64_t norms_step_ = -1;  // the step count (after its ++) whose norms norms_ holds
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  // One multi-tensor kernel for all parameters; false: the per-tensor loops (the CPU reference). Parameters on a
  // CUDA device always take the multi-tensor kernel.
  bool fused = true;
};

// p -= lr * (g + wd p), with heavy-ball momentum buf = momentum * buf + (1 - dampening) * g (PyTorch's form: the
// buffer starts at g + wd p). Runs on the CPU and CUDA through the multi-tensor step.
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions opt = {});
  SGD(const std::vector<Tensor>& params, SGDOptions opt = {}) : SGD(ParamGroup::global(params, ""), opt) {}
  void step() override;
  bool can_record_step_norms() const override { return true; }
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  const SGDOptions& options() const { return opt_; }

 private:
  SGDOptions opt_;
  std::vector<std::vector<Tensor>> momentum_, unused_;  // per group, per param (unused_: no second moment)
  std::vector<std::vector<int64_t>> param_steps_;      // steps each parameter took (its buffer starts at step 1)
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2 added to the gradient (Adam, not AdamW)
  // One multi-tensor kernel for all parameters; false: the per-tensor loops (the CPU reference). Parameters on a
  // CUDA device always take the multi-tensor kernel.
  bool fused = true;
};

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions opt = {});
  Adam(const std::vector<Tensor>& params, AdamOptions opt = {}) : Adam(ParamGroup::global(params, ""), opt) {}
  void step() override;
  bool can_record_step_norms() const override { return true; }
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  const AdamOptions& options() const { return opt_; }

 private:
  AdamOptions opt_;
  std::vector<std::vector<Tensor>> exp_avg_, exp_avg_sq_;
  std::vector<std::vector<int64_t>> param_steps_;
};

}  // namespace optim
}  // namespace nash
