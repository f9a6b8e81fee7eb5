// nash::dist: launcher environment, the local (world size 1) group, sharding, the differentiable all-reduce,
// module broadcast and replica checks, synchronized batch norm and the bucketed gradient reducer. The MPI and NCCL
// groups live in mpi.cpp and nccl.cpp.
#include "nash/dist/dist.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "dist/backends.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/nn/layers.h"
#include "nash/nn/module.h"
#include "nash/optim/gan_trainer.h"

namespace nash {
namespace dist {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Auto: return "auto";
    case Backend::Local: return "local";
    case Backend::MPI: return "mpi";
    case Backend::NCCL: return "nccl";
  }
  return "?";
}

Backend parse_backend(const std::string& name) {
  for (Backend b : {Backend::Auto, Backend::Local, Backend::MPI, Backend::NCCL})
    if (name == backend_name(b)) return b;
  nash::detail::fail("dist: unknown backend '", name, "'; expected one of: auto, local, mpi, nccl");
}

bool backend_available(Backend b) {
  switch (b) {
    case Backend::Auto:
    case Backend::Local: return true;
    case Backend::MPI:
#ifdef NASH_WITH_MPI
      return true;
#else
      return false;
#endif
    case Backend::NCCL:
#ifdef NASH_WITH_NCCL
      return true;
#else
      return false;
#endif
  }
  return false;
}

namespace {

// An integer environment variable, or -1 when unset; a set but malformed value is an error naming it.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  NASH_CHECK(errno == 0 && end && *end == '\0' && x >= 0 && x < (1L << 30), "dist: environment variable ", name,
             "='", v, "' is not a non-negative integer");
  return static_cast<int>(x);
}

}  // namespace

LaunchInfo launch_info() {
  // The launchers nash knows, most specific first: nash's own variables, Open MPI, MPICH/Intel MPI (PMI), Slurm.
  struct Vars {
    const char *rank, *size, *local, *label;
  };
  static const Vars kVars[] = {
      {"NASH_RANK", "NASH_WORLD_SIZE", "NASH_LOCAL_RANK", "NASH_RANK/NASH_WORLD_SIZE"},
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_*"},
      {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "PMI_RANK/PMI_SIZE"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_PROCID/SLURM_NTASKS"},
  };
  for (const Vars& v : kVars) {
    const int rank = env_int(v.rank), size = env_int(v.size);
    if (rank < 0 && size < 0) continue;
    NASH_CHECK(rank >= 0 && size >= 1, "dist: ", v.label, ": both ", v.rank, " and ", v.size,
               " must be set (got ", v.rank, "=", rank < 0 ? std::string("unset") : std::to_string(rank), ", ",
               v.size, "=", size < 0 ? std::string("unset") : std::to_string(size), ")");
    NASH_CHECK(rank < size, "dist: ", v.rank, "=", rank, " is not below ", v.size, "=", size);
    LaunchInfo info;
    info.rank = rank;
    info.world_size = size;
    const int local = env_int(v.local);
    info.local_rank = local >= 0 ? local : rank;
    info.source = v.label;
    return info;
  }
  LaunchInfo info;
  info.source = "none";
  return info;
}

// ---- ProcessGroup -----------------------------------------------------------------------------------------------

namespace {
class DoneWork : public Work {
 public:
  void wait() override {}
};
}  // namespace

std::unique_ptr<Work> ProcessGroup::all_reduce_sum_async(Tensor& t) {
  all_reduce_sum(t);
  return std::make_unique<DoneWork>();
}

void ProcessGroup::abort(int code) {
  if (world_ > 1) std::_Exit(code);
}

std::string ProcessGroup::str() const {
  std::ostringstream os;
  os << backend_name(backend_) << " rank " << rank_ << "/" << world_ << " (" << device_.str() << ")";
  return os.str();
}

void ProcessGroup::check_tensor(const char* op, const Tensor& t) const {
  NASH_CHECK(t.defined(), "dist ", op, ": the tensor is undefined");
  NASH_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, "dist ", op,
             ": expected a float32 or float64 tensor, got ", t.str());
  NASH_CHECK(t.device() == device_, "dist ", op, ": the ", backend_name(backend_), " group works on ",
             device_.str(), " tensors, got ", t.str());
  NASH_CHECK(t.is_contiguous(), "dist ", op, ": expected a contiguous tensor, got ", t.str());
}

