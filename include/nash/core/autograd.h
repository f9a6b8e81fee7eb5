// Define-by-run reverse-mode autograd: graph nodes, grad mode, backward() and autograd::grad() with create_graph.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {

// Whether ops record history (thread-local, on by default).
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};

// Disables recording for its scope.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class EnableGradGuard {
 public:
  explicit EnableGradGuard(bool on) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(on); }
  ~EnableGradGuard() { GradMode::set_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// A tensor kept by a node for its backward. Outputs of the node itself are kept without their
// history (no reference cycle) and re-attached to the node when unpacked.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, bool is_output);
  Tensor unpack(const std::shared_ptr<Node>& owner, const char* op) const;
  void reset() { data_ = Tensor(); }
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint64_t version_ = 0;
  bool is_output_ = false;
  bool requires_grad_ = false;
};

// One recorded op. Each node produces exactly one tensor; next[i] is the grad node of input i
// (null when that input needs no gradient).
class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(std::string name);
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  std::vector<std::shared_ptr<Node>> next;

  // Gradients for each input from the gradient of the output. needs[i] says whether input i's
  // gradient is wanted; entries not wanted may be left undefined.
  virtual std::vector<Tensor> apply(const Tensor& grad_output, const std::vector<bool>& needs) = 0;
  // Frees what backward needed; a later apply() throws.
  virtual void release() { released_ = true; }
  bool released() const { return released_; }

  static int64_t live_count();  // nodes alive now (for leak tests)

 protected:
  bool released_ = false;

 private:
  std::string name_;
};

// Gradient sink of a leaf tensor: adds incoming gradients into the leaf's .grad.
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf);
  std::vector<Tensor> apply(const Tensor&, const std::vector<bool>&) override { return {}; }
  void release() override {}  // leaves outlive any one graph
  std::shared_ptr<TensorImpl> leaf() const { return leaf_.lock(); }

  // Called by backward() right after this leaf's .grad received its gradient for the pass (once per pass: the
  // engine sums every contribution first). Data-parallel training starts reducing a bucket of gradients from here
  // while the rest of the backward pass runs. Returns the hook's id for remove_post_hook.
  using PostHook = std::function<void()>;
  int add_post_hook(PostHook h);
  void remove_post_hook(int id);
  void run_post_hooks() const;

 private:
  std::weak_ptr<TensorImpl> leaf_;
  std::vector<std::pair<int, PostHook>> post_hooks_;
  int next_hook_id_ = 0;
};

// Context handed to a backward function: saved tensors (unpacked) and which inputs need grads.
class BackwardContext {
 public:
  BackwardContext(std::vector<Tensor> saved, const std::vector<bool>& needs) : saved_(std::move(saved)), needs_(needs) {}
  const Tensor& saved(std::size_t i) const { return saved_.at(i); }
  bool needs(std::size_t i) const { return i < needs_.size() && needs_[i]; }

 private:
  std::vector<Tensor> saved_;
  const std::vector<bool>& needs_;
};

using BackwardFn = std::function<std::vector<Tensor>(const BackwardContext& ctx, const Tensor& grad_output)>;

// The node type every nash op records: a backward function written in nash ops (so it is itself
// differentiable) plus the tensors it saved.
class FunctionNode : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn, std::vector<SavedTensor> saved);
  std::vector<Tensor> apply(const Tensor& grad_output, const std::vector<bool>& needs) override;
  void release() override;

 private:
  BackwardFn fn_;
  std::vector<SavedTensor> saved_;
};

namespace autograd {

// Whether recording is needed for an op with these inputs.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `out` as the result of op `name` applied to `inputs`. `saved` are kept for backward
// (pass `out` itself to keep the output). Does nothing when no input requires grad or grad mode is off.
// Returns out (now with grad_fn set).
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs,
              const std::vector<Tensor>& saved, BackwardFn fn);

// The gradient node of a tensor: its grad_fn, or its accumulator when it is a leaf requiring grad.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Sum of d outputs[i] / d inputs[j] weighted by grad_outputs[i] (ones for scalar outputs when empty).
// With create_graph the returned gradients carry history, so they can be differentiated again.
// Inputs not reached by the graph get an undefined tensor when allow_unused, otherwise an error.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

// Accumulates gradients of outputs into the .grad of every leaf reached.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

}  // namespace autograd
}  // namespace nash
