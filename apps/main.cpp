// The `nash` program: dispatches `nash <subcommand> [flags]` to the subcommand's run function.
#include <cstring>
#include <iostream>

#include "apps/cli.h"
#include "apps/mixture.h"

#ifndef NASH_VERSION_STRING
#define NASH_VERSION_STRING "0.1.0"  // keep in step with project(nash VERSION ...) in CMakeLists.txt
#endif

namespace {

const char* kUsage =
    "usage: nash <subcommand> [flags]\n"
    "\n"
    "subcommands:\n"
    "  mixture   train a small MLP GAN on 8 Gaussians on a ring and report mode coverage\n"
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
  std::cerr << "nash: unknown subcommand '" << sub << "' (see nash --help)\n";
  return nash::cli::kUsageExit;
}
