// nash_bench_gan_ops: the GAN-specific costs (Google Benchmark), on the CPU and, when a device answers, on CUDA:
//  * equalized-LR convolutions (ProGAN's discriminator layers): the weight scaling alone, the unfused composition
//    act_gain * leaky_relu(conv2d(x, scale_weight(w, c), b)) and the fused conv2d_scaled_bias_act (one launch on
//    CUDA; on the CPU the fused op runs the same composition, so the two should tie there);
//  * spectral normalization's power iteration over SN-GAN's discriminator: each layer alone, every layer one call
//    at a time (what the per-forward updates cost), and nn::spectral_norm_update_all (one launch on CUDA);
//  * training-mode batch norm, forward and backward, at the DCGAN's batch-norm shapes: the fused batch_norm_train
//    against the composite formula (mean, var, normalization, affine transform and their autograd backward);
//  * one whole training step of each Fashion-MNIST architecture (the fmnist app's models, losses, n_dis, penalty
//    and Adam settings; diagnostics off), and one of the mixture app's (MLPs of 3 x 128, batch 256, Adam): a small
//    model's step, where the per-op host work the overhead rows of nash_bench_elementwise time is a large share;
//  * one update of G's weight average (nn::WeightEma) over the DCGAN generator.
// Flags: --width (channels of D's first layer, default 64) and --batch (default 64).
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "composite.h"
#include "micro.h"

using namespace nash;
using nash_bench::kSets;

namespace {

int64_t g_width = 64, g_batch = 64;

Device device_of(bool on_cuda) { return on_cuda ? Device::cuda() : Device::cpu(); }
const char* device_name(bool on_cuda) { return on_cuda ? "cuda" : "cpu"; }

// ---- equalized learning rate -------------------------------------------------------------------------------------

// One of ProGAN's D convolutions: x (batch, cin, hw, hw), w (cout, cin, k, k), leaky ReLU 0.2 with gain sqrt(2).
struct EqConv {
  int64_t cin, hw, cout, k, stride, pad;
};
enum class EqVariant { ScaleOnly, Unfused, Fused };

const char* eq_name(EqVariant v) {
  return v == EqVariant::ScaleOnly ? "scale_only" : v == EqVariant::Unfused ? "scale_then_conv" : "fused_conv";
}

void BM_EqualizedConv(benchmark::State& state, EqConv c, EqVariant variant, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!nash_bench::usable(state, dev)) return;
  NoGradGuard no_grad;
  manual_seed(0);
  const double scale = nn::kSqrt2 / std::sqrt(double(c.cin * c.k * c.k));  // He's constant, lr multiplier 1
  const double slope = 0.2, gain = nn::kSqrt2;
  const std::vector<Tensor> x = nash_bench::rotating_randn({g_batch, c.cin, c.hw, c.hw}, dev),
                            w = nash_bench::rotating_randn({c.cout, c.cin, c.k, c.k}, dev),
                            b = nash_bench::rotating_randn({c.cout}, dev);
  if (variant == EqVariant::Fused && !on_cuda) state.SetLabel("the CPU runs the unfused composition");
  nash_bench::timed_loop(state, dev, [&](int k) {
    switch (variant) {
      case EqVariant::ScaleOnly: scale_weight(w[k], scale); break;
      case EqVariant::Unfused:
        mul(leaky_relu(conv2d(x[k], scale_weight(w[k], scale), b[k], c.stride, c.pad), slope), gain);
        break;
      case EqVariant::Fused:
        conv2d_scaled_bias_act(x[k], w[k], scale, b[k], 1.0, slope, gain, c.stride, c.pad);
        break;
    }
  });
  if (variant == EqVariant::ScaleOnly) {
    state.counters["bytes/s"] = nash_bench::rate(2.0 * 4 * c.cout * c.cin * c.k * c.k);  // read w, write w*c
  } else {
    const Int2 o = conv2d_output_hw({c.hw, c.hw}, {c.k, c.k}, c.stride, c.pad, 1);
    state.counters["FLOP/s"] = nash_bench::rate(2.0 * g_batch * c.cout * o.h * o.w * c.cin * c.k * c.k);
  }
}

