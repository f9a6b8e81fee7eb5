// nash_gpu_bench: nash's CUDA kernels against cuDNN, cuBLAS and cudaMemcpy, timed with CUDA events on the default
// stream (where nash launches): median of many runs after warm-up, inputs rotating among several buffers.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nash/nash.h>

#include "composite.h"

using namespace nash;

namespace {

constexpr int kSets = 3;      // input buffers the timed runs rotate through
constexpr int kWarmup = 5;
constexpr int kRuns = 25;     // timed runs; the median is reported
constexpr double kMismatch = 1e-2;  // nash vs vendor relative error flagged (cuDNN may use TF32 on Ampere+)

#define BENCH_CUDA(call)                                                                        \
  do {                                                                                          \
    cudaError_t e_ = (call);                                                                    \
    if (e_ != cudaSuccess) throw std::runtime_error(std::string(#call ": ") + cudaGetErrorString(e_)); \
  } while (0)

// Median milliseconds of f(i) over kRuns runs, i cycling through the input sets.
double median_ms(const std::function<void(int)>& f) {
  for (int i = 0; i < kWarmup; ++i) f(i % kSets);
  BENCH_CUDA(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int r = 0; r < kRuns; ++r) {
    BENCH_CUDA(cudaEventRecord(start, 0));
    f(r % kSets);
    BENCH_CUDA(cudaEventRecord(stop, 0));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    BENCH_CUDA(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
}

// ||a - b|| / ||b|| on the host.
double rel_error(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to(Device::cpu()).contiguous().to_vector<float>();
  std::vector<float> y = b.to(Device::cpu()).contiguous().to_vector<float>();
  if (x.size() != y.size()) return INFINITY;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

struct Row {
  std::string kernel, shape, vendor;
  double nash_ms = NAN, vendor_ms = NAN, err = NAN;
  double work = 0;          // flops or bytes moved per call
  bool bytes = false;       // work is bytes (GB/s) rather than flops (GFLOP/s)
  std::string note;
  bool failed = false;      // nash itself failed or disagreed with the vendor
};

std::vector<Row> g_rows;

std::string first_line(const std::string& s, std::size_t max = 70) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > max ? l.substr(0, max - 3) + "..." : l;
}

// Times nash (nash_run) and the vendor (vendor_run) on the same inputs and, when compare, checks that their
// outputs agree.
void bench_pair(Row row, const std::function<Tensor(int)>& nash_run, const std::function<Tensor(int)>& vendor_run,
                const std::string& vendor_skip, bool compare = true) {
  Tensor ref;
  try {
    ref = nash_run(0);
    row.nash_ms = median_ms([&](int i) { nash_run(i); });
  } catch (const std::exception& e) {
    row.failed = true;
    row.note = "nash failed: " + first_line(e.what());
    g_rows.push_back(row);
    return;
  }
  if (!vendor_skip.empty()) {
    row.note = vendor_skip;
  } else {
    try {
      Tensor v = vendor_run(0);
      if (compare) row.err = rel_error(ref, v);
      row.vendor_ms = median_ms([&](int i) { vendor_run(i); });
      if (compare && !(row.err <= kMismatch)) {
        row.failed = true;
        row.note = "MISMATCH with " + row.vendor;
      }
    } catch (const std::exception& e) {
      row.note = row.vendor + " failed: " + first_line(e.what());
    }
  }
  g_rows.push_back(row);
}

Tensor rnd(const Shape& s) { return randn(s, DType::Float32, Device::cuda()); }

// kSets real batches (32x32x1 in [-1, 1]) and latent batches on the device, for the training-step rows.
void gan_batches(int64_t batch, int64_t z_dim, std::vector<Tensor>* reals, std::vector<Tensor>* zs) {
  for (int i = 0; i < kSets; ++i) {
    reals->push_back(clamp(rnd({batch, 1, 32, 32}), -1, 1));
    zs->push_back(rnd({batch, z_dim}));
  }
}

struct ConvShape {
  int64_t n, cin, h, w, cout, k, stride, pad;
};

std::string conv_str(const ConvShape& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "x%ldx%ldx%ldx%ld w%ldx%ldx%ldx%ld s%ld p%ld", long(c.n), long(c.cin), long(c.h),
                long(c.w), long(c.cout), long(c.cin), long(c.k), long(c.k), long(c.stride), long(c.pad));
  return buf;
}

// Why the cuDNN engine cannot run here, or "" when a small convolution through it works.
std::string probe_cudnn() {
  try {
    ConvEngineGuard g(ConvEngine::CuDNN);
    Tensor y = conv2d(rnd({1, 2, 5, 5}), rnd({3, 2, 3, 3}), Tensor(), 1, 1);
    BENCH_CUDA(cudaDeviceSynchronize());
    return "";
  } catch (const std::exception& e) {
    return "cuDNN skipped: " + first_line(e.what(), 60);
  }
}

void bench_conv(const ConvShape& c, const std::string& cudnn_skip) {
  const Int2 ohw = conv2d_output_hw({c.h, c.w}, {c.k, c.k}, c.stride, c.pad, 1);
  std::vector<Tensor> x, w, gy;
  for (int i = 0; i < kSets; ++i) {
    x.push_back(rnd({c.n, c.cin, c.h, c.w}));
    w.push_back(rnd({c.cout, c.cin, c.k, c.k}) * (1.0 / std::sqrt(double(c.cin * c.k * c.k))));
    gy.push_back(rnd({c.n, c.cout, ohw.h, ohw.w}));
  }
  const double flops = 2.0 * c.n * c.cout * ohw.h * ohw.w * c.cin * c.k * c.k;
  auto under = [](ConvEngine e, const std::function<Tensor(int)>& f) {
    return [e, f](int i) {
      ConvEngineGuard g(e);
      return f(i);
    };
  };
  const std::function<Tensor(int)> fwd = [&](int i) { return conv2d(x[i], w[i], Tensor(), c.stride, c.pad); };
  const std::function<Tensor(int)> gin = [&](int i) {
    return conv2d_grad_input(gy[i], w[i], Int2(c.h, c.w), c.stride, c.pad);
  };
  const std::function<Tensor(int)> gw = [&](int i) {
    return conv2d_grad_weight(x[i], gy[i], Int2(c.k, c.k), c.stride, c.pad);
  };
  const std::pair<const char*, const std::function<Tensor(int)>*> ops[] = {
      {"conv2d fwd", &fwd}, {"conv2d grad_in", &gin}, {"conv2d grad_w", &gw}};
  for (const auto& op : ops) {
    Row r;
    r.kernel = op.first;
    r.shape = conv_str(c);
    r.vendor = "cudnn";
    r.work = flops;
    bench_pair(r, under(ConvEngine::Nash, *op.second), under(ConvEngine::CuDNN, *op.second), cudnn_skip);
  }
}

// The fused conv + bias + leaky ReLU (one implicit-GEMM launch, bias and activation in its epilogue) against cuDNN's
// convolution followed by the bias add and the activation as separate kernels, what a framework without the
// fusion runs.
void bench_fused_conv(const ConvShape& c, const std::string& cudnn_skip) {
  std::vector<Tensor> x, w, b;
  for (int i = 0; i < kSets; ++i) {
    x.push_back(rnd({c.n, c.cin, c.h, c.w}));
    w.push_back(rnd({c.cout, c.cin, c.k, c.k}) * 0.05);
    b.push_back(rnd({c.cout}));
  }
  const int64_t oh = (c.h + 2 * c.pad - c.k) / c.stride + 1, ow = (c.w + 2 * c.pad - c.k) / c.stride + 1;
  Row r;
  r.kernel = "conv+bias+lrelu";
  r.shape = conv_str(c);
  r.vendor = "cudnn";
  r.work = 2.0 * c.n * c.cout * oh * ow * c.cin * c.k * c.k;
  bench_pair(
      r,
      [&](int i) {
        ConvEngineGuard g(ConvEngine::Nash);
        return conv2d_scaled_bias_act(x[i], w[i], 1.0, b[i], 1.0, 0.2, 1.0, c.stride, c.pad);
      },
      [&](int i) {
        ConvEngineGuard g(ConvEngine::CuDNN);
        Tensor y = conv2d(x[i], w[i], Tensor(), c.stride, c.pad);
        return leaky_relu(add(y, b[i].reshape({1, c.cout, 1, 1})), 0.2);
      },
      cudnn_skip);
  g_rows.back().note += (g_rows.back().note.empty() ? "" : "; ") + std::string("vendor: conv, then bias and lrelu");
}

// Spectral normalization's power iteration over every layer of SN-GAN's D (width 64): all layers in one launch
// (power_iteration_many, what spectral_norm_update_all runs once per D step) against one launch per layer. Work is
// the weight bytes read (twice per iteration: Wᵀu, then W v).
void bench_power_iteration() {
  nn::DcganOptions o;
  auto d = nn::sngan_discriminator(o);
  d->to(Device::cuda());
  std::vector<PowerIterationItem> items;
  double bytes = 0;
  for (nn::SpectralNorm* l : nn::spectral_norm_layers(*d)) {
    items.push_back({nn::spectral_iteration_view(l->weight(), l->dim()), l->weight_u, l->weight_v});
    bytes += 2.0 * 4 * l->weight().numel();
  }
  Row r;
  r.kernel = "sn power iter";
  r.shape = "SN-GAN D w64, " + std::to_string(items.size()) + " layers, 1 iter";
  r.vendor = "loop";
  r.work = bytes;
  r.bytes = true;
  bench_pair(
      r, [&](int) { power_iteration_many(items, 1); return items[0].u; },
      [&](int) {
        for (const PowerIterationItem& it : items) power_iteration(it.w, it.u, it.v, 1);
        return items[0].u;
      },
      "", /*compare=*/false);
}

// Training-mode batch norm, forward and backward, at the DCGAN's batch-norm shapes: batch_norm_train's fused
// kernels (one launch each way) against the composite formula nash ran before them (mean, var, normalization and
// affine transform with their autograd backward: about eight launches and temporaries each way). Work: the five
// tensor-sized streams a fused implementation must move (x and y forward; the output gradient, x and the input
// gradient backward).
void bench_batch_norm(const Shape& s) {
  std::vector<Tensor> x, g;
  for (int i = 0; i < kSets; ++i) {
    x.push_back(rnd(s).requires_grad_());
    g.push_back(rnd(s));
  }
  const Tensor w = rnd({s[1]}).requires_grad_(), b = rnd({s[1]}).requires_grad_();
  Row r;
  r.kernel = "batch norm f+b";
  r.shape = shape_str(s);
  r.vendor = "composite";
  r.work = 5.0 * 4.0 * static_cast<double>(shape_numel(s));
  r.bytes = true;
  bench_pair(
      r,
      [&](int i) {
        const Tensor y = batch_norm_train(x[i], w, b, 1e-5);
        return autograd::grad({y}, {x[i], w, b}, {g[i]})[0];
      },
      [&](int i) {
        const Tensor y = nash_bench::composite_batch_norm(x[i], w, b, 1e-5);
        return autograd::grad({y}, {x[i], w, b}, {g[i]})[0];
      },
      "");
}

void bench_matmul(int64_t n) {
  std::vector<Tensor> a, b;
  for (int i = 0; i < kSets; ++i) {
    a.push_back(rnd({n, n}));
    b.push_back(rnd({n, n}));
  }
  auto with = [&](MatmulEngine e) {
    return [&, e](int i) {
      MatmulEngineGuard g(e);
      return matmul(a[i], b[i]);
    };
  };
  Row r;
  r.kernel = "matmul";
  r.shape = std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n);
  r.vendor = "cublas";
  r.work = 2.0 * n * n * n;
  bench_pair(r, with(MatmulEngine::Nash), with(MatmulEngine::CuBLAS), "");
}

// Memory-bound ops on 64 MiB of float32, each against a raw cudaMemcpy of the same bytes.
void bench_bandwidth() {
  const int64_t n = (int64_t(64) << 20) / 4;
  std::vector<Tensor> x;
  for (int i = 0; i < kSets; ++i) x.push_back(rnd({n}));
  Tensor dst = empty({n}, DType::Float32, Device::cuda());
  const std::function<Tensor(int)> memcpy_run = [&](int i) {
    BENCH_CUDA(cudaMemcpyAsync(dst.raw_data(), x[i].raw_data(), n * 4, cudaMemcpyDeviceToDevice, 0));
    return dst;
  };
  const std::pair<const char*, std::function<Tensor(int)>> ops[] = {
      {"clone (copy)", [&](int i) { return x[i].clone(); }},
      {"x*2", [&](int i) { return x[i] * 2.0; }},
      {"relu", [&](int i) { return relu(x[i]); }},
  };
  for (const auto& op : ops) {
    Row r;
    r.kernel = op.first;
    r.shape = "64 MiB f32";
    r.vendor = "memcpy";
    r.work = 2.0 * n * 4;  // read + write
    r.bytes = true;
    // Only the copy computes what cudaMemcpy does; the others are compared on time alone.
    bench_pair(r, op.second, memcpy_run, "", /*compare=*/std::string(op.first).rfind("clone", 0) == 0);
  }
}

// The multi-tensor Adam step over a DCGAN's parameters (G and D, 32x32x1, width 64) against a cudaMemcpy of the
// bytes the step must move (p, g, m, v read; p, m, v written).
void bench_optimizer_step() {
  nn::DcganOptions o;
  auto g = nn::dcgan_generator(o), d = nn::dcgan_discriminator(o);
  g->to(Device::cuda());
  d->to(Device::cuda());
  std::vector<Tensor> params = g->parameters();
  for (const Tensor& p : d->parameters()) params.push_back(p);
  int64_t n = 0;
  for (Tensor& p : params) {
    p.set_grad(randn(p.shape(), DType::Float32, Device::cuda()));
    n += p.numel();
  }
  optim::Adam adam(params);
  Tensor src = rnd({3 * n}), dst = empty({3 * n}, DType::Float32, Device::cuda());
  Row r;
  r.kernel = "adam step";
  r.shape = "DCGAN G+D, " + std::to_string(params.size()) + " tensors, " + std::to_string(n / 1000) + "k";
  r.vendor = "memcpy";
  r.work = 7.0 * 4 * n;
  r.bytes = true;
  bench_pair(r, [&](int) { adam.step(); return params[0]; },
             [&](int) {
               BENCH_CUDA(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), 3 * n * 4, cudaMemcpyDeviceToDevice, 0));
               return dst;
             },
             "", /*compare=*/false);
}

// One whole training step (32x32x1, batch 64, width 64, n_dis 1) with nash's convolutions against the same step
// with cuDNN's. dcgan: DCGAN's G and D, the non-saturating loss, Adam 2e-4 (0.5, 0.999), GanTrainer with its
// diagnostics. wgan-gp: the work of nash_step_bench's BM_WganGpStep and bench/peers/wgan_gp_step.py: D without
// batch norm, Wasserstein loss, gradient penalty 10 (a double backward through D), one critic and one G update,
// Adam 1e-4 (0.5, 0.9), diagnostics off. Work is the step's convolution and linear flops (3 forward-equivalents
// per trained forward, 4 more for the penalty).
void bench_train_step(const std::string& cudnn_skip, bool wgan_gp, bool sngan = false) {
  nn::DcganOptions o;
  o.d_batch_norm = !wgan_gp;
  const int64_t batch = 64;
  auto g = nn::dcgan_generator(o);
  std::shared_ptr<nn::Module> d = sngan ? std::shared_ptr<nn::Module>(nn::sngan_discriminator(o))
                                        : std::shared_ptr<nn::Module>(nn::dcgan_discriminator(o));
  g->to(Device::cuda());
  d->to(Device::cuda());
  optim::AdamOptions ao;
  ao.lr = wgan_gp ? 1e-4 : 2e-4;
  ao.beta1 = 0.5;
  if (wgan_gp) ao.beta2 = 0.9;
  optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
  optim::GanTrainerOptions to;
  if (sngan) to.loss = nn::GanLoss::Hinge;
  if (wgan_gp) {
    to.loss = nn::GanLoss::Wasserstein;
    to.gp_lambda = 10.0;
    to.diagnostics = false;
  }
  optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
  std::vector<Tensor> reals, zs;
  gan_batches(batch, o.z_dim, &reals, &zs);
  const double gf = nn::dcgan_generator_flops(o, batch), df = sngan ? 0.0 : nn::dcgan_discriminator_flops(o, batch);
  // D step: G forward, D forward+backward on real and fake (+ the penalty); G step: G and D forward+backward.
  const double flops = gf + 2 * 3 * df + (wgan_gp ? 4 * df : 0) + 3 * gf + 3 * df;
  auto run = [&](ConvEngine e) {
    return [&, e](int i) {
      ConvEngineGuard guard(e);
      trainer.step([&] { return reals[i]; }, [&] { return zs[i]; });
      return Tensor();
    };
  };
  Row r;
  r.kernel = wgan_gp ? "wgan-gp step" : sngan ? "sngan step" : "dcgan step";
  r.shape = wgan_gp ? "32x32x1 b64 w64 GP10 Adam, 1 D+G"
            : sngan ? "32x32x1 b64 w64 hinge Adam, D+G (G flops)"
                    : "32x32x1 b64 w64 Adam, D+G";
  r.vendor = "cudnn";
  r.work = flops;
  bench_pair(r, run(ConvEngine::Nash), run(ConvEngine::CuDNN), cudnn_skip, /*compare=*/false);
}

// The cost of D's normalizations (the SN-GAN paper's timing comparison; BM_DCost on the CPU): one call is one GAN
// iteration of 5 D updates and 1 G update at the fmnist quick preset's size (width 32, batch 64, Adam 2e-4 (0.5,
// 0.999), diagnostics on as the app trains), with DCGAN's D (batch norm), SN, WN, or no batch norm and the
// gradient penalty 10 (wgan-gp). The note gives seconds per 100 D updates and the ratio to WN.
void bench_d_cost() {
  const char* names[] = {"vanilla", "sn", "wn", "wgan-gp"};
  const nn::DNorm norms[] = {nn::DNorm::BatchNorm, nn::DNorm::Spectral, nn::DNorm::Weight, nn::DNorm::None};
  const int64_t batch = 64;
  std::vector<std::size_t> rows;
  for (int v = 0; v < 4; ++v) {
    manual_seed(0);
    nn::DcganOptions o;
    o.width = 32;
    auto g = nn::dcgan_generator(o);
    auto d = nn::dcgan_discriminator(o, norms[v]);
    g->to(Device::cuda());
    d->to(Device::cuda());
    optim::AdamOptions ao;
    ao.lr = 2e-4;
    ao.beta1 = 0.5;
    optim::Adam opt_g(g->parameters(), ao), opt_d(d->parameters(), ao);
    optim::GanTrainerOptions to;
    to.n_dis = 5;
    if (v == 3) {
      to.loss = nn::GanLoss::Wasserstein;
      to.gp_lambda = 10.0;
    }
    optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
    std::vector<Tensor> reals, zs;
    gan_batches(batch, o.z_dim, &reals, &zs);
    Row r;
    r.kernel = "d cost";
    r.shape = std::string(names[v]) + " w32 b64, 5 D + 1 G";
    r.vendor = "-";
    bench_pair(
        r,
        [&](int i) {
          trainer.step([&] { return reals[i]; }, [&] { return zs[i]; });
          return Tensor();
        },
        nullptr, "per call: 5 D updates + 1 G update", /*compare=*/false);
    rows.push_back(g_rows.size() - 1);
  }
  const double wn = g_rows[rows[2]].nash_ms;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    Row& r = g_rows[rows[k]];
    if (!std::isfinite(r.nash_ms)) continue;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.3f s / 100 D updates, %.2fx WN", r.nash_ms * 20 / 1e3,
                  std::isfinite(wn) && wn > 0 ? r.nash_ms / wn : NAN);
    r.note = buf;
  }
}

