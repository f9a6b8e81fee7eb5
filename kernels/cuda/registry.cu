// The CUDA backend's dispatch table (real under nvcc; the emulated one registers itself for Device::emu_cuda()).
#include "core/backend.h"
#include "kernels/cuda/backend.h"
#if !defined(NASH_CUDA_EMULATION)
#include "kernels/cuda/check.h"
#endif

namespace nash {
namespace NASH_CUDA_NS {

namespace {
detail::Backend make_table() {
  detail::Backend b{};
#if defined(NASH_CUDA_EMULATION)
  b.name = "emulated CUDA";
#else
  b.name = "CUDA";
  b.set_device = [](int index) {
    int current = -1;
    if (cudaGetDevice(&current) != cudaSuccess || current != index) NASH_CUDA_CHECK(cudaSetDevice(index));
  };
#endif
  b.unary = &unary;
  b.binary = &binary;
  b.where = &where;
  b.copy = &copy;
  b.fill = &fill;
  b.axpy = &axpy;
  b.reduce_rows = &reduce_rows;
  b.argmax_rows = &argmax_rows;
  b.matmul = &matmul;
  b.matmul_batch = &matmul_batch;
  b.conv2d = &conv2d;
  b.conv2d_grad_input = &conv2d_grad_input;
  b.conv2d_grad_weight = &conv2d_grad_weight;
  b.avg_pool2d = &avg_pool2d;
  b.avg_pool2d_grad = &avg_pool2d_grad;
  b.upsample_nearest2d = &upsample_nearest2d;
  b.sum_pool2d = &sum_pool2d;
  b.fill_uniform = &fill_uniform;
  b.fill_normal = &fill_normal;
  b.conv2d_scaled_bias_act = &conv2d_scaled_bias_act;
  b.power_iteration = &power_iteration;
  b.power_iteration_many = &power_iteration_many;
  b.batch_norm_forward = &batch_norm_forward;
  b.batch_norm_backward = &batch_norm_backward;
  b.multi_tensor_step = &multi_tensor_step;
  return b;
}
}  // namespace

const detail::Backend& table() {
  static const detail::Backend b = make_table();
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