// ---- batch normalization -------------------------------------------------------------------------------------------

// Forward and backward through autograd on (batch, c, hw, hw) with weight and bias. Counter bytes/s: the five
// tensor-sized streams a fused implementation must move (x and y forward; the output gradient, x and the input
// gradient backward) over the time.
void BM_BatchNorm(benchmark::State& state, int64_t c, int64_t hw, bool fused, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!nash_bench::usable(state, dev)) return;
  manual_seed(0);
  const Shape s{g_batch, c, hw, hw};
  std::vector<Tensor> x = nash_bench::rotating_randn(s, dev);
  for (Tensor& t : x) t.requires_grad_();
  const std::vector<Tensor> g = nash_bench::rotating_randn(s, dev);
  const Tensor w = ones({c}, DType::Float32, dev).requires_grad_();
  const Tensor b = zeros({c}, DType::Float32, dev).requires_grad_();
  nash_bench::timed_loop(state, dev, [&](int k) {
    const Tensor y = fused ? batch_norm_train(x[k], w, b, 1e-5) : nash_bench::composite_batch_norm(x[k], w, b, 1e-5);
    autograd::grad({y}, {x[k], w, b}, {g[k]});
  });
  state.counters["bytes/s"] = nash_bench::rate(5.0 * 4 * double(shape_numel(s)));
}

// ---- spectral normalization ----------------------------------------------------------------------------------------

enum class SnMode { OneLayer, LoopAll, FusedAll };

// Bytes one power iteration must read: W twice (Wᵀu, then W v) per layer; the vectors are negligible.
double sn_bytes(const std::vector<nn::SpectralNorm*>& layers) {
  double bytes = 0;
  for (nn::SpectralNorm* l : layers) bytes += 2.0 * 4 * l->weight().numel();
  return bytes;
}

void BM_SpectralNorm(benchmark::State& state, SnMode mode, int64_t layer, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!nash_bench::usable(state, dev)) return;
  manual_seed(0);
  nn::DcganOptions o;
  o.width = g_width;
  // Three discriminators rotate, as inputs do elsewhere, so the weights are not still in cache from the last call.
  std::vector<std::shared_ptr<nn::Sequential>> ds;
  std::vector<std::vector<nn::SpectralNorm*>> layers;
  for (int i = 0; i < kSets; ++i) {
    ds.push_back(nn::sngan_discriminator(o));
    ds.back()->to(dev);
    layers.push_back(nn::spectral_norm_layers(*ds.back()));
  }
  const int64_t n_layers = static_cast<int64_t>(layers[0].size());
  if (mode == SnMode::OneLayer && layer >= n_layers) {
    state.SkipWithError(("SN-GAN's D has " + std::to_string(n_layers) + " layers").c_str());
    return;
  }
  if (mode == SnMode::OneLayer) {
    const Tensor w = nn::spectral_weight_matrix(layers[0][layer]->weight(), layers[0][layer]->dim());
    state.SetLabel(std::to_string(w.size(0)) + "x" + std::to_string(w.size(1)));
  } else {
    state.SetLabel(std::to_string(n_layers) + " layers");
  }
  nash_bench::timed_loop(state, dev, [&](int k) {
    switch (mode) {
      case SnMode::OneLayer: layers[k][layer]->power_iterate(1); break;
      case SnMode::LoopAll:
        for (nn::SpectralNorm* l : layers[k]) l->power_iterate(1);
        break;
      case SnMode::FusedAll: nn::spectral_norm_update_all(*ds[k]); break;
    }
  });
  const double bytes = mode == SnMode::OneLayer ? sn_bytes({layers[0][layer]}) : sn_bytes(layers[0]);
  state.counters["bytes/s"] = nash_bench::rate(bytes);
}

