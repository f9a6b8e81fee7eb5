// WeightNorm: forward against the wrapped op run with g · V / ‖V‖ built by hand, the unchanged initial function,
// gradients and double backward by finite differences, parameter names and a checkpoint round trip, and errors.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "nash/io/safetensors.h"
#include "nash/nn/checkpoint.h"
#include "nash/nn/weight_norm.h"
#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;

namespace {

Tensor rnd64(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, DType::Float64, Device::cpu(), &g);
}

std::shared_ptr<nn::WeightNorm> wn64(nn::ModulePtr m) {
  m->to(DType::Float64);
  return nn::weight_norm(std::move(m));
}

// g[u] · V / ‖V[u]‖ element by element, u the index along `dim` (0, or 1 for a transposed conv's weight).
Tensor by_hand(const Tensor& v, const Tensor& g, int64_t dim) {
  std::vector<double> x = v.to_vector<double>(), gv = g.to_vector<double>();
  const int64_t a = v.size(0), b = v.size(1), k = v.numel() / (a * b);
  auto unit_of = [&](int64_t i, int64_t o) { return dim == 0 ? i : o; };
  std::vector<double> sq(static_cast<std::size_t>(v.size(dim)), 0.0);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t o = 0; o < b; ++o)
      for (int64_t kk = 0; kk < k; ++kk) sq[unit_of(i, o)] += x[(i * b + o) * k + kk] * x[(i * b + o) * k + kk];
  std::vector<double> w(x.size());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t o = 0; o < b; ++o)
      for (int64_t kk = 0; kk < k; ++kk) {
        const int64_t u = unit_of(i, o), e = (i * b + o) * k + kk;
        w[e] = gv[u] * x[e] / std::sqrt(sq[u]);
      }
  return from_vector(w, v.shape());
}

// g set to random values away from ‖V‖, so forward tests see g's role.
void randomize_g(nn::WeightNorm& wn, uint64_t seed) {
  NoGradGuard ng;
  wn.weight_g.copy_(add(abs(rnd64(wn.weight_g.shape(), seed)), 0.5));
}

}  // namespace

TEST(WeightNorm, ForwardIsTheWrappedOpWithGTimesUnitRows) {
  manual_seed(1);
  {
    auto wn = wn64(std::make_shared<nn::Linear>(5, 3));
    randomize_g(*wn, 2);
    const auto& lin = static_cast<const nn::Linear&>(*wn->module());
    EXPECT_EQ(wn->weight_g.shape(), (Shape{3, 1}));
    Tensor w = by_hand(lin.weight, wn->weight_g, 0);
    expect_close(wn->normalized_weight(), w, 1e-13, 1e-12);
    Tensor x = rnd64({4, 5}, 3);
    expect_close(wn->forward(x), linear(x, w, lin.bias), 1e-12, 1e-12);
  }
  {
    auto wn = wn64(std::make_shared<nn::Conv2d>(2, 4, 3, 2, 1));
    randomize_g(*wn, 4);
    const auto& c = static_cast<const nn::Conv2d&>(*wn->module());
    EXPECT_EQ(wn->weight_g.shape(), (Shape{4, 1, 1, 1}));
    Tensor w = by_hand(c.weight, wn->weight_g, 0);
    Tensor x = rnd64({2, 2, 6, 6}, 5);
    expect_close(wn->forward(x), conv2d(x, w, c.bias, c.stride, c.padding), 1e-12, 1e-12);
  }
  {
    auto wn = wn64(std::make_shared<nn::ConvTranspose2d>(3, 2, 4, 2, 1));
    randomize_g(*wn, 6);
    const auto& t = static_cast<const nn::ConvTranspose2d&>(*wn->module());
    EXPECT_EQ(wn->dim(), 1);
    EXPECT_EQ(wn->weight_g.shape(), (Shape{1, 2, 1, 1}));
    Tensor w = by_hand(t.weight, wn->weight_g, 1);
    Tensor x = rnd64({2, 3, 3, 3}, 7);
    expect_close(wn->forward(x), conv_transpose2d(x, w, t.bias, t.stride, t.padding), 1e-12, 1e-12);
  }
}

TEST(WeightNorm, WrappingLeavesTheFunctionUnchanged) {
  manual_seed(8);
  auto conv = std::make_shared<nn::Conv2d>(3, 5, 3);
  conv->to(DType::Float64);
  Tensor x = rnd64({2, 3, 5, 5}, 9);
  Tensor before = conv->forward(x);
  auto wn = nn::weight_norm(conv);
  // g is ‖V‖ per output channel.
  std::vector<double> v = conv->weight.to_vector<double>(), want(5, 0.0);
  for (int o = 0; o < 5; ++o)
    for (int k = 0; k < 27; ++k) want[o] += v[o * 27 + k] * v[o * 27 + k];
  for (double& e : want) e = std::sqrt(e);
  nash_test::expect_values(wn->weight_g, want, 1e-13);
  EXPECT_TRUE(wn->weight_g.requires_grad());
  expect_close(wn->forward(x), before, 1e-12, 1e-12);
}

