// nash::dist in one process: launcher variables, sharding, bucketing and the gradient hooks, the differentiable
// all-reduce and synchronized batch norm, against a stand-in group of two identical ranks (every all-reduce
// doubles, as summing two equal replicas does). The real multi-process runs are in tests/mpi/.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/dist/dist.h"
#include "nash/nn/layers.h"
#include "nash/optim/gan_trainer.h"
#include "nash/optim/optimizer.h"

namespace {

using namespace nash;

// Two ranks holding the same values: a sum over ranks is twice the local value. Records each all-reduce's size and
// whether it was started asynchronously.
class TwinGroup : public dist::ProcessGroup {
 public:
  TwinGroup() : ProcessGroup(dist::Backend::Local, 0, 2, Device::cpu()) {}
  void all_reduce_sum(Tensor& t) override {
    check_tensor("all_reduce_sum", t);
    t.mul_(2.0);
    sizes.push_back(t.numel());
  }
  void broadcast(Tensor& t, int) override { check_tensor("broadcast", t); ++broadcasts; }
  void barrier() override {}
  std::vector<double> all_gather(double v) override { return {v, v}; }
  std::vector<int64_t> sizes;
  int broadcasts = 0;
};

// Sets environment variables for one test and restores them after.
class EnvGuard {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.push_back({name, old ? std::string(old) : std::string(), old != nullptr});
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~EnvGuard() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
      if (it->had)
        setenv(it->name.c_str(), it->value.c_str(), 1);
      else
        unsetenv(it->name.c_str());
  }

 private:
  struct Saved {
    std::string name, value;
    bool had;
  };
  std::vector<Saved> saved_;
};

void clear_launcher_env(EnvGuard& env) {
  for (const char* v : {"NASH_RANK", "NASH_WORLD_SIZE", "NASH_LOCAL_RANK", "OMPI_COMM_WORLD_RANK",
                        "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "PMI_SIZE",
                        "MPI_LOCALRANKID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"})
    env.set(v, nullptr);
}

TEST(Dist, LaunchInfoReadsTheLauncherVariables) {
  EnvGuard env;
  clear_launcher_env(env);
  dist::LaunchInfo none = dist::launch_info();
  EXPECT_EQ(none.rank, 0);
  EXPECT_EQ(none.world_size, 1);
  EXPECT_EQ(none.source, "none");

  env.set("OMPI_COMM_WORLD_RANK", "3");
  env.set("OMPI_COMM_WORLD_SIZE", "4");
  env.set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  dist::LaunchInfo ompi = dist::launch_info();
  EXPECT_EQ(ompi.rank, 3);
  EXPECT_EQ(ompi.world_size, 4);
  EXPECT_EQ(ompi.local_rank, 1);
  // nash's own variables win over the launcher's.
  env.set("NASH_RANK", "0");
  env.set("NASH_WORLD_SIZE", "2");
  EXPECT_EQ(dist::launch_info().world_size, 2);
}

TEST(Dist, LaunchInfoRejectsBadVariables) {
  EnvGuard env;
  clear_launcher_env(env);
  env.set("NASH_RANK", "x1");
  env.set("NASH_WORLD_SIZE", "2");
  try {
    dist::launch_info();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NASH_RANK='x1'"), std::string::npos) << e.what();
  }
  env.set("NASH_RANK", "2");
  EXPECT_THROW(dist::launch_info(), Error);  // rank not below the world size
  env.set("NASH_WORLD_SIZE", nullptr);
  EXPECT_THROW(dist::launch_info(), Error);  // half set
}

TEST(Dist, BackendsAndLocalGroup) {
  EXPECT_EQ(dist::parse_backend("mpi"), dist::Backend::MPI);
  EXPECT_THROW(dist::parse_backend("gloo"), Error);
  EXPECT_TRUE(dist::backend_available(dist::Backend::Local));
  EnvGuard env;
  clear_launcher_env(env);
  auto pg = dist::init_process_group(dist::Backend::Auto);
  EXPECT_EQ(pg->backend(), dist::Backend::Local);
  EXPECT_EQ(pg->world_size(), 1);
  Tensor t = ones({3});
  pg->all_reduce_sum(t);
  EXPECT_FLOAT_EQ(t.sum().item(), 3.0f);
  EXPECT_THROW(pg->all_reduce_sum(t = ones({2, 3}).t()), Error);  // not contiguous
  env.set("NASH_RANK", "0");
  env.set("NASH_WORLD_SIZE", "2");
  EXPECT_THROW(dist::init_process_group(dist::Backend::Local), Error);  // 2 processes launched
  EXPECT_THROW(dist::init_process_group(dist::Backend::NCCL, Device::cpu()), Error);
}

