// Spectral normalization (Miyato et al., SN-GAN): a Linear/Conv2d/ConvTranspose2d run with W / σ(W), σ estimated by
// power iteration on persistent buffers u, v; plus the model-wide fused update.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "nash/core/ops.h"
#include "nash/nn/module.h"

namespace nash {
namespace nn {

// w as the matrix spectral normalization works on: dim `dim` first, the other dims flattened in their order, shape
// (w.size(dim), numel / w.size(dim)). A view when dim is 0 and w is contiguous, otherwise a copy. No history.
Tensor spectral_weight_matrix(const Tensor& w, int64_t dim = 0);
// w as power_iteration takes it, without a copy for a contiguous w: the (rows, cols) matrix for dim 0, the
// (size(0), rows, rest) tensor for dim 1 (a transposed convolution's weight), spectral_weight_matrix otherwise.
// Its matrix is spectral_weight_matrix(w, dim). No history.
Tensor spectral_iteration_view(const Tensor& w, int64_t dim = 0);

// w / σ with σ = uᵀ W_mat v, W_mat = spectral_weight_matrix(w, dim), for unit vectors u (rows) and v (cols) taken
// as constants: the gradient flows through σ (dσ/dW = u vᵀ) and is itself differentiable. u and v are copied, so
// updating them in place later leaves the recorded graph valid. σ is clamped below at eps (an all-zero w gives 0).
Tensor spectral_normalized_weight(const Tensor& w, const Tensor& u, const Tensor& v, int64_t dim = 0,
                                  double eps = 1e-12);

// Wraps a Linear, Conv2d or ConvTranspose2d (registered as child "module"). The child's "weight" stays the raw,
// trained parameter (checkpoint name "<sn>.module.weight"; its bias etc. are unchanged); forward runs the child's
// op with W / σ instead, so calling the child directly bypasses the normalization. Buffers "weight_u" (rows) and
// "weight_v" (cols) hold the power-iteration state and are saved with the model.
//
// Training mode: unless external_update is set, each forward first runs n_power_iterations under no-grad (as
// PyTorch does), so two forwards of one D step (real, fake) each advance u, v; their graphs stay valid because σ
// is computed from copies of u, v. Eval mode: u, v are used as stored. spectral_norm_update_all() runs the update
// for a whole model in one fused call and sets external_update, after which forwards never update.
class SpectralNorm : public Module {
 public:
  // dim: the weight dim that is the matrix's rows; -1 picks 0 for Linear/Conv2d and 1 for ConvTranspose2d
  // (whose weight is (in, out, kh, kw)). u, v are drawn from N(0,1) with the default generator, normalized, and
  // warmed up by 15 power iterations.
  explicit SpectralNorm(ModulePtr module, int64_t n_power_iterations = 1, double eps = 1e-12, int64_t dim = -1);

  Tensor forward(const Tensor& x) override;

  // Runs n_iters power iterations on u, v now (no history), whatever the mode.
  void power_iterate(int64_t n_iters);
  // The current estimate uᵀ W_mat v as a 0-d tensor without history.
  Tensor sigma() const;
  // W / σ from the current u, v, with history and without an update: what forward feeds the wrapped op.
  Tensor normalized_weight() const;
  // The wrapped module's raw weight parameter.
  const Tensor& weight() const;
  const ModulePtr& module() const { return module_; }
  int64_t dim() const { return dim_; }

  int64_t n_power_iterations;
  double eps;
  // When set, forward never updates u, v (spectral_norm_update_all drives them instead).
  bool external_update = false;
  Tensor weight_u, weight_v;

 private:
  enum class Kind { Linear, Conv2d, ConvTranspose2d };
  ModulePtr module_;
  Kind kind_ = Kind::Linear;
  int64_t dim_ = 0;
};

std::shared_ptr<SpectralNorm> spectral_norm(ModulePtr module, int64_t n_power_iterations = 1, double eps = 1e-12,
                                            int64_t dim = -1);

// Every SpectralNorm in root's tree (root included), each once, in traversal order.
std::vector<SpectralNorm*> spectral_norm_layers(Module& root);

// One step's power iterations for every SpectralNorm layer of root that is in training mode, through
// power_iteration_many: one call (one CUDA launch) per group of layers sharing device, dtype, n_power_iterations
// and eps. Sets external_update on those layers, so this call replaces their per-forward updates: call it once
// per D step before the forwards, which then all use the same u, v. Returns the number of layers updated.
int64_t spectral_norm_update_all(Module& root);

}  // namespace nn
}  // namespace nash
