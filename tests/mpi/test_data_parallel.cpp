// Data-parallel training across processes: the collectives, the gradient reducer with real MPI, and the apps' GANs
// trained on N ranks against the same training in one process over the same global batch. Each rank runs the
// single-process reference itself, so no files pass between ranks.
//
// Tolerance: the ranks sum their halves of a batch separately, so float32 sums are taken in another order than in
// one process; after 10-30 steps the parameters agree to 6e-8 .. 2.5e-6 (relative; each test prints its figure).
// The tests allow |a - b| <= 1e-4 * max(1, |b|) per element, and require the ranks' replicas to be bit-identical
// (dist::check_replicas inside the apps).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <string>
#include <vector>

#include "apps/fmnist.h"
#include "apps/mixture.h"
#include "nash/core/autograd.h"
#include "nash/core/cuda.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/dist/dist.h"
#include "nash/nn/layers.h"
#include "tests/apps/fmnist_fixture.h"
#include "tests/apps/idx_fixture.h"
#include "tests/mpi/world.h"

namespace {

using namespace nash;
using nash::testing_mpi::world;

// The largest |a - b| / max(1, |b|) over two equally long vectors.
double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]) / std::max(1.0, std::fabs(static_cast<double>(b[i]))));
  return m;
}

TEST(DistMpi, Collectives) {
  dist::ProcessGroup& pg = *world();
  const int r = pg.rank(), n = pg.world_size();
  Tensor t = full({3}, r + 1.0);
  pg.all_reduce_sum(t);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(3, static_cast<float>(n * (n + 1) / 2)));
  Tensor b = full({2}, 10.0 * r, DType::Float64);
  pg.broadcast(b, n - 1);
  EXPECT_EQ(b.to_vector<double>(), std::vector<double>(2, 10.0 * (n - 1)));
  const std::vector<double> all = pg.all_gather(r * 2.0);
  ASSERT_EQ(static_cast<int>(all.size()), n);
  for (int k = 0; k < n; ++k) EXPECT_EQ(all[static_cast<std::size_t>(k)], 2.0 * k);
  Tensor a = full({4}, 1.0);
  auto w = pg.all_reduce_sum_async(a);
  w->wait();
  EXPECT_EQ(a.to_vector<float>(), std::vector<float>(4, static_cast<float>(n)));
  pg.barrier();
  EXPECT_DOUBLE_EQ(dist::mean_over_ranks(pg, static_cast<double>(r)), (n - 1) / 2.0);
}

TEST(DistMpi, GradReducerAveragesRankGradients) {
  auto pg = world();
  const int n = pg->world_size();
  manual_seed(7);  // the same network on every rank
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(5, 16), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(16, 8),
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(8, 1)});
  auto input_of = [](int rank) {
    Generator g(100 + static_cast<uint64_t>(rank));
    return randn({6, 5}, DType::Float32, Device::cpu(), &g);
  };
  // The expected average, computed here from every rank's input.
  std::vector<Tensor> params = net->parameters();
  std::vector<std::vector<double>> expect(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) expect[i].assign(static_cast<std::size_t>(params[i].numel()), 0.0);
  for (int r = 0; r < n; ++r) {
    for (Tensor p : params) p.zero_grad();
    sum(square(net->forward(input_of(r)))).backward();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::vector<float> g = params[i].grad().to_vector<float>();
      for (std::size_t k = 0; k < g.size(); ++k) expect[i][k] += g[k] / n;
    }
  }
  for (Tensor p : params) p.zero_grad();
  dist::GradReducer red(pg, params, 256);  // small buckets: several, started during backward
  ASSERT_GE(red.num_buckets(), 3);
  red.prepare();
  sum(square(net->forward(input_of(pg->rank())))).backward();
  if (n > 1) EXPECT_EQ(red.started_in_backward(), red.num_buckets());
  red.finish();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::vector<float> g = params[i].grad().to_vector<float>();
    for (std::size_t k = 0; k < g.size(); ++k)
      EXPECT_NEAR(g[k], expect[i][k], 1e-5 * std::max(1.0, std::fabs(expect[i][k])));
  }
}

apps::MixtureConfig small_mixture() {
  apps::MixtureConfig c;
  c.steps = 30;
  c.batch = 64;
  c.hidden = 32;
  c.out_dir = "";
  c.quiet = true;
  c.eval_samples = 64;
  c.log_every = 10;
  return c;
}

// Trains c data-parallel over the world and alone, and compares.
void expect_same_training(const apps::MixtureConfig& c, const char* what) {
  apps::MixtureResult par = apps::train_mixture(c, world());
  apps::MixtureResult one = apps::train_mixture(c, nullptr);
  EXPECT_EQ(par.world_size, world()->world_size());
  const double dg = max_rel_diff(par.params_g, one.params_g), dd = max_rel_diff(par.params_d, one.params_d);
  EXPECT_LE(dg, 1e-4) << what << ": generator";
  EXPECT_LE(dd, 1e-4) << what << ": discriminator";
  ASSERT_EQ(par.log.size(), one.log.size());
  EXPECT_NEAR(par.log.back().d_loss, one.log.back().d_loss, 1e-4 * std::max(1.0, std::fabs(one.log.back().d_loss)))
      << what;
  if (world()->rank() == 0)
    std::printf("[ rank 0   ] %s over %d ranks vs 1 process, %lld steps: max rel. difference G %.2e, D %.2e\n",
                what, world()->world_size(), static_cast<long long>(c.steps), dg, dd);
}

