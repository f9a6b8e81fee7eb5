// The equalized-LR CUDA kernels (the MulScalar weight scaling, conv_fused.cu) on the emulated device (and a real GPU when one answers):
// the scaled copy against the CPU, the one-launch fused conv against the unfused composition on the same device
// (bound 1e-4) and against the CPU, its gradients and double backward, and the layers' use of it.
#include <cmath>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;

namespace {

constexpr double kScaleBound = 1e-6;  // one multiplication per element: the same float result
constexpr double kFusedBound = 1e-4;  // fused vs unfused: the same GEMM, the epilogue rounded once less
constexpr double kConvBound = 1e-3;   // device vs CPU for GEMM/conv (different summation orders)

using nash_test::rel_error;
Tensor rnd(const Shape& s, uint64_t seed) { return nash_test::randn32(s, seed); }

Tensor unfused(const Tensor& x, const Tensor& w, double s, const Tensor& b, double bs, double slope, double gain,
               Int2 stride, Int2 padding, Int2 dilation) {
  Tensor y = conv2d(x, scale_weight(w, s), b.defined() ? mul(b, bs) : Tensor(), stride, padding, dilation);
  return mul(leaky_relu(y, slope), gain);
}

struct Case {
  Shape x, w;
  double scale, bias_scale, slope, gain;
  bool bias;
  Int2 stride, padding, dilation;
};

// Odd sizes: partial 64-wide tiles in both GEMM dimensions and a K that is not a multiple of 16.
const Case kCases[] = {
    {{2, 3, 9, 7}, {5, 3, 3, 3}, 0.27, 1.0, 0.2, std::sqrt(2.0), true, 1, 1, 1},
    {{3, 5, 11, 10}, {67, 5, 3, 3}, 0.5, 0.01, 0.0, 1.0, true, 2, 1, 1},
    {{1, 4, 8, 9}, {6, 4, 1, 1}, 1.3, 1.0, 1.0, 1.0, false, 1, 0, 1},
    {{2, 2, 9, 9}, {3, 2, 3, 2}, 0.8, 2.0, 0.1, 2.5, true, {1, 2}, {2, 0}, {2, 1}},
};

class FusedConv : public nash_test::DeviceTest {};

}  // namespace

TEST_P(FusedConv, ScaleKernelMatchesTheCpuOnOddAndMisalignedSizes) {
  for (int64_t n : {1, 3, 4, 257, 1031}) {
    Tensor x = rnd({n + 1}, static_cast<uint64_t>(n));
    for (int64_t off : {0, 1}) {  // offset 1: not 16-byte aligned, the scalar path
      SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(off));
      Tensor xc = x.narrow(0, off, n);
      Tensor got = scale_weight(xc.to(device_).narrow(0, 0, n), -0.37);
      EXPECT_EQ(got.device(), device_);
      EXPECT_LE(rel_error(got, scale_weight(xc, -0.37)), kScaleBound);
      Tensor xd = x.to(device_).narrow(0, off, n);
      EXPECT_LE(rel_error(scale_weight(xd, 2.0), mul(xc, 2.0)), kScaleBound);
    }
  }
  // Non-contiguous weights are copied first.
  Tensor w = rnd({4, 3, 5}, 9);
  EXPECT_LE(rel_error(scale_weight(w.to(device_).transpose(0, 2), 0.5), mul(w.transpose(0, 2), 0.5)), kScaleBound);
}

