// `nash fmnist`: image GANs on Fashion-MNIST (DCGAN, SN-GAN with the hinge loss, WGAN-GP, a ProGAN-style
// equalized-LR pair, the ResNet WGAN-GP) with sample grids, a metrics CSV, checkpoints and exact resume, and FID on
// the Fashion-MNIST classifier's features. A library function (tests, batch runs) and a subcommand.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli.h"
#include "nash/dist/dist.h"
#include "nash/io/png.h"
#include "nash/nn/layers.h"
#include "nash/metrics/kid.h"
#include "nash/metrics/precision_recall.h"
#include "nash/optim/gan_trainer.h"

namespace nash {
namespace apps {

enum class FmnistArch { DCGAN, SNGAN, WganGP, ProGAN, ResNet };
enum class FmnistOptimizer { Default, Adam, SGDA, NSGDA, AdaNSGDA, AdaDir, LREQAdam };
enum class FmnistPreset { Quick, Full };
// D's normalization and regularizer (the SN-GAN paper's comparisons). Default: the architecture's (dcgan: batch norm,
// no regularizer; sngan: spectral norm, none; wgan-gp, progan and resnet: none, gradient penalty).
enum class FmnistDNorm { Default, None, BN, SN, WN };
enum class FmnistDReg { Default, None, GP, R1, Ortho };
// The GAN loss; Default: the architecture's (dcgan ns, sngan hinge, wgan-gp, progan and resnet wasserstein).
enum class FmnistLoss { Default, NS, Hinge, Wasserstein, LS };

// Command-line names ("dcgan", "wgan-gp", "ada-nsgda", "quick", ...) and back; parse_* throw nash::Error listing the
// choices.
const char* fmnist_name(FmnistArch a);
const char* fmnist_name(FmnistOptimizer o);
const char* fmnist_name(FmnistPreset p);
const char* fmnist_name(FmnistDNorm n);
const char* fmnist_name(FmnistDReg r);
const char* fmnist_name(FmnistLoss l);
FmnistArch parse_fmnist_arch(const std::string& name);
FmnistOptimizer parse_fmnist_optimizer(const std::string& name);
FmnistPreset parse_fmnist_preset(const std::string& name);
FmnistDNorm parse_fmnist_d_norm(const std::string& name);
FmnistDReg parse_fmnist_d_reg(const std::string& name);
FmnistLoss parse_fmnist_loss(const std::string& name);

// Every field left at 0 (or Default, or a negative beta) takes the architecture's and the preset's value in
// resolved(); the table is in `nash fmnist --help` and docs/RESULTS.md.
struct FmnistConfig {
  FmnistArch arch = FmnistArch::DCGAN;
  FmnistPreset preset = FmnistPreset::Quick;
  FmnistOptimizer opt_d = FmnistOptimizer::Default;  // Default: Adam (the architecture's betas)
  FmnistOptimizer opt_g = FmnistOptimizer::Default;
  int64_t steps = 0;      // generator updates in all (a resumed run continues up to this step)
  int64_t n_dis = 0;      // D updates per G update (wgan-gp and resnet: 5, else 1)
  int64_t batch = 0;      // quick and full: 64
  int64_t width = 0;      // channels of D's first conv and G's last hidden layer; resnet: of every block (quick 32,
                          // full 64)
  int64_t z_dim = 0;      // 100 (progan and resnet 128)
  // resnet: a self-attention block in G and D on the feature maps of this side (8 or 16; nn::ResNetOptions::attention;
  // width a multiple of 8). 0: none.
  int64_t attention = 0;
  double lr_g = 0;        // the optimizer's default for the architecture
  double lr_d = 0;        // lr_g * ttur
  double ttur = 0;        // lr_d / lr_g when lr_d is not given (0: 1)
  double beta1 = -1, beta2 = -1;  // Adam's (and the Adam oracle's of ada-nsgda/adadir); < 0: the architecture's
  FmnistDNorm d_norm = FmnistDNorm::Default;  // bn/sn/wn wrap D's convs in DCGAN's shape; resnet: none, sn or wn
  FmnistLoss loss = FmnistLoss::Default;      // e.g. ls (LSGAN) or hinge for a DCGAN
  FmnistDReg d_reg = FmnistDReg::Default;
  double reg_weight = -1;  // the regularizer's weight (< 0: gp 10, r1 10, ortho 1e-4)
  double d_clip = 0;       // > 0: clip every D parameter to [-d_clip, d_clip] after each D update (WGAN)
  // > 0: also keep an exponential moving average of G's weights (nn::WeightEma with this decay and warm-up, batch
  // norm's statistics copied; ProGAN's 0.999), checkpointed with the run. Every FID and classifier score is then also
  // computed for the average (same latents), and samples_ema.png shows it. Training is unchanged.
  double g_ema = 0;
  // Class-conditional training (dcgan, sngan, wgan-gp): G with class-conditional batch norm (nn::ConditionalGenerator)
  // and a projection D (nn::ProjectionDiscriminator around the architecture's D; its class embedding spectrally
  // normalized when D's convs are) on the data's labels; G's classes drawn uniformly. Sample grids hold one row per
  // class (the same 8 latents across rows); each evaluation generates every class equally often and also reports the
  // class accuracy: the share of images the FID classifier assigns to the class they were generated for.
  bool conditional = false;
  // Non-empty: differentiable augmentation of every batch D sees (nn::diff_augment, Zhao et al. 2020), a policy
  // "color,translation,cutout" or a subset; for small training sets (--limit). resolved() writes it canonically.
  std::string diffaugment;
  // "linear": both players' learning rates decay linearly to 0 over the run, lr · max(0, 1 - t / steps) at G step t
  // (0-based; D's n_dis updates of that step share it), as Gulrajani et al. train the ResNet WGAN-GP. "none" (or
  // empty): constant. Extending a run's --steps on resume stretches the decay.
  std::string lr_decay = "none";
  uint64_t seed = 0;
  std::string device = "auto";  // cpu, cuda, cuda:N, auto
  std::string data_dir;         // empty: Debian's /usr/share/datasets/fashion-mnist
  int64_t limit = 0;            // > 0: train on the first `limit` training images only (tests, smoke runs)
  std::string out_dir = "out/fmnist";  // empty: write no files (and no checkpoints)
  std::string fid_net = "out/fmnist-classifier.safetensors";  // empty or missing file: no FID
  int64_t fid_samples = 0;      // generated images per FID (quick 5000, full 10000); real: the 10000 test images
  int64_t fid_every = 0;        // FID every N steps besides the final one (0: the preset's; < 0: final only)
  int64_t sample_every = 0;     // a sample grid every N steps (0: the preset's)
  int64_t checkpoint_every = 0; // a checkpoint every N steps besides the one at exit (0: the preset's)
  int64_t log_every = 0;        // rows of metrics.csv (0: the preset's)
  std::string resume;           // a checkpoint of an earlier run with the same model flags
  // Adaptive magnitudes ("Dissecting adaptive methods in GANs", Fig. 2b/c): for a player whose optimizer has Adam's
  // oracle (ada-nsgda, adadir), a row of magnitudes.csv per layer every N steps and at step 1 (0: the preset's:
  // quick 1, full 10), and magnitudes_d.png / magnitudes_g.png at the end.
  int64_t magnitudes_every = 0;
  // Non-empty: at the end of the run, each ada-nsgda player's mean ||A|| per layer over the whole run (Fig. 5's
  // calibration) goes to <calibrate_out>.d.txt / .g.txt (optim::save_calibration). Needs an ada-nsgda player.
  std::string calibrate_out;
  // Non-empty: an nsgda player's per-layer constant step sizes are lr * the file's value per layer
  // (optim::NSGDA::apply_calibration); that player's lr then defaults to the architecture's Adam rate (the
  // ada-nsgda default, so the steps have the calibrating run's mean norm per layer). Needs --opt-d/-g nsgda.
  std::string calibration_d, calibration_g;
  optim::NonFinitePolicy on_nonfinite = optim::NonFinitePolicy::Stop;
  int threads = 0;              // CPU threads (0: the process default)
  bool quiet = false;           // no progress and no summary on stdout
  bool plots = true;            // training.png
  bool handle_signals = false;  // SIGINT/SIGTERM: checkpoint and stop (the subcommand sets it)
  // Data-parallel over the processes an MPI launcher started (`mpirun -np N nash fmnist --distributed`): batch is the
  // global batch (divisible by N), each rank trains on its rows of it, rank 0 writes every file. With CUDA, rank r
  // uses cuda:(local rank mod the device count).
  bool distributed = false;
  bool sync_bn = true;          // distributed: batch norm over the global batch (else per process)
  int64_t interrupt_after = 0;  // > 0: stop as a signal would after this step (tests)