TEST(Dist, ShardSlicesTheGlobalBatch) {
  Tensor g = from_vector(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  dist::Shard s{1, 2};
  Tensor mine = s.slice(g);
  ASSERT_EQ(mine.shape(), (Shape{2, 2}));
  EXPECT_EQ(mine.contiguous().to_vector<float>(), (std::vector<float>{2, 3, 6, 7}));  // rows 1 and 3
  EXPECT_EQ(s.local_batch(64), 32);
  dist::Shard three{0, 3};
  EXPECT_THROW(three.local_batch(64), Error);
  EXPECT_THROW(three.slice(g), Error);
}

TEST(Dist, AllReduceSumIsDifferentiable) {
  TwinGroup pg;
  Tensor x = from_vector(std::vector<float>{1, 2, 3}, {3}).requires_grad_();
  Tensor y = dist::all_reduce_sum(pg, x);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{2, 4, 6}));
  sum(mul(y, y)).backward();
  // Each rank's loss is sum((x0 + x1)^2) = sum(y^2); the gradient of the sum of both losses at x0 is 4 (x0 + x1) = 8x:
  // 2y = 4x from this rank, the same from the twin through the backward all-reduce.
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{8, 16, 24}));
}

// A small MLP: Linear 3->4 and Linear 4->1 with biases (parameters of 12, 4, 4 and 1 floats).
std::shared_ptr<nn::Sequential> tiny_mlp() {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(4, 1)});
}

// Each parameter's gradient as host values; the gradients are cleared.
std::vector<std::vector<float>> take_grads(nn::Module& m) {
  std::vector<std::vector<float>> out;
  for (Tensor p : m.parameters()) {
    out.push_back(p.grad().to_vector<float>());
    p.zero_grad();
  }
  return out;
}

