// SAGAN self-attention: the fresh layer is the identity, forward against a float64 loop reference (with and
// without pooled keys and values), first and second derivatives, the spectral-normalized variant, and the errors.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nash/nash.h"
#include "nash/nn/attention.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {

// The weight a child's forward uses: the Conv2d's own, or its spectral-normalized one (no history).
Tensor used_weight(const nn::ModulePtr& m) {
  if (auto* s = dynamic_cast<nn::SpectralNorm*>(m.get())) return s->normalized_weight().detach();
  return static_cast<nn::Conv2d&>(*m).weight.detach();
}

// Random N(0, 1) conv weights (seeded) and gamma, in place.
void randomize(nn::SelfAttention2d& a, double gamma, uint64_t seed) {
  Generator g(seed);
  for (const auto& kv : a.named_parameters())
    if (kv.second.dim() == 4)
      kv.second.detach().copy_(randn(kv.second.shape(), kv.second.dtype(), Device::cpu(), &g));
  a.gamma.detach().fill_(gamma);
}

std::vector<double> mat(const Tensor& w) { return w.to_vector<double>(); }  // (out, in, 1, 1) as (out, in)

// The layer written out with loops: projections, optional 2x2 max pool (floored), softmax over keys, output conv.
std::vector<double> reference(const Tensor& xt, const nn::SelfAttention2d& a, bool pool) {
  const std::vector<double> x = xt.to_vector<double>(), wq = mat(used_weight(a.query)), wk = mat(used_weight(a.key)),
                            wv = mat(used_weight(a.value)), wo = mat(used_weight(a.out));
  const double gamma = a.gamma.item();
  const int N = static_cast<int>(xt.size(0)), C = static_cast<int>(xt.size(1)), H = static_cast<int>(xt.size(2)),
            W = static_cast<int>(xt.size(3)), ck = static_cast<int>(a.key_channels()),
            cv = static_cast<int>(a.value_channels()), L = H * W;
  const int hp = pool ? H / 2 : H, wp = pool ? W / 2 : W, lp = hp * wp;
  std::vector<double> y(x.size());
  for (int n = 0; n < N; ++n) {
    auto project = [&](const std::vector<double>& w, int out) {
      std::vector<double> f(static_cast<std::size_t>(out) * L, 0.0);
      for (int o = 0; o < out; ++o)
        for (int c = 0; c < C; ++c)
          for (int p = 0; p < L; ++p) f[o * L + p] += w[o * C + c] * x[(n * C + c) * L + p];
      return f;
    };
    auto pooled = [&](const std::vector<double>& f, int ch) {
      if (!pool) return f;
      std::vector<double> r(static_cast<std::size_t>(ch) * lp);
      for (int c = 0; c < ch; ++c)
        for (int i = 0; i < hp; ++i)
          for (int j = 0; j < wp; ++j) {
            double m = -INFINITY;
            for (int di = 0; di < 2; ++di)
              for (int dj = 0; dj < 2; ++dj) m = std::max(m, f[c * L + (2 * i + di) * W + 2 * j + dj]);
            r[c * lp + i * wp + j] = m;
          }
      return r;
    };
    const std::vector<double> q = project(wq, ck), k = pooled(project(wk, ck), ck), v = pooled(project(wv, cv), cv);
    std::vector<double> o(static_cast<std::size_t>(cv) * L, 0.0), s(lp);
    for (int i = 0; i < L; ++i) {
      double m = -INFINITY, z = 0;
      for (int j = 0; j < lp; ++j) {
        s[j] = 0;
        for (int c = 0; c < ck; ++c) s[j] += q[c * L + i] * k[c * lp + j];
        m = std::max(m, s[j]);
      }
      for (int j = 0; j < lp; ++j) z += (s[j] = std::exp(s[j] - m));
      for (int b = 0; b < cv; ++b)
        for (int j = 0; j < lp; ++j) o[b * L + i] += s[j] / z * v[b * lp + j];
    }
    for (int c = 0; c < C; ++c)
      for (int i = 0; i < L; ++i) {
        double acc = 0;
        for (int b = 0; b < cv; ++b) acc += wo[c * cv + b] * o[b * L + i];
        y[(n * C + c) * L + i] = x[(n * C + c) * L + i] + gamma * acc;
      }
  }
  return y;
}

