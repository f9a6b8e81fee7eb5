// Reductions: values vs loops, dims/keepdim, ties, norms at zero, gradients and double backward.
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

TEST(Reduce, SumAndMeanOverDims) {
  Generator g(1);
  Tensor x = randn({2, 3, 4}, DType::Float64, Device::cpu(), &g);
  std::vector<double> v = x.to_vector<double>();
  Tensor s1 = sum(x, {1});
  ASSERT_EQ(s1.shape(), (Shape{2, 4}));
  Tensor s02 = sum(x, {0, 2}, true);
  ASSERT_EQ(s02.shape(), (Shape{1, 3, 1}));
  std::vector<double> a = s1.to_vector<double>(), b = s02.to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      double r = 0;
      for (int j = 0; j < 3; ++j) r += v[(i * 3 + j) * 4 + k];
      EXPECT_NEAR(a[i * 4 + k], r, 1e-12);
    }
  for (int j = 0; j < 3; ++j) {
    double r = 0;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) r += v[(i * 3 + j) * 4 + k];
    EXPECT_NEAR(b[j], r, 1e-12);
  }
  EXPECT_NEAR(mean(x).item(), sum(x).item() / 24, 1e-12);
  EXPECT_EQ(sum(x, {-1}).shape(), (Shape{2, 3}));
  expect_error([&] { sum(x, {3}); }, {"sum", "dim 3"});
  expect_error([&] { sum(x, {1, 1}); }, {"twice"});
}

TEST(Reduce, LargeSumIsAccurateAndDeterministic) {
  int64_t n = 1 << 20;
  Tensor x = full({n}, 0.1f);
  double s = sum(x).item();
  EXPECT_NEAR(s, n * static_cast<double>(0.1f), 1e-2);
  EXPECT_EQ(sum(x).item(), s);
}

TEST(Reduce, MaxMinAndTies) {
  Tensor x = from_vector(std::vector<double>{1, 5, 5, -2, 0, 3}, {2, 3}).requires_grad_();
  nash_test::expect_values(amax(x, {1}), {5, 3});
  nash_test::expect_values(amin(x, {1}), {1, -2});
  EXPECT_EQ(max(x).item(), 5);
  EXPECT_EQ(min(x).item(), -2);
  sum(amax(x, {1})).backward();
  nash_test::expect_values(x.grad(), {0, 0.5, 0.5, 0, 0, 1});
  nash_test::expect_values(argmax(x.detach(), 1), {1, 2});
}

TEST(Reduce, NormValuesAndZeroGradient) {
  Tensor x = from_vector(std::vector<double>{3, 4, 0, 0}, {2, 2}).requires_grad_();
  Tensor n = norm(x, 2.0, {1});
  nash_test::expect_values(n, {5, 0});
  sum(n).backward();
  nash_test::expect_values(x.grad(), {0.6, 0.8, 0, 0});
  EXPECT_NEAR(norm(x.detach(), 1.0).item(), 7, 1e-12);
  expect_error([&] { norm(x, 3.0); }, {"norm", "p = 3"});
}

TEST(Reduce, VarAndLogSumExpAndSoftmax) {
  Tensor x = from_vector(std::vector<double>{1, 2, 3, 4, 1000, 1001}, {3, 2});
  nash_test::expect_values(var(x, {0}, true), {std::pow(1000 - (1 + 3 + 1000) / 3.0, 2) / 2 +
                                                    (std::pow(1 - 1004 / 3.0, 2) + std::pow(3 - 1004 / 3.0, 2)) / 2,
                                                std::pow(1001 - 1007 / 3.0, 2) / 2 +
                                                    (std::pow(2 - 1007 / 3.0, 2) + std::pow(4 - 1007 / 3.0, 2)) / 2},
                           1e-9);
  Tensor l = logsumexp(x, 1);
  nash_test::expect_values(l, {2 + std::log1p(std::exp(-1.0)), 4 + std::log1p(std::exp(-1.0)),
                               1001 + std::log1p(std::exp(-1.0))},
                           1e-9);
  Tensor sm = softmax(x, 1);
  nash_test::expect_values(sum(sm, {1}), {1, 1, 1}, 1e-12);
  const double lo = 1 / (1 + std::exp(1.0)), hi = 1 - lo;  // each row is (a, a + 1), even at 1000
  nash_test::expect_values(sm, {lo, hi, lo, hi, lo, hi}, 1e-12);
  nash_test::expect_values(softmax(x, 0), {std::exp(1 - 1000.0), std::exp(2 - 1001.0), std::exp(3 - 1000.0),
                                           std::exp(4 - 1001.0), 1.0, 1.0},
                           1e-12);
}

TEST(Reduce, GradcheckAndDoubleBackward) {
  Tensor x = leaf64({3, 4, 2}, 3);
  std::vector<std::pair<const char*, autograd::TensorFn>> fns = {
      {"sum_all", [](const std::vector<Tensor>& in) { return sum(in[0]); }},
      {"sum_dims", [](const std::vector<Tensor>& in) { return sum(in[0], {0, 2}); }},
      {"mean_keep", [](const std::vector<Tensor>& in) { return mean(in[0], {1}, true); }},
      {"amax", [](const std::vector<Tensor>& in) { return amax(in[0], {1}); }},
      {"norm", [](const std::vector<Tensor>& in) { return norm(in[0], 2.0, {1, 2}); }},
      {"var", [](const std::vector<Tensor>& in) { return var(in[0], {0, 2}, true); }},
      {"logsumexp", [](const std::vector<Tensor>& in) { return logsumexp(in[0], 1); }},
      {"log_softmax", [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); }},
      {"softmax", [](const std::vector<Tensor>& in) { return softmax(in[0], 1); }},
      {"softmax_last", [](const std::vector<Tensor>& in) { return mul(softmax(in[0], -1), in[0]); }},
      {"sum_square", [](const std::vector<Tensor>& in) { return sum(square(in[0]), {2}); }},
  };
  for (auto& [name, f] : fns) {
    SCOPED_TRACE(name);
    EXPECT_GRADCHECK(f, {x});
    EXPECT_GRADGRADCHECK(f, {x});
  }
}

TEST(Reduce, SumToIsTheReverseOfBroadcasting) {
  Tensor x = ones({2, 3, 4});
  nash_test::expect_values(sum_to(x, {3, 1}), {8, 8, 8});
  EXPECT_EQ(sum_to(x, {1, 4}).shape(), (Shape{1, 4}));
  nash_test::expect_values(sum_to(x, {}), {24});
  expect_error([&] { sum_to(x, {5}); }, {"sum_to"});
}
