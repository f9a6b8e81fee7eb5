// The NCCL process group: one communicator over the launched ranks, CUDA tensors. nash's kernels run on the
// default stream; the collectives run on a stream of their own, ordered after the work that produced their input
// by an event, and the default stream waits for them by another event, so the host never blocks on a collective
// (except all_gather, which returns host values) and a bucket's reduction overlaps the rest of the backward pass.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "dist/backends.h"
#include "nash/core/error.h"

namespace nash {
namespace dist {
namespace detail {

namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) nash::detail::fail("dist nccl: ", what, " failed: ", cudaGetErrorString(e));
}
void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) nash::detail::fail("dist nccl: ", what, " failed: ", ncclGetErrorString(r));
}

ncclDataType_t nccl_type(const Tensor& t) { return t.dtype() == DType::Float64 ? ncclFloat64 : ncclFloat32; }

// The unique id from rank 0 to the others: over MPI when nash has it and the launcher is MPI's, else through a file.
ncclUniqueId exchange_id(const LaunchInfo& info) {
  ncclUniqueId id{};
  if (info.rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  if (info.world_size == 1) return id;
#ifdef NASH_WITH_MPI
  if (info.source != "NASH_RANK/NASH_WORLD_SIZE") {
    int rank = 0, world = 1;
    mpi_rank_world(&rank, &world);
    NASH_CHECK(rank == info.rank && world == info.world_size, "dist nccl: MPI says rank ", rank, " of ", world,
               " but the launcher's variables (", info.source, ") say ", info.rank, " of ", info.world_size);
    mpi_broadcast_bytes(&id, static_cast<int>(sizeof(id)));
    return id;
  }
#endif
  const char* path = std::getenv("NASH_DIST_ID_FILE");
  NASH_CHECK(path && *path, "dist nccl: ", info.world_size, " ranks need the NCCL id passed from rank 0: launch "
             "with mpirun (nash built with MPI) or set NASH_DIST_ID_FILE to a fresh path on a file system all "
             "ranks see");
  if (info.rank == 0) {
    const std::string tmp = std::string(path) + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char*>(&id), sizeof(id));
      NASH_CHECK(f.good(), "dist nccl: cannot write the NCCL id to ", tmp);
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    NASH_CHECK(!ec, "dist nccl: cannot move ", tmp, " to ", path, ": ", ec.message());
    return id;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  for (;;) {
    std::ifstream f(path, std::ios::binary);
    if (f && f.read(reinterpret_cast<char*>(&id), sizeof(id))) return id;
    NASH_CHECK(std::chrono::steady_clock::now() < deadline, "dist nccl: rank ", info.rank, " waited 300 s for "
               "rank 0 to write the NCCL id to ", path);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

class NcclWork : public Work {
 public:
  explicit NcclWork(cudaEvent_t done) : done_(done) {}
  ~NcclWork() override {
    if (done_) cudaEventDestroy(done_);
  }
  // The default stream (nash's) waits for the collective; the host goes on.
  void wait() override {
    check_cuda(cudaStreamWaitEvent(nullptr, done_, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(done_);
    done_ = nullptr;
  }

 private:
  cudaEvent_t done_;
};

class NcclGroup : public ProcessGroup {
 public:
  NcclGroup(Device d, const LaunchInfo& info) : ProcessGroup(Backend::NCCL, info.rank, info.world_size, d) {
    check_cuda(cudaSetDevice(d.index), "cudaSetDevice");
    const ncclUniqueId id = exchange_id(info);
    check_nccl(ncclCommInitRank(&comm_, info.world_size, id, info.rank), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }
  ~NcclGroup() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  void all_reduce_sum(Tensor& t) override { all_reduce_sum_async(t)->wait(); }
  std::unique_ptr<Work> all_reduce_sum_async(Tensor& t) override {
    check_tensor("all_reduce_sum", t);
    enter();
    check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<std::size_t>(t.numel()), nccl_type(t), ncclSum,
                             comm_, stream_),
               "ncclAllReduce");
    return leave();
  }
  void broadcast(Tensor& t, int root) override {
    check_tensor("broadcast", t);
    NASH_CHECK(root >= 0 && root < world_size(), "dist nccl broadcast: root ", root, " is not a rank of ", str());
    enter();
    check_nccl(ncclBroadcast(t.raw_data(), t.raw_data(), static_cast<std::size_t>(t.numel()), nccl_type(t), root,
                             comm_, stream_),
               "ncclBroadcast");
    leave()->wait();
  }
  void abort(int code) override {
    if (world_size() == 1) return;
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_abort(code);
    std::_Exit(code);
  }
  void barrier() override {
    double v = 0;
    all_gather(v);
  }
  std::vector<double> all_gather(double v) override {
    const std::size_t n = static_cast<std::size_t>(world_size());
    double* buf = nullptr;
    check_cuda(cudaMalloc(&buf, (n + 1) * sizeof(double)), "cudaMalloc");
    std::vector<double> out(n);
    try {
      check_cuda(cudaMemcpy(buf + n, &v, sizeof(double), cudaMemcpyHostToDevice), "cudaMemcpy");
      check_nccl(ncclAllGather(buf + n, buf, 1, ncclFloat64, comm_, stream_), "ncclAllGather");
      check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      check_cuda(cudaMemcpy(out.data(), buf, n * sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy");
    } catch (...) {
      cudaFree(buf);
      throw;
    }
    cudaFree(buf);
    return out;
  }

 private:
  // The collective stream waits for what the default stream has queued so far (the input's producers).
  void enter() {
    cudaEvent_t ready;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(ready, nullptr), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(ready);
  }
  std::unique_ptr<Work> leave() {
    cudaEvent_t done;
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(done, stream_), "cudaEventRecord");
    return std::make_unique<NcclWork>(done);
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::shared_ptr<ProcessGroup> make_nccl_group(Device device, const LaunchInfo& info) {
  return std::make_shared<NcclGroup>(device, info);
}

}  // namespace detail
}  // namespace dist
}  // namespace nash
