// Every differentiable nash op on tensors: elementwise, reductions, linear algebra, convolution, pooling, shapes, losses.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {

// A (height, width) pair; a single integer means the same for both.
struct Int2 {
  int64_t h = 0, w = 0;
  Int2(int64_t v = 0) : h(v), w(v) {}  // NOLINT(implicit)
  Int2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const Int2& o) const { return h == o.h && w == o.w; }
};

// ---- elementwise, numpy-style broadcasting --------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a > 0 where b is not an integer
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor rsub(const Tensor& a, double b);  // b - a
Tensor rdiv(const Tensor& a, double b);  // b / a
Tensor pow(const Tensor& a, double exponent);

Tensor neg(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x);  // log(1 + exp(x)), computed stably
Tensor clamp(const Tensor& x, double min, double max);
Tensor clamp_min(const Tensor& x, double min);
Tensor clamp_max(const Tensor& x, double max);

// Non-differentiable helpers (results carry no history): 1 where true, else 0.
Tensor sign(const Tensor& x);
Tensor gt(const Tensor& x, double v);
Tensor ge(const Tensor& x, double v);
Tensor lt(const Tensor& x, double v);
Tensor le(const Tensor& x, double v);
Tensor eq(const Tensor& a, const Tensor& b);
// where(cond, a, b): a where cond != 0, else b; differentiable in a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(const Tensor& a, double b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(const Tensor& a, double b);
Tensor operator/(double a, const Tensor& b);

// ---- reductions (dims may be negative; empty dims = all) --------------------------
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor amax(const Tensor& x);  // ties share the gradient equally
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x);
// p-norm (p = 1 or 2); the gradient at a zero norm is 0.
Tensor norm(const Tensor& x, double p = 2.0);
Tensor norm(const Tensor& x, double p, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased = false, bool keepdim = false);
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Sums a broadcast result back down to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);
// Index of the maximum along dim, as float values (no gradient).
Tensor argmax(const Tensor& x, int64_t dim);

// ---- linear algebra -------------------------------------------------------------------
// (M,K) @ (K,N) -> (M,N); also (B,M,K) @ (B,K,N) and (B,M,K) @ (K,N).
Tensor matmul(const Tensor& a, const Tensor& b);
// x (N,in) · w (out,in)ᵀ + b (out) -> (N,out); b may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- convolution (NCHW, weight (Cout, Cin, kh, kw), groups = 1) -----------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), Int2 stride = 1, Int2 padding = 0,
              Int2 dilation = 1);
// Gradient of conv2d with respect to its input, for an input of spatial size input_hw.
Tensor conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 input_hw, Int2 stride = 1, Int2 padding = 0,
                         Int2 dilation = 1);
// Gradient of conv2d with respect to its weight, for a kernel of size kernel_hw.
Tensor conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 kernel_hw, Int2 stride = 1,
                          Int2 padding = 0, Int2 dilation = 1);
// Transposed convolution; weight (Cin, Cout, kh, kw) as in PyTorch.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), Int2 stride = 1,
                        Int2 padding = 0, Int2 output_padding = 0, Int2 dilation = 1);
Int2 conv2d_output_hw(Int2 input_hw, Int2 kernel_hw, Int2 stride, Int2 padding, Int2 dilation);

// ---- pooling and resampling -------------------------------------------------------------
Tensor avg_pool2d(const Tensor& x, Int2 kernel, Int2 stride = 0 /* 0: = kernel */, Int2 padding = 0);
Tensor avg_pool2d_grad(const Tensor& grad_out, Int2 input_hw, Int2 kernel, Int2 stride, Int2 padding);
Tensor upsample_nearest2d(const Tensor& x, int64_t scale);
// Sum over each scale x scale block: the gradient of upsample_nearest2d.
Tensor sum_pool2d(const Tensor& x, int64_t scale);

// ---- joining and padding ------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Zeros of `shape` with x written at [start, start + x.size(dim)) along dim: the gradient of narrow.
Tensor narrow_scatter(const Tensor& x, const Shape& shape, int64_t dim, int64_t start);

