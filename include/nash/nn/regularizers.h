// Discriminator regularizers the SN-GAN paper compares against: orthonormal regularization (Brock et al., 2016)
// and the original WGAN's weight clipping (Arjovsky et al., 2017).
#pragma once
#include <cstdint>
#include <vector>

#include "nash/core/tensor.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

// beta · ‖G − I‖_F² for one weight, with W the (rows, cols) matrix of w (dim `dim` as rows, the other dims
// flattened in order, as spectral normalization reads it) and G its smaller Gram matrix: W Wᵀ (rows × rows) when
// rows <= cols, else Wᵀ W (cols × cols). The paper writes ‖WᵀW − I‖_F²; for a wide W that cannot reach 0 (its
// rank is at most rows < cols), so the smaller Gram is used, which is 0 exactly when the rows (wide W) or the
// columns (tall W) are orthonormal. Differentiable, double backward included; w must have dim >= 2.
Tensor orthonormal_penalty(const Tensor& w, double beta, int64_t dim = 0);

// beta · Σ ‖G − I‖_F² over the weight matrices of module's tree: every parameter named "weight" with dim >= 2
// (biases, norm layers' 1-D weights and WeightNorm's g are left out). Rows are dim 0 (output units), or dim 1 for
// a ConvTranspose2d / EqualizedConvTranspose2d, as SpectralNorm does. For a SpectralNorm or WeightNorm layer this
// is the raw stored weight (W or V), not the normalized one. Returns a 0-d tensor (0 when there are no weights)
// to add to D's loss.
Tensor orthonormal_penalty(const Module& module, double beta);

// beta · Σ ‖G − I‖_F² over the given tensors of dim >= 2 (others are skipped), rows along dim 0 for every one.
Tensor orthonormal_penalty(const std::vector<Tensor>& params, double beta);

// The original WGAN's critic constraint: clamps every parameter of module's tree (weights, biases, norm layers'
// scales and shifts, as the reference implementation does) in place to [-c, c], without history. Call after each
// critic step. c must be positive.
void clip_weights_(Module& module, double c);

}  // namespace nn
}  // namespace nash
