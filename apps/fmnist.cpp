// `nash fmnist`: the four image GANs on Fashion-MNIST, their training loop with grids, logs, checkpoints, resume,
// signals and FID, and the subcommand's flags.
#include "apps/fmnist.h"

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "apps/plot.h"
#include "apps/progress.h"
#include "nash/core/autograd.h"
#include "nash/core/cuda.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/threads.h"
#include "nash/data/idx.h"
#include "nash/data/loader.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/metrics/fid.h"
#include "nash/nn/augment.h"
#include "nash/nn/checkpoint.h"
#include "nash/nn/conditional.h"
#include "nash/nn/ema.h"
#include "nash/nn/equalized.h"
#include "nash/nn/models.h"
#include "nash/nn/regularizers.h"
#include "nash/nn/resnet.h"
#include "nash/nn/spectral_norm.h"
#include "nash/nn/weight_norm.h"
#include "nash/optim/balanced.h"
#include "nash/optim/optimizer.h"
#include "nash/optim/schedule.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

using cli::Named;
using cli::name_of;
using Clock = std::chrono::steady_clock;
constexpr int64_t kManifoldK = 3;  // neighbours of the precision/recall balls (Kynkäänniemi et al.'s choice)
constexpr int64_t kKidSubsets = 100, kKidSubsetSize = 1000;  // KID's usual subsets (torch-fidelity, clean-fid)
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt(double v, int precision = 6) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}
std::string json_number(double v) { return std::isfinite(v) ? fmt(v, 8) : "null"; }
// Exact text of a double (17 significant digits read back to the same value).
std::string exact(double v) { return fmt(v, 17); }

const Named<FmnistArch> kArchs[] = {{FmnistArch::DCGAN, "dcgan"},
                                    {FmnistArch::SNGAN, "sngan"},
                                    {FmnistArch::WganGP, "wgan-gp"},
                                    {FmnistArch::ProGAN, "progan"},
                                    {FmnistArch::ResNet, "resnet"}};
const Named<FmnistOptimizer> kOptimizers[] = {{FmnistOptimizer::Default, "default"},
                                              {FmnistOptimizer::Adam, "adam"},
                                              {FmnistOptimizer::SGDA, "sgda"},
                                              {FmnistOptimizer::NSGDA, "nsgda"},
                                              {FmnistOptimizer::AdaNSGDA, "ada-nsgda"},
                                              {FmnistOptimizer::AdaDir, "adadir"},
                                              {FmnistOptimizer::LREQAdam, "lreqadam"}};
const Named<FmnistPreset> kPresets[] = {{FmnistPreset::Quick, "quick"}, {FmnistPreset::Full, "full"}};
const Named<FmnistDNorm> kDNorms[] = {{FmnistDNorm::Default, "default"},
                                      {FmnistDNorm::None, "none"},
                                      {FmnistDNorm::BN, "bn"},
                                      {FmnistDNorm::SN, "sn"},
                                      {FmnistDNorm::WN, "wn"}};
const Named<FmnistDReg> kDRegs[] = {{FmnistDReg::Default, "default"},
                                    {FmnistDReg::None, "none"},
                                    {FmnistDReg::GP, "gp"},
                                    {FmnistDReg::R1, "r1"},
                                    {FmnistDReg::Ortho, "ortho"}};
const Named<FmnistLoss> kLosses[] = {{FmnistLoss::Default, "default"},
                                     {FmnistLoss::NS, "ns"},
                                     {FmnistLoss::Hinge, "hinge"},
                                     {FmnistLoss::Wasserstein, "wasserstein"},
                                     {FmnistLoss::LS, "ls"}};


// The Adam learning rate and betas each architecture's paper trained with.
struct ArchDefaults {
  FmnistLoss loss;
  int64_t n_dis;
  double lr, beta1, beta2;
  FmnistDNorm d_norm;
  FmnistDReg d_reg;
  int64_t z_dim;
};
ArchDefaults arch_defaults(FmnistArch a) {
  switch (a) {
    case FmnistArch::DCGAN:
      return {FmnistLoss::NS, 1, 2e-4, 0.5, 0.999, FmnistDNorm::BN, FmnistDReg::None, 100};
    case FmnistArch::SNGAN: return {FmnistLoss::Hinge, 1, 2e-4, 0.5, 0.999, FmnistDNorm::SN, FmnistDReg::None, 100};
    case FmnistArch::WganGP:
      return {FmnistLoss::Wasserstein, 5, 1e-4, 0.5, 0.9, FmnistDNorm::None, FmnistDReg::GP, 100};
    case FmnistArch::ProGAN:
      return {FmnistLoss::Wasserstein, 1, 1e-3, 0.0, 0.99, FmnistDNorm::None, FmnistDReg::GP, 128};
    case FmnistArch::ResNet:  // Gulrajani et al.'s CIFAR-10 ResNet (their lr decays linearly to 0; nash keeps it)
      return {FmnistLoss::Wasserstein, 5, 2e-4, 0.0, 0.9, FmnistDNorm::None, FmnistDReg::GP, 128};
  }
  detail::fail("fmnist: unknown architecture");
}

nn::GanLoss gan_loss(FmnistLoss l) {
  switch (l) {
    case FmnistLoss::Default:
    case FmnistLoss::NS: return nn::GanLoss::NonSaturating;
    case FmnistLoss::Hinge: return nn::GanLoss::Hinge;
    case FmnistLoss::Wasserstein: return nn::GanLoss::Wasserstein;
    case FmnistLoss::LS: return nn::GanLoss::LeastSquares;
  }
  return nn::GanLoss::NonSaturating;
}

// The learning rate of an optimizer when none is given: Adam-like rules take the architecture's Adam rate; the
// norm-based rules' lr is a step norm per layer (nsgda) or scales the gradient's own norm (sgda, adadir).
double default_lr(FmnistOptimizer o, FmnistArch a) {
  switch (o) {
    case FmnistOptimizer::Default:
    case FmnistOptimizer::Adam:
    case FmnistOptimizer::AdaNSGDA:
    case FmnistOptimizer::LREQAdam: return arch_defaults(a).lr;
    case FmnistOptimizer::SGDA: return 0.02;
    case FmnistOptimizer::NSGDA: return 0.01;
    case FmnistOptimizer::AdaDir: return 0.02;
  }
  return arch_defaults(a).lr;
}

struct PresetValues {
  int64_t width, batch, fid_samples, log_every;
  int64_t steps[5];  // per architecture, in FmnistArch order
  int64_t evaluations, grids, checkpoints;  // FIDs, grids and checkpoints per run (besides the final ones)
};
// quick: under 3 minutes on 2 CPU cores per architecture (resnet: 8), FIDs included (steps differ by step cost:
// wgan-gp's 5 critic updates with a double backward each; one FID halfway and one at the end). full: the GPU run.
PresetValues preset_values(FmnistPreset p) {
  if (p == FmnistPreset::Quick) return {32, 64, 5000, 10, {1500, 1400, 300, 600, 300}, 1, 6, 2};
  return {64, 64, 10000, 50, {20000, 20000, 20000, 20000, 20000}, 10, 20, 10};
}

std::atomic<int> g_stop_signal{0};
std::atomic<int64_t> g_stop_time_ms{0};

