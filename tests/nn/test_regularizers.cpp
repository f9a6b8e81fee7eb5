// Orthonormal regularization (value by hand, zero on orthonormal rows/columns, gradient by formula and by finite
// differences, double backward, which weights a module contributes) and WGAN weight clipping.
#include <cmath>
#include <vector>

#include "nash/nn/regularizers.h"
#include "nash/nn/spectral_norm.h"
#include "nash/nn/weight_norm.h"
#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;

namespace {

Tensor m64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s).detach().requires_grad_(); }

double value(const Tensor& t) { return t.to_vector<double>().at(0); }

}  // namespace

TEST(OrthonormalPenalty, HandComputedValuesUseTheSmallerGram) {
  // Tall (3, 2): WᵀW = [[35, 44], [44, 56]], minus I: 34² + 2·44² + 55² = 8053.
  EXPECT_DOUBLE_EQ(value(nn::orthonormal_penalty(m64({1, 2, 3, 4, 5, 6}, {3, 2}), 0.5)), 0.5 * 8053);
  // Wide (2, 3): W Wᵀ = [[2, 0], [0, 1]], minus I: 1.
  EXPECT_DOUBLE_EQ(value(nn::orthonormal_penalty(m64({1, 0, 1, 0, 1, 0}, {2, 3}), 1.0)), 1.0);
  // A conv weight (2, 1, 2, 2) is the (2, 4) matrix of its rows: [[1,1,0,0],[0,1,0,0]] -> [[2,1],[1,1]] -> 1+1+1.
  EXPECT_DOUBLE_EQ(value(nn::orthonormal_penalty(m64({1, 1, 0, 0, 0, 1, 0, 0}, {2, 1, 2, 2}), 2.0)), 6.0);
  // dim 1 as rows: a (2, 3, 1, 1) weight read as the (3, 2) matrix [[1, 4], [2, 5], [3, 6]] -> WᵀW = [[14, 32],
  // [32, 77]] -> 13² + 2·32² + 76² = 7993.
  EXPECT_DOUBLE_EQ(value(nn::orthonormal_penalty(m64({1, 2, 3, 4, 5, 6}, {2, 3, 1, 1}), 1.0, 1)), 7993.0);
}

TEST(OrthonormalPenalty, ZeroForOrthonormalRowsOrColumns) {
  const double c = std::cos(0.7), s = std::sin(0.7);
  // A 3-D rotation (square), its first two rows (wide: orthonormal rows), and its first two columns (tall).
  const std::vector<double> r = {c, -s, 0, s * 0.6, c * 0.6, -0.8, s * 0.8, c * 0.8, 0.6};
  EXPECT_NEAR(value(nn::orthonormal_penalty(m64(r, {3, 3}), 1.0)), 0.0, 1e-28);
  EXPECT_NEAR(value(nn::orthonormal_penalty(m64({r[0], r[1], r[2], r[3], r[4], r[5]}, {2, 3}), 1.0)), 0.0, 1e-28);
  EXPECT_NEAR(value(nn::orthonormal_penalty(m64({r[0], r[1], r[3], r[4], r[6], r[7]}, {3, 2}), 1.0)), 0.0, 1e-28);
  // ... and a scaled one is not.
  EXPECT_GT(value(nn::orthonormal_penalty(m64({2 * c, -2 * s, 2 * s, 2 * c}, {2, 2}), 1.0)), 1.0);
}

TEST(OrthonormalPenalty, GradientMatchesFormulaAndFiniteDifferences) {
  // Wide W: d/dW beta ‖W Wᵀ − I‖² = 4 beta (W Wᵀ − I) W.
  Tensor w = nash_test::leaf64({3, 5}, 1);
  nn::orthonormal_penalty(w, 0.25).backward();
  Tensor wd = w.detach();
  Tensor want = mul(matmul(sub(matmul(wd, wd.t()), from_vector(std::vector<double>{1, 0, 0, 0, 1, 0, 0, 0, 1},
                                                                {3, 3})),
                           wd),
                    4 * 0.25);
  expect_close(w.grad(), want, 1e-12, 1e-12);

  for (Shape shape : {Shape{3, 5}, Shape{5, 3}, Shape{2, 3, 2, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    std::vector<Tensor> in{nash_test::leaf64(shape, 2)};
    auto f = [](const std::vector<Tensor>& x) { return nn::orthonormal_penalty(x[0], 0.3); };
    EXPECT_GRADCHECK(f, in);
    EXPECT_GRADGRADCHECK(f, in);
  }
  std::vector<Tensor> t{nash_test::leaf64({2, 3, 2, 2}, 3)};
  EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return nn::orthonormal_penalty(x[0], 0.3, 1); }, t);
}

