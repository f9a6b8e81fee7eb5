// A one-line training progress report: a '\r'-redrawn bar on a terminal, a plain line every ~10% otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace nash {
namespace cli {

// A caller-supplied value shown after the rate and ETA ("D 1.2345").
struct ProgressField {
  std::string name;
  double value;
};

class ProgressBar {
 public:
  // tty: redraw one line in place (at most ~10 times a second); otherwise write a line at each 10% of total.
  ProgressBar(int64_t total, std::ostream& os, bool tty);
  // A bar on std::cout that picks its mode from whether stdout is a terminal.
  static ProgressBar for_stdout(int64_t total);
  static bool stdout_is_tty();

  // step: steps completed so far, 1..total.
  void update(int64_t step, const std::vector<ProgressField>& fields = {});
  // Ends the bar's line on a terminal (a no-op otherwise).
  void finish();

  // The text of one report (exposed for tests): "step 30/100 (30%)  12.5 it/s  ETA 5.6s  D 1.2000".
  static std::string format(int64_t step, int64_t total, double elapsed_s, const std::vector<ProgressField>& fields,
                            bool bar);
  // "4.2s", "3m05s", "2h01m"; "?" for a negative or non-finite value.
  static std::string format_duration(double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  int64_t total_;
  std::ostream& os_;
  bool tty_;
  Clock::time_point start_, last_draw_;
  int64_t last_decile_ = 0;
  std::size_t last_len_ = 0;
  bool drawn_ = false;
};

}  // namespace cli
}  // namespace nash
