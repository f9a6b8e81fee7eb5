// GAN losses on discriminator logits (means over the batch) and the gradient penalties WGAN-GP and R1.
#pragma once
#include <functional>
#include <string>

#include "nash/core/random.h"
#include "nash/core/tensor.h"

namespace nash {
namespace nn {

// Non-saturating (Goodfellow et al.): D minimises BCE-with-logits with targets 1 on real and 0 on fake,
// mean(softplus(-real)) + mean(softplus(fake)); G minimises -log D(G(z)) = mean(softplus(-fake)).
Tensor d_loss_ns(const Tensor& real_logits, const Tensor& fake_logits);
Tensor g_loss_ns(const Tensor& fake_logits);
// Minimax: D's loss is the same BCE; G minimises mean(log(1 - D(G(z)))) = -mean(softplus(fake)).
Tensor d_loss_minimax(const Tensor& real_logits, const Tensor& fake_logits);
Tensor g_loss_minimax(const Tensor& fake_logits);
// Hinge: D: mean(relu(1 - real)) + mean(relu(1 + fake)); G: -mean(fake).
Tensor d_loss_hinge(const Tensor& real_logits, const Tensor& fake_logits);
Tensor g_loss_hinge(const Tensor& fake_logits);
// Wasserstein (critic scores): D: mean(fake) - mean(real); G: -mean(fake).
Tensor d_loss_wasserstein(const Tensor& real_scores, const Tensor& fake_scores);
Tensor g_loss_wasserstein(const Tensor& fake_scores);

// Least squares (LSGAN, Mao et al., targets a = 0 for fake, b = c = 1): D: ½mean((real - 1)²) + ½mean(fake²);
// G: ½mean((fake - 1)²). D's output is a score, not a probability: no sigmoid.
Tensor d_loss_least_squares(const Tensor& real_scores, const Tensor& fake_scores);
Tensor g_loss_least_squares(const Tensor& fake_scores);

enum class GanLoss { NonSaturating, Minimax, Hinge, Wasserstein, LeastSquares };
// "ns" (or "non-saturating"), "minimax", "hinge", "wasserstein" (or "wgan"), "ls" (or "lsgan", "least-squares");
// throws naming the choices otherwise.
GanLoss parse_gan_loss(const std::string& name);
Tensor d_loss(GanLoss kind, const Tensor& real_logits, const Tensor& fake_logits);
Tensor g_loss(GanLoss kind, const Tensor& fake_logits);

// The discriminator/critic as a function of its input batch; it must treat samples independently (no batch
// statistics), since the per-sample input gradients are taken from the gradient of the sum of its outputs.
using Critic = std::function<Tensor(const Tensor&)>;

// WGAN-GP (Gulrajani et al.): with ε ~ U(0, 1) per sample (from gen, else the default generator) and
// x̂ = ε real + (1 - ε) fake (both detached), lambda * mean((||∇x̂ D(x̂)||₂ - 1)²). The input gradient is built with
// create_graph, so backward() reaches D's parameters (double backward through D).
Tensor gradient_penalty(const Critic& D, const Tensor& real, const Tensor& fake, double lambda = 10.0,
                        Generator* gen = nullptr);
// The same with the interpolation weights given: eps of shape (N, 1, ..., 1) (data-parallel training draws them for
// the global batch and hands each rank its rows, so the run matches a single process).
Tensor gradient_penalty(const Critic& D, const Tensor& real, const Tensor& fake, const Tensor& eps, double lambda);
// R1 (Mescheder et al.): gamma / 2 * mean(||∇x D(x)||²) on real data (detached), also through double backward.
Tensor r1_penalty(const Critic& D, const Tensor& real, double gamma = 10.0);

}  // namespace nn
}  // namespace nash