TEST(WeightNorm, GradcheckThroughEachWrappedKindAndDoubleBackward) {
  manual_seed(10);
  struct Case {
    const char* name;
    std::shared_ptr<nn::WeightNorm> wn;
    Tensor x;
  };
  std::vector<Case> cases = {
      {"Linear", wn64(std::make_shared<nn::Linear>(4, 3)), nash_test::leaf64({2, 4}, 11)},
      {"Conv2d", wn64(std::make_shared<nn::Conv2d>(2, 3, 3, 2, 1)), nash_test::leaf64({2, 2, 5, 5}, 12)},
      {"ConvTranspose2d", wn64(std::make_shared<nn::ConvTranspose2d>(3, 2, 3, 2, 1, 1)),
       nash_test::leaf64({1, 3, 3, 3}, 13)},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    randomize_g(*c.wn, 14);
    std::vector<Tensor> inputs{c.x};
    for (auto& p : c.wn->parameters()) inputs.push_back(p);  // g, V, bias
    ASSERT_EQ(inputs.size(), 4u);
    auto wn = c.wn;
    EXPECT_GRADCHECK([wn](const std::vector<Tensor>& in) { return wn->forward(in[0]); }, inputs);
  }
  // Double backward (a gradient penalty through a weight-normalized D), for a dense and a conv layer.
  for (int k = 0; k < 2; ++k) {
    auto wn = cases[static_cast<std::size_t>(k)].wn;
    SCOPED_TRACE(cases[static_cast<std::size_t>(k)].name);
    EXPECT_GRADGRADCHECK([wn](const std::vector<Tensor>& in) { return tanh(wn->forward(in[0])); },
                         (std::vector<Tensor>{cases[static_cast<std::size_t>(k)].x, wn->weight_g, wn->weight()}));
  }
}

TEST(WeightNorm, ParametersAreNamedForCheckpointsAndRoundTrip) {
  auto make = [](uint64_t seed) {
    manual_seed(seed);
    return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        nn::weight_norm(std::make_shared<nn::Conv2d>(2, 3, 3)), std::make_shared<nn::Flatten>(),
        nn::weight_norm(std::make_shared<nn::Linear>(12, 2))});
  };
  auto saved = make(20), loaded = make(21);
  std::vector<std::string> names;
  for (auto& p : saved->named_parameters()) names.push_back(p.first);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight_g", "0.module.weight", "0.module.bias", "2.weight_g",
                                             "2.module.weight", "2.module.bias"}));
  EXPECT_TRUE(saved->named_buffers().empty());
  randomize_g(static_cast<nn::WeightNorm&>(*(*saved)[0]), 22);

  const std::string path = ::testing::TempDir() + "nash_weight_norm_ckpt.safetensors";
  nn::Checkpoint out;
  out.modules = {{"D", saved.get()}};
  nn::save_checkpoint(path, out);
  io::SafetensorsFile file = io::load_safetensors(path);
  ASSERT_NE(file.find("D.0.weight_g"), nullptr);
  EXPECT_EQ(file.find("D.0.weight_g")->shape(), (Shape{3, 1, 1, 1}));
  ASSERT_NE(file.find("D.2.module.weight"), nullptr);
  nn::Checkpoint in;
  in.modules = {{"D", loaded.get()}};
  nn::load_checkpoint(path, in);
  std::remove(path.c_str());
  Tensor x = randn({2, 2, 4, 4});
  expect_close(loaded->forward(x), saved->forward(x), 0.0, 0.0);
}

TEST(WeightNorm, ZeroRowGivesFiniteOutput) {
  manual_seed(30);
  auto lin = std::make_shared<nn::Linear>(3, 2);
  {
    NoGradGuard ng;
    lin->weight.narrow(0, 0, 1).zero_();
  }
  auto wn = nn::weight_norm(lin);
  Tensor y = wn->forward(randn({4, 3}));
  for (double v : y.to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
  sum(y).backward();
  for (double v : lin->weight.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
}

TEST(WeightNorm, ErrorsNameTheProblem) {
  expect_error([] { nn::weight_norm(std::make_shared<nn::ReLU>()); }, {"WeightNorm", "ReLU"});
  expect_error([] { nn::weight_norm(nullptr); }, {"WeightNorm", "null"});
  expect_error([] { nn::weight_norm(std::make_shared<nn::Linear>(3, 2), 2); }, {"WeightNorm", "dim 2", "[2, 3]"});
  auto wn = nn::weight_norm(std::make_shared<nn::Conv2d>(2, 3, 3));
  expect_error([&] { wn->forward(randn({1, 4, 5, 5})); }, {"WeightNorm(Conv2d)", "(N, 2, H, W)", "[1, 4, 5, 5]"});
  expect_error([] { nn::weight_normalized(randn({3, 4}), randn({4, 1})); }, {"weight_normalized", "[3, 1]", "[4, 1]"});
}
