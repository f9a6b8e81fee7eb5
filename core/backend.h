// Internal: device memory hooks (implemented by the CUDA backend when built, otherwise clear errors) and op dispatch helpers.
#pragma once
#include <cstddef>

#include "nash/core/tensor.h"

namespace nash {
namespace detail {

void* cuda_malloc(std::size_t nbytes, int device);
void cuda_free(void* p, int device) noexcept;
// Copies nbytes between any two devices (host <-> device, device <-> device).
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t nbytes);

// Fills n contiguous elements of device memory with value.
void cuda_fill(void* data, int64_t n, DType dtype, double value, int device);

// Throws a clear error until the op has a kernel for the tensor's device.
void require_cpu(const char* op, const Tensor& t);
// All tensors defined in `ts` share one device and dtype; names op and shapes otherwise.
void require_same_device_dtype(const char* op, std::initializer_list<const Tensor*> ts);

}  // namespace detail
}  // namespace nash
