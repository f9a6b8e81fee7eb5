// Tests for `nash sweep`: a tiny grid runs on worker processes, aggregates per cell independently of --jobs, and its
// Markdown section replaces only its own part of the results file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/sweep.h"
#include "support.h"

namespace fs = std::filesystem;
using nash::apps::MixtureOptimizer;
using nash::apps::SweepCell;
using nash::apps::SweepConfig;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_sweep", name); }

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

SweepConfig tiny_sweep() {
  SweepConfig s;
  s.base.steps = 8;
  s.base.batch = 16;
  s.base.hidden = 8;
  s.base.eval_samples = 100;
  s.optimizers = {MixtureOptimizer::Adam, MixtureOptimizer::NSGDA};
  s.ttur = {1, 4};
  s.seeds = 2;
  s.first_seed = 10;
  return s;
}

int run_cli(std::vector<std::string> args, std::string* err, std::string* out) {
  args.insert(args.begin(), {"nash", "sweep"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = nash::apps::run_sweep_cli(static_cast<int>(argv.size()), argv.data(), 2);
  *out = testing::internal::GetCapturedStdout();
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

}  // namespace

TEST(Sweep, RunsTheGridCellMajorWithTtur) {
  SweepConfig s = tiny_sweep();
  s.base.lr_g = 0;  // each optimizer's default
  std::vector<nash::apps::MixtureConfig> runs = nash::apps::sweep_runs(s);
  ASSERT_EQ(runs.size(), 2u * 2 * 2 * 2);
  EXPECT_EQ(runs[0].optimizer, MixtureOptimizer::Adam);
  EXPECT_FALSE(runs[0].sn);
  EXPECT_EQ(runs[0].seed, 10u);
  EXPECT_EQ(runs[1].seed, 11u);
  EXPECT_EQ(runs[0].lr_g, nash::apps::mixture_default_lr(MixtureOptimizer::Adam));
  EXPECT_EQ(runs[0].lr_d, runs[0].lr_g);   // ratio 1
  EXPECT_EQ(runs[2].lr_d, 4 * runs[2].lr_g);  // ratio 4
  EXPECT_TRUE(runs[4].sn);
  EXPECT_EQ(runs[8].optimizer, MixtureOptimizer::NSGDA);
  s.ttur = {0};
  EXPECT_THROW(nash::apps::sweep_runs(s), nash::Error);
}

// The cells and the table do not depend on how many processes ran them.
TEST(Sweep, CellsDoNotDependOnJobs) {
  SweepConfig s = tiny_sweep();
  s.jobs = 1;
  std::vector<SweepCell> a = nash::apps::run_sweep(s);
  s.jobs = 2;
  std::vector<SweepCell> b = nash::apps::run_sweep(s);
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].runs, 2);
    EXPECT_EQ(a[i].failed, 0) << a[i].first_error;
    EXPECT_EQ(a[i].modes.mean, b[i].modes.mean) << i;
    EXPECT_EQ(a[i].hq.mean, b[i].hq.mean) << i;
    EXPECT_EQ(a[i].hq.std, b[i].hq.std) << i;
  }
  EXPECT_EQ(a[1].ratio, 4);
  EXPECT_TRUE(a[2].sn);
  nash::apps::SweepContext ctx{"nash sweep --x", "abc1234", "Test CPU (2 cores online)", 2, 61.0, "load 3.5"};
  const std::string md = nash::apps::sweep_markdown(s, a, ctx);
  for (const char* want : {"## 2-D mixtures", "`nash sweep --x`", "abc1234", "Test CPU", "| optimizer | SN |",
                           "| adam | no | 1 |", "| nsgda | yes | 4 |", "modes (of 8)", "Best cell per optimizer",
                           "1.0 min; load 3.5"})
    EXPECT_NE(md.find(want), std::string::npos) << want << " in\n" << md;
}