TEST(OrthonormalPenalty, ModuleSumsItsWeightMatricesOnly) {
  manual_seed(4);
  auto conv = std::make_shared<nn::Conv2d>(2, 3, 3);
  auto convt = std::make_shared<nn::ConvTranspose2d>(3, 2, 2);
  auto sn_lin = std::make_shared<nn::Linear>(6, 4);
  auto wn_lin = std::make_shared<nn::Linear>(4, 5);
  auto bn = std::make_shared<nn::BatchNorm1d>(5);
  nn::Sequential d{conv, convt, std::make_shared<nn::Flatten>(), nn::spectral_norm(sn_lin), nn::weight_norm(wn_lin),
                   bn};
  d.to(DType::Float64);
  // Conv2d rows along dim 0, ConvTranspose2d along dim 1; the raw weights of SN and WN layers; no bias, no g, no BN.
  const double want = value(nn::orthonormal_penalty(conv->weight, 0.1)) +
                      value(nn::orthonormal_penalty(convt->weight, 0.1, 1)) +
                      value(nn::orthonormal_penalty(sn_lin->weight, 0.1)) +
                      value(nn::orthonormal_penalty(wn_lin->weight, 0.1));
  Tensor got = nn::orthonormal_penalty(d, 0.1);
  EXPECT_EQ(got.dim(), 0);
  EXPECT_NEAR(value(got), want, 1e-12 * want);
  got.backward();
  EXPECT_TRUE(conv->weight.grad().defined());
  EXPECT_FALSE(conv->bias.grad().defined());
  EXPECT_FALSE(bn->weight.grad().defined());

  // The tensor-list form: dim 0 for each tensor of dim >= 2, 1-D tensors skipped.
  const double listed = value(nn::orthonormal_penalty(conv->weight, 1.0)) +
                        value(nn::orthonormal_penalty(convt->weight, 1.0));
  EXPECT_NEAR(value(nn::orthonormal_penalty(std::vector<Tensor>{conv->weight, conv->bias, convt->weight}, 1.0)),
              listed, 1e-12 * listed);
  // No weights at all: a zero.
  EXPECT_EQ(value(nn::orthonormal_penalty(nn::ReLU(), 1.0)), 0.0);
}

TEST(OrthonormalPenalty, ErrorsNameTheProblem) {
  expect_error([] { nn::orthonormal_penalty(ones({4}), 1.0); }, {"orthonormal_penalty", "dim >= 2", "[4]"});
  expect_error([] { nn::orthonormal_penalty(ones({2, 2}), -1.0); }, {"orthonormal_penalty", "beta", "-1"});
  expect_error([] { nn::orthonormal_penalty(ones({2, 2}), 1.0, 2); }, {"orthonormal_penalty", "dim 2", "[2, 2]"});
}

TEST(ClipWeights, ClampsEveryParameterInPlaceWithoutHistory) {
  manual_seed(5);
  auto lin = std::make_shared<nn::Linear>(4, 3);
  auto bn = std::make_shared<nn::BatchNorm1d>(3);
  nn::Sequential d{lin, bn};
  {
    NoGradGuard ng;
    lin->weight.copy_(mul(randn({3, 4}), 3.0));
    lin->bias.copy_(from_vector(std::vector<float>{-0.5f, 0.02f, 2.0f}, {3}));
    bn->weight.fill_(1.0);  // BatchNorm's scale starts at 1: clipped too, as the WGAN reference does
  }
  const std::vector<double> before = lin->weight.to_vector<double>();
  const Tensor storage_before = lin->weight;
  nn::clip_weights_(d, 0.05);
  std::vector<double> after = lin->weight.to_vector<double>();
  for (std::size_t i = 0; i < after.size(); ++i)
    EXPECT_FLOAT_EQ(static_cast<float>(after[i]), static_cast<float>(std::max(-0.05, std::min(0.05, before[i]))));
  nash_test::expect_values(lin->bias, {-0.05, 0.02, 0.05}, 1e-7);
  nash_test::expect_values(bn->weight, {0.05, 0.05, 0.05}, 1e-7);
  // Still the same leaf tensors: requiring grad, no history, same storage.
  for (auto& p : d.parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
  EXPECT_EQ(lin->weight.data_ptr<float>(), storage_before.data_ptr<float>());
  expect_error([&] { nn::clip_weights_(d, 0.0); }, {"clip_weights_", "positive"});
}
