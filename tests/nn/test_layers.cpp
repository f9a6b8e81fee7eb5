// Layers and init: Linear against a naive matmul, BatchNorm statistics by hand, gradchecks (float64 modules),
// Sequential/Reshape/activations, PyTorch's default initialisation bounds and seeding.
#include <cmath>

#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;

namespace {

// Per-channel mean and biased variance of x (N, C, rest...) computed in plain loops.
void channel_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  std::vector<double> v = x.to_vector<double>();
  int64_t n = x.size(0), c = x.size(1), inner = x.numel() / (n * c);
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < inner; ++i) mean[ch] += v[(b * c + ch) * inner + i];
    mean[ch] /= static_cast<double>(n * inner);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < inner; ++i) var[ch] += std::pow(v[(b * c + ch) * inner + i] - mean[ch], 2);
    var[ch] /= static_cast<double>(n * inner);
  }
}

// (x - mean_c) / sqrt(var_c + eps) * w_c + b_c in plain loops.
std::vector<double> normalise(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                              const std::vector<double>& w, const std::vector<double>& b, double eps) {
  std::vector<double> v = x.to_vector<double>();
  int64_t n = x.size(0), c = x.size(1), inner = x.numel() / (n * c);
  for (int64_t bi = 0; bi < n; ++bi)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < inner; ++i) {
        double& e = v[(bi * c + ch) * inner + i];
        e = (e - mean[ch]) / std::sqrt(var[ch] + eps) * w[ch] + b[ch];
      }
  return v;
}

void set_values(Tensor& t, const Tensor& src) {
  NoGradGuard ng;
  t.copy_(src);
}

}  // namespace

TEST(Layers, LinearMatchesNaiveMatmul) {
  manual_seed(11);
  nn::Linear lin(5, 3);
  Tensor x = randn({4, 5});
  std::vector<float> xv = x.to_vector<float>(), w = lin.weight.to_vector<float>(), b = lin.bias.to_vector<float>();
  std::vector<double> want(12);
  for (int n = 0; n < 4; ++n)
    for (int o = 0; o < 3; ++o) {
      double acc = b[o];
      for (int i = 0; i < 5; ++i) acc += static_cast<double>(xv[n * 5 + i]) * w[o * 5 + i];
      want[n * 3 + o] = acc;
    }
  nash_test::expect_values(lin(x), want, 1e-5);
  nn::Linear nobias(5, 3, false);
  EXPECT_FALSE(nobias.bias.defined());
  EXPECT_EQ(nobias.named_parameters().size(), 1u);
  expect_error([&] { lin(randn({4, 6})); }, {"Linear", "(N, 5)", "[4, 6]"});
}

// Modules create float32 parameters; to(DType::Float64) converts them in place, so the gradcheck can take the
// module's own parameters as inputs (it perturbs them in place) and call forward unchanged.
TEST(Layers, LinearGradcheck) {
  manual_seed(12);
  nn::Linear lin(3, 2);
  lin.to(DType::Float64);
  Tensor x = nash_test::leaf64({4, 3}, 1);
  auto f = [&](const std::vector<Tensor>& in) { return tanh(lin(in[0])); };
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, lin.weight, lin.bias}));
  EXPECT_GRADGRADCHECK(f, (std::vector<Tensor>{x, lin.weight, lin.bias}));
}

TEST(Layers, BatchNorm2dTrainingGradcheckAndDoubleBackward) {
  nn::BatchNorm2d bn(3);
  bn.to(DType::Float64);
  set_values(bn.weight, nash_test::leaf64({3}, 2, 1.0).detach());
  set_values(bn.bias, nash_test::leaf64({3}, 3).detach());
  Tensor x = nash_test::leaf64({2, 3, 2, 2}, 4);
  auto f = [&](const std::vector<Tensor>& in) { return bn(in[0]); };
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, bn.weight, bn.bias}));
  EXPECT_GRADGRADCHECK(f, (std::vector<Tensor>{x, bn.weight, bn.bias}));
}

TEST(Layers, BatchNorm1dGradcheck) {
  nn::BatchNorm1d bn(3);
  bn.to(DType::Float64);
  set_values(bn.weight, nash_test::leaf64({3}, 5, 1.0).detach());
  Tensor x = nash_test::leaf64({5, 3}, 6);
  auto f = [&](const std::vector<Tensor>& in) { return bn(in[0]); };
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, bn.weight, bn.bias}));
  bn.eval();
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, bn.weight, bn.bias}));
}

