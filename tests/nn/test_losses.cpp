// GAN losses against hand-derived values and gradcheck; WGAN-GP and R1 penalties against closed forms for linear
// and quadratic critics, and gradcheck of each penalty w.r.t. a tiny MLP critic's parameters (double backward).
#include <cmath>

#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {

Tensor vec(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector(v, {n});
}

double softplus_d(double x) { return std::log1p(std::exp(x)); }

// A tiny MLP critic with explicit parameters: tanh(x W1ᵀ + b1) W2ᵀ + b2, one score per sample.
Tensor mlp(const Tensor& x, const std::vector<Tensor>& p) {
  return linear(tanh(linear(x.flatten(1), p[0], p[1])), p[2], p[3]);
}

std::vector<Tensor> mlp_params(uint64_t seed) {
  return {leaf64({5, 6}, seed), leaf64({5}, seed + 1), leaf64({1, 5}, seed + 2), leaf64({1}, seed + 3)};
}

// A linear critic D(x) = <x.flatten(1), w>, whose input gradient is w for every sample.
nn::Critic linear_critic(const Tensor& w) {
  return [w](const Tensor& x) { return matmul(x.flatten(1), w.reshape({-1, 1})); };
}

}  // namespace

TEST(GanLosses, HandDerivedValues) {
  Tensor real = vec({1.0, -2.0}), fake = vec({0.5, 3.0});
  const double l2 = std::log(2.0);
  // Zero logits: D = 1/2 everywhere.
  EXPECT_NEAR(nn::d_loss_ns(vec({0, 0}), vec({0, 0, 0})).item(), 2 * l2, 1e-12);
  EXPECT_NEAR(nn::g_loss_ns(vec({0})).item(), l2, 1e-12);
  EXPECT_NEAR(nn::g_loss_minimax(vec({0})).item(), -l2, 1e-12);
  EXPECT_NEAR(nn::d_loss_ns(real, fake).item(),
              (softplus_d(-1) + softplus_d(2)) / 2 + (softplus_d(0.5) + softplus_d(3)) / 2, 1e-12);
  EXPECT_NEAR(nn::d_loss_minimax(real, fake).item(), nn::d_loss_ns(real, fake).item(), 0.0);
  // -log D(G(z)) and log(1 - D(G(z))) with D = sigmoid.
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  EXPECT_NEAR(nn::g_loss_ns(fake).item(), -(std::log(sig(0.5)) + std::log(sig(3))) / 2, 1e-12);
  EXPECT_NEAR(nn::g_loss_minimax(fake).item(), (std::log(1 - sig(0.5)) + std::log(1 - sig(3))) / 2, 1e-12);
  // Hinge: relu(1 - [0.5, 2, -1]) = [0.5, 0, 2]; relu(1 + [-2, 0, 0.5]) = [0, 1, 1.5].
  EXPECT_NEAR(nn::d_loss_hinge(vec({0.5, 2, -1}), vec({-2, 0, 0.5})).item(), 2.5 / 3 + 2.5 / 3, 1e-12);
  EXPECT_NEAR(nn::g_loss_hinge(vec({-2, 0, 0.5})).item(), 0.5, 1e-12);
  EXPECT_NEAR(nn::d_loss_wasserstein(real, fake).item(), 1.75 - (-0.5), 1e-12);
  EXPECT_NEAR(nn::g_loss_wasserstein(fake).item(), -1.75, 1e-12);
  // Least squares: real - 1 = [0, -3], fake = [0.5, 3]: ½(9/2) + ½(9.25/2); G: fake - 1 = [-0.5, 2]: ½(4.25/2).
  EXPECT_NEAR(nn::d_loss_least_squares(real, fake).item(), 2.25 + 2.3125, 1e-12);
  EXPECT_NEAR(nn::g_loss_least_squares(fake).item(), 1.0625, 1e-12);
  EXPECT_NEAR(nn::d_loss_least_squares(vec({1, 1}), vec({0})).item(), 0.0, 0.0);  // D at its targets
  // The enum front end.
  EXPECT_EQ(nn::parse_gan_loss("hinge"), nn::GanLoss::Hinge);
  EXPECT_NEAR(nn::d_loss(nn::parse_gan_loss("wgan"), real, fake).item(), 2.25, 1e-12);
  EXPECT_NEAR(nn::g_loss(nn::GanLoss::NonSaturating, fake).item(), nn::g_loss_ns(fake).item(), 0.0);
  for (const char* ls : {"ls", "lsgan", "least-squares"}) EXPECT_EQ(nn::parse_gan_loss(ls), nn::GanLoss::LeastSquares);
  EXPECT_NEAR(nn::d_loss(nn::GanLoss::LeastSquares, real, fake).item(), 4.5625, 1e-12);
  EXPECT_NEAR(nn::g_loss(nn::GanLoss::LeastSquares, fake).item(), 1.0625, 1e-12);
  expect_error([] { nn::parse_gan_loss("relativistic"); }, {"parse_gan_loss", "relativistic", "hinge", "ls"});
}

