// Elementwise ops: values against std:: math, broadcasting, gradients and double backward by finite differences.
#include <functional>

#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double shift;  // keeps inputs in the op's domain / away from kinks
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, 0},
      {"sqrt", [](const Tensor& x) { return sqrt(abs(x) + 0.5); }, [](double v) { return std::sqrt(std::fabs(v) + 0.5); }, 0},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, 0},
      {"log", [](const Tensor& x) { return log(abs(x) + 0.5); }, [](double v) { return std::log(std::fabs(v) + 0.5); }, 0},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::fabs(v); }, 0},
      {"square", [](const Tensor& x) { return square(x); }, [](double v) { return v * v; }, 0},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, 0},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }, [](double v) { return v > 0 ? v : 0.2 * v; }, 0},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }, 0},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, 0},
      {"softplus", [](const Tensor& x) { return softplus(x); }, [](double v) { return std::log1p(std::exp(v)); }, 0},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, [](double v) { return std::min(0.7, std::max(-0.5, v)); }, 0},
      {"pow3", [](const Tensor& x) { return pow(x, 3.0); }, [](double v) { return v * v * v; }, 0},
      {"pow_frac", [](const Tensor& x) { return pow(abs(x) + 0.5, 1.5); }, [](double v) { return std::pow(std::fabs(v) + 0.5, 1.5); }, 0},
      {"add_scalar", [](const Tensor& x) { return x + 2.5; }, [](double v) { return v + 2.5; }, 0},
      {"rsub_scalar", [](const Tensor& x) { return 1.0 - x; }, [](double v) { return 1 - v; }, 0},
      {"mul_scalar", [](const Tensor& x) { return x * -3.0; }, [](double v) { return -3 * v; }, 0},
      {"rdiv_scalar", [](const Tensor& x) { return 2.0 / (abs(x) + 0.5); }, [](double v) { return 2 / (std::fabs(v) + 0.5); }, 0},
  };
}

}  // namespace

TEST(Elementwise, UnaryValuesMatchReference) {
  for (const auto& c : unary_cases()) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      Generator g(7);
      Tensor x = randn({3, 5, 7}, dt, Device::cpu(), &g) * 2.0;
      Tensor y = c.op(x);
      std::vector<double> xs = x.to_vector<double>(), ys = y.to_vector<double>();
      double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
      for (std::size_t i = 0; i < xs.size(); ++i)
        ASSERT_NEAR(ys[i], c.ref(xs[i]), tol * (1 + std::fabs(c.ref(xs[i])))) << c.name << " at " << xs[i];
    }
  }
}

TEST(Elementwise, UnaryGradcheckAndDoubleBackward) {
  for (const auto& c : unary_cases()) {
    SCOPED_TRACE(c.name);
    // Keep samples away from the kinks of abs/relu/clamp where finite differences straddle them.
    Tensor x = leaf64({2, 3}, 11);
    {
      NoGradGuard ng;
      double* p = x.data_ptr<double>();
      for (int i = 0; i < 6; ++i)
        if (std::fabs(p[i]) < 0.05 || std::fabs(p[i] + 0.5) < 0.05 || std::fabs(p[i] - 0.7) < 0.05) p[i] += 0.2;
    }
    auto f = [&](const std::vector<Tensor>& in) { return c.op(in[0]); };
    EXPECT_GRADCHECK(f, {x});
    EXPECT_GRADGRADCHECK(f, {x});
  }
}

// relu and leaky_relu on a long row (the vectorized loop and its tail) and a strided view, with NaN, infinities
// and signed zeros among values of random sign: a NaN stays NaN (a NaN activation must not turn into a quiet 0).
TEST(Elementwise, ReluAndLeakyReluPropagateNaNOnLongAndStridedRows) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator g(21);
    std::vector<double> v = randn({4099}, DType::Float64, Device::cpu(), &g).to_vector<double>();
    const std::vector<double> special{nan, inf, -inf, 0.0, -0.0, -nan};
    for (std::size_t i = 0; i < special.size(); ++i) v[i * 613 + 5] = special[i];
    std::vector<double> pairs(2 * v.size(), 7.0);  // v in the even elements: a view with stride 2
    for (std::size_t i = 0; i < v.size(); ++i) pairs[2 * i] = v[i];
    const Tensor x = from_vector(v, {4099}).to(dt), xs = from_vector(pairs, {4099, 2}).to(dt).select(1, 0);
    for (bool strided : {false, true}) {
      const Tensor in = strided ? xs : x;
      ASSERT_EQ(in.is_contiguous(), !strided);
      const std::vector<double> r = relu(in).to_vector<double>(), l = leaky_relu(in, 0.2).to_vector<double>();
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double want_r = std::isnan(v[i]) ? nan : v[i] > 0 ? v[i] : 0.0;
        const double want_l = std::isnan(v[i]) ? nan : v[i] > 0 ? v[i] : 0.2 * v[i];
        const double tol = dt == DType::Float32 ? 1e-6 : 0.0;
        if (std::isnan(want_r)) {
          ASSERT_TRUE(std::isnan(r[i]) && std::isnan(l[i])) << dtype_name(dt) << " element " << i;
          continue;
        }
        for (const auto& [name, got, want] :
             {std::make_tuple("relu", r[i], want_r), std::make_tuple("leaky_relu", l[i], want_l)}) {
          if (std::isinf(want))
            ASSERT_EQ(got, want) << dtype_name(dt) << " " << name << " element " << i;
          else
            ASSERT_NEAR(got, want, tol * (1 + std::fabs(want))) << dtype_name(dt) << " " << name << " element " << i;
        }
      }
    }
  }
}

