// GAN losses written stably through softplus/relu, and the WGAN-GP and R1 penalties through autograd::grad.
#include "nash/nn/losses.h"

#include "nash/core/autograd.h"
#include "nash/core/ops.h"

namespace nash {
namespace nn {

namespace {

void check_logits(const char* op, const char* what, const Tensor& t) {
  NASH_CHECK(t.defined() && t.numel() > 0, op, ": ", what, " must be a non-empty tensor, got ",
             shape_str(t));
}

void check_pair(const char* op, const Tensor& real, const Tensor& fake) {
  check_logits(op, "real logits", real);
  check_logits(op, "fake logits", fake);
  NASH_CHECK(real.device() == fake.device() && real.dtype() == fake.dtype(), op, ": real (", real.str(), ") and fake (",
             fake.str(), ") logits must share device and dtype");
}

// ||∇x D(x)|| per sample, with the graph kept so the result differentiates into D's parameters.
Tensor input_gradient(const char* op, const Critic& D, const Tensor& x) {
  NASH_CHECK(static_cast<bool>(D), op, ": the critic is empty");
  EnableGradGuard on(true);  // the penalty is a gradient: it needs D's graph even when called under no-grad
  Tensor out = D(x);
  NASH_CHECK(out.defined() && out.numel() == x.size(0), op, ": the critic must give one score per sample (", x.size(0),
             "), got ", shape_str(out));
  Tensor g = autograd::grad({sum(out)}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return g.reshape({x.size(0), -1});
}

void check_batch(const char* op, const char* what, const Tensor& t) {
  NASH_CHECK(t.defined() && t.dim() >= 1 && t.size(0) > 0 && t.numel() > 0, op, ": ", what,
             " must be a non-empty batch (N, ...), got ",
             shape_str(t));
}

}  // namespace

Tensor d_loss_ns(const Tensor& real, const Tensor& fake) {
  check_pair("d_loss_ns", real, fake);
  return add(mean(softplus(neg(real))), mean(softplus(fake)));
}
Tensor g_loss_ns(const Tensor& fake) {
  check_logits("g_loss_ns", "fake logits", fake);
  return mean(softplus(neg(fake)));
}

Tensor d_loss_minimax(const Tensor& real, const Tensor& fake) {
  check_pair("d_loss_minimax", real, fake);
  return d_loss_ns(real, fake);
}
Tensor g_loss_minimax(const Tensor& fake) {
  check_logits("g_loss_minimax", "fake logits", fake);
  return neg(mean(softplus(fake)));  // log(1 - sigmoid(x)) = -softplus(x)
}

Tensor d_loss_hinge(const Tensor& real, const Tensor& fake) {
  check_pair("d_loss_hinge", real, fake);
  return add(mean(relu(rsub(real, 1.0))), mean(relu(add(fake, 1.0))));
}
Tensor g_loss_hinge(const Tensor& fake) {
  check_logits("g_loss_hinge", "fake logits", fake);
  return neg(mean(fake));
}

Tensor d_loss_wasserstein(const Tensor& real, const Tensor& fake) {
  check_pair("d_loss_wasserstein", real, fake);
  return sub(mean(fake), mean(real));
}
Tensor g_loss_wasserstein(const Tensor& fake) {
  check_logits("g_loss_wasserstein", "fake scores", fake);
  return neg(mean(fake));
}

Tensor d_loss_least_squares(const Tensor& real, const Tensor& fake) {
  check_pair("d_loss_least_squares", real, fake);
  const Tensor r = add(real, -1.0);
  return mul(add(mean(mul(r, r)), mean(mul(fake, fake))), 0.5);
}
Tensor g_loss_least_squares(const Tensor& fake) {
  check_logits("g_loss_least_squares", "fake scores", fake);
  const Tensor f = add(fake, -1.0);
  return mul(mean(mul(f, f)), 0.5);
}

GanLoss parse_gan_loss(const std::string& name) {
  if (name == "ns" || name == "non-saturating") return GanLoss::NonSaturating;
  if (name == "minimax") return GanLoss::Minimax;
  if (name == "hinge") return GanLoss::Hinge;
  if (name == "wasserstein" || name == "wgan") return GanLoss::Wasserstein;
  if (name == "ls" || name == "lsgan" || name == "least-squares") return GanLoss::LeastSquares;
  detail::fail("parse_gan_loss: unknown loss '", name, "' (expected ns, minimax, hinge, wasserstein or ls)");
}

Tensor d_loss(GanLoss kind, const Tensor& real, const Tensor& fake) {
  switch (kind) {
    case GanLoss::NonSaturating:
      return d_loss_ns(real, fake);
    case GanLoss::Minimax:
      return d_loss_minimax(real, fake);
    case GanLoss::Hinge:
      return d_loss_hinge(real, fake);
    case GanLoss::Wasserstein:
      return d_loss_wasserstein(real, fake);
    case GanLoss::LeastSquares:
      return d_loss_least_squares(real, fake);
  }
  detail::fail("d_loss: unknown GanLoss value ", static_cast<int>(kind));
}

Tensor g_loss(GanLoss kind, const Tensor& fake) {
  switch (kind) {
    case GanLoss::NonSaturating:
      return g_loss_ns(fake);
    case GanLoss::Minimax:
      return g_loss_minimax(fake);
    case GanLoss::Hinge:
      return g_loss_hinge(fake);
    case GanLoss::Wasserstein:
      return g_loss_wasserstein(fake);
    case GanLoss::LeastSquares:
      return g_loss_least_squares(fake);
  }
  detail::fail("g_loss: unknown GanLoss value ", static_cast<int>(kind));
}

namespace {
Shape gp_eps_shape(const Tensor& real) {
  Shape es(static_cast<std::size_t>(real.dim()), 1);
  es[0] = real.size(0);
  return es;
}
}  // namespace

Tensor gradient_penalty(const Critic& D, const Tensor& real, const Tensor& fake, double lambda, Generator* gen) {
  const char* op = "gradient_penalty";
  check_batch(op, "real", real);
  Tensor eps;
  {
    NoGradGuard ng;
    eps = rand(gp_eps_shape(real), real.dtype(), real.device(), gen);
  }
  return gradient_penalty(D, real, fake, eps, lambda);
}

Tensor gradient_penalty(const Critic& D, const Tensor& real, const Tensor& fake, const Tensor& eps, double lambda) {
  const char* op = "gradient_penalty";
  check_batch(op, "real", real);
  check_batch(op, "fake", fake);
  NASH_CHECK(real.shape() == fake.shape() && real.device() == fake.device() && real.dtype() == fake.dtype(), op,
             ": real (", real.str(), ") and fake (", fake.str(), ") must match in shape, device and dtype");
  NASH_CHECK(eps.defined() && eps.shape() == gp_eps_shape(real) && eps.device() == real.device() &&
                 eps.dtype() == real.dtype(),
             op, ": eps must be ", real.dtype() == DType::Float64 ? "float64 " : "float32 ", real.device().str(),
             " ", shape_str(gp_eps_shape(real)), ", got ", eps.defined() ? eps.str() : std::string("undefined"));
  Tensor xhat;
  {
    NoGradGuard ng;
    Tensor f = fake.detach();
    xhat = add(f, mul(eps, sub(real.detach(), f)));
  }
  xhat.requires_grad_();
  Tensor norms = norm(input_gradient(op, D, xhat), 2.0, {1});
  return mul(mean(square(add(norms, -1.0))), lambda);
}

Tensor r1_penalty(const Critic& D, const Tensor& real, double gamma) {
  const char* op = "r1_penalty";
  check_batch(op, "real", real);
  Tensor x = real.detach().requires_grad_();
  Tensor g = input_gradient(op, D, x);
  return mul(mean(sum(square(g), {1})), gamma / 2.0);
}

}  // namespace nn
}  // namespace nash
