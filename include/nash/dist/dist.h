// nash::dist: data-parallel training across processes on the collective engines the field already uses: MPI
// (Open MPI) for CPU tensors and NCCL for CUDA tensors. Each process (rank) holds a full replica of the models and
// trains on its shard of every global batch; gradients are averaged over ranks before each optimizer step, so the
// replicas stay identical and the run matches one process training on the global batch (up to the order of
// float32 sums).
//
// Typical use (what `nash fmnist --distributed` does, launched with `mpirun -np N`):
//   auto pg = dist::init_process_group(dist::Backend::Auto, device);  // rank and world size from the launcher
//   dist::broadcast_module(*pg, *D);                                   // identical start on every rank
//   dist::GradReducer rd(pg, D->parameters());                         // buckets + hooks on D's gradients
//   rd.prepare(); loss.backward(); rd.finish();                         // gradients now averaged over ranks
//   opt_d.step();
// Backends are compiled only where their library was found; backend_available() says which were.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nash/core/device.h"
#include "nash/core/tensor.h"

namespace nash {
namespace nn {
class Module;
}
namespace optim {
struct GanTrainerOptions;
}
namespace dist {

enum class Backend {
  Auto,   // NCCL for a CUDA device, MPI for the CPU; Local when the launcher started a single process
  Local,  // one process, no communication (world size 1): the same code path without a launcher
  MPI,
  NCCL,
};
const char* backend_name(Backend b);
Backend parse_backend(const std::string& name);  // "auto", "local", "mpi", "nccl"; nash::Error otherwise
// Whether this build of nash has the backend (Local and Auto always).
bool backend_available(Backend b);

// Rank and world size as the launcher set them (Open MPI, MPICH/PMI, Slurm, or NASH_RANK/NASH_WORLD_SIZE), or
// {0, 1} when no launcher variable is set.
struct LaunchInfo {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string source;  // which variables gave them ("OMPI_COMM_WORLD_*", ..., or "none")
};
LaunchInfo launch_info();

// An operation started asynchronously; wait() completes it (data is valid on the host/stream afterwards).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  // Lets the engine progress without blocking (MPI needs to be called to move non-blocking collectives along).
  virtual void poll() {}
};

// The ranks of one training run and the collectives among them. Tensors passed in must be contiguous float32 or
// float64 on device(); collectives must be called in the same order on every rank.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  int rank() const { return rank_; }
  int world_size() const { return world_; }
  Backend backend() const { return backend_; }
  Device device() const { return device_; }

  // In place: t <- sum over ranks of t.
  virtual void all_reduce_sum(Tensor& t) = 0;
  virtual std::unique_ptr<Work> all_reduce_sum_async(Tensor& t);  // default: synchronous, an already-done Work
  // In place: t <- root's t.
  virtual void broadcast(Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // One value per rank, in rank order, on every rank (checks and timings).
  virtual std::vector<double> all_gather(double v) = 0;
  // A short description for logs: "mpi rank 1/2 (cpu)".
  std::string str() const;
  // After a fatal error on this rank: ends the whole job (the other ranks would otherwise wait forever in their next
  // collective). MPI: MPI_Abort; NCCL: aborts the communicator, then MPI_Abort when nash has MPI, else exits this
  // process (the launcher ends the rest). Returns without doing anything in a world of one.
  virtual void abort(int code);

 protected:
  ProcessGroup(Backend b, int rank, int world, Device d) : backend_(b), rank_(rank), world_(world), device_(d) {}
  void check_tensor(const char* op, const Tensor& t) const;

 private:
  Backend backend_;
  int rank_, world_;
  Device device_;
};

// A group for tensors on `device`. Auto picks NCCL for a CUDA device and MPI for the CPU when the launcher started
// several processes, and Local when it started one (or none). MPI: MPI_Init on first use (MPI_Finalize at exit).
// NCCL: rank/world from the launcher; the NCCL unique id goes from rank 0 to the others through MPI when this build
// has it, else through the file named by NASH_DIST_ID_FILE (written atomically by rank 0, polled by the others).
// Errors (backend not built, world size mismatch, bad environment) are nash::Error naming the cause.
std::shared_ptr<ProcessGroup> init_process_group(Backend backend, Device device = Device::cpu());
std::shared_ptr<ProcessGroup> local_group(Device device = Device::cpu());

// Which rows of each global batch a rank trains on: rows rank, rank + count, rank + 2*count, ... (n of count*n).
// Strided rather than contiguous so that batch statistics taken over strided groups stay within one rank: StyleGAN's
// minibatch stddev groups samples n and n' when n = n' mod N/G, and with count dividing N/G each such group lies in
// one rank, in the same order, so the local groups are the global ones.
struct Shard {
  int64_t rank = 0, count = 1;
  // Rows of `global` (dim 0) that belong to this rank; dim 0 must be divisible by count.
  Tensor slice(const Tensor& global) const;
  // global_batch / count; nash::Error when it does not divide.
  int64_t local_batch(int64_t global_batch) const;
};
Shard shard_of(const ProcessGroup& pg);

// Sum over ranks as a differentiable op: y = sum_r x_r, and the gradient that reaches x on each rank is the sum of
// every rank's gradient of y (so a loss that depends on the global statistic gets the gradient of the global
// loss). Synchronized batch norm is built on it. World size 1: the identity.
Tensor all_reduce_sum(ProcessGroup& pg, const Tensor& x);

// Copies root's parameters and buffers (batch-norm running statistics, spectral norm's u) to every rank.
void broadcast_module(ProcessGroup& pg, nn::Module& m, int root = 0);
// Throws nash::Error naming the first parameter or buffer whose values differ between ranks (a checksum of its
// bytes is compared across ranks), with `what` in the message. A no-op for world size 1.
void check_replicas(ProcessGroup& pg, const nn::Module& m, const std::string& what);

// Makes every BatchNorm1d/2d inside m use batch statistics over all ranks (sum of x and of the squared
// deviations all-reduced), so D and G see the statistics of the global batch, as one process would. Without it,
// batch norm normalizes per rank, over the local batch (and running statistics are per rank).
void sync_batch_norm(nn::Module& m, const std::shared_ptr<ProcessGroup>& pg);

// Averages the gradients of a parameter list over ranks, in buckets of about bucket_bytes (flattened into one
// buffer per bucket, one collective per bucket). With overlap, each leaf's post-accumulation hook marks its
// gradient ready during backward; a bucket's all-reduce starts as soon as all its gradients are ready and every
// earlier bucket has started (buckets are filled in reverse parameter order, the order backward usually produces
// them, and started in the same order on every rank). finish() starts what is left (parameters the pass did not
// reach count as zero gradients), waits, divides by the world size and writes the averages back into .grad.
// Several backward passes between prepare() and finish() (gradient accumulation) work too: a bucket whose
// gradients change after it started is reduced again by finish().
class GradReducer {
 public:
  static constexpr std::size_t kDefaultBucketBytes = 25u << 20;  // 25 MiB
  GradReducer(std::shared_ptr<ProcessGroup> pg, std::vector<Tensor> params,
              std::size_t bucket_bytes = kDefaultBucketBytes, bool overlap = true);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Arms the hooks for one backward pass (other passes, e.g. G's loss reaching D's parameters, are ignored).
  void prepare();
  // Completes the reduction of the pass prepared last. Without prepare() (or with overlap off) it reduces every
  // bucket now.
  void finish();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Parameter indices of bucket b, in the order they were packed.
  const std::vector<int64_t>& bucket(int64_t b) const { return buckets_.at(static_cast<std::size_t>(b)).params; }
  // Buckets started from a hook (during backward) in the last pass, and by finish().
  int64_t started_in_backward() const { return started_in_backward_; }
  const ProcessGroup& group() const { return *pg_; }

