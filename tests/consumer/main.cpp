// The README's example, built against the installed nash by CTest: fits y = x^2/2 - 1 with a small MLP and Adam.
#include <cstdio>

#include <nash/nash.h>

int main() {
  nash::manual_seed(0);
  auto net = std::make_shared<nash::nn::Sequential>(std::initializer_list<nash::nn::ModulePtr>{
      std::make_shared<nash::nn::Linear>(1, 32), std::make_shared<nash::nn::Tanh>(),
      std::make_shared<nash::nn::Linear>(32, 1)});
  nash::optim::AdamOptions options;
  options.lr = 1e-2;
  nash::optim::Adam opt(net->parameters(), options);
  nash::Tensor x = nash::rand({256, 1}) * 4.0 - 2.0;
  nash::Tensor y = x * x * 0.5 - 1.0;
  double loss = 0;
  for (int step = 0; step <= 1000; ++step) {
    nash::Tensor l = nash::mse_loss(net->forward(x), y);
    opt.zero_grad();
    l.backward();
    opt.step();
    loss = l.item();
    if (step % 250 == 0) std::printf("step %4d  loss %.5f\n", step, loss);
  }
  return loss < 1e-2 ? 0 : 1;
}
