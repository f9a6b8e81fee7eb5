// Reference compositions that benches time against nash's fused kernels (shared by nash_bench_gan_ops and
// nash_gpu_bench, so both compare against the same formula).
#pragma once
#include <vector>

#include <nash/nash.h>

namespace nash_bench {

// Training-mode batch norm of an (N, C, H, W) tensor as the composite of differentiable ops that batch_norm_train
// replaced: the batch mean and biased variance over (N, H, W), the normalization and the per-channel affine
// transform, each with its own autograd backward.
inline nash::Tensor composite_batch_norm(const nash::Tensor& x, const nash::Tensor& weight, const nash::Tensor& bias,
                                         double eps) {
  using namespace nash;
  const std::vector<int64_t> dims{0, 2, 3};
  const Shape ps{1, x.size(1), 1, 1};
  const Tensor xhat = mul(sub(x, mean(x, dims, true)), pow(add(var(x, dims, false, true), eps), -0.5));
  return add(mul(xhat, weight.reshape(ps)), bias.reshape(ps));
}

}  // namespace nash_bench
