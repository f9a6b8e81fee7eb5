// Residual generator and critic (nash/nn/resnet.h).
#include "nash/nn/resnet.h"

#include <cmath>
#include <string>
#include <vector>

#include "nash/core/error.h"
#include "nash/nn/attention.h"
#include "nash/nn/init.h"
#include "nash/nn/spectral_norm.h"
#include "nash/nn/weight_norm.h"

namespace nash {
namespace nn {

namespace {

constexpr double kResidualGain = 1.4142135623730951;  // sqrt(2): the residual convs feed a ReLU

// Blocks between 4x4 and the image (G), or first + down blocks until 8x8 (D): 3 for 32 pixels, 4 for 64.
int64_t doublings(const ResNetOptions& o, const char* who) {
  NASH_CHECK(o.image_size == 32 || o.image_size == 64, who, ": image_size must be 32 or 64, got ", o.image_size);
  NASH_CHECK(o.z_dim > 0 && o.channels > 0 && o.width > 0, who, ": z_dim, channels and width must be > 0, got ",
             o.z_dim, ", ", o.channels, ", ", o.width);
  NASH_CHECK(o.attention == 0 || ((o.attention == 8 || o.attention == 16 || o.attention == 32) &&
                                   o.attention <= o.image_size / 2),
             who, ": attention must be 0 (none) or a feature-map side both G and D have (8 or 16",
             o.image_size == 64 ? ", 32" : "", " for ", o.image_size, "-pixel images), got ", o.attention);
  return o.image_size == 32 ? 3 : 4;
}

// One self-attention block's multiply-adds x 2 on a side x side map of w channels: the four 1x1 convs (C/8, C/8,
// C/2 and C/2 -> C) and the products qᵀk and v βᵀ.
double attention_flops(double side, double w) {
  const double hw = side * side;
  return 2.0 * hw * (w * w / 8 * 2 + w * w / 2 * 2) + 2.0 * hw * hw * (w / 8 + w / 2);
}

std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, double gain) {
  auto c = std::make_shared<Conv2d>(in, out, k, 1, k / 2, true);
  init::xavier_uniform_(c->weight, gain);
  init::zeros_(c->bias);
  return c;
}

void check_d_norm(DNorm norm, const char* who) {
  NASH_CHECK(norm != DNorm::BatchNorm, who, ": batch norm is not one of its normalizations (none, spectral or "
             "weight)");
}

// Wraps a freshly initialised layer (spectral norm warms its power iteration up on the initial weight); norm has
// passed check_d_norm.
ModulePtr normed(ModulePtr m, DNorm norm) {
  if (norm == DNorm::Spectral) return spectral_norm(std::move(m));
  if (norm == DNorm::Weight) return weight_norm(std::move(m));
  return m;
}

}  // namespace

ResBlockUp::ResBlockUp(int64_t in, int64_t out, int64_t num_classes) : Module("ResBlockUp") {
  NASH_CHECK(in > 0 && out > 0 && num_classes >= 0, "ResBlockUp: channel counts must be > 0 and num_classes >= 0, "
             "got ", in, ", ", out, " and ", num_classes);
  if (num_classes > 0)
    cbn1 = register_module("bn1", std::make_shared<ConditionalBatchNorm2d>(in, num_classes));
  else
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in));
  conv1 = register_module("conv1", conv(in, out, 3, kResidualGain));
  if (num_classes > 0)
    cbn2 = register_module("bn2", std::make_shared<ConditionalBatchNorm2d>(out, num_classes));
  else
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  conv2 = register_module("conv2", conv(out, out, 3, kResidualGain));
  shortcut = register_module("shortcut", conv(in, out, 1, 1.0));
}

Tensor ResBlockUp::forward(const Tensor& x) {
  NASH_CHECK(!conditional(), "ResBlockUp.forward: this block's batch norms are class-conditional: call "
             "forward(x, onehot)");
  return run(x, Tensor());
}

