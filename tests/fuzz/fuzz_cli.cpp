// libFuzzer target: the subcommands' flag parser. The input is split at newlines into arguments and parsed against
// a flag set of every kind; every input must either parse or throw cli::UsageError.
#include <cstdint>
#include <string>
#include <vector>

#include "apps/cli.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::vector<std::string> args(1);
  for (std::size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == '\n')
      args.emplace_back();
    else
      args.back().push_back(static_cast<char>(data[i]));
  }
  nash::cli::Parser p("fuzz", "flag parser fuzz target");
  p.add_int("steps", 100, "steps", 1, 1000000)
      .add_int("seed", 0, "seed")
      .add_double("lr-d", 1e-3, "learning rate", 0.0, 10.0, true)
      .add_double("gamma", 0.5, "a fraction", 0.0, 1.0)
      .add_string("out", "out", "a directory")
      .add_string("loss", "ns", "a loss", true)
      .add_bool("sn", false, "spectral norm")
      .add_bool("quiet", false, "quiet");
  try {
    p.parse(args);
    if (!p.help_requested()) {
      (void)p.get_int("steps");
      (void)p.get_double("lr-d");
      (void)p.get_string("out");
      (void)p.get_bool("sn");
    } else {
      (void)p.help();
    }
  } catch (const nash::cli::UsageError&) {
  }
  return 0;
}
