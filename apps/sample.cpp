// `nash sample`: loads the generator of a `nash fmnist` checkpoint and writes images of it (grid, PNG folder,
// safetensors) from seeded, optionally truncated or interpolated latents.
#include "apps/sample.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <vector>

#include "apps/cli.h"
#include "apps/fid.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/threads.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/nn/checkpoint.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxImages = 100000;  // 400 MB of float32 images: more than any FID here uses
constexpr double kMinTruncation = 0.05; // below it, redrawing until |z| <= t takes > 25 draws per component
constexpr int64_t kImageSize = 32;      // `nash fmnist` trains on 32 x 32 images
constexpr int64_t kMaxPngSide = 32768;  // io::write_png's limit

// The grid's default: a row per walk, a column per class for a conditional G's classes in turn, else 8 per row.
// (validate() checks the PNG limit with 8 columns, before G is known: 10 columns only make the grid shorter, and
// never wider than 16 x 342 pixels.)
int64_t grid_cols(const SampleConfig& c, bool conditional = false) {
  if (c.cols > 0) return c.cols;
  if (c.interpolate >= 2) return c.interpolate;
  return conditional && c.label < 0 ? kFmnistClasses : 8;
}

// The grid's width and height in pixels (fmnist_grid_image: 2-pixel gutters, `scale` pixels per image pixel).
std::pair<int64_t, int64_t> grid_pixels(const SampleConfig& c) {
  const int64_t n = c.n * std::max<int64_t>(1, c.interpolate), cols = std::min(grid_cols(c), n);
  const int64_t rows = (n + cols - 1) / cols;
  return {(cols * (kImageSize + 2) + 2) * c.scale, (rows * (kImageSize + 2) + 2) * c.scale};
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

bool has_png(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && !png_files(dir.string()).empty();
}

// Creates the outputs' folders and checks each can be written, before anything is generated or written; throws
// cli::OutputError naming the path.
void prepare_outputs(const SampleConfig& c) {
  for (const std::string* file : {&c.grid, &c.tensor}) {
    if (file->empty()) continue;
    const fs::path parent = fs::path(*file).parent_path();
    cli::prepare_output_dir(parent.empty() ? std::string(".") : parent.string());
    std::error_code ec;
    if (fs::is_directory(*file, ec)) throw cli::OutputError("'" + *file + "' is a directory, not a file name");
  }
  if (!c.png_dir.empty()) {
    if (has_png(c.png_dir))
      throw cli::OutputError("--png-dir '" + c.png_dir + "' already holds .png files; give a new or empty folder " +
                             "(`nash fid` would read the old images with the new ones)");
    cli::prepare_output_dir(c.png_dir);
    std::error_code ec;
    if (!c.grid.empty() &&
        fs::weakly_canonical(fs::path(c.grid).parent_path().empty() ? fs::path(".") : fs::path(c.grid).parent_path(),
                             ec) == fs::weakly_canonical(c.png_dir, ec))
      throw cli::OutputError("--grid '" + c.grid + "' lies in --png-dir '" + c.png_dir +
                             "': the folder would then hold an image of another size");
  }
}

}  // namespace

void SampleConfig::validate() const {
  NASH_CHECK(!checkpoint.empty(), "sample: no checkpoint given");
  NASH_CHECK(n >= 1, "sample: n (--n: images, or rows when interpolating) must be >= 1, got ", n);
  NASH_CHECK(interpolate == 0 || interpolate >= 2, "sample: interpolate (--interpolate) must be 0 (independent "
             "latents) or >= 2 (images per row), got ", interpolate);
  NASH_CHECK(n <= kMaxImages / std::max<int64_t>(1, interpolate), "sample: ", n, " rows of ",
             std::max<int64_t>(1, interpolate), " images exceed the limit of ", kMaxImages, " images");
  NASH_CHECK(truncation == 0 || (std::isfinite(truncation) && truncation >= kMinTruncation && truncation <= 100),
             "sample: truncation (--truncation) must be 0 (off) or in [", kMinTruncation, ", 100], got ", truncation);
  NASH_CHECK(batch >= 1, "sample: batch must be >= 1, got ", batch);
  NASH_CHECK(cols >= 0 && scale >= 1 && scale <= 16, "sample: cols must be >= 0 (0: automatic) and scale in [1, 16], "
             "got ", cols, " and ", scale);
  NASH_CHECK(threads >= 0, "sample: threads must be >= 0 (0: the process default), got ", threads);
  NASH_CHECK(label >= -1 && label < kFmnistClasses, "sample: class (--class) must be in [0, ", kFmnistClasses,
             ") or -1 (the classes in turn), got ", label);
  if (!grid.empty()) {
    const auto [w, h] = grid_pixels(*this);
    NASH_CHECK(w <= kMaxPngSide && h <= kMaxPngSide, "sample: a grid of ", n * std::max<int64_t>(1, interpolate),
               " images, ", std::min(grid_cols(*this), n * std::max<int64_t>(1, interpolate)), " per row at scale ",
               scale, " would be ", w, " x ", h, " pixels, over the PNG limit of ", kMaxPngSide,
               " (fewer images, other cols or scale; --png-dir or --tensor take any number)");
  }
}

