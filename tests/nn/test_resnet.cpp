// The residual G and critic: output shapes and parameter counts for 32 and 64 pixels against the architecture written
// out, each block against the same ops composed by hand, first and second derivatives through D's blocks (the
// gradient penalty differentiates through them), the normalizations D's layers take, the initialisation, the FLOP
// counts and bad options; the class-conditional G (conditional batch norm in its up blocks) and the projection
// critic on pooled features.
#include <cmath>

#include "nash/nash.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::has_name;
using nash_test::named_parameter;
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

namespace {

Tensor class_labels(std::vector<double> v) { return from_vector(v, {static_cast<int64_t>(v.size())}); }

}  // namespace

TEST(ResNet, ConditionalUpBlockTakesEachClasssBatchNormGainAndBias) {
  nn::ResBlockUp b(3, 2, 4);
  ASSERT_TRUE(b.conditional());
  EXPECT_EQ(b.bn1, nullptr);
  b.to(DType::Float64);
  randomize(b, 8);  // gains and biases too: every class its own
  const Tensor x = leaf64({3, 3, 3, 3}, 9);
  const Tensor oh = nn::class_one_hot(class_labels({3, 0, 3}), 4, x);
  // Reference: the unconditional block's ops around the conditional batch norms (tested on their own in
  // Conditional.BatchNormGivesEachClassItsGainAndBias).
  Tensor h = conv2d(upsample_nearest2d(relu(b.cbn1->forward(x, oh)), 2), b.conv1->weight, b.conv1->bias, 1, 1);
  h = conv2d(relu(b.cbn2->forward(h, oh)), b.conv2->weight, b.conv2->bias, 1, 1);
  const Tensor want = add(h, conv2d(upsample_nearest2d(x, 2), b.shortcut->weight, b.shortcut->bias));
  nash_test::expect_close(b.forward(x, oh), want, 1e-12, 1e-10);
  std::vector<Tensor> in{x, b.cbn1->gain->weight, b.cbn2->bias->weight, b.conv2->weight};
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& v) { return b.forward(v[0], oh); }, in);
  // In eval mode (running statistics) another class for the second image changes that image only.
  b.eval();
  const Tensor before = b.forward(x, oh), other = b.forward(x, nn::class_one_hot(class_labels({3, 1, 3}), 4, x));
  EXPECT_LT(nash_test::rel_error(other.narrow(0, 0, 1), before.narrow(0, 0, 1)), 1e-12);
  EXPECT_LT(nash_test::rel_error(other.narrow(0, 2, 1), before.narrow(0, 2, 1)), 1e-12);
  EXPECT_GT(nash_test::rel_error(other.narrow(0, 1, 1), before.narrow(0, 1, 1)), 1e-3);
  expect_error([&] { b.forward(x); }, {"ResBlockUp", "class-conditional", "forward(x, onehot)"});
  nn::ResBlockUp plain(3, 2);
  expect_error([&] { plain.forward(x, oh); }, {"ResBlockUp", "not class-conditional"});
  expect_error([] { nn::ResBlockUp(3, 2, -1); }, {"ResBlockUp", "num_classes", "-1"});
}

