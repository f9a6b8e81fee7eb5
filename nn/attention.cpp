// SAGAN/BigGAN self-attention from 1x1 convolutions, batched matmul and softmax.
#include "nash/nn/attention.h"

#include <string>

#include "nash/nn/init.h"
#include "nash/nn/layers.h"
#include "nash/nn/spectral_norm.h"

namespace nash {
namespace nn {

namespace {

// A bias-free 1x1 conv in -> out, Xavier-uniform, spectral-normalized when asked.
ModulePtr pointwise(int64_t in, int64_t out, bool spectral) {
  auto c = std::make_shared<Conv2d>(in, out, 1, 1, 0, /*bias=*/false);
  init::xavier_uniform_(c->weight);
  return spectral ? ModulePtr(spectral_norm(c)) : ModulePtr(c);
}

}  // namespace

Tensor self_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  NASH_CHECK(q.defined() && k.defined() && v.defined() && q.dim() == 3 && k.dim() == 3 && v.dim() == 3 &&
                 k.size(0) == q.size(0) && v.size(0) == q.size(0) && k.size(1) == q.size(1) &&
                 v.size(2) == k.size(2),
             "self_attention: expected q (N, Ck, L), k (N, Ck, L') and v (N, Cv, L'), got q ", shape_str(q), ", k ",
             shape_str(k), ", v ", shape_str(v));
  const Tensor beta = softmax(matmul(q.transpose(1, 2), k), 2);  // (N, L, L'), rows sum to 1
  return matmul(v, beta.transpose(1, 2));                        // (N, Cv, L)
}

Tensor max_pool2x2(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(2) >= 2 && x.size(3) >= 2,
             "max_pool2x2: expected (N, C, H, W) with H, W >= 2, got ", shape_str(x));
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2) / 2, w = x.size(3) / 2;
  const Tensor even = x.narrow(2, 0, 2 * h).narrow(3, 0, 2 * w);
  return amax(even.reshape({n, c, h, 2, w, 2}), {3, 5});
}

SelfAttention2d::SelfAttention2d(int64_t channels, bool spectral, int64_t key_divisor, bool pool)
    : Module("SelfAttention2d"), channels_(channels), key_divisor_(key_divisor), pool_(pool) {
  NASH_CHECK(key_divisor >= 1, "SelfAttention2d: key_divisor must be >= 1, got ", key_divisor);
  NASH_CHECK(channels >= 2 && channels % 2 == 0 && channels % key_divisor == 0, "SelfAttention2d: channels must be "
             "even and divisible by key_divisor ", key_divisor, " (keys have channels / ", key_divisor,
             ", values channels / 2), got ", channels);
  gamma = register_parameter("gamma", zeros({1}));
  query = register_module("query", pointwise(channels, channels / key_divisor, spectral));
  key = register_module("key", pointwise(channels, channels / key_divisor, spectral));
  value = register_module("value", pointwise(channels, channels / 2, spectral));
  out = register_module("out", pointwise(channels / 2, channels, spectral));
}

Tensor SelfAttention2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == channels_, "SelfAttention2d: expected x (N, ", channels_,
             ", H, W), got ", shape_str(x));
  NASH_CHECK(!pool_ || (x.size(2) >= 2 && x.size(3) >= 2), "SelfAttention2d: pooling keys and values needs H, W >= 2,"
             " got x ", shape_str(x.shape()));
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  Tensor k = key->forward(x), v = value->forward(x);
  if (pool_) {
    k = max_pool2x2(k);
    v = max_pool2x2(v);
  }
  const Tensor q = query->forward(x).reshape({n, key_channels(), h * w});
  const Tensor o = self_attention(q, k.reshape({n, key_channels(), -1}), v.reshape({n, value_channels(), -1}));
  return add(x, mul(gamma, out->forward(o.reshape({n, value_channels(), h, w}))));
}

}  // namespace nn
}  // namespace nash
