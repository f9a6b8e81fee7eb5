// Tests of conv2d, its gradient ops and conv_transpose2d: naive references, gradcheck, gradgradcheck, shape errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <tuple>

#include "nash/core/autograd.h"
#include "nash/core/engine.h"
#include "nash/core/error.h"
#include "nash/core/gradcheck.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/tensor.h"

namespace {

using nash::DType;
using nash::Int2;
using nash::Tensor;
using V = std::vector<Tensor>;

Tensor rnd(const nash::Shape& s, DType dt, uint64_t seed) {
  nash::Generator gen(seed);
  return nash::randn(s, dt, nash::Device::cpu(), &gen);
}

struct Cfg {
  int64_t N, Cin, H, W, Cout, kh, kw;
  Int2 s, p, d;
};

std::string str(const Cfg& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "N%ld Cin%ld %ldx%ld Cout%ld k%ldx%ld s(%ld,%ld) p(%ld,%ld) d(%ld,%ld)", (long)c.N,
                (long)c.Cin, (long)c.H, (long)c.W, (long)c.Cout, (long)c.kh, (long)c.kw, (long)c.s.h, (long)c.s.w,
                (long)c.p.h, (long)c.p.w, (long)c.d.h, (long)c.d.w);
  return buf;
}

// Odd sizes, strides, paddings, dilation, 1x1 (both the direct and the grouped path), DCGAN's 4x4 s2 p1,
// batches of 1 and 3, and a batch large enough to be split into several image groups per thread.
const std::vector<Cfg> kConfigs = {
    {1, 3, 7, 9, 4, 3, 3, 1, 0, 1},
    {3, 2, 9, 8, 5, 3, 3, 2, 1, 1},
    {2, 3, 10, 11, 4, 3, 2, {1, 2}, {2, 1}, 1},
    {3, 4, 11, 9, 3, 3, 3, 1, 2, 2},
    {2, 3, 9, 10, 2, 2, 3, {2, 3}, {1, 2}, {2, 1}},
    {3, 5, 6, 7, 6, 1, 1, 1, 0, 1},
    {2, 3, 24, 24, 4, 1, 1, 1, 0, 1},
    {3, 6, 16, 16, 8, 4, 4, 2, 1, 1},
    {1, 2, 5, 5, 3, 5, 5, 3, 2, 1},
    {9, 3, 8, 8, 4, 3, 3, 1, 1, 1},
    // Shapes for the Winograd paths: 3x3 stride 1 with asymmetric padding and a 1x1 output, 4x4 stride 2 with odd
    // sizes and paddings 0 and 2 (input rows no output reads), and two with enough channels for Auto to pick them.
    {2, 5, 8, 7, 6, 3, 3, 1, {2, 0}, 1},
    {1, 2, 3, 3, 2, 3, 3, 1, 0, 1},
    {3, 4, 9, 11, 5, 4, 4, 2, 0, 1},
    {2, 3, 7, 6, 4, 4, 4, 2, {2, 1}, 1},
    {2, 33, 8, 8, 32, 3, 3, 1, 1, 1},
    {2, 32, 8, 8, 33, 4, 4, 2, 1, 1},
    // Large planes: more 2x2 output tiles than one Winograd block's GEMM columns (195 and 225 tiles per image).
    {3, 3, 26, 30, 4, 3, 3, 1, 1, 1},
    {3, 2, 60, 58, 3, 4, 4, 2, 1, 1},
    // Planes at least 8 tiles wide (the row-wise input stage) with asymmetric padding, odd sizes and padding 0 and 2.
    {2, 3, 9, 20, 4, 3, 3, 1, {2, 0}, 1},
    {2, 3, 13, 37, 3, 4, 4, 2, {0, 2}, 1},
};

// Sets the CPU convolution algorithm for one scope.
using AlgorithmScope = nash::CpuConvAlgorithmGuard;
Int2 out_hw(const Cfg& c) { return nash::conv2d_output_hw({c.H, c.W}, {c.kh, c.kw}, c.s, c.p, c.d); }

