// Equalized learning rate: scale_weight and conv2d/linear_scaled_bias_act on the CPU against the unfused
// composition (values, gradients, double backward), the layers' initialisation, coefficients and registry.
#include <cmath>

#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {

// The unfused composition the fused op must equal: gain * leaky_relu(conv(x, w) * s + b * bs, slope).
Tensor unfused_conv(const Tensor& x, const Tensor& w, double s, const Tensor& b, double bs, double slope, double gain,
                    Int2 stride = 1, Int2 padding = 0, Int2 dilation = 1) {
  Tensor y = mul(conv2d(x, w, Tensor(), stride, padding, dilation), s);
  if (b.defined()) y = add(y, mul(b, bs).reshape({1, b.size(0), 1, 1}));
  return mul(leaky_relu(y, slope), gain);
}

struct FusedCase {
  double slope, gain, scale, bias_scale;
  bool bias;
  Int2 stride, padding, dilation;
};

const FusedCase kCases[] = {
    {0.2, std::sqrt(2.0), 0.3, 0.7, true, 1, 1, 1},   // StyleGAN's lrelu with √2 gain
    {0.0, 1.0, 1.7, 1.0, true, 2, 1, 1},              // ReLU, stride 2
    {1.0, 1.0, 0.5, 2.0, true, 1, 0, 2},              // no activation, dilation 2
    {0.1, 3.0, 0.25, 1.0, false, {2, 1}, {0, 2}, 1},  // no bias, rectangular stride/padding
};

}  // namespace

// ---- scale_weight -------------------------------------------------------------------------------------------
TEST(ScaleWeight, EqualsMultiplicationForBothDtypesAndStridedInputs) {
  Generator g(3);
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor w = randn({4, 3, 5}, t, Device::cpu(), &g);
    expect_close(scale_weight(w, 0.37), mul(w, 0.37), 0, 1e-7);
    Tensor wt = w.transpose(0, 2);  // non-contiguous
    Tensor got = scale_weight(wt, -2.5);
    EXPECT_TRUE(got.is_contiguous());
    expect_close(got, mul(wt, -2.5), 0, 1e-7);
  }
  expect_error([] { scale_weight(Tensor(), 1.0); }, {"scale_weight", "undefined"});
  expect_error([] { scale_weight(ones({2}), std::nan("")); }, {"scale_weight", "finite"});
}

TEST(ScaleWeight, GradientIsTheScaledGradientAndDifferentiatesAgain) {
  Tensor w = leaf64({3, 4}, 5);
  auto f = [](const std::vector<Tensor>& in) { return square(scale_weight(in[0], 0.6)); };
  EXPECT_GRADCHECK(f, {w});
  EXPECT_GRADGRADCHECK(f, {w});
  Tensor y = scale_weight(w, 0.6);
  EXPECT_EQ(y.grad_fn()->name(), "scale_weight");
  y.backward(ones_like(y));
  nash_test::expect_values(w.grad(), std::vector<double>(12, 0.6), 1e-15);
}

// ---- conv2d_scaled_bias_act / linear_scaled_bias_act on the CPU ------------------------------------------
TEST(ConvScaledBiasAct, CpuEqualsTheUnfusedComposition) {
  for (const FusedCase& c : kCases) {
    Tensor x = leaf64({2, 3, 7, 6}, 1), w = leaf64({5, 3, 3, 3}, 2), b = c.bias ? leaf64({5}, 3) : Tensor();
    Tensor got =
        conv2d_scaled_bias_act(x, w, c.scale, b, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
    Tensor want = unfused_conv(x, w, c.scale, b, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
    expect_close(got, want, 1e-12, 1e-12);
    // float32 runs the same kernels.
    Tensor got32 = conv2d_scaled_bias_act(x.detach().to(DType::Float32), w.detach().to(DType::Float32), c.scale,
                                          c.bias ? b.detach().to(DType::Float32) : Tensor(), c.bias_scale, c.slope,
                                          c.gain, c.stride, c.padding, c.dilation);
    expect_close(got32, want.detach(), 1e-4, 1e-4);
  }
}

TEST(ConvScaledBiasAct, GradientsEqualTheUnfusedCompositionIncludingSecondOrder) {
  for (const FusedCase& c : kCases) {
    SCOPED_TRACE("slope " + std::to_string(c.slope));
    Tensor x = leaf64({2, 3, 6, 5}, 11), w = leaf64({4, 3, 3, 3}, 12), b = c.bias ? leaf64({4}, 13) : Tensor();
    std::vector<Tensor> in{x, w};
    if (c.bias) in.push_back(b);
    auto grads = [&](bool fused) {
      Tensor y = fused ? conv2d_scaled_bias_act(x, w, c.scale, b, c.bias_scale, c.slope, c.gain, c.stride, c.padding,
                                                c.dilation)
                       : unfused_conv(x, w, c.scale, b, c.bias_scale, c.slope, c.gain, c.stride, c.padding, c.dilation);
      Tensor loss = sum(mul(square(y), add(y, 1.0)));
      std::vector<Tensor> g = autograd::grad({loss}, in, {}, true, true);
      // A penalty-like second-order term: d/d(x, w, b) of ||d loss / dx||².
      std::vector<Tensor> g2 = autograd::grad({sum(square(g[0]))}, in, {}, false, false, true);
      g.insert(g.end(), g2.begin(), g2.end());
      return g;
    };
    std::vector<Tensor> a = grads(true), want = grads(false);
    ASSERT_EQ(a.size(), want.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!want[i].defined()) continue;
      ASSERT_TRUE(a[i].defined()) << "gradient " << i;
      expect_close(a[i].detach(), want[i].detach(), 1e-10, 1e-9);
    }
  }
}

TEST(ConvScaledBiasAct, GradcheckAndGradgradcheck) {
  for (double slope : {0.2, 1.0}) {
    Tensor x = leaf64({1, 2, 4, 3}, 21), w = leaf64({2, 2, 3, 2}, 22), b = leaf64({2}, 23);
    auto f = [slope](const std::vector<Tensor>& in) {
      return conv2d_scaled_bias_act(in[0], in[1], 0.4, in[2], 1.5, slope, std::sqrt(2.0), {2, 1}, 1);
    };
    EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, w, b}));
    EXPECT_GRADGRADCHECK(f, (std::vector<Tensor>{x, w, b}));
  }
}

