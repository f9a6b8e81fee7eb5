// Tests for `nash fmnist`: the config table, a two-step run of each architecture on a small IDX stand-in with its
// outputs, exact resume after an interruption, checkpoint mismatches, the FID path, the subcommand's exit codes, and
// the adaptive-magnitude traces and nSGDA calibration of an Ada-nSGDA run.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <functional>
#include <map>
#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/classifier.h"
#include "apps/fmnist.h"
#include "fmnist_fixture.h"
#include "idx_fixture.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/optim/calibration.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace nash;
using apps::FmnistArch;
using apps::FmnistConfig;
using apps::FmnistOptimizer;
using nash_test::expect_error;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_fmnist", name); }

// A data folder shared by the tests of this file: 96 training and 40 test images.
const fs::path& data_dir() {
  static const fs::path d = [] {
    fs::path p = temp_dir("data");
    nash_test::write_split(p, "train", 96, 3);
    nash_test::write_split(p, "t10k", 40, 4);
    return p;
  }();
  return d;
}

// A tiny, fast config: width 4, batch 8, no FID.
FmnistConfig tiny(FmnistArch arch, const fs::path& out, int64_t steps) {
  FmnistConfig c = nash_test::tiny_fmnist_config(arch, data_dir().string(), out.string(), steps);
  c.plots = true;
  return c;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Every tensor of a checkpoint file, by name, as float values.
std::map<std::string, std::vector<float>> checkpoint_values(const fs::path& p) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& kv : io::load_safetensors(p.string()).tensors)
    if (kv.second.dtype() == DType::Float32) out[kv.first] = kv.second.contiguous().to_vector<float>();
  return out;
}

// metrics.csv's rows without the timing column (step_seconds, the 11th).
std::vector<std::string> metrics_rows(const fs::path& p) {
  std::vector<std::string> rows;
  std::istringstream s(read_file(p));
  std::string line;
  while (std::getline(s, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    if (cells.size() > 10) cells.erase(cells.begin() + 10);
    std::string row;
    for (const std::string& c : cells) row += c + ",";
    rows.push_back(row);
  }
  return rows;
}

// Runs c into dir as if a signal stopped it after step `at`, then resumes it from its checkpoint to the end; returns
// the resumed run's result.
apps::FmnistResult interrupted_then_resumed(FmnistConfig c, const fs::path& dir, int64_t at) {
  c.out_dir = dir.string();
  c.interrupt_after = at;
  apps::train_fmnist(c);
  c.interrupt_after = 0;
  c.resume = (dir / "checkpoint.safetensors").string();
  return apps::train_fmnist(c);
}

// Trains the FID feature network on a stand-in data folder into out/net.safetensors (16 features: the stand-ins'
// test sets are small) and returns its path.
std::string stand_in_classifier(const fs::path& data, const fs::path& out, int64_t epochs, int64_t batch) {
  apps::ClassifierConfig cc;
  cc.data_dir = data.string();
  cc.out = (out / "net.safetensors").string();
  cc.epochs = epochs;
  cc.batch = batch;
  cc.feature_dim = 16;
  cc.device = "cpu";
  cc.quiet = true;
  cc.threads = 1;
  apps::train_classifier(cc);
  return cc.out;
}

int run(std::vector<std::string> args, std::string* err) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  const int rc = apps::run_fmnist(static_cast<int>(argv.size()), argv.data(), 2);
  testing::internal::GetCapturedStdout();
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

}  // namespace

TEST(FmnistApp, ConfigTableFillsEachArchitecturesDefaults) {
  FmnistConfig c;
  c.arch = FmnistArch::WganGP;
  FmnistConfig r = c.resolved();
  EXPECT_EQ(r.n_dis, 5);
  EXPECT_DOUBLE_EQ(r.beta2, 0.9);
  EXPECT_DOUBLE_EQ(r.reg_weight, 10);
  EXPECT_EQ(r.d_reg, apps::FmnistDReg::GP);
  EXPECT_EQ(r.d_norm, apps::FmnistDNorm::None);
  EXPECT_EQ(r.width, 32);
  EXPECT_EQ(r.opt_d, FmnistOptimizer::Adam);
  c.arch = FmnistArch::ProGAN;
  c.ttur = 4;
  r = c.resolved();
  EXPECT_EQ(r.n_dis, 1);
  EXPECT_DOUBLE_EQ(r.beta1, 0.0);
  EXPECT_DOUBLE_EQ(r.lr_d, 4 * r.lr_g);
  EXPECT_EQ(r.z_dim, 128);
  c = FmnistConfig();
  c.preset = apps::FmnistPreset::Full;
  r = c.resolved();
  EXPECT_EQ(r.width, 64);
  EXPECT_EQ(r.steps, 20000);
  EXPECT_EQ(r.fid_samples, 10000);
  // Bad values name the field.
  for (auto bad : std::vector<std::function<void(FmnistConfig&)>>{
           [](FmnistConfig& x) { x.batch = 1; }, [](FmnistConfig& x) { x.lr_g = NAN; },
           [](FmnistConfig& x) { x.ttur = -1; }, [](FmnistConfig& x) { x.n_dis = 101; },
           [](FmnistConfig& x) { x.beta2 = 1.0; }}) {
    FmnistConfig x;
    bad(x);
    EXPECT_THROW(x.resolved(), Error);
  }
  EXPECT_THROW(apps::parse_fmnist_arch("stylegan"), Error);
  c = FmnistConfig();
  c.d_reg = apps::FmnistDReg::Ortho;
  EXPECT_DOUBLE_EQ(c.resolved().reg_weight, 1e-4);
  EXPECT_EQ(c.resolved().d_norm, apps::FmnistDNorm::BN);  // dcgan's
  c.arch = FmnistArch::ProGAN;
  c.d_norm = apps::FmnistDNorm::SN;
  expect_error([&] { c.resolved(); }, {"progan", "--d-norm sn"});
  EXPECT_EQ(apps::parse_fmnist_optimizer("ada-nsgda"), FmnistOptimizer::AdaNSGDA);
  // Each architecture's loss unless another is asked for.
  const std::vector<std::pair<FmnistArch, apps::FmnistLoss>> losses = {
      {FmnistArch::DCGAN, apps::FmnistLoss::NS},
      {FmnistArch::SNGAN, apps::FmnistLoss::Hinge},
      {FmnistArch::WganGP, apps::FmnistLoss::Wasserstein},
      {FmnistArch::ProGAN, apps::FmnistLoss::Wasserstein}};
  for (const auto& [arch, loss] : losses) {
    c = FmnistConfig();
    c.arch = arch;
    EXPECT_EQ(c.resolved().loss, loss) << apps::fmnist_name(arch);
    c.loss = apps::FmnistLoss::LS;
    EXPECT_EQ(c.resolved().loss, apps::FmnistLoss::LS);
  }
  EXPECT_EQ(apps::parse_fmnist_loss("ls"), apps::FmnistLoss::LS);
  expect_error([] { apps::parse_fmnist_loss("minimax"); }, {"loss", "minimax", "ns, hinge, wasserstein, ls"});
}