int64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The first SIGINT/SIGTERM asks for a checkpoint and a clean stop. A second one a second or more later (Ctrl-C
// pressed again) gives up the clean stop; one sooner is the same request delivered twice (`timeout` and process
// managers signal the process and then its whole group) and is ignored.
extern "C" void fmnist_on_signal(int sig) {
  const int64_t now = monotonic_ms();
  if (g_stop_signal.load() != 0) {
    if (now - g_stop_time_ms.load() >= 1000) {
      std::signal(sig, SIG_DFL);
      std::raise(sig);
    }
    return;
  }
  g_stop_time_ms.store(now);
  g_stop_signal.store(sig);
}

// Installs the stop handlers for the lifetime of a training run and restores the previous ones.
class SignalScope {
 public:
  explicit SignalScope(bool on) : on_(on) {
    g_stop_signal.store(0);
    if (!on_) return;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = fmnist_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    if (!on_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  bool on_;
  struct sigaction old_int_ {}, old_term_ {};
};

// DCGAN's discriminator with the chosen normalization (nn::dcgan_discriminator's baselines).
std::shared_ptr<nn::Sequential> normed_discriminator(const nn::DcganOptions& o, FmnistDNorm norm) {
  const nn::DNorm n = norm == FmnistDNorm::BN   ? nn::DNorm::BatchNorm
                      : norm == FmnistDNorm::SN ? nn::DNorm::Spectral
                      : norm == FmnistDNorm::WN ? nn::DNorm::Weight
                                                : nn::DNorm::None;
  return nn::dcgan_discriminator(o, n);
}

// The two networks of an architecture (c resolved: d_norm is never Default).
struct Players {
  std::shared_ptr<nn::Module> g, d;
};
// The options both model families share, for 32x32 grey images.
template <class Options>
Options image_options(const FmnistConfig& c) {
  Options o;
  o.z_dim = c.z_dim;
  o.channels = 1;
  o.image_size = 32;
  o.width = c.width;
  return o;
}
nn::DcganOptions model_options(const FmnistConfig& c) { return image_options<nn::DcganOptions>(c); }
nn::ResNetOptions resnet_options(const FmnistConfig& c) {
  nn::ResNetOptions o = image_options<nn::ResNetOptions>(c);
  o.attention = c.attention;
  return o;
}
nn::DNorm resnet_d_norm(FmnistDNorm n) {
  return n == FmnistDNorm::SN ? nn::DNorm::Spectral : n == FmnistDNorm::WN ? nn::DNorm::Weight : nn::DNorm::None;
}
std::shared_ptr<nn::Module> make_generator(const FmnistConfig& c) {
  if (c.conditional && c.arch == FmnistArch::ResNet)
    return std::make_shared<nn::ConditionalResNetGenerator>(resnet_options(c), kFmnistClasses);
  if (c.conditional) return std::make_shared<nn::ConditionalGenerator>(model_options(c), kFmnistClasses);
  if (c.arch == FmnistArch::ProGAN) return nn::progan_generator(model_options(c));
  if (c.arch == FmnistArch::ResNet) return nn::resnet_generator(resnet_options(c));
  return nn::dcgan_generator(model_options(c));
}
std::shared_ptr<nn::Sequential> make_discriminator(const FmnistConfig& c) {
  const nn::DcganOptions o = model_options(c);
  switch (c.arch) {
    case FmnistArch::DCGAN:
    case FmnistArch::WganGP: return normed_discriminator(o, c.d_norm);
    case FmnistArch::SNGAN:
      // SN-GAN's own D (LeakyReLU 0.1, default init) unless another norm is asked for.
      return c.d_norm == arch_defaults(c.arch).d_norm ? nn::sngan_discriminator(o) : normed_discriminator(o, c.d_norm);
    case FmnistArch::ProGAN: return nn::progan_discriminator(o);
    case FmnistArch::ResNet: return nn::resnet_discriminator(resnet_options(c), resnet_d_norm(c.d_norm));
  }
  detail::fail("fmnist: unknown architecture");
}
Players make_players(const FmnistConfig& c) {
  std::shared_ptr<nn::Module> g = make_generator(c);  // G's initialisation draws first, then D's
  std::shared_ptr<nn::Sequential> d = make_discriminator(c);
  if (!c.conditional) return {g, d};
  return {g, std::make_shared<nn::ProjectionDiscriminator>(d, kFmnistClasses, c.d_norm == FmnistDNorm::SN)};
}

std::unique_ptr<optim::Optimizer> make_optimizer(FmnistOptimizer kind, const FmnistConfig& c, nn::Module& player,
                                                 double lr) {
  auto named = player.named_parameters();
  switch (kind) {
    case FmnistOptimizer::Default:
    case FmnistOptimizer::Adam: {
      optim::AdamOptions o;
      o.lr = lr;
      o.beta1 = c.beta1;
      o.beta2 = c.beta2;
      return std::make_unique<optim::Adam>(optim::ParamGroup::global(named), o);
    }
    case FmnistOptimizer::SGDA: {
      optim::SGDOptions o;
      o.lr = lr;
      return std::make_unique<optim::SGD>(optim::ParamGroup::global(named), o);
    }
    case FmnistOptimizer::NSGDA: {
      optim::NSGDAOptions o;
      o.lr = lr;
      return std::make_unique<optim::NSGDA>(optim::ParamGroup::layerwise(named), o);
    }
    case FmnistOptimizer::AdaNSGDA:
    case FmnistOptimizer::AdaDir: {
      optim::AdaGraftOptions o;
      o.lr = lr;
      o.beta1 = c.beta1;
      o.beta2 = c.beta2;
      auto groups = optim::ParamGroup::layerwise(named);
      if (kind == FmnistOptimizer::AdaNSGDA) return std::make_unique<optim::AdaNSGDA>(std::move(groups), o);
      return std::make_unique<optim::AdaDir>(std::move(groups), o);
    }
    case FmnistOptimizer::LREQAdam: {
      optim::LREQAdamOptions o;
      o.lr = lr;
      o.beta2 = c.beta2;
      auto groups = optim::ParamGroup::global(named);
      groups[0].coefficients = nn::equalization_coefficients(groups[0].params);
      return std::make_unique<optim::LREQAdam>(std::move(groups), o);
    }
  }
  detail::fail("fmnist: unknown optimizer");
}

// ---- outputs ------------------------------------------------------------------------------------------------------

const char* kMetricsHeader =
    "step,d_loss,g_loss,penalty,grad_norm_d,grad_norm_g,update_norm_d,update_norm_g,update_ratio,skipped,"
    "step_seconds,grad_ratio\n";

std::string metrics_csv(const std::vector<FmnistLogRow>& log) {
  std::ostringstream s;
  s << kMetricsHeader;
  for (const FmnistLogRow& r : log)
    s << r.step << ',' << fmt(r.d_loss, 8) << ',' << fmt(r.g_loss, 8) << ',' << fmt(r.penalty, 8) << ','
      << fmt(r.grad_norm_d, 8) << ',' << fmt(r.grad_norm_g, 8) << ',' << fmt(r.update_norm_d, 8) << ','
      << fmt(r.update_norm_g, 8) << ',' << fmt(r.update_ratio, 8) << ',' << r.skipped << ','
      << fmt(r.step_seconds, 6) << ',' << fmt(r.grad_ratio, 8) << '\n';
  return s.str();
}

// step,fid,classifier_score, then precision,recall,density,coverage when the manifold scores are computed, then
// fid_ema,classifier_score_ema when G's weights are averaged. Readers go by the header's names.
std::string fid_csv(const FmnistResult& r) {
  std::ostringstream s;
  const bool ema = r.config.g_ema > 0, pr = !r.manifold_log.empty(), cond = r.config.conditional;
  const bool intra = !r.intra_fid_log.empty();
  const bool kid = !r.kid_log.empty();
  s << "step,fid,classifier_score" << (pr ? ",precision,recall,density,coverage" : "") << (kid ? ",kid,kid_std" : "")
    << (ema ? ",fid_ema,classifier_score_ema" : "") << (cond ? ",class_accuracy" : "")
    << (intra ? ",intra_fid" : "") << "\n";
  auto cell = [](const std::vector<std::pair<int64_t, double>>& log, std::size_t i) {
    return i < log.size() ? fmt(log[i].second, 8) : std::string("nan");
  };
  std::map<int64_t, metrics::ManifoldScores> manifold(r.manifold_log.begin(), r.manifold_log.end());
  std::map<int64_t, metrics::KernelDistance> kids(r.kid_log.begin(), r.kid_log.end());
  std::map<int64_t, double> intras(r.intra_fid_log.begin(), r.intra_fid_log.end());
  for (std::size_t i = 0; i < r.fid_log.size(); ++i) {
    s << r.fid_log[i].first << ',' << fmt(r.fid_log[i].second, 8) << ',' << cell(r.score_log, i);
    if (pr) {
      const auto it = manifold.find(r.fid_log[i].first);  // rows of an earlier version's file have none
      if (it != manifold.end()) {
        const metrics::ManifoldScores& m = it->second;
        s << ',' << fmt(m.precision, 8) << ',' << fmt(m.recall, 8) << ',' << fmt(m.density, 8) << ','
          << fmt(m.coverage, 8);
      } else {
        s << ",nan,nan,nan,nan";
      }
    }
    if (kid) {
      const auto it = kids.find(r.fid_log[i].first);
      if (it != kids.end())
        s << ',' << fmt(it->second.mean, 8) << ',' << fmt(it->second.std, 8);
      else
        s << ",nan,nan";
    }
    if (ema) s << ',' << cell(r.fid_ema_log, i) << ',' << cell(r.score_ema_log, i);
    if (cond) s << ',' << cell(r.class_accuracy_log, i);
    if (intra) {  // by step: rows of an earlier version's file may have none
      const auto it = intras.find(r.fid_log[i].first);
      s << ',' << (it != intras.end() ? fmt(it->second, 8) : std::string("nan"));
    }
    s << '\n';
  }
  return s.str();
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) cells.push_back(cell);
  return cells;
}

// The rows of a CSV file after its header (into *header when given).
std::vector<std::vector<std::string>> read_csv_rows(const fs::path& p, std::vector<std::string>* header = nullptr) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream f(p);
  std::string line;
  bool first = true;
  while (std::getline(f, line)) {
    if (first) {
      first = false;
      if (header) *header = split_csv_line(line);
      continue;
    }
    rows.push_back(split_csv_line(line));
  }
  return rows;
}

// The rows of an earlier run's metrics.csv and fid.csv up to `step` (a resumed run continues them; rows past the
// checkpoint were written after it and are replaced by the resumed run's). Unreadable rows are dropped.
void load_earlier_logs(const fs::path& dir, int64_t step, FmnistResult* r) {
  for (const auto& c : read_csv_rows(dir / "metrics.csv")) {
    if (c.size() != 12) continue;
    try {
      FmnistLogRow row;
      row.step = std::stoll(c[0]);
      if (row.step > step) continue;
      row.d_loss = std::stod(c[1]);
      row.g_loss = std::stod(c[2]);
      row.penalty = std::stod(c[3]);
      row.grad_norm_d = std::stod(c[4]);
      row.grad_norm_g = std::stod(c[5]);
      row.update_norm_d = std::stod(c[6]);
      row.update_norm_g = std::stod(c[7]);
      row.update_ratio = std::stod(c[8]);
      row.skipped = std::stoll(c[9]);
      row.step_seconds = std::stod(c[10]);
      row.grad_ratio = std::stod(c[11]);
      r->log.push_back(row);
    } catch (const std::exception&) {
    }
  }
  // fid.csv by its header's names: files of earlier versions lack the manifold or weight-average columns, which
  // then read as NaN (and a row without step, fid or classifier_score is dropped).
  std::vector<std::string> header;
  const std::vector<std::vector<std::string>> rows = read_csv_rows(dir / "fid.csv", &header);
  auto column = [&](const char* name) {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int c_step = column("step"), c_fid = column("fid"), c_score = column("classifier_score");
  const int c_p = column("precision"), c_r = column("recall"), c_d = column("density"), c_c = column("coverage");
  const int c_fe = column("fid_ema"), c_se = column("classifier_score_ema"), c_ca = column("class_accuracy");
  const int c_kid = column("kid"), c_kid_std = column("kid_std"), c_intra = column("intra_fid");
  if (c_step < 0 || c_fid < 0 || c_score < 0) return;
  const bool ema = r->config.g_ema > 0;
  for (const auto& c : rows) {
    if (c.size() != header.size()) continue;
    auto value = [&](int i) { return i < 0 ? NAN : std::stod(c[static_cast<std::size_t>(i)]); };
    try {
      const int64_t s = std::stoll(c[static_cast<std::size_t>(c_step)]);
      if (s > step) continue;
      const double fid = value(c_fid), score = value(c_score), fe = value(c_fe), se = value(c_se);
      metrics::ManifoldScores m;
      m.precision = value(c_p);
      m.recall = value(c_r);
      m.density = value(c_d);
      m.coverage = value(c_c);
      m.k = kManifoldK;
      r->fid_log.emplace_back(s, fid);
      r->score_log.emplace_back(s, score);
      if (c_p >= 0) r->manifold_log.emplace_back(s, m);
      if (c_kid >= 0) {
        metrics::KernelDistance k;
        k.mean = value(c_kid);
        k.std = value(c_kid_std);
        k.subsets = kKidSubsets;
        r->kid_log.emplace_back(s, k);
      }
      if (ema) {
        r->fid_ema_log.emplace_back(s, fe);
        r->score_ema_log.emplace_back(s, se);
      }
      if (r->config.conditional) r->class_accuracy_log.emplace_back(s, value(c_ca));
      if (c_intra >= 0) r->intra_fid_log.emplace_back(s, value(c_intra));
    } catch (const std::exception&) {
    }
  }
}

// Temporary files "<name>.tmp.<pid>" of writers that were killed (SIGKILL, power loss) before they could rename or
// remove them; files of live processes are left alone.
void remove_stale_temp_files(const fs::path& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const std::size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 >= name.size()) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(e.path(), ec);
  }
}

std::string run_title(const FmnistConfig& c) {
  const std::string calibrated = " (calibrated)";
  const bool own_loss = c.loss == arch_defaults(c.arch).loss;
  return std::string(fmnist_name(c.arch)) + (c.conditional ? " conditional" : "") +
         (c.attention > 0 ? " attention " + std::to_string(c.attention) : std::string()) + " (D " +
         fmnist_name(c.d_norm) + ", " + fmnist_name(c.d_reg) +
         (c.d_clip > 0 ? ", clip " + fmt(c.d_clip, 3) : std::string()) +
         (own_loss ? std::string() : std::string(", ") + fmnist_name(c.loss) + " loss") +
         (c.diffaugment.empty() ? std::string() : ", DiffAugment " + c.diffaugment) + "), " + fmnist_name(c.opt_d) +
         (c.calibration_d.empty() ? "" : calibrated) + "/" + fmnist_name(c.opt_g) +
         (c.calibration_g.empty() ? "" : calibrated) + ", lr D " +
         fmt(c.lr_d, 3) + " / G " + fmt(c.lr_g, 3) + (c.lr_decay == "linear" ? " decaying to 0" : "") + ", batch " +
         std::to_string(c.batch) + ", seed " +
         std::to_string(c.seed);
}

// Losses, the G/D update ratio and the FID over training, stacked.
void save_training_plot(const FmnistResult& r, const fs::path& path) {
  if (r.log.empty()) return;
  plot::Figure losses, ratio, fid;
  losses.title = "losses (" + run_title(r.config) + ")";
  losses.xlabel = ratio.xlabel = fid.xlabel = "step";
  losses.ylabel = "loss";
  ratio.title = "G/D update ratio |dG| / |dD| (balance)";
  ratio.ylabel = "ratio";
  ratio.log_y = true;
  plot::Series d{"D loss", {}, {}}, g{"G loss", {}, {}}, gp{"gradient penalty", {}, {}}, u{"update ratio", {}, {}};
  bool any_penalty = false;
  for (const FmnistLogRow& row : r.log) {
    const double x = static_cast<double>(row.step);
    d.x.push_back(x);
    d.y.push_back(row.d_loss);
    g.x.push_back(x);
    g.y.push_back(row.g_loss);
    gp.x.push_back(x);
    gp.y.push_back(row.penalty);
    any_penalty = any_penalty || row.penalty != 0;
    u.x.push_back(x);
    u.y.push_back(row.update_ratio);
  }
  losses.series = {d, g};
  if (any_penalty) losses.series.push_back(gp);
  ratio.series = {u, plot::Series{"balanced (1)", {u.x.front(), u.x.back()}, {1.0, 1.0}, false, 0x999999}};
  std::vector<plot::Figure> panels{losses, ratio};
  auto series = [](const char* name, const std::vector<std::pair<int64_t, double>>& log) {
    plot::Series f{name, {}, {}};
    for (const auto& p : log) {
      if (!std::isfinite(p.second)) continue;
      f.x.push_back(static_cast<double>(p.first));
      f.y.push_back(p.second);
    }
    if (f.x.size() == 1) f.points = true;
    return f;
  };
  if (!r.fid_log.empty()) {
    fid.title = "FID on Fashion-MNIST classifier features (lower is better)";
    fid.ylabel = "FID";
    fid.series = {series(r.fid_ema_log.empty() ? "FID" : "FID of G", r.fid_log)};
    if (!r.fid_ema_log.empty()) fid.series.push_back(series("FID of G's weight average", r.fid_ema_log));
    panels.push_back(fid);
  }
  if (!r.manifold_log.empty()) {
    plot::Figure pr;
    pr.title = "precision (quality) and recall, coverage (diversity), k = " + std::to_string(kManifoldK);
    pr.xlabel = "step";
    pr.ylabel = "share";
    std::vector<std::pair<int64_t, double>> p, rc, cv;
    for (const auto& e : r.manifold_log) {
      p.emplace_back(e.first, e.second.precision);
      rc.emplace_back(e.first, e.second.recall);
      cv.emplace_back(e.first, e.second.coverage);
    }
    pr.series = {series("precision", p), series("recall", rc), series("coverage", cv)};
    panels.push_back(pr);
  }
  plot::save_png(panels, path.string());
}

// ---- adaptive magnitudes and calibration --------------------------------------------------------------------------

