// Soak tests: thousands of GAN steps on the 2-D ring of 8 (the mixture app's setup, smaller players) must not grow
// the autograd graph, nash's live tensor memory or the process's resident memory once warmed up. A leak of one
// node or a few bytes a step, invisible in a short test, kills a long run; here it shows as steady growth.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/core/threads.h"
#include "nash/data/synthetic.h"
#include "nash/nn/spectral_norm.h"
#include "nash/optim/balanced.h"
#include "nash/optim/gan_trainer.h"
#include "support.h"

using namespace nash;

// Under AddressSanitizer the run is shorter (every op is several times slower) and resident memory is not checked:
// the sanitizer's quarantine holds freed blocks back on purpose, so RSS grows without a leak. The node and byte
// counters are exact either way, and the sanitizer's own leak check runs at exit.
#if defined(__SANITIZE_ADDRESS__)
#define NASH_SOAK_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NASH_SOAK_UNDER_ASAN 1
#endif
#endif
#ifdef NASH_SOAK_UNDER_ASAN
constexpr int64_t kStepDivisor = 5;
constexpr bool kCheckRss = false;
#else
constexpr int64_t kStepDivisor = 1;
constexpr bool kCheckRss = true;
#endif

namespace {

// Resident set size in bytes (second field of /proc/self/statm, in pages); -1 when unavailable.
int64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE)) : -1;
}

// in -> 2 x (Linear(hidden), LeakyReLU) -> Linear(out), every Linear spectrally normalised when sn.
std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out, bool sn) {
  auto net = std::make_shared<nn::Sequential>();
  auto linear = [&](int64_t i, int64_t o) -> nn::ModulePtr {
    auto l = std::make_shared<nn::Linear>(i, o);
    if (sn) return nn::spectral_norm(l);
    return l;
  };
  net->push_back(linear(in, hidden));
  net->push_back(std::make_shared<nn::LeakyReLU>(0.2));
  net->push_back(linear(hidden, hidden));
  net->push_back(std::make_shared<nn::LeakyReLU>(0.2));
  net->push_back(linear(hidden, out));
  return net;
}

struct SoakConfig {
  const char* name;
  nn::GanLoss loss;
  double gp_lambda;  // > 0: the gradient penalty, whose double backward builds a graph of the graph
  bool sn;           // spectral normalization on D (power-iteration buffers updated every forward)
  bool nsgda;        // NSGDA (fused layer-wise step) instead of Adam
  int64_t n_dis;
  int64_t steps;
};

struct Trace {
  std::vector<int64_t> nodes, bytes, rss;  // per step: live autograd nodes, live tensor bytes; RSS every kRssEvery
  double seconds = 0;
};
constexpr int64_t kRssEvery = 50;