std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& kv : m.named_parameters()) out.push_back(kv.first);
  return out;
}

}  // namespace

TEST(SelfAttention, FreshLayerIsTheIdentityWithNamedXavierWeights) {
  manual_seed(1);
  nn::SelfAttention2d a(16);
  EXPECT_EQ(names(a), (std::vector<std::string>{"gamma", "query.weight", "key.weight", "value.weight", "out.weight"}));
  EXPECT_EQ(a.key_channels(), 2);
  EXPECT_EQ(a.value_channels(), 8);
  nash_test::expect_values(a.gamma, {0.0}, 0.0);
  const std::vector<std::pair<const nn::ModulePtr*, Shape>> convs = {
      {&a.query, {2, 16, 1, 1}}, {&a.key, {2, 16, 1, 1}}, {&a.value, {8, 16, 1, 1}}, {&a.out, {16, 8, 1, 1}}};
  for (const auto& [m, shape] : convs) {
    const Tensor w = used_weight(*m);
    EXPECT_EQ(w.shape(), shape);
    EXPECT_FALSE(static_cast<nn::Conv2d&>(**m).bias.defined());
    // Xavier-uniform: within ±sqrt(6 / (in + out)), and spread over that range.
    const double bound = std::sqrt(6.0 / static_cast<double>(shape[0] + shape[1]));
    const std::vector<double> v = w.to_vector<double>();
    double top = 0;
    for (double e : v) top = std::max(top, std::fabs(e));
    EXPECT_LE(top, bound);
    EXPECT_GT(top, 0.5 * bound);
  }
  const Tensor x = nash_test::randn32({2, 16, 5, 3}, 2);
  nash_test::expect_values(a.forward(x), x.to_vector<double>(), 0.0);
  nn::SelfAttention2d pooled(16, false, 8, true);
  nash_test::expect_values(pooled.forward(x), x.to_vector<double>(), 0.0);
}

TEST(SelfAttention, ForwardMatchesAFloat64LoopReference) {
  for (bool pool : {false, true}) {
    SCOPED_TRACE(pool ? "pooled keys and values" : "all positions");
    nn::SelfAttention2d a(8, false, 4, pool);
    a.to(DType::Float64);
    randomize(a, 0.7, 3);
    // 5x4: the pooled map is 2x2, the odd last row dropped.
    const Tensor x = leaf64({3, 8, 5, 4}, 4);
    const Tensor y = a.forward(x);
    ASSERT_EQ(y.shape(), x.shape());
    const std::vector<double> got = y.to_vector<double>(), want = reference(x, a, pool);
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-10 * (1 + std::fabs(want[i]))) << i;
    // The attention is not negligible: y differs from x.
    EXPECT_GT(nash_test::rel_error(y, x), 0.1);
  }
  // max_pool2x2 on its own: each 2x2 block's maximum, an odd last row and column dropped.
  const Tensor m = from_vector(std::vector<double>{1, 5, 2, 9, 3, 0, 7, 1, 4, 6, 8, 2, -1, -2, -3, -4, 10, 11, 12, 13},
                               {1, 1, 4, 5});
  nash_test::expect_values(nn::max_pool2x2(m), {7, 9, 10, 12}, 0.0);
}