// Players whose optimizer computes Adam's oracle A (its per-layer ||A|| is what Fig. 2b/c and 5b plot).
bool has_oracle(FmnistOptimizer o) { return o == FmnistOptimizer::AdaNSGDA || o == FmnistOptimizer::AdaDir; }

const char* kMagnitudesHeader = "step,player,group,grad_norm,oracle_norm,oracle_rel\n";

std::string magnitudes_csv(const std::vector<FmnistMagnitudeRow>& rows) {
  std::ostringstream s;
  s << kMagnitudesHeader;
  for (const FmnistMagnitudeRow& m : rows)
    s << m.step << ',' << m.player << ',' << m.group << ',' << fmt(m.grad_norm, 8) << ',' << fmt(m.oracle_norm, 8)
      << ',' << fmt(m.oracle_rel, 8) << '\n';
  return s.str();
}

// The rows of an earlier run's magnitudes.csv up to `step` (as load_earlier_logs does for metrics.csv).
void load_earlier_magnitudes(const fs::path& dir, int64_t step, FmnistResult* r) {
  for (const auto& c : read_csv_rows(dir / "magnitudes.csv")) {
    if (c.size() != 6 || c[1].size() != 1) continue;
    try {
      FmnistMagnitudeRow m;
      m.step = std::stoll(c[0]);
      if (m.step > step) continue;
      m.player = c[1][0];
      m.group = c[2];
      m.grad_norm = std::stod(c[3]);
      m.oracle_norm = std::stod(c[4]);
      m.oracle_rel = c[5] == "nan" ? NAN : std::stod(c[5]);
      r->magnitudes.push_back(m);
    } catch (const std::exception&) {
    }
  }
}

// A list of doubles as checkpoint metadata ("v0,v1,...", exact) and back; errors name the checkpoint and the key.
std::string exact_list(const std::vector<double>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + exact(v[i]);
  return s;
}
std::vector<double> parse_exact_list(const std::string& text, const std::string& path, const char* key,
                                     std::size_t want) {
  std::vector<double> v;
  std::stringstream ss(text);
  try {
    for (std::string cell; std::getline(ss, cell, ',');) v.push_back(std::stod(cell));
  } catch (const std::exception&) {
    detail::fail("fmnist: checkpoint ", path, " has a malformed '", key, "' in its metadata: '", text, "'");
  }
  NASH_CHECK(v.size() == want, "fmnist: checkpoint ", path, " has ", v.size(), " values in '", key, "', the model has ",
             want, " layers");
  return v;
}

// The i-th layer's colour: the plot palette's ten, then hues spread by the golden angle (never 0, which would mean
// "palette").
uint32_t layer_colour(std::size_t i) {
  if (i < 10) return plot::palette(i);
  const double h = std::fmod(static_cast<double>(i) * 0.618033988749895, 1.0) * 6.0;
  const double x = 1.0 - std::fabs(std::fmod(h, 2.0) - 1.0);
  double rgb[3] = {0, 0, 0};
  const int k = static_cast<int>(h);
  const int hi[6][2] = {{0, 1}, {1, 0}, {1, 2}, {2, 1}, {2, 0}, {0, 2}};  // which channel is 1 and which is x
  rgb[hi[k][0]] = 1.0;
  rgb[hi[k][1]] = x;
  uint32_t c = 0;
  for (double v : rgb) c = (c << 8) | static_cast<uint32_t>(std::lround(40 + 170 * v));
  return c;
}

// magnitudes_d.png / magnitudes_g.png: one curve per layer of ||A(t)|| / ||A(0)|| (Fig. 2b/c) above one of ||A(t)||
// itself on a log axis (Fig. 5b: each layer keeps its own level, the constant a calibrated nSGDA step takes).
void save_magnitude_plots(const FmnistResult& r, const fs::path& dir) {
  for (char player : {'D', 'G'}) {
    std::map<std::string, std::size_t> index;
    std::vector<plot::Series> rel, abs;
    for (const FmnistMagnitudeRow& m : r.magnitudes) {
      if (m.player != player) continue;
      auto it = index.find(m.group);
      if (it == index.end()) {
        it = index.emplace(m.group, rel.size()).first;
        const uint32_t c = layer_colour(rel.size());
        rel.push_back(plot::Series{m.group, {}, {}, false, c});
        abs.push_back(plot::Series{m.group, {}, {}, false, c});
      }
      const double x = static_cast<double>(m.step);
      rel[it->second].x.push_back(x);
      rel[it->second].y.push_back(m.oracle_rel);
      abs[it->second].x.push_back(x);
      abs[it->second].y.push_back(m.oracle_norm);
    }
    if (rel.empty()) continue;
    const FmnistConfig& c = r.config;
    const std::string who = player == 'D' ? "D" : "G";
    plot::Figure f_rel, f_abs;
    f_rel.title = who + ": Adam-oracle magnitude per layer, ||A(t)|| / ||A(0)|| (" + fmnist_name(c.arch) + ", " +
                  fmnist_name(player == 'D' ? c.opt_d : c.opt_g) + " lr " + fmt(player == 'D' ? c.lr_d : c.lr_g, 3) +
                  ", seed " + std::to_string(c.seed) + ")";
    f_abs.title = who + ": ||A(t)|| per layer (its mean over the run is the layer's calibration)";
    f_rel.xlabel = f_abs.xlabel = "step";
    f_rel.ylabel = "||A(t)|| / ||A(0)||";
    f_abs.ylabel = "||A(t)||";
    f_rel.height = f_abs.height = 560;
    f_rel.log_y = f_abs.log_y = true;
    f_rel.series = rel;
    f_abs.series = abs;
    plot::save_png(std::vector<plot::Figure>{f_rel, f_abs},
                   (dir / (player == 'D' ? "magnitudes_d.png" : "magnitudes_g.png")).string());
  }
}

void write_summary(const FmnistResult& r, const fs::path& path) {
  const FmnistConfig& c = r.config;
  std::ostringstream j;
  j << "{\n  \"app\": \"fmnist\",\n  \"arch\": \"" << fmnist_name(c.arch) << "\",\n  \"preset\": \""
    << fmnist_name(c.preset) << "\",\n  \"opt_d\": \"" << fmnist_name(c.opt_d) << "\",\n  \"opt_g\": \""
    << fmnist_name(c.opt_g) << "\",\n  \"loss\": \"" << fmnist_name(c.loss) << "\",\n  \"d_norm\": \""
    << fmnist_name(c.d_norm) << "\",\n  \"d_reg\": \""
    << fmnist_name(c.d_reg) << "\",\n  \"reg_weight\": " << json_number(c.reg_weight) << ",\n  \"d_clip\": "
    << json_number(c.d_clip) << ",\n  \"lr_d\": " << json_number(c.lr_d) << ",\n  \"lr_g\": " << json_number(c.lr_g)
    << ",\n  \"beta1\": " << json_number(c.beta1) << ",\n  \"beta2\": " << json_number(c.beta2)
    << ",\n  \"n_dis\": " << c.n_dis << ",\n  \"batch\": " << c.batch << ",\n  \"width\": " << c.width
    << ",\n  \"z_dim\": " << c.z_dim << ",\n  \"attention\": " << c.attention << ",\n  \"seed\": " << c.seed
    << ",\n  \"steps\": " << r.steps_done
    << ",\n  \"start_step\": " << r.start_step << ",\n  \"interrupted\": " << (r.interrupted ? "true" : "false")
    << ",\n  \"skipped_updates\": " << r.skipped << ",\n  \"device\": \"" << r.device
    << "\",\n  \"processes\": " << r.world_size << ",\n  \"fid\": "
    << (r.fid >= 0 ? json_number(r.fid) : "null") << ",\n  \"classifier_score\": "
    << (r.classifier_score >= 0 ? json_number(r.classifier_score) : "null") << ",\n  \"classifier_score_real\": "
    << (r.classifier_score_real >= 0 ? json_number(r.classifier_score_real) : "null")
    << ",\n  \"precision\": " << (r.manifold.n_fake > 0 ? json_number(r.manifold.precision) : "null")
    << ",\n  \"recall\": " << (r.manifold.n_fake > 0 ? json_number(r.manifold.recall) : "null")
    << ",\n  \"density\": " << (r.manifold.n_fake > 0 ? json_number(r.manifold.density) : "null")
    << ",\n  \"coverage\": " << (r.manifold.n_fake > 0 ? json_number(r.manifold.coverage) : "null")
    << ",\n  \"kid\": " << (r.kid.subsets > 0 ? json_number(r.kid.mean) : "null")
    << ",\n  \"kid_std\": " << (r.kid.subsets > 0 ? json_number(r.kid.std) : "null")
    << ",\n  \"manifold_k\": " << kManifoldK << ",\n  \"manifold_real_samples\": " << r.manifold.n_real
    << ",\n  \"diffaugment\": " << (c.diffaugment.empty() ? "null" : "\"" + c.diffaugment + "\"")
    << ",\n  \"lr_decay\": \"" << c.lr_decay << "\""
    << ",\n  \"conditional\": " << (c.conditional ? "true" : "false") << ",\n  \"class_accuracy\": "
    << (r.class_accuracy >= 0 ? json_number(r.class_accuracy) : "null")
    << ",\n  \"intra_fid\": " << (r.intra_fid >= 0 ? json_number(r.intra_fid) : "null")
    << ",\n  \"g_ema\": " << json_number(c.g_ema) << ",\n  \"fid_ema\": "
    << (r.fid_ema >= 0 ? json_number(r.fid_ema) : "null") << ",\n  \"classifier_score_ema\": "
    << (r.classifier_score_ema >= 0 ? json_number(r.classifier_score_ema) : "null")
    << ",\n  \"calibration_d\": " << (c.calibration_d.empty() ? "null" : "\"" + c.calibration_d + "\"")
    << ",\n  \"calibration_g\": " << (c.calibration_g.empty() ? "null" : "\"" + c.calibration_g + "\"")
    << ",\n  \"fid_samples\": " << c.fid_samples
    << ",\n  \"fid_features\": \"Fashion-MNIST classifier (" << c.fid_net << "), not Inception\""
    << ",\n  \"train_seconds\": " << json_number(r.train_seconds)
    << ",\n  \"wall_seconds\": " << json_number(r.wall_seconds) << "\n}\n";
  cli::write_atomic(path.string(), j.str());
}

// FID of fid_samples images from G (in eval mode, latents from their own stream so evaluating leaves training's
// random stream alone) against the real statistics, and the manifold scores against the real set's balls when
// `manifold` is given.
struct Evaluation {
  double fid, classifier_score;
  metrics::ManifoldScores manifold;
  metrics::KernelDistance kid;  // against real_features when given
  double class_accuracy = -1;  // conditional G: the share of images classified as their conditioning class
  double intra_fid = -1;       // conditional G, with the real classes' statistics
};
Evaluation evaluate_generator(nn::Module& G, metrics::FeatureNet& net, const metrics::FeatureStats& real,
                              const metrics::RealManifold* manifold, const Tensor& real_features,
                              const std::vector<metrics::FeatureStats>* real_classes, const FmnistConfig& c,
                              Device dev, int64_t step) {
  Generator gen(c.seed * 0x9e3779b97f4a7c15ULL + 0x66696400ULL + static_cast<uint64_t>(step));
  metrics::FeatureAccumulator acc(net.feature_dim());
  metrics::ClassifierScoreAccumulator score;
  std::vector<Tensor> features;
  NoGradGuard ng;
  const bool was_training = G.is_training();
  G.eval();
  int64_t hits = 0;
  std::vector<float> all_classes;  // for intra-FID
  for (int64_t done = 0; done < c.fid_samples;) {
    const int64_t b = std::min<int64_t>(500, c.fid_samples - done);
    Tensor z = randn({b, c.z_dim}, DType::Float32, Device::cpu(), &gen).to(dev);
    Tensor y;  // every class equally often: image i is of class i mod 10
    std::vector<float> classes;
    if (c.conditional) {
      for (int64_t i = 0; i < b; ++i) classes.push_back(static_cast<float>((done + i) % kFmnistClasses));
      y = from_vector(classes, {b});
    }
    const Tensor f = net.features(clamp(fmnist_generate(G, z, y), -1.0, 1.0));
    acc.add(f);
    const Tensor logits = net.logits_from_features(f);
    score.add(logits);
    if (c.conditional) {
      const std::vector<float> pred = argmax(logits, 1).to(Device::cpu()).contiguous().to_vector<float>();
      for (std::size_t i = 0; i < pred.size(); ++i) hits += pred[i] == classes[i];
    }
    if (manifold || real_features.defined() || real_classes) features.push_back(f);
    all_classes.insert(all_classes.end(), classes.begin(), classes.end());
    done += b;
  }
  G.train(was_training);
  Evaluation e{metrics::frechet_distance(real, acc.stats()), score.score(), {}};
  const Tensor fake = features.empty() ? Tensor() : cat(features, 0);
  if (manifold) e.manifold = manifold->score(fake);
  if (real_features.defined())
    e.kid = metrics::kernel_distance(real_features, fake, kKidSubsets, kKidSubsetSize,
                                     c.seed + static_cast<uint64_t>(step));
  if (c.conditional) e.class_accuracy = static_cast<double>(hits) / static_cast<double>(c.fid_samples);
  if (real_classes)
    e.intra_fid = metrics::intra_fid(*real_classes, fake, from_vector(all_classes, {c.fid_samples})).mean;
  return e;
}

}  // namespace