void print_table() {
  std::printf("%-15s %-34s %9s %9s %-6s %8s %14s %8s  %s\n", "kernel", "shape", "nash ms", "vendor ms", "vendor",
              "nash/v", "nash rate", "rel.err", "note");
  for (const Row& r : g_rows) {
    char rate[32] = "-", nash_ms[16] = "-", vendor_ms[16] = "-", ratio[16] = "-", err[16] = "-";
    if (std::isfinite(r.nash_ms)) {
      std::snprintf(nash_ms, sizeof nash_ms, "%.4f", r.nash_ms);
      const double per_s = r.work / (r.nash_ms * 1e-3);
      if (r.work > 0) std::snprintf(rate, sizeof rate, r.bytes ? "%.0f GB/s" : "%.0f GFLOP/s", per_s / 1e9);
    }
    if (std::isfinite(r.vendor_ms)) std::snprintf(vendor_ms, sizeof vendor_ms, "%.4f", r.vendor_ms);
    if (std::isfinite(r.nash_ms) && std::isfinite(r.vendor_ms) && r.vendor_ms > 0)
      std::snprintf(ratio, sizeof ratio, "%.2f", r.nash_ms / r.vendor_ms);
    if (std::isfinite(r.err)) std::snprintf(err, sizeof err, "%.1e", r.err);
    std::printf("%-15s %-34s %9s %9s %-6s %8s %14s %8s  %s\n", r.kernel.c_str(), r.shape.c_str(), nash_ms, vendor_ms,
                r.vendor.c_str(), ratio, rate, err, r.note.c_str());
  }
}