TEST(ConvScaledBiasAct, RejectsBadArgumentsNamingTheOp) {
  Tensor x = randn({1, 3, 5, 5}), w = randn({4, 3, 3, 3});
  expect_error([&] { conv2d_scaled_bias_act(x, w, 1.0, Tensor(), 1.0, -0.1); },
               {"conv2d_scaled_bias_act", "act_slope"});
  expect_error([&] { conv2d_scaled_bias_act(x, w, 1.0, Tensor(), 1.0, 0.2, 0.0); },
               {"conv2d_scaled_bias_act", "act_gain"});
  expect_error([&] { conv2d_scaled_bias_act(x, randn({4, 2, 3, 3}), 1.0); }, {"conv2d_scaled_bias_act", "channels"});
  expect_error([&] { conv2d_scaled_bias_act(x, w, 1.0, randn({3})); }, {"conv2d_scaled_bias_act", "bias"});
  expect_error([&] { conv2d_scaled_bias_act(x, randn({4, 3, 7, 7}), 1.0); }, {"conv2d_scaled_bias_act", "output size"});
  expect_error([&] { conv2d_scaled_bias_act(x.reshape({3, 25}), w, 1.0); }, {"conv2d_scaled_bias_act", "4-D"});
  expect_error(
      [&] {
        linear_scaled_bias_act(randn({2, 3}), randn({4, 5}), 1.0);
      },
      {"linear_scaled_bias_act", "(N, in)"});
}

TEST(LinearScaledBiasAct, EqualsLinearCompositionAndGradchecks) {
  Tensor x = leaf64({5, 4}, 31), w = leaf64({3, 4}, 32), b = leaf64({3}, 33);
  Tensor got = linear_scaled_bias_act(x, w, 0.5, b, 0.01, 0.2, std::sqrt(2.0));
  Tensor want = mul(leaky_relu(linear(x, mul(w, 0.5), mul(b, 0.01)), 0.2), std::sqrt(2.0));
  expect_close(got, want, 1e-12, 1e-12);
  auto f = [](const std::vector<Tensor>& in) {
    return linear_scaled_bias_act(in[0], in[1], 0.5, in[2], 0.01, 0.2, 2.0);
  };
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, w, b}));
  EXPECT_GRADGRADCHECK(f, (std::vector<Tensor>{x, w, b}));
}

