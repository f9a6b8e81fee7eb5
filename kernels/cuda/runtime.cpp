// CUDA runtime glue: device queries and the raw device-memory hooks used by Storage (caching comes with the CUDA backend).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "core/backend.h"
#include "kernels/cuda/check.h"
#include "nash/core/cuda.h"

namespace nash {

namespace {

struct Probe {
  int count = 0;
  std::string reason;
  Probe() {
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      reason = std::string("no CUDA device: ") + cudaGetErrorString(err);
      count = 0;
      cudaGetLastError();  // clear the sticky error
    } else if (count == 0) {
      reason = "no CUDA device found";
    }
  }
};
const Probe& probe() {
  static Probe p;
  return p;
}
}  // namespace

namespace cuda {
bool is_available() { return probe().count > 0; }
int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }
void synchronize() {
  if (is_available()) NASH_CUDA_CHECK(cudaDeviceSynchronize());
}
}  // namespace cuda

namespace detail {

namespace {

// Host<->device transfers go through two pinned staging buffers: while the DMA engine moves one chunk, the CPU
// copies the next one into the other buffer. Pageable memory cannot be transferred asynchronously.
class PinnedStaging {
 public:
  static constexpr std::size_t kChunk = 8 << 20;

  void copy(void* dst, const void* src, std::size_t n, bool to_device) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!buf_[0]) {
      for (int i = 0; i < 2; ++i) {
        NASH_CUDA_CHECK(cudaMallocHost(&buf_[i], kChunk));
        NASH_CUDA_CHECK(cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming));
      }
    }
    auto* d = static_cast<char*>(dst);
    const auto* s = static_cast<const char*>(src);
    if (to_device) {
      for (std::size_t off = 0, i = 0; off < n; off += kChunk, i ^= 1) {
        const std::size_t len = std::min(kChunk, n - off);
        NASH_CUDA_CHECK(cudaEventSynchronize(done_[i]));  // the buffer's previous chunk has left
        std::memcpy(buf_[i], s + off, len);
        NASH_CUDA_CHECK(cudaMemcpyAsync(d + off, buf_[i], len, cudaMemcpyHostToDevice, nullptr));
        NASH_CUDA_CHECK(cudaEventRecord(done_[i], nullptr));
      }
      NASH_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    } else {
      // Device to host: start chunk k+1 before copying chunk k out of its buffer.
      std::size_t chunks = (n + kChunk - 1) / kChunk;
      auto start = [&](std::size_t k) {
        const std::size_t off = k * kChunk, len = std::min(kChunk, n - off);
        NASH_CUDA_CHECK(cudaMemcpyAsync(buf_[k & 1], s + off, len, cudaMemcpyDeviceToHost, nullptr));
        NASH_CUDA_CHECK(cudaEventRecord(done_[k & 1], nullptr));
      };
      if (chunks) start(0);
      for (std::size_t k = 0; k < chunks; ++k) {
        if (k + 1 < chunks) start(k + 1);
        NASH_CUDA_CHECK(cudaEventSynchronize(done_[k & 1]));
        const std::size_t off = k * kChunk, len = std::min(kChunk, n - off);
        std::memcpy(d + off, buf_[k & 1], len);
      }
    }
  }

 private:
  std::mutex mu_;
  void* buf_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {};
};

PinnedStaging& staging() {
  static PinnedStaging* s = new PinnedStaging();  // pinned memory is released by the driver at exit
  return *s;
}

}  // namespace

void cuda_copy(void* dst, Device dd, const void* src, Device sd, std::size_t nbytes) {
  NASH_CHECK(cuda::is_available(), "cannot copy ", nbytes, " bytes between ", sd.str(), " and ", dd.str(), ": ",
             cuda::unavailable_reason());
  if (dd.is_cuda() && sd.is_cuda()) {
    NASH_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
    return;
  }
  NASH_CUDA_CHECK(cudaSetDevice(dd.is_cuda() ? dd.index : sd.index));
  // Small transfers are latency-bound; staging pays off from a few hundred KiB.
  if (nbytes < (256 << 10)) {
    NASH_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, dd.is_cuda() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
    return;
  }
  staging().copy(dst, src, nbytes, dd.is_cuda());
}


}  // namespace detail

namespace cuda_impl {

int device_sm_count() {
  // Cached per device (up to 64); nash runs on the current device.
  static std::atomic<int> counts[64];
  int dev = 0;
  NASH_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return 132;
  int n = counts[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    NASH_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    n = n > 0 ? n : 1;
    counts[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

}  // namespace cuda_impl
}  // namespace nash
