// The residual G and critic: output shapes and parameter counts for 32 and 64 pixels against the architecture written
// out, each block against the same ops composed by hand, first and second derivatives through D's blocks (the
// gradient penalty differentiates through them), the normalizations D's layers take, the initialisation, the FLOP
// counts and bad options.
#include <cmath>

#include "nash/nash.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {

int64_t count(const nn::Module& m) {
  int64_t n = 0;
  for (const Tensor& p : m.parameters()) n += p.numel();
  return n;
}

nn::ResNetOptions tiny(int64_t width = 4) {
  nn::ResNetOptions o;
  o.z_dim = 6;
  o.width = width;
  return o;
}

// Parameters of a k x k conv with bias.
int64_t conv_params(int64_t in, int64_t out, int64_t k) { return in * out * k * k + out; }

void randomize(nn::Module& m, uint64_t seed) {
  Generator g(seed);
  NoGradGuard ng;
  for (Tensor p : m.parameters()) p.copy_(mul(randn(p.shape(), p.dtype(), Device::cpu(), &g), 0.3));
}

}  // namespace

TEST(ResNet, ShapesAndParameterCounts) {
  manual_seed(1);
  const nn::ResNetOptions o = tiny(8);
  auto g = nn::resnet_generator(o);
  auto d = nn::resnet_discriminator(o);
  const Tensor img = g->forward(randn({3, 6}));
  EXPECT_EQ(img.shape(), (Shape{3, 1, 32, 32}));
  EXPECT_LE(max(abs(img)).item(), 1.0);
  EXPECT_EQ(g->forward(randn({2, 6, 1, 1})).shape(), (Shape{2, 1, 32, 32}));
  EXPECT_EQ(d->forward(img).shape(), (Shape{3, 1}));
  // G: linear 6 -> 16*8, three up blocks (2 batch norms, two 3x3 convs, a 1x1 shortcut), batch norm, 3x3 conv to 1.
  const int64_t up = 2 * 2 * 8 + 2 * conv_params(8, 8, 3) + conv_params(8, 8, 1);
  EXPECT_EQ(count(*g), 6 * 128 + 128 + 3 * up + 2 * 8 + conv_params(8, 1, 3));
  // D: first block (1 -> 8, 1x1 shortcut), one down block (8 -> 8, 1x1 shortcut), two blocks at 8x8 (identity), a
  // linear 8 -> 1.
  const int64_t first = conv_params(1, 8, 3) + conv_params(8, 8, 3) + conv_params(1, 8, 1);
  const int64_t down = 2 * conv_params(8, 8, 3) + conv_params(8, 8, 1);
  const int64_t plain = 2 * conv_params(8, 8, 3);
  EXPECT_EQ(count(*d), first + down + 2 * plain + 8 + 1);
  EXPECT_EQ(d->size(), 7u);  // 4 blocks, ReLU, pool, linear

  nn::ResNetOptions o64 = tiny(4);
  o64.image_size = 64;
  o64.channels = 3;
  auto g64 = nn::resnet_generator(o64);
  const Tensor img64 = g64->forward(randn({2, 6}));
  EXPECT_EQ(img64.shape(), (Shape{2, 3, 64, 64}));
  auto d64 = nn::resnet_discriminator(o64);
  EXPECT_EQ(d64->size(), 8u);  // first, two down blocks (64 -> 8), two at 8x8, ReLU, pool, linear
  EXPECT_EQ(d64->forward(img64).shape(), (Shape{2, 1}));
}

