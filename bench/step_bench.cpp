// nash_step_bench: whole GAN training steps and optimizer steps (Google Benchmark), on the CPU and, when a device
// answers, on CUDA. The DCGAN step is the peer comparison's nash side (bench/peers/compare): same model, data
// shapes, loss and optimizer as bench/peers/dcgan_step.py.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include <nash/nash.h>

using namespace nash;

namespace {

Device device_of(int64_t arg) { return arg == 0 ? Device::cpu() : Device::cuda(); }

// Skips a CUDA case with the reason when no device answers.
bool usable(benchmark::State& state, Device d) {
  if (d.is_cuda() && !cuda::is_available()) {
    state.SkipWithError(("no CUDA device: " + cuda::unavailable_reason()).c_str());
    return false;
  }
  return true;
}

void sync(Device d) {
  if (d.is_cuda()) cuda::synchronize();
}

// One DCGAN training step (32x32x1, batch 64, width 64): n_dis 1, non-saturating loss, Adam (2e-4, 0.5, 0.999)
// for both players; args: device (0 cpu, 1 cuda), diagnostics (0/1).
void BM_DcganStep(benchmark::State& state) {
  const Device dev = device_of(state.range(0));
  if (!usable(state, dev)) return;
  manual_seed(0);
  nn::DcganOptions o;
  const int64_t batch = 64;
  auto g = nn::dcgan_generator(o), d = nn::dcgan_discriminator(o);
  g->to(dev);
  d->to(dev);
  optim::AdamOptions ao;
  ao.lr = 2e-4;
  ao.beta1 = 0.5;
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainerOptions to;
  to.diagnostics = state.range(1) != 0;
  optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
  std::vector<Tensor> reals, zs;
  for (int i = 0; i < 3; ++i) {  // rotating inputs
    reals.push_back(clamp(randn({batch, 1, 32, 32}), -1, 1).to(dev));
    zs.push_back(randn({batch, o.z_dim}).to(dev));
  }
  int i = 0;
  for (int w = 0; w < 2; ++w) trainer.step([&] { return reals[0]; }, [&] { return zs[0]; });
  sync(dev);
  for (auto _ : state) {
    const int k = i++ % 3;
    trainer.step([&] { return reals[k]; }, [&] { return zs[k]; });
    sync(dev);
  }
  const double flops = 4 * nn::dcgan_generator_flops(o, batch) + 9 * nn::dcgan_discriminator_flops(o, batch);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DcganStep)
    ->ArgNames({"cuda", "diag"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

// The optimizer step alone over the DCGAN's parameters (G and D, 1.73 M floats, 19 tensors); args: device,
// rule (0 Adam fused, 1 Adam per-tensor, 2 nSGDA fused, 3 Ada-nSGDA fused, 4 Ada-nSGDA per-tensor).
void BM_OptimizerStep(benchmark::State& state) {
  const Device dev = device_of(state.range(0));
  if (!usable(state, dev)) return;
  const int64_t rule = state.range(1);
  if (dev.is_cuda() && (rule == 1 || rule == 4)) {
    state.SkipWithError("the per-tensor reference loops run on the CPU only");
    return;
  }
  manual_seed(0);
  nn::DcganOptions o;
  auto g = nn::dcgan_generator(o), d = nn::dcgan_discriminator(o);
  g->to(dev);
  d->to(dev);
  std::vector<Tensor> params = g->parameters();
  for (const Tensor& p : d->parameters()) params.push_back(p);
  int64_t n = 0;
  for (Tensor& p : params) {
    p.set_grad(randn(p.shape()).to(dev));
    n += p.numel();
  }
  std::unique_ptr<optim::Optimizer> opt;
  if (rule <= 1) {
    optim::AdamOptions ao;
    ao.fused = rule == 0;
    opt = std::make_unique<optim::Adam>(params, ao);
  } else if (rule == 2) {
    opt = std::make_unique<optim::NSGDA>(optim::ParamGroup::layerwise(params), optim::NSGDAOptions{0.01});
  } else {
    optim::AdaGraftOptions go;
    go.fused = rule == 3;
    opt = std::make_unique<optim::AdaNSGDA>(optim::ParamGroup::layerwise(params), go);
  }
  opt->step();
  sync(dev);
  for (auto _ : state) {
    opt->step();
    sync(dev);
  }
  // Bytes the rule must move per parameter: Adam p,g,m,v read + p,m,v written; nSGDA g twice + p r/w;
  // Ada-nSGDA Adam's plus g and p again in the update pass.
  const double per = rule <= 1 ? 28.0 : rule == 2 ? 16.0 : 36.0;
  state.counters["GB/s"] = benchmark::Counter(per * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_OptimizerStep)
    ->ArgNames({"cuda", "rule"})
    ->ArgsProduct({{0, 1}, {0, 1, 2, 3, 4}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
