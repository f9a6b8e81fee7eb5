// nash_dist_tests: the data-parallel tests that need several processes. ctest runs it under
// `mpirun --oversubscribe -np 2` (and once alone: a world of one, where the NCCL test runs when a GPU answers).
// Every rank runs every test; only rank 0 prints GoogleTest's report, and a failure on any rank fails mpirun.
#include <gtest/gtest.h>

#include "tests/mpi/world.h"

namespace nash {
namespace testing_mpi {

std::shared_ptr<dist::ProcessGroup>& world() {
  static std::shared_ptr<dist::ProcessGroup> g;
  return g;
}

}  // namespace testing_mpi
}  // namespace nash

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const nash::dist::LaunchInfo info = nash::dist::launch_info();
  nash::testing_mpi::world() = nash::dist::backend_available(nash::dist::Backend::MPI)
                                   ? nash::dist::init_process_group(nash::dist::Backend::MPI)
                                   : nash::dist::local_group();
  if (info.rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  nash::testing_mpi::world().reset();
  return rc;
}
