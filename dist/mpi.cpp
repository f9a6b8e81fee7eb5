// The MPI process group: MPI_COMM_WORLD, CPU tensors, blocking and non-blocking (MPI_Iallreduce) collectives.
// The C API only (Open MPI and MPICH would otherwise pull in their deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdlib>
#include <mutex>

#include "dist/backends.h"
#include "nash/core/error.h"

namespace nash {
namespace dist {
namespace detail {

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  nash::detail::fail("dist mpi: ", what, " failed: ", std::string(msg, static_cast<std::size_t>(len)));
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// MPI_Init once per process (MPI cannot be initialised again after MPI_Finalize). Errors come back as codes, so
// nash can turn them into nash::Error instead of MPI aborting the job.
void ensure_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      std::atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  });
}

MPI_Datatype mpi_type(const Tensor& t) { return t.dtype() == DType::Float64 ? MPI_DOUBLE : MPI_FLOAT; }

int mpi_count(const Tensor& t) {
  NASH_CHECK(t.numel() <= static_cast<int64_t>(2147483647), "dist mpi: a tensor of ", t.numel(),
             " elements is beyond one MPI message; use smaller buckets");
  return static_cast<int>(t.numel());
}

class MpiWork : public Work {
 public:
  MpiWork(MPI_Request r, Tensor keep) : req_(r), keep_(std::move(keep)) {}
  ~MpiWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override { check_mpi(MPI_Wait(&req_, MPI_STATUS_IGNORE), "MPI_Wait (all-reduce)"); }
  void poll() override {
    int done = 0;
    if (req_ != MPI_REQUEST_NULL) check_mpi(MPI_Test(&req_, &done, MPI_STATUS_IGNORE), "MPI_Test (all-reduce)");
  }

 private:
  MPI_Request req_;
  Tensor keep_;  // the buffer stays alive until the collective is done
};

class MpiGroup : public ProcessGroup {
 public:
  MpiGroup(int rank, int world) : ProcessGroup(Backend::MPI, rank, world, Device::cpu()) {}

  void all_reduce_sum(Tensor& t) override {
    check_tensor("all_reduce_sum", t);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), mpi_count(t), mpi_type(t), MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }
  std::unique_ptr<Work> all_reduce_sum_async(Tensor& t) override {
    check_tensor("all_reduce_sum_async", t);
    MPI_Request r = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), mpi_count(t), mpi_type(t), MPI_SUM, MPI_COMM_WORLD, &r),
              "MPI_Iallreduce");
    return std::make_unique<MpiWork>(r, t);
  }
  void broadcast(Tensor& t, int root) override {
    check_tensor("broadcast", t);
    NASH_CHECK(root >= 0 && root < world_size(), "dist mpi broadcast: root ", root, " is not a rank of ", str());
    check_mpi(MPI_Bcast(t.raw_data(), mpi_count(t), mpi_type(t), root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  void abort(int code) override {
    if (world_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::vector<double> all_gather(double v) override {
    std::vector<double> out(static_cast<std::size_t>(world_size()));
    check_mpi(MPI_Allgather(&v, 1, MPI_DOUBLE, out.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
    return out;
  }
};

}  // namespace

bool mpi_rank_world(int* rank, int* world) {
  ensure_init();
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, world), "MPI_Comm_size");
  return true;
}

void mpi_broadcast_bytes(void* data, int bytes) {
  ensure_init();
  check_mpi(MPI_Bcast(data, bytes, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast (bytes)");
}

void mpi_abort(int code) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

std::shared_ptr<ProcessGroup> make_mpi_group() {
  int rank = 0, world = 1;
  mpi_rank_world(&rank, &world);
  const LaunchInfo info = launch_info();
  NASH_CHECK(info.world_size == 1 || info.world_size == world, "dist mpi: the launcher says ", info.world_size,
             " processes (", info.source, ") but MPI_COMM_WORLD has ", world);
  return std::make_shared<MpiGroup>(rank, world);
}

}  // namespace detail
}  // namespace dist
}  // namespace nash
