// The CUDA backend's kernel entry points: the same signatures as the CPU backend (kernels/cpu/cpu.h), compiled
// as nash::cuda_impl by nvcc and as nash::cuda_emu by the host compiler for the emulation.
#pragma once
#include "kernels/cuda/compat.h"
#include "kernels/math.h"
#include "kernels/optim_step.h"
#include "nash/core/ops.h"
#include "nash/core/tensor.h"

namespace nash {
namespace NASH_CUDA_NS {

// The stream nash's CUDA ops run on (the default stream for now).
inline Stream current_stream() { return nullptr; }

// Streaming multiprocessors of the current device: GEMMs with few output tiles split their reduction to fill them.
#if defined(NASH_CUDA_EMULATION)
inline int device_sm_count() { return 132; }  // an H100's, so the emulation takes the decisions such a GPU would
#else
int device_sm_count();
#endif

inline void require_float32(const char* op, const Tensor& t) {
  NASH_CHECK(t.dtype() == DType::Float32, op, ": CUDA kernels are float32-only, got ", dtype_name(t.dtype()),
             " (use float64 on the CPU)");
}

void fill_raw(void* data, int64_t n, DType dtype, double value, Stream stream);

void unary(math::Unary op, double a, double b, const Tensor& x, const Tensor& out);
void binary(math::Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
void axpy(const Tensor& src, const Tensor& dst, double alpha);

using Reduce = math::Reduce;
void reduce_rows(Reduce op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);
void argmax_rows(const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);

void matmul(const Tensor& a, const Tensor& b, const Tensor& out);
// A batch of products: when they share a shape and a uniform layout, one launch (the igemm's groups on the nash
// engine, cublasSgemmStridedBatched on cuBLAS); else one matmul each.
void matmul_batch(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out);
void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Int2 stride, Int2 padding, Int2 dilation,
            const Tensor& out);
void conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                       const Tensor& grad_in);
void conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 stride, Int2 padding, Int2 dilation,
                        const Tensor& grad_w);

void avg_pool2d(const Tensor& x, Int2 kernel, Int2 stride, Int2 padding, const Tensor& out);
void avg_pool2d_grad(const Tensor& grad_out, Int2 kernel, Int2 stride, Int2 padding, const Tensor& grad_in);
void upsample_nearest2d(const Tensor& x, int64_t scale, const Tensor& out);
void sum_pool2d(const Tensor& x, int64_t scale, const Tensor& out);

void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset);
void fill_normal(const Tensor& out, uint64_t seed, uint64_t offset);

// Equalized learning rate: conv_fused.cu (scale, bias, activation in the implicit-GEMM conv's store).
void conv2d_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& bias, double bias_scale,
                            double act_slope, double act_gain, Int2 stride, Int2 padding, Int2 dilation,
                            const Tensor& out);

// Spectral normalization (power_iter.cu): w (A, rows, K) as on the CPU; every matrix's iterations in one block,
// all matrices in one launch.
void power_iteration(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps);
void power_iteration_many(const std::vector<PowerIterationItem>& items, int64_t n_iters, double eps);

// Batch normalization in training mode (norm.cu): one block per channel computes its statistics and then writes
// its output (forward) or its input gradient (backward), one launch each.
void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& mean, const Tensor& var, const Tensor& invstd);
void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& weight, const Tensor& grad_in, const Tensor& grad_weight,
                         const Tensor& grad_bias);

// Optimizers (optim_step.cu): a whole model's step, one launch per phase.
void multi_tensor_step(const detail::MultiTensorStep& step);

}  // namespace NASH_CUDA_NS
}  // namespace nash
