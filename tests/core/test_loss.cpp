// Losses: stable BCE-with-logits and cross-entropy against direct formulas, gradients, and bad inputs.
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

TEST(Loss, BceWithLogitsMatchesFormulaAndIsStable) {
  Tensor x = from_vector(std::vector<double>{-3, 0.5, 2, 800, -800}, {5});
  Tensor t = from_vector(std::vector<double>{0, 1, 1, 1, 0}, {5});
  double ref = 0;
  std::vector<double> xv = x.to_vector<double>(), tv = t.to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    double p = 1 / (1 + std::exp(-xv[i]));
    ref += -(tv[i] * std::log(p) + (1 - tv[i]) * std::log(1 - p));
  }
  EXPECT_NEAR(binary_cross_entropy_with_logits(x, t).item(), ref / 5, 1e-12);
  Tensor xf = from_vector(std::vector<float>{1000.f, -1000.f}, {2});
  Tensor tf = from_vector(std::vector<float>{0.f, 1.f}, {2});
  EXPECT_NEAR(binary_cross_entropy_with_logits(xf, tf).item(), 1000.0, 1e-3);
  expect_error([&] { binary_cross_entropy_with_logits(x, ones({4}, DType::Float64)); }, {"binary_cross_entropy", "[5]", "[4]"});
}

TEST(Loss, CrossEntropyMatchesFormula) {
  Tensor logits = from_vector(std::vector<double>{1, 2, 3, 1, 1, 1}, {2, 3});
  Tensor target = from_vector(std::vector<double>{2, 0}, {2});
  double l0 = -3 + std::log(std::exp(1) + std::exp(2) + std::exp(3));
  double l1 = std::log(3.0);
  EXPECT_NEAR(cross_entropy(logits, target).item(), (l0 + l1) / 2, 1e-12);
  expect_error([&] { cross_entropy(logits, from_vector(std::vector<double>{3, 0}, {2})); }, {"one_hot", "3"});
  expect_error([&] { cross_entropy(logits, from_vector(std::vector<double>{0.5, 0}, {2})); }, {"integer"});
  expect_error([&] { cross_entropy(logits, ones({3}, DType::Float64)); }, {"cross_entropy", "[3]"});
}

TEST(Loss, Gradients) {
  Tensor x = leaf64({4, 3}, 1), t = rand({4, 3}, DType::Float64);
  Tensor y = from_vector(std::vector<double>{0, 2, 1, 2}, {4});
  auto bce = [&](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], t); };
  auto ce = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], y); };
  auto mse = [&](const std::vector<Tensor>& in) { return mse_loss(in[0], t); };
  EXPECT_GRADCHECK(bce, {x});
  EXPECT_GRADGRADCHECK(bce, {x});
  EXPECT_GRADCHECK(ce, {x});
  EXPECT_GRADGRADCHECK(ce, {x});
  EXPECT_GRADCHECK(mse, {x});
}
