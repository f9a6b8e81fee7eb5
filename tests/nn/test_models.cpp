// DCGAN builders: output shapes for 32 and 64 pixels, parameter counts against the architecture written out,
// the initialisation, the FLOP counts and bad options.
#include <cmath>

#include "support.h"

using namespace nash;

namespace {
int64_t count(const nn::Module& m) {
  int64_t n = 0;
  for (const Tensor& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST(Models, DcganShapesAndParameterCounts) {
  manual_seed(1);
  nn::DcganOptions o;
  o.width = 8;
  o.z_dim = 10;
  auto g = nn::dcgan_generator(o);
  auto d = nn::dcgan_discriminator(o);
  Tensor img = g->forward(randn({3, 10}));
  EXPECT_EQ(img.shape(), (Shape{3, 1, 32, 32}));
  EXPECT_LE(max(abs(img)).item(), 1.0);
  EXPECT_EQ(d->forward(img).shape(), (Shape{3, 1}));
  // G: 10->32 (4x4), 32->16, 16->8, 8->1, convs without bias, 3 batch norms (scale + shift).
  EXPECT_EQ(count(*g), 10 * 32 * 16 + 32 * 16 * 16 + 16 * 8 * 16 + 8 * 1 * 16 + 2 * (32 + 16 + 8));
  // D: 1->8, 8->16 (BN), 16->32 (BN), 32->1 with a bias.
  EXPECT_EQ(count(*d), 1 * 8 * 16 + 8 * 16 * 16 + 16 * 32 * 16 + 32 * 16 + 1 + 2 * (16 + 32));
  o.image_size = 64;
  o.channels = 3;
  o.d_batch_norm = false;
  auto g64 = nn::dcgan_generator(o);
  Tensor img64 = g64->forward(randn({2, 10, 1, 1}));
  EXPECT_EQ(img64.shape(), (Shape{2, 3, 64, 64}));
  EXPECT_EQ(nn::dcgan_discriminator(o)->forward(img64).shape(), (Shape{2, 1}));
}

TEST(Models, DcganInitialisationAndFlops) {
  manual_seed(2);
  nn::DcganOptions o;  // the 32x32x1 DCGAN of the benchmarks: ~2.2 GFLOP per forward of either net at batch 64
  auto g = nn::dcgan_generator(o);
  Tensor w = g->parameters()[0];
  double mean = w.mean().item(), sd = std::sqrt(square(w - mean).mean().item());
  EXPECT_NEAR(mean, 0.0, 2e-3);
  EXPECT_NEAR(sd, 0.02, 1e-3);
  const double gf = 2.0 * (100 * 256 * 16 + 16 * 256 * 128 * 16 + 64 * 128 * 64 * 16 + 256 * 64 * 1 * 16);
  const double df = 2.0 * (256 * 64 * 1 * 16 + 64 * 128 * 64 * 16 + 16 * 256 * 128 * 16 + 256 * 16);
  EXPECT_DOUBLE_EQ(nn::dcgan_generator_flops(o, 64), 64 * gf);
  EXPECT_DOUBLE_EQ(nn::dcgan_discriminator_flops(o, 64), 64 * df);
  o.image_size = 48;
  nash_test::expect_error([&] { nn::dcgan_generator(o); }, {"dcgan_generator", "image_size", "48"});
  o.image_size = 32;
  o.width = 0;
  nash_test::expect_error([&] { nn::dcgan_discriminator(o); }, {"dcgan_discriminator", "width"});
}

// The SN-GAN paper's baselines on DCGAN's D: which modules wrap or follow its convs, and the same output shape.
TEST(Models, DcganDiscriminatorNormalizations) {
  manual_seed(0);
  nn::DcganOptions o;
  o.width = 8;
  auto children = [](nn::Module& m, auto pred) {
    int n = 0;
    for (const auto& c : m.named_children()) n += pred(c.second.get()) ? 1 : 0;
    return n;
  };
  auto is_bn = [](nn::Module* m) { return dynamic_cast<nn::BatchNorm2d*>(m) != nullptr; };
  auto is_wn = [](nn::Module* m) { return dynamic_cast<nn::WeightNorm*>(m) != nullptr; };
  auto none = nn::dcgan_discriminator(o, nn::DNorm::None);
  auto bn = nn::dcgan_discriminator(o, nn::DNorm::BatchNorm);
  auto sn = nn::dcgan_discriminator(o, nn::DNorm::Spectral);
  auto wn = nn::dcgan_discriminator(o, nn::DNorm::Weight);
  EXPECT_EQ(children(*none, is_bn), 0);
  EXPECT_EQ(children(*bn, is_bn), 2);  // after the 2nd and 3rd convs, as DCGAN
  EXPECT_EQ(nn::spectral_norm_layers(*sn).size(), 4u);  // every conv
  EXPECT_EQ(children(*sn, is_bn), 0);
  EXPECT_EQ(children(*wn, is_wn), 4);
  EXPECT_TRUE(nn::spectral_norm_layers(*wn).empty());
  Tensor x = randn({2, 1, 32, 32});
  for (auto* d : {none.get(), bn.get(), sn.get(), wn.get()}) EXPECT_EQ(d->forward(x).numel(), 2);
}