TEST(Elementwise, SigmoidAndSoftplusAreStableAtExtremes) {
  Tensor x = from_vector(std::vector<float>{-1000.f, -50.f, 0.f, 50.f, 1000.f}, {5});
  std::vector<float> s = sigmoid(x).to_vector();
  std::vector<float> sp = softplus(x).to_vector();
  for (float v : s) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(s[0], 0.f);
  EXPECT_EQ(s[4], 1.f);
  EXPECT_FLOAT_EQ(s[2], 0.5f);
  EXPECT_FLOAT_EQ(sp[4], 1000.f);
  EXPECT_EQ(sp[0], 0.f);
}

TEST(Elementwise, BinaryBroadcastingValues) {
  Generator g(3);
  Tensor a = randn({4, 1, 3}, DType::Float64, Device::cpu(), &g);
  Tensor b = randn({2, 1}, DType::Float64, Device::cpu(), &g);
  Tensor c = add(a, b);
  ASSERT_EQ(c.shape(), (Shape{4, 2, 3}));
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), cv = c.to_vector<double>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) {
        double A = av[i * 3 + k], B = bv[j];
        EXPECT_DOUBLE_EQ(cv[(i * 2 + j) * 3 + k], A + B);
        EXPECT_DOUBLE_EQ(mul(a, b).to_vector<double>()[(i * 2 + j) * 3 + k], A * B);
        EXPECT_DOUBLE_EQ(sub(a, b).to_vector<double>()[(i * 2 + j) * 3 + k], A - B);
        EXPECT_DOUBLE_EQ(div(a, b).to_vector<double>()[(i * 2 + j) * 3 + k], A / B);
      }
}

TEST(Elementwise, BroadcastingEdgeCases) {
  Tensor s = scalar_tensor(2.0);
  Tensor v = ones({3});
  EXPECT_EQ((s * v).shape(), (Shape{3}));
  EXPECT_EQ((v * s).shape(), (Shape{3}));
  EXPECT_EQ(add(ones({1}), ones({2, 3, 1})).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(add(ones({0, 3}), ones({1, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(add(ones({5, 1, 4}), ones({3, 1})).shape(), (Shape{5, 3, 4}));
  expect_error([] { add(ones({2, 3}), ones({3, 2})); }, {"add", "[2, 3]", "[3, 2]"});
  expect_error([] { mul(ones({4}), ones({5})); }, {"mul", "[4]", "[5]"});
  expect_error([] { add(ones({2}), ones({2}, DType::Float64)); }, {"add", "float32", "float64"});
}

TEST(Elementwise, BinaryGradientsWithBroadcasting) {
  Tensor a = leaf64({3, 1, 4}, 1), b = leaf64({2, 1}, 2, 3.0);  // b away from 0 for div and pow
  using Fn = std::function<Tensor(const Tensor&, const Tensor&)>;
  std::vector<std::pair<const char*, Fn>> ops = {
      {"add", [](const Tensor& x, const Tensor& y) { return add(x, y); }},
      {"sub", [](const Tensor& x, const Tensor& y) { return sub(x, y); }},
      {"mul", [](const Tensor& x, const Tensor& y) { return mul(x, y); }},
      {"div", [](const Tensor& x, const Tensor& y) { return div(x, y); }},
      {"pow", [](const Tensor& x, const Tensor& y) { return pow(abs(x) + 0.5, y); }},
  };
  for (auto& [name, op] : ops) {
    SCOPED_TRACE(name);
    auto f = [&](const std::vector<Tensor>& in) { return op(in[0], in[1]); };
    EXPECT_GRADCHECK(f, (std::vector<Tensor>{a, b}));
    EXPECT_GRADGRADCHECK(f, (std::vector<Tensor>{a, b}));
  }
}

TEST(Elementwise, WhereSelectsAndRoutesGradients) {
  Tensor c = from_vector(std::vector<double>{1, 0, 1, 0}, {4});
  Tensor a = leaf64({4}, 5), b = leaf64({1}, 6);
  Tensor y = where(c, a, b);
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), yv = y.to_vector<double>();
  EXPECT_EQ(yv[0], av[0]);
  EXPECT_EQ(yv[1], bv[0]);
  auto f = [&](const std::vector<Tensor>& in) { return where(c, in[0], in[1]); };
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{a, b}));
}

TEST(Elementwise, MasksCarryNoHistory) {
  Tensor x = leaf64({5}, 9);
  EXPECT_FALSE(gt(x, 0.0).requires_grad());
  EXPECT_FALSE(sign(x).requires_grad());
  EXPECT_FALSE(eq(x, x).requires_grad());
  nash_test::expect_values(gt(from_vector(std::vector<double>{-1, 0, 2}, {3}), 0.0), {0, 0, 1});
  nash_test::expect_values(le(from_vector(std::vector<double>{-1, 0, 2}, {3}), 0.0), {1, 1, 0});
}