TEST(FmnistApp, DiffAugmentTrainsResumesExactlyAndIsAModelFlag) {
  const fs::path plain = temp_dir("aug_plain"), a = temp_dir("aug_whole"), b = temp_dir("aug_parts");
  const apps::FmnistResult none = apps::train_fmnist(tiny(FmnistArch::DCGAN, plain, 4));
  FmnistConfig c = tiny(FmnistArch::DCGAN, a, 4);
  c.diffaugment = "cutout,translation,color";
  const apps::FmnistResult with = apps::train_fmnist(c);
  EXPECT_EQ(with.config.diffaugment, "color,translation,cutout");  // canonical
  EXPECT_NE(with.log[0].d_loss, none.log[0].d_loss) << "D must see augmented batches";
  EXPECT_EQ(apps::fmnist_config_from_checkpoint((a / "checkpoint.safetensors").string()).diffaugment,
            "color,translation,cutout");
  // The draws come from the checkpointed random stream: a resumed run is the uninterrupted one.
  interrupted_then_resumed(c, b, 2);
  const auto wa = checkpoint_values(a / "checkpoint.safetensors"), wb = checkpoint_values(b / "checkpoint.safetensors");
  for (const auto& kv : wa) EXPECT_EQ(kv.second, wb.at(kv.first)) << kv.first;
  // Another policy does not resume it; a bad one is a usage error naming the flag.
  c.out_dir = b.string();
  c.resume = (b / "checkpoint.safetensors").string();
  c.steps = 5;
  c.diffaugment = "color";
  expect_error([&] { apps::train_fmnist(c); }, {"diffaugment", "color,translation,cutout"});
  std::string err;
  EXPECT_EQ(run({"nash", "fmnist", "--diffaugment", "color,flip"}, &err), 2);
  EXPECT_NE(err.find("--diffaugment"), std::string::npos) << err;
  EXPECT_NE(err.find("flip"), std::string::npos) << err;
  for (const fs::path& d : {plain, a, b}) fs::remove_all(d);
}