Tensor ResBlockUp::forward(const Tensor& x, const Tensor& onehot) {
  NASH_CHECK(conditional(), "ResBlockUp.forward: this block is not class-conditional; it takes no one-hot rows");
  return run(x, onehot);
}

Tensor ResBlockUp::run(const Tensor& x, const Tensor& onehot) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == conv1->weight.size(1), "ResBlockUp: expected (N, ",
             conv1->weight.size(1), ", H, W), got ", shape_str(x));
  auto norm1 = [&](const Tensor& t) { return cbn1 ? cbn1->forward(t, onehot) : bn1->forward(t); };
  auto norm2 = [&](const Tensor& t) { return cbn2 ? cbn2->forward(t, onehot) : bn2->forward(t); };
  Tensor h = upsample_nearest2d(relu(norm1(x)), 2);
  h = conv2->forward(relu(norm2(conv1->forward(h))));
  return add(h, shortcut->forward(upsample_nearest2d(x, 2)));
}

ResBlockDown::ResBlockDown(int64_t in, int64_t out, bool downsample_, bool first_, DNorm norm)
    : Module("ResBlockDown"), downsample(downsample_), first(first_), in_channels_(in) {
  NASH_CHECK(in > 0 && out > 0, "ResBlockDown: channel counts must be > 0, got ", in, " and ", out);
  check_d_norm(norm, "ResBlockDown");
  conv1 = register_module("conv1", normed(conv(in, out, 3, kResidualGain), norm));
  conv2 = register_module("conv2", normed(conv(out, out, 3, kResidualGain), norm));
  if (downsample || in != out) shortcut = register_module("shortcut", normed(conv(in, out, 1, 1.0), norm));
}

Tensor ResBlockDown::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in_channels_, "ResBlockDown: expected (N, ", in_channels_,
             ", H, W), got ", shape_str(x));
  NASH_CHECK(!downsample || (x.size(2) % 2 == 0 && x.size(3) % 2 == 0), "ResBlockDown: a downsampling block needs "
             "even H and W, got ", shape_str(x.shape()));
  Tensor h = conv1->forward(first ? x : relu(x));
  h = conv2->forward(relu(h));
  if (downsample) h = avg_pool2d(h, 2);
  Tensor s = x;
  if (shortcut) {
    if (first && downsample) {
      s = shortcut->forward(avg_pool2d(x, 2));
    } else {
      s = shortcut->forward(x);
      if (downsample) s = avg_pool2d(s, 2);
    }
  }
  return add(h, s);
}

Tensor GlobalPool2d::forward(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4, "GlobalPool2d: expected (N, C, H, W), got ", shape_str(x));
  return sum ? nash::sum(x, {2, 3}) : mean(x, {2, 3});
}

namespace {

// G's layers in order; the linear layer takes z_dim + num_classes inputs and the up blocks are conditional when
// num_classes > 0.
std::vector<ModulePtr> generator_layers(const ResNetOptions& o, int64_t num_classes, const char* who) {
  const int64_t n = doublings(o, who);
  const int64_t w = o.width, in = o.z_dim + num_classes;
  std::vector<ModulePtr> g;
  auto lin = std::make_shared<Linear>(in, 16 * w, true);
  init::xavier_uniform_(lin->weight, 1.0);
  init::zeros_(lin->bias);
  g.push_back(std::make_shared<Reshape>(Shape{in}));
  g.push_back(lin);
  g.push_back(std::make_shared<Reshape>(Shape{w, 4, 4}));
  for (int64_t i = 0, side = 8; i < n; ++i, side *= 2) {
    g.push_back(std::make_shared<ResBlockUp>(w, w, num_classes));
    if (side == o.attention) g.push_back(std::make_shared<SelfAttention2d>(w));
  }
  g.push_back(std::make_shared<BatchNorm2d>(w));
  g.push_back(std::make_shared<ReLU>());
  g.push_back(conv(w, o.channels, 3, 1.0));
  g.push_back(std::make_shared<Tanh>());
  return g;
}

}  // namespace

