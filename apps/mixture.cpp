// `nash mixture`: trains a small MLP GAN on the 8-Gaussian ring and reports how many modes it covers.
#include "apps/mixture.h"

#include "nash/core/threads.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/progress.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/data/synthetic.h"
#include "nash/nn/layers.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;


double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// in -> 3 x (Linear(hidden), activation) -> Linear(out).
std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out, bool leaky) {
  auto net = std::make_shared<nn::Sequential>();
  int64_t width = in;
  for (int i = 0; i < 3; ++i) {
    net->push_back(std::make_shared<nn::Linear>(width, hidden));
    if (leaky) net->push_back(std::make_shared<nn::LeakyReLU>(0.2));
    else net->push_back(std::make_shared<nn::ReLU>());
    width = hidden;
  }
  net->push_back(std::make_shared<nn::Linear>(width, out));
  return net;
}

// Creates dir and proves it writable before any training time is spent on a run that could not be saved.
void prepare_output_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw OutputError("cannot create output directory '" + dir.string() + "': " + ec.message());
  if (!fs::is_directory(dir, ec))
    throw OutputError("output path '" + dir.string() + "' exists and is not a directory");
  fs::path probe = dir / (".nash-write-test." + std::to_string(::getpid()));
  {
    std::ofstream f(probe);
    if (!f) throw OutputError("output directory '" + dir.string() + "' is not writable");
  }
  fs::remove(probe, ec);
}

// Writes to a temporary file beside `path` and renames it over `path`, so readers never see half a file.
void write_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw OutputError("cannot write '" + tmp.string() + "'");
    f << text;
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw OutputError("failed writing '" + tmp.string() + "' (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ec2;
    fs::remove(tmp, ec2);
    throw OutputError("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
  }
}

std::string fmt(double v, int precision = 6) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

// JSON has no infinity; an undefined KL (no high-quality sample) becomes null.
std::string json_number(double v) { return std::isfinite(v) ? fmt(v, 8) : "null"; }

void write_outputs(const fs::path& dir, const MixtureConfig& cfg, const MixtureResult& r) {
  std::string s = "x,y\n";
  for (std::size_t i = 0; i + 1 < r.samples.size(); i += 2)
    s += fmt(r.samples[i]) + "," + fmt(r.samples[i + 1]) + "\n";
  write_atomic(dir / "samples.csv", s);

  std::string m = "step,d_loss,g_loss\n";
  for (const MixtureLogRow& row : r.log)
    m += std::to_string(row.step) + "," + fmt(row.d_loss) + "," + fmt(row.g_loss) + "\n";
  write_atomic(dir / "metrics.csv", m);

  const metrics::ModeCoverage& c = r.coverage;
  std::ostringstream j;
  j << "{\n"
    << "  \"steps\": " << cfg.steps << ",\n  \"batch\": " << cfg.batch << ",\n  \"lr_d\": " << fmt(cfg.lr_d)
    << ",\n  \"lr_g\": " << fmt(cfg.lr_g) << ",\n  \"z_dim\": " << cfg.z_dim << ",\n  \"hidden\": " << cfg.hidden
    << ",\n  \"seed\": " << cfg.seed << ",\n  \"eval_samples\": " << cfg.eval_samples
    << ",\n  \"num_modes\": " << c.num_modes << ",\n  \"modes_covered\": " << c.modes_covered
    << ",\n  \"high_quality_share\": " << json_number(c.high_quality_share)
    << ",\n  \"kl_uniform\": " << json_number(c.kl_uniform) << ",\n  \"per_mode\": [";
  for (std::size_t k = 0; k < c.per_mode.size(); ++k) j << (k ? ", " : "") << c.per_mode[k];
  j << "],\n  \"final_d_loss\": " << json_number(r.log.empty() ? NAN : r.log.back().d_loss)
    << ",\n  \"final_g_loss\": " << json_number(r.log.empty() ? NAN : r.log.back().g_loss)
    << ",\n  \"train_seconds\": " << json_number(r.train_seconds)
    << ",\n  \"wall_seconds\": " << json_number(r.wall_seconds) << "\n}\n";
  write_atomic(dir / "summary.json", j.str());
}