// ---- layers ---------------------------------------------------------------------------------------------------
TEST(Equalized, InitialisesStandardNormalWeightsOverLrMultiplierAndZeroBias) {
  manual_seed(41);
  for (double lr_mul : {1.0, 0.01}) {
    nn::EqualizedConv2d conv(32, 64, 3, 1, 1, nn::EqualizedOptions().with_lr_multiplier(lr_mul));
    std::vector<double> w = conv.weight.to_vector<double>();
    double m = 0, s = 0;
    for (double v : w) m += v;
    m /= static_cast<double>(w.size());
    for (double v : w) s += (v - m) * (v - m);
    s = std::sqrt(s / static_cast<double>(w.size()));
    EXPECT_NEAR(m * lr_mul, 0.0, 0.02);
    EXPECT_NEAR(s * lr_mul, 1.0, 0.02);
    nash_test::expect_values(conv.bias, std::vector<double>(64, 0.0), 0.0);
    EXPECT_EQ(conv.fan_in(), 32 * 9);
    EXPECT_NEAR(conv.equalization_coefficient(), std::sqrt(2.0) / std::sqrt(288.0) * lr_mul, 1e-15);
    EXPECT_EQ(conv.runtime_scale(), conv.equalization_coefficient());
    EXPECT_EQ(conv.bias_coefficient(), lr_mul);
  }
  nn::EqualizedLinear lin(10, 3, nn::EqualizedOptions().with_gain(1.0).with_bias_init(1.0).with_lr_multiplier(0.5));
  EXPECT_NEAR(lin.equalization_coefficient(), 1.0 / std::sqrt(10.0) * 0.5, 1e-15);
  nash_test::expect_values(lin.bias, {2.0, 2.0, 2.0}, 0.0);  // used as 2 * 0.5 = bias_init
  nn::EqualizedLinear nobias(4, 2, nn::EqualizedOptions().with_bias(false));
  EXPECT_FALSE(nobias.bias.defined());
  EXPECT_EQ(nobias.parameters().size(), 1u);
}

TEST(Equalized, ForwardScalesWeightsAndBiasesAtRunTime) {
  manual_seed(42);
  const double lr = 0.1;
  nn::EqualizedOptions opt = nn::EqualizedOptions().with_lr_multiplier(lr);
  {
    nn::EqualizedLinear lin(6, 4, opt);
    lin.to(DType::Float64);
    {
      NoGradGuard ng;
      lin.bias.copy_(randn({4}, DType::Float64));
    }
    Tensor x = leaf64({3, 6}, 1);
    double c = std::sqrt(2.0) / std::sqrt(6.0) * lr;
    expect_close(lin(x), linear(x, mul(lin.weight, c), mul(lin.bias, lr)), 1e-12, 1e-12);
  }
  {
    nn::EqualizedConv2d conv(3, 5, {3, 2}, 2, 1, opt);
    conv.to(DType::Float64);
    {
      NoGradGuard ng;
      conv.bias.copy_(randn({5}, DType::Float64));
    }
    Tensor x = leaf64({2, 3, 7, 6}, 2);
    double c = std::sqrt(2.0) / std::sqrt(18.0) * lr;
    expect_close(conv(x), conv2d(x, mul(conv.weight, c), mul(conv.bias, lr), 2, 1), 1e-12, 1e-12);
  }
  {
    nn::EqualizedConvTranspose2d up(4, 3, 4, 2, 1, 0, opt);
    up.to(DType::Float64);
    {
      NoGradGuard ng;
      up.bias.copy_(randn({3}, DType::Float64));
    }
    EXPECT_EQ(up.fan_in(), 4 * 16);  // ProGAN's fan-in: in_channels * kh * kw
    Tensor x = leaf64({2, 4, 3, 3}, 3);
    double c = std::sqrt(2.0) / 8.0 * lr;
    Tensor y = up(x);
    EXPECT_EQ(y.shape(), (Shape{2, 3, 6, 6}));
    expect_close(y, conv_transpose2d(x, mul(up.weight, c), mul(up.bias, lr), 2, 1), 1e-12, 1e-12);
  }
}

TEST(Equalized, AttachedActivationOnCpuIsTheUnfusedComposition) {
  manual_seed(43);
  nn::EqualizedConv2d conv(3, 4, 3, 1, 1, nn::EqualizedOptions().with_activation(0.2, std::sqrt(2.0)));
  conv.to(DType::Float64);
  Tensor x = leaf64({2, 3, 5, 5}, 4);
  Tensor y = conv(x);
  EXPECT_NE(y.grad_fn()->name(), "conv2d_scaled_bias_act");
  Tensor want =
      mul(leaky_relu(conv2d(x, mul(conv.weight, conv.runtime_scale()), conv.bias, 1, 1), 0.2), std::sqrt(2.0));
  expect_close(y, want, 1e-12, 1e-12);
  // The fused op is the same function on the CPU.
  expect_close(y,
               conv2d_scaled_bias_act(x, conv.weight, conv.runtime_scale(), conv.bias, 1.0, 0.2, std::sqrt(2.0), 1, 1),
               1e-12, 1e-12);
}