// ---- whole training steps --------------------------------------------------------------------------------------------

enum class Arch { DCGAN, SNGAN, WganGP, ProGAN };

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::DCGAN: return "dcgan";
    case Arch::SNGAN: return "sngan";
    case Arch::WganGP: return "wgan-gp";
    case Arch::ProGAN: return "progan";
  }
  return "?";
}

// One GanTrainer step (n_dis D updates, one G update) with the fmnist app's defaults per architecture:
//   dcgan:   DCGAN G/D (batch norm in D), non-saturating loss, Adam 2e-4 (0.5, 0.999);
//   sngan:   DCGAN G, SN-GAN's D, hinge loss, Adam 2e-4 (0.5, 0.999);
//   wgan-gp: DCGAN G, DCGAN D without batch norm, Wasserstein loss + gradient penalty 10, n_dis 5, Adam 1e-4
//            (0.5, 0.9);
//   progan:  ProGAN's equalized-LR G/D (z 128), Wasserstein loss + gradient penalty 10, Adam 1e-3 (0, 0.99).
void BM_GanStep(benchmark::State& state, Arch arch, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!nash_bench::usable(state, dev)) return;
  manual_seed(0);
  nn::DcganOptions o;
  o.width = g_width;
  optim::AdamOptions ao;
  ao.lr = 2e-4;
  ao.beta1 = 0.5;
  optim::GanTrainerOptions to;
  to.diagnostics = false;
  std::shared_ptr<nn::Sequential> g, d;
  switch (arch) {
    case Arch::DCGAN:
      g = nn::dcgan_generator(o);
      d = nn::dcgan_discriminator(o);
      break;
    case Arch::SNGAN:
      to.loss = nn::GanLoss::Hinge;
      g = nn::dcgan_generator(o);
      d = nn::sngan_discriminator(o);
      break;
    case Arch::WganGP:
      to.loss = nn::GanLoss::Wasserstein;
      to.n_dis = 5;
      to.gp_lambda = 10.0;
      ao.lr = 1e-4;
      ao.beta2 = 0.9;
      o.d_batch_norm = false;
      g = nn::dcgan_generator(o);
      d = nn::dcgan_discriminator(o);
      break;
    case Arch::ProGAN:
      to.loss = nn::GanLoss::Wasserstein;
      to.gp_lambda = 10.0;
      ao.lr = 1e-3;
      ao.beta1 = 0.0;
      ao.beta2 = 0.99;
      o.z_dim = 128;
      g = nn::progan_generator(o);
      d = nn::progan_discriminator(o);
      break;
  }
  g->to(dev);
  d->to(dev);
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
  // n_dis real and latent batches per step: kSets of each, drawn in turn.
  nash_bench::GanBatches in = nash_bench::gan_batches(g_batch, o.z_dim, dev);
  const optim::GanTrainer::Sampler real = [&] { return in.next_real(); };
  const optim::GanTrainer::Sampler latent = [&] { return in.next_z(); };
  nash_bench::timed_loop(state, dev, [&](int) { trainer.step(real, latent); });

  // Convolution and linear flops: a D update is G's forward, D's forward + backward (3 forwards' worth) on the
  // real and the fake batch, and for the gradient penalty about 4 forwards more (D's forward on the mixed batch,
  // the input gradient, and that gradient's backward, two ops per layer); the G update is G's and D's forward +
  // backward. ProGAN's G costs DCGAN's; its D adds a 3x3 conv of 4w+1 -> 4w channels at 4x4 pixels.
  const double gf = nn::dcgan_generator_flops(o, g_batch);
  double df = nn::dcgan_discriminator_flops(o, g_batch);
  if (arch == Arch::ProGAN) df += 2.0 * g_batch * 16 * (4 * o.width + 1) * (4 * o.width) * 9;
  const double gp = to.gp_lambda > 0 ? 4 * df : 0;
  const double flops = to.n_dis * (gf + 6 * df + gp) + 3 * gf + 3 * df;
  state.counters["FLOP/s"] = nash_bench::rate(flops);
}