TEST(SelfAttention, FirstAndSecondDerivativesMatchFiniteDifferences) {
  for (bool pool : {false, true}) {
    SCOPED_TRACE(pool ? "pooled keys and values" : "all positions");
    nn::SelfAttention2d a(8, false, 8, pool);
    a.to(DType::Float64);
    randomize(a, 0.6, 5);
    const Tensor x = leaf64({2, 8, pool ? 4 : 3, 3}, 6);
    std::vector<Tensor> inputs{x};
    for (const Tensor& p : a.parameters()) inputs.push_back(p);  // gamma and the four conv weights
    ASSERT_EQ(inputs.size(), 6u);
    auto f = [&](const std::vector<Tensor>& in) { return a.forward(in[0]); };
    EXPECT_GRADCHECK(f, inputs);
    EXPECT_GRADGRADCHECK(f, inputs);
  }
}

TEST(SelfAttention, SpectralVariantRunsEachConvWithItsNormalizedWeight) {
  manual_seed(7);
  nn::SelfAttention2d s(8, /*spectral=*/true, 4, /*pool=*/true);
  EXPECT_EQ(names(s), (std::vector<std::string>{"gamma", "query.module.weight", "key.module.weight",
                                                "value.module.weight", "out.module.weight"}));
  EXPECT_EQ(nn::spectral_norm_layers(s).size(), 4u);
  s.to(DType::Float64);
  randomize(s, -0.8, 8);
  for (nn::SpectralNorm* sn : nn::spectral_norm_layers(s)) sn->power_iterate(50);  // u, v for the new weights
  s.eval();  // u, v as stored: forwards repeat exactly
  const Tensor x = leaf64({2, 8, 4, 6}, 9);
  const std::vector<double> got = s.forward(x).to_vector<double>(), want = reference(x, s, true);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-10 * (1 + std::fabs(want[i]))) << i;
  // Each child runs W / σ of its raw, trained weight.
  for (const nn::ModulePtr* m : {&s.query, &s.key, &s.value, &s.out}) {
    auto& sn = static_cast<nn::SpectralNorm&>(**m);
    EXPECT_LT(nash_test::rel_error(used_weight(*m), sn.weight() / sn.sigma().item()), 1e-12);
    EXPECT_GT(std::fabs(sn.sigma().item() - 1.0), 0.1);  // N(0, 1) weights: the normalization does something
  }
  // Gradients reach the raw weights through σ.
  const Tensor xs = leaf64({2, 8, 2, 2}, 10);
  std::vector<Tensor> inputs{xs};
  for (const Tensor& p : s.parameters()) inputs.push_back(p);
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return s.forward(in[0]); }, inputs);
}

TEST(SelfAttention, ErrorsNameTheShapesAndArguments) {
  nn::SelfAttention2d a(8);
  expect_error([&] { a.forward(randn({2, 6, 3, 3})); }, {"SelfAttention2d", "(N, 8, H, W)", "[2, 6, 3, 3]"});
  expect_error([&] { a.forward(randn({2, 8, 9})); }, {"(N, 8, H, W)", "[2, 8, 9]"});
  nn::SelfAttention2d p(8, false, 8, true);
  expect_error([&] { p.forward(randn({2, 8, 1, 4})); }, {"H, W >= 2", "[2, 8, 1, 4]"});
  expect_error([] { nn::SelfAttention2d(12); }, {"divisible by key_divisor 8", "got 12"});
  expect_error([] { nn::SelfAttention2d(9, false, 3); }, {"even", "got 9"});
  expect_error([] { nn::SelfAttention2d(8, false, 0); }, {"key_divisor must be >= 1", "got 0"});
  expect_error([] { nn::self_attention(randn({2, 1, 9}), randn({2, 2, 9}), randn({2, 4, 9})); },
               {"q [2, 1, 9]", "k [2, 2, 9]", "v [2, 4, 9]"});
  expect_error([] { nn::self_attention(randn({2, 1, 9}), randn({2, 1, 4}), randn({2, 4, 9})); },
               {"(N, Cv, L')", "v [2, 4, 9]"});
  expect_error([] { nn::max_pool2x2(randn({8, 3, 3})); }, {"max_pool2x2", "[8, 3, 3]"});
}