// The rows of one kernel whose shape starts with `shape` ("" for any).
std::vector<const Row*> rows_of(const std::string& kernel, const std::string& shape = "") {
  std::vector<const Row*> out;
  for (const Row& r : g_rows)
    if (r.kernel == kernel && r.shape.rfind(shape, 0) == 0) out.push_back(&r);
  return out;
}

bool timed(const Row* r) { return r && std::isfinite(r->nash_ms) && std::isfinite(r->vendor_ms) && r->vendor_ms > 0; }

// The largest nash/vendor time ratio over rows (the worst case); NAN when a row lacks a vendor time.
double worst_ratio(const std::vector<const Row*>& rows, const Row** worst) {
  double w = NAN;
  for (const Row* r : rows) {
    if (!timed(r)) return NAN;
    const double q = r->nash_ms / r->vendor_ms;
    if (!(q <= w)) {
      w = q;
      *worst = r;
    }
  }
  return w;
}

const char* verdict(bool measured, bool met) { return !measured ? "NOT MEASURED" : met ? "met" : "MISSED"; }

// The GPU targets of the performance issue, each computed from this run's rows, with a verdict. "NOT MEASURED"
// says a row failed or its vendor could not run (cuDNN absent). The targets against PyTorch (whole step faster
// than eager, Adam faster than fused Adam) need the peers' times: tools/gpu-check prints them from the `result`
// lines below and bench/peers.
void print_targets(const std::vector<ConvShape>& app_convs) {
  std::printf("\ntargets (this run; time ratios nash/vendor, below 1 is faster):\n");
  {  // nash conv >= 0.9x cuDNN's speed at the app shapes: time ratio <= 1/0.9 for every pass
    std::vector<const Row*> rows;
    for (const ConvShape& c : app_convs)
      for (const char* k : {"conv2d fwd", "conv2d grad_in", "conv2d grad_w"})
        for (const Row* r : rows_of(k, conv_str(c))) rows.push_back(r);
    const Row* w = nullptr;
    const double q = worst_ratio(rows, &w);
    std::printf("  conv >= 0.9x cuDNN speed at the %zu app-shape passes: worst time ratio %.2f%s%s -> %s\n",
                rows.size(), q, w ? " (" : "", w ? (w->kernel + " " + w->shape + ")").c_str() : "",
                verdict(std::isfinite(q) && !rows.empty(), q <= 1 / 0.9));
  }
  {  // fused conv + bias + activation faster than cuDNN's conv followed by the bias and the activation
    const std::vector<const Row*> rows = rows_of("conv+bias+lrelu");
    const Row* w = nullptr;
    const double q = worst_ratio(rows, &w);
    std::printf("  fused conv+bias+lrelu faster than cuDNN conv, bias, lrelu (%zu shapes): worst time ratio %.2f%s%s"
                " -> %s\n",
                rows.size(), q, w ? " (" : "", w ? (w->shape + ")").c_str() : "",
                verdict(std::isfinite(q) && !rows.empty(), q < 1));
  }
  {  // the fused optimizer step at >= 85% of the measured copy bandwidth: against a cudaMemcpy of the same size
     // (24 of the step's 28 bytes per parameter) and against the 64 MiB copy (the plateau)
    const std::vector<const Row*> adam = rows_of("adam step"), copy = rows_of("clone (copy)");
    const Row* a = adam.empty() ? nullptr : adam[0];
    const Row* c = copy.empty() ? nullptr : copy[0];
    const bool measured = timed(a) && timed(c);
    const double bw = measured ? a->work / (a->nash_ms * 1e-3) : NAN;            // bytes/s the step moves
    const double same = measured ? (a->work * 24.0 / 28.0) / (a->vendor_ms * 1e-3) : NAN;  // same-size copy
    const double plateau = measured ? c->work / (c->vendor_ms * 1e-3) : NAN;    // cudaMemcpy of 64 MiB
    std::printf("  adam step >= 85%% of copy bandwidth: %.0f GB/s = %.0f%% of a same-size cudaMemcpy (%.0f GB/s) -> %s;"
                " %.0f%% of the 64 MiB copy (%.0f GB/s) -> %s\n",
                bw / 1e9, 100 * bw / same, same / 1e9, verdict(measured, bw >= 0.85 * same), 100 * bw / plateau,
                plateau / 1e9, verdict(measured, bw >= 0.85 * plateau));
  }
  {  // spectral norm's power iteration for all layers <= 2% of a step of the model that uses it
    const std::vector<const Row*> sn = rows_of("sn power iter"), step = rows_of("sngan step");
    const bool measured = !sn.empty() && !step.empty() && std::isfinite(sn[0]->nash_ms) &&
                          std::isfinite(step[0]->nash_ms) && step[0]->nash_ms > 0;
    const double share = measured ? sn[0]->nash_ms / step[0]->nash_ms : NAN;
    std::printf("  SN power iteration (all layers, one launch) <= 2%% of the sngan step: %.4f of %.3f ms = %.2f%%"
                " -> %s\n",
                measured ? sn[0]->nash_ms : NAN, measured ? step[0]->nash_ms : NAN, 100 * share,
                verdict(measured, share <= 0.02));
  }
  for (const char* k : {"dcgan step", "wgan-gp step"}) {  // informative: the same step on cuDNN's convolutions
    const std::vector<const Row*> rows = rows_of(k);
    if (rows.empty() || !timed(rows[0])) continue;
    std::printf("  %s with nash's convolutions vs cuDNN's: %.3f vs %.3f ms (%.2f)\n", k, rows[0]->nash_ms,
                rows[0]->vendor_ms, rows[0]->nash_ms / rows[0]->vendor_ms);
  }
  // Machine-readable nash times for the comparisons with the PyTorch peers (tools/gpu-check).
  for (const std::pair<const char*, const char*>& k :
       {std::make_pair("dcgan_step_ms", "dcgan step"), std::make_pair("wgan_gp_step_ms", "wgan-gp step"),
        std::make_pair("adam_step_ms", "adam step")}) {
    const std::vector<const Row*> rows = rows_of(k.second);
    if (!rows.empty() && std::isfinite(rows[0]->nash_ms)) std::printf("result %s %.4f\n", k.first, rows[0]->nash_ms);
  }
}

}  // namespace

