// The CUDA multi-tensor step's device-resident metadata (kernels/cuda/optim_step.cu) on the emulated device, and on
// a GPU when one answers (there without the cache counters, which the test reads from the emulated build): steps
// over two alternating parameter sets upload their static metadata once per set and match the CPU per-tensor
// reference; a moved parameter misses and stays correct; sets beyond the cache's size are evicted least recently
// used first; steps with more tensors or groups than the by-value kernel argument holds copy their scalars to the
// device and match too. ||dev - cpu|| / ||cpu|| <= 1e-5 per tensor, the bound of tests/emu/test_optim_step.cpp.
#define NASH_CUDA_EMULATION 1
#include "kernels/cuda/optim_step_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "step_optimizers.h"
#include "emu/device_test.h"
#include "support.h"

using namespace nash;
namespace k = nash::cuda_emu;

namespace {

constexpr double kBound = 1e-5;

// One player: parameters on the device and their CPU twins, each set with its optimizer (fused kernel on the
// device, the per-tensor reference loops on the CPU).
struct Player {
  std::vector<Tensor> dev, ref;
  std::unique_ptr<optim::Optimizer> opt_dev, opt_ref;

  Player(const std::string& which, const std::vector<Tensor>& device_params, optim::Grouping grouping) {
    dev = device_params;
    for (const Tensor& p : dev) ref.push_back(p.to(Device::cpu()).detach().requires_grad_());
    opt_dev = nash_test::make_step_optimizer(which, optim::ParamGroup::grouped(dev, grouping), true);
    opt_ref = nash_test::make_step_optimizer(which, optim::ParamGroup::grouped(ref, grouping), false);
  }
  Player(const std::string& which, const std::vector<int64_t>& sizes, uint64_t seed, Device device,
         optim::Grouping grouping = optim::Grouping::LayerWise)
      : Player(which, params(sizes, seed, device), grouping) {}

  static std::vector<Tensor> params(const std::vector<int64_t>& sizes, uint64_t seed, Device device) {
    Generator gen(seed);
    std::vector<Tensor> ps;
    for (int64_t n : sizes)
      ps.push_back(randn({n}, DType::Float32, Device::cpu(), &gen).to(device).detach().requires_grad_());
    return ps;
  }

  // One step with fresh gradients: new device allocations every time, as backward makes them.
  void step(uint64_t seed) {
    Generator gen(seed);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      Tensor g = randn(ref[i].shape(), DType::Float32, Device::cpu(), &gen);
      ref[i].set_grad(g);
      dev[i].set_grad(g.to(dev[i].device()));
    }
    opt_ref->step();
    opt_dev->step();
  }

  double error() const {
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, nash_test::rel_error(dev[i], ref[i]));
    return worst;
  }
};

class OptimStepCache : public nash_test::DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    k::clear_step_cache();
  }
  // The counters exist for the emulated build only; a GPU run checks the results alone.
  bool counted() const { return device_.is_emu_cuda(); }
};

}  // namespace

// A GAN's two players alternate: after each set's first step, every step finds its metadata resident, although the
// gradients are new tensors every step. On a GPU the caching allocator is emptied between rounds: the resident
// buffers are in use, so nothing is taken from under them.
TEST_P(OptimStepCache, AlternatingParameterSetsUploadOncePerSet) {
  for (const char* which : {"Adam", "AdaNSGDA", "SGDMomentum"}) {
    SCOPED_TRACE(which);
    k::clear_step_cache();
    Player g(which, {37, 4097, 130, 1, 515}, 1, device_), d(which, {300, 17, 1024, 33}, 2, device_);
    const int rounds = 4;
    for (int r = 0; r < rounds; ++r) {
      g.step(10 + r);
      EXPECT_LE(g.error(), kBound) << "G, round " << r;
      d.step(20 + r);
      EXPECT_LE(d.error(), kBound) << "D, round " << r;
      if (device_.is_cuda()) cuda::empty_cache();
    }
    if (counted()) {
      const k::StepCacheStats st = k::step_cache_stats();
      EXPECT_EQ(st.misses, 2) << "one upload per parameter set";
      EXPECT_EQ(st.hits, 2 * (rounds - 1));
      EXPECT_EQ(st.scalar_uploads, 0) << "a few tensors' scalars travel as a kernel argument";
      EXPECT_EQ(st.entries, 2);
    }
  }
}