TEST(GanLosses, StableForSaturatedLogits) {
  Tensor big = vec({200.0, -200.0}), f32 = from_vector(std::vector<float>{90.f, -90.f}, {2});
  EXPECT_NEAR(nn::d_loss_ns(big, big).item(), 100.0 + 100.0, 1e-9);  // softplus(∓200) averaged: (0 + 200) / 2 each
  EXPECT_NEAR(nn::g_loss_ns(big).item(), 100.0, 1e-9);
  EXPECT_NEAR(nn::g_loss_minimax(big).item(), -100.0, 1e-9);
  EXPECT_TRUE(std::isfinite(nn::d_loss_ns(f32, f32).item()));
  Tensor x = vec({-60.0, 60.0}).requires_grad_();
  nn::g_loss_ns(x).backward();
  // d/dx softplus(-x) / 2 = -sigmoid(-x) / 2: saturates to -1/2 and 0, never NaN.
  nash_test::expect_values(x.grad(), {-0.5, 0.0}, 1e-12);
}

TEST(GanLosses, GradcheckEachLoss) {
  Tensor r = leaf64({4, 1}, 1), f = leaf64({3, 1}, 2);
  using F = std::function<Tensor(const Tensor&, const Tensor&)>;
  for (const F& d : std::vector<F>{nn::d_loss_ns, nn::d_loss_minimax, nn::d_loss_hinge, nn::d_loss_wasserstein,
                                   nn::d_loss_least_squares}) {
    auto fn = [&](const std::vector<Tensor>& in) { return d(in[0], in[1]); };
    EXPECT_GRADCHECK(fn, (std::vector<Tensor>{r, f}));
  }
  using G = std::function<Tensor(const Tensor&)>;
  for (const G& g : std::vector<G>{nn::g_loss_ns, nn::g_loss_minimax, nn::g_loss_hinge, nn::g_loss_wasserstein,
                                   nn::g_loss_least_squares}) {
    auto fn = [&](const std::vector<Tensor>& in) { return g(in[0]); };
    EXPECT_GRADCHECK(fn, {f});
  }
  auto ns = [](const std::vector<Tensor>& in) { return nn::d_loss_ns(in[0], in[1]); };
  EXPECT_GRADGRADCHECK(ns, (std::vector<Tensor>{r, f}));
}

TEST(GanLosses, RejectsBadInputs) {
  expect_error([] { nn::d_loss_hinge(Tensor(), ones({2})); }, {"d_loss_hinge", "real logits"});
  expect_error([] { nn::d_loss_ns(ones({2}), ones({2}, DType::Float64)); }, {"d_loss_ns", "dtype"});
  expect_error([] { nn::g_loss_ns(zeros({0})); }, {"g_loss_ns", "non-empty"});
}

// ---- penalties --------------------------------------------------------------------------------------------------
TEST(GradientPenalty, ZeroForAUnitNormLinearCriticAndLambdaForNormTwo) {
  Tensor w = leaf64({2, 3}, 5).detach();
  w = div(w, norm(w));
  Tensor real = leaf64({4, 2, 3}, 6).detach(), fake = leaf64({4, 2, 3}, 7).detach();
  EXPECT_NEAR(nn::gradient_penalty(linear_critic(w), real, fake, 10.0).item(), 0.0, 1e-20);
  // ||∇D|| = 2 for every sample: λ (2 - 1)² = λ.
  EXPECT_NEAR(nn::gradient_penalty(linear_critic(mul(w, 2.0)), real, fake, 3.0).item(), 3.0, 1e-12);
  // R1: γ / 2 · ||w||² = γ / 2 · 4.
  EXPECT_NEAR(nn::r1_penalty(linear_critic(mul(w, 2.0)), real, 0.5).item(), 1.0, 1e-12);
}

