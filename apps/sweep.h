// `nash sweep`: `nash mixture` over optimizers x {no SN, SN} x TTUR ratios x seeds, in parallel, summarised as a
// Markdown table (mean ± std per cell) in a section of docs/RESULTS.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/mixture.h"

namespace nash {
namespace apps {

struct SweepConfig {
  // What every run shares (dist, loss, steps, batch, ...). lr_g: the generator's rate (0: each optimizer's
  // default); each cell's lr_d is ratio * lr_g. base.out_dir is ignored (see out_dir).
  MixtureConfig base;
  std::vector<MixtureOptimizer> optimizers = {MixtureOptimizer::SGDA, MixtureOptimizer::Adam, MixtureOptimizer::NSGDA,
                                              MixtureOptimizer::AdaNSGDA, MixtureOptimizer::AdaDir};
  std::vector<bool> sn = {false, true};
  std::vector<double> ttur = {1, 2, 4};  // lr_d / lr_g
  int64_t seeds = 5;
  uint64_t first_seed = 0;
  int jobs = 0;                          // worker processes (0: one per online core)
  std::string out_dir;                   // each run's files in out_dir/<cell>/seed<k> (empty: no files)
};

// One cell of the grid, aggregated over its seeds (failed runs are counted, not averaged).
struct SweepCell {
  MixtureOptimizer optimizer;
  bool sn = false;
  double ratio = 1, lr_d = 0, lr_g = 0;
  int64_t runs = 0, failed = 0;
  int64_t all_modes = 0;      // runs that covered every mode
  int64_t kl_undefined = 0;   // runs without a single high-quality sample (KL undefined, left out of its mean)
  MeanStd modes, hq, kl, wall;  // hq in percent
  std::string first_error;
};

// The cells' run configs in order: cell-major, seeds first_seed.. within a cell.
std::vector<MixtureConfig> sweep_runs(const SweepConfig& s);
// Runs the grid; progress lines go to `progress` when it is not null.
std::vector<SweepCell> run_sweep(const SweepConfig& s, std::ostream* progress = nullptr);

// Where and how the table was made, for its header.
struct SweepContext {
  std::string command, commit, machine;
  int jobs = 1;
  double wall_seconds = 0;
  std::string load;  // e.g. "1-minute load average 0.4 at the start, 2.1 at the end" (empty: not shown)
};
// The 1-minute load average from /proc/loadavg ("?" when unreadable).
std::string load_average();
// "abc1234", with " (plus uncommitted changes)" when the tracked files differ from it; "unknown" outside git.
std::string git_commit();
// "CPU model (N cores)" from /proc/cpuinfo and the online core count.
std::string machine_description();

// The "## 2-D mixtures" section: what was run, the context and the table.
std::string sweep_markdown(const SweepConfig& s, const std::vector<SweepCell>& cells, const SweepContext& ctx);
// Replaces the section that starts with `heading` (up to the next "## " heading) in the Markdown file at path, or
// appends it; creates the file (titled "# Results") when missing. Written atomically; throws nash::Error.
void replace_markdown_section(const std::string& path, const std::string& heading, const std::string& section);

// The subcommand: 0 ok (every run finished), 1 a run failed or the sweep could not run, 2 bad flags or an
// unwritable results file.
int run_sweep_cli(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