// The seven loops of a direct convolution; calls f(x index, w index, y index) for every contributing triple.
void for_each_tap(const Cfg& c, const std::function<void(int64_t, int64_t, int64_t)>& f) {
  Int2 o = out_hw(c);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t co = 0; co < c.Cout; ++co)
      for (int64_t oh = 0; oh < o.h; ++oh)
        for (int64_t ow = 0; ow < o.w; ++ow)
          for (int64_t ci = 0; ci < c.Cin; ++ci)
            for (int64_t i = 0; i < c.kh; ++i)
              for (int64_t j = 0; j < c.kw; ++j) {
                int64_t ih = oh * c.s.h - c.p.h + i * c.d.h, iw = ow * c.s.w - c.p.w + j * c.d.w;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                f(((n * c.Cin + ci) * c.H + ih) * c.W + iw, ((co * c.Cin + ci) * c.kh + i) * c.kw + j,
                  ((n * c.Cout + co) * o.h + oh) * o.w + ow);
              }
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol, const std::string& what) {
  std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double e = std::fabs(g[i] - want[i]) / (1.0 + std::fabs(want[i]));
    if (!(e <= worst)) worst = e, at = i;
  }
  EXPECT_LE(worst, tol) << what << ": element " << at << " got " << g[at] << " want " << want[at];
}

double tol_for(DType dt) { return dt == DType::Float32 ? 2e-5 : 1e-12; }

// Every naive comparison runs once per algorithm: im2col + GEMM, Winograd wherever the geometry allows, and Auto.
class ConvDtype : public ::testing::TestWithParam<std::tuple<DType, nash::CpuConvAlgorithm>> {
 protected:
  DType dtype() const { return std::get<0>(GetParam()); }
  AlgorithmScope algo_{std::get<1>(GetParam())};
};

TEST_P(ConvDtype, ForwardMatchesNaive) {
  DType dt = dtype();
  uint64_t seed = 1;
  for (const Cfg& c : kConfigs) {
    for (bool with_bias : {false, true}) {
      Tensor x = rnd({c.N, c.Cin, c.H, c.W}, dt, seed++), w = rnd({c.Cout, c.Cin, c.kh, c.kw}, dt, seed++);
      Tensor b = with_bias ? rnd({c.Cout}, dt, seed++) : Tensor();
      Int2 o = out_hw(c);
      std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), ref(c.N * c.Cout * o.h * o.w, 0.0);
      for_each_tap(c, [&](int64_t xi, int64_t wi, int64_t yi) { ref[yi] += xv[xi] * wv[wi]; });
      if (with_bias) {
        std::vector<double> bv = b.to_vector<double>();
        for (size_t i = 0; i < ref.size(); ++i) ref[i] += bv[(i / (o.h * o.w)) % c.Cout];
      }
      Tensor y = nash::conv2d(x, w, b, c.s, c.p, c.d);
      ASSERT_EQ(y.shape(), (nash::Shape{c.N, c.Cout, o.h, o.w})) << str(c);
      expect_close(y, ref, tol_for(dt), "conv2d " + str(c));
    }
  }
}

TEST_P(ConvDtype, GradInputMatchesNaive) {
  DType dt = dtype();
  uint64_t seed = 100;
  for (const Cfg& c : kConfigs) {
    Int2 o = out_hw(c);
    Tensor gy = rnd({c.N, c.Cout, o.h, o.w}, dt, seed++), w = rnd({c.Cout, c.Cin, c.kh, c.kw}, dt, seed++);
    std::vector<double> gv = gy.to_vector<double>(), wv = w.to_vector<double>(), ref(c.N * c.Cin * c.H * c.W, 0.0);
    for_each_tap(c, [&](int64_t xi, int64_t wi, int64_t yi) { ref[xi] += gv[yi] * wv[wi]; });
    Tensor gx = nash::conv2d_grad_input(gy, w, {c.H, c.W}, c.s, c.p, c.d);
    ASSERT_EQ(gx.shape(), (nash::Shape{c.N, c.Cin, c.H, c.W})) << str(c);
    expect_close(gx, ref, tol_for(dt), "conv2d_grad_input " + str(c));
  }
}

