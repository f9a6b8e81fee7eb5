// Constructors of the communication backends, each in its own translation unit (compiled only when its library was
// found), for dist.cpp's init_process_group.
#pragma once
#include <memory>

#include "nash/dist/dist.h"

namespace nash {
namespace dist {
namespace detail {

// MPI_COMM_WORLD as a process group for CPU tensors (MPI_Init on first call, MPI_Finalize at exit).
std::shared_ptr<ProcessGroup> make_mpi_group();
// Rank and world size from MPI (initialising it), for NCCL's bootstrap; false when nash was built without MPI.
bool mpi_rank_world(int* rank, int* world);
// Broadcasts `bytes` bytes from rank 0 over MPI_COMM_WORLD (NCCL's unique id).
void mpi_broadcast_bytes(void* data, int bytes);
// MPI_Abort(MPI_COMM_WORLD, code) when MPI is initialised; returns otherwise (and without MPI).
void mpi_abort(int code);

// A NCCL communicator over `world` ranks for tensors on a CUDA device.
std::shared_ptr<ProcessGroup> make_nccl_group(Device device, const LaunchInfo& info);

}  // namespace detail
}  // namespace dist
}  // namespace nash
