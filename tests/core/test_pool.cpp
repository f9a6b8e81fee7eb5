// Tests of avg_pool2d / avg_pool2d_grad and upsample_nearest2d / sum_pool2d: naive references, gradchecks, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "nash/core/autograd.h"
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

void expect_close(const Tensor& got, const std::vector<double>& want, double tol, const std::string& what) {
  std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_LE(std::fabs(g[i] - want[i]), tol * (1.0 + std::fabs(want[i]))) << what << " element " << i;
}

double tol_for(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }

struct PoolCfg {
  int64_t N, C, H, W;
  Int2 k, s, p;
};
const std::vector<PoolCfg> kPools = {
    {2, 3, 8, 8, 2, 2, 0},           {1, 2, 7, 9, 3, 2, 1}, {3, 2, 6, 5, {3, 2}, {1, 2}, {1, 0}},
    {2, 2, 9, 9, 3, 0, 0},  // stride 0 means the kernel size
    {2, 1, 5, 6, {2, 3}, 1, {1, 1}},
};

// Calls f(plane, oh, ow, ih, iw) for every input element inside each output window (padding counts in the divisor).
void for_each_window(const PoolCfg& c, int64_t Ho, int64_t Wo, const std::function<void(int64_t, int64_t)>& f) {
  Int2 s{c.s.h ? c.s.h : c.k.h, c.s.w ? c.s.w : c.k.w};
  for (int64_t pl = 0; pl < c.N * c.C; ++pl)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int64_t i = 0; i < c.k.h; ++i)
          for (int64_t j = 0; j < c.k.w; ++j) {
            int64_t ih = oh * s.h - c.p.h + i, iw = ow * s.w - c.p.w + j;
            if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
            f((pl * c.H + ih) * c.W + iw, (pl * Ho + oh) * Wo + ow);
          }
}

class PoolDtype : public ::testing::TestWithParam<DType> {};

TEST_P(PoolDtype, AvgPoolAndGradMatchNaive) {
  DType dt = GetParam();
  uint64_t seed = 1;
  for (const PoolCfg& c : kPools) {
    Tensor x = rnd({c.N, c.C, c.H, c.W}, dt, seed++);
    Tensor y = nash::avg_pool2d(x, c.k, c.s, c.p);
    ASSERT_EQ(y.dim(), 4);
    int64_t Ho = y.size(2), Wo = y.size(3);
    Int2 s{c.s.h ? c.s.h : c.k.h, c.s.w ? c.s.w : c.k.w};
    ASSERT_EQ(Ho, (c.H + 2 * c.p.h - c.k.h) / s.h + 1);
    ASSERT_EQ(Wo, (c.W + 2 * c.p.w - c.k.w) / s.w + 1);
    const double area = static_cast<double>(c.k.h * c.k.w);
    std::vector<double> xv = x.to_vector<double>(), ref(c.N * c.C * Ho * Wo, 0.0);
    for_each_window(c, Ho, Wo, [&](int64_t xi, int64_t yi) { ref[yi] += xv[xi] / area; });
    expect_close(y, ref, tol_for(dt), "avg_pool2d");

    Tensor gy = rnd(y.shape(), dt, seed++);
    std::vector<double> gv = gy.to_vector<double>(), gref(x.numel(), 0.0);
    for_each_window(c, Ho, Wo, [&](int64_t xi, int64_t yi) { gref[xi] += gv[yi] / area; });
    expect_close(nash::avg_pool2d_grad(gy, {c.H, c.W}, c.k, c.s, c.p), gref, tol_for(dt), "avg_pool2d_grad");
  }
}

TEST_P(PoolDtype, UpsampleAndSumPoolMatchNaive) {
  DType dt = GetParam();
  for (int64_t sc : {1, 2, 3}) {
    Tensor x = rnd({2, 3, 4, 5}, dt, 10 + sc);
    Tensor y = nash::upsample_nearest2d(x, sc);
    ASSERT_EQ(y.shape(), (nash::Shape{2, 3, 4 * sc, 5 * sc}));
    std::vector<double> xv = x.to_vector<double>(), ref(y.numel());
    for (int64_t pl = 0; pl < 6; ++pl)
      for (int64_t i = 0; i < 4 * sc; ++i)
        for (int64_t j = 0; j < 5 * sc; ++j) ref[(pl * 4 * sc + i) * 5 * sc + j] = xv[(pl * 4 + i / sc) * 5 + j / sc];
    expect_close(y, ref, 0, "upsample_nearest2d");

    Tensor big = rnd({2, 3, 4 * sc, 5 * sc}, dt, 20 + sc);
    std::vector<double> bv = big.to_vector<double>(), sref(x.numel(), 0.0);
    for (int64_t pl = 0; pl < 6; ++pl)
      for (int64_t i = 0; i < 4 * sc; ++i)
        for (int64_t j = 0; j < 5 * sc; ++j) sref[(pl * 4 + i / sc) * 5 + j / sc] += bv[(pl * 4 * sc + i) * 5 * sc + j];
    Tensor s = nash::sum_pool2d(big, sc);
    ASSERT_EQ(s.shape(), x.shape());
    expect_close(s, sref, tol_for(dt), "sum_pool2d");
  }
}

