// CPU kernels: the reference backend. Each takes output tensors already allocated by the op layer.
#pragma once
#include <cstdint>

#include "kernels/math.h"
#include "kernels/optim_step.h"
#include "nash/core/ops.h"
#include "nash/core/tensor.h"

namespace nash {
namespace cpu {

// out (contiguous) = op(x); x has out's shape with any strides (stride 0 = broadcast).
void unary(math::Unary op, double a, double b, const Tensor& x, const Tensor& out);
// out (contiguous) = op(a, b); a, b have out's shape with any strides.
void binary(math::Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
// out = cond != 0 ? a : b; all three have out's shape with any strides.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
// dst (any strides, same shape) = src (any strides).
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
// dst += alpha * src, both contiguous with equal numel.
void axpy(const Tensor& src, const Tensor& dst, double alpha);

using Reduce = math::Reduce;
// x contiguous viewed as (rows, cols); out has rows elements. Sums accumulate in double, in a fixed order.
void reduce_rows(Reduce op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);
// Index of the max of each row of x (rows, cols), written as float values.
void argmax_rows(const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);

// out (M,N) = a (M,K) @ b (K,N); a and b may be contiguous or transposed views of contiguous matrices.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out);
// The products of a batch, out[i] = a[i] @ b[i]: small ones shared across the threads one product each, large ones
// each split across the threads in turn.
void matmul_batch(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::vector<Tensor>& out);

// Convolution on NCHW; w (Cout, Cin, kh, kw). out is allocated with the right shape.
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

// Random fills from a Philox stream starting at block `offset`.
void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset);
void fill_normal(const Tensor& out, uint64_t seed, uint64_t offset);

// Equalized learning rate (kernels/cpu/scale.cpp): the unfused reference of the CUDA conv epilogue,
// out = act_gain * leaky_relu(conv2d(x, w) * scale + bias * bias_scale, act_slope).
void conv2d_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& bias, double bias_scale,
                            double act_slope, double act_gain, Int2 stride, Int2 padding, Int2 dilation,
                            const Tensor& out);

// Spectral normalization (kernels/cpu/power_iter.cpp): n_iters power iterations on the rows x (A*K) matrix of
// w (A, rows, K) (any strides) updating contiguous u (rows) and v (A*K) in place; sums in double in a
// thread-count-independent order.
void power_iteration(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters, double eps);
void power_iteration_many(const std::vector<PowerIterationItem>& items, int64_t n_iters, double eps);

// Batch normalization in training mode (kernels/cpu/norm.cpp; ops.h batch_norm_train) over contiguous (N, C, ...)
// tensors: out = (x - mean) * invstd * weight + bias with the batch's mean, biased var and invstd = 1/sqrt(var + eps)
// per channel, written to mean, var, invstd (C); weight and bias may be undefined. The backward writes
// grad_weight = sum(g * xhat), grad_bias = sum(g) and, when defined, grad_in.
void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& mean, const Tensor& var, const Tensor& invstd);
void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& weight, const Tensor& grad_in, const Tensor& grad_weight,
                         const Tensor& grad_bias);

// Optimizers (kernels/cpu/optim_step.cpp): a whole model's step in one OpenMP region.
void multi_tensor_step(const detail::MultiTensorStep& step);

// Number of Philox blocks (4 words) a fill of n elements consumes.
inline uint64_t philox_blocks(int64_t n) { return static_cast<uint64_t>((n + 3) / 4); }

}  // namespace cpu
}  // namespace nash
