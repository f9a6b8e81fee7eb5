// The autograd engine: recording ops, topological backward, gradient accumulation and autograd::grad.
#include "nash/core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "nash/core/ops.h"

namespace nash {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<int64_t> g_live_nodes{0};
}  // namespace

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool on) { g_grad_enabled = on; }

Node::Node(std::string name) : name_(std::move(name)) { ++g_live_nodes; }
Node::~Node() { --g_live_nodes; }
int64_t Node::live_count() { return g_live_nodes.load(); }

AccumulateGrad::AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : Node("AccumulateGrad"), leaf_(leaf) {}

int AccumulateGrad::add_post_hook(PostHook h) {
  NASH_CHECK(h, "AccumulateGrad::add_post_hook: the hook is empty");
  post_hooks_.emplace_back(next_hook_id_, std::move(h));
  return next_hook_id_++;
}

void AccumulateGrad::remove_post_hook(int id) {
  for (auto it = post_hooks_.begin(); it != post_hooks_.end(); ++it)
    if (it->first == id) {
      post_hooks_.erase(it);
      return;
    }
}

void AccumulateGrad::run_post_hooks() const {
  for (const auto& h : post_hooks_) h.second();
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output) : is_output_(is_output) {
  if (!t.defined()) return;
  // An output is saved before record() marks it as requiring grad; it always will.
  requires_grad_ = is_output || t.requires_grad();
  version_ = t.impl()->storage->version();
  // An output is stored without history to avoid output -> node -> output cycles.
  data_ = is_output ? t.detach() : t;
}

Tensor SavedTensor::unpack(const std::shared_ptr<Node>& owner, const char* op) const {
  if (!data_.defined()) return data_;
  NASH_CHECK(data_.impl()->storage->version() == version_, op,
             ": a tensor saved for the backward pass was modified in place after it was saved "
             "(saved at version ", version_, ", now ", data_.impl()->storage->version(), ")");
  if (is_output_ && requires_grad_) {
    auto impl = std::make_shared<TensorImpl>(*data_.impl());
    impl->requires_grad = true;
    impl->grad_fn = owner;
    impl->grad_accumulator.reset();
    impl->grad.reset();
    return Tensor(impl);
  }
  return data_;
}

FunctionNode::FunctionNode(std::string name, BackwardFn fn, std::vector<SavedTensor> saved)
    : Node(std::move(name)), fn_(std::move(fn)), saved_(std::move(saved)) {}

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output, const std::vector<bool>& needs) {
  NASH_CHECK(!released_, name(),
             ": trying to backward through the graph a second time (its saved tensors were freed by the "
             "first backward; pass retain_graph=true to keep them)");
  std::vector<Tensor> saved;
  saved.reserve(saved_.size());
  auto self = shared_from_this();
  for (const auto& s : saved_) saved.push_back(s.unpack(self, name().c_str()));
  BackwardContext ctx(std::move(saved), needs);
  return fn_(ctx, grad_output);
}

void FunctionNode::release() {
  released_ = true;
  saved_.clear();
  fn_ = nullptr;
}