void check_config(const MixtureConfig& c) {
  NASH_CHECK(c.steps >= 1, "mixture: steps must be >= 1, got ", c.steps);
  NASH_CHECK(c.batch >= 1, "mixture: batch must be >= 1, got ", c.batch);
  NASH_CHECK(std::isfinite(c.lr_d) && c.lr_d > 0, "mixture: lr_d must be finite and > 0, got ", c.lr_d);
  NASH_CHECK(std::isfinite(c.lr_g) && c.lr_g > 0, "mixture: lr_g must be finite and > 0, got ", c.lr_g);
  NASH_CHECK(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1, "mixture: Adam betas must be in [0, 1), got (",
             c.beta1, ", ", c.beta2, ")");
  NASH_CHECK(c.z_dim >= 1, "mixture: z_dim must be >= 1, got ", c.z_dim);
  NASH_CHECK(c.hidden >= 1, "mixture: hidden must be >= 1, got ", c.hidden);
  NASH_CHECK(c.eval_samples >= 1, "mixture: eval_samples must be >= 1, got ", c.eval_samples);
  NASH_CHECK(c.threads >= 0, "mixture: threads must be >= 0, got ", c.threads);
  NASH_CHECK(c.log_every >= 1, "mixture: log_every must be >= 1, got ", c.log_every);
}

}  // namespace

MixtureResult train_mixture(const MixtureConfig& cfg) {
  check_config(cfg);
  const Clock::time_point t0 = Clock::now();
  const bool write = !cfg.out_dir.empty();
  if (write) prepare_output_dir(cfg.out_dir);
  NumThreadsGuard threads(cfg.threads);  // OpenMP and the BLAS: small GEMMs run best single-threaded

  manual_seed(cfg.seed);  // before the networks: their initialisation draws from the default generator
  const data::GaussianMixture2D ring = data::GaussianMixture2D::ring(8, 2.0, 0.02);
  auto G = mlp(cfg.z_dim, cfg.hidden, 2, false);
  auto D = mlp(2, cfg.hidden, 1, true);
  optim::AdamOptions ad;
  ad.beta1 = cfg.beta1;
  ad.beta2 = cfg.beta2;
  ad.lr = cfg.lr_d;
  optim::Adam opt_d(D->parameters(), ad);
  ad.lr = cfg.lr_g;
  optim::Adam opt_g(G->parameters(), ad);

  // D sees real and fake in one batch of 2B: half the layer calls of two separate passes.
  const Tensor d_targets = cat({ones({cfg.batch, 1}), zeros({cfg.batch, 1})}, 0);
  const Tensor g_targets = ones({cfg.batch, 1});

  MixtureResult r;
  cli::ProgressBar bar(cfg.steps, std::cout, !cfg.quiet && cli::ProgressBar::stdout_is_tty());
  double d_sum = 0, g_sum = 0;
  int64_t n_sum = 0;
  const Clock::time_point t_train = Clock::now();
  for (int64_t step = 1; step <= cfg.steps; ++step) {
    Tensor real = ring.sample(cfg.batch);
    Tensor fake = G->forward(randn({cfg.batch, cfg.z_dim}));

    // Discriminator: BCE(D(real), 1) + BCE(D(fake), 0), the fake detached so G gets no gradient here.
    Tensor d_logits = D->forward(cat({real, fake.detach()}, 0));
    Tensor d_loss = binary_cross_entropy_with_logits(d_logits, d_targets) * 2.0;
    opt_d.zero_grad();
    d_loss.backward();
    opt_d.step();

    // Generator, non-saturating: BCE(D(G(z)), 1) = -log D(G(z)), against the just-updated D.
    Tensor g_loss = binary_cross_entropy_with_logits(D->forward(fake), g_targets);
    opt_g.zero_grad();
    g_loss.backward();
    opt_g.step();

    const double dl = d_loss.item(), gl = g_loss.item();
    NASH_CHECK(std::isfinite(dl) && std::isfinite(gl), "mixture: loss became non-finite at step ", step, " (D ", dl,
               ", G ", gl, "); try smaller learning rates");
    d_sum += dl;
    g_sum += gl;
    ++n_sum;
    if (step % cfg.log_every == 0 || step == cfg.steps) {
      r.log.push_back({step, d_sum / static_cast<double>(n_sum), g_sum / static_cast<double>(n_sum)});
      d_sum = g_sum = 0;
      n_sum = 0;
    }
    if (!cfg.quiet) bar.update(step, {{"D", dl}, {"G", gl}});
  }
  if (!cfg.quiet) bar.finish();
  r.train_seconds = seconds_since(t_train);

  {
    NoGradGuard no_grad;
    G->eval();
    Tensor x = G->forward(randn({cfg.eval_samples, cfg.z_dim}));
    r.samples = x.contiguous().to_vector<float>();
    r.coverage = metrics::mode_coverage(x, ring.centres(), ring.std());
  }
  r.wall_seconds = seconds_since(t0);
  if (write) write_outputs(cfg.out_dir, cfg, r);
  return r;
}

