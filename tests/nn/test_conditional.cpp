// Class-conditional networks: one-hot rows, conditional batch norm against a float64 formula and gradcheck, the
// conditional DCGAN generator (names, class dependence, eval mode), the projection discriminator against D plus the
// hand-computed projection (first and second derivatives, spectral norm on the embedding), and the trainer's
// conditional step.
#include <cmath>

#include "nash/nash.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::has_name;
using nash_test::leaf64;

namespace {

Tensor labels(std::vector<double> v) { return from_vector(v, {static_cast<int64_t>(v.size())}); }

nn::DcganOptions tiny(int64_t width = 4) {
  nn::DcganOptions o;
  o.z_dim = 5;
  o.channels = 1;
  o.image_size = 32;
  o.width = width;
  return o;
}

}  // namespace

TEST(Conditional, OneHotRowsAndTheirErrors) {
  const Tensor like = zeros({1}, DType::Float64);
  const Tensor oh = nn::class_one_hot(labels({2, 0, 1, 2}), 3, like);
  EXPECT_EQ(oh.dtype(), DType::Float64);
  nash_test::expect_values(oh, {0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1}, 0.0);
  expect_error([&] { nn::class_one_hot(labels({0, 3}), 3, like); }, {"index 1", "3", "[0, 3)"});
  expect_error([&] { nn::class_one_hot(labels({0.5}), 3, like); }, {"0.5"});
  expect_error([&] { nn::class_one_hot(zeros({2, 2}), 3, like); }, {"1-D", "[2, 2]"});
}

TEST(Conditional, BatchNormGivesEachClassItsGainAndBias) {
  nn::ConditionalBatchNorm2d cbn(2, 3);
  cbn.to(DType::Float64);
  Generator g(4);
  cbn.gain->weight.detach().copy_(randn({2, 3}, DType::Float64, Device::cpu(), &g));
  cbn.bias->weight.detach().copy_(randn({2, 3}, DType::Float64, Device::cpu(), &g));
  const Tensor x = leaf64({4, 2, 3, 3}, 5);
  const std::vector<double> y = {1, 0, 2, 1};
  const Tensor oh = nn::class_one_hot(labels(y), 3, x);
  const std::vector<double> got = cbn.forward(x, oh).to_vector<double>();
  // Reference: batch statistics per channel (biased variance, eps 1e-5), then gain[c][y_n], bias[c][y_n].
  const std::vector<double> xv = x.to_vector<double>(), gv = cbn.gain->weight.to_vector<double>(),
                            bv = cbn.bias->weight.to_vector<double>();
  for (int c = 0; c < 2; ++c) {
    double m = 0, v = 0;
    for (int n = 0; n < 4; ++n)
      for (int k = 0; k < 9; ++k) m += xv[(n * 2 + c) * 9 + k];
    m /= 36;
    for (int n = 0; n < 4; ++n)
      for (int k = 0; k < 9; ++k) v += std::pow(xv[(n * 2 + c) * 9 + k] - m, 2);
    v /= 36;
    for (int n = 0; n < 4; ++n)
      for (int k = 0; k < 9; ++k) {
        const int cls = static_cast<int>(y[n]);
        const double want = (xv[(n * 2 + c) * 9 + k] - m) / std::sqrt(v + 1e-5) * gv[c * 3 + cls] + bv[c * 3 + cls];
        EXPECT_NEAR(got[(n * 2 + c) * 9 + k], want, 1e-10);
      }
  }
  std::vector<Tensor> inputs{x, cbn.gain->weight, cbn.bias->weight};
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return cbn.forward(in[0], oh); }, inputs);
  // Fresh layers are the identity map on normalized values: gains 1, biases 0.
  nn::ConditionalBatchNorm2d fresh(2, 3);
  nash_test::expect_values(fresh.gain->weight, std::vector<double>(6, 1.0), 0.0);
  nash_test::expect_values(fresh.bias->weight, std::vector<double>(6, 0.0), 0.0);
  expect_error([&] { cbn.forward(x); }, {"one-hot"});
  expect_error([&] { cbn.forward(x, nn::class_one_hot(labels({0, 1}), 3, x)); }, {"(4, 3)", "[2, 3]"});
}