namespace autograd {

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->grad_accumulator) impl->grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl->grad_accumulator;
}

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, const std::vector<Tensor>& saved,
              BackwardFn fn) {
  if (!any_requires_grad(inputs)) return out;
  std::vector<SavedTensor> keep;
  keep.reserve(saved.size());
  for (const Tensor& s : saved) keep.emplace_back(s, s.defined() && s.is_same(out));
  auto node = std::make_shared<FunctionNode>(name, std::move(fn), std::move(keep));
  node->next.reserve(inputs.size());
  for (const Tensor& in : inputs) node->next.push_back(gradient_edge(in));
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

namespace {

Tensor accumulate(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);  // out of place: gradients may alias each other
}

// Runs the graph from roots. When `capture` is non-null, gradients arriving at the nodes it names
// are stored there instead of being accumulated into leaves, and only nodes leading to them run.
void run_engine(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
                bool create_graph, std::unordered_map<Node*, Tensor>* capture) {
  NASH_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), "backward: got ", grad_outputs.size(),
             " grad_outputs for ", outputs.size(), " outputs");
  std::vector<std::pair<std::shared_ptr<Node>, Tensor>> roots;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    NASH_CHECK(out.defined(), "backward: output ", i, " is an undefined tensor");
    NASH_CHECK(out.requires_grad(), "backward: output ", i, " (", out.str(),
               ") does not require grad and has no grad_fn; nothing to differentiate");
    Tensor g = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!g.defined()) {
      NASH_CHECK(out.numel() == 1, "backward: grad can be implicitly created only for scalar outputs, got shape ",
                 shape_str(out.shape()));
      g = ones(out.shape(), out.dtype(), out.device());
    } else {
      NASH_CHECK(g.shape() == out.shape(), "backward: grad_output ", i, " has shape ", shape_str(g.shape()),
                 " but the output has shape ", shape_str(out.shape()));
    }
    roots.emplace_back(gradient_edge(out), g);
  }

  // Discover the graph and count, for each node, the edges arriving from nodes that will run.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> order;
  {
    std::unordered_set<Node*> seen;
    std::vector<Node*> stack;
    for (auto& r : roots)
      if (seen.insert(r.first.get()).second) stack.push_back(r.first.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      order.push_back(n);
      for (auto& nx : n->next) {
        if (!nx) continue;
        deps[nx.get()] += 1;
        if (seen.insert(nx.get()).second) stack.push_back(nx.get());
      }
    }
  }
  // With capture, only nodes from which a captured node is reachable need to run.
  std::unordered_set<Node*> useful;
  if (capture) {
    // Reverse reachability: iterate to a fixed point over the discovered nodes (graphs are DAGs,
    // process in reverse discovery order repeatedly until stable; usually 1-2 passes).
    for (auto& kv : *capture) useful.insert(kv.first);
    bool changed = true;
    while (changed) {
      changed = false;
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node* n = *it;
        if (useful.count(n)) continue;
        for (auto& nx : n->next)
          if (nx && useful.count(nx.get())) {
            useful.insert(n);
            changed = true;
            break;
          }
      }
    }
  }

  EnableGradGuard mode(create_graph);
  std::unordered_map<Node*, Tensor> buffer;
  std::vector<std::shared_ptr<Node>> ready;
  for (auto& r : roots) {
    Node* n = r.first.get();
    buffer[n] = accumulate(buffer[n], r.second);
  }
  for (auto& r : roots)
    if (deps[r.first.get()] == 0) {
      bool dup = false;
      for (auto& x : ready) dup |= x == r.first;
      if (!dup) ready.push_back(r.first);
    }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    Tensor g = std::move(buffer[node.get()]);
    buffer.erase(node.get());

    if (capture) {
      auto it = capture->find(node.get());
      if (it != capture->end()) it->second = accumulate(it->second, g);
    }
    std::vector<Tensor> grads;
    bool run = !capture || useful.count(node.get());
    if (auto* acc = dynamic_cast<AccumulateGrad*>(node.get())) {
      if (!capture) {
        if (auto leaf = acc->leaf()) {
          Tensor lg = create_graph ? g : g.detach();
          g = Tensor();
          if (leaf->grad) {
            lg = add(Tensor(leaf->grad), lg);  // out of place: the old grad may be referenced elsewhere
          } else if (!create_graph) {
            // Keep the gradient only if nothing else can see its memory (it may be shared with another
            // leaf's gradient or be a broadcast view); otherwise store a private copy.
            const auto& st = lg.impl()->storage;
            bool owned = lg.is_contiguous() && lg.storage_offset() == 0 && st.use_count() == 1 &&
                         st->nbytes() == static_cast<std::size_t>(lg.numel()) * element_size(lg.dtype());
            if (!owned) lg = lg.clone();
          }
          leaf->grad = lg.impl_ptr();
          acc->run_post_hooks();
        }
      }
    } else if (run && g.defined()) {
      std::vector<bool> needs(node->next.size());
      for (std::size_t i = 0; i < node->next.size(); ++i) {
        Node* nx = node->next[i].get();
        needs[i] = nx && (!capture || useful.count(nx));
      }
      grads = node->apply(g, needs);
      NASH_CHECK(grads.size() == node->next.size(), node->name(), ": backward returned ", grads.size(),
                 " gradients for ", node->next.size(), " inputs");
    }
    if (!retain_graph) node->release();
    for (std::size_t i = 0; i < node->next.size(); ++i) {
      const auto& nx = node->next[i];
      if (!nx) continue;
      if (i < grads.size() && grads[i].defined()) buffer[nx.get()] = accumulate(buffer[nx.get()], grads[i]);
      if (--deps[nx.get()] == 0) ready.push_back(nx);
    }
  }
}

}  // namespace

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
              bool create_graph) {
  run_engine(outputs, grad_outputs, retain_graph || create_graph, create_graph, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph,
                         bool allow_unused) {
  std::unordered_map<Node*, Tensor> capture;
  std::vector<std::shared_ptr<Node>> input_nodes;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    NASH_CHECK(inputs[i].defined() && inputs[i].requires_grad(), "autograd::grad: input ", i,
               " does not require grad");
    input_nodes.push_back(gradient_edge(inputs[i]));
    capture[input_nodes.back().get()] = Tensor();
  }
  run_engine(outputs, grad_outputs, retain_graph || create_graph, create_graph, &capture);
  std::vector<Tensor> result;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Tensor g = capture[input_nodes[i].get()];
    NASH_CHECK(g.defined() || allow_unused, "autograd::grad: input ", i, " (", inputs[i].str(),
               ") was not used to compute the outputs (pass allow_unused=true to get an undefined tensor)");
    if (g.defined() && !create_graph) g = g.detach();
    result.push_back(g);
  }
  return result;
}

}  // namespace autograd

void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) const {
  autograd::backward({*this}, grad.defined() ? std::vector<Tensor>{grad} : std::vector<Tensor>{}, retain_graph,
                     create_graph);
}

}  // namespace nash
