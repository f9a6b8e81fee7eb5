// Differentiable augmentation for GANs (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
// 2020): the same random transformations applied to every image D sees, real and generated, built from
// differentiable ops so that G's gradient (and a gradient penalty's double backward) flows through them. With few
// training images D otherwise memorises them and its feedback to G collapses; augmenting only the reals would teach
// G to draw the augmentations.
//
// Per image (N, C, H, W) in [-1, 1], each with its own draws, in this order:
//  - color: brightness x + b, b ~ U(-0.5, 0.5); saturation (C > 1) (x − mean_c) s + mean_c, s ~ U(0, 2); contrast
//    (x − mean_chw) c + mean_chw, c ~ U(0.5, 1.5);
//  - translation: a shift by whole pixels, t_y, t_x uniform in [−r, r] with r = round(ratio · size), zeros shifted in
//    (as products with shift matrices, so the op is linear in x);
//  - cutout: a square of side round(ratio · size) set to 0, centred uniformly over the image (clipped at its edges).
#pragma once
#include <cstdint>
#include <string>

#include "nash/core/random.h"
#include "nash/core/tensor.h"

namespace nash {
namespace nn {

struct DiffAugmentOptions {
  bool color = true, translation = true, cutout = true;
  double translation_ratio = 0.125;  // DiffAugment's: 1/8 of the size (4 pixels at 32)
  double cutout_ratio = 0.5;         // half the size (16 pixels at 32)
};

// "color,translation,cutout" (any non-empty subset, comma-separated, any order) -> options; errors name an unknown
// part. policy_name gives the canonical text back.
DiffAugmentOptions parse_diff_augment_policy(const std::string& policy);
std::string diff_augment_policy_name(const DiffAugmentOptions& o);

// Augments x (N, C, H, W) (float32 or float64, any device). Draws come from gen (the default generator when null),
// made for a global batch of N · shard_count images of which this process holds rows shard_rank, shard_rank +
// shard_count, ... (dist::Shard's rows): data-parallel ranks draw what one process would.
Tensor diff_augment(const Tensor& x, const DiffAugmentOptions& o = {}, Generator* gen = nullptr,
                    int64_t shard_rank = 0, int64_t shard_count = 1);

}  // namespace nn
}  // namespace nash
