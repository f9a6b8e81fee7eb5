// `nash spectrum`: loads a checkpoint, runs an SVD on each discriminator weight matrix and writes spectrum.csv, one
// PNG per layer and a one-line summary per layer.
#include "apps/spectrum.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <utility>

#include "apps/cli.h"
#include "apps/plot.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/linalg/svd.h"
#include "nash/nn/weight_norm.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

double LayerSpectrum::sigma_max() const { return sigma_sq.empty() ? 0.0 : std::sqrt(sigma_sq.front()); }

double LayerSpectrum::effective_rank() const {
  double s = 0, s2 = 0;
  for (double v : sigma_sq) {
    s += v;
    s2 += v * v;
  }
  return s2 > 0 ? s * s / s2 : 0.0;
}

int64_t LayerSpectrum::count_above(double fraction_of_max) const {
  if (sigma_sq.empty()) return 0;
  const double bound = fraction_of_max * sigma_sq.front();
  return static_cast<int64_t>(std::count_if(sigma_sq.begin(), sigma_sq.end(), [&](double v) { return v > bound; }));
}

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// The dim along which g (v's shape, every other dim 1) holds one value per unit, or -1 if g is not shaped so.
int64_t weight_norm_dim(const Tensor& v, const Tensor& g) {
  if (g.dim() != v.dim()) return -1;
  for (int64_t d = 0; d < v.dim(); ++d) {
    bool ok = g.size(d) == v.size(d);
    for (int64_t e = 0; e < v.dim() && ok; ++e) ok = e == d || g.size(e) == 1;
    if (ok) return d;
  }
  return -1;
}

std::string shape_text(const Shape& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

// A file name for a layer: characters other than letters, digits, '.', '-' and '_' become '_'.
std::string file_stem(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  return out;
}

plot::Figure layer_figure(const LayerSpectrum& l) {
  plot::Figure f;
  f.title = l.name + " (" + shape_text(l.shape) + " as " + std::to_string(l.rows) + "x" + std::to_string(l.cols) +
            (l.weight_normalized ? ", g*V/|V|" : "") + ")";
  f.xlabel = "index of singular value";
  f.ylabel = "sigma^2 / sigma_max^2";
  const std::size_t n = l.sigma_sq.size();
  plot::Series s{"", {}, {}, n < 32, 0x1f77b4, 2.0};
  for (std::size_t i = 0; i < n; ++i) {
    s.x.push_back(static_cast<double>(i));
    s.y.push_back(l.sigma_sq.front() > 0 ? l.sigma_sq[i] / l.sigma_sq.front() : 0.0);
  }
  f.series.push_back(std::move(s));
  f.xmin = n > 1 ? 0.0 : -0.5;
  f.xmax = n > 1 ? static_cast<double>(n - 1) : 0.5;
  f.ymin = 0.0;
  f.ymax = 1.05;
  return f;
}

std::string csv_text(const std::vector<LayerSpectrum>& layers) {
  std::ostringstream s;
  s << "layer,index,sigma_sq,sigma_sq_normalised\n";
  char buf[96];
  for (const LayerSpectrum& l : layers)
    for (std::size_t i = 0; i < l.sigma_sq.size(); ++i) {
      const double top = l.sigma_sq.front();
      std::snprintf(buf, sizeof buf, ",%zu,%.17g,%.17g\n", i, l.sigma_sq[i], top > 0 ? l.sigma_sq[i] / top : 0.0);
      s << l.name << buf;
    }
  return s.str();
}

}  // namespace

std::vector<LayerSpectrum> checkpoint_spectra(const std::string& path, const std::string& prefix) {
  io::SafetensorsFile f = io::load_safetensors(path);
  const bool skip_optim = !starts_with(prefix, "optim.");
  std::vector<LayerSpectrum> out;
  for (const auto& [name, t] : f.tensors) {
    if (!starts_with(name, prefix) || (skip_optim && starts_with(name, "optim."))) continue;
    if (!(name == "weight" || ends_with(name, ".weight")) || t.dim() < 2 || t.numel() == 0) continue;
    LayerSpectrum l;
    l.name = name;
    l.shape = t.shape();
    Tensor w = t;
    if (ends_with(name, ".module.weight")) {
      const Tensor* g = f.find(name.substr(0, name.size() - std::string(".module.weight").size()) + ".weight_g");
      const int64_t d = g ? weight_norm_dim(t, *g) : -1;
      if (d >= 0) {
        w = nn::weight_normalized(t, g->to(t.dtype()), d);
        l.weight_normalized = true;
      }
    }
    Tensor m = w.contiguous().reshape({w.size(0), -1});
    l.rows = m.size(0);
    l.cols = m.size(1);
    for (double s : linalg::singular_values(m).to_vector<double>()) l.sigma_sq.push_back(s * s);
    out.push_back(std::move(l));
  }
  NASH_CHECK(!out.empty(), "checkpoint '", path, "' holds no weight of dim >= 2 whose name starts with '", prefix,
             "' (", f.tensors.size(), " tensors in the file)");
  return out;
}