namespace {

class LocalGroup : public ProcessGroup {
 public:
  explicit LocalGroup(Device d) : ProcessGroup(Backend::Local, 0, 1, d) {}
  void all_reduce_sum(Tensor& t) override { check_tensor("all_reduce_sum", t); }
  void broadcast(Tensor& t, int root) override {
    check_tensor("broadcast", t);
    NASH_CHECK(root == 0, "dist broadcast: root ", root, " is not a rank of a group of 1");
  }
  void barrier() override {}
  std::vector<double> all_gather(double v) override { return {v}; }
};

}  // namespace

std::shared_ptr<ProcessGroup> local_group(Device device) { return std::make_shared<LocalGroup>(device); }

std::shared_ptr<ProcessGroup> init_process_group(Backend backend, Device device) {
  const LaunchInfo info = launch_info();
  if (backend == Backend::Auto) {
    if (info.world_size == 1)
      backend = Backend::Local;
    else
      backend = device.is_cuda() ? Backend::NCCL : Backend::MPI;
  }
  switch (backend) {
    case Backend::Local:
      NASH_CHECK(info.world_size == 1, "dist: the launcher started ", info.world_size, " processes (", info.source,
                 ") but the local backend runs one; use mpi or nccl");
      return local_group(device);
    case Backend::MPI:
      NASH_CHECK(backend_available(Backend::MPI),
                 "dist: this nash was built without MPI (install Open MPI's development files, e.g. Debian's "
                 "libopenmpi-dev, and rebuild)");
      NASH_CHECK(device.is_cpu(), "dist: the mpi backend reduces CPU tensors; for ", device.str(), " use nccl");
      return detail::make_mpi_group();
    case Backend::NCCL:
      NASH_CHECK(backend_available(Backend::NCCL),
                 "dist: this nash was built without NCCL (it needs the CUDA backend and the NCCL library)");
      NASH_CHECK(device.is_cuda(), "dist: the nccl backend reduces CUDA tensors, got device ", device.str(),
                 "; use mpi for the CPU");
      return detail::make_nccl_group(device, info);
    case Backend::Auto: break;
  }
  nash::detail::fail("dist: unknown backend ", static_cast<int>(backend));
}

// ---- sharding and the differentiable all-reduce ------------------------------------------------------------------

int64_t Shard::local_batch(int64_t global_batch) const {
  NASH_CHECK(count >= 1 && rank >= 0 && rank < count, "dist: bad shard ", rank, " of ", count);
  NASH_CHECK(global_batch % count == 0, "dist: the global batch of ", global_batch, " does not split evenly over ",
             count, " ranks; choose a batch divisible by the world size");
  return global_batch / count;
}

Tensor Shard::slice(const Tensor& global) const {
  NASH_CHECK(global.defined() && global.dim() >= 1, "dist: Shard::slice needs a batch tensor, got ",
             global.defined() ? global.str() : std::string("an undefined tensor"));
  if (count == 1) return global;
  const int64_t n = local_batch(global.size(0));
  Shape s = global.shape();
  s[0] = count;
  s.insert(s.begin(), n);  // (n, count, ...): row i*count + r is [i, r]
  return global.reshape(s).select(1, rank).contiguous();
}

Shard shard_of(const ProcessGroup& pg) { return Shard{pg.rank(), pg.world_size()}; }

Tensor all_reduce_sum(ProcessGroup& pg, const Tensor& x) {
  if (pg.world_size() == 1) return x;
  Tensor out;
  {
    NoGradGuard ng;
    out = x.detach().contiguous().clone();
    pg.all_reduce_sum(out);
  }
  ProcessGroup* g = &pg;  // the group outlives the graphs built while training with it
  return autograd::record("AllReduceSum", out, {x}, {},
                          [g](const BackwardContext&, const Tensor& grad) {
                            return std::vector<Tensor>{all_reduce_sum(*g, grad)};
                          });
}