TEST_P(ConvDtype, GradWeightMatchesNaive) {
  DType dt = dtype();
  uint64_t seed = 200;
  for (const Cfg& c : kConfigs) {
    Int2 o = out_hw(c);
    Tensor x = rnd({c.N, c.Cin, c.H, c.W}, dt, seed++), gy = rnd({c.N, c.Cout, o.h, o.w}, dt, seed++);
    std::vector<double> xv = x.to_vector<double>(), gv = gy.to_vector<double>(), ref(c.Cout * c.Cin * c.kh * c.kw, 0.0);
    for_each_tap(c, [&](int64_t xi, int64_t wi, int64_t yi) { ref[wi] += xv[xi] * gv[yi]; });
    Tensor gw = nash::conv2d_grad_weight(x, gy, {c.kh, c.kw}, c.s, c.p, c.d);
    ASSERT_EQ(gw.shape(), (nash::Shape{c.Cout, c.Cin, c.kh, c.kw})) << str(c);
    // Sums over N*Ho*Wo terms, so float32 gets a looser bound.
    expect_close(gw, ref, dt == DType::Float32 ? 1e-4 : 1e-12, "conv2d_grad_weight " + str(c));
  }
}

// Transposed-conv configurations: output_padding below the stride, and at or above it where dilation allows.
struct TCfg {
  int64_t N, Cin, H, W, Cout, kh, kw;
  Int2 s, p, op, d;
};
const std::vector<TCfg> kTConfigs = {
    {2, 3, 4, 4, 2, 4, 4, 2, 1, 0, 1},  // DCGAN generator upsampling
    {1, 2, 5, 3, 3, 3, 3, 2, 1, 1, 1}, {3, 2, 3, 4, 4, 3, 2, {1, 3}, {0, 1}, {0, 2}, 1},
    {2, 3, 4, 5, 2, 3, 3, 1, 1, 1, 2},  // output_padding == stride, allowed because dilation is 2
    {2, 2, 3, 3, 3, 1, 1, 1, 0, 0, 1},
};

TEST_P(ConvDtype, TransposeMatchesNaiveScatter) {
  DType dt = dtype();
  uint64_t seed = 300;
  for (const TCfg& c : kTConfigs) {
    Tensor x = rnd({c.N, c.Cin, c.H, c.W}, dt, seed++), w = rnd({c.Cin, c.Cout, c.kh, c.kw}, dt, seed++),
           b = rnd({c.Cout}, dt, seed++);
    int64_t Ho = (c.H - 1) * c.s.h - 2 * c.p.h + c.d.h * (c.kh - 1) + c.op.h + 1;
    int64_t Wo = (c.W - 1) * c.s.w - 2 * c.p.w + c.d.w * (c.kw - 1) + c.op.w + 1;
    std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
    std::vector<double> ref(c.N * c.Cout * Ho * Wo);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = bv[(i / (Ho * Wo)) % c.Cout];
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t ci = 0; ci < c.Cin; ++ci)
        for (int64_t ih = 0; ih < c.H; ++ih)
          for (int64_t iw = 0; iw < c.W; ++iw)
            for (int64_t co = 0; co < c.Cout; ++co)
              for (int64_t i = 0; i < c.kh; ++i)
                for (int64_t j = 0; j < c.kw; ++j) {
                  int64_t oh = ih * c.s.h - c.p.h + i * c.d.h, ow = iw * c.s.w - c.p.w + j * c.d.w;
                  if (oh < 0 || oh >= Ho || ow < 0 || ow >= Wo) continue;
                  ref[((n * c.Cout + co) * Ho + oh) * Wo + ow] +=
                      xv[((n * c.Cin + ci) * c.H + ih) * c.W + iw] * wv[((ci * c.Cout + co) * c.kh + i) * c.kw + j];
                }
    Tensor y = nash::conv_transpose2d(x, w, b, c.s, c.p, c.op, c.d);
    ASSERT_EQ(y.shape(), (nash::Shape{c.N, c.Cout, Ho, Wo}));
    expect_close(y, ref, tol_for(dt), "conv_transpose2d case " + std::to_string(seed));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Conv, ConvDtype,
    ::testing::Combine(::testing::Values(DType::Float32, DType::Float64),
                       ::testing::Values(nash::CpuConvAlgorithm::Auto, nash::CpuConvAlgorithm::Im2col,
                                         nash::CpuConvAlgorithm::Winograd)),
    [](const ::testing::TestParamInfo<std::tuple<DType, nash::CpuConvAlgorithm>>& i) {
      const auto a = std::get<1>(i.param);
      const char* name = a == nash::CpuConvAlgorithm::Auto     ? "Auto"
                         : a == nash::CpuConvAlgorithm::Im2col ? "Im2col"
                                                                 : "Winograd";
      return std::string(std::get<0>(i.param) == DType::Float32 ? "Float32" : "Float64") + name;
    });