TEST(Equalized, LayersGradcheckAndGradgradcheckThroughParameters) {
  manual_seed(44);
  nn::EqualizedOptions opt = nn::EqualizedOptions().with_lr_multiplier(0.3).with_activation(0.2, std::sqrt(2.0));
  nn::EqualizedLinear lin(3, 2, opt);
  nn::EqualizedConv2d conv(2, 2, 3, 1, 1, opt);
  nn::EqualizedConvTranspose2d up(2, 2, 3, 2, 1, 1, opt);
  for (nn::EqualizedModule* m : std::vector<nn::EqualizedModule*>{&lin, &conv, &up}) {
    SCOPED_TRACE(m->type_name());
    m->to(DType::Float64);
    {
      NoGradGuard ng;
      m->bias.copy_(randn(m->bias.shape(), DType::Float64));
    }
    Tensor x = m == &lin ? leaf64({2, 3}, 5) : leaf64({1, 2, 3, 3}, 6);
    auto f = [m](const std::vector<Tensor>& in) { return m->forward(in[0]); };
    std::vector<Tensor> in{x, m->weight, m->bias};
    EXPECT_GRADCHECK(f, in);
    EXPECT_GRADGRADCHECK(f, in);
  }
}

TEST(Equalized, ParameterGradientIsTheEffectiveWeightGradientTimesTheCoefficient) {
  manual_seed(45);
  nn::EqualizedLinear lin(5, 2, nn::EqualizedOptions().with_lr_multiplier(0.2));
  lin.to(DType::Float64);
  Tensor x = leaf64({4, 5}, 7).detach();
  Tensor y = lin(x);
  y.backward(ones_like(y));
  // d/dW of sum(x (cW)ᵀ + 0.2 b) = c * (column sums of x) per output row; d/db = 0.2 * N.
  std::vector<double> xv = x.to_vector<double>(), want;
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 5; ++i) {
      double s = 0;
      for (int n = 0; n < 4; ++n) s += xv[n * 5 + i];
      want.push_back(lin.runtime_scale() * s);
    }
  nash_test::expect_values(lin.weight.grad(), want, 1e-12);
  nash_test::expect_values(lin.bias.grad(), {0.8, 0.8}, 1e-12);
}

TEST(Equalized, CoefficientsAreFoundFromTheParameters) {
  auto conv = std::make_shared<nn::EqualizedConv2d>(3, 8, 3, 1, 1, nn::EqualizedOptions().with_lr_multiplier(0.5));
  Tensor w = conv->weight, b = conv->bias;
  ASSERT_TRUE(nn::equalization_coefficient(w).has_value());
  EXPECT_DOUBLE_EQ(*nn::equalization_coefficient(w), conv->equalization_coefficient());
  EXPECT_DOUBLE_EQ(*nn::equalization_coefficient(b), 0.5);
  EXPECT_FALSE(nn::equalization_coefficient(randn({3})).has_value());
  EXPECT_FALSE(nn::equalization_coefficient(Tensor()).has_value());
  nn::Linear plain(3, 2);
  std::vector<double> cs = nn::equalization_coefficients({plain.weight, w, b});
  EXPECT_EQ(cs, (std::vector<double>{1.0, conv->equalization_coefficient(), 0.5}));
  // Moves keep the parameter's identity, so the coefficient stays attached.
  conv->to(DType::Float64);
  EXPECT_DOUBLE_EQ(nn::equalization_coefficient(conv->parameters()[0]).value_or(-1), conv->runtime_scale());
  // A dead layer's parameters are forgotten, even if a new tensor reuses the address.
  const TensorImpl* addr = w.impl();
  conv.reset();
  EXPECT_TRUE(nn::equalization_coefficient(w).has_value());  // w still holds the parameter alive
  w = Tensor();
  b = Tensor();
  for (int i = 0; i < 50; ++i) {
    Tensor t = randn({2});
    if (t.impl() == addr) EXPECT_FALSE(nn::equalization_coefficient(t).has_value());
  }
}

TEST(Equalized, RejectsBadOptionsAndInputs) {
  expect_error([] { nn::EqualizedLinear(3, 2, nn::EqualizedOptions().with_lr_multiplier(0)); },
               {"EqualizedLinear", "lr_multiplier"});
  expect_error([] { nn::EqualizedConv2d(3, 2, 3, 1, 0, nn::EqualizedOptions().with_gain(-1)); },
               {"EqualizedConv2d", "gain"});
  expect_error([] { nn::EqualizedConv2d(3, 2, 3, 1, 0, nn::EqualizedOptions().with_activation(-0.2)); },
               {"EqualizedConv2d", "activation_slope"});
  expect_error([] { nn::EqualizedConv2d(0, 2, 3); }, {"EqualizedConv2d", "positive"});
  nn::EqualizedConv2d conv(3, 2, 3);
  expect_error([&] { conv(randn({1, 4, 5, 5})); }, {"EqualizedConv2d", "expected input (N, 3, H, W)"});
  nn::EqualizedLinear lin(3, 2);
  expect_error([&] { lin(randn({2, 4})); }, {"EqualizedLinear", "expected input (N, 3)"});
}
