// Calibration files: a checked text format written atomically (temporary file, then rename over the target).
#include "nash/optim/calibration.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "nash/core/error.h"

namespace nash {
namespace optim {

namespace {
constexpr const char* kMagic = "nash-calibration 1";

void check_entries(const char* op, const std::string& path, const Calibration& c) {
  NASH_CHECK(c.names.size() == c.values.size(), op, ": '", path, "': ", c.names.size(), " names but ", c.values.size(),
             " values");
  for (std::size_t i = 0; i < c.names.size(); ++i) {
    const std::string& n = c.names[i];
    NASH_CHECK(!n.empty() && n.find_first_of("\r\n") == std::string::npos && n.front() != ' ', op, ": '", path,
               "': group ", i, " name '", n, "' must be non-empty, single-line and not start with a space");
    NASH_CHECK(std::isfinite(c.values[i]) && c.values[i] >= 0, op, ": '", path, "': group ", i, " ('", n,
               "') has value ", c.values[i], "; expected a finite value >= 0");
  }
}
}  // namespace

void save_calibration(const std::string& path, const Calibration& c) {
  check_entries("save_calibration", path, c);
  std::ostringstream text;
  text.precision(17);
  text << kMagic << "\nsteps " << c.steps << "\ngroups " << c.names.size() << "\n";
  for (std::size_t i = 0; i < c.names.size(); ++i) text << c.values[i] << " " << c.names[i] << "\n";
  const std::string body = text.str();
  static std::atomic<unsigned> counter{0};  // distinct temporary names for concurrent writers in one process
  const std::string tmp =
      path + ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." + std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    NASH_CHECK(out.good(), "save_calibration: cannot write '", tmp, "': ", std::strerror(errno));
    out << body;
    out.flush();
    if (!out.good()) {
      std::remove(tmp.c_str());
      detail::fail("save_calibration: writing '", tmp, "' failed: ", std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    detail::fail("save_calibration: cannot rename '", tmp, "' to '", path, "': ", std::strerror(err));
  }
}

Calibration load_calibration(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NASH_CHECK(in.good(), "load_calibration: cannot open '", path, "': ", std::strerror(errno));
  std::string line;
  int lineno = 0;
  auto next = [&](const char* what) {
    NASH_CHECK(static_cast<bool>(std::getline(in, line)), "load_calibration: '", path, "' ends before ", what,
               " (line ", lineno + 1, ")");
    ++lineno;
  };
  auto count_after = [&](const char* key) -> int64_t {
    next(key);
    const std::size_t len = std::strlen(key);
    char* end = nullptr;
    long long v = line.compare(0, len, key) == 0 && line.size() > len && line[len] == ' '
                      ? std::strtoll(line.c_str() + len + 1, &end, 10)
                      : -1;
    NASH_CHECK(end && *end == '\0' && v >= 0, "load_calibration: '", path, "' line ", lineno, ": expected '", key,
               " <count>', got '", line, "'");
    return v;
  };
  next("the header");
  NASH_CHECK(line == kMagic, "load_calibration: '", path, "' is not a calibration file (line 1 is '", line,
             "', expected '", kMagic, "')");
  Calibration c;
  c.steps = count_after("steps");
  const int64_t groups = count_after("groups");
  for (int64_t i = 0; i < groups; ++i) {
    next("all groups are listed");
    char* end = nullptr;
    double v = std::strtod(line.c_str(), &end);
    NASH_CHECK(end != line.c_str() && *end == ' ' && end[1] != '\0', "load_calibration: '", path, "' line ", lineno,
               ": expected '<value> <name>', got '", line, "'");
    c.values.push_back(v);
    c.names.emplace_back(end + 1);
  }
  while (std::getline(in, line)) {
    ++lineno;
    NASH_CHECK(line.empty(), "load_calibration: '", path, "' line ", lineno, ": unexpected content after ", groups,
               " groups: '", line, "'");
  }
  check_entries("load_calibration", path, c);
  return c;
}

}  // namespace optim
}  // namespace nash