TEST(FmnistApp, TheLossFlagChangesTheLossAndIsAModelFlag) {
  const fs::path a = temp_dir("loss_ns"), b = temp_dir("loss_ls");
  const apps::FmnistResult ns = apps::train_fmnist(tiny(FmnistArch::DCGAN, a, 2));
  FmnistConfig c = tiny(FmnistArch::DCGAN, b, 2);
  c.loss = apps::FmnistLoss::LS;
  const apps::FmnistResult ls = apps::train_fmnist(c);
  // The same first D batch and weights: only the loss differs. LSGAN's D loss is (D(x) - 1)² + D(G(z))² (halved).
  EXPECT_NE(ls.log[0].d_loss, ns.log[0].d_loss);
  EXPECT_GT(ls.log[0].d_loss, 0);
  EXPECT_EQ(apps::fmnist_config_from_checkpoint((b / "checkpoint.safetensors").string()).loss, apps::FmnistLoss::LS);
  EXPECT_NE(read_file(b / "summary.json").find("\"loss\": \"ls\""), std::string::npos);
  c.resume = (b / "checkpoint.safetensors").string();
  c.steps = 3;
  c.loss = apps::FmnistLoss::Hinge;
  expect_error([&] { apps::train_fmnist(c); }, {"loss", "ls", "hinge"});
  std::string err;
  EXPECT_EQ(run({"nash", "fmnist", "--loss", "minimax"}, &err), 2);
  EXPECT_NE(err.find("--loss"), std::string::npos) << err;
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(FmnistApp, EveryArchitectureTrainsTwoStepsAndWritesItsOutputs) {
  for (FmnistArch arch :
       {FmnistArch::DCGAN, FmnistArch::SNGAN, FmnistArch::WganGP, FmnistArch::ProGAN, FmnistArch::ResNet}) {
    SCOPED_TRACE(apps::fmnist_name(arch));
    const fs::path out = temp_dir(std::string("two_") + apps::fmnist_name(arch));
    const apps::FmnistResult r = apps::train_fmnist(tiny(arch, out, 2));
    EXPECT_EQ(r.steps_done, 2);
    ASSERT_EQ(r.log.size(), 2u);
    for (const auto& row : r.log) {
      EXPECT_TRUE(std::isfinite(row.d_loss) && std::isfinite(row.g_loss));
      EXPECT_GT(row.grad_norm_d, 0);
      EXPECT_GT(row.update_norm_g, 0);
    }
    if (arch == FmnistArch::WganGP || arch == FmnistArch::ProGAN || arch == FmnistArch::ResNet)
      EXPECT_GT(r.log[0].penalty, 0);
    EXPECT_DOUBLE_EQ(r.log[0].grad_ratio, 2.0);  // both norms are their own reference at step 1
    EXPECT_NE(r.log[1].grad_ratio, 2.0);
    EXPECT_LT(r.fid, 0);
    EXPECT_NE(r.fid_note.find("no FID"), std::string::npos);
    for (const char* f : {"metrics.csv", "summary.json", "checkpoint.safetensors", "samples.png", "training.png"})
      EXPECT_TRUE(fs::exists(out / f)) << f;
    const io::Image grid = io::read_png((out / "samples.png").string());
    EXPECT_EQ(grid.width, (8 * 34 + 2) * 2);
    EXPECT_EQ(grid.height, (8 * 34 + 2) * 2);
    EXPECT_EQ(metrics_rows(out / "metrics.csv").size(), 3u);
    EXPECT_NE(read_file(out / "summary.json").find(std::string("\"arch\": \"") + apps::fmnist_name(arch)),
              std::string::npos);
    fs::remove_all(out);
  }
}

TEST(FmnistApp, ResNetWithAttentionTrainsRecordsItAndChecksItsFlags) {
  const fs::path out = temp_dir("resnet_attention");
  FmnistConfig c = tiny(FmnistArch::ResNet, out, 2);
  c.width = 8;
  c.attention = 16;
  c.d_norm = apps::FmnistDNorm::SN;
  const apps::FmnistResult r = apps::train_fmnist(c);
  EXPECT_EQ(r.config.loss, apps::FmnistLoss::Wasserstein);
  EXPECT_EQ(r.config.n_dis, 5);
  EXPECT_EQ(r.config.z_dim, 8);
  EXPECT_DOUBLE_EQ(r.config.beta1, 0.0);
  EXPECT_DOUBLE_EQ(r.config.beta2, 0.9);
  for (const auto& row : r.log) EXPECT_TRUE(std::isfinite(row.d_loss) && std::isfinite(row.g_loss) && row.penalty > 0);
  // G: reshape, linear, reshape, up to 8, up to 16, attention; D: first block to 16, attention (spectral).
  const auto w = checkpoint_values(out / "checkpoint.safetensors");
  for (const char* name :
       {"G.5.gamma", "G.5.query.weight", "D.1.gamma", "D.1.query.module.weight", "D.1.query.weight_u"})
    EXPECT_TRUE(w.count(name)) << name;
  const FmnistConfig back = apps::fmnist_config_from_checkpoint((out / "checkpoint.safetensors").string());
  EXPECT_EQ(back.arch, FmnistArch::ResNet);
  EXPECT_EQ(back.attention, 16);
  EXPECT_NE(read_file(out / "summary.json").find("\"attention\": 16"), std::string::npos);
  // A resumed run must build the same networks.
  FmnistConfig other = c;
  other.resume = (out / "checkpoint.safetensors").string();
  other.steps = 3;
  other.attention = 8;
  expect_error([&] { apps::train_fmnist(other); }, {"attention", "16", "8"});
  fs::remove_all(out);

  auto bad = [&](std::function<void(FmnistConfig&)> edit, std::initializer_list<const char*> words) {
    FmnistConfig b = tiny(FmnistArch::ResNet, "", 1);
    b.width = 8;
    edit(b);
    expect_error([&] { b.resolved(); }, words);
  };
  bad([](FmnistConfig& b) { b.d_norm = apps::FmnistDNorm::BN; }, {"resnet", "--d-norm", "bn"});
  bad([](FmnistConfig& b) { b.arch = FmnistArch::DCGAN, b.attention = 8; }, {"--attention", "resnet", "dcgan"});
  bad([](FmnistConfig& b) { b.attention = 12; }, {"--attention", "8 or 16", "12"});
  bad([](FmnistConfig& b) { b.width = 12, b.attention = 8; }, {"--attention", "divisible by 8", "12"});
  bad([](FmnistConfig& b) { b.d_norm = apps::FmnistDNorm::WN, b.attention = 8; }, {"attention", "wn"});
}

TEST(FmnistApp, LinearLrDecayScalesBothPlayersStepsAndResumesExactly) {
  // SGDA moves each parameter by lr x its gradient, so a step's update norm over its gradient norm is that step's lr:
  // lr (1 - t / steps) at G step t = 0, 1, 2, 3 of 4.
  const fs::path a = temp_dir("decay_whole"), b = temp_dir("decay_parts");
  FmnistConfig c = tiny(FmnistArch::DCGAN, a, 4);
  c.opt_d = c.opt_g = FmnistOptimizer::SGDA;
  c.lr_d = 0.03;
  c.lr_g = 0.02;
  c.lr_decay = "linear";
  c.limit = 20;
  const apps::FmnistResult r = apps::train_fmnist(c);
  ASSERT_EQ(r.log.size(), 4u);
  for (std::size_t t = 0; t < 4; ++t) {
    const double f = 1.0 - static_cast<double>(t) / 4;
    EXPECT_NEAR(r.log[t].update_norm_g / r.log[t].grad_norm_g, 0.02 * f, 1e-6 * f) << t;
    EXPECT_NEAR(r.log[t].update_norm_d / r.log[t].grad_norm_d, 0.03 * f, 1e-6 * f) << t;
  }
  const FmnistConfig back = apps::fmnist_config_from_checkpoint((a / "checkpoint.safetensors").string());
  EXPECT_EQ(back.lr_decay, "linear");
  EXPECT_DOUBLE_EQ(back.lr_g, 0.02);  // the undecayed rate
  // Interrupted after step 2 and resumed: the same weights bit for bit.
  FmnistConfig parts = c;
  parts.out_dir = b.string();
  parts.interrupt_after = 2;
  apps::train_fmnist(parts);
  parts.interrupt_after = 0;
  parts.resume = (b / "checkpoint.safetensors").string();
  apps::train_fmnist(parts);
  const auto wa = checkpoint_values(a / "checkpoint.safetensors"), wb = checkpoint_values(b / "checkpoint.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& kv : wa) EXPECT_EQ(kv.second, wb.at(kv.first)) << kv.first;
  // A resumed run keeps the schedule it was trained with.
  parts.resume = (a / "checkpoint.safetensors").string();
  parts.steps = 5;
  parts.lr_decay = "none";
  expect_error([&] { apps::train_fmnist(parts); }, {"lr_decay", "linear", "none"});
  FmnistConfig bad = tiny(FmnistArch::DCGAN, "", 1);
  bad.lr_decay = "cosine";
  expect_error([&] { bad.resolved(); }, {"--lr-decay", "cosine"});
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(FmnistApp, DNormsRegularizersAndClippingTrainAndShowInTheCheckpoint) {
  struct Case {
    apps::FmnistDNorm norm;
    apps::FmnistDReg reg;
    double clip;
    const char* tensor;  // a tensor name the checkpoint must hold
  };
  for (const Case& k : std::vector<Case>{{apps::FmnistDNorm::WN, apps::FmnistDReg::Ortho, 0, "D.0.weight_g"},
                                         {apps::FmnistDNorm::SN, apps::FmnistDReg::R1, 0, "D.0.weight_u"},
                                         {apps::FmnistDNorm::None, apps::FmnistDReg::None, 0.01, "D.0.weight"}}) {
    SCOPED_TRACE(std::string(apps::fmnist_name(k.norm)) + "/" + apps::fmnist_name(k.reg));
    const fs::path out = temp_dir("dnorm");
    FmnistConfig c = tiny(FmnistArch::DCGAN, out, 2);
    c.d_norm = k.norm;
    c.d_reg = k.reg;
    c.d_clip = k.clip;
    const apps::FmnistResult r = apps::train_fmnist(c);
    if (k.reg != apps::FmnistDReg::None) EXPECT_GT(r.log.back().penalty, 0);
    const auto w = checkpoint_values(out / "checkpoint.safetensors");
    EXPECT_TRUE(w.count(k.tensor)) << k.tensor;
    if (k.clip > 0)
      for (const auto& kv : w)
        if (kv.first.rfind("D.", 0) == 0)
          for (float x : kv.second) ASSERT_LE(std::fabs(x), k.clip + 1e-7) << kv.first;
    EXPECT_EQ(apps::fmnist_config_from_checkpoint((out / "checkpoint.safetensors").string()).d_norm, k.norm);
    fs::remove_all(out);
  }
}

TEST(FmnistApp, ResumeAfterAnInterruptionMatchesAnUninterruptedRun) {
  for (FmnistArch arch :
       {FmnistArch::DCGAN, FmnistArch::SNGAN, FmnistArch::WganGP, FmnistArch::ProGAN, FmnistArch::ResNet}) {
    SCOPED_TRACE(apps::fmnist_name(arch));
    const fs::path a = temp_dir("whole"), b = temp_dir("parts");
    FmnistConfig ca = tiny(arch, a, 5);
    ca.limit = 20;  // 2 batches per epoch: the interruption falls inside an epoch, the runs cross several
    if (arch == FmnistArch::WganGP || arch == FmnistArch::ResNet) ca.n_dis = 2;
    apps::train_fmnist(ca);
    FmnistConfig cb = ca;
    cb.out_dir = b.string();
    cb.interrupt_after = 3;  // as if Ctrl-C arrived during step 3
    const apps::FmnistResult first = apps::train_fmnist(cb);
    EXPECT_TRUE(first.interrupted);
    EXPECT_EQ(first.steps_done, 3);
    cb.interrupt_after = 0;
    cb.resume = (b / "checkpoint.safetensors").string();
    const apps::FmnistResult second = apps::train_fmnist(cb);
    EXPECT_FALSE(second.interrupted);
    EXPECT_EQ(second.start_step, 3);
    EXPECT_EQ(second.steps_done, 5);
    const auto wa = checkpoint_values(a / "checkpoint.safetensors"), wb = checkpoint_values(b / "checkpoint.safetensors");
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& kv : wa) EXPECT_EQ(kv.second, wb.at(kv.first)) << kv.first;  // bit for bit
    EXPECT_EQ(metrics_rows(a / "metrics.csv"), metrics_rows(b / "metrics.csv"));
    fs::remove_all(a);
    fs::remove_all(b);
  }
}

TEST(FmnistApp, ConditionalRunsTrainResumeExactlyAndDrawARowPerClass) {
  for (FmnistArch arch : {FmnistArch::DCGAN, FmnistArch::SNGAN, FmnistArch::WganGP, FmnistArch::ResNet}) {
    SCOPED_TRACE(apps::fmnist_name(arch));
    const fs::path a = temp_dir("cond_whole"), b = temp_dir("cond_parts");
    FmnistConfig c = tiny(arch, a, 4);
    c.conditional = true;
    c.limit = 20;
    if (arch == FmnistArch::WganGP || arch == FmnistArch::ResNet) c.n_dis = 2;
    const apps::FmnistResult whole = apps::train_fmnist(c);
    for (const auto& row : whole.log) EXPECT_TRUE(std::isfinite(row.d_loss) && std::isfinite(row.g_loss));
    const io::Image grid = io::read_png((a / "samples.png").string());
    EXPECT_EQ(grid.width, (8 * 34 + 2) * 2);
    EXPECT_EQ(grid.height, (10 * 34 + 2) * 2);  // a row per class
    const auto wa = checkpoint_values(a / "checkpoint.safetensors");
    const char* embed = arch == FmnistArch::SNGAN ? "D.embed.module.weight" : "D.embed.weight";
    ASSERT_TRUE(wa.count(embed)) << embed;
    // A gain per class: DCGAN's first batch norm, the ResNet's first up block's first one.
    EXPECT_TRUE(wa.count(arch == FmnistArch::ResNet ? "G.3.bn1.gain.weight" : "G.2.gain.weight"));
    EXPECT_TRUE(apps::fmnist_config_from_checkpoint((a / "checkpoint.safetensors").string()).conditional);
    EXPECT_NE(read_file(a / "summary.json").find("\"conditional\": true"), std::string::npos);
    // Exact resume: labels, classes and latents continue as in the uninterrupted run.
    const apps::FmnistResult resumed = interrupted_then_resumed(c, b, 2);
    EXPECT_EQ(resumed.start_step, 2);
    const auto wb = checkpoint_values(b / "checkpoint.safetensors");
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& kv : wa) EXPECT_EQ(kv.second, wb.at(kv.first)) << kv.first;
    EXPECT_EQ(metrics_rows(a / "metrics.csv"), metrics_rows(b / "metrics.csv"));
    // The conditioning is a model flag: an unconditional resume of this checkpoint is refused by name.
    FmnistConfig u = c;
    u.conditional = false;
    u.out_dir = b.string();
    u.resume = (b / "checkpoint.safetensors").string();
    u.steps = 6;
    expect_error([&] { apps::train_fmnist(u); }, {"conditional", "1", "0"});
    fs::remove_all(a);
    fs::remove_all(b);
  }
  FmnistConfig p = tiny(FmnistArch::ProGAN, temp_dir("cond_progan"), 1);
  p.conditional = true;
  expect_error([&] { p.resolved(); }, {"--conditional", "progan"});
}

// A conditional G learns the stand-in's classes (class k: a bright band at rows 2k+1..2k+4): the class accuracy, the
// share of its images a classifier of the stand-in assigns to the class they were generated for, rises far above
// chance, and the classes drawn in turn are scored each equally.
TEST(FmnistApp, ConditionalGeneratorLearnsTheClassesItIsAskedFor) {
  const fs::path out = temp_dir("cond_learn");
  // The shared stand-in's 4 test images per class are too few for intra-FID's per-class covariances (16 features):
  // this test's own data has 20 per class.
  fs::create_directories(out / "data");
  nash_test::write_split(out / "data", "train", 96, 3);
  nash_test::write_split(out / "data", "t10k", 200, 4);
  const std::string net = stand_in_classifier(out / "data", out, 30, 16);  // confident on the bands
  FmnistConfig c = tiny(FmnistArch::DCGAN, out / "run", 400);
  c.data_dir = (out / "data").string();
  c.conditional = true;
  c.width = 16;
  c.batch = 32;
  c.fid_net = net;
  c.fid_samples = 200;  // 20 per class: above the 16 features, so intra-FID is computed
  c.fid_every = 200;
  const apps::FmnistResult r = apps::train_fmnist(c);
  ASSERT_EQ(r.class_accuracy_log.size(), 2u);
  EXPECT_EQ(r.class_accuracy_log.back().second, r.class_accuracy);
  EXPECT_GT(r.class_accuracy, 0.5) << "chance is 0.1";
  ASSERT_EQ(r.intra_fid_log.size(), 2u);
  EXPECT_TRUE(std::isfinite(r.intra_fid) && r.intra_fid > 0);
  EXPECT_GT(r.intra_fid, r.fid) << "each class against its own images is the harder test";
  const std::string csv = read_file(out / "run" / "fid.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "step,fid,classifier_score,precision,recall,density,coverage,kid,kid_std,class_accuracy,intra_fid");
  EXPECT_NE(read_file(out / "run" / "summary.json").find("\"class_accuracy\": 0."), std::string::npos);
  fs::remove_all(out);
}

TEST(FmnistApp, ACheckpointOfOtherModelFlagsIsRefusedByName) {
  const fs::path out = temp_dir("mismatch");
  apps::train_fmnist(tiny(FmnistArch::DCGAN, out, 1));
  const std::string ck = (out / "checkpoint.safetensors").string();
  const std::string before = read_file(ck);
  FmnistConfig c = tiny(FmnistArch::SNGAN, out, 2);
  c.resume = ck;
  expect_error([&] { apps::train_fmnist(c); }, {"arch", "dcgan", "sngan"});
  c = tiny(FmnistArch::DCGAN, out, 2);
  c.width = 6;
  c.resume = ck;
  expect_error([&] { apps::train_fmnist(c); }, {"width", "4", "6"});
  EXPECT_EQ(read_file(ck), before);  // the refused runs left the checkpoint alone
  // The config a checkpoint implies, and a file that is not one.
  FmnistConfig from = apps::fmnist_config_from_checkpoint(ck);
  EXPECT_EQ(from.arch, FmnistArch::DCGAN);
  EXPECT_EQ(from.width, 4);
  EXPECT_EQ(from.steps, 1);
  std::ofstream(out / "junk.safetensors") << "not a checkpoint";
  EXPECT_THROW(apps::fmnist_config_from_checkpoint((out / "junk.safetensors").string()), Error);
  fs::remove_all(out);
}

// G's weight average: training is unchanged by it, the checkpoint holds it, a resume continues it bit for bit, and
// a checkpoint of another decay (or of a run without one) is refused by name.
TEST(FmnistApp, GeneratorWeightAverageLeavesTrainingAloneAndResumesExactly) {
  for (FmnistArch arch : {FmnistArch::DCGAN, FmnistArch::ProGAN}) {
    SCOPED_TRACE(apps::fmnist_name(arch));
    const fs::path plain = temp_dir("ema_plain"), a = temp_dir("ema_whole"), b = temp_dir("ema_parts");
    FmnistConfig c = tiny(arch, plain, 5);
    c.limit = 20;
    const apps::FmnistResult without = apps::train_fmnist(c);
    EXPECT_TRUE(without.params_g_ema.empty());
    c.g_ema = 0.9;
    c.out_dir = a.string();
    const apps::FmnistResult with = apps::train_fmnist(c);
    EXPECT_EQ(with.params_g, without.params_g);  // bit for bit: the average draws nothing, changes nothing
    EXPECT_EQ(with.params_d, without.params_d);
    ASSERT_EQ(with.params_g_ema.size(), with.params_g.size());
    EXPECT_NE(with.params_g_ema, with.params_g);
    EXPECT_TRUE(fs::exists(a / "samples_ema.png"));
    EXPECT_FALSE(fs::exists(plain / "samples_ema.png"));
    EXPECT_NE(read_file(a / "summary.json").find("\"g_ema\": 0.9"), std::string::npos);
    const auto wa = checkpoint_values(a / "checkpoint.safetensors");
    std::vector<float> avg;
    for (const auto& kv : wa)
      if (kv.first.rfind("G_ema.", 0) == 0) avg.insert(avg.end(), kv.second.begin(), kv.second.end());
    EXPECT_FALSE(avg.empty());
    EXPECT_EQ(apps::fmnist_config_from_checkpoint((a / "checkpoint.safetensors").string()).g_ema, 0.9);

    const apps::FmnistResult resumed = interrupted_then_resumed(c, b, 2);
    EXPECT_EQ(resumed.start_step, 2);
    EXPECT_EQ(resumed.params_g_ema, with.params_g_ema);
    const auto wb = checkpoint_values(b / "checkpoint.safetensors");
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& kv : wa) EXPECT_EQ(kv.second, wb.at(kv.first)) << kv.first;

    // Another decay, or none, does not resume this checkpoint; a checkpoint without the key resumes without one.
    FmnistConfig other = c;
    other.out_dir = temp_dir("ema_other").string();
    other.steps = 6;
    other.resume = (a / "checkpoint.safetensors").string();
    other.g_ema = 0.5;
    expect_error([&] { apps::train_fmnist(other); }, {"g_ema", "0.9", "0.5"});
    other.g_ema = 0;
    expect_error([&] { apps::train_fmnist(other); }, {"g_ema"});
    io::SafetensorsFile old = io::load_safetensors((plain / "checkpoint.safetensors").string());
    old.metadata.erase("g_ema");  // and the keys of later flags: runs without them had their defaults
    old.metadata.erase("conditional");
    old.metadata.erase("loss");
    old.metadata.erase("diffaugment");
    std::vector<std::pair<std::string, Tensor>> tensors(old.tensors.begin(), old.tensors.end());
    const std::string old_path = (plain / "old.safetensors").string();
    io::save_safetensors(old_path, tensors, old.metadata);
    EXPECT_EQ(apps::fmnist_config_from_checkpoint(old_path).g_ema, 0.0);
    EXPECT_FALSE(apps::fmnist_config_from_checkpoint(old_path).conditional);
    EXPECT_EQ(apps::fmnist_config_from_checkpoint(old_path).loss, apps::FmnistLoss::Default);
    EXPECT_EQ(apps::fmnist_config_from_checkpoint(old_path).diffaugment, "");
    other.resume = old_path;
    EXPECT_EQ(apps::train_fmnist(other).steps_done, 6);
    other.g_ema = 0.9;
    expect_error([&] { apps::train_fmnist(other); }, {"g_ema", "0.9"});
    for (const fs::path& d : {plain, a, b, fs::path(other.out_dir)}) fs::remove_all(d);
  }
}

TEST(FmnistApp, FidIsComputedWithAFeatureNetwork) {
  const fs::path out = temp_dir("fid");
  // The stand-in's 40 test images need a feature dimension below 40.
  const std::string net = stand_in_classifier(data_dir(), out, 1, 32);
  FmnistConfig c = tiny(FmnistArch::DCGAN, out / "run", 2);
  c.fid_net = net;
  c.fid_samples = 24;
  c.fid_every = 1;
  const apps::FmnistResult r = apps::train_fmnist(c);
  ASSERT_EQ(r.fid_log.size(), 2u);  // after step 1 and the final one
  EXPECT_TRUE(std::isfinite(r.fid) && r.fid > 0);
  EXPECT_GE(r.classifier_score, 1.0);
  EXPECT_LE(r.classifier_score, 10.0);
  EXPECT_GT(r.classifier_score_real, 1.0);
  ASSERT_EQ(r.score_log.size(), r.fid_log.size());
  EXPECT_EQ(r.fid_log.back().second, r.fid);
  EXPECT_TRUE(fs::exists(out / "run" / "fid.csv"));
  const std::string plain_csv = read_file(out / "run" / "fid.csv");
  EXPECT_LT(r.fid_ema, 0);
  // Precision, recall, density and coverage at every evaluation, against as many test images as samples.
  ASSERT_EQ(r.manifold_log.size(), r.fid_log.size());
  EXPECT_EQ(r.manifold.k, 3);
  EXPECT_EQ(r.manifold.n_fake, 24);
  EXPECT_EQ(r.manifold.n_real, 24);
  for (const auto& m : r.manifold_log)
    for (double v : {m.second.precision, m.second.recall, m.second.coverage}) {
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
  EXPECT_GE(r.manifold.density, 0.0);
  EXPECT_EQ(plain_csv.substr(0, plain_csv.find('\n')),
            "step,fid,classifier_score,precision,recall,density,coverage,kid,kid_std");
  // KID at every evaluation, 100 subsets capped at the 24 samples.
  ASSERT_EQ(r.kid_log.size(), r.fid_log.size());
  EXPECT_EQ(r.kid.subsets, 100);
  EXPECT_EQ(r.kid.subset_size, 24);
  EXPECT_TRUE(std::isfinite(r.kid.mean) && r.kid.std > 0);
  EXPECT_NE(read_file(out / "run" / "summary.json").find("\"kid\": "), std::string::npos);
  EXPECT_NE(read_file(out / "run" / "summary.json").find("\"recall\": "), std::string::npos);
  // With G's weight average, each evaluation also scores the average, on the same latents.
  c.g_ema = 0.5;
  c.out_dir = (out / "ema").string();
  const apps::FmnistResult e = apps::train_fmnist(c);
  EXPECT_EQ(e.fid_log, r.fid_log);  // G itself is unchanged by the average
  ASSERT_EQ(e.fid_ema_log.size(), e.fid_log.size());
  EXPECT_TRUE(std::isfinite(e.fid_ema) && e.fid_ema > 0);
  EXPECT_NE(e.fid_ema, e.fid);
  ASSERT_EQ(e.score_ema_log.size(), e.fid_log.size());
  EXPECT_EQ(e.fid_ema_log.back().second, e.fid_ema);
  const std::string csv = read_file(out / "ema" / "fid.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "step,fid,classifier_score,precision,recall,density,coverage,kid,kid_std,fid_ema,classifier_score_ema");
  // A resumed run keeps the earlier run's evaluations, every column, read back by the header's names; an earlier
  // version's file (no manifold columns) resumes with those values missing (NaN), not shifted.
  c.steps = 3;
  for (const bool old_format : {false, true}) {
    SCOPED_TRACE(old_format ? "old fid.csv" : "current fid.csv");
    const fs::path part = out / (old_format ? "old" : "parts");
    c.out_dir = part.string();
    c.resume = "";
    c.interrupt_after = 2;  // evaluates at step 1, stops at 2
    apps::train_fmnist(c);
    std::ofstream(part / "fid.csv")
        << (old_format ? "step,fid,classifier_score,fid_ema,classifier_score_ema\n1,11.5,2.5,12.5,3.5\n"
                       : "step,fid,classifier_score,precision,recall,density,coverage,kid,kid_std,fid_ema,"
                         "classifier_score_ema\n1,11.5,2.5,0.25,0.5,0.75,0.125,0.0625,0.03125,12.5,3.5\n");
    c.interrupt_after = 0;
    c.resume = (part / "checkpoint.safetensors").string();
    const apps::FmnistResult resumed = apps::train_fmnist(c);
    ASSERT_EQ(resumed.fid_log.size(), 2u);  // step 1 from the file, step 3 from this run
    EXPECT_EQ(resumed.fid_log[0], std::make_pair(int64_t(1), 11.5));
    EXPECT_EQ(resumed.score_log[0].second, 2.5);
    EXPECT_EQ(resumed.fid_ema_log[0].second, 12.5);
    EXPECT_EQ(resumed.score_ema_log[0].second, 3.5);
    std::istringstream rows(read_file(part / "fid.csv"));
    std::string header, row1;
    std::getline(rows, header);
    std::getline(rows, row1);
    if (old_format) {
      ASSERT_EQ(resumed.manifold_log.size(), 1u);  // this run's evaluation only
      EXPECT_EQ(resumed.manifold_log[0].first, 3);
      EXPECT_EQ(row1, "1,11.5,2.5,nan,nan,nan,nan,nan,nan,12.5,3.5");
    } else {
      ASSERT_EQ(resumed.manifold_log.size(), 2u);
      const metrics::ManifoldScores& m = resumed.manifold_log[0].second;
      EXPECT_EQ(std::vector<double>({m.precision, m.recall, m.density, m.coverage}),
                std::vector<double>({0.25, 0.5, 0.75, 0.125}));
      ASSERT_EQ(resumed.kid_log.size(), 2u);
      EXPECT_EQ(resumed.kid_log[0].second.mean, 0.0625);
      EXPECT_EQ(resumed.kid_log[0].second.std, 0.03125);
      EXPECT_EQ(row1, "1,11.5,2.5,0.25,0.5,0.75,0.125,0.0625,0.03125,12.5,3.5");
    }
  }
  fs::remove_all(out);
}

TEST(FmnistApp, SubcommandExitCodes) {
  std::string err;
  EXPECT_EQ(run({"nash", "fmnist", "--arch", "stylegan"}, &err), 2);
  EXPECT_NE(err.find("--arch"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "fmnist", "--on-nonfinite", "ignore"}, &err), 2);
  EXPECT_NE(err.find("--on-nonfinite"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "fmnist", "--lr-g", "nan"}, &err), 2);
  EXPECT_EQ(run({"nash", "fmnist", "--batch", "1"}, &err), 2);
  EXPECT_NE(err.find("batch"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "fmnist", "--device", "tpu"}, &err), 2);
  EXPECT_EQ(run({"nash", "fmnist", "--resume", "/nonexistent/ck.safetensors"}, &err), 1);
  EXPECT_NE(err.find("/nonexistent/ck.safetensors"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "fmnist", "--data", "/nonexistent-data", "--out", "", "--steps", "1"}, &err), 1);
  EXPECT_NE(err.find("/nonexistent-data"), std::string::npos) << err;
  const fs::path out = temp_dir("cli");
  const fs::path file = out / "a-file";
  std::ofstream(file) << "x";
  EXPECT_EQ(run({"nash", "fmnist", "--out", (file / "sub").string(), "--data", data_dir().string()}, &err), 2);
  const fs::path good = out / "ok";
  EXPECT_EQ(run({"nash", "fmnist", "--steps", "1", "--width", "4", "--batch", "8", "--z-dim", "8", "--device", "cpu",
                 "--data", data_dir().string(), "--out", good.string(), "--fid-net", "", "--quiet"},
                &err),
            0)
      << err;
  EXPECT_TRUE(fs::exists(good / "checkpoint.safetensors"));
  // --resume takes the model flags from the checkpoint: only --steps is given.
  EXPECT_EQ(run({"nash", "fmnist", "--resume", (good / "checkpoint.safetensors").string(), "--steps", "2", "--device",
                 "cpu", "--data", data_dir().string(), "--out", good.string(), "--fid-net", "", "--quiet"},
                &err),
            0)
      << err;
  EXPECT_EQ(apps::fmnist_config_from_checkpoint((good / "checkpoint.safetensors").string()).steps, 2);
  fs::remove_all(out);
}