// ---- module broadcast, replica checks, synchronized batch norm ---------------------------------------------------

namespace {

std::vector<std::pair<std::string, Tensor>> state_of(const nn::Module& m) {
  auto all = m.named_parameters();
  for (auto& b : m.named_buffers()) all.push_back(b);
  return all;
}

// FNV-1a over the bytes, folded to 52 bits so a double carries it exactly.
double checksum(const Tensor& t) {
  Tensor h = t.detach().to(Device::cpu()).contiguous();
  const auto* p = static_cast<const unsigned char*>(h.raw_data());
  const std::size_t n = static_cast<std::size_t>(h.numel()) * element_size(h.dtype());
  uint64_t x = 1469598103934665603ULL;
  for (std::size_t i = 0; i < n; ++i) x = (x ^ p[i]) * 1099511628211ULL;
  return static_cast<double>(x & ((1ULL << 52) - 1));
}

}  // namespace

void broadcast_module(ProcessGroup& pg, nn::Module& m, int root) {
  NASH_CHECK(root >= 0 && root < pg.world_size(), "dist broadcast_module: root ", root, " is not a rank of ",
             pg.str());
  if (pg.world_size() == 1) return;
  NoGradGuard ng;
  for (auto& kv : state_of(m)) {
    Tensor t = kv.second;
    if (!t.defined()) continue;
    NASH_CHECK(t.device() == pg.device(), "dist broadcast_module: ", kv.first, " is on ", t.device().str(),
               " but the group works on ", pg.device().str());
    if (t.is_contiguous()) {
      Tensor d = t.detach();
      pg.broadcast(d, root);
    } else {
      Tensor c = t.detach().contiguous().clone();
      pg.broadcast(c, root);
      t.detach().copy_(c);
    }
  }
}

void check_replicas(ProcessGroup& pg, const nn::Module& m, const std::string& what) {
  if (pg.world_size() == 1) return;
  for (auto& kv : state_of(m)) {
    const double mine = kv.second.defined() ? checksum(kv.second) : -1.0;
    const std::vector<double> all = pg.all_gather(mine);
    for (std::size_t r = 1; r < all.size(); ++r)
      NASH_CHECK(all[r] == all[0], "dist: ", what, ": ", kv.first, " differs between rank 0 and rank ", r,
                 " (the replicas have diverged)");
  }
}

void sync_batch_norm(nn::Module& m, const std::shared_ptr<ProcessGroup>& pg) {
  NASH_CHECK(pg, "dist sync_batch_norm: the process group is null");
  auto reducer = std::make_shared<nn::BatchStatsReducer>();
  reducer->replicas = pg->world_size();
  reducer->sum = [pg](const Tensor& s) { return all_reduce_sum(*pg, s); };
  std::function<void(nn::Module&)> visit = [&](nn::Module& mod) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(&mod)) bn->stats_reducer = reducer;
    if (auto* bn = dynamic_cast<nn::BatchNorm1d*>(&mod)) bn->stats_reducer = reducer;
    for (auto& c : mod.named_children())
      if (c.second) visit(*c.second);
  };
  visit(m);
}

// ---- GradReducer --------------------------------------------------------------------------------------------------

