// Tests for `nash sample`: the images are the checkpoint's G (or G_ema) in eval mode on the reported latents, the
// latents' seeding, truncation and spherical interpolation against float64 references, the three outputs read back
// (as `nash fid` reads them), and every refusal (no weight average, not an fmnist checkpoint, a diverged G, a PNG
// folder in use, a grid too large) leaving the outputs untouched.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/fid.h"
#include "apps/fmnist.h"
#include "apps/sample.h"
#include "fmnist_fixture.h"
#include "idx_fixture.h"
#include "nash/core/autograd.h"
#include "nash/core/random.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/nn/checkpoint.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace nash;
using apps::FmnistArch;
using apps::SampleConfig;
using nash_test::expect_error;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_sample", name); }

const fs::path& data_dir() {
  static const fs::path d = [] {
    fs::path p = temp_dir("data");
    nash_test::write_split(p, "train", 64, 5);
    nash_test::write_split(p, "t10k", 16, 6);
    return p;
  }();
  return d;
}

// A checkpoint of a 3-step tiny run (with G's weight average when ema > 0), made once per architecture and ema.
std::string checkpoint(FmnistArch arch, double ema, bool conditional = false) {
  const std::string name =
      std::string(apps::fmnist_name(arch)) + (ema > 0 ? "_ema" : "") + (conditional ? "_conditional" : "");
  const fs::path out = fs::temp_directory_path() / ("nash_test_sample_ck_" + name + "_" + std::to_string(::getpid()));
  const fs::path ck = out / "checkpoint.safetensors";
  if (!fs::exists(ck)) {
    fs::remove_all(out);
    apps::FmnistConfig c = nash_test::tiny_fmnist_config(arch, data_dir().string(), out.string(), 3);
    c.plots = false;
    c.g_ema = ema;
    c.conditional = conditional;
    apps::train_fmnist(c);
  }
  return ck.string();
}

// The checkpoint's G (or G_ema) loaded by hand, in eval mode.
std::shared_ptr<nn::Module> load_g(const std::string& ck, const std::string& prefix) {
  auto g = apps::fmnist_generator(apps::fmnist_config_from_checkpoint(ck));
  nn::Checkpoint c;
  c.modules = {{prefix, g.get()}};
  c.restore_rng = false;
  nn::load_checkpoint(ck, c);
  g->eval();
  return g;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::fabs(double(x[i]) - y[i]));
  return m;
}