namespace {

// magnitudes.csv's cells, header first.
std::vector<std::vector<std::string>> csv_cells(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream s(read_file(p));
  for (std::string line; std::getline(s, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

FmnistConfig tiny_with(FmnistOptimizer opt, const fs::path& out, int64_t steps) {
  FmnistConfig c = tiny(FmnistArch::DCGAN, out, steps);
  c.opt_d = c.opt_g = opt;
  c.limit = 20;
  return c;
}

}  // namespace

TEST(FmnistApp, AdaNsgdaRunWritesPerLayerMagnitudesRelativeToTheFirstStep) {
  const fs::path out = temp_dir("magnitudes");
  FmnistConfig c = tiny_with(FmnistOptimizer::AdaNSGDA, out, 5);
  c.magnitudes_every = 2;  // rows at steps 1 (the reference), 2, 4 and 5 (the last)
  const apps::FmnistResult r = apps::train_fmnist(c);
  const auto rows = csv_cells(out / "magnitudes.csv");
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0], (std::vector<std::string>{"step", "player", "group", "grad_norm", "oracle_norm", "oracle_rel"}));
  std::map<std::string, int> per_step;
  std::map<char, std::set<std::string>> groups;
  bool moved = false;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 6u) << i;
    ++per_step[rows[i][0]];
    groups[rows[i][1][0]].insert(rows[i][2]);
    EXPECT_GT(std::stod(rows[i][3]), 0) << i;
    EXPECT_GT(std::stod(rows[i][4]), 0) << i;
    if (rows[i][0] == "1") EXPECT_EQ(std::stod(rows[i][5]), 1.0) << rows[i][2];  // ||A(0)|| is its own reference
    else moved = moved || std::stod(rows[i][5]) != 1.0;
  }
  EXPECT_TRUE(moved);
  // DCGAN with BN: G has 4 (transposed) convs and 3 BNs (weight, bias); D 4 convs (the last with a bias), 2 BNs.
  EXPECT_EQ(groups['G'].size(), 10u);
  EXPECT_EQ(groups['D'].size(), 9u);
  EXPECT_TRUE(groups['D'].count("0.weight"));
  EXPECT_EQ(per_step, (std::map<std::string, int>{{"1", 19}, {"2", 19}, {"4", 19}, {"5", 19}}));
  EXPECT_EQ(r.magnitudes.size(), rows.size() - 1);
  for (const char* f : {"magnitudes_d.png", "magnitudes_g.png"}) EXPECT_TRUE(fs::exists(out / f)) << f;
  // Adam has no per-layer oracle: no magnitudes.
  const fs::path adam = temp_dir("magnitudes_adam");
  EXPECT_TRUE(apps::train_fmnist(tiny_with(FmnistOptimizer::Adam, adam, 1)).magnitudes.empty());
  EXPECT_FALSE(fs::exists(adam / "magnitudes.csv"));
  fs::remove_all(out);
  fs::remove_all(adam);
}

