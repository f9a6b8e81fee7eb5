// Internal: runs a multi-tensor optimizer step through a backend's kernel or the per-tensor reference loops.
#pragma once
#include "kernels/optim_step.h"

namespace nash {
namespace optim {

// Checks s (group ids ordered and in range, a float32 step on CUDA devices) and runs it: the device's
// multi-tensor kernel when fused, otherwise the per-tensor CPU loops the kernels are tested against.
void run_step(const detail::MultiTensorStep& s, bool fused, const char* op);

}  // namespace optim
}  // namespace nash