int main() {
  if (!cuda::is_available()) {
    std::string reason = cuda::unavailable_reason();
    const std::string prefix = "no CUDA device: ";
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
    std::printf("no CUDA device: %s\n", reason.c_str());
    return 0;
  }
  // The Fashion-MNIST apps' three 4x4 stride-2 layers (batch 64), then a larger 3x3 layer.
  const std::vector<ConvShape> convs = {{64, 1, 32, 32, 64, 4, 2, 1},
                                        {64, 64, 16, 16, 128, 4, 2, 1},
                                        {64, 128, 8, 8, 256, 4, 2, 1},
                                        {128, 128, 32, 32, 128, 3, 1, 1}};
  const std::vector<ConvShape> app_convs(convs.begin(), convs.begin() + 3);
  try {
    cudaDeviceProp prop{};
    BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (sm_%d%d, %d SMs); median of %d runs after %d warm-up, %d rotating input sets\n",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount, kRuns, kWarmup, kSets);
    manual_seed(0);
    const std::string cudnn_skip = probe_cudnn();
    for (const ConvShape& c : convs) bench_conv(c, cudnn_skip);
    for (int64_t n : {1024, 4096}) bench_matmul(n);
    bench_bandwidth();
    bench_optimizer_step();
    for (const ConvShape& c : app_convs) bench_fused_conv(c, cudnn_skip);
    bench_train_step(cudnn_skip, /*wgan_gp=*/false);
    bench_train_step(cudnn_skip, /*wgan_gp=*/true);
    bench_train_step(cudnn_skip, /*wgan_gp=*/false, /*sngan=*/true);
    for (const Shape& s : {Shape{64, 128, 8, 8}, Shape{64, 64, 16, 16}}) bench_batch_norm(s);
    bench_power_iteration();  // its share of the sngan step: print_targets
    bench_d_cost();
  } catch (const std::exception& e) {
    print_table();
    std::printf("nash_gpu_bench: aborted: %s\n", e.what());
    return 1;
  }
  print_table();
  print_targets(app_convs);
  int failed = 0;
  for (const Row& r : g_rows) failed += r.failed;
  if (failed) std::printf("nash_gpu_bench: %d row(s) failed or disagreed with the vendor library\n", failed);
  return failed ? 1 : 0;
}
