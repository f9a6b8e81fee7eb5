// nn::Module: named parameters, buffers and submodules, recursive traversal, train/eval mode, device moves.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace nn {

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Most modules map one tensor to one tensor; containers and losses may override differently.
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Parameters in registration order, recursing into submodules ("net.0.weight").
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Moves every parameter and buffer (keeping parameters leaves that require grad).
  void to(Device d);
  // Converts every parameter and buffer to dtype t in place (e.g. float64 for gradchecks), like PyTorch's .double().
  void to(DType t);
  const std::string& type_name() const { return type_name_; }
  int64_t num_parameters() const;

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    NASH_CHECK(m != nullptr, type_name_, ".register_module: submodule '", name, "' is null");
    children_.emplace_back(name, m);
    return m;
  }
  // Called by train(); containers need nothing more, modules with mode-dependent state may override.
  virtual void on_train_changed() {}

 private:
  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace nn
}  // namespace nash
