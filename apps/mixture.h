// `nash mixture`: a small MLP GAN on a 2-D Gaussian mixture (8-mode ring or 5x5 grid), as a library function
// (tests, `nash sweep`) and a subcommand.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "nash/data/synthetic.h"
#include "nash/dist/dist.h"
#include "nash/metrics/mode_coverage.h"
#include "nash/nn/losses.h"

namespace nash {
namespace apps {

enum class MixtureDist { Ring, Grid };
enum class MixtureLoss { NS, Hinge, WganGP, LS };
enum class MixtureOptimizer { SGDA, Adam, NSGDA, AdaNSGDA, AdaDir };
// D's normalization and regularizer (the SN-GAN paper's baselines). DReg::Default: the gradient penalty with the
// wgan-gp loss, none otherwise (so wgan-gp with --d-reg none and --d-clip is the original WGAN).
enum class MixtureDNorm { None, SN, WN, BN };
enum class MixtureDReg { Default, None, GP, R1, Ortho };

// Command-line names ("ring", "ns", "wgan-gp", "ada-nsgda", ...) and back; parse_* throw nash::Error listing the
// choices.
const char* mixture_name(MixtureDist d);
const char* mixture_name(MixtureLoss l);
const char* mixture_name(MixtureOptimizer o);
const char* mixture_name(MixtureDNorm n);
const char* mixture_name(MixtureDReg r);
MixtureDist parse_mixture_dist(const std::string& name);
MixtureLoss parse_mixture_loss(const std::string& name);
MixtureOptimizer parse_mixture_optimizer(const std::string& name);
MixtureDNorm parse_mixture_d_norm(const std::string& name);
MixtureDReg parse_mixture_d_reg(const std::string& name);

// The trainer's loss of each choice (wgan-gp: Wasserstein; its penalty is MixtureDReg's).
nn::GanLoss mixture_gan_loss(MixtureLoss l);

// The generator's learning rate when none is given (the discriminator's default is twice it).
double mixture_default_lr(MixtureOptimizer o);

// The target distribution: ring of 8 (radius 2, std 0.02) or grid of 25 (5x5, spacing 2, std 0.05).
data::GaussianMixture2D mixture_distribution(MixtureDist d);
// Modes covered, high-quality share and KL of samples (N, 2) against d, within 3 of d's own std of a mode; a mode
// is covered when it holds at least 1% of the samples.
metrics::ModeCoverage mixture_coverage(const data::GaussianMixture2D& d, const Tensor& samples);

struct MixtureConfig {
  MixtureDist dist = MixtureDist::Ring;
  MixtureLoss loss = MixtureLoss::NS;    // wgan-gp: Wasserstein loss + gradient penalty gp_lambda; ls: LSGAN
  MixtureOptimizer optimizer = MixtureOptimizer::Adam;
  bool sn = false;                       // spectral normalization on every Linear of D (= d_norm SN)
  MixtureDNorm d_norm = MixtureDNorm::None;  // sn, wn (weight norm) on every Linear of D, or bn after its hidden ones
  MixtureDReg d_reg = MixtureDReg::Default;
  double reg_weight = -1;                // r1 and ortho (< 0: r1 10, ortho 1e-4); the gradient penalty uses gp_lambda
  double d_clip = 0;                     // > 0: clip D's parameters to [-d_clip, d_clip] after each D update
  int64_t steps = 5000;                  // generator updates (n_dis D updates before each)
  int64_t n_dis = 0;                     // D updates per G update; 0: 5 for wgan-gp, else 1
  int64_t batch = 256;
  double lr_d = 0;                       // 0: 2 * mixture_default_lr(optimizer) (TTUR)
  double lr_g = 0;                       // 0: mixture_default_lr(optimizer)
  double beta1 = 0.5;                    // Adam's betas, also the Adam oracle's of ada-nsgda and adadir
  double beta2 = 0.999;
  double gp_lambda = 10;                 // wgan-gp only
  int64_t z_dim = 2;
  int64_t hidden = 128;                  // width of each of the 3 hidden layers in G and D
  uint64_t seed = 0;
  std::string out_dir = "./out/mixture"; // empty: write no files
  bool plots = true;                     // samples.png and training.png beside the CSV files
  int64_t eval_samples = 2500;
  int64_t log_every = 10;                // rows of metrics.csv: steps log_every, 2*log_every, ..., and the last step
  bool quiet = false;                    // no progress bar and no summary on stdout
  // OpenMP threads for nash's CPU kernels while training (0: leave the process setting). This model's tensors are
  // small: on a quiet 2-core machine two threads take ~25% off a step (2.9 vs 3.9 ms at the defaults), but on a
  // busy one (a sweep, parallel tests) spinning OpenMP workers cost more than that, so one is the default.
  int threads = 1;
  // Data-parallel over the processes an MPI launcher started (`mpirun -np N nash mixture --distributed`): batch is
  // the global batch (divisible by N), each rank trains on its rows of it, rank 0 writes the outputs.
  bool distributed = false;
  bool sync_bn = true;  // distributed: batch norm over the global batch (else per rank)