// Restoring the stream makes a second G (the weight average's, whose initial weights are replaced by G's at once)
// leave training alone: a run trains the same with and without the average.
std::shared_ptr<nn::Module> fmnist_generator(const FmnistConfig& c) {
  Generator& gen = default_generator();
  const uint64_t seed = gen.seed(), offset = gen.offset();
  std::shared_ptr<nn::Module> g = make_generator(c);
  gen.set_seed(seed);
  gen.set_offset(offset);
  return g;
}

Tensor fmnist_generate(nn::Module& g, const Tensor& z, const Tensor& y) {
  if (auto* cg = dynamic_cast<nn::ConditionalModule*>(&g)) {
    NASH_CHECK(y.defined(), "fmnist: G is class-conditional and needs labels");
    return cg->forward(z, y);
  }
  NASH_CHECK(!y.defined(), "fmnist: G is not class-conditional; it takes no labels");
  return g.forward(z);
}

io::Image fmnist_grid_image(const Tensor& images, int64_t cols, int scale, int64_t gap) {
  const Tensor x = images.contiguous().to(Device::cpu());
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3), rows = (n + cols - 1) / cols;
  const std::vector<float> v = x.to_vector<float>();
  io::Image img;
  img.channels = 1;
  img.width = static_cast<int>((cols * (w + gap) + gap) * scale);
  img.height = static_cast<int>((rows * (h + gap) + gap) * scale);
  img.pixels.assign(static_cast<std::size_t>(img.width) * img.height, 96);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t oy = gap + (k / cols) * (h + gap), ox = gap + (k % cols) * (w + gap);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xx = 0; xx < w; ++xx) {
        const float f = v[static_cast<std::size_t>((k * h + y) * w + xx)];
        const double c = std::isfinite(f) ? std::min(1.0, std::max(-1.0, static_cast<double>(f))) : -1.0;
        const uint8_t p = static_cast<uint8_t>(std::lround((c + 1.0) * 127.5));
        for (int sy = 0; sy < scale; ++sy)
          for (int sx = 0; sx < scale; ++sx)
            img.pixels[static_cast<std::size_t>(((oy + y) * scale + sy) * img.width + (ox + xx) * scale + sx)] = p;
      }
  }
  return img;
}

const char* fmnist_name(FmnistArch a) { return name_of(kArchs, a); }
const char* fmnist_name(FmnistOptimizer o) { return name_of(kOptimizers, o); }
const char* fmnist_name(FmnistPreset p) { return name_of(kPresets, p); }
const char* fmnist_name(FmnistDNorm n) { return name_of(kDNorms, n); }
const char* fmnist_name(FmnistDReg r) { return name_of(kDRegs, r); }
const char* fmnist_name(FmnistLoss l) { return name_of(kLosses, l); }
FmnistLoss parse_fmnist_loss(const std::string& s) { return cli::parse_named(kLosses, s, "fmnist", "loss"); }
FmnistDNorm parse_fmnist_d_norm(const std::string& s) {
  return cli::parse_named(kDNorms, s, "fmnist", "D normalization");
}
FmnistDReg parse_fmnist_d_reg(const std::string& s) { return cli::parse_named(kDRegs, s, "fmnist", "D regularizer"); }
FmnistArch parse_fmnist_arch(const std::string& s) { return cli::parse_named(kArchs, s, "fmnist", "architecture"); }
FmnistOptimizer parse_fmnist_optimizer(const std::string& s) {
  return cli::parse_named(kOptimizers, s, "fmnist", "optimizer");
}
FmnistPreset parse_fmnist_preset(const std::string& s) { return cli::parse_named(kPresets, s, "fmnist", "preset"); }

FmnistConfig FmnistConfig::resolved() const {
  FmnistConfig c = *this;
  const ArchDefaults a = arch_defaults(c.arch);
  const PresetValues p = preset_values(c.preset);
  if (c.opt_d == FmnistOptimizer::Default) c.opt_d = FmnistOptimizer::Adam;
  if (c.opt_g == FmnistOptimizer::Default) c.opt_g = FmnistOptimizer::Adam;
  NASH_CHECK(c.steps >= 0 && c.n_dis >= 0 && c.batch >= 0 && c.width >= 0 && c.z_dim >= 0,
             "fmnist: steps, n_dis, batch, width and z_dim must be >= 0 (0: default), got ", c.steps, ", ", c.n_dis,
             ", ", c.batch, ", ", c.width, ", ", c.z_dim);
  if (c.steps == 0) c.steps = p.steps[static_cast<int>(c.arch)];
  if (c.n_dis == 0) c.n_dis = a.n_dis;
  if (c.batch == 0) c.batch = p.batch;
  if (c.width == 0) c.width = p.width;
  if (c.z_dim == 0) c.z_dim = a.z_dim;
  if (c.beta1 < 0) c.beta1 = a.beta1;
  if (c.beta2 < 0) c.beta2 = a.beta2;
  if (c.d_norm == FmnistDNorm::Default) c.d_norm = a.d_norm;
  if (c.d_reg == FmnistDReg::Default) c.d_reg = a.d_reg;
  if (c.loss == FmnistLoss::Default) c.loss = a.loss;
  if (!c.diffaugment.empty()) {
    try {
      c.diffaugment = nn::diff_augment_policy_name(nn::parse_diff_augment_policy(c.diffaugment));
    } catch (const Error& e) {
      detail::fail("fmnist: --diffaugment: ", e.what());
    }
  }
  if (c.lr_decay.empty()) c.lr_decay = "none";
  NASH_CHECK(c.lr_decay == "none" || c.lr_decay == "linear", "fmnist: --lr-decay must be none or linear, got '",
             c.lr_decay, "'");
  NASH_CHECK(!c.conditional || c.arch != FmnistArch::ProGAN, "fmnist: --conditional takes dcgan, sngan, wgan-gp or "
             "resnet, not ", fmnist_name(c.arch), " (its networks have no class-conditional layers)");
  NASH_CHECK(c.arch != FmnistArch::ResNet || c.d_norm != FmnistDNorm::BN, "fmnist: resnet's critic takes --d-norm "
             "none, sn or wn, not bn");
  NASH_CHECK(c.attention == 0 || c.arch == FmnistArch::ResNet, "fmnist: --attention applies to resnet only, not ",
             fmnist_name(c.arch));
  NASH_CHECK(c.attention == 0 || c.attention == 8 || c.attention == 16, "fmnist: --attention must be 0 (none), 8 or "
             "16 (the side of the feature maps that get a self-attention block), got ", c.attention);
  NASH_CHECK(c.attention == 0 || c.width % 8 == 0, "fmnist: --attention needs a width divisible by 8 (its keys have "
             "width / 8 channels), got width ", c.width);
  NASH_CHECK(c.attention == 0 || c.d_norm != FmnistDNorm::WN, "fmnist: resnet's attention block takes --d-norm none "
             "or sn, not wn");
  NASH_CHECK(c.arch != FmnistArch::ProGAN || c.d_norm == FmnistDNorm::None, "fmnist: progan's D is made of "
             "equalized-LR layers; --d-norm ", fmnist_name(c.d_norm), " applies to dcgan, sngan and wgan-gp only");
  if (c.reg_weight < 0) c.reg_weight = c.d_reg == FmnistDReg::Ortho ? 1e-4 : c.d_reg == FmnistDReg::None ? 0.0 : 10.0;
  NASH_CHECK(std::isfinite(c.ttur) && c.ttur >= 0, "fmnist: ttur must be finite and >= 0 (0: 1), got ", c.ttur);
  if (c.ttur == 0) c.ttur = 1;
  NASH_CHECK(std::isfinite(c.lr_g) && c.lr_g >= 0, "fmnist: lr_g must be finite and >= 0 (0: default), got ", c.lr_g);
  NASH_CHECK(std::isfinite(c.lr_d) && c.lr_d >= 0, "fmnist: lr_d must be finite and >= 0 (0: default), got ", c.lr_d);
  NASH_CHECK(c.calibration_d.empty() || c.opt_d == FmnistOptimizer::NSGDA, "fmnist: --calibration-d sets nsgda's "
             "per-layer step sizes, but D's optimizer is ", fmnist_name(c.opt_d), " (give --opt-d nsgda)");
  NASH_CHECK(c.calibration_g.empty() || c.opt_g == FmnistOptimizer::NSGDA, "fmnist: --calibration-g sets nsgda's "
             "per-layer step sizes, but G's optimizer is ", fmnist_name(c.opt_g), " (give --opt-g nsgda)");
  NASH_CHECK(c.calibrate_out.empty() || c.opt_d == FmnistOptimizer::AdaNSGDA || c.opt_g == FmnistOptimizer::AdaNSGDA,
             "fmnist: --calibrate-out saves an ada-nsgda player's mean Adam-oracle norm per layer, but D's optimizer "
             "is ", fmnist_name(c.opt_d), " and G's is ", fmnist_name(c.opt_g));
  // A calibrated nsgda player's lr scales the calibration's ||A|| per layer: the ada-nsgda default reproduces the
  // calibrating run's mean step norm per layer.
  if (c.lr_g == 0) c.lr_g = default_lr(c.calibration_g.empty() ? c.opt_g : FmnistOptimizer::AdaNSGDA, c.arch);
  if (c.lr_d == 0)
    c.lr_d = default_lr(c.calibration_d.empty() ? c.opt_d : FmnistOptimizer::AdaNSGDA, c.arch) * c.ttur;
  NASH_CHECK(c.magnitudes_every >= 0, "fmnist: magnitudes_every must be >= 0 (0: the preset's), got ",
             c.magnitudes_every);
  if (c.magnitudes_every == 0) c.magnitudes_every = c.preset == FmnistPreset::Quick ? 1 : 10;
  if (c.fid_samples == 0) c.fid_samples = p.fid_samples;
  if (c.log_every == 0) c.log_every = p.log_every;
  if (c.fid_every == 0) c.fid_every = std::max<int64_t>(1, c.steps / (p.evaluations + 1));
  if (c.sample_every == 0) c.sample_every = std::max<int64_t>(1, c.steps / p.grids);
  if (c.checkpoint_every == 0) c.checkpoint_every = std::max<int64_t>(1, c.steps / (p.checkpoints + 1));
  NASH_CHECK(c.n_dis <= 100, "fmnist: n_dis must be in [1, 100], got ", c.n_dis);
  NASH_CHECK(c.batch >= 2, "fmnist: batch must be >= 2 (batch norm and the minibatch stddev need 2), got ", c.batch);
  NASH_CHECK(c.width >= 1 && c.width <= 1024, "fmnist: width must be in [1, 1024], got ", c.width);
  NASH_CHECK(c.beta1 < 1 && c.beta2 < 1, "fmnist: Adam's betas must be in [0, 1), got (", c.beta1, ", ", c.beta2, ")");
  NASH_CHECK(std::isfinite(c.reg_weight), "fmnist: reg_weight must be finite, got ", c.reg_weight);
  NASH_CHECK(std::isfinite(c.d_clip) && c.d_clip >= 0, "fmnist: d_clip must be finite and >= 0, got ", c.d_clip);
  NASH_CHECK(std::isfinite(c.g_ema) && c.g_ema >= 0 && c.g_ema < 1,
             "fmnist: g_ema (the decay of G's weight average) must be in [0, 1) (0: off), got ", c.g_ema);
  NASH_CHECK(c.fid_samples >= 2, "fmnist: fid_samples must be >= 2, got ", c.fid_samples);
  NASH_CHECK(c.sample_every >= 1 && c.checkpoint_every >= 1 && c.log_every >= 1,
             "fmnist: sample_every, checkpoint_every and log_every must be >= 1 (0: the preset's), got ",
             c.sample_every, ", ", c.checkpoint_every, ", ", c.log_every);
  NASH_CHECK(c.limit >= 0 && c.interrupt_after >= 0 && c.threads >= 0,
             "fmnist: limit, interrupt_after and threads must be >= 0");
  return c;
}