TEST(ConvKernel, NonContiguousInputsAndDeterminism) {
  Tensor x = rnd({3, 4, 9, 9}, DType::Float32, 7).transpose(2, 3);  // a non-contiguous view
  Tensor w = rnd({5, 4, 3, 3}, DType::Float32, 8);
  Tensor a = nash::conv2d(x, w, Tensor(), 2, 1);
  Tensor b = nash::conv2d(x.contiguous(), w, Tensor(), 2, 1);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  Tensor gy = rnd({3, 5, 5, 5}, DType::Float32, 9);
  // Per-thread partial weight gradients are summed in a fixed order: repeated runs agree bit for bit.
  EXPECT_EQ(nash::conv2d_grad_weight(x, gy, 3, 2, 1).to_vector(), nash::conv2d_grad_weight(x, gy, 3, 2, 1).to_vector());
}

TEST(ConvKernel, EmptyBatch) {
  Tensor x = nash::zeros({0, 3, 8, 8}), w = rnd({4, 3, 3, 3}, DType::Float32, 1);
  EXPECT_EQ(nash::conv2d(x, w, Tensor(), 2, 1).shape(), (nash::Shape{0, 4, 4, 4}));
  std::vector<float> gw = nash::conv2d_grad_weight(x, nash::zeros({0, 4, 4, 4}), 3, 2, 1).to_vector();
  EXPECT_EQ(gw, std::vector<float>(4 * 3 * 3 * 3, 0.0f));
}

TEST(ConvKernel, BackwardGivesBiasAsChannelSum) {
  Tensor x = rnd({2, 3, 6, 6}, DType::Float64, 11), w = rnd({4, 3, 3, 3}, DType::Float64, 12);
  Tensor b = rnd({4}, DType::Float64, 13).requires_grad_();
  Tensor gy = rnd({2, 4, 4, 4}, DType::Float64, 14);
  nash::conv2d(x, w, b).backward(gy);
  expect_close(b.grad(), nash::sum(gy, {0, 2, 3}).to_vector<double>(), 1e-12, "bias grad");
}

// ---- gradients by finite differences (float64) ----------------------------------------------------------------
Tensor leaf(const nash::Shape& s, uint64_t seed) { return rnd(s, DType::Float64, seed).requires_grad_(); }

void expect_ok(const nash::autograd::GradcheckResult& r, const std::string& what) {
  EXPECT_TRUE(r.ok) << what << ": " << r.message;
}

TEST(ConvGradcheck, Conv2d) {
  using nash::autograd::gradcheck;
  struct P {
    Int2 s, p, d;
  };
  for (P q : {P{1, 1, 1}, P{2, 1, 1}, P{{1, 2}, {0, 2}, 2}}) {
    Tensor x = leaf({2, 2, 5, 5}, 21), w = leaf({3, 2, 3, 3}, 22), b = leaf({3}, 23);
    expect_ok(gradcheck([q](const V& v) { return nash::conv2d(v[0], v[1], v[2], q.s, q.p, q.d); }, {x, w, b}),
              "conv2d");
  }
}

TEST(ConvGradcheck, GradInputAndGradWeight) {
  using nash::autograd::gradcheck;
  Tensor gy = leaf({2, 3, 3, 3}, 31), w = leaf({3, 2, 3, 3}, 32), x = leaf({2, 2, 5, 5}, 33);
  expect_ok(gradcheck(
                [](const V& v) {
                  return nash::conv2d_grad_input(v[0], v[1], {5, 5}, 2, 1);
                },
                {gy, w}),
            "conv2d_grad_input");
  expect_ok(gradcheck(
                [](const V& v) {
                  return nash::conv2d_grad_weight(v[0], v[1], {3, 3}, 2, 1);
                },
                {x, gy}),
            "conv2d_grad_weight");
}

