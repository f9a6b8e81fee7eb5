// `nash fid`: loads two image sets (IDX, PNG folder or safetensors samples), runs them through the saved feature
// network and prints the Fréchet distance between their feature statistics.
#include "apps/fid.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <vector>

#include "apps/cli.h"
#include "nash/core/cuda.h"
#include "nash/core/threads.h"
#include "nash/data/idx.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/metrics/fid.h"
#include "nash/metrics/kid.h"
#include "nash/metrics/precision_recall.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> file_head(const std::string& path, std::size_t n) {
  std::ifstream f(path, std::ios::binary);
  NASH_CHECK(f.good(), "image set '", path, "': cannot open (missing or unreadable)");
  std::vector<uint8_t> b(n);
  f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
  b.resize(static_cast<std::size_t>(f.gcount()));
  return b;
}

Tensor keep_first(const Tensor& x, int64_t limit) {
  return limit > 0 && limit < x.size(0) ? x.narrow(0, 0, limit).contiguous() : x;
}

Tensor load_png_dir(const std::string& dir, int64_t limit) {
  std::vector<fs::path> files;
  for (const std::string& f : png_files(dir)) files.emplace_back(f);
  NASH_CHECK(!files.empty(), "image set '", dir, "': the directory holds no .png files");
  if (limit > 0 && static_cast<std::size_t>(limit) < files.size()) files.resize(static_cast<std::size_t>(limit));
  int w0 = 0, h0 = 0;
  std::vector<float> all;
  for (std::size_t i = 0; i < files.size(); ++i) {
    io::Image img = io::read_png(files[i].string(), 1);  // any colour type, as grey
    if (i == 0) {
      w0 = img.width;
      h0 = img.height;
      all.reserve(files.size() * static_cast<std::size_t>(w0) * static_cast<std::size_t>(h0));
    }
    NASH_CHECK(img.width == w0 && img.height == h0, "image set '", dir, "': '", files[i].filename().string(), "' is ",
               img.width, "x", img.height, " but '", files[0].filename().string(), "' is ", w0, "x", h0,
               "; all images must have one size");
    for (uint8_t v : img.pixels) all.push_back(static_cast<float>(v) * (2.0f / 255.0f) - 1.0f);
  }
  return from_vector(all, {static_cast<int64_t>(files.size()), 1, static_cast<int64_t>(h0), static_cast<int64_t>(w0)});
}

Tensor load_safetensors_images(const std::string& path, int64_t limit) {
  io::SafetensorsFile f = io::load_safetensors(path);
  const Tensor* t = nullptr;
  if (f.tensors.size() == 1) t = &f.tensors.front().second;
  if (!t) t = f.find("samples");
  if (!t) t = f.find("images");
  if (!t) {
    std::string names;
    for (auto& kv : f.tensors) names += (names.empty() ? "" : ", ") + kv.first;
    detail::fail("image set '", path, "': holds ", f.tensors.size(), " tensors (", names, ") and none is named "
                 "'samples' or 'images'");
  }
  Tensor x = *t;
  NASH_CHECK(x.dim() == 4 ? x.size(1) == 1 : x.dim() == 3, "image set '", path, "': expected a tensor (N, 1, H, W) or "
             "(N, H, W), got ", shape_str(x.shape()));
  if (x.dim() == 3) x = x.unsqueeze(1);
  x = keep_first(x, limit).to(DType::Float32).contiguous();
  float lo = 0, hi = 0;
  const float* p = x.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    NASH_CHECK(std::isfinite(p[i]), "image set '", path, "': value ", i, " is not finite");
    lo = i ? std::min(lo, p[i]) : p[i];
    hi = i ? std::max(hi, p[i]) : p[i];
  }
  // Generators end in tanh; a little slack absorbs rounding, anything more means another scaling (e.g. [0, 1]).
  NASH_CHECK(lo >= -1.001f && hi <= 1.001f, "image set '", path, "': values must lie in [-1, 1], found ", lo, " .. ",
             hi);
  return x;
}

}  // namespace

std::vector<std::string> png_files(const std::string& dir) {
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::string ext = e.path().extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (e.is_regular_file() && ext == ".png") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return std::vector<std::string>(files.begin(), files.end());
}

