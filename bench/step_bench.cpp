// nash_step_bench: whole GAN training steps, convolution forward + backward, optimizer steps and the cost of D's
// normalizations (Google Benchmark), on the CPU and, when a device answers, on CUDA. The cases named in
// bench/peers/compare are the peer comparison's nash side; each does the work of a PyTorch script there:
//   BM_DcganStep/cuda:0/diag:0  bench/peers/dcgan_step.py    one DCGAN step (32x32x1, width 64, batch 64)
//   BM_WganGpStep/cuda:0        bench/peers/wgan_gp_step.py  one WGAN-GP step (one critic update with the gradient
//                                                             penalty, one generator update)
//   BM_ConvStep/<op>/<shape>/cuda:0  bench/peers/conv_step.py  conv forward + input and weight gradients
//   BM_OptimizerStep/cuda:0/rule:0   bench/peers/adam_step.py  one Adam step over the DCGAN's parameters
// Every case reports the median of its iterations (counter median_ms, each iteration timed on the host clock
// after a device drain), the statistic the PyTorch scripts print. BM_DCost/<variant> is issue 11's cost of 100 D
// updates (20 GAN iterations of n_dis 5) per D normalization on the fmnist quick preset's models.
// Flag: --dcost_gan_iters=N (GAN iterations per timed BM_DCost call, default 20; fewer for a smoke pass, the
// counter s_per_100D is scaled to 100 D updates either way).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nash/nn/weight_norm.h>

#include "micro.h"

using namespace nash;
using nash_bench::sync;
using nash_bench::usable;