TEST(ResNet, ConditionalGeneratorHasTheClassAtItsInputAndInItsUpBlocks) {
  manual_seed(10);
  const nn::ResNetOptions o = tiny(8);
  nn::ConditionalResNetGenerator g(o, 10);
  const auto base = nn::resnet_generator(o);
  ASSERT_TRUE(has_name(g, "1.weight"));
  EXPECT_EQ(named_parameter(g, "1.weight").shape(), (Shape{128, 16}));  // z_dim 6 + 10 one-hot inputs
  EXPECT_TRUE(has_name(g, "3.bn1.gain.weight"));
  EXPECT_TRUE(has_name(g, "5.bn2.bias.weight"));
  EXPECT_TRUE(has_name(g, "3.bn1.bn.running_mean"));
  EXPECT_TRUE(has_name(g, "6.weight"));  // the batch norm before the output conv stays unconditional
  // Beyond the unconditional G's: 10 inputs to the linear layer; in each of the 6 block batch norms of 8 channels a
  // gain and a bias per class instead of one per channel.
  EXPECT_EQ(count(g) - count(*base), 10 * 128 + 6 * 2 * 8 * (10 - 1));
  Generator gen(2);
  const Tensor z = randn({6, 6}, DType::Float32, Device::cpu(), &gen);
  const Tensor y = class_labels({0, 1, 2, 3, 4, 5});
  EXPECT_EQ(g.forward(z, y).shape(), (Shape{6, 1, 32, 32}));
  EXPECT_EQ(g.forward(z.reshape({6, 6, 1, 1}), y).shape(), (Shape{6, 1, 32, 32}));
  // Eval mode: an image depends on its own latent and class only, and the class matters.
  g.eval();
  const Tensor e1 = g.forward(z, y);
  const Tensor e2 = g.forward(z, class_labels({0, 1, 2, 3, 4, 9}));
  EXPECT_LT(nash_test::rel_error(g.forward(z.narrow(0, 0, 5), class_labels({0, 1, 2, 3, 4})), e1.narrow(0, 0, 5)),
            1e-6);
  EXPECT_LT(nash_test::rel_error(e2.narrow(0, 0, 5), e1.narrow(0, 0, 5)), 1e-6);
  EXPECT_GT(nash_test::rel_error(e2.narrow(0, 5, 1), e1.narrow(0, 5, 1)), 1e-4);
  expect_error([&] { g.forward(z); }, {"ConditionalResNetGenerator", "labels"});
  expect_error([&] { g.forward(randn({6, 5}), y); }, {"ConditionalResNetGenerator", "(N, 6)", "[6, 5]"});
  expect_error([&] { g.forward(z, class_labels({0, 1})); }, {"(6)", "[2]"});
  expect_error([&] { g.forward(z, class_labels({0, 1, 2, 3, 4, 10})); }, {"10", "[0, 10)"});
}

TEST(ResNet, ProjectionCriticAddsTheEmbeddingsInnerProductWithThePooledFeatures) {
  manual_seed(11);
  const auto d = nn::resnet_discriminator(tiny(4));
  nn::ProjectionDiscriminator p(d, 3, /*spectral=*/false);
  EXPECT_TRUE(p.pooled());
  EXPECT_EQ(p.features(), 4);
  p.to(DType::Float64);
  const Tensor x = leaf64({3, 1, 32, 32}, 12);
  const std::vector<double> y = {2, 0, 2};
  const std::vector<double> got = p.forward(x, class_labels(y)).to_vector<double>();
  // The critic's own score (its layers are shared) plus E[:, y] · φ(x), φ(x) the pooled features its linear layer
  // reads.
  const std::vector<double> plain = d->forward(x).to_vector<double>();
  Tensor h = x;
  for (std::size_t i = 0; i + 1 < d->size(); ++i) h = (*d)[i]->forward(h);
  ASSERT_EQ(h.shape(), (Shape{3, 4}));
  const std::vector<double> hv = h.to_vector<double>();
  const std::vector<double> ev = named_parameter(p, "embed.weight").to_vector<double>();
  ASSERT_EQ(ev.size(), 12u);
  for (int n = 0; n < 3; ++n) {
    double proj = 0;
    for (int f = 0; f < 4; ++f) proj += ev[f * 3 + static_cast<int>(y[n])] * hv[n * 4 + f];
    EXPECT_NEAR(got[n], plain[n] + proj, 1e-10 * (1 + std::fabs(got[n])));
  }
  // The gradient penalty differentiates the input gradient: first and second derivatives through the projection.
  const Tensor lab = class_labels({1, 2});
  const Tensor xs = leaf64({2, 1, 32, 32}, 13);
  const std::vector<Tensor> inputs{xs, named_parameter(p, "embed.weight"), named_parameter(p, "head.weight")};
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return p.forward(in[0], lab); }, inputs);
  EXPECT_GRADGRADCHECK([&](const std::vector<Tensor>& in) { return tanh(p.forward(in[0], lab)); },
                       std::vector<Tensor>{xs});

  // Spectral norm on the critic's layers and the embedding; weight norm's gain is not mistaken for the weight.
  nn::ProjectionDiscriminator s(nn::resnet_discriminator(tiny(8), nn::DNorm::Spectral), 10, /*spectral=*/true);
  EXPECT_EQ(nn::spectral_norm_layers(s).size(), 12u);  // 10 convs, the linear layer and the embedding
  EXPECT_TRUE(has_name(s, "embed.module.weight"));
  EXPECT_EQ(s.forward(randn({2, 1, 32, 32}), class_labels({9, 0})).shape(), (Shape{2, 1}));
  nn::ProjectionDiscriminator w(nn::resnet_discriminator(tiny(8), nn::DNorm::Weight), 10, /*spectral=*/false);
  EXPECT_EQ(w.features(), 8);
  EXPECT_EQ(w.forward(randn({2, 1, 32, 32}), class_labels({9, 0})).shape(), (Shape{2, 1}));
}