TEST(FmnistApp, MagnitudesContinueExactlyAcrossAResume) {
  const fs::path a = temp_dir("mag_whole"), b = temp_dir("mag_parts");
  FmnistConfig ca = tiny_with(FmnistOptimizer::AdaNSGDA, a, 4);
  ca.opt_g = FmnistOptimizer::Adam;  // only D's rows
  apps::train_fmnist(ca);
  const apps::FmnistResult r = interrupted_then_resumed(ca, b, 2);
  EXPECT_EQ(r.start_step, 2);
  const std::string whole = read_file(a / "magnitudes.csv");
  EXPECT_EQ(read_file(b / "magnitudes.csv"), whole);  // the reference ||A(0)|| came back with the checkpoint
  EXPECT_EQ(whole.find(",G,"), std::string::npos);
  EXPECT_EQ(r.magnitudes.size(), 4u * 9u);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(FmnistApp, CalibrationOfAnAdaNsgdaRunSetsNsgdaPerLayerStepSizes) {
  const fs::path out = temp_dir("calibrate");
  FmnistConfig ca = tiny_with(FmnistOptimizer::AdaNSGDA, out / "ada", 3);
  ca.calibrate_out = (out / "cal" / "dcgan").string();
  const apps::FmnistResult ra = apps::train_fmnist(ca);
  ASSERT_EQ(ra.calibration_files.size(), 2u);
  const optim::Calibration cd = optim::load_calibration((out / "cal" / "dcgan.d.txt").string());
  const optim::Calibration cg = optim::load_calibration((out / "cal" / "dcgan.g.txt").string());
  EXPECT_EQ(cd.steps, 3);
  ASSERT_EQ(cd.names.size(), 9u);
  EXPECT_EQ(cg.names.size(), 10u);
  // The mean of the run's ||A|| per layer (every step logged).
  double sum = 0;
  for (const auto& m : ra.magnitudes)
    if (m.player == 'D' && m.group == cd.names[0]) sum += m.oracle_norm;
  EXPECT_NEAR(cd.values[0], sum / 3, 1e-6 * cd.values[0]);

  // nSGDA from it: lr-d scales the calibration (default: the ada-nsgda rate, 2e-4 for DCGAN).
  FmnistConfig cn = tiny_with(FmnistOptimizer::NSGDA, out / "nsgda", 3);
  cn.calibration_d = (out / "cal" / "dcgan.d.txt").string();
  cn.calibration_g = (out / "cal" / "dcgan.g.txt").string();
  cn.lr_g = 0.5;
  const apps::FmnistResult rn = apps::train_fmnist(cn);
  EXPECT_DOUBLE_EQ(rn.config.lr_d, 2e-4);
  const auto meta = io::load_safetensors((out / "nsgda" / "checkpoint.safetensors").string()).metadata;
  auto lrs = [&](const char* key) {
    std::vector<double> v;
    std::stringstream ss(meta.at(key));
    for (std::string x; std::getline(ss, x, ',');) v.push_back(std::stod(x));
    return v;
  };
  const std::vector<double> ld = lrs("group_lrs_d"), lg = lrs("group_lrs_g");
  ASSERT_EQ(ld.size(), 9u);
  ASSERT_EQ(lg.size(), 10u);
  EXPECT_DOUBLE_EQ(ld[0], 2e-4 * cd.values[0]);
  EXPECT_DOUBLE_EQ(lg[3], 0.5 * cg.values[3]);
  EXPECT_NE(ld[0], ld[1]);

  // A resume without the files keeps the checkpoint's step sizes: bit for bit the uninterrupted run.
  FmnistConfig cp = cn;
  cp.out_dir = (out / "parts").string();
  cp.interrupt_after = 2;
  apps::train_fmnist(cp);
  cp.interrupt_after = 0;
  cp.calibration_d = cp.calibration_g = "";
  cp.lr_d = rn.config.lr_d;  // as the subcommand takes it from the checkpoint (without the file, nsgda's is 0.01)
  cp.resume = (out / "parts" / "checkpoint.safetensors").string();
  apps::train_fmnist(cp);
  const auto wa = checkpoint_values(out / "nsgda" / "checkpoint.safetensors");
  const auto wb = checkpoint_values(out / "parts" / "checkpoint.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& kv : wa) EXPECT_EQ(kv.second, wb.at(kv.first)) << kv.first;
  fs::remove_all(out);
}

TEST(FmnistApp, BadCalibrationFilesAndFlagsAreNamedInTheError) {
  const fs::path out = temp_dir("badcal");
  FmnistConfig ca = tiny_with(FmnistOptimizer::AdaNSGDA, out / "ada", 1);
  ca.calibrate_out = (out / "cal").string();
  apps::train_fmnist(ca);
  const std::string cal_d = (out / "cal.d.txt").string(), cal_g = (out / "cal.g.txt").string();

  FmnistConfig c = tiny_with(FmnistOptimizer::NSGDA, out / "run", 1);
  c.calibration_d = (out / "missing.txt").string();
  expect_error([&] { apps::train_fmnist(c); }, {"--calibration-d", "missing.txt"});
  c.calibration_d = cal_g;  // G's layers for D
  expect_error([&] { apps::train_fmnist(c); }, {"--calibration-d", "cal.g.txt", "group"});
  std::ofstream(out / "junk.txt") << "not a calibration\n";
  c.calibration_d = (out / "junk.txt").string();
  expect_error([&] { apps::train_fmnist(c); }, {"junk.txt", "not a calibration file"});
  c = tiny_with(FmnistOptimizer::Adam, out / "run", 1);
  c.calibration_g = cal_g;
  expect_error([&] { apps::train_fmnist(c); }, {"--calibration-g", "nsgda", "adam"});
  c = tiny_with(FmnistOptimizer::Adam, out / "run", 1);
  c.calibrate_out = (out / "x").string();
  expect_error([&] { apps::train_fmnist(c); }, {"--calibrate-out", "ada-nsgda"});
  // A resume cannot switch to a calibration the checkpoint was not trained with.
  c = tiny_with(FmnistOptimizer::NSGDA, out / "plain", 1);
  apps::train_fmnist(c);
  c.steps = 2;
  c.lr_d = 0.01;  // the checkpoint's: only the per-layer step sizes differ
  c.calibration_d = cal_d;
  c.resume = (out / "plain" / "checkpoint.safetensors").string();
  expect_error([&] { apps::train_fmnist(c); }, {"--calibration-d", "cal.d.txt", "0.weight"});
  // The subcommand: a runtime failure (exit 1) whose message names the file.
  std::string err;
  EXPECT_EQ(run({"nash", "fmnist", "--opt-d", "nsgda", "--calibration-d", (out / "nope.txt").string(), "--steps", "1",
                 "--device", "cpu", "--data", data_dir().string(), "--out", "", "--fid-net", "", "--quiet"},
                &err),
            1);
  EXPECT_NE(err.find("nope.txt"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "fmnist", "--calibration-d", cal_d, "--data", data_dir().string(), "--out", ""}, &err), 2);
  EXPECT_NE(err.find("--opt-d nsgda"), std::string::npos) << err;
  fs::remove_all(out);
}