namespace {

Device device_of(int64_t arg) { return arg == 0 ? Device::cpu() : Device::cuda(); }
const char* device_arg(bool on_cuda) { return on_cuda ? "cuda:1" : "cuda:0"; }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The timed loop of a case: f() once per iteration, each iteration timed on the host clock up to a device drain;
// sets the counter median_ms (the median of the iterations, what the PyTorch scripts report) and returns the
// iterations' seconds.
template <class F>
std::vector<double> timed_steps(benchmark::State& state, Device dev, F&& f) {
  std::vector<double> s;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    sync(dev);
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["median_ms"] = median(s) * 1e3;
  return s;
}

// ---- whole training steps -------------------------------------------------------------------------------------------

// Times trainer.step on the rotating (real, latent) input sets of a 32x32x1 batch after 2 warm-up steps.
void time_trainer_steps(benchmark::State& state, Device dev, optim::GanTrainer& trainer, int64_t batch,
                        int64_t z_dim) {
  const nash_bench::GanBatches in = nash_bench::gan_batches(batch, z_dim, dev);
  for (int w = 0; w < 2; ++w) trainer.step([&] { return in.reals[0]; }, [&] { return in.zs[0]; });
  sync(dev);
  int i = 0;
  timed_steps(state, dev, [&] {
    const int k = i++ % nash_bench::kSets;
    trainer.step([&] { return in.reals[k]; }, [&] { return in.zs[k]; });
  });
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
  time_trainer_steps(state, dev, trainer, batch, o.z_dim);
  const double flops = 4 * nn::dcgan_generator_flops(o, batch) + 9 * nn::dcgan_discriminator_flops(o, batch);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DcganStep)
    ->ArgNames({"cuda", "diag"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Times WGAN-GP steps of G and D on `dev`: ONE critic update (Wasserstein loss, gradient penalty 10 on random
// interpolates of the real and the fake batch, a double backward through D) and one generator update, Adam (lr,
// beta1, beta2) for both players, diagnostics off, batch 64. GFLOP/s from one forward's FLOPs of each network: the
// D update is a G forward, D forward + backward on real and fake (6 D) and the penalty's forward, input gradient and
// its backward (4 D); the G update a G and a D forward + backward.
void time_wgan_gp_steps(benchmark::State& state, Device dev, const std::shared_ptr<nn::Module>& g,
                        const std::shared_ptr<nn::Module>& d, double lr, double beta1, double beta2, int64_t z_dim,
                        double g_flops, double d_flops) {
  g->to(dev);
  d->to(dev);
  optim::AdamOptions ao;
  ao.lr = lr;
  ao.beta1 = beta1;
  ao.beta2 = beta2;
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainerOptions to;
  to.loss = nn::GanLoss::Wasserstein;
  to.n_dis = 1;
  to.gp_lambda = 10.0;
  to.diagnostics = false;
  optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
  time_trainer_steps(state, dev, trainer, 64, z_dim);
  const double flops = g_flops + 10 * d_flops + 3 * g_flops + 3 * d_flops;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One WGAN-GP step as `nash fmnist --arch wgan-gp` trains it, at width 64, except that one step here is ONE critic
// update and one generator update (the app runs 5 critic updates per G update; BM_DCost/wgan-gp times that):
// DCGAN's G, DCGAN's D without batch norm (biases in its hidden convs), Adam 1e-4 (0.5, 0.9). arg: device.
void BM_WganGpStep(benchmark::State& state) {
  const Device dev = device_of(state.range(0));
  if (!usable(state, dev)) return;
  manual_seed(0);
  nn::DcganOptions o;
  o.d_batch_norm = false;
  auto g = nn::dcgan_generator(o);  // G's initialisation draws first, then D's
  auto d = nn::dcgan_discriminator(o);
  time_wgan_gp_steps(state, dev, g, d, 1e-4, 0.5, 0.9, o.z_dim, nn::dcgan_generator_flops(o, 64),
                     nn::dcgan_discriminator_flops(o, 64));
}
BENCHMARK(BM_WganGpStep)->ArgName("cuda")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One step of the ResNet WGAN-GP (`nash fmnist --arch resnet`; Gulrajani et al.'s CIFAR model at width 128), as
// BM_WganGpStep: Adam 2e-4 (0, 0.9), z 128; args: device, width (the quick preset's 32, the paper's 128), attention
// (0, or the side of the self-attention blocks).
void BM_ResNetStep(benchmark::State& state) {
  const Device dev = device_of(state.range(0));
  if (!usable(state, dev)) return;
  manual_seed(0);
  nn::ResNetOptions o;
  o.width = state.range(1);
  o.attention = state.range(2);
  auto g = nn::resnet_generator(o);
  auto d = nn::resnet_discriminator(o);
  time_wgan_gp_steps(state, dev, g, d, 2e-4, 0.0, 0.9, o.z_dim, nn::resnet_generator_flops(o, 64),
                     nn::resnet_discriminator_flops(o, 64));
}
BENCHMARK(BM_ResNetStep)
    ->ArgNames({"cuda", "width", "attention"})
    ->Args({0, 32, 0})
    ->Args({0, 32, 16})
    ->Args({1, 32, 0})
    ->Args({1, 128, 0})
    ->Args({1, 128, 16})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- convolution forward + backward ---------------------------------------------------------------------------------

// One convolution of the apps' DCGAN at batch 64: x (n, cin, hw, hw); conv2d's weight (cout, cin, k, k),
// conv_transpose2d's (cin, cout, k, k) as in PyTorch.
struct ConvStepCase {
  bool transposed;
  int64_t n, cin, hw, cout, k, stride, pad;
};

std::string conv_step_name(const ConvStepCase& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s/n%ld_c%ld_%ldx%ld_o%ld_k%lds%ldp%ld", c.transposed ? "conv_transpose2d" : "conv2d",
                long(c.n), long(c.cin), long(c.hw), long(c.hw), long(c.cout), long(c.k), long(c.stride), long(c.pad));
  return buf;
}

// The layers of nn::dcgan_discriminator / nn::dcgan_generator at width 64 (the 4x4 stride-2 convs of D, the
// transposed convs of G) and D's channel counts with 3x3 stride-1 kernels; the same list is in conv_step.py.
const std::vector<ConvStepCase>& conv_step_cases() {
  static const std::vector<ConvStepCase> cases = {
      {false, 64, 1, 32, 64, 4, 2, 1},  {false, 64, 64, 16, 128, 4, 2, 1}, {false, 64, 128, 8, 256, 4, 2, 1},
      {true, 64, 100, 1, 256, 4, 1, 0}, {true, 64, 256, 4, 128, 4, 2, 1},  {true, 64, 128, 8, 64, 4, 2, 1},
      {true, 64, 64, 16, 1, 4, 2, 1},   {false, 64, 1, 32, 64, 3, 1, 1},   {false, 64, 64, 16, 128, 3, 1, 1},
      {false, 64, 128, 8, 256, 3, 1, 1},
  };
  return cases;
}

// The forward and backward of one convolution without bias, through autograd as a layer's training step runs it:
// y = conv(x, w), then y.backward(gy) for the input and the weight gradient (gradients cleared before each call,
// so nothing accumulates). Counter GFLOP/s: three times the direct convolution's 2·N·Cout·OH·OW·Cin·k².
void BM_ConvStep(benchmark::State& state, ConvStepCase c, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!usable(state, dev)) return;
  manual_seed(0);
  const int64_t ohw = c.transposed ? (c.hw - 1) * c.stride - 2 * c.pad + c.k : (c.hw + 2 * c.pad - c.k) / c.stride + 1;
  const Shape ws = c.transposed ? Shape{c.cin, c.cout, c.k, c.k} : Shape{c.cout, c.cin, c.k, c.k};
  std::vector<Tensor> x = nash_bench::rotating_randn({c.n, c.cin, c.hw, c.hw}, dev),
                      w = nash_bench::rotating_randn(ws, dev, 1.0 / std::sqrt(double(c.cin * c.k * c.k))),
                      gy = nash_bench::rotating_randn({c.n, c.cout, ohw, ohw}, dev);
  for (int k = 0; k < nash_bench::kSets; ++k) {
    x[k].requires_grad_();
    w[k].requires_grad_();
  }
  auto run = [&](int k) {
    x[k].zero_grad();
    w[k].zero_grad();
    Tensor y = c.transposed ? conv_transpose2d(x[k], w[k], Tensor(), c.stride, c.pad)
                            : conv2d(x[k], w[k], Tensor(), c.stride, c.pad);
    y.backward(gy[k]);
  };
  try {
    for (int k = 0; k < nash_bench::kSets; ++k) run(k);
    sync(dev);
    int i = 0;
    timed_steps(state, dev, [&] { run(i++ % nash_bench::kSets); });
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    state.SkipWithError(msg.substr(0, msg.find('\n')).c_str());
    return;
  }
  const double pixels = c.transposed ? double(c.hw) * c.hw : double(ohw) * ohw;  // of the strided side
  const double flops = 3 * 2.0 * c.n * c.cout * c.cin * c.k * c.k * pixels;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- optimizer steps ------------------------------------------------------------------------------------------------

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
    optim::AdamOptions ao;  // the peer's settings (2e-4, 0.5, 0.999); the cost does not depend on them
    ao.lr = 2e-4;
    ao.beta1 = 0.5;
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
  timed_steps(state, dev, [&] { opt->step(); });
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

// ---- the cost of D's normalizations (issue 11) ---------------------------------------------------------------------

// The D variants of the SN-GAN paper's cost comparison, each the training step of one `nash fmnist` command at the
// quick preset (width 32, batch 64) with --n-dis 5:
//   vanilla  --arch dcgan              DCGAN D with batch norm, non-saturating loss, Adam 2e-4 (0.5, 0.999)
//   sn       --arch dcgan --d-norm sn  the same D without batch norm, every conv spectrally normalized (one power
//                                      iteration per forward)
//   wn       --arch dcgan --d-norm wn  the same D without batch norm, every conv weight-normalized
//   wgan-gp  --arch wgan-gp            D without batch norm, Wasserstein loss + gradient penalty 10, Adam 1e-4
//                                      (0.5, 0.9)
// G is DCGAN's in all four; GanTrainer with its diagnostics on, as the app runs it.
enum class DVariant { Vanilla, SN, WN, WganGP };
const DVariant kDVariants[] = {DVariant::Vanilla, DVariant::SN, DVariant::WN, DVariant::WganGP};

const char* dvariant_name(DVariant v) {
  switch (v) {
    case DVariant::Vanilla: return "vanilla";
    case DVariant::SN: return "sn";
    case DVariant::WN: return "wn";
    case DVariant::WganGP: return "wgan-gp";
  }
  return "?";
}

constexpr int64_t kDCostWidth = 32, kDCostBatch = 64, kDCostNDis = 5;
int64_t g_dcost_gan_iters = 20;
// Every timed BM_DCost call's seconds per 100 D updates, by device and variant, for the ratios printed at the end.
std::map<std::string, std::map<std::string, std::vector<double>>> g_dcost;

// One timed call: --dcost_gan_iters GAN iterations (5 D updates and one G update each; 20 make 100 D updates).
// Counters: s_per_100D (the median call scaled to 100 D updates) and median_ms (of a call).
void BM_DCost(benchmark::State& state, DVariant v, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!usable(state, dev)) return;
  manual_seed(0);
  nn::DcganOptions o;
  o.width = kDCostWidth;
  optim::AdamOptions ao;
  ao.lr = 2e-4;
  ao.beta1 = 0.5;
  optim::GanTrainerOptions to;
  to.n_dis = kDCostNDis;
  to.diagnostics = true;
  std::shared_ptr<nn::Sequential> g = nn::dcgan_generator(o), d;
  switch (v) {
    case DVariant::Vanilla: d = nn::dcgan_discriminator(o); break;
    case DVariant::SN: d = nn::dcgan_discriminator(o, nn::DNorm::Spectral); break;
    case DVariant::WN: d = nn::dcgan_discriminator(o, nn::DNorm::Weight); break;
    case DVariant::WganGP:
      to.loss = nn::GanLoss::Wasserstein;
      to.gp_lambda = 10.0;
      ao.lr = 1e-4;
      ao.beta2 = 0.9;
      o.d_batch_norm = false;
      d = nn::dcgan_discriminator(o);
      break;
  }
  g->to(dev);
  d->to(dev);
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
  nash_bench::GanBatches in = nash_bench::gan_batches(kDCostBatch, o.z_dim, dev);
  const optim::GanTrainer::Sampler real = [&] { return in.next_real(); };
  const optim::GanTrainer::Sampler latent = [&] { return in.next_z(); };
  trainer.step(real, latent);  // warm-up: allocations, thread teams, the optimizers' state
  sync(dev);
  const std::vector<double> s = timed_steps(state, dev, [&] {
    for (int64_t i = 0; i < g_dcost_gan_iters; ++i) trainer.step(real, latent);
  });
  const double per100 = 100.0 / double(kDCostNDis * g_dcost_gan_iters);
  state.counters["s_per_100D"] = median(s) * per100;
  std::vector<double>& all = g_dcost[on_cuda ? "cuda" : "cpu"][dvariant_name(v)];
  for (double t : s) all.push_back(t * per100);
}

// The medians of every BM_DCost call per device and their ratios, on stderr (stdout may be a JSON or CSV report).
void print_dcost_summary() {
  for (const auto& dev : g_dcost) {
    std::map<std::string, double> m;
    std::fprintf(stderr, "BM_DCost %s, seconds per 100 D updates (width %ld, batch %ld, n_dis %ld):", dev.first.c_str(),
                 long(kDCostWidth), long(kDCostBatch), long(kDCostNDis));
    for (DVariant v : kDVariants) {
      auto it = dev.second.find(dvariant_name(v));
      if (it == dev.second.end() || it->second.empty()) continue;
      m[it->first] = median(it->second);
      std::fprintf(stderr, " %s %.3f", it->first.c_str(), m[it->first]);
    }
    std::fprintf(stderr, "\n");
    const std::pair<const char*, const char*> ratios[] = {
        {"sn", "vanilla"}, {"wn", "vanilla"}, {"wgan-gp", "vanilla"}, {"sn", "wn"}, {"wgan-gp", "sn"}};
    std::string line;
    for (const auto& r : ratios)
      if (m.count(r.first) && m.count(r.second) && m[r.second] > 0) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " %s/%s %.2f", r.first, r.second, m[r.first] / m[r.second]);
        line += buf;
      }
    if (!line.empty()) std::fprintf(stderr, "BM_DCost %s ratios:%s\n", dev.first.c_str(), line.c_str());
  }
}

void register_all(int* argc, char** argv) {
  g_dcost_gan_iters = nash_bench::take_flag(argc, argv, "dcost_gan_iters", 20);
  if (g_dcost_gan_iters < 1) throw std::invalid_argument("--dcost_gan_iters must be >= 1");
  for (bool on_cuda : {false, true})
    for (const ConvStepCase& c : conv_step_cases())
      benchmark::RegisterBenchmark(("BM_ConvStep/" + conv_step_name(c) + "/" + device_arg(on_cuda)).c_str(),
                                   BM_ConvStep, c, on_cuda)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  // The CUDA variants only where a device answers (issue 11: GPU figures when available).
  for (bool on_cuda : {false, true}) {
    if (on_cuda && !cuda::is_available()) continue;
    for (DVariant v : kDVariants)
      benchmark::RegisterBenchmark((std::string("BM_DCost/") + dvariant_name(v) + "/" + device_arg(on_cuda)).c_str(),
                                   BM_DCost, v, on_cuda)
          ->Unit(benchmark::kSecond)
          ->UseRealTime();
  }
}

constexpr const char* kFlags =
    "  --dcost_gan_iters=N  GAN iterations (5 D + 1 G updates each) per timed BM_DCost call, default 20 (= 100 D\n"
    "                       updates); s_per_100D is scaled to 100 D updates for any N";

}  // namespace

int main(int argc, char** argv) {
  const int rc = nash_bench::run_main(argc, argv, kFlags, register_all);
  print_dcost_summary();
  return rc;
}