Tensor sample_latents(int64_t n, int64_t z_dim, uint64_t seed, double truncation, int64_t interpolate) {
  NASH_CHECK(n >= 1 && z_dim >= 1, "sample_latents: n and z_dim must be >= 1, got ", n, " and ", z_dim);
  NASH_CHECK(interpolate == 0 || interpolate >= 2, "sample_latents: interpolate must be 0 or >= 2, got ",
             interpolate);
  NASH_CHECK(truncation == 0 || (std::isfinite(truncation) && truncation >= kMinTruncation),
             "sample_latents: truncation must be 0 (off) or >= ", kMinTruncation, ", got ", truncation);
  Generator gen(seed);
  const int64_t draws = interpolate >= 2 ? 2 * n : n;
  std::vector<float> v = randn({draws, z_dim}, DType::Float32, Device::cpu(), &gen).to_vector<float>();
  if (truncation > 0) {
    const float t = static_cast<float>(truncation);
    for (;;) {  // redraw the components outside [-t, t], in index order, until none is
      std::vector<std::size_t> out;
      for (std::size_t i = 0; i < v.size(); ++i)
        if (!(std::fabs(v[i]) <= t)) out.push_back(i);
      if (out.empty()) break;
      const std::vector<float> fresh =
          randn({static_cast<int64_t>(out.size())}, DType::Float32, Device::cpu(), &gen).to_vector<float>();
      for (std::size_t j = 0; j < out.size(); ++j) v[out[j]] = fresh[j];
    }
  }
  if (interpolate < 2) return from_vector(v, {n, z_dim});
  const std::size_t z = static_cast<std::size_t>(z_dim), k = static_cast<std::size_t>(interpolate);
  std::vector<float> w(static_cast<std::size_t>(n) * k * z);
  for (std::size_t r = 0; r < static_cast<std::size_t>(n); ++r) {
    const float* a = &v[2 * r * z];
    const float* b = a + z;
    double aa = 0, bb = 0, ab = 0;
    for (std::size_t i = 0; i < z; ++i) {
      aa += static_cast<double>(a[i]) * a[i];
      bb += static_cast<double>(b[i]) * b[i];
      ab += static_cast<double>(a[i]) * b[i];
    }
    const double cosine = aa > 0 && bb > 0 ? std::max(-1.0, std::min(1.0, ab / std::sqrt(aa * bb))) : 1.0;
    const double theta = std::acos(cosine), s = std::sin(theta);
    for (std::size_t j = 0; j < k; ++j) {
      const double t = static_cast<double>(j) / static_cast<double>(k - 1);
      const bool linear = s < 1e-6;
      const double wa = linear ? 1.0 - t : std::sin((1.0 - t) * theta) / s;
      const double wb = linear ? t : std::sin(t * theta) / s;
      float* out = &w[(r * k + j) * z];
      for (std::size_t i = 0; i < z; ++i) out[i] = static_cast<float>(wa * a[i] + wb * b[i]);
    }
  }
  return from_vector(w, {n * interpolate, z_dim});
}