int run(std::vector<std::string> args, std::string* err, std::string* out = nullptr) {
  args.insert(args.begin(), {"nash", "sample"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  const int rc = apps::run_sample(static_cast<int>(argv.size()), argv.data(), 2);
  const std::string o = testing::internal::GetCapturedStdout();
  if (out) *out = o;
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

std::size_t count_files(const fs::path& d) {
  if (!fs::exists(d)) return 0;
  std::size_t n = 0;
  for (auto it = fs::recursive_directory_iterator(d); it != fs::recursive_directory_iterator(); ++it)
    n += it->is_regular_file();
  return n;
}

}  // namespace

TEST(SampleApp, ImagesAreTheCheckpointsGeneratorOnTheReportedLatents) {
  for (FmnistArch arch : {FmnistArch::DCGAN, FmnistArch::ProGAN, FmnistArch::ResNet}) {
    SCOPED_TRACE(apps::fmnist_name(arch));
    const std::string ck = checkpoint(arch, 0.9);
    SampleConfig c;
    c.checkpoint = ck;
    c.n = 10;
    c.batch = 3;  // four forward passes
    c.seed = 11;
    c.device = "cpu";
    const uint64_t offset = default_generator().offset();
    const apps::Samples s = apps::sample_fmnist(c);
    EXPECT_EQ(default_generator().offset(), offset) << "sampling must leave the default random stream alone";
    EXPECT_EQ(s.step, 3);
    EXPECT_EQ(s.weights, "G");
    ASSERT_EQ(s.images.shape(), (Shape{10, 1, 32, 32}));
    ASSERT_EQ(s.latents.shape(), (Shape{10, 8}));
    EXPECT_EQ(max_abs_diff(s.latents, apps::sample_latents(10, 8, 11)), 0.0);
    NoGradGuard ng;
    const Tensor want = clamp(load_g(ck, "G")->forward(s.latents), -1.0, 1.0);
    EXPECT_LT(max_abs_diff(s.images, want), 1e-7);
    // Batch norm in eval mode: an image does not depend on the others of its batch.
    c.n = 1;
    const apps::Samples first = apps::sample_fmnist(c);
    EXPECT_LT(max_abs_diff(first.images, s.images.narrow(0, 0, 1)), 1e-7);

    c.n = 10;
    c.ema = true;
    const apps::Samples a = apps::sample_fmnist(c);
    EXPECT_EQ(a.weights, "G_ema");
    EXPECT_EQ(max_abs_diff(a.latents, s.latents), 0.0);
    EXPECT_LT(max_abs_diff(a.images, clamp(load_g(ck, "G_ema")->forward(a.latents), -1.0, 1.0)), 1e-7);
    // Three steps move the average little; its weights, not its images, show it is not G.
    const std::vector<float> wg = cli::flat_parameters(*load_g(ck, "G"));
    const std::vector<float> wa = cli::flat_parameters(*load_g(ck, "G_ema"));
    double dw = 0;
    for (std::size_t i = 0; i < wg.size(); ++i) dw = std::max(dw, std::fabs(double(wg[i]) - wa[i]));
    EXPECT_GT(dw, 1e-5) << "the average must not be G itself";
    EXPECT_GT(max_abs_diff(a.images, s.images), 1e-6);
  }
}

TEST(SampleApp, AConditionalGeneratorDrawsTheClassesInTurnOrOneClass) {
  const std::string ck = checkpoint(FmnistArch::SNGAN, 0, /*conditional=*/true);
  SampleConfig c;
  c.checkpoint = ck;
  c.n = 12;
  c.batch = 5;
  c.device = "cpu";
  const apps::Samples s = apps::sample_fmnist(c);
  ASSERT_TRUE(s.labels.defined());
  nash_test::expect_values(s.labels, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1}, 0.0);
  {
    NoGradGuard ng;
    auto g = load_g(ck, "G");
    EXPECT_LT(max_abs_diff(s.images, clamp(apps::fmnist_generate(*g, s.latents, s.labels), -1.0, 1.0)), 1e-7);
  }
  c.label = 7;
  const apps::Samples seven = apps::sample_fmnist(c);
  nash_test::expect_values(seven.labels, std::vector<double>(12, 7.0), 0.0);
  EXPECT_EQ(max_abs_diff(seven.latents, s.latents), 0.0);
  EXPECT_LT(max_abs_diff(seven.images.narrow(0, 7, 1), s.images.narrow(0, 7, 1)), 1e-7);  // image 7 was class 7
  EXPECT_GT(max_abs_diff(seven.images.narrow(0, 0, 1), s.images.narrow(0, 0, 1)), 1e-6);
  // The conditional ResNet G is sampled the same way.
  {
    SampleConfig r = c;
    r.checkpoint = checkpoint(FmnistArch::ResNet, 0, /*conditional=*/true);
    r.n = 4;
    const apps::Samples rs = apps::sample_fmnist(r);
    nash_test::expect_values(rs.labels, std::vector<double>(4, 7.0), 0.0);
    NoGradGuard ng;
    auto g = load_g(r.checkpoint, "G");
    EXPECT_EQ(g->type_name(), "ConditionalResNetGenerator");
    EXPECT_LT(max_abs_diff(rs.images, clamp(apps::fmnist_generate(*g, rs.latents, rs.labels), -1.0, 1.0)), 1e-7);
  }
  // Walks: row r of class r mod 10.
  c.label = -1;
  c.n = 3;
  c.interpolate = 4;
  nash_test::expect_values(apps::sample_fmnist(c).labels, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, 0.0);
  // The tensor file carries the labels; the grid has a column per class.
  const fs::path d = temp_dir("conditional");
  std::string err;
  ASSERT_EQ(run({"--checkpoint", ck, "--n", "20", "--device", "cpu", "--quiet", "--tensor",
                 (d / "s.safetensors").string(), "--grid", (d / "g.png").string(), "--scale", "1"},
                &err),
            0)
      << err;
  const io::SafetensorsFile f = io::load_safetensors((d / "s.safetensors").string());
  ASSERT_NE(f.find("labels"), nullptr);
  EXPECT_EQ(f.find("labels")->shape(), (Shape{20}));
  EXPECT_EQ(io::read_png((d / "g.png").string(), 1).width, 10 * 34 + 2);
  // A class for an unconditional G is refused by name.
  EXPECT_EQ(run({"--checkpoint", checkpoint(FmnistArch::DCGAN, 0), "--class", "3", "--grid", (d / "x.png").string()},
                &err),
            cli::kRuntimeExit);
  EXPECT_NE(err.find("unconditional"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d / "x.png"));
  fs::remove_all(d);
}

TEST(SampleApp, LatentsAreSeededTruncatedAndInterpolatedAsDocumented) {
  const Tensor a = apps::sample_latents(500, 16, 7), b = apps::sample_latents(500, 16, 7);
  EXPECT_EQ(max_abs_diff(a, b), 0.0);
  EXPECT_GT(max_abs_diff(a, apps::sample_latents(500, 16, 8)), 0.5);

  // Truncated at t: every |z| <= t, and the spread of N(0, 1) restricted to [-t, t]:
  // var = 1 - 2 t phi(t) / (2 Phi(t) - 1).
  for (double t : {0.5, 1.0, 2.0}) {
    SCOPED_TRACE(t);
    const std::vector<float> v = apps::sample_latents(4000, 8, 3, t).to_vector<float>();
    double s2 = 0, m = 0;
    for (float x : v) {
      ASSERT_LE(std::fabs(x), t);
      s2 += double(x) * x;
      m += x;
    }
    const double phi = std::exp(-0.5 * t * t) / std::sqrt(2 * M_PI), mass = std::erf(t / std::sqrt(2.0));
    const double var = 1 - 2 * t * phi / mass;
    EXPECT_NEAR(s2 / v.size(), var, 0.03 * var);
    EXPECT_NEAR(m / v.size(), 0.0, 0.02);
  }
  // Components already inside [-t, t] are kept: truncation at a bound no draw reaches changes nothing.
  EXPECT_EQ(max_abs_diff(apps::sample_latents(50, 4, 9, 100.0), apps::sample_latents(50, 4, 9)), 0.0);

  // Interpolation: row r walks from draw 2r to draw 2r + 1 of the plain stream, by the slerp formula.
  const int64_t rows = 3, k = 5, z = 6;
  const std::vector<float> ends = apps::sample_latents(2 * rows, z, 4).to_vector<float>();
  const Tensor w = apps::sample_latents(rows, z, 4, 0, k);
  ASSERT_EQ(w.shape(), (Shape{rows * k, z}));
  const std::vector<float> got = w.to_vector<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = &ends[2 * r * z];
    const float* q = p + z;
    double pp = 0, qq = 0, pq = 0;
    for (int64_t i = 0; i < z; ++i) pp += double(p[i]) * p[i], qq += double(q[i]) * q[i], pq += double(p[i]) * q[i];
    const double cross = std::sqrt(std::max(0.0, pp * qq - pq * pq));
    const double omega = std::atan2(cross, pq);  // the angle, from another formula than acos
    for (int64_t j = 0; j < k; ++j) {
      const double t = double(j) / (k - 1);
      for (int64_t i = 0; i < z; ++i) {
        const double want = (std::sin((1 - t) * omega) * p[i] + std::sin(t * omega) * q[i]) / std::sin(omega);
        EXPECT_NEAR(got[(r * k + j) * z + i], want, 1e-5) << "row " << r << " point " << j;
      }
    }
    for (int64_t i = 0; i < z; ++i) {  // the ends exactly
      EXPECT_EQ(got[(r * k) * z + i], p[i]);
      EXPECT_EQ(got[(r * k + k - 1) * z + i], q[i]);
    }
  }
  expect_error([] { apps::sample_latents(4, 2, 0, 0, 1); }, {"interpolate", "1"});
  expect_error([] { apps::sample_latents(4, 2, 0, 0.01); }, {"truncation", "0.01"});
  expect_error([] { apps::sample_latents(0, 2, 0); }, {"n and z_dim", "0"});
}

