// CUDA runtime queries: whether a device answers, how many, and why not; safe to call in any build.
#pragma once
#include <cstdint>
#include <string>

namespace nash {
namespace cuda {

bool is_available();
int device_count();
// Why is_available() is false (e.g. no driver, no device, built without CUDA); empty when available.
std::string unavailable_reason();
// Whether the cuDNN convolution engine (ConvEngine::CuDNN) can run: a CUDA device answers and nash was built with
// cuDNN. False in builds without cuDNN, where selecting that engine makes CUDA convolutions throw.
bool cudnn_available();

// The caching allocator's counters for one device (all zero in builds without CUDA).
struct MemoryStats {
  int64_t allocated_bytes = 0;       // in tensors now
  int64_t reserved_bytes = 0;        // obtained from the driver (allocated + cached)
  int64_t peak_allocated_bytes = 0;
  int64_t allocations = 0;           // requests served
  int64_t device_mallocs = 0;        // requests that needed cudaMalloc
};
MemoryStats memory_stats(int device = 0);
// Returns every cached (unused) block to the driver.
void empty_cache();
// Waits until the current device has finished all work nash queued on it (for timing; results read back to the
// host already wait). Nothing to wait for where no device answers or nash was built without CUDA.
void synchronize();

}  // namespace cuda
}  // namespace nash
