// Parameter initialisers: in-place fills from nash's seeded default generator, PyTorch's fan-in bounds.
#include "nash/nn/init.h"

#include <cmath>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"

namespace nash {
namespace nn {
namespace init {

void uniform_(Tensor& t, double low, double high) {
  NASH_CHECK(t.defined(), "init::uniform_: tensor is undefined");
  NASH_CHECK(low <= high, "init::uniform_: low ", low, " > high ", high);
  NoGradGuard ng;
  Tensor u = rand(t.shape(), t.dtype(), t.device());
  t.copy_(add(mul(u, high - low), low));
}

void normal_(Tensor& t, double mean, double std) {
  NASH_CHECK(t.defined(), "init::normal_: tensor is undefined");
  NASH_CHECK(std >= 0, "init::normal_: negative std ", std);
  NoGradGuard ng;
  Tensor z = randn(t.shape(), t.dtype(), t.device());
  t.copy_(add(mul(z, std), mean));
}

void zeros_(Tensor& t) {
  NASH_CHECK(t.defined(), "init::zeros_: tensor is undefined");
  NoGradGuard ng;
  t.zero_();
}

void ones_(Tensor& t) {
  NASH_CHECK(t.defined(), "init::ones_: tensor is undefined");
  NoGradGuard ng;
  t.fill_(1.0);
}

int64_t fan_in(const Tensor& weight) {
  NASH_CHECK(weight.defined() && weight.dim() >= 2, "init::fan_in: needs a weight with at least 2 dims, got ",
             shape_str(weight));
  int64_t f = weight.size(1);
  for (int64_t d = 2; d < weight.dim(); ++d) f *= weight.size(d);
  return f;
}

void default_weight_(Tensor& weight) {
  int64_t f = fan_in(weight);
  NASH_CHECK(f > 0, "init::default_weight_: zero fan_in for weight of shape ", shape_str(weight.shape()));
  double bound = 1.0 / std::sqrt(static_cast<double>(f));
  uniform_(weight, -bound, bound);
}

void xavier_uniform_(Tensor& weight, double gain) {
  const int64_t in = fan_in(weight);
  const int64_t out = weight.numel() / weight.size(1);
  NASH_CHECK(in > 0 && out > 0, "init::xavier_uniform_: empty weight of shape ", shape_str(weight.shape()));
  NASH_CHECK(std::isfinite(gain) && gain >= 0, "init::xavier_uniform_: gain must be finite and >= 0, got ", gain);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  uniform_(weight, -bound, bound);
}

}  // namespace init
}  // namespace nn
}  // namespace nash
