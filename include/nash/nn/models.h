// Reference GAN architectures built from nash layers: DCGAN's generator and discriminator for square images of
// 32 or 64 pixels (Radford et al.: transposed convs + batch norm + ReLU in G, strided convs + batch norm +
// LeakyReLU(0.2) in D, 4x4 kernels, N(0, 0.02) weights).
#pragma once
#include <cstdint>
#include <memory>

#include "nash/nn/layers.h"

namespace nash {
namespace nn {

struct DcganOptions {
  int64_t z_dim = 100;      // latent size; G takes (N, z_dim) or (N, z_dim, 1, 1)
  int64_t channels = 1;     // image channels
  int64_t image_size = 32;  // 32 or 64
  int64_t width = 64;       // ngf = ndf: channels of G's last hidden layer and D's first
  bool d_batch_norm = true; // batch norm in D's hidden layers (off for WGAN-GP critics and spectral norm)
};

// G: z -> (N, channels, image_size, image_size) in [-1, 1] (Tanh).
std::shared_ptr<Sequential> dcgan_generator(const DcganOptions& o = {});
// D: (N, channels, image_size, image_size) -> (N, 1) logits (no sigmoid; the losses take logits).
std::shared_ptr<Sequential> dcgan_discriminator(const DcganOptions& o = {});
// DCGAN's discriminator with another normalization of its hidden convs (the SN-GAN paper's baselines): DCGAN's batch
// norm, none, or every conv wrapped in spectral or weight normalization after DCGAN's initialisation (no batch
// norm). o.d_batch_norm is ignored.
enum class DNorm { None, BatchNorm, Spectral, Weight };
std::shared_ptr<Sequential> dcgan_discriminator(DcganOptions o, DNorm norm);
// SN-GAN's discriminator in DCGAN's shape (Miyato et al.): the same strided 4x4 convs, every conv wrapped in
// spectral normalization, no batch norm, LeakyReLU(0.1), biases, PyTorch's default initialisation. Use it with the
// hinge loss and DCGAN's generator. d_batch_norm is ignored.
std::shared_ptr<Sequential> sngan_discriminator(const DcganOptions& o = {});

// A ProGAN-style pair at a fixed resolution (Karras et al.'s layers without the progressive growing): every
// conv/linear an equalized-learning-rate layer (weights N(0, 1), scaled at run time by He's constant), leaky ReLU
// 0.2 with gain sqrt(2). G: pixel-normed latent, 4x4 transposed conv, then DCGAN's 4x4 stride-2 transposed convs,
// each followed by pixel norm; a linear (gain 1) output layer without tanh. D: DCGAN's strided convs, minibatch
// standard deviation (group 4) before a 3x3 conv, then a 4x4 conv to one score. Both have DCGAN's cost.
// d_batch_norm is ignored.
std::shared_ptr<Sequential> progan_generator(const DcganOptions& o = {});
std::shared_ptr<Sequential> progan_discriminator(const DcganOptions& o = {});

// Multiply-adds x 2 of one forward pass of each network for a batch (conv and linear layers only).
double dcgan_generator_flops(const DcganOptions& o, int64_t batch);
double dcgan_discriminator_flops(const DcganOptions& o, int64_t batch);

}  // namespace nn
}  // namespace nash