GradReducer::GradReducer(std::shared_ptr<ProcessGroup> pg, std::vector<Tensor> params, std::size_t bucket_bytes,
                         bool overlap)
    : pg_(std::move(pg)), params_(std::move(params)), overlap_(overlap) {
  NASH_CHECK(pg_, "GradReducer: the process group is null");
  NASH_CHECK(bucket_bytes > 0, "GradReducer: bucket_bytes must be positive");
  const int64_t n = static_cast<int64_t>(params_.size());
  bucket_of_.assign(params_.size(), -1);
  for (int64_t i = 0; i < n; ++i) {
    const Tensor& p = params_[static_cast<std::size_t>(i)];
    NASH_CHECK(p.defined() && p.requires_grad(), "GradReducer: parameter ", i, " is undefined or does not require "
               "grad");
    NASH_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, "GradReducer: parameter ", i,
               " must be float32 or float64, got ", p.str());
    NASH_CHECK(p.device() == pg_->device(), "GradReducer: parameter ", i, " is on ", p.device().str(),
               " but the group (", pg_->str(), ") works on ", pg_->device().str());
  }
  // Reverse registration order: backward reaches the last layers first. A bucket closes when the next parameter
  // would take it past bucket_bytes or has another dtype; a parameter larger than a bucket gets one to itself.
  std::size_t bytes = 0;
  DType dtype = DType::Float32;
  for (int64_t i = n - 1; i >= 0; --i) {
    const Tensor& p = params_[static_cast<std::size_t>(i)];
    const std::size_t pb = static_cast<std::size_t>(p.numel()) * element_size(p.dtype());
    if (buckets_.empty() || (bytes > 0 && bytes + pb > bucket_bytes) || p.dtype() != dtype) {
      buckets_.emplace_back();
      bytes = 0;
      dtype = p.dtype();
    }
    Bucket& b = buckets_.back();
    b.params.push_back(i);
    b.numel += p.numel();
    bytes += pb;
    bucket_of_[static_cast<std::size_t>(i)] = static_cast<int64_t>(buckets_.size()) - 1;
  }
  for (Bucket& b : buckets_)
    b.flat = zeros({b.numel}, params_[static_cast<std::size_t>(b.params[0])].dtype(), pg_->device());
  if (overlap_ && pg_->world_size() > 1)
    for (int64_t i = 0; i < n; ++i) {
      auto node = autograd::gradient_edge(params_[static_cast<std::size_t>(i)]);
      auto* acc = dynamic_cast<AccumulateGrad*>(node.get());
      NASH_CHECK(acc, "GradReducer: parameter ", i, " is not a leaf tensor");
      const int id = acc->add_post_hook([this, i] { on_ready(i); });
      hooks_.emplace_back(std::static_pointer_cast<void>(node), id);
    }
}

GradReducer::~GradReducer() {
  for (auto& h : hooks_) static_cast<AccumulateGrad*>(h.first.get())->remove_post_hook(h.second);
}

void GradReducer::prepare() {
  armed_ = overlap_ && pg_->world_size() > 1;
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.started = b.stale = false;
    b.work.reset();
  }
  ready_.assign(params_.size(), 0);
  next_to_start_ = 0;
  started_in_backward_ = 0;
}

void GradReducer::start(Bucket& b) {
  NoGradGuard ng;
  int64_t off = 0;
  for (int64_t i : b.params) {
    const Tensor& p = params_[static_cast<std::size_t>(i)];
    Tensor dst = b.flat.narrow(0, off, p.numel());
    Tensor g = p.grad();
    if (g.defined()) {
      NASH_CHECK(g.numel() == p.numel(), "GradReducer: the gradient of parameter ", i, " has ", g.numel(),
                 " elements, the parameter ", p.numel());
      dst.copy_(g.detach().reshape({p.numel()}));
    } else {
      dst.fill_(0.0);  // not reached by this pass: a zero gradient, the same on every rank
    }
    off += p.numel();
  }
  b.work = pg_->all_reduce_sum_async(b.flat);
  b.started = true;
}

void GradReducer::launch_ready_in_order() {
  while (next_to_start_ < num_buckets() && buckets_[static_cast<std::size_t>(next_to_start_)].pending == 0) {
    start(buckets_[static_cast<std::size_t>(next_to_start_)]);
    ++started_in_backward_;
    ++next_to_start_;
  }
  for (Bucket& b : buckets_)
    if (b.work) b.work->poll();
}

void GradReducer::on_ready(int64_t param) {
  if (!armed_) return;
  Bucket& b = buckets_[static_cast<std::size_t>(bucket_of_[static_cast<std::size_t>(param)])];
  char& seen = ready_[static_cast<std::size_t>(param)];
  if (seen) {
    // A second backward pass before finish() (gradient accumulation): the gradient changed after it was counted,
    // so a bucket already sent is stale and goes again at finish().
    if (b.started) b.stale = true;
    return;
  }
  seen = 1;
  if (--b.pending == 0) launch_ready_in_order();
}

