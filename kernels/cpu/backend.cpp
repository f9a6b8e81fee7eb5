// The CPU backend's dispatch table (one assignment per entry, so op families add their lines independently).
#include "core/backend.h"
#include "kernels/cpu/cpu.h"

namespace nash {
namespace detail {

namespace {
Backend make_cpu_backend() {
  Backend b{};
  b.name = "CPU";
  b.unary = &cpu::unary;
  b.binary = &cpu::binary;
  b.where = &cpu::where;
  b.copy = &cpu::copy;
  b.fill = &cpu::fill;
  b.axpy = &cpu::axpy;
  b.reduce_rows = &cpu::reduce_rows;
  b.argmax_rows = &cpu::argmax_rows;
  b.matmul = &cpu::matmul;
  b.matmul_batch = &cpu::matmul_batch;
  b.conv2d = &cpu::conv2d;
  b.conv2d_grad_input = &cpu::conv2d_grad_input;
  b.conv2d_grad_weight = &cpu::conv2d_grad_weight;
  b.avg_pool2d = &cpu::avg_pool2d;
  b.avg_pool2d_grad = &cpu::avg_pool2d_grad;
  b.upsample_nearest2d = &cpu::upsample_nearest2d;
  b.sum_pool2d = &cpu::sum_pool2d;
  b.fill_uniform = &cpu::fill_uniform;
  b.fill_normal = &cpu::fill_normal;
  b.conv2d_scaled_bias_act = &cpu::conv2d_scaled_bias_act;
  b.power_iteration = &cpu::power_iteration;
  b.power_iteration_many = &cpu::power_iteration_many;
  b.batch_norm_forward = &cpu::batch_norm_forward;
  b.batch_norm_backward = &cpu::batch_norm_backward;
  b.multi_tensor_step = &cpu::multi_tensor_step;
  return b;
}
}  // namespace

const Backend& cpu_backend() {
  static const Backend b = make_cpu_backend();
  return b;
}

}  // namespace detail
}  // namespace nash
