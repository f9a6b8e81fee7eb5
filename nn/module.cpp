// nn::Module: parameter/buffer registration, recursive traversal, train/eval, zero_grad and in-place device moves.
#include "nash/nn/module.h"

#include <set>

#include "nash/core/autograd.h"

namespace nash {
namespace nn {

namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

// Points t's own TensorImpl at src's data. Subclass members and the registered entries share that impl, so
// they stay one tensor after a move, and autograd state (requires_grad, accumulator) is kept.
void retarget(const Tensor& t, const Tensor& src) {
  TensorImpl* impl = t.impl();
  const TensorImpl* s = src.impl();
  impl->storage = s->storage;
  impl->offset = s->offset;
  impl->shape = s->shape;
  impl->strides = s->strides;
  impl->dtype = s->dtype;
}

template <class Convert>
void convert_in_place(const Tensor& t, Convert convert) {
  if (!t.defined()) return;
  NoGradGuard ng;
  Tensor moved = convert(t.detach()).contiguous();
  if (moved.impl()->storage == t.impl()->storage) return;  // already there
  Tensor g = t.grad();
  if (g.defined()) g = convert(g.detach()).contiguous();  // before retargeting, so a failure leaves t unchanged
  retarget(t, moved);
  if (g.defined()) t.impl()->grad = g.impl_ptr();
}

Named unique(Named all) {
  std::set<const TensorImpl*> seen;
  Named out;
  for (auto& e : all)
    if (seen.insert(e.second.impl()).second) out.push_back(std::move(e));
  return out;
}

}  // namespace

// A tensor shared by several modules (tied weights) is listed once, under its first name, as in PyTorch.
std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  Named out;
  for (const auto& p : params_) out.push_back(p);
  if (recurse)
    for (const auto& c : children_)
      for (auto& p : c.second->named_parameters(true)) out.emplace_back(c.first + "." + p.first, p.second);
  return unique(std::move(out));
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  Named out;
  for (const auto& b : buffers_) out.push_back(b);
  if (recurse)
    for (const auto& c : children_)
      for (auto& b : c.second->named_buffers(true)) out.emplace_back(c.first + "." + b.first, b.second);
  return unique(std::move(out));
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters(recurse)) out.push_back(p.second);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  on_train_changed();
  for (auto& c : children_) c.second->train(on);
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.set_grad(Tensor());
}

void Module::to(Device d) {
  auto conv = [d](const Tensor& t) { return t.to(d); };
  for (auto& p : params_) convert_in_place(p.second, conv);
  for (auto& b : buffers_) convert_in_place(b.second, conv);
  for (auto& c : children_) c.second->to(d);
}

void Module::to(DType t) {
  auto conv = [t](const Tensor& x) { return x.to(t); };
  for (auto& p : params_) convert_in_place(p.second, conv);
  for (auto& b : buffers_) convert_in_place(b.second, conv);
  for (auto& c : children_) c.second->to(t);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  return n;
}

Tensor& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  NASH_CHECK(t.defined(), type_name_, ".register_parameter: parameter '", name, "' is undefined");
  NASH_CHECK(name.find('.') == std::string::npos && !name.empty(), type_name_, ".register_parameter: bad name '",
             name, "' (must be non-empty without '.')");
  for (auto& p : params_)
    NASH_CHECK(p.first != name, type_name_, ".register_parameter: '", name, "' is already registered");
  // A parameter is a leaf: drop any history it was computed with.
  if (!t.is_leaf()) t = t.detach();
  t.requires_grad_(requires_grad);
  params_.emplace_back(name, std::move(t));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  NASH_CHECK(t.defined(), type_name_, ".register_buffer: buffer '", name, "' is undefined");
  NASH_CHECK(name.find('.') == std::string::npos && !name.empty(), type_name_, ".register_buffer: bad name '", name,
             "' (must be non-empty without '.')");
  for (auto& b : buffers_)
    NASH_CHECK(b.first != name, type_name_, ".register_buffer: '", name, "' is already registered");
  // Buffers are state, never trained: keep them out of every graph.
  if (!t.is_leaf()) t = t.detach();
  t.requires_grad_(false);
  buffers_.emplace_back(name, std::move(t));
  return buffers_.back().second;
}

}  // namespace nn
}  // namespace nash
