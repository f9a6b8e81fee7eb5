// Per-group step-size calibration: an Ada-nSGDA run's mean Adam-oracle norm per parameter group, saved to a small
// text file and loaded as the constant per-layer step sizes of an nSGDA run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nash {
namespace optim {

struct Calibration {
  std::vector<std::string> names;  // one per parameter group, in the optimizer's order
  std::vector<double> values;      // mean ||A||2 per group
  int64_t steps = 0;               // optimizer steps the means were taken over
};

// Writes c to path atomically (a temporary file beside it, then rename). Format, one record per line:
//   nash-calibration 1 / steps <n> / groups <k> / then k lines "<value> <name>" (the name is the rest of the line).
// Names must be non-empty and single-line; values finite and >= 0.
void save_calibration(const std::string& path, const Calibration& c);
// Reads a file written by save_calibration; errors name the file and the offending line.
Calibration load_calibration(const std::string& path);

}  // namespace optim
}  // namespace nash
