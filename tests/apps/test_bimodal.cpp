// Tests for `nash bimodal`: the loss against a naive formula and gradcheck, the verdict, the SGDA/nSGDA separation on
// fixed seeds, worker-count independence, the output files, the Markdown section update and flag validation.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bimodal.h"
#include "support.h"

namespace fs = std::filesystem;
using nash::Tensor;
using nash::apps::BimodalConfig;
using nash::apps::BimodalOptimizer;
using nash::apps::BimodalResult;
using nash::apps::BimodalVerdict;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_bimodal", name, /*create=*/false); }

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

int run_cli(std::vector<std::string> args, std::string* out, std::string* err) {
  args.insert(args.begin(), {"nash", "bimodal"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = nash::apps::run_bimodal(static_cast<int>(argv.size()), argv.data(), 2);
  *out = testing::internal::GetCapturedStdout();
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

BimodalConfig config(BimodalOptimizer o, double lr_d, double lr_g, uint64_t seed, int64_t steps) {
  BimodalConfig c;
  c.optimizer = o;
  c.lr_d = lr_d;
  c.lr_g = lr_g;
  c.seed = seed;
  c.steps = steps;
  c.log_every = 0;
  return c;
}

}  // namespace

// -L against softplus written out by hand on random float64 inputs, and its gradients by finite differences.
TEST(Bimodal, LossMatchesNaiveFormulaAndGradcheck) {
  const int64_t d = 5, m_d = 3, m_g = 4;
  Tensor W = nash_test::leaf64({m_d, d}, 1), a = nash_test::leaf64({1}, 2), b = nash_test::leaf64({1}, 3);
  Tensor V = nash_test::leaf64({d, m_g}, 4), x = nash_test::leaf64({d, 1}, 5).detach();
  Tensor z = nash::from_vector(std::vector<double>{0, 1, 0, 1}, {m_g, 1});
  const std::vector<double> w = W.to_vector<double>(), v = V.to_vector<double>(), xv = x.to_vector<double>();
  double real = 0, fake = 0;
  for (int64_t i = 0; i < m_d; ++i) {
    double sx = 0, sg = 0;
    for (int64_t k = 0; k < d; ++k) {
      sx += w[i * d + k] * xv[k];
      sg += w[i * d + k] * (v[k * m_g + 1] + v[k * m_g + 3]);
    }
    real += sx * sx * sx;
    fake += sg * sg * sg;
  }
  const double av = a.item(), bv = b.item() / std::sqrt(static_cast<double>(d));
  const double lr = av * real + bv, lf = av * fake + bv;
  const double want = std::log1p(std::exp(-lr)) + std::log1p(std::exp(lf));  // -log D(X) - log(1 - D(G(z)))
  EXPECT_NEAR(nash::apps::bimodal_d_loss(W, a, b, V, x, z).item(), want, 1e-10 * (1 + std::fabs(want)));

  // Smaller weights keep the cubic logits (and softplus) in a range where central differences are accurate.
  auto f = [&](const std::vector<Tensor>& in) { return nash::apps::bimodal_d_loss(in[0], in[1], in[2], in[3], x, z); };
  EXPECT_GRADCHECK(f, (std::vector<Tensor>{(W * 0.5).detach().requires_grad_(), a, b,
                                            (V * 0.5).detach().requires_grad_()}));
  nash_test::expect_error([&] { nash::apps::bimodal_d_loss(W, a, b, V, x, z.reshape({1, m_g})); },
                          {"bimodal_d_loss", "z (m_G, 1)"});
}

// Each neuron counts for the closest target at or above the threshold; collapse needs ubar and not both modes.
TEST(Bimodal, VerdictClassifiesNeurons) {
  using nash::apps::classify_bimodal;
  BimodalVerdict v = classify_bimodal({0.95, 0.2, 0.7, 0.1, 0.93, 0.6, 0.5, 0.5, 0.6}, 0.9);
  EXPECT_TRUE(v.u1 && v.u2 && !v.average && v.both() && !v.collapse());
  EXPECT_EQ(v.outcome(), "both");
  EXPECT_DOUBLE_EQ(v.best_u1, 0.95);
  v = classify_bimodal({0.91, 0.85, 0.97, 0.2, 0.1, 0.15}, 0.9);  // >= 0.9 to u1 but closer to ubar
  EXPECT_TRUE(!v.u1 && !v.u2 && v.average && v.collapse());
  EXPECT_EQ(v.outcome(), "average");
  v = classify_bimodal({0.95, 0.1, 0.6, 0.7, 0.75, 0.95}, 0.9);  // u1 and ubar: still collapse (u2 missing)
  EXPECT_TRUE(v.u1 && v.average && v.collapse());
  EXPECT_EQ(classify_bimodal({0.2, 0.92, 0.6}, 0.9).outcome(), "one");
  EXPECT_EQ(classify_bimodal({0.89, 0.2, 0.6}, 0.9).outcome(), "none");
  EXPECT_NE(nash::apps::verdict_line(classify_bimodal({0.95, 0.1, 0.6}, 0.9), 0.9)
                .find("modes learned: u1 yes, u2 no, average-mode collapse no"),
            std::string::npos);
}

// The paper's claim on fixed seeds: nSGDA (lr_D slightly above lr_G) learns both modes with separate neurons; SGDA
// at lr_D/lr_G = 1, 10 and 0.1 never has both modes at any step and, at ratios 1 and 0.1, collapses to ubar first.
TEST(Bimodal, NsgdaLearnsBothModesSgdaDoesNot) {
  for (uint64_t seed : {0, 1, 2}) {
    BimodalResult r = nash::apps::train_bimodal(config(BimodalOptimizer::NSGDA, 0.01, 0.008, seed, 3000));
    EXPECT_TRUE(r.verdict.both()) << "nsgda seed " << seed << ": " << nash::apps::verdict_line(r.verdict, 0.9);
    EXPECT_FALSE(r.verdict.collapse()) << "nsgda seed " << seed;
    EXPECT_FALSE(r.diverged) << "nsgda seed " << seed;
    EXPECT_GT(r.first_both, 0);
    EXPECT_GE(std::min(r.verdict.best_u1, r.verdict.best_u2), 0.95) << "nsgda seed " << seed;
  }
  struct Lr {
    double d, g;
    bool collapses;
  };
  for (Lr lr : {Lr{1, 1, true}, Lr{1, 10, true}, Lr{10, 1, false}})
    for (uint64_t seed : {0, 1, 2}) {
      BimodalResult r = nash::apps::train_bimodal(config(BimodalOptimizer::SGDA, lr.d, lr.g, seed, 40000));
      const std::string what = "sgda lr_d " + std::to_string(lr.d) + " lr_g " + std::to_string(lr.g) + " seed " +
                               std::to_string(seed) + ": " + nash::apps::verdict_line(r.verdict, 0.9);
      EXPECT_FALSE(r.verdict.both()) << what;
      EXPECT_EQ(r.first_both, 0) << what;
      if (lr.collapses) EXPECT_GT(r.first_collapse, 0) << what;
    }
}

// Records do not depend on the number of worker processes, and the same seed repeats exactly.
TEST(Bimodal, BatchIndependentOfJobs) {
  std::vector<BimodalConfig> runs;
  for (uint64_t seed : {3, 4, 5})
    runs.push_back(config(seed == 4 ? BimodalOptimizer::SGDA : BimodalOptimizer::NSGDA, seed == 4 ? 1.0 : 0.01,
                          seed == 4 ? 1.0 : 0.008, seed, 400));
  auto one = nash::apps::run_bimodal_batch(runs, 1), two = nash::apps::run_bimodal_batch(runs, 2);
  ASSERT_EQ(one.size(), 3u);
  ASSERT_EQ(two.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(one[i].verdict.best_u1, two[i].verdict.best_u1) << i;
    EXPECT_EQ(one[i].verdict.best_u2, two[i].verdict.best_u2) << i;
    EXPECT_EQ(one[i].verdict.best_avg, two[i].verdict.best_avg) << i;
    EXPECT_EQ(one[i].first_both, two[i].first_both) << i;
  }
  EXPECT_NE(one[0].verdict.best_u1, one[2].verdict.best_u1);  // different seeds, different runs
}

// A run from the command line writes the CSV (one row per step plus the initial state), the summary and the PNGs.
TEST(Bimodal, CliWritesOutputs) {
  fs::path dir = temp_dir("out");
  std::string out, err;
  ASSERT_EQ(run_cli({"--steps", "1500", "--seed", "1", "--out", dir.string()}, &out, &err), 0) << err;
  EXPECT_NE(out.find("modes learned: u1 yes, u2 yes, average-mode collapse no"), std::string::npos) << out;
  EXPECT_NE(out.find(">= 0.9"), std::string::npos) << "the verdict line names its threshold: " << out;
  std::ifstream csv(dir / "trajectory.csv");
  std::string header, line;
  ASSERT_TRUE(std::getline(csv, header));
  EXPECT_EQ(header.rfind("step,v0_u1,v0_u2,v0_ubar,v1_u1", 0), 0u) << header;
  EXPECT_NE(header.find(",d_u1,d_u2,a,b,speed_d,speed_g,loss_d"), std::string::npos) << header;
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 1501);
  EXPECT_NE(read_file(dir / "summary.txt").find("outcome both"), std::string::npos);
  for (const char* png : {"speeds.png", "d_neuron.png", "g_neurons.png"}) {
    const std::string bytes = read_file(dir / png);
    ASSERT_GT(bytes.size(), 8u) << png;
    EXPECT_EQ(bytes.substr(1, 3), "PNG") << png;
  }

  // --seeds N: one directory per seed and a summary line with the fractions.
  fs::path many = temp_dir("seeds");
  ASSERT_EQ(run_cli({"--steps", "1200", "--seed", "2", "--seeds", "2", "--jobs", "2", "--plots=false", "--out",
                     many.string()},
                    &out, &err),
            0)
      << err;
  EXPECT_TRUE(fs::exists(many / "seed2" / "trajectory.csv"));
  EXPECT_TRUE(fs::exists(many / "seed3" / "summary.txt"));
  EXPECT_NE(out.find("over seeds 2..3: both modes 2/2 (100%)"), std::string::npos) << out;
  fs::remove_all(dir);
  fs::remove_all(many);
}

// The sweep's table goes between markers inside its own section; other sections and text stay byte for byte.
TEST(Bimodal, MarkdownSectionUpdate) {
  fs::path dir = temp_dir("md");
  fs::create_directories(dir);
  const std::string path = (dir / "RESULTS.md").string();
  nash::apps::write_markdown_section(path, "Bimodal game", "table 1\n");  // missing file: created
  std::string t = read_file(path);
  EXPECT_NE(t.find("## Bimodal game\n\n<!-- nash bimodal --sweep: begin"), std::string::npos) << t;
  EXPECT_NE(t.find("table 1\n<!-- nash bimodal --sweep: end -->\n"), std::string::npos) << t;

  const std::string other = "# Results\n\n## 2-D mixtures\n\nmixture text\n\n";
  std::ofstream(path, std::ios::trunc) << other << "## Bimodal game\n\nhand-written reading\n\n## Later\n\nlast\n";
  nash::apps::write_markdown_section(path, "Bimodal game", "table 2\n");  // no markers yet: appended in the section
  t = read_file(path);
  EXPECT_EQ(t.rfind(other, 0), 0u) << t;
  EXPECT_NE(t.find("hand-written reading\n\n<!-- nash bimodal --sweep: begin"), std::string::npos) << t;
  EXPECT_NE(t.find("table 2\n<!-- nash bimodal --sweep: end -->\n\n## Later\n\nlast\n"), std::string::npos) << t;

  nash::apps::write_markdown_section(path, "Bimodal game", "table 3\n");  // markers: only their content changes
  const std::string t3 = read_file(path);
  std::string expect = t;
  expect.replace(expect.find("table 2\n"), 8, "table 3\n");
  EXPECT_EQ(t3, expect);

  std::ofstream(path, std::ios::trunc) << other;  // no section: appended at the end
  nash::apps::write_markdown_section(path, "Bimodal game", "table 4\n");
  t = read_file(path);
  EXPECT_EQ(t.rfind(other, 0), 0u);
  EXPECT_NE(t.find("## Bimodal game\n\n<!-- nash"), std::string::npos) << t;
  fs::remove_all(dir);
}

TEST(Bimodal, BadFlagsExitTwo) {
  std::string out, err;
  EXPECT_EQ(run_cli({"--optimizer", "rmsprop"}, &out, &err), 2);
  EXPECT_NE(err.find("unknown optimizer 'rmsprop'"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"--lr-d", "0"}, &out, &err), 2);
  EXPECT_EQ(run_cli({"--lr-g", "-1"}, &out, &err), 2);
  EXPECT_EQ(run_cli({"--steps", "0"}, &out, &err), 2);
  EXPECT_EQ(run_cli({"--gamma", "1"}, &out, &err), 2);
  EXPECT_NE(err.find("gamma"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"--grouping", "per-neuron"}, &out, &err), 2);
  EXPECT_NE(err.find("--grouping must be layer or global"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"--no-such-flag"}, &out, &err), 2);
  EXPECT_EQ(run_cli({"--threshold", "1.5"}, &out, &err), 2);
  EXPECT_EQ(run_cli({"--m-g", "1", "--p-two", "0.5"}, &out, &err), 2);
  EXPECT_NE(err.find("p_two > 0 needs m_g >= 2"), std::string::npos) << err;
  fs::path file = temp_dir("file");
  std::ofstream(file.string()) << "x";
  EXPECT_EQ(run_cli({"--steps", "5", "--out", (file / "sub").string()}, &out, &err), 2);
  fs::remove(file);
  ASSERT_EQ(run_cli({"--help"}, &out, &err), 0);
  EXPECT_NE(out.find("--sweep"), std::string::npos);
  EXPECT_NE(out.find("cosine at which a G neuron has learned a target (default: 0.9)"), std::string::npos) << out;
}