int run_spectrum(int argc, const char* const* argv, int first) {
  cli::Parser p("nash spectrum CHECKPOINT",
                "Squared singular values of the discriminator's weight matrices in a nash checkpoint, sorted\n"
                "descending and normalised by the largest (the SN-GAN paper's plot). Every tensor under --prefix\n"
                "named *.weight with dim >= 2 is read as the (size(0), rest) matrix (a conv's (out, in*kh*kw)); a\n"
                "WeightNorm layer is combined with its g. Writes DIR/spectrum.csv (layer, index, sigma_sq,\n"
                "sigma_sq_normalised), DIR/<layer>.png per layer, and prints shape, sigma_max and effective rank\n"
                "((sum s^2)^2 / sum s^4) per layer.\n"
                "Exit codes: 0 ok, 1 the checkpoint cannot be read or holds no matching weight, 2 bad flags or an\n"
                "unwritable output directory.");
  p.add_string("out", "out/spectrum", "output directory for spectrum.csv and the plots")
      .add_string("prefix", "D.", "take the tensors whose names start with this (\"\": all)", true);
  const char* name = "nash spectrum";
  // The checkpoint is the one argument that is neither a flag nor a flag's value (every flag takes a value).
  std::vector<std::string> flags, positional;
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i] ? argv[i] : "";
    if (starts_with(a, "--") && a.size() > 2) {
      flags.push_back(a);
      if (a.find('=') == std::string::npos && a != "--help" && i + 1 < argc) flags.emplace_back(argv[++i]);
    } else if (a == "-h") {
      flags.push_back(a);
    } else {
      positional.push_back(a);
    }
  }
  try {
    p.parse(flags);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
    if (positional.size() != 1)
      throw cli::UsageError(positional.empty() ? "missing CHECKPOINT (see --help)"
                                               : "expected one CHECKPOINT, got " + std::to_string(positional.size()) +
                                                     " arguments");
    if (positional[0].empty()) throw cli::UsageError("CHECKPOINT is an empty path");
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  const std::string ckpt = positional[0], dir = p.get_string("out");
  std::vector<LayerSpectrum> layers;
  try {
    layers = checkpoint_spectra(ckpt, p.get_string("prefix"));
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
  try {
    cli::prepare_output_dir(dir);
    cli::write_atomic((fs::path(dir) / "spectrum.csv").string(), csv_text(layers));
    for (const LayerSpectrum& l : layers) {
      if (!io::png_available()) break;  // the CSV holds everything; plots need libpng
      try {
        plot::save_png(layer_figure(l), (fs::path(dir) / (file_stem(l.name) + ".png")).string());
      } catch (const Error& e) {
        throw cli::OutputError(e.what());
      }
    }
  } catch (const cli::OutputError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  std::printf("%s: %zu weight matrices under '%s'\n", ckpt.c_str(), layers.size(), p.get_string("prefix").c_str());
  for (const LayerSpectrum& l : layers) {
    const std::string shape = shape_text(l.shape) + " as " + std::to_string(l.rows) + "x" + std::to_string(l.cols) +
                              (l.weight_normalized ? " (g*V/|V|)" : "");
    std::printf("  %-28s %-30s sigma_max %-10.4g eff_rank %7.2f of %-5zu above 1%%: %lld\n", l.name.c_str(),
                shape.c_str(), l.sigma_max(), l.effective_rank(), l.sigma_sq.size(),
                static_cast<long long>(l.count_above(0.01)));
  }
  std::printf("wrote %s and %zu plots%s\n", (fs::path(dir) / "spectrum.csv").string().c_str(),
              io::png_available() ? layers.size() : std::size_t{0},
              io::png_available() ? "" : " (this nash was built without libpng)");
  return 0;
}

}  // namespace apps
}  // namespace nash
