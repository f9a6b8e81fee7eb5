// CUDA soak: the mixture app's GAN (3 hidden layers of 128 in G and D, batch 256, the ring of 8) trained for 2000
// steps on the GPU must hold the caching allocator flat once warmed up: no new cudaMalloc, the same reserved and
// allocated bytes and the same live autograd nodes between steps. A block or a node leaked per step, invisible in a
// short test, exhausts the card over a long run. On the emulated device (host memory, every CUDA thread a fiber) the
// same loop runs with small players for a few dozen steps and checks nodes and live bytes, so the emulated kernels
// and the device code path of the trainer are soaked on every machine; the GPU instance skips where none answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/core/cuda.h"
#include "nash/core/threads.h"
#include "nash/data/synthetic.h"
#include "nash/nn/spectral_norm.h"
#include "nash/optim/gan_trainer.h"
#include "support.h"

using namespace nash;

namespace {

// in -> 3 x (Linear(hidden), activation) -> Linear(out), as the mixture app builds G (ReLU) and D (LeakyReLU 0.2,
// spectral norm on every Linear when sn).
std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out, bool leaky, bool sn) {
  auto net = std::make_shared<nn::Sequential>();
  int64_t width = in;
  for (int i = 0; i < 4; ++i) {
    auto l = std::make_shared<nn::Linear>(width, i < 3 ? hidden : out);
    net->push_back(sn ? nn::spectral_norm(l) : nn::ModulePtr(l));
    if (i == 3) break;
    if (leaky)
      net->push_back(std::make_shared<nn::LeakyReLU>(0.2));
    else
      net->push_back(std::make_shared<nn::ReLU>());
    width = hidden;
  }
  return net;
}

struct Game {
  const char* name;
  nn::GanLoss loss;
  double gp_lambda;  // > 0: the gradient penalty (double backward on the device)
  bool sn;
  int64_t n_dis;
  int64_t steps;     // on a GPU; the emulated device runs kEmuSteps
};
constexpr int64_t kEmuSteps = 24, kEmuHidden = 8, kEmuBatch = 16;

// Per step, after it: live nodes, host bytes (the emulated device's memory included), and the caching allocator's
// allocated and reserved bytes and cudaMalloc count.
struct Trace {
  std::vector<int64_t> nodes, host_bytes, allocated, reserved, mallocs;
  double seconds = 0;
};

class SoakCuda : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    device_ = Device::parse(GetParam());
    if (device_.is_cuda() && !cuda::is_available()) GTEST_SKIP() << cuda::unavailable_reason();
  }

  Trace soak(const Game& c) const {
    NumThreadsGuard one_thread(1);
    manual_seed(11);
    const bool gpu = device_.is_cuda();
    const int64_t hidden = gpu ? 128 : kEmuHidden, batch = gpu ? 256 : kEmuBatch;
    const int64_t steps = gpu ? c.steps : kEmuSteps;
    const data::GaussianMixture2D ring = data::GaussianMixture2D::ring();
    auto g = mlp(2, hidden, 2, false, false), d = mlp(2, hidden, 1, true, c.sn);
    g->to(device_);
    d->to(device_);
    optim::AdamOptions o;
    o.beta1 = 0.5;
    o.lr = 1e-4;
    optim::Adam opt_g(g->parameters(), o);
    o.lr = 2e-4;  // the app's two time-scale default
    optim::Adam opt_d(d->parameters(), o);
    optim::GanTrainerOptions to;
    to.loss = c.loss;
    to.gp_lambda = c.gp_lambda;
    to.n_dis = c.n_dis;
    to.diagnostics = true;
    optim::GanTrainer trainer(g, d, opt_g, opt_d, to);
    const Device dev = device_;
    const optim::GanTrainer::Sampler real = [&] { return ring.sample(batch).to(dev); };
    const optim::GanTrainer::Sampler latent = [&] { return randn({batch, 2}, DType::Float32, dev); };

    Trace t;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 1; s <= steps; ++s) {
      trainer.step(real, latent);
      const cuda::MemoryStats m = gpu ? cuda::memory_stats(device_.index) : cuda::MemoryStats{};
      t.nodes.push_back(Node::live_count());
      t.host_bytes.push_back(Storage::live_bytes());
      t.allocated.push_back(m.allocated_bytes);
      t.reserved.push_back(m.reserved_bytes);
      t.mallocs.push_back(m.device_mallocs);
    }
    if (gpu) cuda::synchronize();
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return t;
  }

  Device device_;
};