TEST(Layers, BatchNorm2dRunningStatsAndEvalMode) {
  manual_seed(13);
  nn::BatchNorm2d bn(3, 1e-5, 0.2);
  set_values(bn.weight, randn({3}));
  set_values(bn.bias, randn({3}));
  std::vector<double> w = bn.weight.to_vector<double>(), b = bn.bias.to_vector<double>();
  Tensor x1 = randn({4, 3, 2, 3}) * 2.0 + 1.0, x2 = randn({4, 3, 2, 3}) - 0.5;
  std::vector<double> m1, v1, m2, v2;
  channel_stats(x1, m1, v1);
  channel_stats(x2, m2, v2);

  // Training: batch statistics with the biased variance.
  nash_test::expect_values(bn(x1), normalise(x1, m1, v1, w, b, 1e-5), 1e-4);
  bn(x2);
  const double n = 4 * 2 * 3, unbias = n / (n - 1);
  std::vector<double> rm(3), rv(3);
  for (int c = 0; c < 3; ++c) {
    rm[c] = 0.8 * (0.8 * 0.0 + 0.2 * m1[c]) + 0.2 * m2[c];
    rv[c] = 0.8 * (0.8 * 1.0 + 0.2 * v1[c] * unbias) + 0.2 * v2[c] * unbias;
  }
  nash_test::expect_values(bn.running_mean, rm, 1e-5);
  nash_test::expect_values(bn.running_var, rv, 1e-5);
  EXPECT_FALSE(bn.running_mean.requires_grad());

  // Eval: running statistics, which stay put.
  bn.eval();
  Tensor x3 = randn({2, 3, 2, 2});
  nash_test::expect_values(bn(x3), normalise(x3, rm, rv, w, b, 1e-5), 1e-4);
  nash_test::expect_values(bn.running_mean, rm, 1e-6);

  expect_error([&] { bn(randn({2, 4, 2, 2})); }, {"BatchNorm2d", "(N, 3, H, W)"});
  bn.train();
  expect_error([&] { bn(randn({1, 3, 1, 1})); }, {"BatchNorm2d", "more than 1 value per channel"});
}

TEST(Layers, BatchNorm1dRunningStatsWithoutAffine) {
  manual_seed(14);
  nn::BatchNorm1d bn(4, 1e-3, 0.1, false);
  EXPECT_TRUE(bn.named_parameters().empty());
  EXPECT_EQ(bn.named_buffers().size(), 2u);
  Tensor x = randn({6, 4}) * 3.0;
  std::vector<double> m, v;
  channel_stats(x, m, v);
  std::vector<double> ones(4, 1.0), zeros(4, 0.0), rm(4), rv(4);
  nash_test::expect_values(bn(x), normalise(x, m, v, ones, zeros, 1e-3), 1e-4);
  for (int c = 0; c < 4; ++c) {
    rm[c] = 0.1 * m[c];
    rv[c] = 0.9 + 0.1 * v[c] * 6.0 / 5.0;
  }
  nash_test::expect_values(bn.running_mean, rm, 1e-5);
  nash_test::expect_values(bn.running_var, rv, 1e-5);
}

TEST(Layers, SequentialReshapeAndActivations) {
  manual_seed(15);
  auto l1 = std::make_shared<nn::Linear>(4, 12);
  nn::Sequential seq{l1, std::make_shared<nn::LeakyReLU>(0.1), std::make_shared<nn::Reshape>(Shape{3, 2, 2}),
                     std::make_shared<nn::Flatten>(), std::make_shared<nn::Tanh>()};
  EXPECT_EQ(seq.size(), 5u);
  EXPECT_EQ(seq[0].get(), l1.get());
  Tensor x = randn({2, 4});
  Tensor h = leaky_relu(linear(x, l1->weight, l1->bias), 0.1);
  expect_close(seq(x), tanh(h), 1e-6, 1e-6);
  EXPECT_EQ(nn::Reshape({3, 2, 2})(h).shape(), (Shape{2, 3, 2, 2}));
  EXPECT_EQ(nn::Reshape({-1})(randn({2, 3, 4})).shape(), (Shape{2, 12}));
  Tensor z = randn({7});
  expect_close(nn::ReLU()(z), relu(z), 0, 0);
  expect_close(nn::Sigmoid()(z), sigmoid(z), 0, 0);
  expect_close(nn::LeakyReLU()(z), leaky_relu(z, 0.2), 0, 0);
  EXPECT_EQ(nn::Sequential()(z).is_same(z), true);
}