TEST(DistMpi, MixtureMatchesOneProcess) { expect_same_training(small_mixture(), "mixture (ns, adam)"); }

TEST(DistMpi, MixtureWithSyncBatchNormMatchesOneProcess) {
  apps::MixtureConfig c = small_mixture();
  c.d_norm = apps::MixtureDNorm::BN;
  // SGD, not Adam: batch norm makes the gradient of the bias before it zero up to rounding (about 1e-9), and Adam's
  // first steps turn such noise into full +-lr steps whose signs depend on the summation order.
  c.optimizer = apps::MixtureOptimizer::SGDA;
  // 10 steps: in longer runs a ReLU pre-activation within rounding of zero sooner or later takes the other side of
  // the kink in one of the two runs (measured: identical losses to 6 digits for 10 steps, then apart by 1e-5 and
  // growing, as any two summation orders of this GAN would be).
  c.steps = 8;
  expect_same_training(c, "mixture (D with batch norm, synchronized; sgda)");
}

TEST(DistMpi, MixtureWganGpMatchesOneProcess) {
  apps::MixtureConfig c = small_mixture();
  c.loss = apps::MixtureLoss::WganGP;  // 5 critic steps, gradient penalty: eps drawn for the global batch
  c.steps = 10;
  c.optimizer = apps::MixtureOptimizer::NSGDA;
  c.d_norm = apps::MixtureDNorm::SN;
  expect_same_training(c, "mixture (wgan-gp, nsgda, spectral norm)");
}

TEST(DistMpi, UnevenBatchIsAClearError) {
  if (world()->world_size() == 1) GTEST_SKIP() << "needs several ranks";
  apps::MixtureConfig c = small_mixture();
  c.batch = 64 * world()->world_size() + 1;
  try {
    apps::train_mixture(c, world());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not split evenly"), std::string::npos) << e.what();
  }
}

// ---- Fashion-MNIST (the app on a small IDX stand-in) -----------------------------------------------------------

namespace fs = std::filesystem;

// A folder every rank sees under the same name (rank 0's pid), with the data written by rank 0.
const fs::path& shared_dir() {
  static const fs::path d = [] {
    const std::vector<double> pids = world()->all_gather(static_cast<double>(::getpid()));
    fs::path p = fs::temp_directory_path() / ("nash_dist_fmnist_" + std::to_string(static_cast<long long>(pids[0])));
    if (world()->rank() == 0) {
      fs::remove_all(p);
      fs::create_directories(p / "data");
      nash_test::write_split(p / "data", "train", 96, 3);
      nash_test::write_split(p / "data", "t10k", 40, 4);
    }
    world()->barrier();
    return p;
  }();
  return d;
}

apps::FmnistConfig tiny_fmnist(apps::FmnistArch arch, int64_t steps) {
  apps::FmnistConfig c = nash_test::tiny_fmnist_config(arch, (shared_dir() / "data").string(), "", steps);
  c.plots = false;
  return c;
}

void expect_same_fmnist(const apps::FmnistResult& par, const apps::FmnistResult& one, const char* what,
                        int world_size) {
  EXPECT_EQ(par.world_size, world_size);
  const double dg = max_rel_diff(par.params_g, one.params_g), dd = max_rel_diff(par.params_d, one.params_d);
  EXPECT_LE(dg, 1e-4) << what << ": generator";
  EXPECT_LE(dd, 1e-4) << what << ": discriminator";
  ASSERT_EQ(par.params_g_ema.size(), one.params_g_ema.size()) << what;
  if (!one.params_g_ema.empty())
    EXPECT_LE(max_rel_diff(par.params_g_ema, one.params_g_ema), 1e-4) << what << ": G's weight average";
  if (world()->rank() == 0)
    std::printf("[ rank 0   ] %s over %d ranks vs 1 process: max rel. difference G %.2e, D %.2e\n", what,
                world()->world_size(), dg, dd);
}

TEST(DistMpi, FmnistDcganMatchesOneProcess) {
  apps::FmnistConfig c = tiny_fmnist(apps::FmnistArch::DCGAN, 6);  // batch norm in G and D, Adam
  c.g_ema = 0.9;  // and G's weight average, kept on every rank
  expect_same_fmnist(apps::train_fmnist(c, world()), apps::train_fmnist(c, nullptr), "fmnist dcgan, 6 steps",
                     world()->world_size());
}

TEST(DistMpi, FmnistWganGpMatchesOneProcess) {
  const apps::FmnistConfig c = tiny_fmnist(apps::FmnistArch::WganGP, 3);  // 5 critic steps with the penalty
  expect_same_fmnist(apps::train_fmnist(c, world()), apps::train_fmnist(c, nullptr), "fmnist wgan-gp, 3 steps",
                     world()->world_size());
}

