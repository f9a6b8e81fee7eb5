// `nash spectrum` end to end on a checkpoint written by nn::save_checkpoint: which tensors it takes, the CSV rows
// (σ² summing to ‖W‖_F², a WeightNorm layer's g folded in), the plots, the summary, and the exit codes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "apps/spectrum.h"
#include "nash/io/png.h"
#include "nash/linalg/svd.h"
#include "nash/nn/checkpoint.h"
#include "nash/nn/spectral_norm.h"
#include "nash/nn/weight_norm.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace nash;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_spectrum", name); }

int run(std::vector<std::string> args, std::string* out, std::string* err) {
  args.insert(args.begin(), {"nash", "spectrum"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  const int rc = apps::run_spectrum(static_cast<int>(argv.size()), argv.data(), 2);
  *out = testing::internal::GetCapturedStdout();
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

double frob_sq(const Tensor& t) {
  double s = 0;
  for (double v : t.to_vector<double>()) s += v * v;
  return s;
}

struct Fixture {
  std::shared_ptr<nn::Sequential> g, d;
  std::shared_ptr<nn::Conv2d> conv;        // plain, D.0.weight (4, 1, 3, 3)
  std::shared_ptr<nn::SpectralNorm> sn;    // D.3.module.weight (6, 8, 2, 2)
  std::shared_ptr<nn::WeightNorm> wn;      // D.6.module.weight (3, 24) with D.6.weight_g (3, 1)
  std::string path;
};

// A small D (conv, SN conv, WN linear) and a G beside it, saved as a checkpoint.
Fixture write_checkpoint(const fs::path& dir) {
  manual_seed(3);
  Fixture f;
  f.conv = std::make_shared<nn::Conv2d>(1, 4, 3);
  f.sn = nn::spectral_norm(std::make_shared<nn::Conv2d>(4, 6, 2, 2));
  f.wn = nn::weight_norm(std::make_shared<nn::Linear>(24, 3));
  f.d = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      f.conv, std::make_shared<nn::LeakyReLU>(), std::make_shared<nn::BatchNorm2d>(4), f.sn,
      std::make_shared<nn::LeakyReLU>(), std::make_shared<nn::Flatten>(), f.wn});
  f.g = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{std::make_shared<nn::Linear>(2, 24)});
  {
    NoGradGuard ng;
    f.wn->weight_g.copy_(from_vector(std::vector<float>{0.5f, 2.0f, 1.5f}, {3, 1}));
  }
  f.path = (dir / "ckpt.safetensors").string();
  nn::Checkpoint ck;
  ck.modules = {{"G", f.g.get()}, {"D", f.d.get()}};
  ck.step = 7;
  nn::save_checkpoint(f.path, ck);
  return f;
}

// spectrum.csv as layer -> (index, sigma_sq, normalised) rows.
std::map<std::string, std::vector<std::vector<double>>> read_csv(const fs::path& p, std::string* header) {
  std::ifstream in(p);
  std::getline(in, *header);
  std::map<std::string, std::vector<std::vector<double>>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string layer, cell;
    std::getline(ss, layer, ',');
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) v.push_back(std::stod(cell));
    rows[layer].push_back(v);
  }
  return rows;
}

}  // namespace