int run_mixture(int argc, const char* const* argv, int first) {
  const MixtureConfig def;
  cli::Parser p("nash mixture",
                "Trains a GAN (3x hidden MLPs, non-saturating loss, Adam) on 8 Gaussians on a ring (radius 2,\n"
                "std 0.02) and reports modes covered, the high-quality share and the KL of the mode histogram to\n"
                "uniform. Writes DIR/samples.csv, DIR/metrics.csv and DIR/summary.json.\n"
                "Exit codes: 0 ok, 1 training failed, 2 bad flags or an output directory that cannot be written.");
  p.add_int("steps", def.steps, "training steps (one D and one G update each)", 1, 10000000)
      .add_int("batch", def.batch, "batch size", 1, 65536)
      .add_double("lr-d", def.lr_d, "discriminator Adam learning rate", 0.0, 1.0, true)
      .add_double("lr-g", def.lr_g, "generator Adam learning rate", 0.0, 1.0, true)
      .add_int("z-dim", def.z_dim, "latent dimension", 1, 256)
      .add_int("hidden", def.hidden, "width of the 3 hidden layers of G and D", 1, 4096)
      .add_int("seed", static_cast<int64_t>(def.seed), "random seed (data, initialisation, latents)", 0)
      .add_string("out", def.out_dir, "output directory DIR (created if needed)")
      .add_int("eval-samples", def.eval_samples, "generated samples for the final metrics and samples.csv", 1,
               1000000)
      .add_int("log-every", def.log_every, "steps per row of metrics.csv (losses averaged over them)", 1, 10000000)
      .add_int("threads", def.threads, "CPU threads for the kernels and the BLAS (0: leave the process default)", 0, 1024)
      .add_bool("quiet", def.quiet, "no progress bar and no summary on stdout");
  const char* name = "nash mixture";
  try {
    p.parse(argc, argv, first);
  } catch (const cli::UsageError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  if (p.help_requested()) {
    std::cout << p.help();
    return 0;
  }
  MixtureConfig cfg;
  cfg.steps = p.get_int("steps");
  cfg.batch = p.get_int("batch");
  cfg.lr_d = p.get_double("lr-d");
  cfg.lr_g = p.get_double("lr-g");
  cfg.z_dim = p.get_int("z-dim");
  cfg.hidden = p.get_int("hidden");
  cfg.seed = static_cast<uint64_t>(p.get_int("seed"));
  cfg.out_dir = p.get_string("out");
  cfg.eval_samples = p.get_int("eval-samples");
  cfg.log_every = p.get_int("log-every");
  cfg.threads = static_cast<int>(p.get_int("threads"));
  cfg.quiet = p.get_bool("quiet");
  try {
    MixtureResult r = train_mixture(cfg);
    if (!cfg.quiet) {
      const metrics::ModeCoverage& c = r.coverage;
      std::printf("modes covered: %lld/%lld  high-quality: %.1f%%  KL(modes||uniform): %.4f  wall: %.2f s "
                  "(train %.2f s, %.0f it/s)\n",
                  static_cast<long long>(c.modes_covered), static_cast<long long>(c.num_modes),
                  100.0 * c.high_quality_share, c.kl_uniform, r.wall_seconds, r.train_seconds,
                  static_cast<double>(cfg.steps) / r.train_seconds);
      std::printf("wrote %s/{samples.csv,metrics.csv,summary.json}\n", cfg.out_dir.c_str());
    }
    return 0;
  } catch (const OutputError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