// Class-conditional SN-GAN with DiffAugment: the real labels and G's classes are sharded like the images and
// latents, and each rank draws the augmentations one process draws for its rows.
TEST(DistMpi, FmnistConditionalMatchesOneProcess) {
  apps::FmnistConfig c = tiny_fmnist(apps::FmnistArch::SNGAN, 3);
  c.conditional = true;
  c.diffaugment = "color,translation,cutout";
  expect_same_fmnist(apps::train_fmnist(c, world()), apps::train_fmnist(c, nullptr),
                     "fmnist conditional sngan with DiffAugment, 3 steps", world()->world_size());
}

// ProGAN's D takes the minibatch standard deviation over groups of samples n = n' mod (batch / 4); the strided
// shards keep each group on one rank, so this cross-sample statistic matches one process too.
TEST(DistMpi, FmnistProganMatchesOneProcess) {
  const apps::FmnistConfig c = tiny_fmnist(apps::FmnistArch::ProGAN, 2);
  expect_same_fmnist(apps::train_fmnist(c, world()), apps::train_fmnist(c, nullptr), "fmnist progan, 2 steps",
                     world()->world_size());
}

// A stop request that reaches one rank only (a signal delivered to one process) stops every rank at the same step,
// after which rank 0 saves the checkpoint: no rank is left waiting in a collective.
TEST(DistMpi, FmnistStopSeenByOneRankStopsAll) {
  if (world()->world_size() == 1) GTEST_SKIP() << "needs several ranks";
  apps::FmnistConfig c = tiny_fmnist(apps::FmnistArch::DCGAN, 10);
  if (world()->rank() == world()->world_size() - 1) c.interrupt_after = 3;  // as if only this rank saw SIGINT
  const apps::FmnistResult r = apps::train_fmnist(c, world());
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.steps_done, 3);
  const std::vector<double> steps = world()->all_gather(static_cast<double>(r.steps_done));
  for (double s : steps) EXPECT_EQ(s, 3.0);
}

// A checkpoint written by rank 0 of a distributed run resumes in one process (another world size) and ends where
// one process training all the way ends.
TEST(DistMpi, FmnistCheckpointResumesOnAnotherWorldSize) {
  apps::FmnistConfig c = tiny_fmnist(apps::FmnistArch::DCGAN, 4);
  c.out_dir = (shared_dir() / "par").string();
  const apps::FmnistResult first = apps::train_fmnist(c, world());
  world()->barrier();  // rank 0's checkpoint is on disk
  const std::string ckpt = (shared_dir() / "par" / "checkpoint.safetensors").string();
  ASSERT_TRUE(fs::exists(ckpt));
  EXPECT_EQ(first.checkpoint.empty(), world()->rank() != 0);  // only rank 0 wrote one
  apps::FmnistConfig resume = tiny_fmnist(apps::FmnistArch::DCGAN, 8);
  resume.resume = ckpt;
  const apps::FmnistResult resumed = apps::train_fmnist(resume, nullptr);
  const apps::FmnistResult straight = apps::train_fmnist(tiny_fmnist(apps::FmnistArch::DCGAN, 8), nullptr);
  EXPECT_EQ(resumed.start_step, 4);
  EXPECT_EQ(first.world_size, world()->world_size());
  expect_same_fmnist(resumed, straight, "fmnist dcgan, 4 steps on the world + 4 resumed alone", 1);
  world()->barrier();
  if (world()->rank() == 0) fs::remove_all(shared_dir());
}

// NCCL with a world of one (the GPU check runs this binary alone): the collectives through a real communicator.
TEST(DistNccl, WorldOfOne) {
  if (!dist::backend_available(dist::Backend::NCCL)) GTEST_SKIP() << "nash was built without NCCL";
  if (!cuda::is_available()) GTEST_SKIP() << cuda::unavailable_reason();
  if (world()->world_size() != 1) GTEST_SKIP() << "runs in a world of one (one GPU per rank is not assumed)";
  auto pg = dist::init_process_group(dist::Backend::NCCL, Device::cuda(0));
  EXPECT_EQ(pg->backend(), dist::Backend::NCCL);
  Tensor t = full({1000}, 1.5, DType::Float32, Device::cuda(0));
  pg->all_reduce_sum(t);
  EXPECT_EQ(t.to(Device::cpu()).to_vector<float>(), std::vector<float>(1000, 1.5f));
  Tensor b = full({7}, 2.0, DType::Float64, Device::cuda(0));
  pg->broadcast(b, 0);
  EXPECT_EQ(b.to(Device::cpu()).to_vector<double>(), std::vector<double>(7, 2.0));
  EXPECT_EQ(pg->all_gather(3.0), std::vector<double>{3.0});
  auto w = pg->all_reduce_sum_async(t);
  w->wait();
  EXPECT_EQ(t.to(Device::cpu()).to_vector<float>()[999], 1.5f);
  EXPECT_THROW(pg->all_reduce_sum(t = full({3}, 1.0)), Error);  // a CPU tensor for a CUDA group
}

}  // namespace