TEST(ResNet, UpBlockIsItsOpsComposed) {
  nn::ResBlockUp b(3, 2);
  b.to(DType::Float64);
  randomize(b, 3);
  const Tensor x = leaf64({2, 3, 3, 3}, 4);
  // Reference: pre-activation residual path at twice the size plus the upsampled input's 1x1 projection.
  auto bn = [](const Tensor& t, const nn::BatchNorm2d& m) {
    const Tensor mu = mean(t, {0, 2, 3}, true), var = mean(square(sub(t, mu)), {0, 2, 3}, true);
    const Shape c = {1, t.size(1), 1, 1};
    return add(mul(div(sub(t, mu), sqrt(add(var, 1e-5))), m.weight.reshape(c)), m.bias.reshape(c));
  };
  Tensor h = conv2d(upsample_nearest2d(relu(bn(x, *b.bn1)), 2), b.conv1->weight, b.conv1->bias, 1, 1);
  h = conv2d(relu(bn(h, *b.bn2)), b.conv2->weight, b.conv2->bias, 1, 1);
  const Tensor want = add(h, conv2d(upsample_nearest2d(x, 2), b.shortcut->weight, b.shortcut->bias));
  const Tensor got = b.forward(x);
  EXPECT_EQ(got.shape(), (Shape{2, 2, 6, 6}));
  nash_test::expect_close(got, want, 1e-12, 1e-10);
  std::vector<Tensor> in{x, b.conv1->weight, b.bn2->weight, b.shortcut->weight};
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& v) { return b.forward(v[0]); }, in);
  expect_error([&] { b.forward(leaf64({2, 2, 3, 3}, 1)); }, {"ResBlockUp", "(N, 3, H, W)", "[2, 2, 3, 3]"});
}

TEST(ResNet, DownBlocksAreTheirOpsComposedAndTwiceDifferentiable) {
  struct Case {
    int64_t in, out;
    bool down, first;
  };
  for (const Case c : {Case{2, 3, true, true}, Case{3, 3, true, false}, Case{3, 3, false, false},
                       Case{2, 3, false, false}}) {
    SCOPED_TRACE(::testing::Message() << c.in << "->" << c.out << (c.down ? " down" : "") << (c.first ? " first" : ""));
    nn::ResBlockDown b(c.in, c.out, c.down, c.first);
    b.to(DType::Float64);
    randomize(b, 5);
    auto& c1 = dynamic_cast<nn::Conv2d&>(*b.conv1);
    auto& c2 = dynamic_cast<nn::Conv2d&>(*b.conv2);
    const Tensor x = leaf64({2, c.in, 4, 4}, 6, -0.2);
    Tensor h = conv2d(c.first ? x : relu(x), c1.weight, c1.bias, 1, 1);
    h = conv2d(relu(h), c2.weight, c2.bias, 1, 1);
    if (c.down) h = avg_pool2d(h, 2);
    Tensor s = x;
    ASSERT_EQ(b.shortcut != nullptr, c.down || c.in != c.out);
    if (b.shortcut) {
      auto& sc = dynamic_cast<nn::Conv2d&>(*b.shortcut);
      if (c.first)
        s = conv2d(avg_pool2d(x, 2), sc.weight, sc.bias);
      else
        s = conv2d(x, sc.weight, sc.bias);
      if (c.down && !c.first) s = avg_pool2d(s, 2);
    }
    nash_test::expect_close(b.forward(x), add(h, s), 1e-12, 1e-10);
    std::vector<Tensor> in{x, c1.weight, c2.bias};
    if (b.shortcut) in.push_back(dynamic_cast<nn::Conv2d&>(*b.shortcut).weight);
    EXPECT_GRADCHECK([&](const std::vector<Tensor>& v) { return b.forward(v[0]); }, in);
    EXPECT_GRADGRADCHECK([&](const std::vector<Tensor>& v) { return b.forward(v[0]); }, in);
  }
  nn::ResBlockDown odd(2, 2, true);
  expect_error([&] { odd.forward(leaf64({1, 2, 3, 4}, 1)); }, {"ResBlockDown", "even", "[1, 2, 3, 4]"});
  nn::ResBlockDown keep(2, 2, false);
  expect_error([&] { keep.forward(leaf64({1, 3, 4, 4}, 1)); }, {"ResBlockDown", "(N, 2, H, W)", "[1, 3, 4, 4]"});
  expect_error([&] { nn::ResBlockDown(2, 2, true, false, nn::DNorm::BatchNorm); }, {"batch norm"});
}

