// How many CPU threads nash's kernels use: the OpenMP teams and the BLAS together (like torch::set_num_threads).
#pragma once

namespace nash {

// n >= 1. Sets the OpenMP team size for the whole process. OpenBLAS, when nash uses it, always runs single-threaded
// inside nash's own OpenMP teams (a large GEMM is split across the team), so this one count governs every kernel.
void set_num_threads(int n);
int get_num_threads();

// Sets the thread count for a scope (n <= 0: leaves it alone) and restores the previous one on exit.
class NumThreadsGuard {
 public:
  explicit NumThreadsGuard(int n) : prev_(get_num_threads()), active_(n > 0) {
    if (active_) set_num_threads(n);
  }
  ~NumThreadsGuard() {
    if (active_) set_num_threads(prev_);
  }
  NumThreadsGuard(const NumThreadsGuard&) = delete;
  NumThreadsGuard& operator=(const NumThreadsGuard&) = delete;

 private:
  int prev_;
  bool active_;
};

}  // namespace nash
