// What the micro-benchmark families (nash_bench_conv, _matmul, _elementwise, _gan_ops) share: the device of a
// case and its skip when no device answers, a per-iteration timer, the timed loop over rotating inputs, and the
// binaries' own flags. Every case runs under UseManualTime(): on the CPU the time is the host clock around the
// call; on CUDA it is a pair of CUDA events on the default stream (where nash launches) when the bench is built
// against the CUDA runtime, so the rate counters divide by device time, not by launch-queue time.
#pragma once
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <nash/nash.h>

#ifdef NASH_BENCH_CUDA_EVENTS
#include <cuda_runtime.h>
#endif

namespace nash_bench {

// Input sets the timed calls rotate through, so a small case does not find its operands in cache from the call
// before (the device's L2 or the CPU's last-level cache).
constexpr int kSets = 3;

// kSets distinct tensors of `shape` on d: one N(0, scale²) draw, its negation and its half. Drawing each set would
// make a large case's setup take several times longer than its timed calls.
inline std::vector<nash::Tensor> rotating_randn(const nash::Shape& shape, nash::Device d, double scale = 1.0) {
  nash::NoGradGuard no_grad;
  nash::Tensor x = nash::randn(shape, nash::DType::Float32, d);
  if (scale != 1.0) x = x * scale;
  static_assert(kSets == 3, "rotating_randn makes three sets");
  return {x, x * -1.0, x * 0.5};
}

// kSets real batches (32x32x1 images, N(0, 1) clamped to [-1, 1]) and latent batches (N, z_dim) on d, drawn in
// turn, for the training-step benches: next_real() and next_z() cycle through them independently (a step with
// n_dis D updates draws n_dis real batches and n_dis + 1 latent ones).
struct GanBatches {
  std::vector<nash::Tensor> reals, zs;
  int drawn_reals = 0, drawn_zs = 0;
  nash::Tensor next_real() { return reals[drawn_reals++ % kSets]; }
  nash::Tensor next_z() { return zs[drawn_zs++ % kSets]; }
};
inline GanBatches gan_batches(int64_t batch, int64_t z_dim, nash::Device d) {
  GanBatches b;
  for (int i = 0; i < kSets; ++i) {
    b.reals.push_back(nash::clamp(nash::randn({batch, 1, 32, 32}), -1, 1).to(d));
    b.zs.push_back(nash::randn({batch, z_dim}).to(d));
  }
  return b;
}

// Skips a CUDA case with the reason when no device answers; true when the case can run.
inline bool usable(benchmark::State& state, nash::Device d) {
  if (d.is_cuda() && !nash::cuda::is_available()) {
    const std::string reason = nash::cuda::unavailable_reason();  // may already say "no CUDA device"
    state.SkipWithError((reason.rfind("no CUDA device", 0) == 0 ? reason : "no CUDA device: " + reason).c_str());
    return false;
  }
  return true;
}

inline void sync(nash::Device d) {
  if (d.is_cuda()) nash::cuda::synchronize();
}

// Seconds of one call: start(), the work, stop().
class IterationTimer {
 public:
  explicit IterationTimer(nash::Device d) : cuda_(d.is_cuda()) {
#ifdef NASH_BENCH_CUDA_EVENTS
    if (cuda_) {
      check(cudaEventCreate(&start_), "cudaEventCreate");
      check(cudaEventCreate(&stop_), "cudaEventCreate");
    }
#endif
  }
  ~IterationTimer() {
#ifdef NASH_BENCH_CUDA_EVENTS
    if (start_) cudaEventDestroy(start_);
    if (stop_) cudaEventDestroy(stop_);
#endif
  }
  IterationTimer(const IterationTimer&) = delete;
  IterationTimer& operator=(const IterationTimer&) = delete;

  void start() {
#ifdef NASH_BENCH_CUDA_EVENTS
    if (cuda_) {
      check(cudaEventRecord(start_, 0), "cudaEventRecord");
      return;
    }
#endif
    if (cuda_) nash::cuda::synchronize();  // without events: host clock between two device drains
    t0_ = std::chrono::steady_clock::now();
  }
  double stop() {
#ifdef NASH_BENCH_CUDA_EVENTS
    if (cuda_) {
      check(cudaEventRecord(stop_, 0), "cudaEventRecord");
      check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
      return ms * 1e-3;
    }
#endif
    if (cuda_) nash::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
#ifdef NASH_BENCH_CUDA_EVENTS
  static void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
  }
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
#endif
  bool cuda_;
  std::chrono::steady_clock::time_point t0_;
};

// Runs f untimed (once per input set on CUDA, where the first calls pick cuDNN's algorithms and fill the caching
// allocator; once on the CPU, where a call can take a second), then the timed loop with k cycling through the
// sets. An exception (e.g. an op a backend lacks) skips the case with its message instead of aborting the binary.
template <class F>
void timed_loop(benchmark::State& state, nash::Device d, F&& f) {
  try {
    for (int k = 0; k < (d.is_cuda() ? kSets : 1); ++k) f(k);
    sync(d);
    IterationTimer timer(d);
    int i = 0;
    for (auto _ : state) {
      timer.start();
      f(i++ % kSets);
      state.SetIterationTime(timer.stop());
    }
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    state.SkipWithError(msg.substr(0, msg.find('\n')).c_str());
  }
}

// A rate counter: `work` (flops or bytes) per iteration, divided by the (manual) time.
inline benchmark::Counter rate(double work) {
  return benchmark::Counter(work, benchmark::Counter::kIsIterationInvariantRate);
}

// Takes "--name=value" out of argv (before benchmark::Initialize sees it); def when absent.
inline int64_t take_flag(int* argc, char** argv, const char* name, int64_t def) {
  const std::string prefix = std::string("--") + name + "=";
  int64_t value = def;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      char* end = nullptr;
      value = std::strtoll(argv[i] + prefix.size(), &end, 10);
      if (end == argv[i] + prefix.size() || *end != '\0')
        throw std::invalid_argument("bad value in " + std::string(argv[i]) + " (an integer is expected)");
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  argv[out] = nullptr;
  return value;
}

// Context lines every family prints above its table.
inline void add_context() {
  benchmark::AddCustomContext("nash_cpu_threads", std::to_string(nash::get_num_threads()));
  benchmark::AddCustomContext("nash_cuda", nash::cuda::is_available()
                                               ? std::to_string(nash::cuda::device_count()) + " device(s)" +
                                                     (nash::cuda::cudnn_available() ? ", cuDNN" : ", no cuDNN")
                                               : nash::cuda::unavailable_reason());
#ifdef NASH_BENCH_CUDA_EVENTS
  benchmark::AddCustomContext("nash_cuda_timing", "CUDA events");
#else
  benchmark::AddCustomContext("nash_cuda_timing", "host clock around cuda::synchronize()");
#endif
}

// main() of a family: its own flags (listed by --help above Google Benchmark's), the cases register_all adds
// from them, then Google Benchmark's flags and run.
inline int run_main(int argc, char** argv, const char* family_flags, void (*register_all)(int*, char**)) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0) std::printf("%s flags:\n%s\n", argv[0], family_flags);
  try {
    register_all(&argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  add_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace nash_bench
