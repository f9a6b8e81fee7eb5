// Weight normalization (Salimans & Kingma, 2016), one of the SN-GAN paper's baselines: a Linear/Conv2d/
// ConvTranspose2d run with W = g · V / ‖V‖, one norm and one g per output unit.
#pragma once
#include <cstdint>
#include <memory>

#include "nash/core/ops.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

// g · v / ‖v‖ with the norm taken per slice along `dim` (over every other dim) and g shaped like that norm (v's
// shape with every dim but `dim` set to 1, so it broadcasts). Built from differentiable ops, so gradients of
// gradients (penalties through a weight-normalized D) work. The norm is clamped below at eps (a zero slice gives 0).
Tensor weight_normalized(const Tensor& v, const Tensor& g, int64_t dim = 0, double eps = 1e-12);

// Per-slice norms of v along `dim` as weight_normalized shapes g (no history).
Tensor weight_norm_g_like(const Tensor& v, int64_t dim = 0);

// Wraps a Linear, Conv2d or ConvTranspose2d (registered as child "module"), like SpectralNorm does. The child's
// "weight" is the direction V (checkpoint name "<wn>.module.weight"; its bias is unchanged); the wrapper adds the
// parameter "weight_g" (checkpoint name "<wn>.weight_g"): for Linear (out, 1), Conv2d (out, 1, 1, 1),
// ConvTranspose2d (1, out, 1, 1). g starts at ‖V‖ per output unit, so wrapping leaves the layer's function
// unchanged. forward runs the child's op with g · V / ‖V‖; calling the child directly uses V itself.
class WeightNorm : public Module {
 public:
  // dim: the weight dim indexing output units; -1 picks 0 for Linear/Conv2d and 1 for ConvTranspose2d (whose
  // weight is (in, out, kh, kw)).
  explicit WeightNorm(ModulePtr module, int64_t dim = -1, double eps = 1e-12);

  Tensor forward(const Tensor& x) override;

  // g · V / ‖V‖ with history: what forward feeds the wrapped op.
  Tensor normalized_weight() const;
  // The wrapped module's weight parameter V.
  const Tensor& weight() const;
  const ModulePtr& module() const { return module_; }
  int64_t dim() const { return dim_; }

  double eps;
  Tensor weight_g;

 private:
  enum class Kind { Linear, Conv2d, ConvTranspose2d };
  ModulePtr module_;
  Kind kind_ = Kind::Linear;
  int64_t dim_ = 0;
};

std::shared_ptr<WeightNorm> weight_norm(ModulePtr module, int64_t dim = -1, double eps = 1e-12);

}  // namespace nn
}  // namespace nash