// ---- losses (mean over the batch) -----------------------------------------------------------
// Numerically stable: softplus(x) - x*t.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets);
// logits (N,C); targets (N) holding class indices 0..C-1 as float values.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
Tensor mse_loss(const Tensor& a, const Tensor& b);
// (N) class indices -> (N,C) one-hot (no gradient).
Tensor one_hot(const Tensor& indices, int64_t num_classes);

// ---- batch normalization (core/ops/norm.cpp) ------------------------------------------------
// Training-mode batch normalization of x (N, C, ...) over every dim but 1: y = (x - mean) / sqrt(var + eps) * weight
// + bias, with the batch's mean and biased variance per channel; weight and bias (C) may be undefined (no affine
// transform). One kernel pass for the statistics and output and one for the backward (instead of the composite's
// eight passes and temporaries); differentiable any number of times: under create_graph the backward is built from
// the composite ops. mean_out and var_out, when given, receive the statistics (C), without history. Needs more than
// one value per channel and eps > 0.
Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        Tensor* mean_out = nullptr, Tensor* var_out = nullptr);

// ---- spectral normalization: power iteration (state updates, no gradient) ------------------------
// One matrix for power_iteration_many: w and its unit estimates u (rows), v (cols). w is a (rows, cols) matrix with
// any strides, or a 3-D (A, rows, K) tensor standing for the rows x (A*K) matrix whose row r lists w[:, r, :] in
// order: a transposed convolution's (in, out, kh*kw) weight view, so no copy is needed for its dim 1.
struct PowerIterationItem {
  Tensor w, u, v;
};
// n_iters steps of v = normalize(wᵀu), u = normalize(w v), normalize(x) = x / max(||x||, eps), writing u and v in
// place (their versions are bumped). Records no history; u and v are contiguous state tensors that do not require
// grad. Afterwards uᵀ w v estimates the largest singular value of w.
void power_iteration(const Tensor& w, const Tensor& u, const Tensor& v, int64_t n_iters = 1, double eps = 1e-12);
// The same for several matrices of one device and dtype: one kernel launch on CUDA (per 48 matrices), a loop on
// the CPU. Each item's u and v must be distinct tensors.
void power_iteration_many(const std::vector<PowerIterationItem>& items, int64_t n_iters = 1, double eps = 1e-12);

// ---- multi-tensor updates (core/ops/foreach.cpp) ---------------------------------------------
// For every pair, in place: dst[i] += weight * (src[i] - dst[i]) (PyTorch's lerp_; a weight average's update with
// weight = 1 - decay). All pairs in one pass: one launch of the multi-tensor step kernel on CUDA, one parallel loop
// on the CPU. Records no history and bumps the destinations' versions. The pairs share one device and dtype (float32,
// or float64 on the CPU) and shapes pairwise; destinations are contiguous, do not require grad and share memory
// with no source and no other destination.
void foreach_lerp_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src, double weight);

// ---- equalized learning rate (core/ops/scale.cpp) -----------------------------------------
// w * c as a scaled copy through the backend's `scale` kernel (the run-time weight scaling of equalized-LR layers);
// its backward is scale_weight(grad, c), so it differentiates any number of times.
Tensor scale_weight(const Tensor& w, double c);
// act_gain * leaky_relu(conv2d(x, w) * scale + bias * bias_scale, act_slope); act_slope = 1 is no activation.
// On CUDA one implicit-GEMM launch with the scale, bias and activation in its epilogue; on the CPU the unfused
// composition (conv, then one pass). Needs act_slope >= 0 and act_gain > 0: the backward reads the activation's
// slope from the sign of the saved output. bias (Cout) may be undefined.
Tensor conv2d_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& bias = Tensor(),
                              double bias_scale = 1.0, double act_slope = 1.0, double act_gain = 1.0, Int2 stride = 1,
                              Int2 padding = 0, Int2 dilation = 1);
// The same for x (N, in) and w (out, in): a 1x1 conv2d_scaled_bias_act on (N, in, 1, 1).
Tensor linear_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& bias = Tensor(),
                              double bias_scale = 1.0, double act_slope = 1.0, double act_gain = 1.0);

}  // namespace nash