TEST(Sweep, ReplacesOnlyItsSection) {
  fs::path dir = temp_dir("md");
  const std::string path = (dir / "RESULTS.md").string();
  // A missing file is created with a title.
  nash::apps::replace_markdown_section(path, "## 2-D mixtures", "## 2-D mixtures\n\nfirst\n");
  EXPECT_EQ(read_text(path), "# Results\n\n## 2-D mixtures\n\nfirst\n");
  // Another engineer's section after it survives a rewrite of ours, and ours is replaced, not duplicated.
  std::ofstream(path, std::ios::app) << "\n## Bimodal\n\nkeep me\n";
  nash::apps::replace_markdown_section(path, "## 2-D mixtures", "## 2-D mixtures\n\nsecond\n");
  EXPECT_EQ(read_text(path), "# Results\n\n## 2-D mixtures\n\nsecond\n\n## Bimodal\n\nkeep me\n");
  // A file without our section gets it appended.
  std::ofstream(path, std::ios::trunc) << "# Results\n\n## Bimodal\n\nkeep me\n";
  nash::apps::replace_markdown_section(path, "## 2-D mixtures", "## 2-D mixtures\n\nthird\n");
  EXPECT_EQ(read_text(path), "# Results\n\n## Bimodal\n\nkeep me\n\n## 2-D mixtures\n\nthird\n");
  fs::remove_all(dir);
}

TEST(Sweep, CliWritesTheTableWithCommandCommitAndMachine) {
  fs::path dir = temp_dir("cli");
  const std::string results = (dir / "RESULTS.md").string();
  std::string err, out;
  int rc = run_cli({"--optimizers", "adam,adadir", "--sn", "on", "--ttur", "1,2", "--seeds", "2", "--steps", "6",
                    "--batch", "16", "--hidden", "8", "--eval-samples", "50", "--jobs", "2", "--quiet", "--results",
                    results, "--out", (dir / "runs").string()},
                   &err, &out);
  EXPECT_EQ(rc, 0) << err;
  const std::string md = read_text(results);
  EXPECT_NE(md.find("--optimizers adam,adadir --sn on --ttur 1,2"), std::string::npos) << md;
  EXPECT_NE(md.find("- commit: "), std::string::npos) << md;
  EXPECT_NE(md.find("cores online"), std::string::npos) << md;
  EXPECT_NE(md.find("load average"), std::string::npos) << md;
  EXPECT_NE(md.find("| adadir | yes | 2 |"), std::string::npos) << md;
  EXPECT_EQ(md.find("| adam | no |"), std::string::npos) << md;  // --sn on only
  EXPECT_TRUE(fs::exists(dir / "runs" / "adam_sn_ttur2" / "seed1" / "samples.png"));
  EXPECT_EQ(nash::apps::git_commit().empty(), false);
  fs::remove_all(dir);
}

TEST(Sweep, BadFlagsExitTwo) {
  fs::path dir = temp_dir("bad");
  const std::string results = (dir / "RESULTS.md").string();
  for (const auto& [args, flag] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--optimizers", "adam,sgd"}, "--optimizers"},
           {{"--ttur", "1,-2"}, "--ttur"},
           {{"--ttur", "1,x"}, "--ttur"},
           {{"--sn", "sometimes"}, "--sn"},
           {{"--dist", "moon"}, "--dist"},
           {{"--seeds", "0"}, "--seeds"},
           {{"--lr-g", "0"}, "--lr-g"}}) {
    std::string err, out;
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--results", results});
    EXPECT_EQ(run_cli(a, &err, &out), 2) << args[0];
    EXPECT_NE(err.find(flag), std::string::npos) << err;
  }
  std::string err, out;
  EXPECT_EQ(run_cli({"--results", (dir / "no" / "such" / "R.md").string(), "--seeds", "1"}, &err, &out), 2);
  EXPECT_NE(err.find("no/such/R.md"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(results));
  fs::remove_all(dir);
}