TEST(Layers, InitDefaultBoundsFanInAndSeeding) {
  EXPECT_EQ(nn::init::fan_in(empty({8, 5})), 5);
  EXPECT_EQ(nn::init::fan_in(empty({8, 3, 4, 2})), 24);
  expect_error([] { nn::init::fan_in(empty({8})); }, {"fan_in", "[8]"});

  manual_seed(21);
  nn::Linear a(64, 200);
  manual_seed(21);
  nn::Linear b(64, 200);
  EXPECT_EQ(a.weight.to_vector(), b.weight.to_vector());
  EXPECT_EQ(a.bias.to_vector(), b.bias.to_vector());
  nn::Linear c(64, 200);
  EXPECT_NE(a.weight.to_vector(), c.weight.to_vector());

  // U(-1/8, 1/8): inside the bound, reaching near it, with the uniform's variance bound^2 / 3.
  std::vector<float> w = a.weight.to_vector();
  double lo = 1, hi = -1, sq = 0;
  for (float v : w) {
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
    sq += static_cast<double>(v) * v;
  }
  EXPECT_GE(lo, -0.125);
  EXPECT_LE(hi, 0.125);
  EXPECT_LT(lo, -0.12);
  EXPECT_GT(hi, 0.12);
  EXPECT_NEAR(sq / w.size(), 0.125 * 0.125 / 3, 2e-4);
  for (float v : a.bias.to_vector()) EXPECT_LE(std::fabs(v), 0.125);

  Tensor t = empty({4000}, DType::Float64);
  nn::init::normal_(t, 2.0, 0.5);
  EXPECT_NEAR(mean(t).item(), 2.0, 0.05);
  EXPECT_NEAR(std::sqrt(var(t, {0}).item()), 0.5, 0.03);
  nn::init::ones_(t);
  EXPECT_EQ(sum(t).item(), 4000);
  Tensor p = randn({3}).requires_grad_();  // in-place init works on leaves that require grad
  nn::init::zeros_(p);
  EXPECT_EQ(sum(abs(p)).item(), 0);
}

namespace {

// Direct convolution in loops: x (N, Cin, H, W), w (Cout, Cin, kh, kw).
std::vector<double> naive_conv2d(const Tensor& xt, const Tensor& wt, const Tensor& bt, Int2 s, Int2 p, Int2 d,
                                 Int2& out_hw) {
  std::vector<double> x = xt.to_vector<double>(), w = wt.to_vector<double>();
  int64_t n = xt.size(0), ci = xt.size(1), h = xt.size(2), wd = xt.size(3);
  int64_t co = wt.size(0), kh = wt.size(2), kw = wt.size(3);
  int64_t oh = (h + 2 * p.h - d.h * (kh - 1) - 1) / s.h + 1, ow = (wd + 2 * p.w - d.w * (kw - 1) - 1) / s.w + 1;
  out_hw = {oh, ow};
  std::vector<double> out(n * co * oh * ow, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < co; ++o)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t z = 0; z < ow; ++z) {
          double acc = bt.defined() ? bt.to_vector<double>()[o] : 0.0;
          for (int64_t c = 0; c < ci; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t yy = y * s.h - p.h + i * d.h, zz = z * s.w - p.w + j * d.w;
                if (yy < 0 || yy >= h || zz < 0 || zz >= wd) continue;
                acc += x[((b * ci + c) * h + yy) * wd + zz] * w[((o * ci + c) * kh + i) * kw + j];
              }
          out[((b * co + o) * oh + y) * ow + z] = acc;
        }
  return out;
}

// Transposed convolution as a scatter: each input pixel adds w[ci, co] into the output; w (Cin, Cout, kh, kw).
std::vector<double> naive_conv_transpose2d(const Tensor& xt, const Tensor& wt, const Tensor& bt, Int2 s, Int2 p,
                                           Int2 op, Int2& out_hw) {
  std::vector<double> x = xt.to_vector<double>(), w = wt.to_vector<double>(), bias = bt.to_vector<double>();
  int64_t n = xt.size(0), ci = xt.size(1), h = xt.size(2), wd = xt.size(3);
  int64_t co = wt.size(1), kh = wt.size(2), kw = wt.size(3);
  int64_t oh = (h - 1) * s.h - 2 * p.h + kh + op.h, ow = (wd - 1) * s.w - 2 * p.w + kw + op.w;
  out_hw = {oh, ow};
  std::vector<double> out(n * co * oh * ow, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < oh * ow; ++i) out[(b * co + o) * oh * ow + i] = bias[o];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t z = 0; z < wd; ++z)
          for (int64_t o = 0; o < co; ++o)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t yy = y * s.h - p.h + i, zz = z * s.w - p.w + j;
                if (yy < 0 || yy >= oh || zz < 0 || zz >= ow) continue;
                out[((b * co + o) * oh + yy) * ow + zz] +=
                    x[((b * ci + c) * h + y) * wd + z] * w[((c * co + o) * kh + i) * kw + j];
              }
  return out;
}

}  // namespace

