// Internal: runs a multi-tensor optimizer step through a backend's kernel or the per-tensor reference loops.
#pragma once
#include <functional>
#include <utility>
#include <vector>

#include "kernels/optim_step.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace optim {

// Checks s (group ids ordered and in range, a float32 step on CUDA devices) and runs it: the device's
// multi-tensor kernel when fused, otherwise the per-tensor CPU loops the kernels are tested against.
void run_step(const detail::MultiTensorStep& s, bool fused, const char* op);

// The parameters one step packed into a MultiTensorStep, kept alive (with their gradients) until it has run.
struct PackedStep {
  std::vector<Tensor> grads, stepped;
  std::vector<std::pair<std::size_t, std::size_t>> where;  // (group, parameter) of each packed tensor
  std::vector<bool> group_active;                          // whether the group had any gradient
};

// Appends every parameter that has a gradient (grad_of returns it, undefined to skip) to s.tensors, in group order,
// checking that all share one device and dtype. The moment buffers asked for are created (zeros) or moved to the
// parameter's device; scalars(gi, pi, t, st) fills the rule's per-tensor scalars for the parameter's step t.
PackedStep pack_step(detail::MultiTensorStep& s, std::vector<ParamGroup>& groups,
                     std::vector<std::vector<Tensor>>& exp_avg, std::vector<std::vector<Tensor>>& exp_avg_sq,
                     std::vector<std::vector<int64_t>>& param_steps, bool first_moment, bool second_moment,
                     const std::function<Tensor(const Tensor&)>& grad_of,
                     const std::function<void(std::size_t, std::size_t, int64_t, detail::StepTensor&)>& scalars,
                     const char* op);

// After the step has run: counts each packed parameter's step and marks its storage as written.
void finish_step(PackedStep& packed, std::vector<std::vector<int64_t>>& param_steps);

}  // namespace optim
}  // namespace nash