// Trains G and D for c.steps GanTrainer steps (diagnostics on, as the mixture app runs them) and records, after each
// step, the live autograd nodes and tensor bytes, and every kRssEvery steps the resident memory.
Trace soak(const SoakConfig& c) {
  NumThreadsGuard one_thread(1);  // tensors this small gain nothing from threads
  manual_seed(3);
  const data::GaussianMixture2D ring = data::GaussianMixture2D::ring();
  auto g = mlp(2, 16, 2, false), d = mlp(2, 16, 1, c.sn);
  std::unique_ptr<optim::Optimizer> opt_g, opt_d;
  if (c.nsgda) {
    opt_g = std::make_unique<optim::NSGDA>(g->parameters(), optim::NSGDAOptions{0.005});
    opt_d = std::make_unique<optim::NSGDA>(d->parameters(), optim::NSGDAOptions{0.01});
  } else {
    optim::AdamOptions o;
    o.beta1 = 0.5;
    o.lr = 1e-3;
    opt_g = std::make_unique<optim::Adam>(g->parameters(), o);
    o.lr = 2e-3;
    opt_d = std::make_unique<optim::Adam>(d->parameters(), o);
  }
  optim::GanTrainerOptions to;
  to.loss = c.loss;
  to.gp_lambda = c.gp_lambda;
  to.n_dis = c.n_dis;
  to.diagnostics = true;
  optim::GanTrainer trainer(g, d, *opt_g, *opt_d, to);
  const optim::GanTrainer::Sampler real = [&] { return ring.sample(32); };
  const optim::GanTrainer::Sampler latent = [] { return randn({32, 2}); };

  Trace t;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t steps = c.steps / kStepDivisor;
  for (int64_t s = 1; s <= steps; ++s) {
    trainer.step(real, latent);
    t.nodes.push_back(Node::live_count());
    t.bytes.push_back(Storage::live_bytes());
    if (s % kRssEvery == 0) t.rss.push_back(resident_bytes());
  }
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

// After the first third of the run (warm-up: optimizer state, allocator pools, lazily built buffers), the live
// nodes and tensor bytes between steps must stay exactly where they are, and the resident memory may not rise by
// more than `rss_slack` over the last two thirds.
void expect_flat(const SoakConfig& c, const Trace& t, int64_t rss_slack = 2 << 20) {
  SCOPED_TRACE(c.name);
  const std::size_t warm = t.nodes.size() / 3;
  ASSERT_GT(warm, 0u);
  const auto [nmin, nmax] = std::minmax_element(t.nodes.begin() + warm, t.nodes.end());
  EXPECT_EQ(*nmax, *nmin) << "live autograd nodes between steps vary from " << *nmin << " to " << *nmax
                          << " (at step " << warm << ": " << t.nodes[warm - 1] << ", last: " << t.nodes.back()
                          << ")";
  const auto [bmin, bmax] = std::minmax_element(t.bytes.begin() + warm, t.bytes.end());
  EXPECT_EQ(*bmax, *bmin) << "live tensor bytes between steps vary from " << *bmin << " to " << *bmax;
  const std::size_t rwarm = t.rss.size() / 3;
  ASSERT_GT(rwarm, 0u);
  if (!kCheckRss || t.rss[0] < 0) return;  // no /proc: the counters above still ran
  const int64_t base = t.rss[rwarm - 1];
  const int64_t peak = *std::max_element(t.rss.begin() + rwarm, t.rss.end());
  EXPECT_LT(peak - base, rss_slack) << "resident memory grew from " << base / 1024 << " KiB to " << peak / 1024
                                    << " KiB over the last two thirds of " << t.nodes.size() << " steps";
}

}  // namespace

// The mixture app's default game: non-saturating loss, Adam, spectral normalization on D.
TEST(Soak, NonSaturatingAdamWithSpectralNormHoldsMemoryFlat) {
  const SoakConfig c{"ns + adam + sn", nn::GanLoss::NonSaturating, 0.0, true, false, 1, 2500};
  const int64_t nodes_before = Node::live_count();
  const Trace t = soak(c);
  expect_flat(c, t);
  EXPECT_EQ(Node::live_count(), nodes_before) << "the models and trainer are gone: no node may outlive them";
  std::printf("[soak] %s: %lld steps in %.2f s, live nodes %lld, live tensor bytes %lld, RSS %lld KiB\n", c.name,
              static_cast<long long>(t.nodes.size()), t.seconds, static_cast<long long>(t.nodes.back()),
              static_cast<long long>(t.bytes.back()), static_cast<long long>(t.rss.back() / 1024));
}

// WGAN-GP: each D step differentiates through a gradient (create_graph), the likeliest place for a graph to keep
// itself alive; with NSGDA's fused layer-wise step and two D updates per G update.
TEST(Soak, WganGpNsgdaHoldsMemoryFlat) {
  const SoakConfig c{"wgan-gp + nsgda, n_dis 2", nn::GanLoss::Wasserstein, 1.0, false, true, 2, 1200};
  const int64_t nodes_before = Node::live_count();
  const Trace t = soak(c);
  expect_flat(c, t);
  EXPECT_EQ(Node::live_count(), nodes_before);
  std::printf("[soak] %s: %lld steps in %.2f s, live nodes %lld, live tensor bytes %lld, RSS %lld KiB\n", c.name,
              static_cast<long long>(t.nodes.size()), t.seconds, static_cast<long long>(t.nodes.back()),
              static_cast<long long>(t.bytes.back()), static_cast<long long>(t.rss.back() / 1024));
}