Tensor load_image_set(const std::string& path, int64_t limit) {
  NASH_CHECK(limit >= 0, "load_image_set: limit must be >= 0, got ", limit);
  std::error_code ec;
  NASH_CHECK(fs::exists(path, ec), "image set '", path, "' does not exist");
  if (fs::is_directory(path, ec)) return load_png_dir(path, limit);
  const std::vector<uint8_t> head = file_head(path, 16);
  const bool gzip = head.size() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
  const bool idx = head.size() >= 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08;
  if (gzip || idx) {
    data::IdxArray a = data::read_idx(path);
    return keep_first(data::idx_to_images(a, path), limit);
  }
  // safetensors: an 8-byte little-endian header length, then the JSON header.
  if (head.size() >= 9 && head[8] == '{') return load_safetensors_images(path, limit);
  detail::fail("image set '", path, "': not an IDX images file (plain or .gz), a safetensors file or a directory of "
               "PNG files");
}

Tensor load_label_set(const std::string& path, int64_t limit) {
  NASH_CHECK(limit >= 0, "load_label_set: limit must be >= 0, got ", limit);
  std::error_code ec;
  NASH_CHECK(fs::is_regular_file(path, ec), "label set '", path, "' does not exist or is not a file");
  const std::vector<uint8_t> head = file_head(path, 16);
  const bool gzip = head.size() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
  const bool idx = head.size() >= 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08;
  if (gzip || idx) return keep_first(data::idx_to_labels(data::read_idx(path), path), limit);
  NASH_CHECK(head.size() >= 9 && head[8] == '{', "label set '", path, "': not an IDX labels file (plain or .gz) or a "
             "safetensors file");
  io::SafetensorsFile f = io::load_safetensors(path);
  const Tensor* t = f.find("labels");
  NASH_CHECK(t, "label set '", path, "': holds no tensor named 'labels'");
  NASH_CHECK(t->dim() == 1, "label set '", path, "': 'labels' must be (N), got ", shape_str(t->shape()));
  return keep_first(t->to(DType::Float32).contiguous(), limit);
}

