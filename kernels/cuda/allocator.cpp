// The caching CUDA allocator: freed blocks go to per-device, per-stream size-class free lists and are reused
// without cudaMalloc/cudaFree on the hot path; statistics and empty_cache() for users and leak tests.
#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "kernels/cuda/check.h"
#include "nash/core/cuda.h"

namespace nash {
namespace detail {

namespace {

constexpr std::size_t kSmallLimit = 1 << 20;   // requests up to 1 MiB round to 512 B
constexpr std::size_t kSmallRound = 512;
constexpr std::size_t kLargeRound = 2 << 20;   // larger ones round to 2 MiB

std::size_t round_size(std::size_t n) {
  std::size_t r = n <= kSmallLimit ? kSmallRound : kLargeRound;
  return (std::max<std::size_t>(n, 1) + r - 1) / r * r;
}

struct Block {
  std::size_t size;
  int device;
  cudaStream_t stream;
};

struct Pool {
  std::mutex mu;
  // (device, stream) -> size -> cached pointers; large sizes are looked up best-fit.
  std::map<std::pair<int, cudaStream_t>, std::multimap<std::size_t, void*>> free_lists;
  std::unordered_map<void*, Block> live;
  std::unordered_map<void*, Block> cached;
  std::vector<cuda::MemoryStats> stats = std::vector<cuda::MemoryStats>(64);

  cuda::MemoryStats& st(int device) { return stats.at(static_cast<std::size_t>(device)); }

  void release_cached(int device) {
    for (auto& [key, list] : free_lists) {
      if (key.first != device && device >= 0) continue;
      for (auto& [size, p] : list) {
        cudaSetDevice(key.first);
        cudaFree(p);
        st(key.first).reserved_bytes -= static_cast<int64_t>(size);
        cached.erase(p);
      }
      list.clear();
    }
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: blocks may be freed during static destruction
  return *p;
}

// NASH_CUDA_POISON=1 fills every allocation with 0xFF bytes (NaN as float), so a kernel that leaves part of its
// output unwritten is caught by the parity tests on a real GPU too (tools/gpu-check sets it).
void* poisoned(void* p, std::size_t size) {
  static const bool poison = [] {
    const char* v = std::getenv("NASH_CUDA_POISON");
    return v && *v && std::string(v) != "0";
  }();
  if (poison) NASH_CUDA_CHECK(cudaMemset(p, 0xFF, size));
  return p;
}

std::string pool_state(const cuda::MemoryStats& s) {
  return "allocated " + std::to_string(s.allocated_bytes) + " B, reserved " + std::to_string(s.reserved_bytes) +
         " B, peak " + std::to_string(s.peak_allocated_bytes) + " B";
}

}  // namespace

void* cuda_malloc(std::size_t nbytes, int device) {
  NASH_CHECK(cuda::is_available(), "cannot allocate ", nbytes, " bytes on cuda:", device, ": ",
             cuda::unavailable_reason());
  NASH_CHECK(device >= 0 && device < cuda::device_count(), "cuda:", device, " does not exist (",
             cuda::device_count(), " device(s))");
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  const std::size_t size = round_size(nbytes);
  cudaStream_t stream = nullptr;
  auto& list = P.free_lists[{device, stream}];
  auto it = list.lower_bound(size);
  // Reuse an exact small block, or a large block no more than twice the request (bounded waste).
  if (it != list.end() && (size <= kSmallLimit ? it->first == size : it->first <= 2 * size)) {
    void* p = it->second;
    Block b{it->first, device, stream};
    list.erase(it);
    P.cached.erase(p);
    P.live[p] = b;
    auto& s = P.st(device);
    s.allocated_bytes += static_cast<int64_t>(b.size);
    s.peak_allocated_bytes = std::max(s.peak_allocated_bytes, s.allocated_bytes);
    ++s.allocations;
    return poisoned(p, b.size);
  }
  if (cudaSetDevice(device) != cudaSuccess) fail("cannot select cuda:", device);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err != cudaSuccess) {
    // Give the cached blocks back to the driver and try once more before reporting.
    cudaGetLastError();
    P.release_cached(device);
    err = cudaMalloc(&p, size);
    if (err != cudaSuccess) {
      cudaGetLastError();
      fail("CUDA out of memory: cannot allocate ", nbytes, " bytes (", size, " rounded) on cuda:", device, " (",
           pool_state(P.st(device)), "): ", cudaGetErrorString(err));
    }
  }
  P.live[p] = Block{size, device, stream};
  auto& s = P.st(device);
  s.allocated_bytes += static_cast<int64_t>(size);
  s.reserved_bytes += static_cast<int64_t>(size);
  s.peak_allocated_bytes = std::max(s.peak_allocated_bytes, s.allocated_bytes);
  ++s.allocations;
  ++s.device_mallocs;
  return poisoned(p, size);
}

void cuda_free(void* p, int device) noexcept {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.live.find(p);
  if (it == P.live.end()) return;  // not ours: never happens for nash storages
  Block b = it->second;
  P.live.erase(it);
  P.cached[p] = b;
  P.free_lists[{b.device, b.stream}].emplace(b.size, p);
  P.st(b.device).allocated_bytes -= static_cast<int64_t>(b.size);
}

}  // namespace detail

namespace cuda {

MemoryStats memory_stats(int device) {
  detail::Pool& P = detail::pool();
  std::lock_guard<std::mutex> lock(P.mu);
  NASH_CHECK(device >= 0 && device < 64, "memory_stats: invalid device index ", device);
  return P.st(device);
}

void empty_cache() {
  detail::Pool& P = detail::pool();
  std::lock_guard<std::mutex> lock(P.mu);
  P.release_cached(-1);
}

}  // namespace cuda
}  // namespace nash