  // Defaults filled in, every value checked (nash::Error naming the field and the value).
  FmnistConfig resolved() const;
};

// The values an fmnist checkpoint records and a resumed run must share (arch, width, z_dim, attention, batch, n_dis,
// loss, optimizers, learning rates, betas, D's norm and regularizer, clipping, G's weight average, conditioning,
// seed, limit), as strings.
std::map<std::string, std::string> fmnist_model_metadata(const FmnistConfig& resolved);
// A config whose model flags come from a checkpoint's metadata (the subcommand's defaults when --resume is given;
// flags given on the command line then override). Errors name the file and a missing or bad key.
FmnistConfig fmnist_config_from_checkpoint(const std::string& path);

// Classes of Fashion-MNIST (a conditional run's G and D).
constexpr int64_t kFmnistClasses = 10;
// G of a config's architecture, width, latent size and conditioning (the rest is not read; a conditional G is an
// nn::ConditionalGenerator), freshly initialised; building it leaves the default random stream where it was (a second
// G, or one about to be loaded from a checkpoint).
std::shared_ptr<nn::Module> fmnist_generator(const FmnistConfig& c);
// G's images for latents z and (conditional G) labels y (undefined for an unconditional G).
Tensor fmnist_generate(nn::Module& g, const Tensor& z, const Tensor& y);

// Images (N, 1, H, W) in [-1, 1] as one grey picture: `cols` per row, `gap`-pixel grey gutters, each pixel drawn
// scale x scale (the sample grids; one image with cols 1, scale 1 and gap 0 is that image; non-finite values are drawn
// black).
io::Image fmnist_grid_image(const Tensor& images, int64_t cols, int scale, int64_t gap = 2);

struct FmnistLogRow {
  int64_t step = 0;
  double d_loss = 0, g_loss = 0, penalty = 0;
  double grad_norm_d = 0, grad_norm_g = 0, update_norm_d = 0, update_norm_g = 0, update_ratio = 0;
  double grad_ratio = 0;   // ‖g_G‖/‖g_G⁽⁰⁾‖ + ‖g_D‖/‖g_D⁽⁰⁾‖ ("Dissecting adaptive methods" Fig. 1b's convergence measure)
  int64_t skipped = 0;     // updates skipped for non-finite values in these steps
  double step_seconds = 0; // mean wall time of one step
};

// One layer's norms at one step, for a player whose optimizer has Adam's oracle A (magnitudes.csv).
struct FmnistMagnitudeRow {
  int64_t step = 0;
  char player = 'D';      // 'D' or 'G'
  std::string group;      // the parameter's name (optim::FusedOptimizer::group_name)
  double grad_norm = 0, oracle_norm = 0;
  double oracle_rel = 0;  // ||A(t)|| / ||A(0)||, A(0) the layer's first non-zero oracle norm (NaN before it)
};

struct FmnistResult {
  FmnistConfig config;  // resolved
  std::vector<FmnistLogRow> log;                    // the whole run's rows, earlier runs' included when resumed
  std::vector<std::pair<int64_t, double>> fid_log;  // (step, FID) of every evaluation
  std::vector<std::pair<int64_t, double>> fid_ema_log, score_ema_log;  // of G's weight average (g_ema > 0)
  std::vector<FmnistMagnitudeRow> magnitudes;       // the whole run's (earlier runs' included when resumed)
  std::vector<std::string> calibration_files;       // written by calibrate_out
  double fid = -1;              // the final FID (< 0: not computed: no feature network, or interrupted)
  // The Inception-score formula on the same classifier's class probabilities (NOT an Inception score), of the
  // images each FID used, and of the 10000 test images as the real-data reference; < 0 when not computed.
  std::vector<std::pair<int64_t, double>> score_log;
  double classifier_score = -1, classifier_score_real = -1;
  double fid_ema = -1, classifier_score_ema = -1;  // the final ones of G's weight average (< 0: none)
  // Precision, recall, density and coverage (metrics::manifold_scores, k = 3) of G's samples at every evaluation,
  // on the FID's features, against as many test images as FID samples (all 10000 when fid_samples is larger).
  std::vector<std::pair<int64_t, metrics::ManifoldScores>> manifold_log;
  // Conditional runs: at every evaluation, the share of G's images (every class equally often) that the classifier
  // assigns to their conditioning class; < 0 when not computed.
  std::vector<std::pair<int64_t, double>> class_accuracy_log;
  double class_accuracy = -1;
  // Conditional runs: intra-FID (metrics::intra_fid: each class's FID against that class's test images, averaged
  // over the classes; Miyato & Koyama's measure for conditional GANs), when every class gets more generated images
  // than the classifier has features (fid_samples > 10 x features); < 0 when not computed.
  std::vector<std::pair<int64_t, double>> intra_fid_log;
  double intra_fid = -1;
  metrics::ManifoldScores manifold;  // the final one (n_fake == 0: not computed)
  // The kernel distance KID (metrics::kernel_distance: 100 subsets of up to 1000 of G's images and of the 10000 test
  // images) at every evaluation, on the FID's features; unbiased, so comparable across fid_samples, unlike FID.
  std::vector<std::pair<int64_t, metrics::KernelDistance>> kid_log;
  metrics::KernelDistance kid;  // the final one (subsets == 0: not computed)
  int64_t start_step = 0;       // steps done before this run (resumed)
  int64_t steps_done = 0;
  int64_t skipped = 0;
  bool interrupted = false;
  double train_seconds = 0;     // training steps only (sampling, FID and checkpoints excluded)
  double wall_seconds = 0;
  std::string device;
  std::string checkpoint;       // the last checkpoint written ("" when none)
  int world_size = 1;           // processes that trained (distributed)
  std::vector<float> params_g, params_d;  // the final parameters, concatenated in registration order
  std::vector<float> params_g_ema;        // G's weight average's (g_ema > 0)
  std::string fid_note;         // why there is no FID, when there is none
};

// Trains (or resumes) and evaluates. Throws nash::Error for a bad config, missing data, a checkpoint that does not
// match, or divergence (NonFiniteError under the Stop policy: the last checkpoint is left as it was);
// cli::OutputError for an output directory that cannot be written. Writes to cfg.out_dir: samples/step_NNNNNN.png,
// samples.png (the latest grid), metrics.csv, fid.csv, training.png, summary.json and checkpoint.safetensors, for
// players with Adam's oracle magnitudes.csv and magnitudes_{d,g}.png, and with g_ema samples_ema.png.
// With a process group (or cfg.distributed, which makes one from the launcher's environment), trains data-parallel
// over its ranks; the result equals one process on the same global batch up to the order of float32 sums.
FmnistResult train_fmnist(const FmnistConfig& cfg, std::shared_ptr<dist::ProcessGroup> group = nullptr);

// The subcommand: exit 0 ok, 1 runtime failure (divergence, bad data or checkpoint), 2 bad flags or an unwritable
// output directory, 130 stopped by SIGINT/SIGTERM after saving a checkpoint.
int run_fmnist(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
