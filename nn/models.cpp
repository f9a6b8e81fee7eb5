// DCGAN's generator and discriminator (nash/nn/models.h).
#include "nash/nn/models.h"

#include "nash/core/error.h"
#include "nash/nn/equalized.h"
#include "nash/nn/gan_layers.h"
#include "nash/nn/init.h"
#include "nash/nn/spectral_norm.h"
#include "nash/nn/weight_norm.h"

namespace nash {
namespace nn {

namespace {

// Hidden layers between 4x4 and the image: 3 for 32 pixels, 4 for 64.
int64_t hidden_layers(const DcganOptions& o, const char* who) {
  NASH_CHECK(o.image_size == 32 || o.image_size == 64, who, ": image_size must be 32 or 64, got ", o.image_size);
  NASH_CHECK(o.z_dim > 0 && o.channels > 0 && o.width > 0, who, ": z_dim, channels and width must be > 0, got ",
             o.z_dim, ", ", o.channels, ", ", o.width);
  return o.image_size == 32 ? 3 : 4;
}

// DCGAN's initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02), biases 0.
void dcgan_init(Module& m) {
  for (auto& kv : m.named_parameters()) {
    Tensor p = kv.second;
    const std::string& name = kv.first;
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_bias)
      init::zeros_(p);
    else if (p.dim() == 1)
      init::normal_(p, 1.0, 0.02);
    else
      init::normal_(p, 0.0, 0.02);
  }
}

}  // namespace

std::shared_ptr<Sequential> dcgan_generator(const DcganOptions& o) {
  const int64_t n = hidden_layers(o, "dcgan_generator");
  auto g = std::make_shared<Sequential>();
  g->push_back(std::make_shared<Reshape>(Shape{o.z_dim, 1, 1}));
  int64_t ch = o.width << (n - 1);  // 4w (32 px) or 8w (64 px) at 4x4
  g->push_back(std::make_shared<ConvTranspose2d>(o.z_dim, ch, 4, 1, 0, 0, false));
  g->push_back(std::make_shared<BatchNorm2d>(ch));
  g->push_back(std::make_shared<ReLU>());
  for (int64_t i = 1; i < n; ++i, ch /= 2) {
    g->push_back(std::make_shared<ConvTranspose2d>(ch, ch / 2, 4, 2, 1, 0, false));
    g->push_back(std::make_shared<BatchNorm2d>(ch / 2));
    g->push_back(std::make_shared<ReLU>());
  }
  g->push_back(std::make_shared<ConvTranspose2d>(ch, o.channels, 4, 2, 1, 0, false));
  g->push_back(std::make_shared<Tanh>());
  dcgan_init(*g);
  return g;
}

std::shared_ptr<Sequential> dcgan_discriminator(const DcganOptions& o) {
  const int64_t n = hidden_layers(o, "dcgan_discriminator");
  auto d = std::make_shared<Sequential>();
  int64_t ch = o.width;
  d->push_back(std::make_shared<Conv2d>(o.channels, ch, 4, 2, 1, false));
  d->push_back(std::make_shared<LeakyReLU>(0.2));
  for (int64_t i = 1; i < n; ++i, ch *= 2) {
    d->push_back(std::make_shared<Conv2d>(ch, ch * 2, 4, 2, 1, !o.d_batch_norm));
    if (o.d_batch_norm) d->push_back(std::make_shared<BatchNorm2d>(ch * 2));
    d->push_back(std::make_shared<LeakyReLU>(0.2));
  }
  d->push_back(std::make_shared<Conv2d>(ch, 1, 4, 1, 0, true));
  d->push_back(std::make_shared<Flatten>());
  dcgan_init(*d);
  return d;
}

std::shared_ptr<Sequential> sngan_discriminator(const DcganOptions& o) {
  const int64_t n = hidden_layers(o, "sngan_discriminator");
  auto d = std::make_shared<Sequential>();
  int64_t ch = o.channels, out = o.width;
  for (int64_t i = 0; i < n; ++i, out *= 2) {
    d->push_back(spectral_norm(std::make_shared<Conv2d>(ch, out, 4, 2, 1, true)));
    d->push_back(std::make_shared<LeakyReLU>(0.1));
    ch = out;
  }
  d->push_back(spectral_norm(std::make_shared<Conv2d>(ch, 1, 4, 1, 0, true)));
  d->push_back(std::make_shared<Flatten>());
  return d;
}

std::shared_ptr<Sequential> progan_generator(const DcganOptions& o) {
  const int64_t n = hidden_layers(o, "progan_generator");
  const EqualizedOptions act = EqualizedOptions().with_activation(0.2);
  auto g = std::make_shared<Sequential>();
  g->push_back(std::make_shared<Reshape>(Shape{o.z_dim, 1, 1}));
  g->push_back(std::make_shared<PixelNorm>());
  int64_t ch = o.width << (n - 1);
  // 1x1 -> 4x4: fan-in z_dim * 16 gives c = sqrt(2) / (4 sqrt(z_dim)), ProGAN's dense first layer (gain sqrt(2)/4).
  g->push_back(std::make_shared<EqualizedConvTranspose2d>(o.z_dim, ch, 4, 1, 0, 0, act));
  g->push_back(std::make_shared<PixelNorm>());
  for (int64_t i = 1; i < n; ++i, ch /= 2) {
    g->push_back(std::make_shared<EqualizedConvTranspose2d>(ch, ch / 2, 4, 2, 1, 0, act));
    g->push_back(std::make_shared<PixelNorm>());
  }
  g->push_back(std::make_shared<EqualizedConvTranspose2d>(ch, o.channels, 4, 2, 1, 0, EqualizedOptions().with_gain(1.0)));
  return g;
}

std::shared_ptr<Sequential> progan_discriminator(const DcganOptions& o) {
  const int64_t n = hidden_layers(o, "progan_discriminator");
  const EqualizedOptions act = EqualizedOptions().with_activation(0.2);
  auto d = std::make_shared<Sequential>();
  int64_t ch = o.channels, out = o.width;
  for (int64_t i = 0; i < n; ++i, out *= 2) {
    d->push_back(std::make_shared<EqualizedConv2d>(ch, out, 4, 2, 1, act));
    ch = out;
  }
  d->push_back(std::make_shared<MinibatchStdDev>(4));
  d->push_back(std::make_shared<EqualizedConv2d>(ch + 1, ch, 3, 1, 1, act));
  d->push_back(std::make_shared<EqualizedConv2d>(ch, 1, 4, 1, 0, EqualizedOptions().with_gain(1.0)));
  d->push_back(std::make_shared<Flatten>());
  return d;
}

double dcgan_generator_flops(const DcganOptions& o, int64_t batch) {
  const int64_t n = hidden_layers(o, "dcgan_generator_flops");
  int64_t ch = o.width << (n - 1), hw = 4;
  double f = 2.0 * o.z_dim * ch * 16;  // 1x1 -> 4x4: every output pixel sees the latent once
  for (int64_t i = 1; i <= n; ++i) {
    const int64_t out = i < n ? ch / 2 : o.channels;
    f += 2.0 * (hw * hw) * ch * out * 16;  // each input pixel scatters a 4x4 patch
    ch = out;
    hw *= 2;
  }
  return f * static_cast<double>(batch);
}

double dcgan_discriminator_flops(const DcganOptions& o, int64_t batch) {
  const int64_t n = hidden_layers(o, "dcgan_discriminator_flops");
  int64_t ch = o.channels, out = o.width, hw = o.image_size / 2;
  double f = 0;
  for (int64_t i = 0; i < n; ++i, hw /= 2) {
    f += 2.0 * (hw * hw) * out * ch * 16;
    ch = out;
    out *= 2;
  }
  f += 2.0 * ch * 16;  // the 4x4 -> 1 logit
  return f * static_cast<double>(batch);
}

std::shared_ptr<Sequential> dcgan_discriminator(DcganOptions o, DNorm norm) {
  o.d_batch_norm = norm == DNorm::BatchNorm;
  auto base = dcgan_discriminator(o);
  if (norm != DNorm::Spectral && norm != DNorm::Weight) return base;
  auto d = std::make_shared<Sequential>();
  for (const auto& child : base->named_children()) {
    const ModulePtr& m = child.second;
    if (!dynamic_cast<Conv2d*>(m.get()))
      d->push_back(m);
    else if (norm == DNorm::Spectral)
      d->push_back(spectral_norm(m));
    else
      d->push_back(weight_norm(m));
  }
  return d;
}

}  // namespace nn
}  // namespace nash
