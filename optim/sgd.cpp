// SGD with PyTorch's momentum, dampening, Nesterov and L2 weight decay, through the multi-tensor step (CPU or CUDA).
#include <cstdint>

#include "nash/core/autograd.h"
#include "nash/optim/optimizer.h"
#include "optim/fused_step.h"

namespace nash {
namespace optim {

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opt) : Optimizer(std::move(groups), opt.lr, "SGD"), opt_(opt) {
  NASH_CHECK(opt.momentum >= 0 && opt.weight_decay >= 0, "SGD: momentum and weight_decay must be >= 0, got momentum=",
             opt.momentum, " weight_decay=", opt.weight_decay);
  NASH_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
             "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum=", opt.momentum,
             " dampening=", opt.dampening);
}

void SGD::step() {
  NoGradGuard ng;
  detail::MultiTensorStep s;
  s.rule = detail::StepRule::SGD;
  s.beta1 = opt_.momentum;
  s.weight_decay = opt_.weight_decay;
  s.nesterov = opt_.nesterov;
  PackedStep packed = pack_step(
      s, groups_, momentum_, unused_, param_steps_, opt_.momentum != 0, false,
      [this](const Tensor& p) { return step_grad(p, true); },
      [this](std::size_t gi, std::size_t, int64_t t, detail::StepTensor& st) {
        st.step_size = groups_[gi].lr;
        st.momentum_decay = t == 1 ? 0.0 : opt_.momentum;
        st.grad_weight = t == 1 ? 1.0 : 1.0 - opt_.dampening;
      },
      "SGD.step");
  s.step_norms = step_norms_buffer();
  run_step(s, opt_.fused || !s.device.is_cpu(), "SGD.step");
  finish_step(packed, param_steps_);
  publish_step_norms();
  ++steps_;
}

std::map<std::string, Tensor> SGD::state() const {
  std::map<std::string, Tensor> s;
  s["step_count"] = scalar_tensor(static_cast<double>(steps_), DType::Float64);
  for (std::size_t gi = 0; gi < momentum_.size(); ++gi)
    for (std::size_t pi = 0; pi < momentum_[gi].size(); ++pi)
      if (momentum_[gi][pi].defined()) s[state_key(gi, pi, "momentum_buffer")] = momentum_[gi][pi].detach().clone();
  return s;
}

void SGD::load_state(const std::map<std::string, Tensor>& state) {
  std::vector<std::vector<Tensor>> loaded(groups_.size());
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) loaded[gi].resize(groups_[gi].params.size());
  int64_t steps = 0;
  for (const auto& kv : state) {
    if (kv.first == "step_count") {
      NASH_CHECK(kv.second.defined() && kv.second.numel() == 1, "SGD.load_state: 'step_count' must be a scalar");
      steps = static_cast<int64_t>(kv.second.item());
      continue;
    }
    std::size_t gi, pi;
    std::string what;
    parse_state_key(kv.first, gi, pi, what);
    NASH_CHECK(what == "momentum_buffer", "SGD.load_state: unknown state '", kv.first, "' (SGD keeps momentum_buffer)");
    loaded[gi][pi] = loaded_tensor(kv.first, kv.second, groups_[gi].params[pi]);
  }
  // A loaded buffer has taken at least one step: the next one moves it rather than starting it afresh.
  param_steps_.assign(groups_.size(), {});
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    param_steps_[gi].assign(groups_[gi].params.size(), 0);
    for (std::size_t pi = 0; pi < loaded[gi].size(); ++pi) param_steps_[gi][pi] = loaded[gi][pi].defined() ? 1 : 0;
  }
  momentum_ = std::move(loaded);
  steps_ = steps;
}

}  // namespace optim
}  // namespace nash
