// The process group of nash_dist_tests (MPI_COMM_WORLD when nash has MPI, else a world of one).
#pragma once
#include <memory>

#include "nash/dist/dist.h"

namespace nash {
namespace testing_mpi {
std::shared_ptr<dist::ProcessGroup>& world();
}  // namespace testing_mpi
}  // namespace nash
