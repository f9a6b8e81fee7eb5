// `nash bimodal`: the two-mode GAN of "Dissecting adaptive methods in GANs" (Section 3.1), SGDA against nSGDA.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace apps {

enum class BimodalOptimizer { SGDA, NSGDA, Adam, AdaNSGDA };
const char* bimodal_optimizer_name(BimodalOptimizer o);
BimodalOptimizer parse_bimodal_optimizer(const std::string& name);  // throws nash::Error on an unknown name

// The setting (Assumptions 1-2, Parametrization 3.1). Zero/negative "derived" fields take their paper-derived
// defaults from d (see resolve()).
struct BimodalConfig {
  BimodalOptimizer optimizer = BimodalOptimizer::NSGDA;
  int64_t d = 256;
  double gamma = 0;       // <u1, u2>; <= 0: 1 / ln d (the smallest 1/polylog d)
  int64_t m_d = 0;        // D neurons; 0: round(ln d)
  int64_t m_g = 0;        // G neurons; 0: 2 * m_d
  double init_std = 0;    // per-entry std of W, V and a at initialisation; <= 0: 1 / (sqrt(d) ln d) (b starts at 0)
  double p_two = -1;      // probability that z has two non-zero entries instead of one; < 0: 1 / d
  double lr_d = 0.01;
  double lr_g = 0.008;    // nSGDA: slightly smaller than lr_d
  int64_t steps = 3000;
  uint64_t seed = 0;
  bool global_groups = false;  // nSGDA/Ada-nSGDA: one norm per player instead of one per tensor (W, a, b; V)
  double threshold = 0.9;      // a G neuron "is" a target (u1, u2 or their mean direction) at cosine >= this
  int64_t log_every = 1;       // trajectory rows every this many steps (and step 0 and the last); 0: none
  std::string out_dir;         // empty: no files
  bool plots = true;           // PNGs beside the CSV (when out_dir is set)
  bool quiet = true;           // the subcommand's printing only; train_bimodal never prints

  BimodalConfig resolve() const;  // the defaults filled in; checks the values (nash::Error)
};

// Final classification of G's neurons. Each neuron is assigned its closest target among u1, u2 and
// ubar = (u1+u2)/||u1+u2|| when that cosine is >= threshold.
struct BimodalVerdict {
  bool u1 = false, u2 = false, average = false;
  bool both() const { return u1 && u2; }
  bool collapse() const { return average && !both(); }  // G makes the mean mode and misses a true one
  std::string outcome() const;  // "both", "average", "one", "none"
  double best_u1 = 0, best_u2 = 0, best_avg = 0;  // the highest cosine of any G neuron with each target
};

// One row of the trajectory (Fig. 3): G neurons' cosines, the tracked D neuron, each player's relative speed.
struct BimodalRow {
  int64_t step = 0;
  std::vector<double> g_cos;  // per G neuron j: cos(v_j, u1), cos(v_j, u2), cos(v_j, ubar)
  double d_cos_u1 = 0, d_cos_u2 = 0;  // cos(sign(a) w_i, u): w_i the D neuron with the largest |initial cos| to u2
  double a = 0, b = 0;
  double speed_d = 0, speed_g = 0;    // ||Y(t+1) - Y(t)|| / ||Y(t)|| of the step taken at this row (0 at step 0)
  double loss_d = 0;                  // -L on this step's sample: D minimises it, G maximises it
};

struct BimodalResult {
  BimodalConfig config;  // resolved
  BimodalVerdict verdict;
  std::vector<BimodalRow> rows;
  int64_t d_neuron = 0;
  bool diverged = false;     // a non-finite value appeared; the verdict is of the last finite state
  int64_t diverged_at = 0;
  int64_t first_both = 0;    // the first step after which G had learned both modes (0: never)
  int64_t first_collapse = 0;  // the first step after which G was in average-mode collapse (0: never)
  double train_seconds = 0;
};

// -L = softplus(-l(X)) + softplus(l(G(z))) = -(log D(X) + log(1 - D(G(z)))), l(Y) = a sum_i <w_i, Y>^3 + b / sqrt(d):
// the loss D minimises (it ascends L); G's gradient is the negated one. W (m_D, d), a (1), b (1), V (d, m_G),
// x (d, 1), z (m_G, 1); differentiable in all of them.
Tensor bimodal_d_loss(const Tensor& W, const Tensor& a, const Tensor& b, const Tensor& V, const Tensor& x,
                      const Tensor& z);

// The verdict on G's neurons from their cosines (cos u1, cos u2, cos ubar per neuron, as BimodalRow::g_cos).
BimodalVerdict classify_bimodal(const std::vector<double>& g_cos, double threshold);

// Puts `generated` between the sweep's markers in the "## <title>" section of a Markdown file, keeping all other
// bytes (other sections, text around the markers); appends the section when absent, creates a missing file.
void write_markdown_section(const std::string& path, const std::string& title, const std::string& generated);

// Trains one run; writes DIR/trajectory.csv, DIR/summary.txt and the PNGs when cfg.out_dir is set.
BimodalResult train_bimodal(const BimodalConfig& cfg);

// "modes learned: u1 yes, u2 no, average-mode collapse yes (...thresholds...)".
std::string verdict_line(const BimodalVerdict& v, double threshold);

// One sweep cell: a configuration run over seeds seed..seed+n-1.
struct BimodalCellSummary {
  BimodalOptimizer optimizer;
  double lr_d, lr_g;
  int64_t steps = 0;
  std::string variant;   // what differs from the default setting ("" when nothing)
  int64_t both_kept = 0;  // both modes at the end of a run that did not diverge
  int64_t runs = 0, both = 0, average = 0, one = 0, none = 0, diverged = 0;
  int64_t ever_both = 0, ever_collapse = 0;  // runs in which G had both modes / collapsed after some step
  int64_t both_to_diverge = -1;  // the most steps between "both modes" and divergence in a run with both (-1: none)
  double seconds = 0;  // summed over runs
};

// The result of one run of a batch, as a worker process reports it.
struct BimodalRunRecord {
  BimodalVerdict verdict;
  bool diverged = false;
  int64_t diverged_at = 0;
  int64_t first_both = 0, first_collapse = 0;
  double seconds = 0;
};

// Runs every config (each with its own seed and out_dir) on `jobs` worker processes (jobs <= 1: in this process);
// records come back in the order of runs and do not depend on jobs. Throws nash::Error when a run fails.
std::vector<BimodalRunRecord> run_bimodal_batch(const std::vector<BimodalConfig>& runs, int jobs);

// Runs each config (seed ignored) over seeds first_seed..first_seed+seeds-1 on `jobs` worker processes; the
// counts do not depend on jobs.
std::vector<BimodalCellSummary> sweep_bimodal(const std::vector<BimodalConfig>& cells, uint64_t first_seed,
                                              int64_t seeds, int jobs);

// The subcommand: parses argv[first..argc), runs, prints, returns 0 (ok), 1 (failure or divergence), 2 (bad flags
// or an unwritable output).
int run_bimodal(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