Samples sample_fmnist(const SampleConfig& cfg) {
  cfg.validate();
  const auto t0 = std::chrono::steady_clock::now();
  NumThreadsGuard threads(cfg.threads);
  const Device dev = cli::pick_device(cfg.device, "sample");
  std::error_code ec;
  NASH_CHECK(fs::is_regular_file(cfg.checkpoint, ec), "sample: checkpoint '", cfg.checkpoint,
             "' does not exist or is not a file");
  Samples s;
  s.model = fmnist_config_from_checkpoint(cfg.checkpoint);
  s.weights = cfg.ema ? "G_ema" : "G";
  NASH_CHECK(!cfg.ema || s.model.g_ema > 0, "sample: checkpoint ", cfg.checkpoint, " holds no weight average of G "
             "(G_ema): its run was trained without --g-ema; sample G without --ema");
  NASH_CHECK(s.model.conditional || cfg.label < 0, "sample: checkpoint ", cfg.checkpoint, " holds an unconditional "
             "G (trained without --conditional); it takes no class (leave --class out)");
  std::shared_ptr<nn::Module> g = fmnist_generator(s.model);
  nn::Checkpoint ck;
  ck.modules = {{s.weights, g.get()}};
  ck.restore_rng = false;
  nn::load_checkpoint(cfg.checkpoint, ck);
  s.step = ck.step;
  g->to(dev);
  g->eval();
  s.latents = sample_latents(cfg.n, s.model.z_dim, cfg.seed, cfg.truncation, cfg.interpolate);
  const int64_t total = s.latents.size(0);
  if (s.model.conditional) {
    const int64_t per_row = std::max<int64_t>(1, cfg.interpolate);
    std::vector<float> y(static_cast<std::size_t>(total));
    for (int64_t i = 0; i < total; ++i)
      y[static_cast<std::size_t>(i)] = static_cast<float>(cfg.label >= 0 ? cfg.label : (i / per_row) % kFmnistClasses);
    s.labels = from_vector(y, {total});
  }
  std::vector<Tensor> parts;
  {
    NoGradGuard ng;
    for (int64_t done = 0; done < total;) {
      const int64_t b = std::min(cfg.batch, total - done);
      const Tensor y = s.labels.defined() ? s.labels.narrow(0, done, b) : Tensor();
      parts.push_back(fmnist_generate(*g, s.latents.narrow(0, done, b).to(dev), y).to(Device::cpu()));
      done += b;
    }
  }
  Tensor x = (parts.size() == 1 ? parts.front() : cat(parts, 0)).contiguous();
  NASH_CHECK(x.dim() == 4 && x.size(0) == total && x.size(1) == 1, "sample: G returned ", shape_str(x.shape()),
             " for ", total, " latents");
  const float* p = x.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i)
    NASH_CHECK(std::isfinite(p[i]), "sample: ", s.weights, " of checkpoint ", cfg.checkpoint, " (step ", s.step,
               ") produced a non-finite value in image ", i / (x.numel() / total),
               ": its weights have diverged; sample an earlier checkpoint");
  // The images' range: DCGAN's tanh stays inside it, ProGAN's linear output can overshoot (the app's grids and FIDs
  // clamp the same way).
  s.images = clamp(x, -1.0, 1.0).contiguous();
  s.device = dev.str();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

void write_samples(const Samples& s, const SampleConfig& cfg) {
  prepare_outputs(cfg);
  try {
    const int64_t n = s.images.size(0);
    if (!cfg.png_dir.empty()) {
      for (int64_t i = 0; i < n; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
        io::write_png((fs::path(cfg.png_dir) / name).string(), fmnist_grid_image(s.images.narrow(0, i, 1), 1, 1, 0));
      }
    }
    if (!cfg.tensor.empty()) {
      const std::map<std::string, std::string> meta = {
          {"app", "sample"},           {"checkpoint", cfg.checkpoint},
          {"weights", s.weights},      {"step", std::to_string(s.step)},
          {"arch", fmnist_name(s.model.arch)}, {"seed", std::to_string(cfg.seed)},
          {"truncation", fmt(cfg.truncation)}, {"interpolate", std::to_string(cfg.interpolate)}};
      std::vector<std::pair<std::string, Tensor>> tensors = {{"samples", s.images}, {"latents", s.latents}};
      if (s.labels.defined()) tensors.emplace_back("labels", s.labels);
      io::save_safetensors(cfg.tensor, tensors, meta);
    }
    if (!cfg.grid.empty()) {
      io::write_png(cfg.grid,
                    fmnist_grid_image(s.images, grid_cols(cfg, s.labels.defined()), static_cast<int>(cfg.scale)));
    }
  } catch (const cli::OutputError&) {
    throw;
  } catch (const std::exception& e) {
    throw cli::OutputError(e.what());
  }
}