TEST(ConvGradcheck, ConvTranspose2d) {
  using nash::autograd::gradcheck;
  Tensor x = leaf({2, 3, 3, 3}, 41), w = leaf({3, 2, 4, 4}, 42), b = leaf({2}, 43);
  expect_ok(gradcheck([](const V& v) { return nash::conv_transpose2d(v[0], v[1], v[2], 2, 1); }, {x, w, b}),
            "conv_transpose2d");
  Tensor x2 = leaf({2, 2, 3, 4}, 44), w2 = leaf({2, 3, 3, 3}, 45);
  expect_ok(gradcheck([](const V& v) { return nash::conv_transpose2d(v[0], v[1], Tensor(), 1, 1, 1, 2); }, {x2, w2}),
            "conv_transpose2d with output_padding == stride");
}

TEST(ConvGradgradcheck, Conv2d) {
  using nash::autograd::gradgradcheck;
  Tensor x = leaf({2, 2, 5, 5}, 51), w = leaf({3, 2, 3, 3}, 52), b = leaf({3}, 53);
  expect_ok(gradgradcheck([](const V& v) { return nash::conv2d(v[0], v[1], v[2], 2, 1); }, {x, w, b}), "conv2d");
  // A nonlinearity after the conv makes the second derivative wrt x depend on x itself (the WGAN-GP path).
  expect_ok(gradgradcheck([](const V& v) { return nash::tanh(nash::conv2d(v[0], v[1], Tensor(), 1, 1, 2)); }, {x, w}),
            "tanh(conv2d)");
}

TEST(ConvGradgradcheck, ConvTranspose2d) {
  using nash::autograd::gradgradcheck;
  Tensor x = leaf({2, 3, 3, 3}, 61), w = leaf({3, 2, 4, 4}, 62), b = leaf({2}, 63);
  expect_ok(gradgradcheck([](const V& v) { return nash::conv_transpose2d(v[0], v[1], v[2], 2, 1); }, {x, w, b}),
            "conv_transpose2d");
  expect_ok(
      gradgradcheck([](const V& v) { return nash::tanh(nash::conv_transpose2d(v[0], v[1], Tensor(), 1, 1)); }, {x, w}),
      "tanh(conv_transpose2d)");
}

TEST(ConvGradgradcheck, GradOps) {
  using nash::autograd::gradgradcheck;
  Tensor gy = leaf({2, 3, 3, 3}, 71), w = leaf({3, 2, 3, 3}, 72), x = leaf({2, 2, 5, 5}, 73);
  expect_ok(
      gradgradcheck([](const V& v) { return nash::square(nash::conv2d_grad_input(v[0], v[1], 5, 2, 1)); }, {gy, w}),
      "conv2d_grad_input");
  expect_ok(
      gradgradcheck([](const V& v) { return nash::square(nash::conv2d_grad_weight(v[0], v[1], 3, 2, 1)); }, {x, gy}),
      "conv2d_grad_weight");
}

// The Winograd paths through autograd, to second order (the WGAN-GP and R1 penalties differentiate through the
// input gradient): 3x3 stride 1 and the DCGAN's 4x4 stride 2, forward, input gradient and weight gradient.
TEST(ConvGradgradcheck, WinogradPaths) {
  using nash::autograd::gradgradcheck;
  AlgorithmScope winograd(nash::CpuConvAlgorithm::Winograd);
  Tensor x = leaf({2, 2, 6, 5}, 81), w3 = leaf({3, 2, 3, 3}, 82), w4 = leaf({3, 2, 4, 4}, 83), b = leaf({3}, 84);
  expect_ok(gradgradcheck([](const V& v) { return nash::tanh(nash::conv2d(v[0], v[1], v[2], 1, 1)); }, {x, w3, b}),
            "tanh(conv2d 3x3 s1)");
  expect_ok(gradgradcheck([](const V& v) { return nash::tanh(nash::conv2d(v[0], v[1], v[2], 2, 1)); }, {x, w4, b}),
            "tanh(conv2d 4x4 s2)");
  Tensor gy = leaf({2, 3, 3, 2}, 85);
  expect_ok(gradgradcheck([](const V& v) { return nash::square(nash::conv2d_grad_input(v[0], v[1], {6, 5}, 2, 1)); },
                          {gy, w4}),
            "conv2d_grad_input 4x4 s2");
  expect_ok(gradgradcheck([](const V& v) { return nash::square(nash::conv2d_grad_weight(v[0], v[1], 4, 2, 1)); },
                          {x, gy}),
            "conv2d_grad_weight 4x4 s2");
}