// After the first third (warm-up: optimizer state, power-iteration vectors, the allocator's first blocks of each
// size), every counter must be exactly where it was.
void expect_flat(const char* what, const std::vector<int64_t>& v) {
  const std::size_t warm = v.size() / 3;
  ASSERT_GT(warm, 0u);
  const auto [lo, hi] = std::minmax_element(v.begin() + warm, v.end());
  EXPECT_EQ(*hi, *lo) << what << " between steps vary from " << *lo << " to " << *hi << " after step " << warm
                      << " (at step " << warm << ": " << v[warm - 1] << ", last: " << v.back() << ")";
}

void check(const Game& c, const Trace& t, bool gpu) {
  SCOPED_TRACE(c.name);
  expect_flat("live autograd nodes", t.nodes);
  expect_flat("live host bytes", t.host_bytes);
  if (gpu) {
    expect_flat("allocated device bytes", t.allocated);
    expect_flat("reserved device bytes", t.reserved);
    expect_flat("cudaMalloc calls", t.mallocs);
  }
  if (gpu)
    std::printf("[soak-cuda] %s: %zu steps in %.2f s, live nodes %lld, device allocated %lld B, reserved %lld B, "
                "cudaMallocs %lld\n",
                c.name, t.nodes.size(), t.seconds, static_cast<long long>(t.nodes.back()),
                static_cast<long long>(t.allocated.back()), static_cast<long long>(t.reserved.back()),
                static_cast<long long>(t.mallocs.back()));
  else
    std::printf("[soak-cuda] %s (emulated): %zu steps in %.2f s, live nodes %lld, live bytes %lld\n", c.name,
                t.nodes.size(), t.seconds, static_cast<long long>(t.nodes.back()),
                static_cast<long long>(t.host_bytes.back()));
}

}  // namespace

// The mixture app's game: non-saturating loss, Adam with two time-scales, spectral norm on every layer of D.
TEST_P(SoakCuda, NonSaturatingAdamWithSpectralNormHoldsDeviceMemoryFlat) {
  const Game c{"ns + adam + sn", nn::GanLoss::NonSaturating, 0.0, true, 1, 2000};
  const int64_t nodes_before = Node::live_count();
  check(c, soak(c), device_.is_cuda());
  EXPECT_EQ(Node::live_count(), nodes_before) << "the models and trainer are gone: no node may outlive them";
}

// WGAN-GP: each critic step differentiates through a gradient on the device (create_graph), two critic steps a step.
TEST_P(SoakCuda, WganGpHoldsDeviceMemoryFlat) {
  const Game c{"wgan-gp, n_dis 2", nn::GanLoss::Wasserstein, 10.0, false, 2, 600};
  const int64_t nodes_before = Node::live_count();
  check(c, soak(c), device_.is_cuda());
  EXPECT_EQ(Node::live_count(), nodes_before);
}

#ifdef NASH_CUDA_EMULATION_AVAILABLE
INSTANTIATE_TEST_SUITE_P(Devices, SoakCuda, ::testing::Values("emu-cuda", "cuda"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           return i.param == "emu-cuda" ? std::string("EmulatedCuda") : std::string("Cuda");
                         });
#else
INSTANTIATE_TEST_SUITE_P(Devices, SoakCuda, ::testing::Values("cuda"),
                         [](const ::testing::TestParamInfo<std::string>&) { return std::string("Cuda"); });
#endif