// Moving a model away and back gives its parameters new allocations: the next step misses, uploads the new
// pointers, and stays correct. Moving again once the old storage is freed may land on the same addresses, which
// then hit an entry whose pointers are those same, live, buffers.
TEST_P(OptimStepCache, MovedParametersMissAndStayCorrect) {
  nn::Linear lin(23, 9);
  lin.to(device_);
  Player p("Adam", lin.parameters(), optim::Grouping::LayerWise);
  p.step(1);
  p.step(2);
  EXPECT_LE(p.error(), kBound);
  k::StepCacheStats before = k::step_cache_stats();
  {
    std::vector<Tensor> old;  // keeps the old storages alive: the moved parameters cannot reuse their addresses
    for (const Tensor& t : lin.parameters()) old.push_back(t.detach());
    lin.to(Device::cpu());
    lin.to(device_);
    ASSERT_NE(lin.parameters()[0].raw_data(), old[0].raw_data());
    p.step(3);
    EXPECT_LE(p.error(), kBound) << "after the move";
  }
  if (counted()) {
    const k::StepCacheStats st = k::step_cache_stats();
    EXPECT_EQ(st.misses, before.misses + 1);
    EXPECT_EQ(st.hits, before.hits);
    before = st;
  }
  lin.to(Device::cpu());
  lin.to(device_);
  p.step(4);
  p.step(5);
  EXPECT_LE(p.error(), kBound) << "after the second move";
  if (counted()) {
    const k::StepCacheStats st = k::step_cache_stats();
    EXPECT_EQ(st.hits + st.misses, before.hits + before.misses + 2);
    EXPECT_EQ(st.hits, before.hits + (st.misses - before.misses == 1 ? 1 : 2));
  }
}

// Nine sets stepped in turn overflow the eight entries: least recently used first, so every step misses; eight
// sets fit and hit from their second round on.
TEST_P(OptimStepCache, LeastRecentlyUsedSetsAreEvicted) {
  std::vector<std::unique_ptr<Player>> players;
  for (int i = 0; i < k::kStepCacheEntries + 1; ++i)
    players.push_back(std::make_unique<Player>("SGDMomentum", std::vector<int64_t>{5 + i, 9}, 100 + i, device_));
  for (int r = 0; r < 2; ++r)
    for (auto& p : players) p->step(r);
  for (auto& p : players) EXPECT_LE(p->error(), kBound);
  if (counted()) {
    const k::StepCacheStats st = k::step_cache_stats();
    EXPECT_EQ(st.misses, 2 * (k::kStepCacheEntries + 1));
    EXPECT_EQ(st.hits, 0);
    EXPECT_EQ(st.entries, k::kStepCacheEntries);
  }
  players.pop_back();
  k::clear_step_cache();
  for (int r = 0; r < 2; ++r)
    for (auto& p : players) p->step(10 + r);
  for (auto& p : players) EXPECT_LE(p->error(), kBound);
  if (counted()) {
    const k::StepCacheStats st = k::step_cache_stats();
    EXPECT_EQ(st.misses, k::kStepCacheEntries);
    EXPECT_EQ(st.hits, k::kStepCacheEntries);
  }
}

// The per-step scalars travel as a kernel argument up to 64 tensors and 64 groups; beyond either they are copied
// to the device, with the same results (a norm rule reads its group lrs from there too).
TEST_P(OptimStepCache, ScalarsBeyondTheKernelArgumentAreCopied) {
  struct Case {
    const char* which;
    int tensors;
    optim::Grouping grouping;
    bool copied;
  };
  const Case cases[] = {
      {"Adam", k::kInlineTensors, optim::Grouping::LayerWise, false},    // exactly full
      {"Adam", k::kInlineTensors + 6, optim::Grouping::Global, true},    // too many tensors
      {"AdaNSGDA", k::kInlineTensors + 6, optim::Grouping::Global, true},
      {"AdaNSGDA", k::kInlineTensors + 1, optim::Grouping::LayerWise, true},  // too many tensors and groups
      {"SGDMomentum", k::kInlineTensors + 1, optim::Grouping::LayerWise, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.which) + ", " + std::to_string(c.tensors) + " tensors" +
                 (c.grouping == optim::Grouping::Global ? ", global" : ", layer-wise"));
    k::clear_step_cache();
    std::vector<int64_t> sizes;
    for (int i = 0; i < c.tensors; ++i) sizes.push_back(1 + (7 * i) % 41);
    sizes[3] = 4100;  // one tensor over two blocks
    Player p(c.which, sizes, 7, device_, c.grouping);
    for (int s = 0; s < 3; ++s) {
      p.step(30 + s);
      EXPECT_LE(p.error(), kBound) << "step " << s;
    }
    if (counted()) {
      const k::StepCacheStats st = k::step_cache_stats();
      EXPECT_EQ(st.scalar_uploads, c.copied ? 3 : 0);
      EXPECT_EQ(st.misses, 1);
      EXPECT_EQ(st.hits, 2);
    }
  }
}

NASH_INSTANTIATE_DEVICE_TEST(OptimStepCache);