// Non-finite inputs reach the same outputs as the direct convolution's (a tile's transforms only mix the inputs
// its outputs read), and finite outputs stay exact elsewhere.
// Planes of side 12 take the gathered input stage, of side 36 the row-wise one (at least 8 tiles wide).
TEST(ConvKernel, WinogradKeepsNonFiniteValuesLocal) {
  for (const auto& [k, side] : {std::pair<int, int64_t>{3, 12}, {4, 12}, {3, 36}, {4, 36}}) {
    SCOPED_TRACE("side " + std::to_string(side));
    const int64_t s = k == 3 ? 1 : 2;
    Tensor x = rnd({1, 32, side, side}, DType::Float32, 90 + k), w = rnd({32, 32, k, k}, DType::Float32, 92 + k);
    std::vector<float> xv = x.to_vector();
    xv[5 * side + 7] = std::numeric_limits<float>::infinity();  // channel 0, row 5, column 7
    x = nash::from_vector(xv, x.shape());
    Tensor im2col, winograd;
    {
      AlgorithmScope a(nash::CpuConvAlgorithm::Im2col);
      im2col = nash::conv2d(x, w, Tensor(), s, 1);
    }
    {
      AlgorithmScope a(nash::CpuConvAlgorithm::Winograd);
      winograd = nash::conv2d(x, w, Tensor(), s, 1);
    }
    // The input gradient (for 4x4 stride 2 the transpose of the forward's mapping) from an output gradient with
    // an inf in it.
    const int64_t ho = im2col.size(2);
    std::vector<float> gv = rnd({1, 32, ho, ho}, DType::Float32, 94 + k).to_vector();
    gv[(3 * ho + 2) * ho + 1] = -std::numeric_limits<float>::infinity();  // channel 3, row 2, column 1
    const Tensor gy = nash::from_vector(gv, {1, 32, ho, ho});
    Tensor gx_im2col, gx_winograd;
    {
      AlgorithmScope a(nash::CpuConvAlgorithm::Im2col);
      gx_im2col = nash::conv2d_grad_input(gy, w, {side, side}, s, 1);
    }
    {
      AlgorithmScope a(nash::CpuConvAlgorithm::Winograd);
      gx_winograd = nash::conv2d_grad_input(gy, w, {side, side}, s, 1);
    }
    for (const auto& [what, ref, got] : {std::make_tuple("forward", im2col, winograd),
                                         std::make_tuple("grad_input", gx_im2col, gx_winograd)}) {
      std::vector<float> a = ref.to_vector(), b = got.to_vector();
      EXPECT_GT(std::count_if(a.begin(), a.end(), [](float v) { return !std::isfinite(v); }), 0) << what;
      EXPECT_GT(std::count_if(a.begin(), a.end(), [](float v) { return std::isfinite(v); }), 0) << what;
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(std::isfinite(a[i]), std::isfinite(b[i])) << what << " k" << k << " element " << i;
        if (std::isfinite(a[i]))
          EXPECT_NEAR(a[i], b[i], 2e-4 * (1 + std::fabs(a[i]))) << what << " k" << k << " element " << i;
      }
    }
  }
}

