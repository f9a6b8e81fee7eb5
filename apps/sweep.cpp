// `nash sweep`: the mixture benchmark grid run on worker processes and written up as a Markdown table.
#include "apps/sweep.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "nash/core/error.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string cell_name(MixtureOptimizer o, bool sn, double ratio) {
  return std::string(mixture_name(o)) + (sn ? "_sn" : "") + "_ttur" + fmt("%g", ratio);
}

// Runs a command and returns its first line of output ("" when it fails).
std::string first_line_of(const std::string& cmd) {
  std::FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return "";
  char buf[512];
  std::string line;
  if (std::fgets(buf, sizeof buf, f)) line = buf;
  const int rc = ::pclose(f);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return rc == 0 ? line : "";
}

std::string shell_quote(const std::string& a) {
  if (!a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,/:+") ==
                        std::string::npos)
    return a;
  std::string q = "'";
  for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

std::vector<MixtureConfig> sweep_runs(const SweepConfig& s) {
  NASH_CHECK(!s.optimizers.empty() && !s.sn.empty() && !s.ttur.empty(),
             "sweep: the grid needs at least one optimizer, SN setting and TTUR ratio");
  NASH_CHECK(s.seeds >= 1, "sweep: seeds must be >= 1, got ", s.seeds);
  std::vector<MixtureConfig> runs;
  for (MixtureOptimizer o : s.optimizers)
    for (bool sn : s.sn)
      for (double ratio : s.ttur) {
        NASH_CHECK(std::isfinite(ratio) && ratio > 0, "sweep: TTUR ratios must be finite and > 0, got ", ratio);
        for (int64_t k = 0; k < s.seeds; ++k) {
          MixtureConfig c = s.base;
          c.optimizer = o;
          c.sn = sn;
          c.lr_g = s.base.lr_g > 0 ? s.base.lr_g : mixture_default_lr(o);
          c.lr_d = ratio * c.lr_g;
          c.seed = s.first_seed + static_cast<uint64_t>(k);
          c.quiet = true;
          c.out_dir = s.out_dir.empty() ? ""
                                        : (fs::path(s.out_dir) / cell_name(o, sn, ratio) /
                                           ("seed" + std::to_string(c.seed)))
                                              .string();
          runs.push_back(c.resolved());
        }
      }
  return runs;
}

std::vector<SweepCell> run_sweep(const SweepConfig& s, std::ostream* progress) {
  const std::vector<MixtureConfig> runs = sweep_runs(s);
  int jobs = s.jobs;
  if (jobs <= 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    jobs = n > 0 ? static_cast<int>(n) : 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t done = 0;
  auto report = [&](std::size_t i, const MixtureRunRecord& r) {
    ++done;
    if (!progress) return;
    const MixtureConfig& c = runs[i];
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = el / static_cast<double>(done) * static_cast<double>(runs.size() - done);
    char buf[256];
    if (r.ok)
      std::snprintf(buf, sizeof buf, "%lld/%lld modes, HQ %.1f%%, KL %.3f, %.1f s",
                    static_cast<long long>(r.modes_covered), static_cast<long long>(r.num_modes),
                    100 * r.high_quality_share, r.kl_uniform, r.wall_seconds);
    else
      std::snprintf(buf, sizeof buf, "FAILED: %.150s", r.error.c_str());
    *progress << "[" << done << "/" << runs.size() << "] " << mixture_name(c.optimizer) << (c.sn ? " +SN" : "")
              << " lr_d/lr_g " << fmt("%g", c.lr_d / c.lr_g) << " seed " << c.seed << ": " << buf << "  (elapsed "
              << fmt("%.0f", el) << " s, ETA " << fmt("%.0f", eta) << " s)" << std::endl;
  };
  const std::vector<MixtureRunRecord> recs = run_mixture_batch(runs, jobs, report);

  std::vector<SweepCell> cells;
  std::size_t i = 0;  // the first run of the cell, in sweep_runs' order
  for (MixtureOptimizer o : s.optimizers)
    for (bool sn : s.sn)
      for (double ratio : s.ttur) {
        SweepCell cell;
        cell.optimizer = o;
        cell.sn = sn;
        cell.ratio = ratio;
        cell.lr_d = runs[i].lr_d;
        cell.lr_g = runs[i].lr_g;
        std::vector<double> modes, hq, kl, wall;
        for (std::size_t k = i; k < i + static_cast<std::size_t>(s.seeds); ++k) {
          const MixtureRunRecord& r = recs[k];
          ++cell.runs;
          if (!r.ok) {
            ++cell.failed;
            if (cell.first_error.empty()) cell.first_error = r.error;
            continue;
          }
          modes.push_back(static_cast<double>(r.modes_covered));
          hq.push_back(100.0 * r.high_quality_share);
          if (std::isfinite(r.kl_uniform)) kl.push_back(r.kl_uniform);
          else ++cell.kl_undefined;
          wall.push_back(r.wall_seconds);
          if (r.modes_covered == r.num_modes) ++cell.all_modes;
        }
        cell.modes = mean_std(modes);
        cell.hq = mean_std(hq);
        cell.kl = mean_std(kl);
        cell.wall = mean_std(wall);
        cells.push_back(cell);
        i += static_cast<std::size_t>(s.seeds);
      }
  return cells;
}

std::string git_commit() {
  std::string head = first_line_of("git rev-parse --short HEAD 2>/dev/null");
  if (head.empty()) return "unknown";
  if (!first_line_of("git status --porcelain --untracked-files=no 2>/dev/null").empty())
    head += " (plus uncommitted changes)";
  return head;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string first;
  return f >> first ? first : "?";
}

std::string machine_description() {
  std::string model = "unknown CPU";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return model + " (" + std::to_string(n > 0 ? n : 1) + " cores online)";
}

std::string sweep_markdown(const SweepConfig& s, const std::vector<SweepCell>& cells, const SweepContext& ctx) {
  const MixtureConfig b = s.base.resolved();
  const data::GaussianMixture2D dist = mixture_distribution(b.dist);
  std::ostringstream o;
  o << "## 2-D mixtures\n\n"
    << "`nash sweep` trains `nash mixture` (G and D: MLPs with 3 hidden layers of " << b.hidden << ") on the "
    << (b.dist == MixtureDist::Ring ? "ring of 8 Gaussians (radius 2, std 0.02)"
                                    : "5x5 grid of Gaussians (spacing 2, std 0.05)")
    << " with every optimizer, without and with spectral normalization on D, at each TTUR ratio lr_d / lr_g "
       "(lr_g is the optimizer's default, lr_d = ratio x lr_g), over "
    << s.seeds << " seeds, and reports mean ± std over the seeds. "
    << "**modes**: modes holding at least 1% of the " << b.eval_samples
    << " generated samples within 3 std; **all**: runs that covered every mode; **HQ**: share of samples within "
       "3 std of a mode; **KL**: KL(mode histogram of the high-quality samples || uniform), 0 when they are spread "
       "evenly; **wall**: seconds a run took (training, evaluation; runs share the cores).\n\n"
    << "- command: `" << ctx.command << "`\n"
    << "- commit: " << ctx.commit << "\n"
    << "- machine: " << ctx.machine << "; " << ctx.jobs << " worker processes; the whole sweep took "
    << fmt("%.1f", ctx.wall_seconds / 60) << " min" << (ctx.load.empty() ? "" : "; " + ctx.load)
    << " (wall times grow with the machine's load)\n"
    << "- every run: loss " << mixture_name(b.loss) << ", " << b.steps << " generator steps (n_dis " << b.n_dis
    << "), batch " << b.batch << ", z_dim " << b.z_dim << "; Adam betas (" << fmt("%g", b.beta1) << ", "
    << fmt("%g", b.beta2) << "); seeds " << s.first_seed << "-" << s.first_seed + static_cast<uint64_t>(s.seeds) - 1
    << "\n\n";

  // The best cell of each optimizer: most modes, then highest HQ.
  o << "Best cell per optimizer (most modes, then most high-quality samples):\n\n";
  for (MixtureOptimizer opt : s.optimizers) {
    const SweepCell* best = nullptr;
    for (const SweepCell& c : cells) {
      if (c.optimizer != opt || c.modes.n == 0) continue;
      if (!best || c.modes.mean > best->modes.mean ||
          (c.modes.mean == best->modes.mean && c.hq.mean > best->hq.mean))
        best = &c;
    }
    o << "- " << mixture_name(opt) << ": ";
    if (!best) {
      o << "every run failed\n";
      continue;
    }
    o << (best->sn ? "SN" : "no SN") << ", ratio " << fmt("%g", best->ratio) << ": "
      << fmt("%.1f", best->modes.mean) << "/" << dist.num_modes() << " modes, " << best->all_modes << "/"
      << best->runs << " runs with all, HQ " << fmt("%.1f", best->hq.mean) << "%, KL " << fmt("%.3f", best->kl.mean)
      << "\n";
  }
  o << "\n| optimizer | SN | lr_d/lr_g | lr_d | lr_g | modes (of " << dist.num_modes()
    << ") | all | HQ % | KL | wall s |\n"
    << "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const SweepCell& c : cells) {
    auto ms = [&](const MeanStd& m, const char* f) {
      if (m.n == 0) return std::string("-");
      return fmt(f, m.mean) + " ± " + fmt(f, m.std);
    };
    std::string modes = ms(c.modes, "%.1f");
    if (c.failed) modes += " (" + std::to_string(c.failed) + " failed)";
    std::string kl = ms(c.kl, "%.3f");
    if (c.kl_undefined) kl += " (" + std::to_string(c.kl_undefined) + " undefined)";
    o << "| " << mixture_name(c.optimizer) << " | " << (c.sn ? "yes" : "no") << " | " << fmt("%g", c.ratio) << " | "
      << fmt("%g", c.lr_d) << " | " << fmt("%g", c.lr_g) << " | " << modes << " | " << c.all_modes << "/" << c.runs
      << " | " << ms(c.hq, "%.1f") << " | " << kl << " | " << ms(c.wall, "%.1f") << " |\n";
  }
  bool any_failed = false;
  for (const SweepCell& c : cells) any_failed = any_failed || c.failed;
  if (any_failed) {
    o << "\nFailed runs (the first error of each cell):\n\n";
    for (const SweepCell& c : cells)
      if (c.failed)
        o << "- " << mixture_name(c.optimizer) << (c.sn ? " + SN" : "") << ", ratio " << fmt("%g", c.ratio) << ": "
          << c.first_error << "\n";
  }
  return o.str();
}

void replace_markdown_section(const std::string& path, const std::string& heading, const std::string& section) {
  std::vector<std::string> lines;
  {
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  std::string body = section;
  if (body.empty() || body.back() != '\n') body += '\n';
  std::string out;
  if (lines.empty()) {
    out = "# Results\n\n" + body;
  } else {
    std::size_t start = lines.size(), end = lines.size();
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (lines[i] == heading) {
        start = i;
        break;
      }
    for (std::size_t i = start + 1; i < lines.size(); ++i)
      if (lines[i].rfind("## ", 0) == 0) {
        end = i;
        break;
      }
    for (std::size_t i = 0; i < start; ++i) out += lines[i] + "\n";
    if (start == lines.size()) {  // a new section at the end
      while (!out.empty() && out.size() >= 2 && out.substr(out.size() - 2) == "\n\n") out.pop_back();
      out += "\n";
    }
    out += body;
    if (end < lines.size()) {
      out += "\n";
      for (std::size_t i = end; i < lines.size(); ++i) out += lines[i] + "\n";
    }
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    NASH_CHECK(f.good(), "sweep: cannot write '", tmp, "'");
    f << out;
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      NASH_CHECK(false, "sweep: writing '", tmp, "' failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    NASH_CHECK(false, "sweep: cannot rename '", tmp, "' to '", path, "'");
  }
}

int run_sweep_cli(int argc, const char* const* argv, int first) {
  const SweepConfig def;
  cli::Parser p("nash sweep",
                "Runs `nash mixture` over a grid - optimizers x {no SN, SN} x TTUR ratios lr_d/lr_g x seeds - on\n"
                "worker processes (one run each, single-threaded; the numbers do not depend on --jobs) and writes\n"
                "a Markdown table of mean ± std per cell (modes covered, high-quality share, KL to uniform, wall\n"
                "seconds), with this command, the git commit and the machine, into the '## 2-D mixtures' section\n"
                "of --results (other sections are kept). lr_g is each optimizer's default unless --lr-g is given;\n"
                "lr_d = ratio x lr_g. The defaults (150 runs of 2500 steps at batch 128) take about 10 minutes on\n"
                "2 idle cores. Exit codes: 0 ok, 1 a run failed (the table still says which), 2 bad flags or an\n"
                "unwritable results file.");
  p.add_string("dist", "ring", "ring or grid")
      .add_string("loss", "ns", "ns, hinge or wgan-gp")
      .add_string("optimizers", "sgda,adam,nsgda,ada-nsgda,adadir", "comma-separated optimizers")
      .add_string("sn", "off,on", "spectral normalization settings of D to run: off, on or off,on")
      .add_string("ttur", "1,2,4", "comma-separated ratios lr_d / lr_g")
      .add_int("seeds", def.seeds, "seeds per cell", 1, 1000)
      .add_int("seed", static_cast<int64_t>(def.first_seed), "first seed", 0)
      .add_int("steps", 2500, "generator steps per run", 1, 10000000)
      .add_int("batch", 128, "batch size", 1, 65536)
      .add_int("hidden", def.base.hidden, "width of the hidden layers", 1, 4096)
      .add_int("n-dis", 0, "D updates per G update (0: 5 for wgan-gp, else 1)", 0, 100)
      .add_string("lr-g", "auto", "generator learning rate (auto: each optimizer's default)")
      .add_int("eval-samples", def.base.eval_samples, "generated samples per run for the metrics", 1, 1000000)
      .add_int("jobs", 0, "worker processes (0: one per online core)", 0, 1024)
      .add_string("results", "docs/RESULTS.md", "Markdown file whose '## 2-D mixtures' section gets the table")
      .add_string("out", "", "directory for every run's files, DIR/<cell>/seed<k> (empty: none)", true)
      .add_bool("quiet", false, "no progress lines");
  const char* name = "nash sweep";
  SweepConfig s;
  std::string results;
  bool quiet = false;
  try {
    p.parse(argc, argv, first);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
    auto wrap = [](const std::string& flag, auto f) {
      try {
        return f();
      } catch (const Error& e) {
        std::string m = e.what();
        for (const char* pre : {"mixture: ", "sweep: "})
          if (m.rfind(pre, 0) == 0) m = m.substr(std::string(pre).size());
        throw cli::UsageError(flag + ": " + m);
      }
    };
    s.base.dist = wrap("--dist", [&] { return parse_mixture_dist(p.get_string("dist")); });
    s.base.loss = wrap("--loss", [&] { return parse_mixture_loss(p.get_string("loss")); });
    s.optimizers.clear();
    for (const std::string& o : split(p.get_string("optimizers"), ','))
      s.optimizers.push_back(wrap("--optimizers", [&] { return parse_mixture_optimizer(o); }));
    s.sn.clear();
    for (const std::string& v : split(p.get_string("sn"), ',')) s.sn.push_back(cli::parse_bool("--sn", v));
    s.ttur.clear();
    for (const std::string& v : split(p.get_string("ttur"), ',')) {
      const double r = cli::parse_double("--ttur", v);
      if (!(r > 0 && r <= 1000)) throw cli::UsageError("--ttur: ratios must be in (0, 1000], got " + v);
      s.ttur.push_back(r);
    }
    const std::string lr = p.get_string("lr-g");
    if (lr != "auto") {
      s.base.lr_g = cli::parse_double("--lr-g", lr);
      if (!(s.base.lr_g > 0 && s.base.lr_g <= 10))
        throw cli::UsageError("--lr-g: expected 'auto' or a value in (0, 10], got " + lr);
    }
  } catch (const cli::UsageError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  s.seeds = p.get_int("seeds");
  s.first_seed = static_cast<uint64_t>(p.get_int("seed"));
  s.base.steps = p.get_int("steps");
  s.base.batch = p.get_int("batch");
  s.base.hidden = p.get_int("hidden");
  s.base.n_dis = p.get_int("n-dis");
  s.base.eval_samples = p.get_int("eval-samples");
  s.base.plots = !p.get_string("out").empty();
  s.jobs = static_cast<int>(p.get_int("jobs"));
  s.out_dir = p.get_string("out");
  results = p.get_string("results");
  quiet = p.get_bool("quiet");

  SweepContext ctx;
  for (int i = 0; i < argc; ++i) ctx.command += (i ? " " : "") + shell_quote(argv[i]);
  ctx.commit = git_commit();
  ctx.machine = machine_description();
  if (s.jobs <= 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    ctx.jobs = n > 0 ? static_cast<int>(n) : 1;
  } else {
    ctx.jobs = s.jobs;
  }
  try {
    // Prove the results file writable before spending minutes on the runs.
    {
      std::error_code ec;
      const bool existed = fs::exists(results, ec);
      const bool ok = static_cast<bool>(std::ofstream(results, std::ios::app));
      if (!existed) fs::remove(results, ec);
      if (!ok) {
        std::cerr << name << ": cannot write the results file '" << results << "'\n";
        return cli::kUsageExit;
      }
    }
    if (!s.out_dir.empty()) {
      try {
        cli::prepare_output_dir(s.out_dir);  // every run writes below it: fail now, not once per run
      } catch (const cli::OutputError& e) {
        std::cerr << name << ": " << e.what() << '\n';
        return cli::kUsageExit;
      }
    }
    const std::vector<MixtureConfig> runs = sweep_runs(s);
    if (!quiet)
      std::cout << name << ": " << runs.size() << " runs (" << runs.size() / static_cast<std::size_t>(s.seeds)
                << " cells x " << s.seeds << " seeds) on " << ctx.jobs << " worker processes" << std::endl;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string load0 = load_average();
    const std::vector<SweepCell> cells = run_sweep(s, quiet ? nullptr : &std::cout);
    ctx.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ctx.load = "1-minute load average " + load0 + " at the start, " + load_average() + " at the end";
    const std::string md = sweep_markdown(s, cells, ctx);
    replace_markdown_section(results, "## 2-D mixtures", md);
    int64_t failed = 0;
    for (const SweepCell& c : cells) failed += c.failed;
    if (!quiet) std::cout << "\n" << md << "\nwrote the '## 2-D mixtures' section of " << results << '\n';
    if (failed) std::cerr << name << ": " << failed << " runs failed (see the table)\n";
    return failed ? cli::kRuntimeExit : 0;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