TEST(Conditional, GeneratorIsDcganWithTheClassAtItsInputAndInItsBatchNorms) {
  manual_seed(3);
  nn::ConditionalGenerator g(tiny(), 10);
  const auto base = nn::dcgan_generator(tiny());
  // DCGAN's layers and names; each batch norm replaced by bn + per-class gain and bias.
  EXPECT_TRUE(has_name(g, "1.weight"));
  EXPECT_TRUE(has_name(g, "2.gain.weight"));
  EXPECT_TRUE(has_name(g, "2.bias.weight"));
  EXPECT_TRUE(has_name(g, "2.bn.running_mean"));
  EXPECT_FALSE(has_name(g, "2.weight"));
  // Beyond DCGAN's: the first layer's 10 one-hot input channels (to 16 channels, 4x4), a gain and a bias per class
  // instead of one per channel.
  EXPECT_EQ(g.num_parameters() - base->num_parameters(), 10 * 16 * 16 + (16 + 8 + 4) * (2 * 10 - 2));
  Generator gen(1);
  const Tensor z = randn({6, 5}, DType::Float32, Device::cpu(), &gen);
  const Tensor a = g.forward(z, labels({0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(a.shape(), (Shape{6, 1, 32, 32}));
  // The same latents under other classes give other images; eval mode (running statistics) makes an image depend
  // only on its own latent and class.
  g.eval();
  const Tensor e1 = g.forward(z, labels({0, 1, 2, 3, 4, 5}));
  const Tensor e2 = g.forward(z, labels({0, 1, 2, 3, 4, 9}));
  const Tensor same = g.forward(z.narrow(0, 0, 5), labels({0, 1, 2, 3, 4}));
  EXPECT_LT(nash_test::rel_error(same, e1.narrow(0, 0, 5)), 1e-6);
  EXPECT_LT(nash_test::rel_error(e2.narrow(0, 0, 5), e1.narrow(0, 0, 5)), 1e-6);
  EXPECT_GT(nash_test::rel_error(e2.narrow(0, 5, 1), e1.narrow(0, 5, 1)), 1e-4);
  expect_error([&] { g.forward(z); }, {"ConditionalGenerator", "labels"});
  expect_error([&] { g.forward(z, labels({0, 1})); }, {"(6)", "[2]"});
  expect_error([&] { g.forward(z, labels({0, 1, 2, 3, 4, 10})); }, {"10", "[0, 10)"});
}

TEST(Conditional, ProjectionAddsTheEmbeddingsInnerProductWithPooledFeatures) {
  manual_seed(5);
  nn::DcganOptions o = tiny();
  o.d_batch_norm = false;
  const auto d = nn::dcgan_discriminator(o);
  nn::ProjectionDiscriminator p(d, 3, /*spectral=*/false);
  EXPECT_EQ(p.features(), 16);
  p.to(DType::Float64);
  const Tensor x = leaf64({4, 1, 32, 32}, 6);
  const std::vector<double> y = {2, 0, 1, 2};
  const std::vector<double> got = p.forward(x, labels(y)).to_vector<double>();
  // D's own score (the layers are shared) plus E[:, y] · Σ_hw φ(x).
  const std::vector<double> plain = d->forward(x).to_vector<double>();
  Tensor h = x;
  for (std::size_t i = 0; i + 2 < d->size(); ++i) h = (*d)[i]->forward(h);
  ASSERT_EQ(h.shape(), (Shape{4, 16, 4, 4}));
  const std::vector<double> hv = h.to_vector<double>();
  const Tensor e = nash_test::named_parameter(p, "embed.weight");
  ASSERT_TRUE(e.defined());
  ASSERT_EQ(e.shape(), (Shape{16, 3}));
  const std::vector<double> ev = e.to_vector<double>();
  for (int n = 0; n < 4; ++n) {
    double proj = 0;
    for (int f = 0; f < 16; ++f) {
      double pooled = 0;
      for (int k = 0; k < 16; ++k) pooled += hv[(n * 16 + f) * 16 + k];
      proj += ev[f * 3 + static_cast<int>(y[n])] * pooled;
    }
    EXPECT_NEAR(got[n], plain[n] + proj, 1e-9 * (1 + std::fabs(got[n])));
  }
  // First and second derivatives (the gradient penalty differentiates D's input gradient), on a small input.
  const Tensor lab = labels({1, 2});
  const Tensor xs = leaf64({2, 1, 32, 32}, 7);
  std::vector<Tensor> inputs{xs};
  for (const Tensor& w : p.parameters()) inputs.push_back(w);
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return p.forward(in[0], lab); }, inputs);
  EXPECT_GRADGRADCHECK([&](const std::vector<Tensor>& in) { return tanh(p.forward(in[0], lab)); },
                       std::vector<Tensor>{xs});

  // SN-GAN's D: the embedding is spectrally normalized too.
  nn::ProjectionDiscriminator s(nn::sngan_discriminator(tiny()), 10, /*spectral=*/true);
  EXPECT_EQ(nn::spectral_norm_layers(s).size(), 5u);  // 4 convs and the embedding
  EXPECT_TRUE(has_name(s, "embed.module.weight"));
  EXPECT_EQ(s.forward(randn({3, 1, 32, 32}), labels({9, 0, 4})).shape(), (Shape{3, 1}));
  // Weight norm on the output conv: its gain, (1, 1, 1, 1) and the wrapper's first parameter, is not mistaken for
  // the conv's weight.
  auto wn = std::make_shared<nn::Sequential>();
  for (std::size_t i = 0; i < d->size(); ++i)
    wn->push_back(i + 2 == d->size() ? nn::ModulePtr(nn::weight_norm((*d)[i])) : (*d)[i]);
  nn::ProjectionDiscriminator pw(wn, 3, /*spectral=*/false);
  EXPECT_EQ(pw.features(), 16);
  pw.to(DType::Float64);
  EXPECT_EQ(pw.forward(randn({2, 1, 32, 32}, DType::Float64), labels({0, 2})).shape(), (Shape{2, 1}));
  // A D that does not end in an output conv and a Flatten is refused by name.
  expect_error([] { nn::ProjectionDiscriminator(nn::progan_generator(tiny()), 3, false); }, {"Flatten"});
}

namespace {

// A conditional network that records the labels of every call, then runs the wrapped one.
class Recording : public nn::ConditionalModule {
 public:
  explicit Recording(std::shared_ptr<nn::ConditionalModule> m)
      : nn::ConditionalModule("Recording", m->num_classes()), inner(std::move(m)) {
    register_module("inner", inner);
  }
  using nn::ConditionalModule::forward;
  Tensor forward(const Tensor& x, const Tensor& y) override {
    calls.push_back(y.to_vector<double>());
    return inner->forward(x, y);
  }
  std::shared_ptr<nn::ConditionalModule> inner;
  std::vector<std::vector<double>> calls;
};

}  // namespace

TEST(Conditional, TrainerConditionalStepUsesEachBatchsLabels) {
  manual_seed(9);
  auto g = std::make_shared<Recording>(std::make_shared<nn::ConditionalGenerator>(tiny(), 3));
  nn::DcganOptions o = tiny();
  o.d_batch_norm = false;
  auto d = std::make_shared<Recording>(
      std::make_shared<nn::ProjectionDiscriminator>(nn::dcgan_discriminator(o), 3, false));
  optim::Adam og(g->parameters()), od(d->parameters());
  optim::GanTrainerOptions to;
  to.gp_lambda = 1.0;
  to.r1_gamma = 0.5;
  to.loss = nn::GanLoss::Hinge;
  optim::GanTrainer t(g, d, og, od, to);
  int real_calls = 0, latent_calls = 0;
  auto real = [&] {
    ++real_calls;
    return optim::GanTrainer::Labeled{rand({4, 1, 32, 32}) * 2.0 - 1.0, labels({0, 1, 2, 0})};
  };
  const std::vector<std::vector<double>> latent_labels = {{2, 2, 1, 0}, {1, 1, 0, 1}};
  auto latent = [&] {
    return optim::GanTrainer::Labeled{randn({4, 5}), labels(latent_labels[latent_calls++ % 2])};
  };
  const std::vector<float> e0 = d->parameters().back().to_vector<float>();
  const optim::StepStats s = t.step_conditional(real, latent);
  EXPECT_EQ(real_calls, 1);
  EXPECT_EQ(latent_calls, 2);  // the D update's and the G update's
  // G makes the D update's fakes and the G update's, each for its latent batch's classes; D scores the fakes with
  // their classes, the real pairs, the penalty's interpolates and R1's reals with the real labels, then G's fakes.
  const std::vector<double> r = {0, 1, 2, 0};
  EXPECT_EQ(g->calls, (std::vector<std::vector<double>>{latent_labels[0], latent_labels[1]}));
  EXPECT_EQ(d->calls, (std::vector<std::vector<double>>{latent_labels[0], r, r, r, latent_labels[1]}));
  EXPECT_TRUE(std::isfinite(s.d_loss) && std::isfinite(s.g_loss) && s.penalty > 0);
  EXPECT_GT(s.update_norm_d, 0);
  EXPECT_GT(s.update_norm_g, 0);
  EXPECT_NE(d->parameters().back().to_vector<float>(), e0) << "the class embedding must be trained";
  // Mismatched samplers and networks are refused by name.
  expect_error([&] { t.step([] { return randn({4, 1, 32, 32}); }, [] { return randn({4, 5}); }); },
               {"step_conditional"});
  expect_error([&] { t.step_conditional(real, [] { return optim::GanTrainer::Labeled{randn({4, 5}), Tensor()}; }); },
               {"latent", "labels"});
  auto plain_g = nn::dcgan_generator(tiny());
  optim::Adam pg(plain_g->parameters());
  optim::GanTrainer u(plain_g, d, pg, od, to);
  expect_error([&] { u.step_conditional(real, latent); }, {"class-conditional", "Sequential"});
}
