// The CUDA backend's dispatch table (real under nvcc; the emulated one registers itself for Device::emu_cuda()).
#include "core/backend.h"
#include "kernels/cuda/backend.h"

namespace nash {
namespace NASH_CUDA_NS {

const detail::Backend& table() {
  static const detail::Backend b = {
#if defined(NASH_CUDA_EMULATION)
      "emulated CUDA",
#else
      "CUDA",
#endif
      &unary, &binary, &where, &copy, &fill, &axpy, &reduce_rows, &argmax_rows,
      &matmul, &conv2d, &conv2d_grad_input, &conv2d_grad_weight,
      &avg_pool2d, &avg_pool2d_grad, &upsample_nearest2d, &sum_pool2d,
      &fill_uniform, &fill_normal,
  };
  return b;
}

#if defined(NASH_CUDA_EMULATION)
namespace {
const bool registered = (detail::register_backend(Device::Kind::EmuCUDA, &table()), true);
}  // namespace
#endif

}  // namespace NASH_CUDA_NS

#if !defined(NASH_CUDA_EMULATION)
namespace detail {
const Backend& cuda_backend() { return cuda_impl::table(); }
}  // namespace detail
#endif

}  // namespace nash
