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
// Multiply-adds x 2 of one forward pass of each network for a batch (conv and linear layers only).
double dcgan_generator_flops(const DcganOptions& o, int64_t batch);
double dcgan_discriminator_flops(const DcganOptions& o, int64_t batch);

}  // namespace nn
}  // namespace nash