std::map<std::string, std::string> fmnist_model_metadata(const FmnistConfig& c) {
  return {{"arch", fmnist_name(c.arch)},
          {"width", std::to_string(c.width)},
          {"z_dim", std::to_string(c.z_dim)},
          {"attention", std::to_string(c.attention)},
          {"batch", std::to_string(c.batch)},
          {"n_dis", std::to_string(c.n_dis)},
          {"opt_d", fmnist_name(c.opt_d)},
          {"opt_g", fmnist_name(c.opt_g)},
          {"lr_d", exact(c.lr_d)},
          {"lr_g", exact(c.lr_g)},
          {"beta1", exact(c.beta1)},
          {"beta2", exact(c.beta2)},
          {"d_norm", fmnist_name(c.d_norm)},
          {"loss", fmnist_name(c.loss)},
          {"d_reg", fmnist_name(c.d_reg)},
          {"reg_weight", exact(c.reg_weight)},
          {"d_clip", exact(c.d_clip)},
          {"g_ema", exact(c.g_ema)},
          {"conditional", c.conditional ? "1" : "0"},
          {"diffaugment", c.diffaugment},
          {"lr_decay", c.lr_decay},
          {"seed", std::to_string(c.seed)},
          {"limit", std::to_string(c.limit)}};
}