void GradReducer::finish() {
  const bool was_armed = armed_;
  armed_ = false;
  if (pg_->world_size() == 1) return;  // the local gradients are the average
  if (!was_armed) prepare(), armed_ = false;
  for (; next_to_start_ < num_buckets(); ++next_to_start_) start(buckets_[static_cast<std::size_t>(next_to_start_)]);
  for (Bucket& b : buckets_)  // in bucket order, the same on every rank (each rank saw the same passes)
    if (b.stale) {
      b.work->wait();
      start(b);
      b.stale = false;
    }
  NoGradGuard ng;
  const double inv = 1.0 / static_cast<double>(pg_->world_size());
  for (Bucket& b : buckets_) {
    b.work->wait();
    b.work.reset();
    b.flat.mul_(inv);
    int64_t off = 0;
    for (int64_t i : b.params) {
      Tensor p = params_[static_cast<std::size_t>(i)];
      Tensor src = b.flat.narrow(0, off, p.numel()).reshape(p.shape());
      Tensor g = p.grad();
      if (g.defined() && g.is_contiguous())
        g.copy_(src);
      else
        p.set_grad(src.clone());
      off += p.numel();
    }
  }
}

// ---- GanDataParallel -----------------------------------------------------------------------------------------------

void abort_job(int code) {
  if (launch_info().world_size <= 1) return;
  std::fflush(nullptr);
  detail::mpi_abort(code);
  std::_Exit(code);
}

double mean_over_ranks(ProcessGroup& pg, double v) {
  if (pg.world_size() == 1) return v;
  Tensor t = full({1}, v, DType::Float64, Device::cpu());
  if (pg.device() != Device::cpu()) t = t.to(pg.device());
  pg.all_reduce_sum(t);
  return t.item() / static_cast<double>(pg.world_size());
}

GanDataParallel::GanDataParallel(std::shared_ptr<ProcessGroup> pg, nn::Module& generator, nn::Module& discriminator,
                                 bool sync_bn, std::size_t bucket_bytes, bool overlap)
    : pg_(std::move(pg)), g_module_(generator), d_module_(discriminator) {
  NASH_CHECK(pg_, "GanDataParallel: the process group is null");
  broadcast_module(*pg_, generator);
  broadcast_module(*pg_, discriminator);
  if (sync_bn && pg_->world_size() > 1) {
    sync_batch_norm(generator, pg_);
    sync_batch_norm(discriminator, pg_);
  }
  g_ = std::make_unique<GradReducer>(pg_, generator.parameters(), bucket_bytes, overlap);
  d_ = std::make_unique<GradReducer>(pg_, discriminator.parameters(), bucket_bytes, overlap);
}

void GanDataParallel::configure(optim::GanTrainerOptions& o) {
  if (pg_->world_size() == 1) return;
  GradReducer* g = g_.get();
  GradReducer* d = d_.get();
  o.before_backward = [g, d](char who) { (who == 'D' ? d : g)->prepare(); };
  o.after_backward = [g, d](char who) { (who == 'D' ? d : g)->finish(); };
  ProcessGroup* pg = pg_.get();
  o.reduce_scalar = [pg](double v) { return mean_over_ranks(*pg, v); };
  o.shard_rank = pg_->rank();
  o.shard_count = pg_->world_size();
}

void GanDataParallel::check(const std::string& when) {
  check_replicas(*pg_, g_module_, "generator " + when);
  check_replicas(*pg_, d_module_, "discriminator " + when);
}

}  // namespace dist
}  // namespace nash

// ---- backends this build lacks: clear errors instead of link failures ---------------------------------------------

namespace nash {
namespace dist {
namespace detail {
#ifndef NASH_WITH_MPI
std::shared_ptr<ProcessGroup> make_mpi_group() { nash::detail::fail("dist: this nash was built without MPI"); }
bool mpi_rank_world(int*, int*) { return false; }
void mpi_abort(int) {}
void mpi_broadcast_bytes(void*, int) { nash::detail::fail("dist: this nash was built without MPI"); }
#endif
#ifndef NASH_WITH_NCCL
std::shared_ptr<ProcessGroup> make_nccl_group(Device, const LaunchInfo&) {
  nash::detail::fail("dist: this nash was built without NCCL");
}
#endif
}  // namespace detail
}  // namespace dist
}  // namespace nash
