// Autograd semantics: accumulation, no_grad, detach, graph freeing, retain_graph, autograd::grad with create_graph.
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = from_vector(std::vector<double>{1, 2, 3}, {3}).requires_grad_();
  sum(square(x)).backward();
  nash_test::expect_values(x.grad(), {2, 4, 6});
  sum(x * 3.0).backward();
  nash_test::expect_values(x.grad(), {5, 7, 9});
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, SharedGradientsDoNotAlias) {
  // The same incoming gradient reaches two leaves; changing one leaf's grad must not change the other's.
  Tensor a = from_vector(std::vector<double>{1, 2}, {2}).requires_grad_();
  Tensor b = from_vector(std::vector<double>{3, 4}, {2}).requires_grad_();
  sum(a + b).backward();
  {
    NoGradGuard ng;
    a.grad().mul_(10.0);
  }
  nash_test::expect_values(b.grad(), {1, 1});
}

TEST(Autograd, NoGradStopsRecording) {
  Tensor x = leaf64({3}, 1);
  Tensor y;
  {
    NoGradGuard ng;
    y = x * 2.0;
    EXPECT_FALSE(GradMode::is_enabled());
  }
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
}

TEST(Autograd, DetachCutsTheGraphButSharesData) {
  Tensor x = leaf64({3}, 2);
  Tensor y = x * 2.0;
  Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.raw_data(), y.raw_data());
  Tensor z = sum(d * x);
  z.backward();
  nash_test::expect_values(x.grad(), d.to_vector<double>());
}

TEST(Autograd, GraphIsFreedAfterBackward) {
  Tensor w = leaf64({16, 16}, 3);
  Tensor x = leaf64({8, 16}, 4);
  // Warm up, then check that nodes and bytes stay flat over many iterations.
  auto iterate = [&] {
    Tensor loss = mean(tanh(matmul(x, w)) * 2.0 + 1.0);
    loss.backward();
    w.zero_grad();
    x.zero_grad();
  };
  for (int i = 0; i < 10; ++i) iterate();
  int64_t nodes = Node::live_count(), bytes = Storage::live_bytes();
  for (int i = 0; i < 1000; ++i) iterate();
  EXPECT_EQ(Node::live_count(), nodes);
  EXPECT_EQ(Storage::live_bytes(), bytes);
}

TEST(Autograd, BackwardTwiceThroughFreedGraphFails) {
  Tensor x = leaf64({3}, 5);
  Tensor y = sum(exp(x));
  y.backward();
  expect_error([&] { y.backward(); }, {"second time"});
}

TEST(Autograd, RetainGraphAllowsSecondBackward) {
  Tensor x = leaf64({3}, 6);
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  Tensor g1 = x.grad().clone();
  y.backward();
  nash_test::expect_close(x.grad(), g1 * 2.0, 1e-12, 1e-12);
}

TEST(Autograd, BackwardOnNonScalarNeedsGrad) {
  Tensor x = leaf64({3}, 7);
  Tensor y = x * 2.0;
  expect_error([&] { y.backward(); }, {"scalar", "[3]"});
  y.backward(ones({3}, DType::Float64));
  nash_test::expect_values(x.grad(), {2, 2, 2});
}

TEST(Autograd, BackwardWithoutGradRequirementFails) {
  Tensor x = ones({2});
  expect_error([&] { sum(x).backward(); }, {"does not require grad"});
}

TEST(Autograd, InPlaceChangeOfSavedTensorIsDetected) {
  Tensor w = leaf64({3}, 8);
  Tensor y = sum(exp(w));  // exp saves its output
  Tensor x = leaf64({3}, 9);
  Tensor z = sum(mul(x, w));  // mul saves w for x's gradient
  {
    NoGradGuard ng;
    w.add_(ones({3}, DType::Float64));
  }
  expect_error([&] { z.backward(); }, {"modified in place"});
  (void)y;
}

TEST(Autograd, GradOfNonLeafAndUnusedInputs) {
  Tensor x = leaf64({4}, 10);
  Tensor h = x * 3.0;
  Tensor y = sum(square(h));
  Tensor other = leaf64({2}, 11);
  auto g = autograd::grad({y}, {h, other}, {}, false, false, /*allow_unused=*/true);
  nash_test::expect_close(g[0], h.detach() * 2.0, 1e-12, 1e-12);
  EXPECT_FALSE(g[1].defined());
  EXPECT_FALSE(x.grad().defined());  // grad() does not touch .grad
  Tensor y2 = sum(square(x));
  expect_error([&] { autograd::grad({y2}, {other}); }, {"not used"});
}

TEST(Autograd, CreateGraphGivesSecondDerivatives) {
  // y = sum(x^3): dy/dx = 3x^2, d/dx sum(dy/dx) = 6x.
  Tensor x = from_vector(std::vector<double>{1, -2, 0.5}, {3}).requires_grad_();
  Tensor y = sum(pow(x, 3.0));
  Tensor g = autograd::grad({y}, {x}, {}, true, /*create_graph=*/true)[0];
  EXPECT_TRUE(g.requires_grad());
  nash_test::expect_values(g, {3, 12, 0.75}, 1e-12);
  sum(g).backward();
  nash_test::expect_values(x.grad(), {6, -12, 3}, 1e-12);
}

TEST(Autograd, GradientPenaltyThroughMlp) {
  // WGAN-GP shape: penalty (||d D(x) / dx|| - 1)^2 differentiated w.r.t. D's weights, checked by finite differences.
  Tensor w1 = leaf64({5, 3}, 12), w2 = leaf64({1, 5}, 13), x = leaf64({4, 3}, 14).detach();
  auto penalty = [&](const std::vector<Tensor>& in) {
    Tensor xi = in[2].detach().requires_grad_();
    EnableGradGuard on(true);
    Tensor d = linear(tanh(linear(xi, in[0])), in[1]);
    Tensor gx = autograd::grad({sum(d)}, {xi}, {}, true, true)[0];
    return mean(square(norm(gx, 2.0, {1}) - 1.0));
  };
  EXPECT_GRADCHECK(penalty, (std::vector<Tensor>{w1, w2, x}));
}

TEST(Autograd, SavedOutputReattachesForDoubleBackward) {
  // sigmoid's backward uses its own output; the second derivative must flow through it.
  Tensor x = leaf64({4}, 15);
  auto f = [](const std::vector<Tensor>& in) { return sigmoid(in[0]); };
  EXPECT_GRADGRADCHECK(f, {x});
}