TEST(Layers, Conv2dMatchesNaiveConvolution) {
  manual_seed(31);
  nn::Conv2d conv(2, 3, {3, 2}, {2, 1}, 1);
  EXPECT_EQ(conv.weight.shape(), (Shape{3, 2, 3, 2}));
  Tensor x = randn({2, 2, 5, 6});
  Int2 o;
  std::vector<double> want = naive_conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, o);
  Tensor y = conv(x);
  EXPECT_EQ(y.shape(), (Shape{2, 3, o.h, o.w}));
  nash_test::expect_values(y, want, 1e-5);

  nn::Conv2d dil(2, 4, 3, 1, 2, false, 2);
  EXPECT_FALSE(dil.bias.defined());
  want = naive_conv2d(x, dil.weight, Tensor(), 1, 2, 2, o);
  nash_test::expect_values(dil(x), want, 1e-5);
  expect_error([&] { conv(randn({2, 3, 5, 5})); }, {"Conv2d", "(N, 2, H, W)", "[2, 3, 5, 5]"});
}

TEST(Layers, ConvTranspose2dMatchesNaiveScatter) {
  manual_seed(32);
  Tensor x = randn({2, 3, 4, 3});
  using Cfg = std::vector<int64_t>;  // kernel, stride, padding, output_padding
  for (const Cfg& cfg : {Cfg{4, 2, 1, 0}, Cfg{3, 2, 1, 1}, Cfg{2, 1, 0, 0}}) {
    nn::ConvTranspose2d up(3, 2, cfg[0], cfg[1], cfg[2], cfg[3]);
    EXPECT_EQ(up.weight.shape(), (Shape{3, 2, cfg[0], cfg[0]}));
    Int2 o;
    std::vector<double> want = naive_conv_transpose2d(x, up.weight, up.bias, cfg[1], cfg[2], cfg[3], o);
    Tensor y = up(x);
    EXPECT_EQ(y.shape(), (Shape{2, 2, o.h, o.w}));
    nash_test::expect_values(y, want, 1e-5);
  }
  expect_error([] { nn::ConvTranspose2d(3, 2, 3, 2, 1, 2); }, {"ConvTranspose2d", "output_padding"});
}

TEST(Layers, ConvGradcheckInFloat64) {
  manual_seed(33);
  nn::Conv2d conv(2, 2, 3, 2, 1);
  nn::ConvTranspose2d up(2, 1, 3, 2, 1, 1);
  conv.to(DType::Float64);
  up.to(DType::Float64);
  Tensor x = nash_test::leaf64({1, 2, 4, 4}, 7);
  auto f = [&](const std::vector<Tensor>& in) { return up(tanh(conv(in[0]))); };
  std::vector<Tensor> inputs{x, conv.weight, conv.bias, up.weight, up.bias};
  EXPECT_GRADCHECK(f, inputs);
  EXPECT_GRADGRADCHECK(f, inputs);
}

TEST(Layers, ConvDefaultInitUsesPyTorchFanIn) {
  manual_seed(34);
  // Conv2d: fan_in = in * kh * kw = 4 * 9.
  nn::Conv2d conv(4, 64, 3);
  // ConvTranspose2d: PyTorch's fan_in is weight.size(1) * kh * kw = out * kh * kw = 2 * 16, not in * 16 = 1024.
  nn::ConvTranspose2d up(64, 2, 4);
  auto check = [](const Tensor& t, double bound) {
    std::vector<float> v = t.to_vector();
    double lo = 1, hi = -1;
    for (float e : v) lo = std::min<double>(lo, e), hi = std::max<double>(hi, e);
    EXPECT_GE(lo, -bound);
    EXPECT_LE(hi, bound);
    EXPECT_GT(hi - lo, 1.6 * bound) << "values should spread over most of [-bound, bound]";
  };
  check(conv.weight, 1.0 / 6.0);
  check(conv.bias, 1.0 / 6.0);
  check(up.weight, 1.0 / std::sqrt(32.0));
  EXPECT_EQ(nn::init::fan_in(up.weight), 32);
  for (float b : up.bias.to_vector()) EXPECT_LE(std::fabs(b), 1.0 / std::sqrt(32.0));
}