TEST(Dist, GradReducerBucketsInReverseOrderWithinTheLimit) {
  manual_seed(1);
  auto net = tiny_mlp();
  auto pg = std::make_shared<TwinGroup>();
  // Parameter sizes 12, 4, 4, 1 floats = 48, 16, 16, 4 bytes; 20-byte buckets: {1 (4 B) + 4 (16 B)}, {4 (16 B)},
  // {12 floats alone: larger than a bucket}.
  dist::GradReducer r(pg, net->parameters(), 20);
  ASSERT_EQ(r.num_buckets(), 3);
  EXPECT_EQ(r.bucket(0), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(r.bucket(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(r.bucket(2), (std::vector<int64_t>{0}));
}

TEST(Dist, GradReducerAveragesAndStartsBucketsDuringBackward) {
  manual_seed(2);
  auto net = tiny_mlp();
  Tensor x = randn({8, 3});
  sum(square(net->forward(x))).backward();
  const std::vector<std::vector<float>> expect = take_grads(*net);

  auto pg = std::make_shared<TwinGroup>();
  dist::GradReducer r(pg, net->parameters(), 20);
  r.prepare();
  sum(square(net->forward(x))).backward();
  EXPECT_EQ(r.started_in_backward(), 3);  // every bucket went out from the hooks, before finish()
  r.finish();
  // The average over two equal ranks is the local gradient (each bucket doubled, then halved).
  auto params = net->parameters();
  for (std::size_t i = 0; i < params.size(); ++i) EXPECT_EQ(params[i].grad().to_vector<float>(), expect[i]) << i;
  EXPECT_EQ(pg->sizes, (std::vector<int64_t>{5, 4, 12}));

  // A pass the reducer was not prepared for (G's loss reaching D's parameters) starts nothing.
  pg->sizes.clear();
  sum(net->forward(x)).backward();
  EXPECT_TRUE(pg->sizes.empty());
}

// Gradient accumulation: two backward passes between prepare() and finish(). Every bucket went out during the first
// pass; the second changes the gradients, so finish() must reduce them again and leave the accumulated sum.
TEST(Dist, GradReducerReducesAgainAfterAnotherPass) {
  manual_seed(6);
  auto net = tiny_mlp();
  Tensor x1 = randn({8, 3}), x2 = randn({8, 3});
  sum(square(net->forward(x1))).backward();
  sum(square(net->forward(x2))).backward();
  const std::vector<std::vector<float>> expect = take_grads(*net);

  auto pg = std::make_shared<TwinGroup>();
  dist::GradReducer r(pg, net->parameters(), 20);
  r.prepare();
  sum(square(net->forward(x1))).backward();
  EXPECT_EQ(r.started_in_backward(), 3);
  sum(square(net->forward(x2))).backward();
  r.finish();
  EXPECT_EQ(pg->sizes.size(), 6u);  // each bucket twice
  auto params = net->parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::vector<float> g = params[i].grad().to_vector<float>();
    for (std::size_t k = 0; k < g.size(); ++k) EXPECT_NEAR(g[k], expect[i][k], 1e-5) << i;
  }
}

TEST(Dist, GradReducerTreatsUnreachedParametersAsZero) {
  manual_seed(3);
  auto a = std::make_shared<nn::Linear>(2, 2);
  auto b = std::make_shared<nn::Linear>(2, 2);
  std::vector<Tensor> params = a->parameters();
  for (const Tensor& p : b->parameters()) params.push_back(p);
  auto pg = std::make_shared<TwinGroup>();
  dist::GradReducer r(pg, params);  // one bucket
  r.prepare();
  sum(a->forward(randn({4, 2}))).backward();
  EXPECT_EQ(r.started_in_backward(), 0);  // b's gradients never arrived
  r.finish();
  ASSERT_TRUE(params[2].grad().defined());
  EXPECT_EQ(sum(abs(params[2].grad())).item(), 0.0);
}

TEST(Dist, SyncBatchNormMatchesLocalStatisticsOfTwinRanks) {
  manual_seed(4);
  auto bn = std::make_shared<nn::BatchNorm2d>(3);
  Tensor x = randn({4, 3, 2, 2}).requires_grad_();
  Tensor w = randn({4, 3, 2, 2});
  Tensor y0 = bn->forward(x);
  sum(mul(y0, w)).backward();
  std::vector<float> gx0 = x.grad().to_vector<float>(), gw0 = bn->weight.grad().to_vector<float>();
  std::vector<float> rm0 = bn->running_mean.to_vector<float>();

  auto bn2 = std::make_shared<nn::BatchNorm2d>(3);
  auto pg = std::make_shared<TwinGroup>();
  dist::sync_batch_norm(*bn2, pg);
  ASSERT_TRUE(bn2->stats_reducer);
  x.zero_grad();
  Tensor y1 = bn2->forward(x);
  sum(mul(y1, w)).backward();
  EXPECT_EQ(pg->sizes.size(), 4u);  // mean and variance sums forward, their gradients backward
  const std::vector<float> a = y0.to_vector<float>(), b = y1.to_vector<float>();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
  const std::vector<float> gx1 = x.grad().to_vector<float>();
  for (std::size_t i = 0; i < gx0.size(); ++i) EXPECT_NEAR(gx0[i], gx1[i], 1e-5) << i;
  const std::vector<float> gw1 = bn2->weight.grad().to_vector<float>();
  for (std::size_t i = 0; i < gw0.size(); ++i) EXPECT_NEAR(gw0[i], gw1[i], 1e-5) << i;
  // The running statistics use the global batch (2 x 4 x 2 x 2 values): the mean is the same, the unbiased
  // variance's correction is n/(n-1) of the global count.
  const std::vector<float> rm1 = bn2->running_mean.to_vector<float>();
  for (std::size_t i = 0; i < rm0.size(); ++i) EXPECT_NEAR(rm0[i], rm1[i], 1e-6) << i;
}

TEST(Dist, GanDataParallelConfiguresTheTrainer) {
  manual_seed(5);
  auto G = tiny_mlp();
  auto D = tiny_mlp();
  auto pg = std::make_shared<TwinGroup>();
  dist::GanDataParallel dp(pg, *G, *D);
  EXPECT_EQ(pg->broadcasts, 8);  // 4 tensors per player
  optim::GanTrainerOptions o;
  dp.configure(o);
  EXPECT_TRUE(o.before_backward && o.after_backward && o.reduce_scalar);
  EXPECT_EQ(o.shard_count, 2);
  EXPECT_DOUBLE_EQ(o.reduce_scalar(1.5), 1.5);  // the mean over two equal ranks
  EXPECT_NO_THROW(dp.check("at start"));
}

}  // namespace
