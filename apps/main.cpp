// The `nash` program: dispatches `nash <subcommand> [flags]` to the subcommand's run function.
#include <cstring>
#include <iostream>

#include "apps/cli.h"
#include "apps/bimodal.h"
#include "apps/classifier.h"
#include "apps/fid.h"
#include "apps/fmnist.h"
#include "apps/mixture.h"
#include "apps/plotcmd.h"
#include "apps/sample.h"
#include "apps/spectrum.h"
#include "apps/sweep.h"

#ifndef NASH_VERSION_STRING
#define NASH_VERSION_STRING "0.1.0"  // keep in step with project(nash VERSION ...) in CMakeLists.txt
#endif

namespace {

const char* kUsage =
    "usage: nash <subcommand> [flags]\n"
    "\n"
    "subcommands:\n"
    "  mixture     train a small MLP GAN on a 2-D Gaussian mixture (ring of 8, grid of 25); report mode coverage\n"
    "  sweep       the mixture benchmark: optimizers x SN x TTUR ratios x seeds, a table in docs/RESULTS.md\n"
    "  bimodal     the two-mode GAN of the nSGDA paper (Section 3): which modes SGDA / nSGDA learn\n"
    "  classifier  train the Fashion-MNIST CNN whose features FID uses; report its test accuracy\n"
    "  fmnist      train an image GAN on Fashion-MNIST (dcgan, sngan, wgan-gp, progan); grids, checkpoints, FID\n"
    "  sample      images of a trained fmnist generator (grid, PNGs, safetensors): seeds, truncation, interpolation\n"
    "  plot        draw columns of a CSV file (metrics.csv, fid.csv, ...) into a PNG\n"
    "  fid         FID between two image sets (IDX, PNG folder, samples file) on classifier features\n"
    "  spectrum    squared singular values of a checkpoint's D weights (CSV, a plot per layer, effective rank)\n"
    "\n"
    "  nash --help         show this help\n"
    "  nash --version      show the version\n"
    "  nash <sub> --help   show a subcommand's flags\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return nash::cli::kUsageExit;
  }
  const char* sub = argv[1];
  if (!std::strcmp(sub, "--help") || !std::strcmp(sub, "-h") || !std::strcmp(sub, "help")) {
    std::cout << kUsage;
    return 0;
  }
  if (!std::strcmp(sub, "--version") || !std::strcmp(sub, "-V")) {
    std::cout << "nash " << NASH_VERSION_STRING << '\n';
    return 0;
  }
  if (!std::strcmp(sub, "mixture")) return nash::apps::run_mixture(argc, argv, 2);
  if (!std::strcmp(sub, "sweep")) return nash::apps::run_sweep_cli(argc, argv, 2);
  if (!std::strcmp(sub, "bimodal")) return nash::apps::run_bimodal(argc, argv, 2);
  if (!std::strcmp(sub, "classifier")) return nash::apps::run_classifier(argc, argv, 2);
  if (!std::strcmp(sub, "fmnist")) return nash::apps::run_fmnist(argc, argv, 2);
  if (!std::strcmp(sub, "sample")) return nash::apps::run_sample(argc, argv, 2);
  if (!std::strcmp(sub, "plot")) return nash::apps::run_plot(argc, argv, 2);
  if (!std::strcmp(sub, "fid")) return nash::apps::run_fid(argc, argv, 2);
  if (!std::strcmp(sub, "spectrum")) return nash::apps::run_spectrum(argc, argv, 2);
  std::cerr << "nash: unknown subcommand '" << sub << "' (see nash --help)\n";
  return nash::cli::kUsageExit;
}