TEST_P(FusedConv, OneLaunchEqualsTheUnfusedCompositionAndTheCpu) {
  int i = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE("case " + std::to_string(i++));
    Tensor x = rnd(c.x, 1), w = rnd(c.w, 2), b = c.bias ? rnd({c.w[0]}, 3) : Tensor();
    Tensor xd = x.to(device_), wd = w.to(device_), bd = c.bias ? b.to(device_) : Tensor();
    Tensor fused =
        conv2d_scaled_bias_act(xd, wd, c.scale, bd, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
    EXPECT_EQ(fused.device(), device_);
    Tensor ref_dev = unfused(xd, wd, c.scale, bd, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
    EXPECT_LE(rel_error(fused, ref_dev), kFusedBound);
    Tensor ref_cpu = unfused(x, w, c.scale, b, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
    EXPECT_LE(rel_error(fused, ref_cpu), kConvBound);
  }
}

TEST_P(FusedConv, GradientsAndDoubleBackwardMatchTheCpu) {
  for (std::size_t ci : {0, 3}) {
    const Case& c = kCases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    auto run = [&](Device d) {
      Tensor x = rnd(c.x, 11).to(d).requires_grad_(), w = rnd(c.w, 12).to(d).requires_grad_();
      Tensor b = rnd({c.w[0]}, 13).to(d).requires_grad_();
      Tensor r = rnd({c.x[0], c.w[0], 1, 1}, 14).to(d);
      Tensor y =
          conv2d_scaled_bias_act(x, w, c.scale, b, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
      std::vector<Tensor> g = autograd::grad({sum(mul(y, r))}, {x, w, b}, {}, true, true);
      // The WGAN-GP shape: a function of the input gradient, differentiated into the weights.
      std::vector<Tensor> g2 = autograd::grad({sum(square(g[0]))}, {w, b}, {}, false, false, true);
      g.insert(g.end(), g2.begin(), g2.end());
      return g;
    };
    std::vector<Tensor> dev = run(device_), cpu = run(Device::cpu());
    const char* names[] = {"dx", "dw", "db", "d2w", "d2b"};
    for (std::size_t k = 0; k < cpu.size(); ++k) {
      SCOPED_TRACE(names[k]);
      if (!cpu[k].defined()) continue;  // d2b: the input gradient sees the bias only through the (constant) mask
      ASSERT_TRUE(dev[k].defined());
      EXPECT_LE(rel_error(dev[k].detach(), cpu[k].detach()), kConvBound);
    }
  }
}

TEST_P(FusedConv, EqualizedLayersUseTheFusedKernelWithAnActivation) {
  manual_seed(5);
  nn::EqualizedOptions opt = nn::EqualizedOptions().with_lr_multiplier(0.5).with_activation(0.2, std::sqrt(2.0));
  nn::EqualizedConv2d conv(3, 7, 3, 1, 1, opt);
  nn::EqualizedLinear lin(9, 5, opt);
  {
    NoGradGuard ng;
    conv.bias.copy_(rnd({7}, 6));
    lin.bias.copy_(rnd({5}, 7));
  }
  Tensor x = rnd({2, 3, 6, 5}, 8), xl = rnd({3, 9}, 9);
  Tensor want = conv(x), want_l = lin(xl);  // CPU: unfused
  conv.to(device_);
  lin.to(device_);
  Tensor got = conv(x.to(device_)), got_l = lin(xl.to(device_));
  EXPECT_EQ(got.grad_fn()->name(), "conv2d_scaled_bias_act");
  EXPECT_LE(rel_error(got, want), kConvBound);
  EXPECT_LE(rel_error(got_l, want_l), kConvBound);
  conv.allow_fused = false;
  Tensor plain = conv(x.to(device_));
  EXPECT_NE(plain.grad_fn()->name(), "conv2d_scaled_bias_act");
  EXPECT_LE(rel_error(got, plain), kFusedBound);
  // The parameter gradients agree too.
  sum(square(got)).backward();
  Tensor gw_fused = conv.weight.grad().to(Device::cpu());
  conv.zero_grad();
  sum(square(plain)).backward();
  EXPECT_LE(rel_error(gw_fused, conv.weight.grad()), kFusedBound);
}

TEST_P(FusedConv, RejectsFloat64OnTheDevice) {
  if (!device_.is_emu_cuda()) GTEST_SKIP() << "checked on the emulated device";
  Tensor x = empty({1, 1, 3, 3}, DType::Float64, device_), w = empty({1, 1, 1, 1}, DType::Float64, device_);
  nash_test::expect_error([&] { conv2d_scaled_bias_act(x, w, 1.0); }, {"conv2d_scaled_bias_act", "float32"});
  nash_test::expect_error([&] { scale_weight(x, 1.0); }, {"scale", "float32"});
}

NASH_INSTANTIATE_DEVICE_TEST(FusedConv);
