// Device parsing and the no-CUDA fallbacks of the device-memory hooks.
#include <cstdlib>
#include <cstring>

#include "core/backend.h"
#include "nash/core/cuda.h"

namespace nash {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s == "emu-cuda") return emu_cuda();
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    char* end = nullptr;
    long idx = std::strtol(s.c_str() + 5, &end, 10);
    if (*end == '\0' && idx >= 0 && idx < 1024) return cuda(static_cast<int>(idx));
  }
  detail::fail("invalid device '", s, "' (expected cpu, cuda or cuda:N)");
}

namespace detail {

void require_cpu(const char* op, const Tensor& t) {
  NASH_CHECK(t.device().is_cpu(), op, ": no CUDA kernel for this op yet (input is on ", t.device().str(),
             "); move the tensor to the CPU with .to(nash::Device::cpu())");
}

void copy_bytes(void* dst, Device dd, const void* src, Device sd, std::size_t nbytes) {
  if (nbytes == 0) return;
  if (dd.is_host_memory() && sd.is_host_memory()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  NASH_CHECK(!dd.is_emu_cuda() && !sd.is_emu_cuda(), "cannot copy between ", sd.str(), " and ", dd.str(),
             " directly; go through the CPU");
  cuda_copy(dst, dd, src, sd, nbytes);
}

namespace {
const Backend* g_backends[3] = {&cpu_backend(), nullptr, nullptr};
}  // namespace

void register_backend(Device::Kind kind, const Backend* b) { g_backends[static_cast<int>(kind)] = b; }

const Backend& backend(const char* op, Device d) {
  const Backend* b = g_backends[static_cast<int>(d.kind)];
#ifdef NASH_WITH_CUDA
  if (!b && d.is_cuda()) b = g_backends[1] = &cuda_backend();
#endif
  NASH_CHECK(b != nullptr, op, ": no backend for device ", d.str(),
             d.is_cuda() ? " (this build of nash has no CUDA backend; configure with -DNASH_CUDA=ON)"
                         : " (the CUDA emulation is linked into nash's tests only)");
  return *b;
}

void require_same_device_dtype(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    NASH_CHECK(t->defined(), op, ": got an undefined tensor");
    if (!first) {
      first = t;
      continue;
    }
    NASH_CHECK(t->device() == first->device(), op, ": tensors are on different devices (", first->device().str(),
               " and ", t->device().str(), ")");
    NASH_CHECK(t->dtype() == first->dtype(), op, ": tensors have different dtypes (", dtype_name(first->dtype()),
               " and ", dtype_name(t->dtype()), "); convert with .to(nash::DType::...)");
  }
}

#ifndef NASH_WITH_CUDA
void* cuda_malloc(std::size_t, int device) {
  fail("cannot allocate memory on cuda:", device, ": this build of nash has no CUDA backend (configure with -DNASH_CUDA=ON)");
}
void cuda_free(void*, int) noexcept {}
void cuda_copy(void*, Device, const void*, Device, std::size_t) {
  fail("cannot copy to or from CUDA memory: this build of nash has no CUDA backend");
}

#endif

}  // namespace detail

#ifndef NASH_WITH_CUDA
namespace cuda {
bool is_available() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return "nash was built without the CUDA backend"; }
bool cudnn_available() { return false; }
MemoryStats memory_stats(int) { return {}; }
void empty_cache() {}
void synchronize() {}
}  // namespace cuda
#endif

}  // namespace nash