TEST(SampleApp, OutputsReadBackAsTheImagesAndLatents) {
  const fs::path d = temp_dir("outputs");
  std::string err, out;
  const std::string ck = checkpoint(FmnistArch::DCGAN, 0);
  ASSERT_EQ(run({"--checkpoint", ck, "--n", "12", "--seed", "5", "--device", "cpu", "--grid",
                 (d / "grid.png").string(), "--png-dir", (d / "pngs").string(), "--tensor",
                 (d / "s.safetensors").string()},
                &err, &out),
            0)
      << err;
  EXPECT_NE(out.find("12 images of G (dcgan, width 4, step 3)"), std::string::npos) << out;
  SampleConfig c;
  c.checkpoint = ck;
  c.n = 12;
  c.seed = 5;
  c.device = "cpu";
  const apps::Samples s = apps::sample_fmnist(c);

  const io::SafetensorsFile f = io::load_safetensors((d / "s.safetensors").string());
  ASSERT_NE(f.find("latents"), nullptr);
  EXPECT_EQ(max_abs_diff(*f.find("latents"), s.latents), 0.0);
  EXPECT_EQ(f.metadata.at("weights"), "G");
  EXPECT_EQ(f.metadata.at("step"), "3");
  EXPECT_EQ(f.metadata.at("seed"), "5");
  EXPECT_EQ(max_abs_diff(*f.find("samples"), s.images), 0.0);
  // What `nash fid --fake` reads: the tensor exactly, the PNGs to within 8-bit rounding.
  EXPECT_EQ(max_abs_diff(apps::load_image_set((d / "s.safetensors").string()), s.images), 0.0);
  const Tensor pngs = apps::load_image_set((d / "pngs").string());
  ASSERT_EQ(pngs.shape(), (Shape{12, 1, 32, 32}));
  EXPECT_LE(max_abs_diff(pngs, s.images), 1.0 / 255.0 + 1e-6);
  EXPECT_TRUE(fs::exists(d / "pngs" / "000011.png"));
  const io::Image g = io::read_png((d / "grid.png").string(), 1);
  EXPECT_EQ(g.width, (8 * 34 + 2) * 2);  // 8 per row, 2-pixel gutters, scale 2
  EXPECT_EQ(g.height, (2 * 34 + 2) * 2);

  // Interpolation rows fill the grid's rows.
  ASSERT_EQ(run({"--checkpoint", ck, "--n", "3", "--interpolate", "7", "--scale", "1", "--device", "cpu", "--quiet",
                 "--grid", (d / "walk.png").string()},
                &err, &out),
            0)
      << err;
  EXPECT_TRUE(out.empty()) << out;
  const io::Image wk = io::read_png((d / "walk.png").string(), 1);
  EXPECT_EQ(wk.width, 7 * 34 + 2);
  EXPECT_EQ(wk.height, 3 * 34 + 2);
  fs::remove_all(d);
}