int run_fid(int argc, const char* const* argv, int first) {
  cli::Parser p("nash fid",
                "Prints the FID between two image sets under the Fashion-MNIST feature network saved by\n"
                "`nash classifier`. Each set is an IDX images file (.gz or plain), a directory of PNG files (name\n"
                "order, converted to grey) or a safetensors file with an (N, 1, H, W) or (N, H, W) float tensor in\n"
                "[-1, 1]. Images are 28x28 or 32x32 (centre-cropped to 28x28).\n"
                "This is FID on Fashion-MNIST classifier features, not Inception features: compare numbers only\n"
                "with runs that used the same classifier file. Also prints the fake set's precision and recall\n"
                "(quality and diversity apart) and density and coverage, from k-nearest-neighbour balls on the same\n"
                "features (compare at equal set sizes and k only), and the kernel distance KID (unbiased: comparable\n"
                "across set sizes; mean and standard deviation over random subsets). With both sets' labels\n"
                "(--real-labels, --fake-labels: IDX labels files, or a `nash sample` tensor file's labels) it also\n"
                "prints the intra-FID of a class-conditional generator: each class's FID, and their mean.\n"
                "Exit codes: 0 ok, 1 a set cannot be read or has too few images, 2 bad flags.");
  p.add_string("real", "", "the first (reference) image set")
      .add_string("fake", "", "the second image set")
      .add_string("real-labels", "", "the real set's labels (IDX labels file or safetensors 'labels'): with "
                  "--fake-labels, print the intra-FID", true)
      .add_string("fake-labels", "", "the fake set's labels (e.g. the --fake file of `nash sample --tensor`)", true)
      .add_string("classifier", "out/fmnist-classifier.safetensors", "the feature network from `nash classifier`")
      .add_int("limit", 0, "use the first N images of each set only (0: all)", 0)
      .add_int("batch", 500, "images per forward pass", 1, 65536)
      .add_int("k", 3, "neighbours of the precision/recall balls (0: skip those scores)", 0, 1000)
      .add_int("kid-subsets", 100, "KID's random subsets (0: skip KID)", 0, 100000)
      .add_int("kid-size", 1000, "rows of each set per KID subset (capped at the smaller set)", 2, 1000000)
      .add_string("device", "auto", "cpu, cuda, cuda:N or auto (cuda when a GPU answers)")
      .add_int("threads", 0, "CPU threads for the kernels and the BLAS (0: leave the process default)", 0, 1024)
      .add_bool("quiet", false, "print the FID value alone");
  const char* name = "nash fid";
  try {
    p.parse(argc, argv, first);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
    if (p.get_string("real").empty() || p.get_string("fake").empty())
      throw cli::UsageError("both --real and --fake are required");
    if (p.get_string("real-labels").empty() != p.get_string("fake-labels").empty())
      throw cli::UsageError("intra-FID needs both --real-labels and --fake-labels");
    if (p.get_string("device") != "auto") Device::parse(p.get_string("device"));
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  try {
    NumThreadsGuard threads(static_cast<int>(p.get_int("threads")));
    const std::string dn = p.get_string("device");
    const Device dev = dn == "auto" ? (cuda::is_available() ? Device::cuda() : Device::cpu()) : Device::parse(dn);
    const auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, std::string> meta;
    auto net = metrics::load_feature_net(p.get_string("classifier"), dev, &meta);
    const int64_t limit = p.get_int("limit"), batch = p.get_int("batch");
    Tensor a = load_image_set(p.get_string("real"), limit);
    Tensor b = load_image_set(p.get_string("fake"), limit);
    const int64_t k = p.get_int("k"), kid_subsets = p.get_int("kid-subsets");
    metrics::FeatureStats sa, sb;
    metrics::ManifoldScores m;
    metrics::KernelDistance kid;
    metrics::IntraFid intra;
    const bool labelled = !p.get_string("real-labels").empty();
    if (k > 0 || kid_subsets > 0 || labelled) {  // one pass of the network per set for all
      const Tensor fa = metrics::image_features(*net, a, batch), fb = metrics::image_features(*net, b, batch);
      sa = metrics::feature_stats(fa);
      sb = metrics::feature_stats(fb);
      if (k > 0) m = metrics::manifold_scores(fa, fb, k);
      if (kid_subsets > 0) kid = metrics::kernel_distance(fa, fb, kid_subsets, p.get_int("kid-size"));
      if (labelled) {
        const Tensor la = load_label_set(p.get_string("real-labels"), limit);
        const Tensor lb = load_label_set(p.get_string("fake-labels"), limit);
        NASH_CHECK(la.size(0) == fa.size(0) && lb.size(0) == fb.size(0), "the label sets hold ", la.size(0), " and ",
                   lb.size(0), " labels for ", fa.size(0), " and ", fb.size(0), " images");
        intra = metrics::intra_fid(metrics::class_feature_stats(fa, la, 10), fb, lb);
      }
    } else {
      sa = metrics::image_feature_stats(*net, a, batch);
      sb = metrics::image_feature_stats(*net, b, batch);
    }
    const double v = metrics::frechet_distance(sa, sb);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (p.get_bool("quiet")) {
      std::printf("%.6f\n", v);
    } else {
      std::printf("FID %.4f  (Fashion-MNIST classifier features, dim %lld; not Inception)\n", v,
                  static_cast<long long>(net->feature_dim()));
      if (k > 0)
        std::printf("precision %.4f  recall %.4f  density %.4f  coverage %.4f  (k = %lld)\n", m.precision, m.recall,
                    m.density, m.coverage, static_cast<long long>(k));
      if (kid_subsets > 0)
        std::printf("KID %.6f +- %.6f  (%lld subsets of %lld)\n", kid.mean, kid.std,
                    static_cast<long long>(kid.subsets), static_cast<long long>(kid.subset_size));
      if (labelled) {
        std::printf("intra-FID %.4f  (per class:", intra.mean);
        for (double v : intra.per_class) std::printf(" %.1f", v);
        std::printf(")\n");
      }
      std::printf("real: %lld images from %s\nfake: %lld images from %s\nclassifier: %s (test accuracy %s)  "
                  "device %s  %.1f s\n",
                  static_cast<long long>(sa.n), p.get_string("real").c_str(), static_cast<long long>(sb.n),
                  p.get_string("fake").c_str(), p.get_string("classifier").c_str(),
                  meta.count("test_accuracy") ? meta["test_accuracy"].c_str() : "?", dev.str().c_str(), secs);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
