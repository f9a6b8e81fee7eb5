// Fits y = 2x - 1 with a hand-written gradient-descent loop on nash tensors: proves the installed API links and runs.
#include <cmath>
#include <cstdio>

#include <nash/nash.h>

int main() {
  nash::manual_seed(0);
  nash::Tensor x = nash::randn({64, 1});
  nash::Tensor y = x * 2.0 - 1.0;
  nash::Tensor w = nash::zeros({1, 1}).requires_grad_();
  nash::Tensor b = nash::zeros({1}).requires_grad_();
  double loss = 0;
  for (int step = 0; step < 200; ++step) {
    nash::Tensor l = nash::mse_loss(nash::linear(x, w, b), y);
    l.backward();
    nash::NoGradGuard no_grad;
    w.add_(w.grad(), -0.1);
    b.add_(b.grad(), -0.1);
    w.zero_grad();
    b.zero_grad();
    loss = l.item();
  }
  std::printf("w=%.4f b=%.4f loss=%.2e\n", w.item(), b.item(), loss);
  return (std::fabs(w.item() - 2) < 1e-3 && std::fabs(b.item() + 1) < 1e-3) ? 0 : 1;
}