  // n_dis and the learning rates filled in, every value checked (nash::Error).
  MixtureConfig resolved() const;
};

// metrics.csv's row: GanTrainer's StepStats averaged over the log_every steps up to `step`.
struct MixtureLogRow {
  int64_t step = 0;
  double d_loss = 0, g_loss = 0, penalty = 0;
  double grad_norm_d = 0, grad_norm_g = 0;
  double update_norm_d = 0, update_norm_g = 0;
  double update_ratio = 0;  // ‖ΔG‖ / ‖ΔD‖ of each step (G's update against D's last one), averaged
};

struct MixtureResult {
  MixtureConfig config;            // resolved
  metrics::ModeCoverage coverage;  // of eval_samples generated points
  std::vector<MixtureLogRow> log;
  std::vector<float> samples;      // eval_samples x 2, row-major
  std::vector<float> params_g, params_d;  // the final parameters, concatenated in registration order
  int world_size = 1;              // processes that trained (distributed)
  double train_seconds = 0;        // the training loop alone
  double wall_seconds = 0;         // everything, evaluation and files included
};

// An output path that cannot be created or written: reported with exit code 2 by run_mixture.
using OutputError = cli::OutputError;

// Trains and evaluates; throws nash::Error (bad config, non-finite loss) or OutputError. Seeds nash's default
// generator with cfg.seed, so equal configs give equal results. Writes samples.csv, metrics.csv, summary.json,
// samples.png and training.png to cfg.out_dir when it is set.
// With a process group (or cfg.distributed, which makes one from the launcher's environment), trains data-parallel
// over its ranks: the result equals a single process's on the same global batch up to float32 summation order, and
// only rank 0 writes files.
MixtureResult train_mixture(const MixtureConfig& cfg, std::shared_ptr<dist::ProcessGroup> group = nullptr);

// What a batch run reports per configuration.
struct MixtureRunRecord {
  bool ok = false;                 // false: training failed (diverged); the metrics are then zero
  int64_t num_modes = 0, modes_covered = 0;
  double high_quality_share = 0, kl_uniform = 0;
  double train_seconds = 0, wall_seconds = 0;
  std::string error;               // why it failed
};

// Runs every config on up to `jobs` worker processes at a time (jobs <= 1: one after another in this process).
// Each run is a separate process forked from this one, seeded by its config alone and single-threaded, so the
// records (in the order of runs) do not depend on jobs. Bad configs throw before anything runs.
// on_done (optional) is called in this process as each run finishes, in completion order.
std::vector<MixtureRunRecord> run_mixture_batch(
    const std::vector<MixtureConfig>& runs, int jobs,
    const std::function<void(std::size_t index, const MixtureRunRecord& record)>& on_done = {});

// Mean and sample standard deviation (0 for one value); the mean of no values is NaN.
struct MeanStd {
  double mean = 0, std = 0;
  int64_t n = 0;
};
MeanStd mean_std(const std::vector<double>& v);

// The subcommand: parses argv[first..argc), trains, prints the summary and returns the exit code
// (0 ok, 1 runtime failure, 2 bad flags or unwritable output directory).
int run_mixture(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
