// CUDA runtime glue: device queries and the raw device-memory hooks used by Storage (caching comes with the CUDA backend).
#include <cuda_runtime.h>

#include "core/backend.h"
#include "nash/core/cuda.h"

namespace nash {

namespace {
#define NASH_CUDA_CHECK(call)                                                                            \
  do {                                                                                                   \
    cudaError_t err_ = (call);                                                                           \
    if (err_ != cudaSuccess)                                                                             \
      ::nash::detail::fail(__FILE__, ":", __LINE__, ": ", #call, " failed: ", cudaGetErrorString(err_)); \
  } while (0)

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
}  // namespace cuda

namespace detail {

void cuda_copy(void* dst, Device dd, const void* src, Device sd, std::size_t nbytes) {
  NASH_CHECK(cuda::is_available(), "cannot copy ", nbytes, " bytes between ", sd.str(), " and ", dd.str(), ": ",
             cuda::unavailable_reason());
  cudaMemcpyKind kind = dd.is_cpu() ? cudaMemcpyDeviceToHost : (sd.is_cpu() ? cudaMemcpyHostToDevice
                                                                             : cudaMemcpyDeviceToDevice);
  NASH_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
}


}  // namespace detail
}  // namespace nash
