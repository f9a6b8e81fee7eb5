// SGD with PyTorch's momentum, dampening, Nesterov and L2 weight decay: one fused in-place loop per parameter.
#include <cstdint>

#include "nash/core/autograd.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace optim {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

// p -= lr * d, with d = g + wd p, then through the momentum buffer (seeded with d on its first step).
template <class T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SGDOptions& o, double lr_d, bool first) {
  const T lr = static_cast<T>(lr_d), wd = static_cast<T>(o.weight_decay), mom = static_cast<T>(o.momentum);
  const T damp = static_cast<T>(1.0 - o.dampening);
  const bool nesterov = o.nesterov;
  if (!buf) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i] + wd * p[i];
    T b = first ? d : mom * buf[i] + damp * d;
    buf[i] = b;
    p[i] -= lr * (nesterov ? d + mom * b : b);
  }
}

}  // namespace

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opt) : Optimizer(std::move(groups), opt.lr, "SGD"), opt_(opt) {
  NASH_CHECK(opt.momentum >= 0 && opt.weight_decay >= 0, "SGD: momentum and weight_decay must be >= 0, got momentum=",
             opt.momentum, " weight_decay=", opt.weight_decay);
  NASH_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
             "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum=", opt.momentum,
             " dampening=", opt.dampening);
}

void SGD::step() {
  NoGradGuard ng;
  momentum_.resize(groups_.size());
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& group = groups_[gi];
    momentum_[gi].resize(group.params.size());
    for (std::size_t pi = 0; pi < group.params.size(); ++pi) {
      Tensor& p = group.params[pi];
      Tensor g = step_grad(p);
      if (!g.defined()) continue;
      Tensor& buf = momentum_[gi][pi];
      bool first = false;
      if (opt_.momentum != 0 && !buf.defined()) {
        buf = empty(p.shape(), p.dtype(), p.device());
        first = true;
      }
      if (p.dtype() == DType::Float32)
        sgd_update(p.data_ptr<float>(), g.data_ptr<float>(), buf.defined() ? buf.data_ptr<float>() : nullptr,
                   p.numel(), opt_, group.lr, first);
      else
        sgd_update(p.data_ptr<double>(), g.data_ptr<double>(), buf.defined() ? buf.data_ptr<double>() : nullptr,
                   p.numel(), opt_, group.lr, first);
      p.impl()->storage->bump_version();
    }
  }
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
  momentum_ = std::move(loaded);
  steps_ = steps;
}

}  // namespace optim
}  // namespace nash