TEST(ResNet, CriticGradientPenaltyMatchesFiniteDifferences) {
  // The WGAN-GP penalty of the whole (tiny) critic: its gradient wrt a weight against central differences.
  manual_seed(7);
  auto d = nn::resnet_discriminator(tiny(2));
  d->to(DType::Float64);
  const Tensor real = leaf64({2, 1, 32, 32}, 8), fake = leaf64({2, 1, 32, 32}, 9);
  const Tensor eps = from_vector(std::vector<double>{0.3, 0.8}, {2, 1, 1, 1});
  nn::Critic critic = [&](const Tensor& x) { return d->forward(x); };
  Tensor w = d->parameters()[2];  // the first block's second conv
  const Tensor gp = nn::gradient_penalty(critic, real.detach(), fake.detach(), eps, 10.0);
  const std::vector<Tensor> grads = autograd::grad({gp}, {w});
  const std::vector<double> g = grads[0].to_vector<double>();
  const std::vector<double> w0 = w.to_vector<double>();
  auto penalty_at = [&](std::size_t i, double delta) {
    std::vector<double> v = w0;
    v[i] += delta;
    {
      NoGradGuard ng;
      w.copy_(from_vector(v, w.shape()));
    }
    return nn::gradient_penalty(critic, real.detach(), fake.detach(), eps, 10.0).item();
  };
  for (std::size_t i : {0u, 5u, 17u}) {
    const double h = 1e-5, fd = (penalty_at(i, h) - penalty_at(i, -h)) / (2 * h);
    EXPECT_NEAR(g[i], fd, 1e-6 * (1 + std::abs(g[i]))) << i;
  }
}

TEST(ResNet, CriticNormalizationsWrapEveryConvAndTheLinear) {
  manual_seed(3);
  auto sn = nn::resnet_discriminator(tiny(4), nn::DNorm::Spectral);
  // 3 + 3 + 2 + 2 convs and the linear layer.
  EXPECT_EQ(nn::spectral_norm_layers(*sn).size(), 11u);
  for (const auto& kv : sn->named_parameters())
    if (kv.second.dim() >= 2) EXPECT_NE(kv.first.find(".module.weight"), std::string::npos) << kv.first;
  EXPECT_EQ(sn->forward(randn({2, 1, 32, 32})).shape(), (Shape{2, 1}));
  auto wn = nn::resnet_discriminator(tiny(4), nn::DNorm::Weight);
  int wrapped = 0;
  for (const auto& kv : wn->named_parameters()) wrapped += kv.first.find("weight_g") != std::string::npos;
  EXPECT_EQ(wrapped, 11);
  // The sum pool is the mean pool times the positions (8x8), before the linear layer.
  nn::ResNetOptions o = tiny(4);
  manual_seed(4);
  auto mean_d = nn::resnet_discriminator(o);
  o.d_sum_pool = true;
  manual_seed(4);
  auto sum_d = nn::resnet_discriminator(o);
  const Tensor x = randn({2, 1, 32, 32});
  const Tensor b = (*mean_d)[6]->parameters()[1];
  nash_test::expect_close(sub(sum_d->forward(x), b), mul(sub(mean_d->forward(x), b), 64.0), 1e-4, 1e-4);
  expect_error([&] { nn::resnet_discriminator(tiny(4), nn::DNorm::BatchNorm); },
               {"resnet_discriminator", "batch norm"});
}

