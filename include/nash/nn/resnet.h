// Residual GAN architectures for square images of 32 or 64 pixels: the ResNet generator and critic of Gulrajani et
// al. 2017 ("Improved Training of Wasserstein GANs", the CIFAR-10 model; the architecture "Dissecting adaptive
// methods in GANs" trains with Adam, Ada-nSGDA, SGDA and nSGDA) in the block layout SN-GAN's ResNets share
// (Miyato et al. 2018).
//
// G: z -> Linear -> (width, 4, 4) -> one up block per doubling to the image size -> batch norm, ReLU, 3x3 conv to
// the image channels, tanh. An up block: BN, ReLU, 2x nearest upsampling, 3x3 conv, BN, ReLU, 3x3 conv, added to
// the shortcut (2x upsampling, 1x1 conv).
// D: a first block (3x3 conv, ReLU, 3x3 conv, 2x2 average pool; shortcut: pool, then 1x1 conv), down blocks (ReLU,
// 3x3 conv, ReLU, 3x3 conv, pool; shortcut: 1x1 conv, then pool) until 8x8, two blocks at 8x8 that keep the size
// (identity shortcut), then ReLU, the spatial mean (or sum) of each channel and a linear layer to one score.
// Every block has `width` channels. Weights: Glorot-uniform, gain sqrt(2) on the residual convs and 1 on the
// shortcuts and linear layers; biases 0; batch norms start at weight 1, bias 0.
//
// Class-conditional variants (SN-GAN's conditional ResNets, Miyato & Koyama 2018): ConditionalResNetGenerator gives
// each up block's two batch norms a gain and bias per class; the critic becomes conditional by wrapping it in
// nn::ProjectionDiscriminator (nash/nn/conditional.h), which projects its pooled features on a class embedding.
#pragma once
#include <cstdint>
#include <memory>

#include "nash/nn/conditional.h"
#include "nash/nn/layers.h"
#include "nash/nn/models.h"

namespace nash {
namespace nn {

struct ResNetOptions {
  int64_t z_dim = 128;      // latent size; G takes (N, z_dim) or (N, z_dim, 1, 1)
  int64_t channels = 1;     // image channels
  int64_t image_size = 32;  // 32 or 64
  int64_t width = 128;      // channels of every residual block (Gulrajani et al.'s CIFAR model: 128)
  bool d_sum_pool = false;  // D pools its last features by the sum over positions (SN-GAN) instead of the mean
  // Side of the feature maps where G and D each get a self-attention block (nn::SelfAttention2d, SAGAN/BigGAN; in D
  // spectral-normalized when D's convs are): G after the up block that reaches it, D after the first block that
  // gives it. 0: none; otherwise 8 or 16 (and 32 for 64-pixel images).
  int64_t attention = 0;
};

// G's residual block: (N, in, H, W) -> (N, out, 2H, 2W). Children "bn1", "conv1", "bn2", "conv2", "shortcut".
// With num_classes > 0 the two batch norms are class-conditional (ConditionalBatchNorm2d in cbn1 and cbn2, under the
// same names; bn1 and bn2 stay null) and the block is run by forward(x, onehot), onehot the (N, num_classes) rows of
// class_one_hot; forward(x) alone is then an error.
class ResBlockUp : public Module, public ClassInput {
 public:
  ResBlockUp(int64_t in_channels, int64_t out_channels, int64_t num_classes = 0);
  Tensor forward(const Tensor& x) override;
  Tensor forward(const Tensor& x, const Tensor& onehot);
  bool conditional() const { return cbn1 != nullptr; }
  bool takes_classes() const override { return conditional(); }
  Tensor forward_with_classes(const Tensor& x, const Tensor& onehot) override { return forward(x, onehot); }
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<ConditionalBatchNorm2d> cbn1, cbn2;
  std::shared_ptr<Conv2d> conv1, conv2, shortcut;

 private:
  Tensor run(const Tensor& x, const Tensor& onehot);
};

// D's residual block: (N, in, H, W) -> (N, out, H/2, W/2) when downsampling, (N, out, H, W) otherwise. `first`: the
// block that meets the image (no ReLU before its first conv; its shortcut pools before the 1x1 conv). The shortcut is
// a 1x1 conv when the block downsamples or changes the channel count, the identity otherwise. Children "conv1",
// "conv2" and "shortcut" (if any): Conv2d, or wrapped in spectral or weight normalization by `norm` (DNorm::None,
// Spectral or Weight; batch norm is refused: none of these critics normalizes by batch statistics).
class ResBlockDown : public Module {
 public:
  ResBlockDown(int64_t in_channels, int64_t out_channels, bool downsample, bool first = false,
               DNorm norm = DNorm::None);
  Tensor forward(const Tensor& x) override;
  ModulePtr conv1, conv2, shortcut;  // shortcut null: the identity
  bool downsample, first;

 private:
  int64_t in_channels_;
};

// (N, C, H, W) -> (N, C): each channel's mean (or sum) over its positions.
class GlobalPool2d : public Module {
 public:
  explicit GlobalPool2d(bool sum = false) : Module("GlobalPool2d"), sum(sum) {}
  Tensor forward(const Tensor& x) override;
  bool sum;
};

// G: (N, z_dim) or (N, z_dim, 1, 1) -> (N, channels, image_size, image_size) in [-1, 1]. Children "0" (Reshape to
// (N, z_dim)), "1" (Linear), "2" (Reshape to (N, width, 4, 4)), "3" … (ResBlockUp, and SelfAttention2d where asked),
// then BatchNorm2d, ReLU, Conv2d, Tanh.
std::shared_ptr<Sequential> resnet_generator(const ResNetOptions& o = {});

// The class-conditional G: resnet_generator's layers, names and initialisation, told the class twice, as nash's
// conditional DCGAN G is: the one-hot row is appended to z (the linear layer "1" takes z_dim + num_classes inputs) and
// every up block's batch norms are class-conditional (gains start at 1, biases at 0). The batch norm before the
// output conv stays unconditional, as in SN-GAN's and BigGAN's generators.
// forward(z, labels): z (N, z_dim) or (N, z_dim, 1, 1), labels (N) class indices -> (N, channels, size, size).
// Children "0", "1", ... as in resnet_generator.
class ConditionalResNetGenerator : public ConditionalChain {
 public:
  ConditionalResNetGenerator(const ResNetOptions& o, int64_t num_classes);
};
// D: (N, channels, image_size, image_size) -> (N, 1) scores. Children: the ResBlockDown blocks (and SelfAttention2d
// where asked), ReLU, GlobalPool2d, Linear (wrapped like the convs by `norm`).
std::shared_ptr<Sequential> resnet_discriminator(const ResNetOptions& o = {}, DNorm norm = DNorm::None);

// Multiply-adds x 2 of one forward pass of each network for a batch (conv and linear layers, and the attention's
// 1x1 convs and its two products).
double resnet_generator_flops(const ResNetOptions& o, int64_t batch);
double resnet_discriminator_flops(const ResNetOptions& o, int64_t batch);

}  // namespace nn
}  // namespace nash
