// The CPU backend's dispatch table.
#include "core/backend.h"
#include "kernels/cpu/cpu.h"

namespace nash {
namespace detail {

const Backend& cpu_backend() {
  static const Backend b = {
      "CPU",          &cpu::unary,   &cpu::binary,     &cpu::where,          &cpu::copy,
      &cpu::fill,     &cpu::axpy,    &cpu::reduce_rows, &cpu::argmax_rows,   &cpu::matmul,
      &cpu::conv2d,   &cpu::conv2d_grad_input,          &cpu::conv2d_grad_weight,
      &cpu::avg_pool2d, &cpu::avg_pool2d_grad,          &cpu::upsample_nearest2d, &cpu::sum_pool2d,
      &cpu::fill_uniform, &cpu::fill_normal,
  };
  return b;
}

}  // namespace detail
}  // namespace nash