TEST(SpectrumApp, WritesCsvPlotsAndSummaryForEveryDWeight) {
  if (!linalg::lapack_available()) GTEST_SKIP() << "this nash was built without LAPACK";
  fs::path dir = temp_dir("e2e");
  Fixture f = write_checkpoint(dir);
  std::string out, err;
  ASSERT_EQ(run({f.path, "--out", (dir / "spec").string()}, &out, &err), 0) << err;

  std::string header;
  auto rows = read_csv(dir / "spec" / "spectrum.csv", &header);
  EXPECT_EQ(header, "layer,index,sigma_sq,sigma_sq_normalised");
  // D's three weight matrices; no G tensor, no bias, BatchNorm or g.
  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(rows.count("D.0.weight"), 1u);
  ASSERT_EQ(rows.count("D.3.module.weight"), 1u);
  ASSERT_EQ(rows.count("D.6.module.weight"), 1u);
  EXPECT_EQ(rows["D.0.weight"].size(), 4u);         // (4, 9): 4 values
  EXPECT_EQ(rows["D.3.module.weight"].size(), 6u);  // (6, 32)
  EXPECT_EQ(rows["D.6.module.weight"].size(), 3u);  // (3, 24)

  // Σσ² = ‖W‖_F²; for the WeightNorm layer W = g · V/‖V‖, so Σσ² = Σg² = 0.25 + 4 + 2.25.
  const std::map<std::string, double> frob = {{"D.0.weight", frob_sq(f.conv->weight)},
                                              {"D.3.module.weight", frob_sq(f.sn->weight())},
                                              {"D.6.module.weight", 6.5}};
  for (auto& [layer, r] : rows) {
    SCOPED_TRACE(layer);
    double total = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
      ASSERT_EQ(r[i].size(), 3u);
      EXPECT_EQ(r[i][0], static_cast<double>(i));
      EXPECT_NEAR(r[i][2], r[i][1] / r[0][1], 1e-12);
      if (i) EXPECT_LE(r[i][1], r[i - 1][1]);
      total += r[i][1];
    }
    EXPECT_NEAR(r[0][2], 1.0, 1e-15);
    EXPECT_NEAR(total, frob.at(layer), 1e-5 * frob.at(layer));
  }
  // The largest σ of the plain conv against a direct SVD.
  Tensor m = f.conv->weight.reshape({4, 9});
  const double smax = linalg::singular_values(m).to_vector<double>()[0];
  EXPECT_NEAR(std::sqrt(rows["D.0.weight"][0][1]), smax, 1e-6 * smax);

  if (io::png_available())
    for (const char* png : {"D.0.weight.png", "D.3.module.weight.png", "D.6.module.weight.png"}) {
      EXPECT_TRUE(fs::exists(dir / "spec" / png)) << png;
      EXPECT_GT(fs::file_size(dir / "spec" / png), 500u) << png;
    }
  // One summary line per layer, with shape, matrix, σ_max and effective rank.
  EXPECT_NE(out.find("3 weight matrices under 'D.'"), std::string::npos) << out;
  EXPECT_NE(out.find("D.0.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("4x1x3x3"), std::string::npos) << out;
  EXPECT_NE(out.find("as 4x9"), std::string::npos) << out;
  EXPECT_NE(out.find("(g*V/|V|)"), std::string::npos) << out;
  EXPECT_NE(out.find("eff_rank"), std::string::npos) << out;

  // --prefix G. picks the generator's weight instead.
  ASSERT_EQ(run({f.path, "--out", (dir / "g").string(), "--prefix=G."}, &out, &err), 0) << err;
  rows = read_csv(dir / "g" / "spectrum.csv", &header);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows.count("G.0.weight"), 1u);
  fs::remove_all(dir);
}

TEST(SpectrumApp, EffectiveRankAndCounts) {
  apps::LayerSpectrum flat, spike;
  flat.sigma_sq = {2, 2, 2, 2};
  spike.sigma_sq = {9, 0.05, 0.0};
  EXPECT_DOUBLE_EQ(flat.effective_rank(), 4.0);
  EXPECT_DOUBLE_EQ(flat.sigma_max(), std::sqrt(2.0));
  EXPECT_EQ(flat.count_above(0.01), 4);
  EXPECT_NEAR(spike.effective_rank(), (9.05 * 9.05) / (81 + 0.0025), 1e-12);
  EXPECT_EQ(spike.count_above(0.01), 1);
}

TEST(SpectrumApp, ExitCodes) {
  fs::path dir = temp_dir("exit");
  std::string out, err;
  // Bad flags: 2.
  EXPECT_EQ(run({}, &out, &err), 2);
  EXPECT_NE(err.find("missing CHECKPOINT"), std::string::npos) << err;
  EXPECT_EQ(run({"a.safetensors", "--bogus", "1"}, &out, &err), 2);
  EXPECT_NE(err.find("--bogus"), std::string::npos) << err;
  EXPECT_EQ(run({"a.safetensors", "b.safetensors"}, &out, &err), 2);
  EXPECT_EQ(run({"a.safetensors", "--out"}, &out, &err), 2);
  EXPECT_EQ(run({"--help"}, &out, &err), 0);
  EXPECT_NE(out.find("nash spectrum CHECKPOINT"), std::string::npos) << out;
  // An unreadable checkpoint: 1, naming the file.
  const std::string missing = (dir / "missing.safetensors").string();
  EXPECT_EQ(run({missing, "--out", (dir / "o").string()}, &out, &err), 1);
  EXPECT_NE(err.find("missing.safetensors"), std::string::npos) << err;
  {
    std::ofstream junk(dir / "junk.safetensors");
    junk << "not a safetensors file";
  }
  EXPECT_EQ(run({(dir / "junk.safetensors").string(), "--out", (dir / "o").string()}, &out, &err), 1);
  if (!linalg::lapack_available()) return;
  Fixture f = write_checkpoint(dir);
  // Nothing under the prefix: 1.
  EXPECT_EQ(run({f.path, "--out", (dir / "o").string(), "--prefix", "X."}, &out, &err), 1);
  EXPECT_NE(err.find("'X.'"), std::string::npos) << err;
  // An output path that is a file: 2, like the other subcommands.
  {
    std::ofstream file(dir / "afile");
    file << "x";
  }
  EXPECT_EQ(run({f.path, "--out", (dir / "afile").string()}, &out, &err), 2);
  fs::remove_all(dir);
}