TEST(ResNet, InitialisationAndFlops) {
  manual_seed(5);
  nn::ResNetOptions o;  // Gulrajani et al.'s width 128, 1 channel
  auto g = nn::resnet_generator(o);
  // The first block's 3x3 conv: Glorot-uniform with gain sqrt(2), bound sqrt(2) sqrt(6 / (2 * 128 * 9)).
  auto& block = dynamic_cast<nn::ResBlockUp&>(*(*g)[3]);
  const double bound = std::sqrt(2.0) * std::sqrt(6.0 / (2 * 128 * 9));
  const Tensor w = block.conv1->weight;
  EXPECT_LE(max(abs(w)).item(), bound);
  EXPECT_NEAR(std::sqrt(square(w).mean().item()), bound / std::sqrt(3.0), 0.01 * bound);
  EXPECT_EQ(max(abs(block.conv1->bias)).item(), 0.0);
  const double sc_bound = std::sqrt(6.0 / (2 * 128));
  EXPECT_LE(max(abs(block.shortcut->weight)).item(), sc_bound);
  EXPECT_GT(max(abs(block.shortcut->weight)).item(), 0.9 * sc_bound);

  // FLOPs, layer by layer: (output positions, fan-in, outputs) of each conv and linear layer.
  struct Layer {
    double positions, fan_in, out;
  };
  const double w2 = 128;
  std::vector<Layer> gl = {{1, 128, 16 * w2}};
  for (double r : {8, 16, 32}) gl.insert(gl.end(), {{r * r, 9 * w2, w2}, {r * r, 9 * w2, w2}, {r * r, w2, w2}});
  gl.push_back({32 * 32, 9 * w2, 1});
  std::vector<Layer> dl = {{32 * 32, 9, w2}, {32 * 32, 9 * w2, w2}, {16 * 16, 1, w2},     // first block
                           {16 * 16, 9 * w2, w2}, {16 * 16, 9 * w2, w2}, {16 * 16, w2, w2}};  // down
  for (int i = 0; i < 4; ++i) dl.push_back({8 * 8, 9 * w2, w2});
  dl.push_back({1, w2, 1});
  auto total = [](const std::vector<Layer>& ls) {
    double f = 0;
    for (const Layer& l : ls) f += 2 * l.positions * l.fan_in * l.out;
    return f;
  };
  EXPECT_DOUBLE_EQ(nn::resnet_generator_flops(o, 64), 64 * total(gl));
  EXPECT_DOUBLE_EQ(nn::resnet_discriminator_flops(o, 64), 64 * total(dl));

  o.image_size = 48;
  expect_error([&] { nn::resnet_generator(o); }, {"resnet_generator", "image_size", "48"});
  o.image_size = 32;
  o.width = 0;
  expect_error([&] { nn::resnet_discriminator(o); }, {"resnet_discriminator", "width"});
}

TEST(ResNet, SelfAttentionWhereAsked) {
  manual_seed(6);
  nn::ResNetOptions o = tiny(8);
  o.attention = 16;
  auto g = nn::resnet_generator(o);
  auto d = nn::resnet_discriminator(o, nn::DNorm::Spectral);
  // G: reshape, linear, reshape, up (-> 8), up (-> 16), attention, up (-> 32); D: first (-> 16), attention, down.
  EXPECT_EQ((*g)[5]->type_name(), "SelfAttention2d");
  EXPECT_EQ((*d)[1]->type_name(), "SelfAttention2d");
  EXPECT_EQ(nn::spectral_norm_layers(*d).size(), 15u);  // D's own 11 and the attention's four 1x1 convs
  const Tensor img = g->forward(randn({2, 6}));
  EXPECT_EQ(img.shape(), (Shape{2, 1, 32, 32}));
  EXPECT_EQ(d->forward(img).shape(), (Shape{2, 1}));
  o.attention = 8;
  auto d8 = nn::resnet_discriminator(o);
  EXPECT_EQ((*d8)[2]->type_name(), "SelfAttention2d");  // after the down block to 8x8, once

  // FLOPs: the attention's 1x1 convs (C/8, C/8, C/2 and C/2 -> C) and its two products on a 16x16 map, in both nets.
  o.attention = 16;
  nn::ResNetOptions plain = o;
  plain.attention = 0;
  const double w = 8, hw = 256;
  const double att = 2 * hw * (w * w / 8 * 2 + w * w) + 2 * hw * hw * (w / 8 + w / 2);
  EXPECT_DOUBLE_EQ(nn::resnet_generator_flops(o, 3), nn::resnet_generator_flops(plain, 3) + 3 * att);
  EXPECT_DOUBLE_EQ(nn::resnet_discriminator_flops(o, 3), nn::resnet_discriminator_flops(plain, 3) + 3 * att);

  o.attention = 32;
  expect_error([&] { nn::resnet_generator(o); }, {"resnet_generator", "attention", "8 or 16", "32"});
  o.attention = 16;
  expect_error([&] { nn::resnet_discriminator(o, nn::DNorm::Weight); }, {"attention", "weight norm"});
  o.width = 12;  // 12 / 8 is not a whole number of key channels
  expect_error([&] { nn::resnet_generator(o); }, {"SelfAttention2d", "12"});
}