std::shared_ptr<Sequential> resnet_generator(const ResNetOptions& o) {
  auto g = std::make_shared<Sequential>();
  for (ModulePtr& m : generator_layers(o, 0, "resnet_generator")) g->push_back(std::move(m));
  return g;
}

ConditionalResNetGenerator::ConditionalResNetGenerator(const ResNetOptions& o, int64_t num_classes)
    : ConditionalChain("ConditionalResNetGenerator", num_classes, o.z_dim) {
  for (ModulePtr& m : generator_layers(o, num_classes, "ConditionalResNetGenerator")) add_layer(std::move(m));
}

std::shared_ptr<Sequential> resnet_discriminator(const ResNetOptions& o, DNorm norm) {
  const int64_t n = doublings(o, "resnet_discriminator");
  check_d_norm(norm, "resnet_discriminator");
  const int64_t w = o.width;
  NASH_CHECK(o.attention == 0 || norm != DNorm::Weight, "resnet_discriminator: the attention block takes spectral "
             "norm or none, not weight norm");
  auto d = std::make_shared<Sequential>();
  int64_t side = o.image_size / 2;
  auto attend = [&] {
    if (side == o.attention) d->push_back(std::make_shared<SelfAttention2d>(w, norm == DNorm::Spectral));
  };
  d->push_back(std::make_shared<ResBlockDown>(o.channels, w, true, true, norm));
  attend();
  for (int64_t i = 1; i < n - 1; ++i) {
    d->push_back(std::make_shared<ResBlockDown>(w, w, true, false, norm));
    side /= 2;
    attend();
  }
  d->push_back(std::make_shared<ResBlockDown>(w, w, false, false, norm));
  d->push_back(std::make_shared<ResBlockDown>(w, w, false, false, norm));
  d->push_back(std::make_shared<ReLU>());
  d->push_back(std::make_shared<GlobalPool2d>(o.d_sum_pool));
  auto lin = std::make_shared<Linear>(w, 1, true);
  init::xavier_uniform_(lin->weight, 1.0);
  init::zeros_(lin->bias);
  d->push_back(normed(lin, norm));
  return d;
}

double resnet_generator_flops(const ResNetOptions& o, int64_t batch) {
  const int64_t n = doublings(o, "resnet_generator_flops");
  const double w = static_cast<double>(o.width);
  double f = 2.0 * o.z_dim * 16 * w;
  for (int64_t i = 0, r = 8; i < n; ++i, r *= 2)
    f += 2.0 * r * r * (9 * w * w + 9 * w * w + w * w)  // conv1, conv2, the 1x1 shortcut at the output size
         + (r == o.attention ? attention_flops(static_cast<double>(r), w) : 0.0);
  f += 2.0 * o.image_size * o.image_size * 9 * w * o.channels;
  return f * static_cast<double>(batch);
}

double resnet_discriminator_flops(const ResNetOptions& o, int64_t batch) {
  const int64_t n = doublings(o, "resnet_discriminator_flops");
  const double w = static_cast<double>(o.width), c = static_cast<double>(o.channels);
  double s = static_cast<double>(o.image_size);
  double f = 2.0 * s * s * (9 * c * w + 9 * w * w) + 2.0 * (s / 2) * (s / 2) * c * w;  // first block
  s /= 2;
  if (s == o.attention) f += attention_flops(s, w);
  for (int64_t i = 1; i < n - 1; ++i) {
    f += 2.0 * s * s * (9 * w * w + 9 * w * w + w * w);
    s /= 2;
    if (s == o.attention) f += attention_flops(s, w);
  }
  f += 2 * (2.0 * s * s * 18 * w * w);  // two blocks at 8x8, identity shortcuts
  f += 2.0 * w;
  return f * static_cast<double>(batch);
}

}  // namespace nn
}  // namespace nash