 private:
  struct Bucket {
    std::vector<int64_t> params;
    int64_t numel = 0;
    Tensor flat;  // persistent buffer on the group's device
    int64_t pending = 0;
    bool started = false, stale = false;
    std::unique_ptr<Work> work;
  };
  void on_ready(int64_t param);
  void start(Bucket& b);
  void launch_ready_in_order();

  std::shared_ptr<ProcessGroup> pg_;
  std::vector<Tensor> params_;
  std::vector<int64_t> bucket_of_;
  std::vector<char> ready_;  // per parameter: its gradient arrived in this pass
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::shared_ptr<void>, int>> hooks_;  // (accumulator node, hook id)
  bool overlap_, armed_ = false;
  int64_t next_to_start_ = 0, started_in_backward_ = 0;
};

// One GAN trained data-parallel with optim::GanTrainer: at construction, rank 0's G and D are broadcast to every
// rank (parameters and buffers), batch norm is synchronized over the ranks when sync_bn, and a GradReducer is set up
// per player. configure() fills the trainer options: gradients averaged after each backward, losses reported as the
// global batch's, the shard for per-sample draws. The sampler of each batch should draw the global batch (the same
// draws on every rank, from the shared seed) and keep shard().slice() of it: then every rank consumes the random
// streams identically and the run equals one process training on the global batch. Keep this object alive (and in
// place) while the trainer runs.
class GanDataParallel {
 public:
  GanDataParallel(std::shared_ptr<ProcessGroup> pg, nn::Module& generator, nn::Module& discriminator,
                  bool sync_bn = true, std::size_t bucket_bytes = GradReducer::kDefaultBucketBytes,
                  bool overlap = true);
  void configure(optim::GanTrainerOptions& options);
  Shard shard() const { return shard_of(*pg_); }
  ProcessGroup& group() const { return *pg_; }
  const GradReducer& reducer(char player) const { return player == 'D' ? *d_ : *g_; }
  // check_replicas on both players (cheap: one checksum per tensor); call it now and then, e.g. at checkpoints.
  void check(const std::string& when);

 private:
  std::shared_ptr<ProcessGroup> pg_;
  nn::Module &g_module_, &d_module_;
  std::unique_ptr<GradReducer> g_, d_;
};

// For a program's error path in a distributed run: ends the whole job with `code` when the launcher started several
// processes (MPI_Abort when MPI is up, else exits this process); returns in a world of one. A rank that merely
// returned would leave the others waiting forever in their next collective.
void abort_job(int code);

// The mean over ranks of one value per rank (a loss, a metric); the value itself for world size 1.
double mean_over_ranks(ProcessGroup& pg, double v);

}  // namespace dist
}  // namespace nash
