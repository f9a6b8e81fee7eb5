// The multi-tensor step glue: dispatch to a backend's kernel, the per-tensor reference loops (CPU), and the
// FusedOptimizer base (moment state, per-group norm statistics, checkpoint state) of the balanced optimizers.
#include "optim/fused_step.h"

#include <cmath>

#include "core/backend.h"
#include "nash/core/autograd.h"
#include "nash/optim/balanced.h"

namespace nash {
namespace optim {

namespace {

using detail::MomentCoeffs;
using detail::MultiTensorStep;
using detail::StepRule;
using detail::StepTensor;

// The step's norms of one tensor, accumulated serially (the reference for the kernels' chunked sums).
struct RefNorms {
  double* out;  // MultiTensorStep::step_norms, or null
  template <class T>
  void add(int32_t group, T g, T p0, T p1) {
    if (!out) return;
    const double d = static_cast<double>(p1) - static_cast<double>(p0);
    out[3 * group] += static_cast<double>(g) * g;
    out[3 * group + 1] += static_cast<double>(p0) * p0;
    out[3 * group + 2] += d * d;
  }
};

// The unfused composition: each tensor in turn, whole-tensor serial loops, group norms summed tensor by tensor.
template <class T>
void per_tensor_step(const MultiTensorStep& s) {
  const MomentCoeffs<T> c = MomentCoeffs<T>::make(s);
  const std::size_t nt = s.tensors.size();
  RefNorms norms{s.step_norms};
  if (s.step_norms)
    for (const StepTensor& st : s.tensors)
      for (int k = 0; k < 3; ++k) s.step_norms[3 * st.group + k] = 0;
  if (s.rule == StepRule::Adam || s.rule == StepRule::SGD) {
    for (const StepTensor& st : s.tensors) {
      T *p = static_cast<T*>(st.param), *m = static_cast<T*>(st.exp_avg), *v = static_cast<T*>(st.exp_avg_sq);
      const T* g = static_cast<const T*>(st.grad);
      const T step = static_cast<T>(st.step_size), ds = static_cast<T>(st.denom_scale);
      for (int64_t i = 0; i < st.numel; ++i) {
        const T p0 = p[i];
        T d = g[i] + c.wd * p0;
        if (s.rule == StepRule::SGD) {
          T b = m ? m[i] : T(0);
          T dir = detail::sgd_direction(m != nullptr, s.nesterov, static_cast<T>(s.beta1),
                                        static_cast<T>(st.momentum_decay), static_cast<T>(st.grad_weight), d, b);
          if (m) m[i] = b;
          p[i] = p0 - step * dir;
        } else {
          T mi = m ? detail::first_moment(c, m[i], d) : d;
          T vi = detail::second_moment(c, v[i], d);
          if (m) m[i] = mi;
          v[i] = vi;
          p[i] = p0 - step * detail::adam_ratio(mi, vi, ds, c.eps);
        }
        norms.add(st.group, g[i], p0, p[i]);
      }
    }
    return;
  }
  for (std::size_t first = 0; first < nt;) {
    const int32_t group = s.tensors[first].group;
    std::size_t end = first;
    while (end < nt && s.tensors[end].group == group) ++end;
    double sg = 0, sa = 0;
    for (std::size_t k = first; k < end; ++k) {
      const StepTensor& st = s.tensors[k];
      const T* g = static_cast<const T*>(st.grad);
      T *m = static_cast<T*>(st.exp_avg), *v = static_cast<T*>(st.exp_avg_sq);
      for (int64_t i = 0; i < st.numel; ++i) {
        sg += static_cast<double>(g[i]) * g[i];
        if (s.rule == StepRule::NSGDA) continue;
        m[i] = detail::first_moment(c, m[i], g[i]);
        v[i] = detail::second_moment(c, v[i], g[i]);
        T a = static_cast<T>(st.oracle_scale) * detail::adam_ratio(m[i], v[i], static_cast<T>(st.denom_scale), c.eps);
        sa += static_cast<double>(a) * a;
      }
    }
    const double gn = std::sqrt(sg), an = std::sqrt(sa);
    const T scale = static_cast<T>(detail::group_scale(s.rule, s.group_lr[group], gn, an, s.eps));
    if (s.group_stats) {
      s.group_stats[3 * group] = gn;
      s.group_stats[3 * group + 1] = an;
      s.group_stats[3 * group + 2] += an;
    }
    for (std::size_t k = first; k < end; ++k) {
      const StepTensor& st = s.tensors[k];
      T* p = static_cast<T*>(st.param);
      const T* g = static_cast<const T*>(st.grad);
      const T *m = static_cast<const T*>(st.exp_avg), *v = static_cast<const T*>(st.exp_avg_sq);
      const T os = static_cast<T>(st.oracle_scale), ds = static_cast<T>(st.denom_scale);
      for (int64_t i = 0; i < st.numel; ++i) {
        const T p0 = p[i];
        p[i] = p0 - scale * (s.rule == StepRule::AdaDir ? os * detail::adam_ratio(m[i], v[i], ds, c.eps) : g[i]);
        norms.add(group, g[i], p0, p[i]);
      }
    }
    first = end;
  }
}

}  // namespace

void run_step(const MultiTensorStep& s, bool fused, const char* op) {
  for (std::size_t k = 0; k < s.tensors.size(); ++k) {
    const int32_t g = s.tensors[k].group;
    NASH_CHECK(g >= 0 && static_cast<std::size_t>(g) < s.group_lr.size(), op, ": tensor ", k, " names group ", g,
               " of ", s.group_lr.size());
    NASH_CHECK(k == 0 || s.tensors[k - 1].group <= g, op, ": tensors must be ordered by group (tensor ", k,
               " is in group ", g, " after group ", s.tensors[k - 1].group, ")");
  }
  NASH_CHECK(s.device.is_cpu() || s.dtype == DType::Float32, op, ": CUDA kernels are float32-only, got ",
             dtype_name(s.dtype), " parameters on ", s.device.str(), " (use float64 on the CPU)");
  if (s.tensors.empty()) return;
  if (fused) {
    detail::call(op, s.device, &detail::Backend::multi_tensor_step, s);
    return;
  }
  NASH_CHECK(s.device.is_cpu(), op, ": the per-tensor reference loops run on the CPU only (parameters on ",
             s.device.str(), ")");
  if (s.dtype == DType::Float32)
    per_tensor_step<float>(s);
  else
    per_tensor_step<double>(s);
}

PackedStep pack_step(MultiTensorStep& s, std::vector<ParamGroup>& groups, std::vector<std::vector<Tensor>>& exp_avg,
                     std::vector<std::vector<Tensor>>& exp_avg_sq, std::vector<std::vector<int64_t>>& param_steps,
                     bool first_moment, bool second_moment, const std::function<Tensor(const Tensor&)>& grad_of,
                     const std::function<void(std::size_t, std::size_t, int64_t, StepTensor&)>& scalars,
                     const char* op) {
  PackedStep packed;
  packed.group_active.assign(groups.size(), false);
  std::size_t total = 0;
  for (const ParamGroup& group : groups) total += group.params.size();
  s.tensors.reserve(total);
  packed.grads.reserve(total);
  packed.stepped.reserve(total);
  packed.where.reserve(total);
  exp_avg.resize(groups.size());
  exp_avg_sq.resize(groups.size());
  param_steps.resize(groups.size());
  // A moment buffer for p: created on first use, moved along when the model moved since the last step.
  auto moment = [](Tensor& m, const Tensor& p) {
    if (!m.defined()) m = zeros(p.shape(), p.dtype(), p.device());
    if (m.device() != p.device()) m = m.to(p.device());
    return m.raw_data();
  };
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    ParamGroup& group = groups[gi];
    s.group_lr.push_back(group.lr);
    exp_avg[gi].resize(group.params.size());
    exp_avg_sq[gi].resize(group.params.size());
    param_steps[gi].resize(group.params.size(), 0);
    for (std::size_t pi = 0; pi < group.params.size(); ++pi) {
      Tensor& p = group.params[pi];
      Tensor g = grad_of(p);
      if (!g.defined()) continue;
      if (packed.stepped.empty()) {
        s.device = p.device();
        s.dtype = p.dtype();
        NASH_CHECK(s.device.is_cpu() || s.dtype == DType::Float32, op, ": CUDA kernels are float32-only, got ", p.str(),
                   " (use float64 on the CPU)");
      }
      NASH_CHECK(p.device() == s.device && p.dtype() == s.dtype, op, ": parameter ", pi, " of group ", gi, " is ",
                 p.str(), " but earlier parameters are ", dtype_name(s.dtype), " on ", s.device.str(),
                 "; one step runs on one device and dtype");
      StepTensor st;
      st.param = p.raw_data();
      st.grad = g.raw_data();
      st.numel = p.numel();
      st.group = static_cast<int32_t>(gi);
      if (first_moment) st.exp_avg = moment(exp_avg[gi][pi], p);
      if (second_moment) st.exp_avg_sq = moment(exp_avg_sq[gi][pi], p);
      scalars(gi, pi, param_steps[gi][pi] + 1, st);
      s.tensors.push_back(st);
      packed.grads.push_back(g);
      packed.stepped.push_back(p);
      packed.where.emplace_back(gi, pi);
      packed.group_active[gi] = true;
    }
  }
  return packed;
}

void finish_step(PackedStep& packed, std::vector<std::vector<int64_t>>& param_steps) {
  for (const auto& w : packed.where) ++param_steps[w.first][w.second];
  for (Tensor& p : packed.stepped) p.impl()->storage->bump_version();
}

// ---- FusedOptimizer ------------------------------------------------------------------------------------------

FusedOptimizer::FusedOptimizer(std::vector<ParamGroup> groups, double default_lr, const char* name, StepRule rule,
                               Moments moments, bool fused, bool takes_coefficients)
    : Optimizer(std::move(groups), default_lr, name), rule_(rule), moments_(moments), fused_(fused) {
  for (std::size_t g = 0; g < groups_.size(); ++g)
    NASH_CHECK(takes_coefficients || groups_[g].coefficients.empty(), name_, ": group ", g,
               " has equalization coefficients, which only LREQAdam uses");
  group_steps_.assign(groups_.size(), 0);
}

std::string FusedOptimizer::group_name(std::size_t i) const {
  NASH_CHECK(i < groups_.size(), name_, ".group_name: group ", i, " out of range (", groups_.size(), " groups)");
  return groups_[i].name.empty() ? "group" + std::to_string(i) : groups_[i].name;
}

std::vector<double> FusedOptimizer::stat(int which) const {
  std::vector<double> out(groups_.size(), 0.0);
  if (!stats_.defined()) return out;
  std::vector<double> all = stats_.to_vector<double>();
  for (std::size_t g = 0; g < out.size(); ++g) out[g] = all[3 * g + which];
  return out;
}

void FusedOptimizer::step() {
  NoGradGuard ng;
  const std::string op = name_ + ".step";
  const std::size_t ngroups = groups_.size();
  MultiTensorStep s;
  s.rule = rule_;
  fill_hyper(s);
  PackedStep packed = pack_step(
      s, groups_, exp_avg_, exp_avg_sq_, param_steps_, moments_ == Moments::Both, moments_ != Moments::None,
      [this](const Tensor& p) { return step_grad(p, true); },
      [this](std::size_t gi, std::size_t pi, int64_t t, StepTensor& st) {
        tensor_scalars(gi, pi, t, st.step_size, st.denom_scale, st.oracle_scale);
      },
      op.c_str());
  if (!packed.stepped.empty() && detail::rule_has_norms(rule_)) {
    if (!stats_.defined())
      stats_ = zeros({static_cast<int64_t>(3 * ngroups)}, DType::Float64).to(s.device);
    else if (stats_.device() != s.device)
      stats_ = stats_.to(s.device);
    s.group_stats = stats_.data_ptr<double>();
  }
  s.step_norms = step_norms_buffer();
  run_step(s, fused_ || !s.device.is_cpu(), op.c_str());
  finish_step(packed, param_steps_);
  publish_step_norms();
  for (std::size_t gi = 0; gi < ngroups; ++gi) group_steps_[gi] += packed.group_active[gi] ? 1 : 0;
  ++steps_;
}

std::map<std::string, Tensor> FusedOptimizer::state() const {
  std::map<std::string, Tensor> st;
  st["step_count"] = scalar_tensor(static_cast<double>(steps_), DType::Float64);
  for (std::size_t gi = 0; gi < param_steps_.size(); ++gi)
    for (std::size_t pi = 0; pi < param_steps_[gi].size(); ++pi) {
      if (param_steps_[gi][pi] == 0 || moments_ == Moments::None) continue;
      if (moments_ == Moments::Both) st[state_key(gi, pi, "exp_avg")] = exp_avg_[gi][pi].detach().clone();
      st[state_key(gi, pi, "exp_avg_sq")] = exp_avg_sq_[gi][pi].detach().clone();
      st[state_key(gi, pi, "step")] = scalar_tensor(static_cast<double>(param_steps_[gi][pi]), DType::Float64);
    }
  if (stats_.defined()) {
    st["group_stats"] = stats_.detach().to(Device::cpu()).clone();
    std::vector<double> steps(group_steps_.begin(), group_steps_.end());
    st["group_steps"] = from_vector(steps, {static_cast<int64_t>(steps.size())});
  }
  return st;
}

void FusedOptimizer::load_state(const std::map<std::string, Tensor>& state) {
  const std::string op = name_ + ".load_state";
  const std::size_t ng = groups_.size();
  std::vector<std::vector<Tensor>> m(ng), v(ng);
  std::vector<std::vector<int64_t>> steps(ng);
  std::vector<std::vector<int>> seen(ng);  // bit 0: exp_avg, 1: exp_avg_sq, 2: step
  for (std::size_t gi = 0; gi < ng; ++gi) {
    const std::size_t np = groups_[gi].params.size();
    m[gi].resize(np);
    v[gi].resize(np);
    steps[gi].assign(np, 0);
    seen[gi].assign(np, 0);
  }
  auto scalar = [&](const std::string& key, const Tensor& t) {
    NASH_CHECK(t.defined() && t.numel() == 1, op, ": state '", key, "' must be a scalar");
    double x = t.item();
    NASH_CHECK(x >= 0 && x == std::floor(x), op, ": state '", key, "' must be a non-negative integer, got ", x);
    return static_cast<int64_t>(x);
  };
  int64_t step_count = 0;
  Tensor stats;
  std::vector<int64_t> group_steps(ng, 0);
  for (const auto& kv : state) {
    const std::string& key = kv.first;
    if (key == "step_count") {
      step_count = scalar(key, kv.second);
      continue;
    }
    if (key == "group_stats" || key == "group_steps") {
      const int64_t want = static_cast<int64_t>(key == "group_stats" ? 3 * ng : ng);
      NASH_CHECK(kv.second.defined() && kv.second.dim() == 1 && kv.second.numel() == want, op, ": state '", key,
                 "' must be a vector of ", want, " values for ", ng, " groups");
      if (key == "group_stats") {
        stats = kv.second.detach().to(Device::cpu()).to(DType::Float64).clone();
      } else {
        std::vector<double> gs = kv.second.to_vector<double>();
        for (std::size_t gi = 0; gi < ng; ++gi) group_steps[gi] = static_cast<int64_t>(gs[gi]);
      }
      continue;
    }
    std::size_t gi, pi;
    std::string what;
    parse_state_key(key, gi, pi, what);
    const Tensor& p = groups_[gi].params[pi];
    if (what == "exp_avg" && moments_ == Moments::Both) {
      m[gi][pi] = loaded_tensor(key, kv.second, p);
      seen[gi][pi] |= 1;
    } else if (what == "exp_avg_sq" && moments_ != Moments::None) {
      v[gi][pi] = loaded_tensor(key, kv.second, p);
      seen[gi][pi] |= 2;
    } else if (what == "step" && moments_ != Moments::None) {
      steps[gi][pi] = scalar(key, kv.second);
      NASH_CHECK(steps[gi][pi] >= 1, op, ": state '", key, "' must be >= 1");
      seen[gi][pi] |= 4;
    } else {
      detail::fail(op, ": unknown state '", key, "' (", name_, " keeps ",
                   moments_ == Moments::Both         ? "exp_avg, exp_avg_sq and step"
                   : moments_ == Moments::SecondOnly ? "exp_avg_sq and step"
                                                     : "no per-parameter state",
                   ")");
    }
  }
  const int full = moments_ == Moments::Both ? 7 : 6;
  for (std::size_t gi = 0; gi < ng; ++gi)
    for (std::size_t pi = 0; pi < seen[gi].size(); ++pi)
      NASH_CHECK(seen[gi][pi] == 0 || seen[gi][pi] == full, op, ": parameter ", pi, " of group ", gi,
                 " has an incomplete state (needs ",
                 moments_ == Moments::Both ? state_key(gi, pi, "exp_avg") + ", " : "", state_key(gi, pi, "exp_avg_sq"),
                 " and ", state_key(gi, pi, "step"), ")");
  exp_avg_ = std::move(m);
  exp_avg_sq_ = std::move(v);
  param_steps_ = std::move(steps);
  steps_ = step_count;
  group_steps_ = group_steps;
  if (stats.defined()) {
    Device d = Device::cpu();
    for (const ParamGroup& g : groups_)
      if (!g.params.empty()) {
        d = g.params[0].device();
        break;
      }
    stats_ = stats.to(d);
  } else {
    stats_ = Tensor();
  }
}

}  // namespace optim
}  // namespace nash