int run_sample(int argc, const char* const* argv, int first) {
  cli::Parser p("nash sample",
                "Writes images of the generator of a `nash fmnist` checkpoint (G, or with --ema its weight average\n"
                "G_ema) without training: a PNG grid (--grid), one PNG per image (--png-dir) and/or a safetensors\n"
                "file of the images in [-1, 1] and their latents (--tensor); `nash fid --fake` reads the last two.\n"
                "G runs in eval mode (batch norm's running statistics), as in the app's own grids and FIDs.\n"
                "Latents are N(0, 1) draws from --seed; --truncation T redraws every component until |z| <= T\n"
                "(the truncation trick: less varied images, better only for some G); --interpolate K makes each of\n"
                "the --n rows a walk of K images along the great circle between two latents (the truncation\n"
                "applies to their ends).\n"
                "A class-conditional G (`nash fmnist --conditional`) draws the classes in turn (image i, or row i\n"
                "of a walk, of class i mod 10: a column per class in the grid), or --class K only.\n"
                "Exit codes: 0 ok, 1 the checkpoint cannot be used (or G's output is not finite), 2 bad flags or an\n"
                "output that cannot be written.");
  p.add_string("checkpoint", "", "a checkpoint.safetensors written by `nash fmnist`")
      .add_bool("ema", false, "sample G's weight average (a run with --g-ema) instead of G")
      .add_int("n", 64, "images (with --interpolate: rows)", 1, kMaxImages)
      .add_int("seed", 0, "the latents' random seed")
      .add_double("truncation", 0, "redraw latent components until |z| <= T (0: off; else >= 0.05)", 0, 100)
      .add_int("class", -1, "conditional G: every image of this class (-1: the classes in turn)", -1,
               kFmnistClasses - 1)
      .add_int("interpolate", 0, "images per row along a great circle between two latents (0: off; else >= 2)", 0,
               1000)
      .add_string("grid", "", "write all images into this PNG", true)
      .add_int("cols", 0, "images per grid row (0: 8; 10 for a conditional G's classes in turn; --interpolate)", 0, 1000)
      .add_int("scale", 2, "grid pixels per image pixel", 1, 16)
      .add_string("png-dir", "", "write each image to DIR/000000.png, ... (a new or empty folder)", true)
      .add_string("tensor", "", "write a safetensors file: samples (N, 1, 32, 32) in [-1, 1], latents (N, z), labels "
                  "(N) of a conditional G", true)
      .add_int("batch", 500, "latents per forward pass", 1, 65536)
      .add_string("device", "auto", "cpu, cuda, cuda:N or auto (cuda when a GPU answers)")
      .add_int("threads", 0, "CPU threads for the kernels and the BLAS (0: the process default)", 0, 1024)
      .add_bool("quiet", false, "print nothing on success");
  const char* name = "nash sample";
  // The library's messages start "sample: "; the program's name says it already.
  auto say = [&](const std::exception& e) {
    std::string m = e.what();
    if (m.rfind("sample: ", 0) == 0) m.erase(0, 8);
    std::cerr << name << ": " << m << '\n';
  };
  SampleConfig c;
  try {
    p.parse(argc, argv, first);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
    c.checkpoint = p.get_string("checkpoint");
    c.ema = p.get_bool("ema");
    c.n = p.get_int("n");
    c.seed = static_cast<uint64_t>(p.get_int("seed"));
    c.truncation = p.get_double("truncation");
    c.interpolate = p.get_int("interpolate");
    c.label = p.get_int("class");
    c.grid = p.get_string("grid");
    c.cols = p.get_int("cols");
    c.scale = p.get_int("scale");
    c.png_dir = p.get_string("png-dir");
    c.tensor = p.get_string("tensor");
    c.batch = p.get_int("batch");
    c.device = p.get_string("device");
    c.threads = static_cast<int>(p.get_int("threads"));
    if (c.checkpoint.empty()) throw cli::UsageError("--checkpoint is required");
    if (c.grid.empty() && c.png_dir.empty() && c.tensor.empty())
      throw cli::UsageError("nothing to write: give --grid, --png-dir and/or --tensor");
    if (c.device != "auto") Device::parse(c.device);
    c.validate();
    prepare_outputs(c);
  } catch (const std::exception& e) {
    say(e);
    return cli::kUsageExit;
  }
  Samples s;
  try {
    s = sample_fmnist(c);
  } catch (const std::exception& e) {
    say(e);
    return cli::kRuntimeExit;
  }
  try {
    write_samples(s, c);
  } catch (const std::exception& e) {
    say(e);
    return cli::kUsageExit;
  }
  if (!p.get_bool("quiet")) {
    const std::string classes = !s.labels.defined() ? ""
                                : c.label >= 0         ? ", class " + std::to_string(c.label)
                                                       : ", the classes in turn";
    std::printf("%lld images of %s (%s%s, width %lld, step %lld%s) from %s on %s in %.2f s\n",
                static_cast<long long>(s.images.size(0)), s.weights.c_str(), fmnist_name(s.model.arch),
                s.model.conditional ? ", conditional" : "", static_cast<long long>(s.model.width),
                static_cast<long long>(s.step), classes.c_str(), c.checkpoint.c_str(), s.device.c_str(), s.seconds);
    if (!c.grid.empty()) std::printf("grid: %s\n", c.grid.c_str());
    if (!c.png_dir.empty()) std::printf("images: %s/000000.png ...\n", c.png_dir.c_str());
    if (!c.tensor.empty()) std::printf("tensor: %s (samples, latents)\n", c.tensor.c_str());
  }
  return 0;
}

}  // namespace apps
}  // namespace nash
