// `nash mixture`: a small MLP GAN on the 8-Gaussian ring, as a library function (tests) and a subcommand.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "nash/metrics/mode_coverage.h"

namespace nash {
namespace apps {

struct MixtureConfig {
  int64_t steps = 5000;        // generator updates (one D update before each)
  int64_t batch = 256;
  double lr_d = 1e-3;
  double lr_g = 1e-3;
  double beta1 = 0.5;
  double beta2 = 0.999;
  int64_t z_dim = 2;
  int64_t hidden = 128;        // width of each of the 3 hidden layers in G and D
  uint64_t seed = 0;
  std::string out_dir = "./out/mixture";  // empty: write no files
  int64_t eval_samples = 2000;
  int64_t log_every = 10;      // rows of metrics.csv: steps log_every, 2*log_every, ..., and the last step
  bool quiet = false;          // no progress bar and no summary on stdout
  // OpenMP threads for nash's CPU kernels while training (0: leave the process setting). This model's tensors are
  // too small to gain from threads, and spinning OpenMP workers on a busy machine slow it down many times over.
  int threads = 1;
};

struct MixtureLogRow {
  int64_t step;
  double d_loss, g_loss;
};

struct MixtureResult {
  metrics::ModeCoverage coverage;  // of eval_samples generated points against the ring's modes
  std::vector<MixtureLogRow> log;
  std::vector<float> samples;      // eval_samples x 2, row-major
  double train_seconds = 0;        // the training loop alone
  double wall_seconds = 0;         // everything, evaluation and files included
};

// An output path that cannot be created or written: reported with exit code 2 by run_mixture.
struct OutputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Trains and evaluates; throws nash::Error (bad config, non-finite loss) or OutputError. Seeds nash's default
// generator with cfg.seed, so equal configs give equal results.
MixtureResult train_mixture(const MixtureConfig& cfg);

// The subcommand: parses argv[first..argc), trains, prints the summary and returns the exit code
// (0 ok, 1 runtime failure, 2 bad flags or unwritable output directory).
int run_mixture(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