// One GanTrainer step of the mixture app's defaults (apps/mixture.cpp): G z(2) -> 3 x (Linear 128, ReLU) -> 2,
// D 2 -> 3 x (Linear 128, leaky ReLU 0.2) -> 1, batch 256, non-saturating loss, Adam lr 1e-3 for G and 2e-3 for
// D (betas 0.5, 0.999), diagnostics on as the app trains.
std::shared_ptr<nn::Sequential> mixture_mlp(int64_t in, int64_t out, bool leaky) {
  auto net = std::make_shared<nn::Sequential>();
  int64_t width = in;
  for (int i = 0; i < 3; ++i) {
    net->push_back(std::make_shared<nn::Linear>(width, 128));
    if (leaky)
      net->push_back(std::make_shared<nn::LeakyReLU>(0.2));
    else
      net->push_back(std::make_shared<nn::ReLU>());
    width = 128;
  }
  net->push_back(std::make_shared<nn::Linear>(width, out));
  return net;
}

void BM_MixtureStep(benchmark::State& state, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!nash_bench::usable(state, dev)) return;
  manual_seed(0);
  const int64_t batch = 256;
  auto g = mixture_mlp(2, 2, false), d = mixture_mlp(2, 1, true);
  g->to(dev);
  d->to(dev);
  optim::AdamOptions ag, ad;
  ag.lr = 1e-3;
  ag.beta1 = ad.beta1 = 0.5;
  ad.lr = 2e-3;
  optim::Adam opt_g(g->parameters(), ag), opt_d(d->parameters(), ad);
  optim::GanTrainer trainer(g, d, opt_g, opt_d, optim::GanTrainerOptions());
  std::vector<Tensor> reals, zs;
  for (int k = 0; k < kSets; ++k) {
    reals.push_back(mul(randn({batch, 2}, DType::Float32, dev), 2.0));
    zs.push_back(randn({batch, 2}, DType::Float32, dev));
  }
  int r = 0, z = 0;
  const optim::GanTrainer::Sampler real = [&] { return reals[r++ % kSets]; };
  const optim::GanTrainer::Sampler latent = [&] { return zs[z++ % kSets]; };
  nash_bench::timed_loop(state, dev, [&](int) { trainer.step(real, latent); });
}

// One update of G's weight average (nn::WeightEma) over the DCGAN generator at --width: per parameter the average
// is read twice and written twice and the model read once (scale, then axpy), 20 bytes; the GB/s counter counts
// those bytes (bytes/s), to compare with the copy rows of nash_bench_elementwise.
void BM_WeightEma(benchmark::State& state, bool on_cuda) {
  const Device dev = device_of(on_cuda);
  if (!nash_bench::usable(state, dev)) return;
  manual_seed(0);
  nn::DcganOptions o;
  o.width = g_width;
  std::shared_ptr<nn::Sequential> g = nn::dcgan_generator(o), avg = nn::dcgan_generator(o);
  g->to(dev);
  avg->to(dev);
  nn::EmaOptions eo;
  eo.decay = 0.999;
  nn::WeightEma ema(g, avg, eo);
  nash_bench::timed_loop(state, dev, [&](int) { ema.update(); });
  state.counters["bytes/s"] = nash_bench::rate(20.0 * static_cast<double>(g->num_parameters()));
  state.counters["params"] = static_cast<double>(g->num_parameters());
}

constexpr const char* kFlags =
    "  --width=N  channels of D's first layer (and G's last hidden layer), default 64\n"
    "  --batch=N  batch size of the equalized-LR convolutions and the training steps, default 64";