// The public knob (nash/core/engine.h): a guard selects the CPU algorithm for its scope and restores the previous
// one, and the algorithms agree on a layer Auto sends to Winograd.
TEST(ConvKernel, CpuConvAlgorithmGuardSelectsAndRestores) {
  const nash::CpuConvAlgorithm before = nash::cpu_conv_algorithm();
  Tensor x = rnd({2, 32, 8, 8}, DType::Float32, 101), w = rnd({32, 32, 4, 4}, DType::Float32, 102);
  std::vector<float> a, b;
  {
    nash::CpuConvAlgorithmGuard g(nash::CpuConvAlgorithm::Im2col);
    EXPECT_EQ(nash::cpu_conv_algorithm(), nash::CpuConvAlgorithm::Im2col);
    a = nash::conv2d(x, w, Tensor(), 2, 1).to_vector();
    {
      nash::CpuConvAlgorithmGuard inner(nash::CpuConvAlgorithm::Winograd);
      b = nash::conv2d(x, w, Tensor(), 2, 1).to_vector();
    }
    EXPECT_EQ(nash::cpu_conv_algorithm(), nash::CpuConvAlgorithm::Im2col);
  }
  EXPECT_EQ(nash::cpu_conv_algorithm(), before);
  ASSERT_EQ(a.size(), b.size());
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 2e-5 * (1 + std::fabs(a[i]))) << i;
    differ = differ || a[i] != b[i];
  }
  EXPECT_TRUE(differ) << "the two algorithms gave bit-identical results: was Winograd taken at all?";
}