INSTANTIATE_TEST_SUITE_P(Pool, PoolDtype, ::testing::Values(DType::Float32, DType::Float64),
                         [](const ::testing::TestParamInfo<DType>& i) {
                           return std::string(i.param == DType::Float32 ? "Float32" : "Float64");
                         });

TEST(PoolKernel, LargeInputUsesThreadsAndNonContiguousInput) {
  // Big enough for the parallel path; a transposed view must give the same result as its contiguous copy.
  Tensor x = rnd({8, 16, 32, 32}, DType::Float32, 5).transpose(2, 3);
  EXPECT_EQ(nash::avg_pool2d(x, 2).to_vector(), nash::avg_pool2d(x.contiguous(), 2).to_vector());
  EXPECT_EQ(nash::upsample_nearest2d(x, 2).to_vector(), nash::upsample_nearest2d(x.contiguous(), 2).to_vector());
  EXPECT_EQ(nash::sum_pool2d(x, 2).to_vector(), nash::sum_pool2d(x.contiguous(), 2).to_vector());
}

// ---- gradients (float64) --------------------------------------------------------------------------------------
Tensor leaf(const nash::Shape& s, uint64_t seed) { return rnd(s, DType::Float64, seed).requires_grad_(); }

void expect_ok(const nash::autograd::GradcheckResult& r, const std::string& what) {
  EXPECT_TRUE(r.ok) << what << ": " << r.message;
}

TEST(PoolGradcheck, AvgPool2d) {
  using nash::autograd::gradcheck;
  using nash::autograd::gradgradcheck;
  Tensor x = leaf({2, 2, 5, 5}, 31);
  expect_ok(gradcheck([](const V& v) { return nash::avg_pool2d(v[0], 3, 2, 1); }, {x}), "avg_pool2d");
  expect_ok(gradcheck(
                [](const V& v) {
                  return nash::avg_pool2d(v[0], {2, 3}, {1, 2}, {1, 0});
                },
                {x}),
            "avg_pool2d rectangular");
  Tensor gy = leaf({2, 2, 3, 3}, 32);
  expect_ok(gradcheck(
                [](const V& v) {
                  return nash::avg_pool2d_grad(v[0], {5, 5}, 3, 2, 1);
                },
                {gy}),
            "avg_pool2d_grad");
  // The pair is linear, so a square makes the second derivative non-trivial.
  expect_ok(gradgradcheck([](const V& v) { return nash::square(nash::avg_pool2d(v[0], 3, 2, 1)); }, {x}),
            "square(avg_pool2d)");
  expect_ok(gradgradcheck(
                [](const V& v) {
                  return nash::square(nash::avg_pool2d_grad(v[0], {5, 5}, 3, 2, 1));
                },
                {gy}),
            "square(avg_pool2d_grad)");
}

TEST(PoolGradcheck, UpsampleAndSumPool) {
  using nash::autograd::gradcheck;
  using nash::autograd::gradgradcheck;
  Tensor x = leaf({2, 2, 3, 3}, 41), big = leaf({2, 2, 6, 6}, 42);
  expect_ok(gradcheck([](const V& v) { return nash::upsample_nearest2d(v[0], 2); }, {x}), "upsample_nearest2d");
  expect_ok(gradcheck([](const V& v) { return nash::sum_pool2d(v[0], 2); }, {big}), "sum_pool2d");
  expect_ok(gradgradcheck([](const V& v) { return nash::square(nash::upsample_nearest2d(v[0], 3)); }, {x}),
            "square(upsample_nearest2d)");
  expect_ok(gradgradcheck([](const V& v) { return nash::square(nash::sum_pool2d(v[0], 3)); }, {big}),
            "square(sum_pool2d)");
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

TEST(PoolErrors, BadShapesAndArguments) {
  Tensor x = rnd({2, 3, 6, 6}, DType::Float32, 1);
  expect_error([&] { nash::avg_pool2d(x.reshape({6, 6, 6}), 2); }, "avg_pool2d: input must be 4-D");
  expect_error([&] { nash::avg_pool2d(x, 0); }, "avg_pool2d: kernel must be positive");
  expect_error([&] { nash::avg_pool2d(x, 2, -1); }, "avg_pool2d: stride must be positive");
  expect_error([&] { nash::avg_pool2d(x, 2, 2, -1); }, "avg_pool2d: padding");
  expect_error([&] { nash::avg_pool2d(x, 2, 2, 2); }, "avg_pool2d: padding");
  expect_error([&] { nash::avg_pool2d(x, 7); }, "avg_pool2d: output size");
  expect_error(
      [&] {
        nash::avg_pool2d_grad(rnd({2, 3, 4, 4}, DType::Float32, 2), {6, 6}, 2, 2, 0);
      },
      "avg_pool2d_grad: grad_out [2, 3, 4, 4] does not match");
  expect_error([&] { nash::upsample_nearest2d(x, 0); }, "upsample_nearest2d: scale must be a positive integer");
  expect_error([&] { nash::upsample_nearest2d(x.reshape({2, 3, 36}), 2); }, "upsample_nearest2d: input must be 4-D");
  expect_error([&] { nash::sum_pool2d(x, 4); }, "sum_pool2d: input [2, 3, 6, 6] has a spatial size not divisible");
  expect_error([&] { nash::sum_pool2d(x, -2); }, "sum_pool2d: scale");
}

}  // namespace
