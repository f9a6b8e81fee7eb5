// Self-attention over the positions of a feature map (Zhang et al. 2019, "Self-Attention Generative Adversarial
// Networks"; the attention block of BigGAN): each output position is a softmax-weighted sum of value vectors over
// all (or, pooled, over a quarter of the) positions, so G and D can relate distant parts of an image that
// convolutions alone only reach through many layers.
//
// Composed of existing differentiable ops (1x1 conv2d, batched matmul, softmax, amax), so it differentiates any
// number of times: gradient penalties (WGAN-GP, R1) differentiate through it.
#pragma once
#include <cstdint>

#include "nash/core/ops.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

// q (N, Ck, L), k (N, Ck, L'), v (N, Cv, L') -> o (N, Cv, L) with o[n, :, i] = Σ_j β[n, i, j] v[n, :, j] and
// β[n, i, :] = softmax_j(Σ_c q[n, c, i] k[n, c, j]): attention from each query position i over the key positions j.
// Errors name the three shapes.
Tensor self_attention(const Tensor& q, const Tensor& k, const Tensor& v);

// 2x2 max pooling with stride 2 of (N, C, H, W) -> (N, C, H/2, W/2), an odd last row or column dropped (as
// max_pool2d floors). Built from reshape and amax (nash has no max_pool2d op); ties share the gradient equally.
// Needs H, W >= 2.
Tensor max_pool2x2(const Tensor& x);

// y = x + γ · out(self_attention(query(x), key(x), value(x))) on x (N, C, H, W), with C' = C / key_divisor:
// children "query", "key" (1x1 Conv2d C -> C', no bias), "value" (1x1 Conv2d C -> C/2, no bias) and "out" (1x1 Conv2d
// C/2 -> C, no bias), each wrapped in SpectralNorm when `spectral` (then their raw weights are
// "<name>.module.weight"); parameter "gamma" (1), 0 at first, so a fresh layer is the identity and the network
// learns how much attention to mix in. Conv weights start Xavier-uniform, U(±sqrt(6 / (fan_in + fan_out))), as in
// SAGAN's reference code. With `pool` the keys and values are max_pool2x2-ed first (BigGAN's variant: a quarter of
// the attention's cost and memory, the (HW, HW/4) map instead of (HW, HW)).
// Needs C even and divisible by key_divisor >= 1; with `pool`, H, W >= 2.
class SelfAttention2d : public Module {
 public:
  explicit SelfAttention2d(int64_t channels, bool spectral = false, int64_t key_divisor = 8, bool pool = false);
  Tensor forward(const Tensor& x) override;

  int64_t channels() const { return channels_; }
  int64_t key_channels() const { return channels_ / key_divisor_; }
  int64_t value_channels() const { return channels_ / 2; }
  bool pooled() const { return pool_; }

  ModulePtr query, key, value, out;  // Conv2d, or SpectralNorm around one
  Tensor gamma;

 private:
  int64_t channels_, key_divisor_;
  bool pool_;
};

}  // namespace nn
}  // namespace nash
