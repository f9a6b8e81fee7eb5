// The CUDA multi-tensor optimizer step's cache of device-resident metadata (optim_step.cu): its limits and its
// counters, for tests and diagnostics. Include with NASH_CUDA_EMULATION defined to reach the emulated build.
#pragma once
#include <cstdint>

#include "kernels/cuda/compat.h"

namespace nash {
namespace NASH_CUDA_NS {

constexpr int kStepCacheEntries = 8;  // parameter sets kept resident (least recently used dropped first)
constexpr int kInlineTensors = 64;    // per-step scalars travel as a kernel argument up to this many tensors
constexpr int kInlineGroups = 64;     // ... and this many groups; beyond either they are copied to the device

struct StepCacheStats {
  int64_t hits = 0;            // steps that found their static metadata already on the device
  int64_t misses = 0;          // steps that uploaded it (and cached it)
  int64_t scalar_uploads = 0;  // steps whose per-step scalars did not fit the kernel argument
  int64_t entries = 0;         // entries resident now
};

StepCacheStats step_cache_stats();

// Drops every entry (their device buffers go back to the allocator) and zeroes the counters.
void clear_step_cache();

}  // namespace NASH_CUDA_NS
}  // namespace nash
