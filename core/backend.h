// Internal: device memory hooks (implemented by the CUDA backend when built, otherwise clear errors) and op dispatch helpers.
#pragma once
#include <cstddef>
#include <string>

#include "kernels/math.h"
#include "kernels/optim_step.h"
#include "nash/core/ops.h"
#include "nash/core/tensor.h"

namespace nash {
namespace detail {

void* cuda_malloc(std::size_t nbytes, int device);
void cuda_free(void* p, int device) noexcept;
// Copies nbytes between any two devices (host <-> device, device <-> device).
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t nbytes);

// Copies nbytes between any two devices: memcpy between host-addressable ones, the CUDA runtime otherwise.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, std::size_t nbytes);

// A device's kernels: the op layer dispatches through this table, so the CPU, CUDA and emulated-CUDA backends
// share one call path. A null entry is an op the backend lacks; calling it through call() names the op.
struct Backend {
  const char* name;
  // Makes device `index` current before a kernel runs (CUDA); null where there is nothing to select.
  void (*set_device)(int index);
  void (*unary)(math::Unary op, double a, double b, const Tensor& x, const Tensor& out);
  void (*binary)(math::Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
  void (*where)(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
  void (*copy)(const Tensor& src, const Tensor& dst);
  void (*fill)(const Tensor& dst, double value);
  void (*axpy)(const Tensor& src, const Tensor& dst, double alpha);
  void (*reduce_rows)(math::Reduce op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);
  void (*argmax_rows)(const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);
  void (*matmul)(const Tensor& a, const Tensor& b, const Tensor& out);
  // out[i] = a[i] @ b[i] for every i (2-D views of one batched product). Optional: without it each runs by matmul.
  void (*matmul_batch)(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out);
  void (*conv2d)(const Tensor& x, const Tensor& w, const Tensor& bias, Int2 stride, Int2 padding, Int2 dilation,
                 const Tensor& out);
  void (*conv2d_grad_input)(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                            const Tensor& grad_in);
  void (*conv2d_grad_weight)(const Tensor& x, const Tensor& grad_out, Int2 stride, Int2 padding, Int2 dilation,
                             const Tensor& grad_w);
  void (*avg_pool2d)(const Tensor& x, Int2 kernel, Int2 stride, Int2 padding, const Tensor& out);
  void (*avg_pool2d_grad)(const Tensor& grad_out, Int2 kernel, Int2 stride, Int2 padding, const Tensor& grad_in);
  void (*upsample_nearest2d)(const Tensor& x, int64_t scale, const Tensor& out);
  void (*sum_pool2d)(const Tensor& x, int64_t scale, const Tensor& out);
  void (*fill_uniform)(const Tensor& out, uint64_t seed, uint64_t offset);
  void (*fill_normal)(const Tensor& out, uint64_t seed, uint64_t offset);
  // Equalized learning rate: the conv whose epilogue applies
  // out = act_gain * leaky_relu(conv(x, w) * scale + bias * bias_scale, act_slope) (bias may be undefined).
  // (The weight scaling itself is the unary MulScalar kernel.)
  void (*conv2d_scaled_bias_act)(const Tensor& x, const Tensor& w, double scale, const Tensor& bias, double bias_scale,
                                 double act_slope, double act_gain, Int2 stride, Int2 padding, Int2 dilation,
                                 const Tensor& out);
  // Spectral normalization (ops.h power_iteration): power iterations updating u, v in place; w always arrives as
  // the 3-D (A, rows, K) form (a plain matrix as A = 1); `many` runs several matrices together (one CUDA launch).
  void (*power_iteration)(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps);
  void (*power_iteration_many)(const std::vector<PowerIterationItem>& items, int64_t n_iters, double eps);
  // Batch normalization in training mode (ops.h batch_norm_train) over contiguous (N, C, ...) tensors; weight and
  // bias may be undefined, as may grad_in (only the parameters' gradients wanted).
  void (*batch_norm_forward)(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                             const Tensor& mean, const Tensor& var, const Tensor& invstd);
  void (*batch_norm_backward)(const Tensor& grad_out, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                              const Tensor& weight, const Tensor& grad_in, const Tensor& grad_weight,
                              const Tensor& grad_bias);
  // Optimizers (kernels/optim_step.h): one step for a whole model's parameter tensors (Adam, nSGDA, Ada-nSGDA,
  // AdaDir), group norms included.
  void (*multi_tensor_step)(const MultiTensorStep& step);
};

// The backend of a device; throws naming op and device when none is available.
const Backend& backend(const char* op, Device d);
void register_backend(Device::Kind kind, const Backend* b);
const Backend& cpu_backend();
#ifdef NASH_WITH_CUDA
const Backend& cuda_backend();
#endif

// Calls a backend entry, or throws naming the op and device when the backend lacks it.
template <class Fn, class... A>
void call(const char* op, Device d, Fn Backend::*entry, A&&... args) {
  const Backend& b = backend(op, d);
  NASH_CHECK(b.*entry != nullptr, op, ": no ", b.name, " kernel for this op yet (tensor on ", d.str(), ")");
  if (b.set_device) b.set_device(d.index);
  try {
    (b.*entry)(std::forward<A>(args)...);
  } catch (const Error& e) {
    // Kernels name themselves ("unary: ..."); prefix the op the caller used unless the message already starts with it.
    const std::string what = e.what(), prefix = std::string(op) + ":";
    if (what.compare(0, prefix.size(), prefix) == 0) throw;
    fail(op, ": ", what);
  }
}

// Throws a clear error until the op has a kernel for the tensor's device.
void require_cpu(const char* op, const Tensor& t);
// All tensors defined in `ts` share one device and dtype; names op and shapes otherwise.
void require_same_device_dtype(const char* op, std::initializer_list<const Tensor*> ts);

}  // namespace detail
}  // namespace nash
