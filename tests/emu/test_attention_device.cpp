// SAGAN self-attention on the CUDA backends (emulated always, a real GPU when one answers): the CPU's output, and
// the CPU's gradients of a loss with a gradient penalty (so the device's double backward is checked too).
#include <cmath>
#include <vector>

#include "emu/device_test.h"
#include "nash/nn/attention.h"
#include "support.h"

using namespace nash;
using nash_test::parameter_grads;
using nash_test::relative_error;

namespace {

class AttentionDevice : public nash_test::DeviceTest {};

// sum(y · r) + ||∂ sum(y · r) / ∂x||²: a WGAN-GP-like loss, so its backward runs the layer's double backward.
Tensor penalized(nn::SelfAttention2d& a, const Tensor& x, const Tensor& r) {
  const Tensor s = sum(mul(a.forward(x), r));
  const Tensor g = autograd::grad({s}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return add(s, sum(square(g)));
}

}  // namespace

TEST_P(AttentionDevice, ForwardAndPenaltyGradientsMatchTheCpu) {
  for (bool variant : {false, true}) {  // plain; spectral with pooled keys and values
    SCOPED_TRACE(variant ? "spectral, pooled" : "plain");
    auto make = [&] {
      manual_seed(12);
      auto a = std::make_shared<nn::SelfAttention2d>(16, variant, 8, variant);
      a->gamma.detach().fill_(0.5);
      return a;
    };
    auto c = make(), d = make();
    d->to(device_);
    const Tensor x = nash_test::randn32({2, 16, 6, 5}, 3).requires_grad_();
    const Tensor xd = x.detach().to(device_).requires_grad_();
    const Tensor r = nash_test::randn32({2, 16, 6, 5}, 4);
    const Tensor yc = c->forward(x), yd = d->forward(xd);
    EXPECT_EQ(yd.device(), device_);
    EXPECT_LT(nash_test::rel_error(yd, yc), 1e-5);
    EXPECT_GT(nash_test::rel_error(yc, x), 1e-2);  // the attention term is not negligible
    penalized(*c, x, r).backward();
    penalized(*d, xd, r.to(device_)).backward();
    EXPECT_LT(nash_test::rel_error(xd.grad(), x.grad()), 1e-4) << "the input's gradient";
    EXPECT_LT(relative_error(parameter_grads(*d), parameter_grads(*c)), 1e-4) << "the parameters' gradients";
  }
}

NASH_INSTANTIATE_DEVICE_TEST(AttentionDevice);