FmnistConfig fmnist_config_from_checkpoint(const std::string& path) {
  const io::SafetensorsFile f = io::load_safetensors(path);
  auto get = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    NASH_CHECK(it != f.metadata.end(), "fmnist: checkpoint ", path, " has no '", key,
               "' in its metadata: not a checkpoint of `nash fmnist`");
    return it->second;
  };
  NASH_CHECK(f.metadata.count("app") && f.metadata.at("app") == "fmnist", "fmnist: ", path,
             " is not a checkpoint of `nash fmnist` (its metadata has no app=fmnist)");
  FmnistConfig c;
  try {
    c.arch = parse_fmnist_arch(get("arch"));
    c.preset = parse_fmnist_preset(get("preset"));
    c.width = std::stoll(get("width"));
    c.z_dim = std::stoll(get("z_dim"));
    // Checkpoints written before the attention block existed have none.
    if (f.metadata.count("attention")) c.attention = std::stoll(f.metadata.at("attention"));
    c.batch = std::stoll(get("batch"));
    c.n_dis = std::stoll(get("n_dis"));
    c.opt_d = parse_fmnist_optimizer(get("opt_d"));
    c.opt_g = parse_fmnist_optimizer(get("opt_g"));
    c.lr_d = std::stod(get("lr_d"));
    c.lr_g = std::stod(get("lr_g"));
    c.beta1 = std::stod(get("beta1"));
    c.beta2 = std::stod(get("beta2"));
    c.d_norm = parse_fmnist_d_norm(get("d_norm"));
    c.d_reg = parse_fmnist_d_reg(get("d_reg"));
    // Checkpoints written before the loss was a flag trained with the architecture's (Default).
    if (f.metadata.count("loss")) c.loss = parse_fmnist_loss(f.metadata.at("loss"));
    c.reg_weight = std::stod(get("reg_weight"));
    c.d_clip = std::stod(get("d_clip"));
    // Checkpoints written before G's weight average existed have no key: they trained without one.
    c.g_ema = f.metadata.count("g_ema") ? std::stod(f.metadata.at("g_ema")) : 0.0;
    // Before augmentation existed: none.
    if (f.metadata.count("diffaugment")) c.diffaugment = f.metadata.at("diffaugment");
    // And before learning-rate decay: constant.
    if (f.metadata.count("lr_decay")) c.lr_decay = f.metadata.at("lr_decay");
    // And before conditional runs existed: unconditional.
    if (f.metadata.count("conditional")) {
      const std::string& v = f.metadata.at("conditional");
      NASH_CHECK(v == "0" || v == "1", "fmnist: checkpoint ", path, " has a malformed 'conditional' '", v,
                 "' in its metadata (expected 0 or 1)");
      c.conditional = v == "1";
    }
    c.seed = std::stoull(get("seed"));
    c.limit = std::stoll(get("limit"));
    c.steps = std::stoll(get("steps"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    detail::fail("fmnist: checkpoint ", path, " has a malformed metadata value (", e.what(), ")");
  }
  c.resume = path;
  return c;
}

FmnistResult train_fmnist(const FmnistConfig& config, std::shared_ptr<dist::ProcessGroup> group) {
  const FmnistConfig cfg = config.resolved();
  const Clock::time_point t0 = Clock::now();
  // Data-parallel: each rank on its own GPU (local rank mod the device count), the group from the launcher.
  Device dev = cli::pick_device(cfg.device, "fmnist");
  if (!group && cfg.distributed) {
    if (dev.is_cuda()) dev = Device::cuda(dist::launch_info().local_rank % std::max(1, cuda::device_count()));
    group = dist::init_process_group(dist::Backend::Auto, dev);
  }
  NASH_CHECK(!group || group->device() == dev, "fmnist: the process group works on ",
             group ? group->device().str() : "", " but training runs on ", dev.str());
  const bool parallel = group && group->world_size() > 1;
  const dist::Shard shard = group ? dist::shard_of(*group) : dist::Shard{};
  if (parallel) shard.local_batch(cfg.batch);  // the global batch must split evenly (clear error otherwise)
  const bool rank0 = shard.rank == 0;
  const bool write = !cfg.out_dir.empty() && rank0;  // rank 0 writes every file
  const fs::path dir(cfg.out_dir);
  if (write) {
    cli::prepare_output_dir(cfg.out_dir);
    cli::prepare_output_dir((dir / "samples").string());
    remove_stale_temp_files(dir);
  }
  NumThreadsGuard threads(cfg.threads);

  FmnistResult r;
  r.config = cfg;
  r.device = dev.str();
  r.world_size = static_cast<int>(shard.count);

  // The checkpoint to resume, checked before any time is spent.
  std::map<std::string, std::string> ck_meta;
  if (!cfg.resume.empty()) {
    ck_meta = io::load_safetensors(cfg.resume).metadata;
    NASH_CHECK(ck_meta.count("app") && ck_meta.at("app") == "fmnist", "fmnist: ", cfg.resume,
               " is not a checkpoint of `nash fmnist`");
    if (!ck_meta.count("g_ema")) ck_meta["g_ema"] = exact(0.0);  // written before the weight average existed
    if (!ck_meta.count("conditional")) ck_meta["conditional"] = "0";  // and before conditional runs
    if (!ck_meta.count("diffaugment")) ck_meta["diffaugment"] = "";   // and before augmentation
    if (!ck_meta.count("lr_decay")) ck_meta["lr_decay"] = "none";     // and before learning-rate decay
    if (!ck_meta.count("attention")) ck_meta["attention"] = "0";      // and before the attention block
    if (!ck_meta.count("loss") && ck_meta.count("arch"))  // and before the loss was a flag: the architecture's
      ck_meta["loss"] = fmnist_name(arch_defaults(parse_fmnist_arch(ck_meta.at("arch"))).loss);
    for (const auto& kv : fmnist_model_metadata(cfg)) {
      auto it = ck_meta.find(kv.first);
      NASH_CHECK(it != ck_meta.end(), "fmnist: checkpoint ", cfg.resume, " lacks '", kv.first, "' in its metadata");
      const bool numeric = kv.first == "lr_d" || kv.first == "lr_g" || kv.first.rfind("beta", 0) == 0 ||
                           kv.first == "reg_weight" || kv.first == "d_clip" || kv.first == "g_ema";
      const bool same = numeric ? std::stod(it->second) == std::stod(kv.second) : it->second == kv.second;
      NASH_CHECK(same, "fmnist: checkpoint ", cfg.resume, " was trained with ", kv.first, " = ", it->second,
                 ", this run asks for ", kv.second, " (resume with the same model flags, or leave them out)");
    }
  }

  // Calibration files read (and --calibrate-out's folder made) before any time is spent; errors name the flag.
  auto read_calibration = [](const std::string& file, const char* flag) {
    optim::Calibration c;
    if (file.empty()) return c;
    try {
      c = optim::load_calibration(file);
    } catch (const Error& e) {
      detail::fail("fmnist: --", flag, " ", file, ": ", e.what());
    }
    return c;
  };
  const optim::Calibration cal_d = read_calibration(cfg.calibration_d, "calibration-d");
  const optim::Calibration cal_g = read_calibration(cfg.calibration_g, "calibration-g");
  if (!cfg.calibrate_out.empty() && rank0) {
    const fs::path parent = fs::path(cfg.calibrate_out).parent_path();
    if (!parent.empty()) cli::prepare_output_dir(parent.string());
  }

  // Data: the training set padded to 32 x 32; the FID's real statistics from the test set.
  data::FashionMnistOptions fo;
  fo.dir = cfg.data_dir;
  fo.pad_to = 32;
  fo.limit = cfg.limit;
  const data::ImageDataset train = data::load_fashion_mnist(data::Split::Train, fo);
  NASH_CHECK(train.images.size(0) >= cfg.batch, "fmnist: batch ", cfg.batch, " is larger than the ",
             train.images.size(0), " training images");

  std::shared_ptr<metrics::FeatureNet> fid_net;
  metrics::FeatureStats real_stats;
  std::unique_ptr<metrics::RealManifold> real_manifold;
  Tensor real_features;  // every test image's, for KID
  std::unique_ptr<std::vector<metrics::FeatureStats>> real_classes;  // conditional: per class, for intra-FID
  if (!rank0) {
    r.fid_note = "FID is computed by rank 0";
  } else if (cfg.fid_net.empty()) {
    r.fid_note = "no FID: no feature network given";
  } else if (!fs::exists(cfg.fid_net)) {
    r.fid_note = "no FID: feature network " + cfg.fid_net + " not found (train it with `nash classifier`)";
  } else {
    fid_net = metrics::load_feature_net(cfg.fid_net, dev);
    data::FashionMnistOptions to;
    to.dir = cfg.data_dir;
    const data::ImageDataset test = data::load_fashion_mnist(data::Split::Test, to);
    NASH_CHECK(test.images.size(0) > fid_net->feature_dim(), "fmnist: the test set has ", test.images.size(0),
               " images, FID needs more than the ", fid_net->feature_dim(), " features");
    // One pass of the network over the test images serves the FID statistics, the classifier score and the
    // precision/recall balls.
    const Tensor test_features = metrics::image_features(*fid_net, test.images.to(dev));
    real_stats = metrics::feature_stats(test_features);
    real_features = test_features;
    // Intra-FID needs more images of each class than features, on both sides (Fashion-MNIST's test set has 1000 per
    // class; a smaller stand-in may not).
    if (cfg.conditional && cfg.fid_samples / kFmnistClasses > fid_net->feature_dim()) {
      std::vector<int64_t> count(static_cast<std::size_t>(kFmnistClasses), 0);
      for (double y : test.labels.to_vector<double>())
        if (y >= 0 && y < kFmnistClasses) ++count[static_cast<std::size_t>(y)];
      if (*std::min_element(count.begin(), count.end()) > fid_net->feature_dim())
        real_classes = std::make_unique<std::vector<metrics::FeatureStats>>(
            metrics::class_feature_stats(test_features, test.labels, kFmnistClasses));
    }
    {
      NoGradGuard ng;
      metrics::ClassifierScoreAccumulator score;
      score.add(fid_net->logits_from_features(test_features));
      r.classifier_score_real = score.score();
    }
    // Precision/recall compare sets of equal size: as many test images as FID samples (all of them if fewer).
    const int64_t n_real = std::min<int64_t>(cfg.fid_samples, test_features.size(0));
    if (n_real > kManifoldK && cfg.fid_samples > kManifoldK)
      real_manifold = std::make_unique<metrics::RealManifold>(test_features.narrow(0, 0, n_real), kManifoldK);
  }

  manual_seed(cfg.seed);  // before the networks: their initialisation draws from the default generator
  Players pl = make_players(cfg);
  pl.g->to(dev);
  pl.d->to(dev);
  std::unique_ptr<optim::Optimizer> opt_d = make_optimizer(cfg.opt_d, cfg, *pl.d, cfg.lr_d);
  std::unique_ptr<optim::Optimizer> opt_g = make_optimizer(cfg.opt_g, cfg, *pl.g, cfg.lr_g);
  // nSGDA's per-layer constant step sizes: lr * the calibration's mean ||A|| of each layer (Fig. 5).
  auto calibrate = [&](optim::Optimizer& opt, const optim::Calibration& cal, double lr, const std::string& file,
                       const char* flag) {
    if (file.empty()) return;
    try {
      dynamic_cast<optim::NSGDA&>(opt).apply_calibration(cal, lr);
    } catch (const Error& e) {
      detail::fail("fmnist: --", flag, " ", file, " does not fit this model: ", e.what());
    }
  };
  calibrate(*opt_d, cal_d, cfg.lr_d, cfg.calibration_d, "calibration-d");
  calibrate(*opt_g, cal_g, cfg.lr_g, cfg.calibration_g, "calibration-g");
  // The players whose optimizer has Adam's oracle, and each layer's reference ||A(0)|| (0 until it is known).
  struct OraclePlayer {
    char name;
    optim::FusedOptimizer* opt;
    std::vector<double> ref;
  };
  std::vector<OraclePlayer> oracle_players;
  if (has_oracle(cfg.opt_d)) oracle_players.push_back({'D', dynamic_cast<optim::FusedOptimizer*>(opt_d.get()), {}});
  if (has_oracle(cfg.opt_g)) oracle_players.push_back({'G', dynamic_cast<optim::FusedOptimizer*>(opt_g.get()), {}});
  for (OraclePlayer& op : oracle_players) {
    NASH_CHECK(op.opt, "fmnist: the ", op.name, " optimizer reports no per-layer norms");
    op.ref.assign(op.opt->param_groups().size(), 0.0);
  }
  optim::GanTrainerOptions to;
  to.loss = gan_loss(cfg.loss);
  to.n_dis = cfg.n_dis;
  to.gp_lambda = cfg.d_reg == FmnistDReg::GP ? cfg.reg_weight : 0.0;
  to.r1_gamma = cfg.d_reg == FmnistDReg::R1 ? cfg.reg_weight : 0.0;
  if (cfg.d_reg == FmnistDReg::Ortho) {
    nn::Module* d = pl.d.get();
    const double beta = cfg.reg_weight;
    to.d_regularizer = [d, beta] { return nn::orthonormal_penalty(*d, beta); };
  }
  if (cfg.d_clip > 0) {
    nn::Module* d = pl.d.get();
    const double clip = cfg.d_clip;
    to.after_d_update = [d, clip] { nn::clip_weights_(*d, clip); };
  }
  if (!cfg.diffaugment.empty()) {
    const nn::DiffAugmentOptions ao = nn::parse_diff_augment_policy(cfg.diffaugment);
    const int64_t rank = shard.rank, count = shard.count;
    to.augment = [ao, rank, count](const Tensor& x) { return nn::diff_augment(x, ao, nullptr, rank, count); };
  }
  to.diagnostics = true;
  to.on_nonfinite = cfg.on_nonfinite;
  // Data-parallel: rank 0's models on every rank, gradients averaged after each backward, synchronized batch norm.
  std::unique_ptr<dist::GanDataParallel> dp;
  if (parallel) {
    dp = std::make_unique<dist::GanDataParallel>(group, *pl.g, *pl.d, cfg.sync_bn);
    dp->configure(to);
  }
  optim::GanTrainer trainer(pl.g, pl.d, *opt_g, *opt_d, to);
  // G's weight average (after the data-parallel set-up, which gives every rank rank 0's G); every rank keeps it, so
  // any rank's checkpoint would hold it, but only rank 0 evaluates it.
  std::shared_ptr<nn::Module> g_avg;
  std::unique_ptr<nn::WeightEma> ema;
  if (cfg.g_ema > 0) {
    g_avg = fmnist_generator(cfg);
    g_avg->to(dev);
    nn::EmaOptions eo;
    eo.decay = cfg.g_ema;
    eo.warmup = true;
    eo.buffers = nn::EmaBuffers::Copy;
    ema = std::make_unique<nn::WeightEma>(pl.g, g_avg, eo);
  }

  data::LoaderOptions lo;
  lo.batch_size = cfg.batch;
  lo.drop_last = true;
  lo.seed = cfg.seed;
  lo.device = dev;
  data::BatchLoader loader(train.images, cfg.conditional ? train.labels : Tensor(), lo);

  // The fixed latents of the sample grids, from their own stream: the same in a resumed run.
  Generator grid_gen(cfg.seed ^ 0x67726964ULL);
  Tensor grid_z = randn({64, cfg.z_dim}, DType::Float32, Device::cpu(), &grid_gen).to(dev);
  Tensor grid_y;  // conditional: row k of the grid is class k, the same 8 latents in every row
  if (cfg.conditional) {
    std::vector<Tensor> rows(static_cast<std::size_t>(kFmnistClasses), grid_z.narrow(0, 0, 8));
    grid_z = cat(rows, 0);
    std::vector<float> y;
    for (int64_t i = 0; i < 8 * kFmnistClasses; ++i) y.push_back(static_cast<float>(i / 8));
    grid_y = from_vector(y, {8 * kFmnistClasses});
  }

  // Each group's undecayed lr (set before the loop): --lr-decay scales these, checkpoints record them.
  std::vector<double> base_lrs_d, base_lrs_g;
  const std::string ckpt_path = write ? (dir / "checkpoint.safetensors").string() : std::string();
  auto save = [&](int64_t step) {
    if (!write) return;
    nn::Checkpoint ck;
    ck.modules = {{"G", pl.g.get()}, {"D", pl.d.get()}};
    if (ema) ck.modules.emplace_back("G_ema", g_avg.get());
    ck.optimizers = {{"G", opt_g.get()}, {"D", opt_d.get()}};
    ck.step = step;
    ck.metadata = fmnist_model_metadata(cfg);
    ck.metadata["app"] = "fmnist";
    ck.metadata["preset"] = fmnist_name(cfg.preset);
    ck.metadata["steps"] = std::to_string(cfg.steps);
    const optim::GanTrainer::State st = trainer.state();
    ck.metadata["trainer_g0"] = exact(st.g0);
    ck.metadata["trainer_d0"] = exact(st.d0);
    ck.metadata["trainer_skipped"] = std::to_string(st.skipped);
    ck.metadata["loader_batches"] = std::to_string(step * cfg.n_dis);
    if (ema) ck.metadata["g_ema_updates"] = std::to_string(ema->updates());
    // What the optimizers' state leaves out: nSGDA's per-layer step sizes (a calibration's) and the magnitude
    // traces' reference ||A(0)|| per layer.
    for (const auto& p : {std::make_pair('d', opt_d.get()), std::make_pair('g', opt_g.get())}) {
      if ((p.first == 'd' ? cfg.opt_d : cfg.opt_g) != FmnistOptimizer::NSGDA) continue;
      const std::vector<double>& base = p.first == 'd' ? base_lrs_d : base_lrs_g;
      std::vector<double> lrs;
      for (std::size_t i = 0; i < p.second->param_groups().size(); ++i)
        lrs.push_back(i < base.size() ? base[i] : p.second->lr(i));
      ck.metadata[std::string("group_lrs_") + p.first] = exact_list(lrs);
    }
    for (const OraclePlayer& op : oracle_players)
      ck.metadata[op.name == 'D' ? "oracle_ref_d" : "oracle_ref_g"] = exact_list(op.ref);
    nn::save_checkpoint(ckpt_path, ck);
    r.checkpoint = ckpt_path;
  };

  int64_t start = 0;
  if (!cfg.resume.empty()) {
    nn::Checkpoint ck;
    ck.modules = {{"G", pl.g.get()}, {"D", pl.d.get()}};
    if (ema) ck.modules.emplace_back("G_ema", g_avg.get());
    ck.optimizers = {{"G", opt_g.get()}, {"D", opt_d.get()}};
    nn::load_checkpoint(cfg.resume, ck);  // restores the random stream too
    start = ck.step;
    NASH_CHECK(start <= cfg.steps, "fmnist: checkpoint ", cfg.resume, " is at step ", start, ", past --steps ",
               cfg.steps, " (give a larger --steps to train on)");
    optim::GanTrainer::State st;
    try {
      st.steps = start;
      st.g0 = std::stod(ck_meta.at("trainer_g0"));
      st.d0 = std::stod(ck_meta.at("trainer_d0"));
      st.skipped = std::stoll(ck_meta.at("trainer_skipped"));
    } catch (const std::exception& e) {
      detail::fail("fmnist: checkpoint ", cfg.resume, " lacks the trainer state in its metadata (", e.what(), ")");
    }
    trainer.restore(st);
    if (ema) {
      auto it = ck_meta.find("g_ema_updates");
      const bool ok = it != ck_meta.end() && !it->second.empty() && it->second.size() < 19 &&
                      it->second.find_first_not_of("0123456789") == std::string::npos;
      NASH_CHECK(ok, "fmnist: checkpoint ", cfg.resume, " has G's weight average but ",
                 it == ck_meta.end() ? std::string("no 'g_ema_updates'")
                                     : "a malformed 'g_ema_updates' '" + it->second + "'",
                 " in its metadata");
      ema->set_updates(std::stoll(it->second));
    }
    loader.seek(start * cfg.n_dis);
    // nSGDA's per-layer step sizes come from the checkpoint; a calibration given again must agree with them.
    for (const auto& p : {std::make_pair('d', opt_d.get()), std::make_pair('g', opt_g.get())}) {
      const std::string key = std::string("group_lrs_") + p.first;
      const std::string& file = p.first == 'd' ? cfg.calibration_d : cfg.calibration_g;
      const char* flag = p.first == 'd' ? "--calibration-d" : "--calibration-g";
      auto it = ck_meta.find(key);
      if (it == ck_meta.end()) {
        NASH_CHECK(file.empty(), "fmnist: checkpoint ", cfg.resume, " has no per-layer step sizes, so ", flag, " ",
                   file, " cannot be checked against it (resume without ", flag, ")");
        continue;
      }
      auto* f = dynamic_cast<optim::FusedOptimizer*>(p.second);
      const std::vector<double> lrs = parse_exact_list(it->second, cfg.resume, key.c_str(),
                                                       p.second->param_groups().size());
      for (std::size_t i = 0; i < lrs.size(); ++i) {
        NASH_CHECK(file.empty() || p.second->lr(i) == lrs[i], "fmnist: checkpoint ", cfg.resume, " was trained with "
                   "lr ", exact(lrs[i]), " for layer '", f ? f->group_name(i) : std::to_string(i), "', ", flag, " ",
                   file, " gives ", exact(p.second->lr(i)), " (resume without ", flag, ")");
        p.second->set_lr(i, lrs[i]);
      }
    }
    for (OraclePlayer& op : oracle_players) {
      auto it = ck_meta.find(op.name == 'D' ? "oracle_ref_d" : "oracle_ref_g");
      if (it != ck_meta.end()) op.ref = parse_exact_list(it->second, cfg.resume, "oracle_ref", op.ref.size());
    }
    if (write) load_earlier_logs(dir, start, &r);
    if (write && !oracle_players.empty()) load_earlier_magnitudes(dir, start, &r);
  }
  r.start_step = start;
  for (std::size_t i = 0; i < opt_d->param_groups().size(); ++i) base_lrs_d.push_back(opt_d->lr(i));
  for (std::size_t i = 0; i < opt_g->param_groups().size(); ++i) base_lrs_g.push_back(opt_g->lr(i));
  const optim::LinearDecayLR decay(std::max<int64_t>(cfg.steps, 1));
  auto apply_lr_decay = [&](int64_t t) {  // before G step t (0-based): a function of t alone, so resume is exact
    if (cfg.lr_decay != "linear") return;
    const double f = decay.factor(t);
    for (std::size_t i = 0; i < base_lrs_d.size(); ++i) opt_d->set_lr(i, base_lrs_d[i] * f);
    for (std::size_t i = 0; i < base_lrs_g.size(); ++i) opt_g->set_lr(i, base_lrs_g[i] * f);
  };

  // Every rank draws the global batch (loader order and latents from the shared seed) and keeps its rows of it.
  auto next_batch = [&] {  // the loader's next batch, into the next epoch at the end of one
    data::Batch b;
    if (!loader.next(&b)) {
      loader.start_epoch(loader.epoch() + 1);
      loader.next(&b);
    }
    return b;
  };
  const optim::GanTrainer::Sampler real = [&] { return shard.slice(next_batch().images); };
  const optim::GanTrainer::Sampler latent = [&] {
    return shard.slice(randn({cfg.batch, cfg.z_dim}, DType::Float32, dev));
  };
  // Conditional runs: the real batch's labels (kept on the host, where the one-hot rows are built), and G's classes
  // uniform, drawn after its latents.
  const optim::GanTrainer::LabeledSampler real_labeled = [&] {
    const data::Batch b = next_batch();
    return optim::GanTrainer::Labeled{shard.slice(b.images), shard.slice(b.labels.to(Device::cpu()))};
  };
  const optim::GanTrainer::LabeledSampler latent_labeled = [&] {
    Tensor z = randn({cfg.batch, cfg.z_dim}, DType::Float32, dev);
    Tensor y = randint(0, kFmnistClasses, {cfg.batch});
    return optim::GanTrainer::Labeled{shard.slice(z), shard.slice(y)};
  };

  auto grid_of = [&](nn::Module& g) {
    NoGradGuard ng;
    g.eval();
    const Tensor x = fmnist_generate(g, grid_z, grid_y);
    g.train();
    return fmnist_grid_image(x, 8, 2);
  };
  auto grid = [&](int64_t step) {
    if (!write) return;
    const io::Image img = grid_of(*pl.g);
    char name[48];
    std::snprintf(name, sizeof name, "step_%06lld.png", static_cast<long long>(step));
    io::write_png((dir / "samples" / name).string(), img);
    io::write_png((dir / "samples.png").string(), img);
    if (ema) io::write_png((dir / "samples_ema.png").string(), grid_of(*g_avg));
  };
  auto evaluate = [&](int64_t step) {
    if (!fid_net) return;
    const Evaluation e =
        evaluate_generator(*pl.g, *fid_net, real_stats, real_manifold.get(), real_features, real_classes.get(), cfg,
                           dev, step);
    r.kid_log.emplace_back(step, e.kid);
    r.kid = e.kid;
    r.fid_log.emplace_back(step, e.fid);
    if (cfg.conditional) {
      r.class_accuracy_log.emplace_back(step, e.class_accuracy);
      r.class_accuracy = e.class_accuracy;
    }
    if (real_classes) {
      r.intra_fid_log.emplace_back(step, e.intra_fid);
      r.intra_fid = e.intra_fid;
    }
    r.score_log.emplace_back(step, e.classifier_score);
    r.fid = e.fid;
    r.classifier_score = e.classifier_score;
    if (real_manifold) {
      r.manifold_log.emplace_back(step, e.manifold);
      r.manifold = e.manifold;
    }
    if (!ema) return;
    const Evaluation a =
        evaluate_generator(*g_avg, *fid_net, real_stats, nullptr, Tensor(), nullptr, cfg, dev, step);  // same latents
    r.fid_ema_log.emplace_back(step, a.fid);
    r.score_ema_log.emplace_back(step, a.classifier_score);
    r.fid_ema = a.fid;
    r.classifier_score_ema = a.classifier_score;
  };
  // One row per layer of each oracle player at step 1, every magnitudes_every steps and at the last step; the
  // references are taken at every step (a layer's first non-zero ||A||).
  auto record_magnitudes = [&](int64_t step, const optim::StepStats& s) {
    const bool row = step == 1 || step % cfg.magnitudes_every == 0 || step == cfg.steps;
    for (OraclePlayer& op : oracle_players) {
      const std::vector<double>& g = op.name == 'D' ? s.layer_grad_norms_d : s.layer_grad_norms_g;
      const std::vector<double>& A = op.name == 'D' ? s.layer_oracle_norms_d : s.layer_oracle_norms_g;
      for (std::size_t i = 0; i < op.ref.size() && i < A.size(); ++i) {
        if (op.ref[i] == 0 && A[i] > 0 && std::isfinite(A[i])) op.ref[i] = A[i];
        if (!row) continue;
        FmnistMagnitudeRow m;
        m.step = step;
        m.player = op.name;
        m.group = op.opt->group_name(i);
        m.grad_norm = i < g.size() ? g[i] : 0.0;
        m.oracle_norm = A[i];
        m.oracle_rel = op.ref[i] > 0 ? A[i] / op.ref[i] : NAN;
        r.magnitudes.push_back(m);
      }
    }
  };
  auto write_logs = [&] {
    if (!write) return;
    cli::write_atomic((dir / "metrics.csv").string(), metrics_csv(r.log));
    if (!oracle_players.empty()) cli::write_atomic((dir / "magnitudes.csv").string(), magnitudes_csv(r.magnitudes));
    if (fid_net || !r.fid_log.empty()) cli::write_atomic((dir / "fid.csv").string(), fid_csv(r));
  };

  SignalScope signals(cfg.handle_signals);
  const bool talk = !cfg.quiet && rank0;
  cli::ProgressBar bar(cfg.steps - start, std::cout, talk && cli::ProgressBar::stdout_is_tty());
  FmnistLogRow acc;
  int64_t n_acc = 0;
  double train_s = 0;
  int64_t step = start;
  try {
    while (step < cfg.steps) {
      const Clock::time_point ts = Clock::now();
      apply_lr_decay(step);
      const optim::StepStats s =
          cfg.conditional ? trainer.step_conditional(real_labeled, latent_labeled) : trainer.step(real, latent);
      if (ema) ema->update();
      const double dt = seconds_since(ts);
      train_s += dt;
      ++step;
      record_magnitudes(step, s);
      auto add = [](double& to, double v) { to += std::isfinite(v) ? v : 0.0; };
      add(acc.d_loss, s.d_loss);
      add(acc.g_loss, s.g_loss);
      add(acc.penalty, s.penalty);
      add(acc.grad_norm_d, s.grad_norm_d);
      add(acc.grad_norm_g, s.grad_norm_g);
      add(acc.update_norm_d, s.update_norm_d);
      add(acc.update_norm_g, s.update_norm_g);
      add(acc.update_ratio, s.update_ratio);
      add(acc.grad_ratio, s.grad_ratio);
      acc.skipped += s.skipped_d + s.skipped_g;
      acc.step_seconds += dt;
      ++n_acc;
      bool stop = step < cfg.steps &&
                  (g_stop_signal.load() != 0 || (cfg.interrupt_after > 0 && step >= cfg.interrupt_after));
      // A signal may reach the ranks at different steps: they stop together when any of them saw it.
      if (parallel) stop = dist::mean_over_ranks(*group, stop ? 1.0 : 0.0) > 0;
      if (step % cfg.log_every == 0 || step == cfg.steps || stop) {
        const double k = 1.0 / static_cast<double>(n_acc);
        FmnistLogRow row = acc;
        row.step = step;
        for (double* v : {&row.d_loss, &row.g_loss, &row.penalty, &row.grad_norm_d, &row.grad_norm_g,
                          &row.update_norm_d, &row.update_norm_g, &row.update_ratio, &row.step_seconds,
                          &row.grad_ratio})
          *v *= k;
        r.log.push_back(row);
        acc = FmnistLogRow{};
        n_acc = 0;
      }
      if (talk) bar.update(step - start, {{"D", s.d_loss}, {"G", s.g_loss}, {"G/D", s.update_ratio}});
      if (stop) {
        r.interrupted = true;
        break;
      }
      if (step % cfg.sample_every == 0 && step < cfg.steps) grid(step);
      if (cfg.fid_every > 0 && step % cfg.fid_every == 0 && step < cfg.steps) evaluate(step);
      if (step % cfg.checkpoint_every == 0 && step < cfg.steps) {
        // Logs first: a kill between the two leaves rows past the checkpoint, which a resume drops and
        // recomputes; the other order would lose rows for good.
        if (dp) dp->check("at step " + std::to_string(step));  // a checkpoint must hold every rank's state
        write_logs();
        save(step);
      }
    }
  } catch (const optim::NonFiniteError& e) {
    if (talk) bar.finish();
    write_logs();
    throw Error(std::string("fmnist: training diverged: ") + e.what() +
                (r.checkpoint.empty() ? std::string(cfg.resume.empty() ? "" : "; resume from " + cfg.resume)
                                      : "; the last good checkpoint is " + r.checkpoint));
  }
  if (talk) bar.finish();
  if (dp) dp->check("at step " + std::to_string(step));
  r.steps_done = step;
  r.skipped = trainer.skipped_updates();
  r.train_seconds = train_s;
  write_logs();
  save(step);
  grid(step);
  if (!r.interrupted) {
    evaluate(step);
    write_logs();
  }
  // The calibration: each ada-nsgda player's mean ||A|| per layer over the whole run (the optimizer state keeps the
  // running sums across a resume); an interrupted run leaves it to the run that finishes.
  if (!cfg.calibrate_out.empty() && !r.interrupted && rank0)
    for (const auto& p : {std::make_pair('d', opt_d.get()), std::make_pair('g', opt_g.get())}) {
      if ((p.first == 'd' ? cfg.opt_d : cfg.opt_g) != FmnistOptimizer::AdaNSGDA) continue;
      const std::string path = cfg.calibrate_out + "." + p.first + ".txt";
      dynamic_cast<optim::AdaNSGDA&>(*p.second).save_calibration(path);
      r.calibration_files.push_back(path);
    }
  r.params_g = cli::flat_parameters(*pl.g);
  r.params_d = cli::flat_parameters(*pl.d);
  if (ema) r.params_g_ema = cli::flat_parameters(*g_avg);
  r.wall_seconds = seconds_since(t0);
  if (write) {
    if (cfg.plots) save_training_plot(r, dir / "training.png");
    if (cfg.plots) save_magnitude_plots(r, dir);
    write_summary(r, dir / "summary.json");
  }
  return r;
}

int run_fmnist(int argc, const char* const* argv, int first) {
  const FmnistConfig def;
  cli::Parser p("nash fmnist",
                "Trains an image GAN on Fashion-MNIST (32 x 32, padded) and reports its FID on the features of the\n"
                "Fashion-MNIST classifier that `nash classifier` trains (not Inception features: comparable within\n"
                "nash only). Architectures: dcgan (NS loss, BN), sngan (spectral norm on every D layer, hinge loss),\n"
                "wgan-gp (critic without BN, gradient penalty 10, 5 critic steps), progan (equalized-LR layers, pixel\n"
                "norm, minibatch stddev, Wasserstein + GP, Adam betas (0, 0.99)), resnet (Gulrajani et al.'s ResNet\n"
                "WGAN-GP: residual up/down blocks of `width` channels, 5 critic steps, GP 10, Adam 2e-4 (0, 0.9);\n"
                "with --d-norm sn --loss hinge --d-reg none it is SN-GAN's ResNet; --attention adds SAGAN's\n"
                "self-attention).\n"
                "Presets: quick (width 32, ~2.5 min of training on 2 CPU cores (resnet: ~8 min), FID on 5000\n"
                "samples) and full (width 64, 20000 steps, the GPU run).\n"
                "Writes samples/*.png, samples.png, metrics.csv, fid.csv, training.png, summary.json and\n"
                "checkpoint.safetensors to --out. Ctrl-C (or SIGTERM) saves a checkpoint and stops;\n"
                "--resume continues a run exactly (model flags are taken from the checkpoint unless given).\n"
                "Ada-nSGDA/AdaDir players also write magnitudes.csv and magnitudes_{d,g}.png (each layer's\n"
                "Adam-oracle norm ||A(t)|| and ||A(t)||/||A(0)||, \"Dissecting adaptive methods in GANs\" Fig. 2b/c);\n"
                "--calibrate-out saves an Ada-nSGDA run's mean ||A|| per layer, which --calibration-d/-g turn into an\n"
                "nSGDA run's constant per-layer step sizes (Fig. 5).\n"
                "Several processes: mpirun -np N nash fmnist --distributed (one process per GPU with --device cuda).\n"
                "Exit codes: 0 ok, 1 training failed, 2 bad flags or unwritable --out, 130 stopped by a signal.");
  p.add_string("arch", "dcgan", "dcgan, sngan, wgan-gp, progan or resnet")
      .add_string("preset", "quick", "quick or full: the defaults of the flags below that are 0")
      .add_string("opt-d", "adam", "D's optimizer: adam, sgda, nsgda, ada-nsgda, adadir or lreqadam")
      .add_string("opt-g", "adam", "G's optimizer (same choices)")
      .add_int("steps", 0, "generator updates in all (0: the preset's for the architecture)", 0)
      .add_int("n-dis", 0, "D updates per G update (0: 5 for wgan-gp and resnet, else 1)", 0, 100)
      .add_int("batch", 0, "batch size (0: 64)", 0, 65536)
      .add_int("width", 0, "network width: D's first and G's last hidden channels (0: quick 32, full 64)", 0, 1024)
      .add_int("z-dim", 0, "latent size (0: 100, progan and resnet 128)", 0, 4096)
      .add_int("attention", 0, "resnet: a self-attention block in G and D on the 8x8 or 16x16 feature maps (SAGAN; "
               "width a multiple of 8); 0: none", 0, 16)
      .add_double("lr-g", 0, "G's learning rate (0: the optimizer's default for the architecture)", 0, 10)
      .add_double("lr-d", 0, "D's learning rate (0: --ttur times the default)", 0, 10)
      .add_double("ttur", 0, "two time-scales: lr_d / lr_g when --lr-d is not given (0: 1)", 0, 1000)
      .add_double("beta1", -1, "Adam's beta1 (< 0: the architecture's: 0.5, progan and resnet 0)", -1, 0.999999)
      .add_double("beta2", -1, "Adam's beta2 (< 0: 0.999, wgan-gp and resnet 0.9, progan 0.99)", -1, 0.999999)
      .add_string("loss", "default", "the GAN loss: default (the architecture's: dcgan ns, sngan hinge, wgan-gp, "
                  "progan and resnet wasserstein), ns, hinge, wasserstein or ls (least squares, LSGAN)")
      .add_string("d-norm", "default", "D's normalization: default (the architecture's), none, bn, sn or wn "
                  "(resnet: none, sn or wn)")
      .add_string("d-reg", "default", "D's regularizer: default (gp for wgan-gp, progan and resnet, else none), none, "
                  "gp, r1 or ortho")
      .add_double("d-reg-weight", -1, "the regularizer's weight (< 0: gp 10, r1 10, ortho 1e-4)", -1, 1e6)
      .add_double("d-clip", 0, "clip D's parameters to [-c, c] after each D update (0: off; the original WGAN)", 0,
                  1e6)
      .add_double("g-ema", 0, "also keep an exponential moving average of G's weights with this decay (warm-up "
                  "min(decay, (1+t)/(10+t)); ProGAN: 0.999) and report its FID and samples_ema.png (0: off)", 0,
                  0.999999)
      .add_bool("conditional", false, "class-conditional G (the class appended to z, per-class batch norm) and "
                "projection D on the labels (dcgan, sngan, wgan-gp, resnet): samples.png has a row per class; "
                "reports the class accuracy and intra-FID")
      .add_string("lr-decay", "none", "none, or linear: both learning rates decay linearly to 0 at --steps (the "
                  "ResNet WGAN-GP's schedule)")
      .add_string("diffaugment", "", "differentiable augmentation of every batch D sees (DiffAugment): a policy "
                  "color,translation,cutout or a subset; for small training sets (--limit); empty: off", true)
      .add_int("seed", 0, "random seed (initialisation, data order, latents)", 0)
      .add_string("device", def.device, "cpu, cuda, cuda:N or auto (cuda when a GPU answers)")
      .add_string("data", "", "folder with the Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)",
                  true)
      .add_int("limit", 0, "train on the first N training images only (0: all 60000)", 0)
      .add_string("out", def.out_dir, "output folder (empty: write nothing)", true)
      .add_string("fid-net", def.fid_net, "the FID feature network from `nash classifier` (empty: no FID)", true)
      .add_int("fid-samples", 0, "generated images per FID (0: quick 5000, full 10000)", 0, 1000000)
      .add_int("fid-every", 0, "FID every N steps besides the final one (0: the preset's, -1: final only)", -1)
      .add_int("sample-every", 0, "a sample grid every N steps (0: the preset's)", 0)
      .add_int("checkpoint-every", 0, "a checkpoint every N steps besides the final one (0: the preset's)", 0)
      .add_int("log-every", 0, "steps per metrics.csv row (0: quick 10, full 50)", 0)
      .add_string("resume", "", "continue from this checkpoint", true)
      .add_int("magnitudes-every", 0, "for ada-nsgda/adadir players: magnitudes.csv rows (per layer ||g||, ||A|| and "
               "||A(t)||/||A(0)||) every N steps and at step 1, and magnitudes_{d,g}.png (0: quick 1, full 10)", 0)
      .add_string("calibrate-out", "", "at the end, save each ada-nsgda player's mean ||A|| per layer over the run "
                  "to PREFIX.d.txt / PREFIX.g.txt (for --calibration-d/-g)", true)
      .add_string("calibration-d", "", "D's nsgda per-layer step sizes: lr-d times each layer's mean ||A|| in this "
                  "file (from --calibrate-out; lr-d then defaults to the ada-nsgda rate)", true)
      .add_string("calibration-g", "", "G's, likewise (--opt-g nsgda)", true)
      .add_string("on-nonfinite", "stop", "stop (the default: report and stop) or skip (drop that update, count it)")
      .add_int("threads", 0, "CPU threads for the kernels and the BLAS (0: the process default)", 0, 1024)
      .add_bool("plots", true, "write training.png")
      .add_bool("distributed", false,
                "data-parallel over the processes of an MPI launch (mpirun -np N nash fmnist --distributed): "
                "--batch is the global batch, rank 0 writes every file, --resume works on any N")
      .add_bool("sync-bn", true, "with --distributed: batch norm over the global batch (--sync-bn=false: per process)")
      .add_bool("quiet", false, "no progress and no summary on stdout");
  const char* name = "nash fmnist";
  FmnistConfig cfg;
  try {
    p.parse(argc, argv, first);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
    auto choice = [&](auto parse, const char* flag) {
      try {
        return parse(p.get_string(flag));
      } catch (const Error& e) {
        throw cli::UsageError(std::string("--") + flag + ": " + e.what());
      }
    };
    const std::string resume = p.get_string("resume");
    if (!resume.empty()) {
      try {
        cfg = fmnist_config_from_checkpoint(resume);
      } catch (const Error& e) {
        std::cerr << name << ": --resume: " << e.what() << '\n';
        return cli::kRuntimeExit;
      }
    }
    if (resume.empty() || p.is_set("arch")) cfg.arch = choice(parse_fmnist_arch, "arch");
    if (resume.empty() || p.is_set("preset")) cfg.preset = choice(parse_fmnist_preset, "preset");
    if (resume.empty() || p.is_set("opt-d")) cfg.opt_d = choice(parse_fmnist_optimizer, "opt-d");
    if (resume.empty() || p.is_set("opt-g")) cfg.opt_g = choice(parse_fmnist_optimizer, "opt-g");
    auto int_flag = [&](const char* flag, int64_t& to) {
      if (resume.empty() || p.is_set(flag)) to = p.get_int(flag);
    };
    auto real_flag = [&](const char* flag, double& to) {
      if (resume.empty() || p.is_set(flag)) to = p.get_double(flag);
    };
    int_flag("steps", cfg.steps);
    int_flag("n-dis", cfg.n_dis);
    int_flag("batch", cfg.batch);
    int_flag("width", cfg.width);
    int_flag("z-dim", cfg.z_dim);
    int_flag("attention", cfg.attention);
    real_flag("lr-g", cfg.lr_g);
    real_flag("lr-d", cfg.lr_d);
    real_flag("beta1", cfg.beta1);
    real_flag("beta2", cfg.beta2);
    real_flag("d-reg-weight", cfg.reg_weight);
    real_flag("d-clip", cfg.d_clip);
    real_flag("g-ema", cfg.g_ema);
    if (resume.empty() || p.is_set("conditional")) cfg.conditional = p.get_bool("conditional");
    if (resume.empty() || p.is_set("diffaugment")) cfg.diffaugment = p.get_string("diffaugment");
    if (resume.empty() || p.is_set("lr-decay")) cfg.lr_decay = p.get_string("lr-decay");
    if (resume.empty() || p.is_set("d-norm")) cfg.d_norm = choice(parse_fmnist_d_norm, "d-norm");
    if (resume.empty() || p.is_set("loss")) cfg.loss = choice(parse_fmnist_loss, "loss");
    if (resume.empty() || p.is_set("d-reg")) cfg.d_reg = choice(parse_fmnist_d_reg, "d-reg");
    int_flag("limit", cfg.limit);
    if (resume.empty() || p.is_set("seed")) cfg.seed = static_cast<uint64_t>(p.get_int("seed"));
    cfg.ttur = p.get_double("ttur");
    cfg.device = p.get_string("device");
    cfg.data_dir = p.get_string("data");
    cfg.out_dir = p.get_string("out");
    cfg.fid_net = p.get_string("fid-net");
    cfg.fid_samples = p.get_int("fid-samples");
    cfg.fid_every = p.get_int("fid-every");
    cfg.sample_every = p.get_int("sample-every");
    cfg.checkpoint_every = p.get_int("checkpoint-every");
    cfg.log_every = p.get_int("log-every");
    cfg.magnitudes_every = p.get_int("magnitudes-every");
    cfg.calibrate_out = p.get_string("calibrate-out");
    cfg.calibration_d = p.get_string("calibration-d");
    cfg.calibration_g = p.get_string("calibration-g");
    const std::string nf = p.get_string("on-nonfinite");
    if (nf == "stop")
      cfg.on_nonfinite = optim::NonFinitePolicy::Stop;
    else if (nf == "skip")
      cfg.on_nonfinite = optim::NonFinitePolicy::Skip;
    else
      throw cli::UsageError("--on-nonfinite: expected stop or skip, got '" + nf + "'");
    cfg.threads = static_cast<int>(p.get_int("threads"));
    cfg.plots = p.get_bool("plots");
    cfg.quiet = p.get_bool("quiet");
    cfg.distributed = p.get_bool("distributed");
    cfg.sync_bn = p.get_bool("sync-bn");
    if (cfg.distributed && dist::launch_info().rank != 0) cfg.quiet = true;  // rank 0 reports
    if (cfg.device != "auto") {
      try {
        Device::parse(cfg.device);
      } catch (const std::exception& e) {
        throw cli::UsageError(std::string("--device: ") + e.what());
      }
    }
    cfg.resolved();  // flag values the parser's ranges let through but the config rejects
  } catch (const cli::UsageError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  } catch (const Error& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  cfg.handle_signals = true;
  try {
    const FmnistResult r = train_fmnist(cfg);
    if (!cfg.quiet) {
      const FmnistConfig& c = r.config;
      std::printf("%s: %lld steps (%s), %.1f s training, %.1f s wall, on %s%s\n", run_title(c).c_str(),
                  static_cast<long long>(r.steps_done),
                  r.start_step > 0 ? ("resumed at " + std::to_string(r.start_step)).c_str() : "from scratch",
                  r.train_seconds, r.wall_seconds, r.device.c_str(),
                  r.world_size > 1 ? (" x " + std::to_string(r.world_size) + " processes").c_str() : "");
      if (r.skipped > 0) std::printf("skipped updates (non-finite): %lld\n", static_cast<long long>(r.skipped));
      if (r.fid >= 0)
        std::printf("FID %.2f (%lld generated vs the 10000 test images, Fashion-MNIST classifier features); "
                    "classifier score %.2f (test images %.2f)\n",
                    r.fid, static_cast<long long>(c.fid_samples), r.classifier_score, r.classifier_score_real);
      if (r.fid >= 0 && r.manifold.n_fake > 0)
        std::printf("precision %.3f, recall %.3f, density %.3f, coverage %.3f (k = %lld, %lld generated vs %lld test "
                    "images)\n",
                    r.manifold.precision, r.manifold.recall, r.manifold.density, r.manifold.coverage,
                    static_cast<long long>(r.manifold.k), static_cast<long long>(r.manifold.n_fake),
                    static_cast<long long>(r.manifold.n_real));
      if (r.fid >= 0 && r.kid.subsets > 0)
        std::printf("KID %.5f +- %.5f (%lld subsets of %lld)\n", r.kid.mean, r.kid.std,
                    static_cast<long long>(r.kid.subsets), static_cast<long long>(r.kid.subset_size));
      if (r.class_accuracy >= 0)
        std::printf("class accuracy %.1f%% (generated images the classifier assigns to their conditioning class; "
                    "its test accuracy on real images is ~92%%)\n",
                    100.0 * r.class_accuracy);
      if (r.intra_fid >= 0) std::printf("intra-FID %.2f (each class against its test images, averaged)\n", r.intra_fid);
      if (r.fid_ema >= 0)
        std::printf("G's weight average (decay %g): FID %.2f, classifier score %.2f (same latents)\n", c.g_ema,
                    r.fid_ema, r.classifier_score_ema);
      else if (!r.fid_note.empty() && !r.interrupted)
        std::printf("%s\n", r.fid_note.c_str());
      if (!c.out_dir.empty())
        std::printf("outputs in %s/: samples.png, training.png, metrics.csv, summary.json, checkpoint.safetensors%s%s\n",
                    c.out_dir.c_str(), c.g_ema > 0 ? ", samples_ema.png" : "",
                    r.magnitudes.empty() ? "" : ", magnitudes.csv, magnitudes_{d,g}.png");
      for (const std::string& f : r.calibration_files)
        std::printf("calibration (mean ||A|| per layer): %s\n", f.c_str());
    }
    if (r.interrupted) {
      if (!r.checkpoint.empty() || !cfg.distributed)  // one message per job: rank 0 holds the checkpoint
        std::fprintf(stderr, "%s: stopped at step %lld; checkpoint %s (continue with --resume %s)\n", name,
                     static_cast<long long>(r.steps_done),
                     r.checkpoint.empty() ? "(none: no --out)" : r.checkpoint.c_str(), r.checkpoint.c_str());
      return 130;
    }
    return 0;
  } catch (const cli::OutputError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    if (cfg.distributed) dist::abort_job(cli::kUsageExit);  // the other ranks would wait in their next collective
    return cli::kUsageExit;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    if (cfg.distributed) dist::abort_job(cli::kRuntimeExit);
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