// Called from a caller's own parallel region (a batch of one runs inline there, more images make an inner team
// of one): the Winograd weight gradient must not join the caller's barrier, and gives the same sums.
TEST(ConvKernel, WinogradWeightGradientInsideACallersParallelRegion) {
  AlgorithmScope winograd(nash::CpuConvAlgorithm::Winograd);
  for (int64_t n : {1, 3}) {
    Tensor x = rnd({n, 8, 8, 8}, DType::Float32, 110 + n), gy = rnd({n, 8, 4, 4}, DType::Float32, 120 + n);
    const std::vector<float> want = nash::conv2d_grad_weight(x, gy, 4, 2, 1).to_vector();
    std::vector<std::vector<float>> got(2);
#pragma omp parallel num_threads(2)
    {
      // Only thread 0 calls: the other waits at the region's end, where a stray barrier inside would hang it.
      if (omp_get_thread_num() == 0) got[0] = nash::conv2d_grad_weight(x, gy, 4, 2, 1).to_vector();
    }
    // Sums over the batch split across a different number of threads round differently.
    ASSERT_EQ(got[0].size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[0][i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << "batch " << n << " element " << i;
  }
}

// ---- argument errors ----------------------------------------------------------------------------------------
void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected nash::Error containing '" << needle << "'";
  } catch (const nash::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ConvErrors, BadShapesAndArguments) {
  Tensor x = rnd({2, 3, 8, 8}, DType::Float32, 1), w = rnd({4, 3, 3, 3}, DType::Float32, 2);
  expect_error([&] { nash::conv2d(x.reshape({6, 8, 8}), w); }, "conv2d: input must be 4-D");
  expect_error([&] { nash::conv2d(x, w.reshape({4, 27})); }, "conv2d: weight must be 4-D");
  expect_error(
      [&] {
        nash::conv2d(x, rnd({4, 2, 3, 3}, DType::Float32, 3));
      },
      "conv2d: input [2, 3, 8, 8] has 3 channels");
  expect_error([&] { nash::conv2d(x, w, rnd({5}, DType::Float32, 4)); }, "conv2d: bias");
  expect_error([&] { nash::conv2d(x, nash::zeros({4, 3, 0, 3})); }, "conv2d: weight [4, 3, 0, 3] must have a positive");
  expect_error([&] { nash::conv2d(x, w, Tensor(), 0); }, "conv2d: stride must be positive");
  expect_error([&] { nash::conv2d(x, w, Tensor(), 1, -1); }, "conv2d: padding must be non-negative");
  expect_error([&] { nash::conv2d(x, w, Tensor(), 1, 0, 0); }, "conv2d: dilation must be positive");
  expect_error([&] { nash::conv2d(x, w, Tensor(), 1, 0, 5); }, "conv2d: output size");
  expect_error([&] { nash::conv2d(x.to(DType::Float64), w); }, "conv2d: tensors have different dtypes");
  expect_error(
      [&] {
        nash::conv2d_grad_input(rnd({2, 4, 5, 5}, DType::Float32, 5), w, {8, 8});
      },
      "conv2d_grad_input: grad_out [2, 4, 5, 5] does not match");
  expect_error(
      [&] {
        nash::conv2d_grad_input(rnd({2, 3, 6, 6}, DType::Float32, 5), w, {8, 8});
      },
      "conv2d_grad_input: grad_out [2, 3, 6, 6] has 3 channels");
  expect_error(
      [&] {
        nash::conv2d_grad_weight(x, rnd({3, 4, 6, 6}, DType::Float32, 6), {3, 3});
      },
      "conv2d_grad_weight: input [2, 3, 8, 8] and grad_out [3, 4, 6, 6] have different batch sizes");
  expect_error(
      [&] {
        nash::conv2d_grad_weight(x, rnd({2, 4, 6, 6}, DType::Float32, 6), {2, 2});
      },
      "conv2d_grad_weight: grad_out [2, 4, 6, 6] does not match");
  Tensor wt = rnd({3, 4, 4, 4}, DType::Float32, 7);
  expect_error([&] { nash::conv_transpose2d(x, wt, Tensor(), 2, 1, 2); }, "conv_transpose2d: output_padding");
  expect_error([&] { nash::conv_transpose2d(x, w, Tensor(), 2, 1); }, "conv_transpose2d: input [2, 3, 8, 8] has 3");
  expect_error([&] { nash::conv_transpose2d(x, wt, rnd({3}, DType::Float32, 8), 2, 1); }, "conv_transpose2d: bias");
  expect_error(
      [&] {
        nash::conv_transpose2d(rnd({1, 3, 1, 1}, DType::Float32, 9), wt, Tensor(), 1, 3);
      },
      "conv_transpose2d: output size");
}

// ---- timing (not run by default): DCGAN discriminator convs at batch 64 ----------------------------------------
TEST(ConvTiming, DISABLED_DcganLayers) {
  struct L {
    int64_t Cin, H, Cout;
  };
  double total_ms = 0, total_flop = 0;
  for (L l : {L{1, 32, 64}, L{64, 16, 128}, L{128, 8, 256}}) {
    Tensor x = rnd({64, l.Cin, l.H, l.H}, DType::Float32, 1).requires_grad_();
    Tensor w = rnd({l.Cout, l.Cin, 4, 4}, DType::Float32, 2).requires_grad_();
    Tensor b = rnd({l.Cout}, DType::Float32, 3).requires_grad_();
    Tensor gy = rnd({64, l.Cout, l.H / 2, l.H / 2}, DType::Float32, 4);
    const double flop = 2.0 * 64 * l.Cout * (l.H / 2) * (l.H / 2) * l.Cin * 16;
    auto step = [&] {
      Tensor y = nash::conv2d(x, w, b, 2, 1);
      y.backward(gy);
    };
    for (int i = 0; i < 3; ++i) step();
    // Best of several runs: the machine is shared, and the minimum is what the kernels can do.
    const int reps = 20;
    double fwd = 1e30, all = 1e30;
    for (int i = 0; i < reps; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      Tensor y = nash::conv2d(x, w, b, 2, 1);
      auto t1 = std::chrono::steady_clock::now();
      y.backward(gy);
      auto t2 = std::chrono::steady_clock::now();
      fwd = std::min(fwd, std::chrono::duration<double, std::milli>(t1 - t0).count());
      all = std::min(all, std::chrono::duration<double, std::milli>(t2 - t0).count());
    }
    std::printf(
        "conv (64,%ld,%ld,%ld) -> (%ld,%ld,4,4) s2 p1: fwd %.3f ms (%.1f GFLOP/s), fwd+bwd %.3f ms (%.1f GFLOP/s)\n",
        (long)l.Cin, (long)l.H, (long)l.H, (long)l.Cout, (long)l.Cin, fwd, flop / fwd / 1e6, all, 3 * flop / all / 1e6);
    total_ms += all, total_flop += 3 * flop;
  }
  std::printf("total fwd+bwd %.3f ms, %.1f GFLOP/s\n", total_ms, total_flop / total_ms / 1e6);
}

}  // namespace
