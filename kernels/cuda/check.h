// NASH_CUDA_CHECK: the one checking macro for CUDA runtime, cuBLAS and cuDNN calls. It throws nash::Error with the
// file, line, the call's text and the library's own error string. (Launches are checked by launch() in compat.h.)
#pragma once
#include <cuda_runtime.h>


#include "nash/core/error.h"

namespace nash {
namespace detail {

inline bool status_ok(cudaError_t s) { return s == cudaSuccess; }
inline const char* status_text(cudaError_t s) { return cudaGetErrorString(s); }
// cuBLAS and cuDNN overloads live beside their users (kernels/cuda/matmul.cu, cudnn_conv.cpp), which include
// the vendor headers; the macro picks the overload from the call's return type.

[[noreturn]] inline void fail_status(const char* file, int line, const char* call, const char* text) {
  cudaGetLastError();  // clear a sticky runtime error so later calls report their own
  fail(file, ":", line, ": ", call, " failed: ", text);
}

}  // namespace detail
}  // namespace nash

#define NASH_CUDA_CHECK(call)                                                                           \
  do {                                                                                                  \
    auto status_ = (call);                                                                              \
    if (!::nash::detail::status_ok(status_))                                                            \
      ::nash::detail::fail_status(__FILE__, __LINE__, #call, ::nash::detail::status_text(status_));     \
  } while (0)
