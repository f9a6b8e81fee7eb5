// A small command-line flag parser for the nash subcommands: typed flags with defaults, ranges and --help text.
#pragma once
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "nash/core/device.h"
#include "nash/core/error.h"

namespace nash {
namespace nn {
class Module;
}
}  // namespace nash

namespace nash {
namespace cli {

// A bad command line (unknown flag, missing or malformed value, value out of range). Programs report
// what() on one line and exit with kUsageExit.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

constexpr int kUsageExit = 2;    // bad flags, or an output path that cannot be created/written
constexpr int kRuntimeExit = 1;  // a failure while running (e.g. training diverged)

// Flags are written `--name value` or `--name=value`. Boolean flags take no separate value: `--quiet`
// sets true, `--quiet=false` (or 0/no/off) sets false. Each flag may be given once.
class Parser {
 public:
  Parser(std::string program, std::string description);

  // Integer flag accepting [min, max]; the default must lie in that range.
  Parser& add_int(const std::string& name, int64_t def, const std::string& help, int64_t min = 0,
                  int64_t max = std::numeric_limits<int64_t>::max());
  // Finite real flag accepting [min, max], or (min, max] when min_exclusive (e.g. a learning rate > 0).
  Parser& add_double(const std::string& name, double def, const std::string& help, double min, double max,
                     bool min_exclusive = false);
  Parser& add_string(const std::string& name, const std::string& def, const std::string& help,
                     bool allow_empty = false);
  Parser& add_bool(const std::string& name, bool def, const std::string& help);

  // Parses argv[first..argc); throws UsageError. `--help`/`-h` stops parsing and sets help_requested().
  void parse(int argc, const char* const* argv, int first = 1);
  void parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_; }
  std::string help() const;

  // Getters for declared flags (logic_error for an undeclared name or the wrong type).
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  bool is_set(const std::string& name) const;  // given on the command line

 private:
  enum class Kind { Int, Double, String, Bool };
  struct Flag {
    std::string name, help;
    Kind kind;
    int64_t i = 0, imin = 0, imax = 0;
    double d = 0, dmin = 0, dmax = 0;
    bool dmin_exclusive = false;
    std::string s;
    bool allow_empty = false;
    bool b = false;
    bool set = false;
    std::string def;  // the declared default, as --help shows it
  };
  Flag& add(const std::string& name, Kind kind, const std::string& help);
  Flag* find(const std::string& name);
  const Flag& get(const std::string& name, Kind kind) const;
  void assign(Flag& f, const std::string& value);
  std::string default_text(const Flag& f) const;

  std::string program_, description_;
  std::vector<Flag> flags_;
  bool help_ = false;
};

// Strict conversions used by the parser (exposed for tests): whole string, no trailing junk, finite.
// `flag` only names the flag in the error message.
int64_t parse_int(const std::string& flag, const std::string& value);
double parse_double(const std::string& flag, const std::string& value);
bool parse_bool(const std::string& flag, const std::string& value);

// An output path that cannot be created or written; programs report it with kUsageExit.
class OutputError : public std::runtime_error {
 public:
  explicit OutputError(const std::string& what) : std::runtime_error(what) {}
};

// Creates dir (and its parents) and checks that a file can be written in it; throws OutputError naming the path.
void prepare_output_dir(const std::string& dir);
// Writes text to a temporary file beside path and renames it over path, so readers (or an interrupted run) never
// see half a file; throws OutputError naming the file.
void write_atomic(const std::string& path, const std::string& text);

// A subcommand's table of choices: each enum value with its command-line name.
template <class E>
struct Named {
  E value;
  const char* name;
};
template <class E, std::size_t N>
const char* name_of(const Named<E> (&table)[N], E v) {
  for (const auto& t : table)
    if (t.value == v) return t.name;
  return "?";
}
// The value named s; nash::Error "<app>: unknown <what> '<s>' (expected one of: a, b, ...)" otherwise.
template <class E, std::size_t N>
E parse_named(const Named<E> (&table)[N], const std::string& s, const char* app, const char* what) {
  std::string choices;
  for (const auto& t : table) {
    if (s == t.name) return t.value;
    choices += choices.empty() ? t.name : std::string(", ") + t.name;
  }
  detail::fail(app, ": unknown ", what, " '", s, "' (expected one of: ", choices, ")");
}

// --device: "auto" (CUDA when a device answers, else the CPU), or a device name; asking for CUDA where none is
// available is a nash::Error naming `app` and the reason.
Device pick_device(const std::string& name, const char* app);

// A model's parameters as float32 host values, concatenated in registration order (results the apps report, such as
// the final weights the data-parallel tests compare).
std::vector<float> flat_parameters(const nn::Module& m);

}  // namespace cli
}  // namespace nash