TEST(GradientPenalty, QuadraticCriticMatchesTheHandComputedInterpolates) {
  // D(x) = 1/2 ||x||² per sample, so ∇x̂ D = x̂ and the penalty is λ mean((||x̂|| - 1)²).
  nn::Critic D = [](const Tensor& x) { return mul(sum(square(x.flatten(1)), {1}), 0.5); };
  Tensor real = leaf64({5, 3}, 8).detach(), fake = leaf64({5, 3}, 9).detach();
  Generator g1(77), g2(77);
  Tensor got = nn::gradient_penalty(D, real, fake, 2.0, &g1);
  std::vector<double> eps = rand({5, 1}, DType::Float64, Device::cpu(), &g2).to_vector<double>();
  for (double e : eps) EXPECT_TRUE(e >= 0 && e < 1);
  std::vector<double> r = real.to_vector<double>(), f = fake.to_vector<double>();
  double want = 0;
  for (int n = 0; n < 5; ++n) {
    double sq = 0;
    for (int i = 0; i < 3; ++i) sq += std::pow(eps[n] * r[n * 3 + i] + (1 - eps[n]) * f[n * 3 + i], 2);
    want += std::pow(std::sqrt(sq) - 1, 2);
  }
  EXPECT_NEAR(got.item(), 2.0 * want / 5, 1e-12);
  // R1 on the same critic: γ/2 · mean(||x||²).
  double r1 = 0;
  for (double v : r) r1 += v * v;
  EXPECT_NEAR(nn::r1_penalty(D, real, 3.0).item(), 1.5 * r1 / 5, 1e-12);
}

TEST(GradientPenalty, ReachesTheCriticParametersAndGradchecks) {
  std::vector<Tensor> p = mlp_params(10);
  Tensor real = leaf64({4, 2, 3}, 20).detach(), fake = leaf64({4, 2, 3}, 21).requires_grad_();
  Tensor pen = nn::gradient_penalty([&](const Tensor& x) { return mlp(x, p); }, real, fake, 10.0);
  EXPECT_GT(pen.item(), 0.0);
  pen.backward();
  // The input gradient involves W1, b1 (through tanh') and W2, but not the output bias.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(p[i].grad().defined()) << "parameter " << i;
    EXPECT_GT(norm(p[i].grad()).item(), 0.0);
  }
  EXPECT_FALSE(p[3].grad().defined());
  EXPECT_FALSE(fake.grad().defined());  // the interpolates are detached from the generator
  // The penalty's own gradient w.r.t. D's parameters against finite differences of the penalty.
  auto f = [&](const std::vector<Tensor>& in) {
    Generator g(123);  // the same ε at every evaluation
    return nn::gradient_penalty([&](const Tensor& x) { return mlp(x, in); }, real, fake.detach(), 10.0, &g);
  };
  EXPECT_GRADCHECK(f, p);
}

TEST(R1Penalty, ReachesTheCriticParametersAndGradchecks) {
  std::vector<Tensor> p = mlp_params(30);
  Tensor real = leaf64({3, 6}, 40).detach();
  auto f = [&](const std::vector<Tensor>& in) {
    return nn::r1_penalty([&](const Tensor& x) { return mlp(x, in); }, real, 10.0);
  };
  Tensor pen = f(p);
  pen.backward();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p[i].grad().defined()) << "parameter " << i;
  EXPECT_GRADCHECK(f, p);
}

TEST(GradientPenalty, RejectsBadInputs) {
  nn::Critic D = [](const Tensor& x) { return sum(x.flatten(1), {1}); };
  expect_error([&] { nn::gradient_penalty(D, ones({2, 3}), ones({3, 3})); }, {"gradient_penalty", "match"});
  expect_error([&] { nn::gradient_penalty(nn::Critic(), ones({2, 3}), ones({2, 3})); }, {"gradient_penalty", "empty"});
  nn::Critic bad = [](const Tensor& x) { return sum(x); };
  expect_error([&] { nn::r1_penalty(bad, ones({2, 3})); }, {"r1_penalty", "one score per sample"});
}
