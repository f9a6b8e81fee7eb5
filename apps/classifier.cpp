// `nash classifier`: Adam with a cosine decay on the Fashion-MNIST training set, test accuracy per epoch, and the
// trained FID feature network saved as a safetensors checkpoint.
#include "apps/classifier.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "apps/cli.h"
#include "apps/progress.h"
#include "nash/core/cuda.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/threads.h"
#include "nash/data/idx.h"
#include "nash/data/loader.h"
#include "nash/metrics/fid.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A path that cannot be written: exit code 2, found before any training time is spent.
using OutputPathError = cli::OutputError;

void prepare_output_file(const std::string& out) {
  fs::path p(out);
  std::error_code ec;
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
    if (ec) throw OutputPathError("cannot create directory '" + p.parent_path().string() + "': " + ec.message());
  }
  if (fs::is_directory(p, ec)) throw OutputPathError("--out '" + out + "' is a directory; give a file name");
  fs::path probe = p;
  probe += ".write-test." + std::to_string(::getpid());
  {
    std::ofstream f(probe);
    if (!f) throw OutputPathError("cannot write next to '" + out + "'");
  }
  fs::remove(probe, ec);
}

void check_config(const ClassifierConfig& c) {
  NASH_CHECK(c.epochs >= 1, "classifier: epochs must be >= 1, got ", c.epochs);
  NASH_CHECK(c.batch >= 2, "classifier: batch must be >= 2 (batch norm needs 2 samples), got ", c.batch);
  NASH_CHECK(std::isfinite(c.lr) && c.lr > 0, "classifier: lr must be finite and > 0, got ", c.lr);
  NASH_CHECK(c.feature_dim >= 1, "classifier: feature_dim must be >= 1, got ", c.feature_dim);
  NASH_CHECK(c.limit >= 0 && c.test_limit >= 0 && c.max_steps >= 0, "classifier: limits must be >= 0");
}

}  // namespace

ClassifierResult train_classifier(const ClassifierConfig& cfg) {
  check_config(cfg);
  const Clock::time_point t0 = Clock::now();
  if (!cfg.out.empty()) prepare_output_file(cfg.out);
  NumThreadsGuard threads(cfg.threads);
  const Device dev = cli::pick_device(cfg.device, "classifier");

  data::FashionMnistOptions fo;
  fo.dir = cfg.data_dir;
  fo.limit = cfg.limit;
  data::ImageDataset train = data::load_fashion_mnist(data::Split::Train, fo);
  fo.limit = cfg.test_limit;
  data::ImageDataset test = data::load_fashion_mnist(data::Split::Test, fo);
  if (!dev.is_cpu()) {
    test.images = test.images.to(dev);
    test.labels = test.labels.to(dev);
  }

  manual_seed(cfg.seed);
  metrics::FeatureNet net(cfg.feature_dim);
  net.to(dev);
  optim::AdamOptions ao;
  ao.lr = cfg.lr;
  optim::Adam opt(net.parameters(), ao);

  data::LoaderOptions lo;
  lo.batch_size = std::min<int64_t>(cfg.batch, train.images.size(0));
  lo.drop_last = true;  // a last batch of 1 would break batch norm, and a tiny one adds only noise
  lo.seed = cfg.seed;
  lo.device = dev;
  data::BatchLoader loader(train.images, train.labels, lo);

  int64_t total = cfg.epochs * loader.batches_per_epoch();
  if (cfg.max_steps > 0) total = std::min(total, cfg.max_steps);
  ClassifierResult r;
  r.device = dev.str();
  r.parameters = net.num_parameters();
  cli::ProgressBar bar(total, std::cout, !cfg.quiet && cli::ProgressBar::stdout_is_tty());
  const double pi = std::acos(-1.0);
  int64_t step = 0;
  for (int64_t e = 0; e < cfg.epochs && step < total; ++e) {
    const Clock::time_point te = Clock::now();
    loader.start_epoch(e);
    net.train();
    double loss_sum = 0;
    int64_t nb = 0;
    data::Batch b;
    while (step < total && loader.next(&b)) {
      opt.set_lr(cfg.lr * 0.5 * (1.0 + std::cos(pi * static_cast<double>(step) / static_cast<double>(total))));
      Tensor loss = cross_entropy(net.forward(b.images), b.labels);
      opt.zero_grad();
      loss.backward();
      opt.step();
      const double l = loss.item();
      NASH_CHECK(std::isfinite(l), "classifier: loss became non-finite at step ", step + 1, "; try a smaller --lr");
      loss_sum += l;
      ++nb;
      ++step;
      if (!cfg.quiet) bar.update(step, {{"loss", l}});
    }
    ClassifierEpoch ep;
    ep.epoch = e + 1;
    ep.seconds = seconds_since(te);
    ep.train_loss = nb ? loss_sum / static_cast<double>(nb) : 0.0;
    r.train_seconds += ep.seconds;
    ep.test_accuracy = metrics::classifier_accuracy(net, test.images, test.labels);
    r.epochs.push_back(ep);
    if (!cfg.quiet) {
      bar.finish();
      std::printf("epoch %lld: train loss %.4f  test accuracy %.2f%%  (%.1f s)\n", static_cast<long long>(ep.epoch),
                  ep.train_loss, 100.0 * ep.test_accuracy, ep.seconds);
      std::fflush(stdout);
    }
  }
  r.steps = step;
  r.test_accuracy = r.epochs.empty() ? 0.0 : r.epochs.back().test_accuracy;
  if (!cfg.out.empty()) {
    char acc[32];
    std::snprintf(acc, sizeof acc, "%.4f", r.test_accuracy);
    metrics::save_feature_net(cfg.out, net,
                              {{"test_accuracy", acc},
                               {"test_images", std::to_string(test.images.size(0))},
                               {"train_images", std::to_string(train.images.size(0))},
                               {"epochs", std::to_string(cfg.epochs)},
                               {"steps", std::to_string(step)},
                               {"seed", std::to_string(cfg.seed)}});
  }
  r.wall_seconds = seconds_since(t0);
  return r;
}