TEST(SampleApp, RefusalsNameTheProblemAndWriteNothing) {
  const fs::path d = temp_dir("refusals");
  const std::string ck = checkpoint(FmnistArch::DCGAN, 0);
  const std::string grid = (d / "o" / "grid.png").string();
  std::string err;
  auto nothing_written = [&] { EXPECT_EQ(count_files(d / "o"), 0u); };

  // No weight average in a run without --g-ema.
  EXPECT_EQ(run({"--checkpoint", ck, "--ema", "--grid", grid, "--device", "cpu"}, &err), cli::kRuntimeExit);
  EXPECT_NE(err.find("G_ema"), std::string::npos) << err;
  EXPECT_NE(err.find(ck), std::string::npos) << err;
  nothing_written();
  // Missing file; a file that is not a `nash fmnist` checkpoint.
  EXPECT_EQ(run({"--checkpoint", (d / "none.safetensors").string(), "--grid", grid}, &err), cli::kRuntimeExit);
  EXPECT_NE(err.find("none.safetensors' does not exist"), std::string::npos) << err;
  io::save_safetensors((d / "other.safetensors").string(), {{"w", zeros({2, 2})}}, {{"app", "classifier"}});
  EXPECT_EQ(run({"--checkpoint", (d / "other.safetensors").string(), "--grid", grid}, &err), cli::kRuntimeExit);
  EXPECT_NE(err.find("not a checkpoint of `nash fmnist`"), std::string::npos) << err;
  nothing_written();

  // A diverged G: one weight NaN.
  io::SafetensorsFile f = io::load_safetensors(ck);
  bool poisoned = false;
  for (auto& [name, t] : f.tensors)
    if (!poisoned && name.rfind("G.", 0) == 0 && t.numel() > 1 && t.dtype() == DType::Float32) {
      t = t.contiguous().clone();
      t.data_ptr<float>()[0] = std::nanf("");
      poisoned = true;
    }
  ASSERT_TRUE(poisoned);
  const std::string bad = (d / "nan.safetensors").string();
  io::save_safetensors(bad, f.tensors, f.metadata);
  EXPECT_EQ(run({"--checkpoint", bad, "--grid", grid, "--device", "cpu"}, &err), cli::kRuntimeExit);
  EXPECT_NE(err.find("non-finite"), std::string::npos) << err;
  EXPECT_NE(err.find(bad), std::string::npos) << err;
  nothing_written();

  // Usage: nothing to write, a grid over the PNG limit, interpolate 1, a tiny truncation.
  EXPECT_EQ(run({"--checkpoint", ck}, &err), cli::kUsageExit);
  EXPECT_NE(err.find("--grid, --png-dir and/or --tensor"), std::string::npos) << err;
  EXPECT_EQ(run({"--checkpoint", ck, "--n", "20000", "--grid", grid, "--tensor", (d / "o" / "t.st").string()}, &err),
            cli::kUsageExit);
  EXPECT_NE(err.find("PNG limit"), std::string::npos) << err;
  EXPECT_EQ(run({"--checkpoint", ck, "--interpolate", "1", "--grid", grid}, &err), cli::kUsageExit);
  EXPECT_NE(err.find("--interpolate"), std::string::npos) << err;
  EXPECT_EQ(run({"--checkpoint", ck, "--truncation", "0.01", "--grid", grid}, &err), cli::kUsageExit);
  EXPECT_NE(err.find("--truncation"), std::string::npos) << err;
  nothing_written();

  // A PNG folder that holds images already: refused, its files untouched, nothing else written.
  fs::create_directories(d / "o" / "pngs");
  io::write_png((d / "o" / "pngs" / "old.png").string(), io::Image{2, 2, 1, {1, 2, 3, 4}});
  EXPECT_EQ(run({"--checkpoint", ck, "--png-dir", (d / "o" / "pngs").string(), "--tensor",
                 (d / "o" / "t.safetensors").string()},
                &err),
            cli::kUsageExit);
  EXPECT_NE(err.find("already holds .png files"), std::string::npos) << err;
  EXPECT_EQ(count_files(d / "o"), 1u);
  EXPECT_EQ(io::read_png((d / "o" / "pngs" / "old.png").string(), 1).pixels, (std::vector<uint8_t>{1, 2, 3, 4}));
  // An unwritable output folder.
  EXPECT_EQ(run({"--checkpoint", ck, "--grid", "/proc/nash_no_such/grid.png"}, &err), cli::kUsageExit);
  EXPECT_NE(err.find("/proc/nash_no_such"), std::string::npos) << err;
  fs::remove_all(d);
}
