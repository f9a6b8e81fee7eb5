// Optimizer base: parameter groups with per-group learning rates, zero_grad, step norms, and the checks and
// state-key helpers shared by the optimizers.
#include "nash/optim/optimizer.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "core/backend.h"
#include "nash/core/autograd.h"

namespace nash {
namespace optim {

std::vector<ParamGroup> ParamGroup::layerwise(const std::vector<Tensor>& params) {
  std::vector<ParamGroup> groups;
  for (std::size_t i = 0; i < params.size(); ++i) groups.push_back({{params[i]}, -1, "param" + std::to_string(i), {}});
  return groups;
}

std::vector<ParamGroup> ParamGroup::layerwise(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<ParamGroup> groups;
  for (const auto& kv : named) groups.push_back({{kv.second}, -1, kv.first, {}});
  return groups;
}

std::vector<ParamGroup> ParamGroup::global(const std::vector<Tensor>& params, std::string name) {
  return {ParamGroup{params, -1, std::move(name), {}}};
}

std::vector<ParamGroup> ParamGroup::global(const std::vector<std::pair<std::string, Tensor>>& named,
                                           std::string name) {
  std::vector<Tensor> params;
  for (const auto& kv : named) params.push_back(kv.second);
  return global(params, std::move(name));
}

std::vector<ParamGroup> ParamGroup::grouped(const std::vector<Tensor>& params, Grouping grouping) {
  return grouping == Grouping::LayerWise ? layerwise(params) : global(params);
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_lr, const char* name)
    : name_(name), groups_(std::move(groups)) {
  NASH_CHECK(default_lr >= 0, name_, ": learning rate must be >= 0, got ", default_lr);
  NASH_CHECK(!groups_.empty(), name_, ": got no parameter groups");
  std::set<const TensorImpl*> seen;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    if (group.lr < 0) group.lr = default_lr;
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& p = group.params[i];
      NASH_CHECK(p.defined(), name_, ": parameter ", i, " of group ", g, " is undefined");
      NASH_CHECK(p.is_leaf(), name_, ": parameter ", i, " of group ", g, " (", p.str(),
                 ") is not a leaf; optimize leaves only");
      NASH_CHECK(seen.insert(p.impl()).second, name_, ": parameter ", i, " of group ", g,
                 " appears more than once across the parameter groups");
    }
    NASH_CHECK(group.coefficients.empty() || group.coefficients.size() == group.params.size(), name_, ": group ", g,
               " has ", group.coefficients.size(), " coefficients for ", group.params.size(),
               " parameters (give one per parameter, or none)");
  }
}

namespace {
double sqrt_of_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return std::sqrt(s);
}
}  // namespace

double StepNorms::grad_norm() const { return sqrt_of_sum(grad_sq); }
double StepNorms::param_norm() const { return sqrt_of_sum(param_sq); }
double StepNorms::update_norm() const { return sqrt_of_sum(update_sq); }

void Optimizer::record_step_norms(bool on) {
  NASH_CHECK(!on || can_record_step_norms(), name_, ".record_step_norms: this optimizer's step cannot record them");
  record_norms_ = on;
}

double* Optimizer::step_norms_buffer() {
  if (!record_norms_) return nullptr;
  norms_buf_.assign(3 * groups_.size(), 0.0);
  return norms_buf_.data();
}

void Optimizer::publish_step_norms() {
  if (!record_norms_) return;
  const std::size_t ng = groups_.size();
  norms_.grad_sq.assign(ng, 0.0);
  norms_.param_sq.assign(ng, 0.0);
  norms_.update_sq.assign(ng, 0.0);
  for (std::size_t g = 0; g < ng && 3 * g + 2 < norms_buf_.size(); ++g) {
    norms_.grad_sq[g] = norms_buf_[3 * g];
    norms_.param_sq[g] = norms_buf_[3 * g + 1];
    norms_.update_sq[g] = norms_buf_[3 * g + 2];
  }
  norms_step_ = steps_ + 1;  // the step about to be counted
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.set_grad(Tensor());
}

void Optimizer::set_lr(double lr) {
  for (std::size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

void Optimizer::set_lr(std::size_t group, double lr) {
  NASH_CHECK(group < groups_.size(), name_, ".set_lr: group ", group, " out of range (", groups_.size(), " groups)");
  NASH_CHECK(lr >= 0, name_, ".set_lr: learning rate must be >= 0, got ", lr);
  groups_[group].lr = lr;
}

Tensor Optimizer::step_grad(const Tensor& p, bool any_device) const {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  std::string op = name_ + ".step";
  if (!any_device) {
    detail::require_cpu(op.c_str(), p);
    detail::require_cpu(op.c_str(), g);
  }
  NASH_CHECK(g.device() == p.device(), op, ": gradient ", g.str(), " is not on parameter ", p.str(), "'s device");
  NASH_CHECK(p.is_contiguous(), op, ": parameter ", p.str(), " must be contiguous to be updated in place");
  NASH_CHECK(g.dtype() == p.dtype(), op, ": gradient ", g.str(), " does not match parameter ", p.str());
  // Accumulated gradients may be broadcast views (stride 0); the loops read them densely. A plain gradient (no
  // history, the usual case) is returned as it is: detaching it would allocate a tensor per parameter and step.
  if (!g.is_contiguous()) return g.detach().contiguous();
  return g.requires_grad() || g.grad_fn() ? g.detach() : g;
}

std::string Optimizer::state_key(std::size_t group, std::size_t param, const std::string& what) {
  return "group" + std::to_string(group) + ".param" + std::to_string(param) + "." + what;
}

void Optimizer::parse_state_key(const std::string& key, std::size_t& group, std::size_t& param,
                                std::string& what) const {
  const std::string op = name_ + ".load_state";
  auto number_after = [&](const char* prefix, std::size_t& pos) -> std::size_t {
    std::size_t len = std::char_traits<char>::length(prefix);
    NASH_CHECK(key.compare(pos, len, prefix) == 0, op, ": malformed state key '", key,
               "' (expected group<G>.param<I>.<name>)");
    pos += len;
    std::size_t start = pos;
    while (pos < key.size() && key[pos] >= '0' && key[pos] <= '9') ++pos;
    NASH_CHECK(pos > start && pos < key.size() && key[pos] == '.', op, ": malformed state key '", key,
               "' (expected group<G>.param<I>.<name>)");
    std::size_t v = std::strtoull(key.c_str() + start, nullptr, 10);
    ++pos;  // the '.'
    return v;
  };
  std::size_t pos = 0;
  group = number_after("group", pos);
  param = number_after("param", pos);
  what = key.substr(pos);
  NASH_CHECK(group < groups_.size(), op, ": state key '", key, "' names group ", group, " but there are ",
             groups_.size(), " groups");
  NASH_CHECK(param < groups_[group].params.size(), op, ": state key '", key, "' names parameter ", param,
             " but group ", group, " has ", groups_[group].params.size());
}

Tensor Optimizer::loaded_tensor(const std::string& key, const Tensor& src, const Tensor& like) const {
  NASH_CHECK(src.defined(), name_, ".load_state: state '", key, "' is undefined");
  NASH_CHECK(src.shape() == like.shape(), name_, ".load_state: state '", key, "' has shape ", shape_str(src.shape()),
             " but expected ", shape_str(like.shape()));
  NoGradGuard ng;
  Tensor out = empty(like.shape(), like.dtype(), like.device());
  out.copy_(src.detach());
  return out;
}

}  // namespace optim
}  // namespace nash
