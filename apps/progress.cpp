// ProgressBar: rate and ETA from a steady clock; in-place redraws on a terminal, decile lines in logs.
#include "apps/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace nash {
namespace cli {

ProgressBar::ProgressBar(int64_t total, std::ostream& os, bool tty)
    : total_(total < 1 ? 1 : total), os_(os), tty_(tty), start_(Clock::now()), last_draw_(start_) {}

ProgressBar ProgressBar::for_stdout(int64_t total) { return ProgressBar(total, std::cout, stdout_is_tty()); }

bool ProgressBar::stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

std::string ProgressBar::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    long t = std::lround(s);
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  } else {
    long t = std::lround(s / 60);
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 60, t % 60);
  }
  return buf;
}

std::string ProgressBar::format(int64_t step, int64_t total, double elapsed_s,
                                const std::vector<ProgressField>& fields, bool bar) {
  std::ostringstream os;
  double frac = total > 0 ? static_cast<double>(step) / static_cast<double>(total) : 1.0;
  frac = std::min(1.0, std::max(0.0, frac));
  if (bar) {
    const int width = 24;
    int filled = static_cast<int>(frac * width);
    os << '[' << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
  }
  os << "step " << step << '/' << total << " (" << static_cast<int>(frac * 100) << "%)";
  double rate = elapsed_s > 0 ? static_cast<double>(step) / elapsed_s : 0.0;
  os << std::fixed << std::setprecision(1) << "  " << rate << " it/s";
  double eta = rate > 0 ? static_cast<double>(total - step) / rate : -1.0;
  os << "  ETA " << format_duration(eta);
  os << std::setprecision(4);
  for (const ProgressField& f : fields) os << "  " << f.name << ' ' << f.value;
  return os.str();
}

void ProgressBar::update(int64_t step, const std::vector<ProgressField>& fields) {
  Clock::time_point now = Clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  bool last = step >= total_;
  if (tty_) {
    // Redrawing every step would cost more than a small model's step; ~10 Hz reads as live.
    if (!last && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    std::string line = format(step, total_, elapsed, fields, true);
    std::size_t len = line.size();
    if (len < last_len_) line += std::string(last_len_ - len, ' ');  // erase the tail of a longer previous line
    os_ << '\r' << line << std::flush;
    last_len_ = len;
    last_draw_ = now;
    drawn_ = true;
  } else {
    int64_t decile = step * 10 / total_;
    if (decile <= last_decile_) return;
    last_decile_ = decile;
    os_ << format(step, total_, elapsed, fields, false) << '\n' << std::flush;
    drawn_ = true;
  }
}

void ProgressBar::finish() {
  if (tty_ && drawn_) os_ << '\n' << std::flush;
  drawn_ = false;
  last_len_ = 0;
}

}  // namespace cli
}  // namespace nash