int run_classifier(int argc, const char* const* argv, int first) {
  const ClassifierConfig def;
  cli::Parser p("nash classifier",
                "Trains the FID feature network (a small CNN: 3 x conv-BN-ReLU-maxpool, then a penultimate layer of\n"
                "--features units whose activations are the FID features) on the Fashion-MNIST training set with\n"
                "Adam and a cosine learning-rate decay, reports test accuracy, and saves it for `nash fid`.\n"
                "Data: the IDX files of Debian's dataset-fashion-mnist, or --data DIR holding the same four files.\n"
                "Exit codes: 0 ok, 1 training failed, 2 bad flags or an output path that cannot be written.");
  p.add_string("data", def.data_dir, "folder with the Fashion-MNIST IDX files (default: /usr/share/datasets/"
               "fashion-mnist)", true)
      .add_int("epochs", def.epochs, "passes over the training set", 1, 1000)
      .add_int("batch", def.batch, "batch size", 2, 65536)
      .add_double("lr", def.lr, "Adam's peak learning rate (cosine decay to 0)", 0.0, 1.0, true)
      .add_int("seed", static_cast<int64_t>(def.seed), "random seed (initialisation, shuffling)", 0)
      .add_int("features", def.feature_dim, "width of the penultimate layer (the FID feature dimension)", 128, 512)
      .add_string("out", def.out, "where to save the network (safetensors); empty: do not save", true)
      .add_int("limit", def.limit, "train on the first N training images only (0: all)", 0)
      .add_int("test-limit", def.test_limit, "evaluate on the first N test images only (0: all)", 0)
      .add_int("max-steps", def.max_steps, "stop after N steps (0: run every epoch)", 0)
      .add_string("device", def.device, "cpu, cuda, cuda:N or auto (cuda when a GPU answers)")
      .add_int("threads", def.threads, "CPU threads for the kernels and the BLAS (0: leave the process default)", 0,
               1024)
      .add_bool("quiet", def.quiet, "no progress and no summary on stdout");
  const char* name = "nash classifier";
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
  ClassifierConfig cfg;
  cfg.data_dir = p.get_string("data");
  cfg.epochs = p.get_int("epochs");
  cfg.batch = p.get_int("batch");
  cfg.lr = p.get_double("lr");
  cfg.seed = static_cast<uint64_t>(p.get_int("seed"));
  cfg.feature_dim = p.get_int("features");
  cfg.out = p.get_string("out");
  cfg.limit = p.get_int("limit");
  cfg.test_limit = p.get_int("test-limit");
  cfg.max_steps = p.get_int("max-steps");
  cfg.device = p.get_string("device");
  cfg.threads = static_cast<int>(p.get_int("threads"));
  cfg.quiet = p.get_bool("quiet");
  if (cfg.device != "auto") {
    try {
      Device::parse(cfg.device);
    } catch (const std::exception& e) {
      std::cerr << name << ": --device: " << e.what() << '\n';
      return cli::kUsageExit;
    }
  }
  try {
    ClassifierResult r = train_classifier(cfg);
    if (!cfg.quiet) {
      std::printf("test accuracy: %.2f%%  (%lld parameters, %lld steps on %s, train %.1f s, wall %.1f s)\n",
                  100.0 * r.test_accuracy, static_cast<long long>(r.parameters), static_cast<long long>(r.steps),
                  r.device.c_str(), r.train_seconds, r.wall_seconds);
      if (!cfg.out.empty()) std::printf("saved %s\n", cfg.out.c_str());
    }
    return 0;
  } catch (const OutputPathError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
