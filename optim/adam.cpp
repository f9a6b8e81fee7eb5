// Adam (PyTorch's torch.optim.Adam: L2 weight decay, bias correction of both moments, eps after the square root):
// one multi-tensor kernel for the whole model (CPU or CUDA), or the per-tensor reference loops (CPU).
#include <cmath>
#include <cstdint>

#include "nash/core/autograd.h"
#include "nash/optim/optimizer.h"
#include "optim/fused_step.h"

namespace nash {
namespace optim {

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opt) : Optimizer(std::move(groups), opt.lr, "Adam"), opt_(opt) {
  NASH_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
             "Adam: betas must be in [0, 1), got beta1=", opt.beta1, " beta2=", opt.beta2);
  NASH_CHECK(opt.eps >= 0 && opt.weight_decay >= 0, "Adam: eps and weight_decay must be >= 0, got eps=", opt.eps,
             " weight_decay=", opt.weight_decay);
}

// The same update for every parameter in one multi-tensor kernel (kernels/optim_step.h), CPU or CUDA, or the
// per-tensor reference loops when not fused.
void Adam::step() {
  NoGradGuard ng;
  detail::MultiTensorStep s;
  s.rule = detail::StepRule::Adam;
  s.beta1 = opt_.beta1;
  s.beta2 = opt_.beta2;
  s.eps = opt_.eps;
  s.weight_decay = opt_.weight_decay;
  PackedStep packed = pack_step(
      s, groups_, exp_avg_, exp_avg_sq_, param_steps_, true, true,
      [this](const Tensor& p) { return step_grad(p, true); },
      [this, t_last = int64_t(-1), bc1 = 0.0, bc2 = 0.0](std::size_t gi, std::size_t, int64_t t,
                                                         detail::StepTensor& st) mutable {
        if (t != t_last) {  // the bias corrections, once per distinct step count (usually once per step)
          const double td = static_cast<double>(t);
          bc1 = 1.0 - std::pow(opt_.beta1, td);
          bc2 = std::sqrt(1.0 - std::pow(opt_.beta2, td));
          t_last = t;
        }
        st.step_size = groups_[gi].lr / bc1;
        st.denom_scale = bc2;
      },
      "Adam.step");
  s.step_norms = step_norms_buffer();
  run_step(s, opt_.fused || !s.device.is_cpu(), "Adam.step");
  finish_step(packed, param_steps_);
  publish_step_norms();
  ++steps_;
}

std::map<std::string, Tensor> Adam::state() const {
  std::map<std::string, Tensor> s;
  s["step_count"] = scalar_tensor(static_cast<double>(steps_), DType::Float64);
  for (std::size_t gi = 0; gi < exp_avg_.size(); ++gi)
    for (std::size_t pi = 0; pi < exp_avg_[gi].size(); ++pi) {
      if (!exp_avg_[gi][pi].defined()) continue;
      s[state_key(gi, pi, "exp_avg")] = exp_avg_[gi][pi].detach().clone();
      s[state_key(gi, pi, "exp_avg_sq")] = exp_avg_sq_[gi][pi].detach().clone();
      s[state_key(gi, pi, "step")] = scalar_tensor(static_cast<double>(param_steps_[gi][pi]), DType::Float64);
    }
  return s;
}

void Adam::load_state(const std::map<std::string, Tensor>& state) {
  const std::size_t ng = groups_.size();
  std::vector<std::vector<Tensor>> m(ng), v(ng);
  std::vector<std::vector<int64_t>> steps(ng);
  std::vector<std::vector<int>> seen(ng);  // bit 0: exp_avg, 1: exp_avg_sq, 2: step
  for (std::size_t gi = 0; gi < ng; ++gi) {
    std::size_t np = groups_[gi].params.size();
    m[gi].resize(np);
    v[gi].resize(np);
    steps[gi].assign(np, 0);
    seen[gi].assign(np, 0);
  }
  int64_t step_count = 0;
  for (const auto& kv : state) {
    if (kv.first == "step_count") {
      NASH_CHECK(kv.second.defined() && kv.second.numel() == 1, "Adam.load_state: 'step_count' must be a scalar");
      step_count = static_cast<int64_t>(kv.second.item());
      continue;
    }
    std::size_t gi, pi;
    std::string what;
    parse_state_key(kv.first, gi, pi, what);
    const Tensor& p = groups_[gi].params[pi];
    if (what == "exp_avg") {
      m[gi][pi] = loaded_tensor(kv.first, kv.second, p);
      seen[gi][pi] |= 1;
    } else if (what == "exp_avg_sq") {
      v[gi][pi] = loaded_tensor(kv.first, kv.second, p);
      seen[gi][pi] |= 2;
    } else if (what == "step") {
      NASH_CHECK(kv.second.defined() && kv.second.numel() == 1, "Adam.load_state: state '", kv.first,
                 "' must be a scalar, got ", kv.second.str());
      double s = kv.second.item();
      NASH_CHECK(s >= 1 && s == std::floor(s), "Adam.load_state: state '", kv.first,
                 "' must be a positive integer, got ", s);
      steps[gi][pi] = static_cast<int64_t>(s);
      seen[gi][pi] |= 4;
    } else {
      NASH_CHECK(false, "Adam.load_state: unknown state '", kv.first, "' (Adam keeps exp_avg, exp_avg_sq and step)");
    }
  }
  for (std::size_t gi = 0; gi < ng; ++gi)
    for (std::size_t pi = 0; pi < seen[gi].size(); ++pi)
      NASH_CHECK(seen[gi][pi] == 0 || seen[gi][pi] == 7, "Adam.load_state: parameter ", pi, " of group ", gi,
                 " needs all of ", state_key(gi, pi, "exp_avg"), ", ", state_key(gi, pi, "exp_avg_sq"), " and ",
                 state_key(gi, pi, "step"));
  exp_avg_ = std::move(m);
  exp_avg_sq_ = std::move(v);
  param_steps_ = std::move(steps);
  steps_ = step_count;
}

}  // namespace optim
}  // namespace nash