void register_all(int* argc, char** argv) {
  g_width = nash_bench::take_flag(argc, argv, "width", 64);
  g_batch = nash_bench::take_flag(argc, argv, "batch", 64);
  if (g_width < 1 || g_batch < 1) throw std::invalid_argument("--width and --batch must be >= 1");
  const std::string suffix = "/w" + std::to_string(g_width) + "_b" + std::to_string(g_batch);
  const int64_t w = g_width;
  // ProGAN's D at 32x32: three strided 4x4 convs, then the 3x3 conv after the minibatch-stddev channel.
  const std::vector<EqConv> eq = {
      {1, 32, w, 4, 2, 1}, {w, 16, 2 * w, 4, 2, 1}, {2 * w, 8, 4 * w, 4, 2, 1}, {4 * w + 1, 4, 4 * w, 3, 1, 1}};
  for (const EqConv& c : eq)
    for (EqVariant v : {EqVariant::ScaleOnly, EqVariant::Unfused, EqVariant::Fused})
      for (bool on_cuda : {false, true}) {
        char name[128];
        std::snprintf(name, sizeof name, "equalized/%s/n%ld_c%ld_%ldx%ld_o%ld_k%lds%ld/%s", eq_name(v), long(g_batch),
                      long(c.cin), long(c.hw), long(c.hw), long(c.cout), long(c.k), long(c.stride),
                      device_name(on_cuda));
        benchmark::RegisterBenchmark(name, BM_EqualizedConv, c, v, on_cuda)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
  // The DCGAN's batch norms at 32x32: (w, 16x16) in G, (2w, 8x8) and (4w, 4x4) in both G and D.
  for (const std::pair<int64_t, int64_t>& bn : {std::make_pair(w, int64_t(16)), std::make_pair(2 * w, int64_t(8)),
                                                 std::make_pair(4 * w, int64_t(4))})
    for (bool fused : {true, false})
      for (bool on_cuda : {false, true}) {
        char name[128];
        std::snprintf(name, sizeof name, "batch_norm/%s/n%ld_c%ld_%ldx%ld/%s", fused ? "fused" : "composite",
                      long(g_batch), long(bn.first), long(bn.second), long(bn.second), device_name(on_cuda));
        benchmark::RegisterBenchmark(name, BM_BatchNorm, bn.first, bn.second, fused, on_cuda)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
  // SN-GAN's D at 32x32 has four spectrally normalized convs.
  const std::string sn = "spectral_norm/w" + std::to_string(g_width) + "/";
  for (bool on_cuda : {false, true}) {
    const std::string dev = device_name(on_cuda);
    for (int64_t l = 0; l < 4; ++l)
      benchmark::RegisterBenchmark((sn + "layer" + std::to_string(l) + "/" + dev).c_str(), BM_SpectralNorm,
                                   SnMode::OneLayer, l, on_cuda)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((sn + "all_layers_one_by_one/" + dev).c_str(), BM_SpectralNorm, SnMode::LoopAll,
                                 int64_t(0), on_cuda)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((sn + "all_layers_fused/" + dev).c_str(), BM_SpectralNorm, SnMode::FusedAll,
                                 int64_t(0), on_cuda)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (Arch a : {Arch::DCGAN, Arch::SNGAN, Arch::WganGP, Arch::ProGAN})
    for (bool on_cuda : {false, true})
      benchmark::RegisterBenchmark(
          (std::string("gan_step/") + arch_name(a) + suffix + "/" + device_name(on_cuda)).c_str(), BM_GanStep, a,
          on_cuda)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  for (bool on_cuda : {false, true})
    benchmark::RegisterBenchmark((std::string("weight_ema/dcgan_g") + suffix + "/" + device_name(on_cuda)).c_str(),
                                 BM_WeightEma, on_cuda)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  for (bool on_cuda : {false, true})
    benchmark::RegisterBenchmark((std::string("gan_step/mixture/h128_b256/") + device_name(on_cuda)).c_str(),
                                 BM_MixtureStep, on_cuda)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) { return nash_bench::run_main(argc, argv, kFlags, register_all); }
