// The nash command-line flag parser: strict typed conversions, range checks and generated --help text.
#include "apps/cli.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nash/core/cuda.h"
#include "nash/nn/module.h"

namespace nash {
namespace cli {

namespace {

// Quotes a user-supplied value for a one-line message: control characters escaped, long values cut.
std::string quote(const std::string& v) {
  std::string out = "'";
  std::size_t n = 0;
  for (char c : v) {
    if (++n > 64) {
      out += "...";
      break;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "'";
}

[[noreturn]] void usage(const std::string& flag, const std::string& what) {
  throw UsageError(flag + ": " + what);
}

std::string fmt_double(double v) {
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int64_t parse_int(const std::string& flag, const std::string& value) {
  if (value.empty()) usage(flag, "expected an integer, got an empty value");
  // strtoll skips leading spaces and accepts "+"; a flag value with spaces is almost surely a mistake.
  if (std::isspace(static_cast<unsigned char>(value[0]))) usage(flag, "expected an integer, got " + quote(value));
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (end == value.c_str() || *end != '\0') usage(flag, "expected an integer, got " + quote(value));
  if (errno == ERANGE) usage(flag, "integer " + quote(value) + " is out of the 64-bit range");
  return static_cast<int64_t>(v);
}

double parse_double(const std::string& flag, const std::string& value) {
  if (value.empty()) usage(flag, "expected a number, got an empty value");
  if (std::isspace(static_cast<unsigned char>(value[0]))) usage(flag, "expected a number, got " + quote(value));
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || *end != '\0') usage(flag, "expected a number, got " + quote(value));
  if (std::isnan(v)) usage(flag, "expected a finite number, got " + quote(value));
  if (std::isinf(v) || (errno == ERANGE && std::fabs(v) > 1.0))
    usage(flag, "expected a finite number, got " + quote(value) + " (overflows a double)");
  return v;  // an underflow to (sub)normal is kept; range checks reject it where zero is not allowed
}

bool parse_bool(const std::string& flag, const std::string& value) {
  std::string v = lower(value);
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  usage(flag, "expected true/false (or 1/0, yes/no, on/off), got " + quote(value));
}

Parser::Parser(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {}

Parser::Flag& Parser::add(const std::string& name, Kind kind, const std::string& help) {
  if (name.empty() || name[0] == '-' || name == "help" || find(name))
    throw std::logic_error("cli: bad or duplicate flag name '" + name + "'");
  flags_.push_back(Flag{});
  Flag& f = flags_.back();
  f.name = name;
  f.kind = kind;
  f.help = help;
  return f;
}

Parser& Parser::add_int(const std::string& name, int64_t def, const std::string& help, int64_t min, int64_t max) {
  if (min > max || def < min || def > max) throw std::logic_error("cli: default of --" + name + " out of range");
  Flag& f = add(name, Kind::Int, help);
  f.i = def;
  f.imin = min;
  f.imax = max;
  f.def = default_text(f);
  return *this;
}

Parser& Parser::add_double(const std::string& name, double def, const std::string& help, double min, double max,
                           bool min_exclusive) {
  bool ok = std::isfinite(def) && min <= max && def <= max && (min_exclusive ? def > min : def >= min);
  if (!ok) throw std::logic_error("cli: default of --" + name + " out of range");
  Flag& f = add(name, Kind::Double, help);
  f.d = def;
  f.dmin = min;
  f.dmax = max;
  f.dmin_exclusive = min_exclusive;
  f.def = default_text(f);
  return *this;
}

Parser& Parser::add_string(const std::string& name, const std::string& def, const std::string& help,
                           bool allow_empty) {
  Flag& f = add(name, Kind::String, help);
  f.s = def;
  f.allow_empty = allow_empty;
  f.def = default_text(f);
  return *this;
}

Parser& Parser::add_bool(const std::string& name, bool def, const std::string& help) {
  Flag& f = add(name, Kind::Bool, help);
  f.b = def;
  f.def = default_text(f);
  return *this;
}

Parser::Flag* Parser::find(const std::string& name) {
  for (Flag& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

const Parser::Flag& Parser::get(const std::string& name, Kind kind) const {
  for (const Flag& f : flags_)
    if (f.name == name) {
      if (f.kind != kind) throw std::logic_error("cli: flag --" + name + " read with the wrong type");
      return f;
    }
  throw std::logic_error("cli: flag --" + name + " was never declared");
}

void Parser::assign(Flag& f, const std::string& value) {
  const std::string flag = "--" + f.name;
  switch (f.kind) {
    case Kind::Int: {
      int64_t v = parse_int(flag, value);
      if (v < f.imin || v > f.imax) {
        std::string range = f.imax == std::numeric_limits<int64_t>::max()
                                ? ">= " + std::to_string(f.imin)
                                : "in [" + std::to_string(f.imin) + ", " + std::to_string(f.imax) + "]";
        usage(flag, "must be " + range + ", got " + quote(value));
      }
      f.i = v;
      break;
    }
    case Kind::Double: {
      double v = parse_double(flag, value);
      bool low_ok = f.dmin_exclusive ? v > f.dmin : v >= f.dmin;
      if (!low_ok || v > f.dmax)
        usage(flag, "must be in " + std::string(f.dmin_exclusive ? "(" : "[") + fmt_double(f.dmin) + ", " +
                        fmt_double(f.dmax) + "], got " + quote(value));
      f.d = v;
      break;
    }
    case Kind::String:
      if (value.empty() && !f.allow_empty) usage(flag, "expected a non-empty value");
      f.s = value;
      break;
    case Kind::Bool:
      f.b = parse_bool(flag, value);
      break;
  }
  f.set = true;
}

void Parser::parse(int argc, const char* const* argv, int first) {
  std::vector<std::string> args;
  for (int i = first; i < argc; ++i) args.emplace_back(argv[i] ? argv[i] : "");
  parse(args);
}

void Parser::parse(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      return;
    }
    if (a.size() < 3 || a[0] != '-' || a[1] != '-')
      throw UsageError("unexpected argument " + quote(a) + " (flags look like --name value; see --help)");
    std::size_t eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    Flag* f = find(name);
    if (!f) throw UsageError("unknown flag " + quote("--" + name) + " (see --help)");
    if (f->set) usage("--" + name, "given more than once");
    if (eq != std::string::npos) {
      assign(*f, a.substr(eq + 1));
    } else if (f->kind == Kind::Bool) {
      f->b = true;
      f->set = true;
    } else {
      // A following "--flag" is never taken as a value, so `--out --steps 5` reports the missing value.
      if (i + 1 >= args.size() || (args[i + 1].size() > 2 && args[i + 1].compare(0, 2, "--") == 0))
        usage("--" + name, "missing value");
      assign(*f, args[++i]);
    }
  }
}

std::string Parser::default_text(const Flag& f) const {
  switch (f.kind) {
    case Kind::Int: return std::to_string(f.i);
    case Kind::Double: return fmt_double(f.d);
    case Kind::String: return f.s.empty() ? "\"\"" : f.s;
    case Kind::Bool: return f.b ? "true" : "false";
  }
  return "";
}

std::string Parser::help() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [flags]\n";
  if (!description_.empty()) os << "\n" << description_ << "\n";
  os << "\nflags:\n";
  std::size_t width = 6;  // "--help"
  auto lhs = [](const Flag& f) {
    const char* meta = f.kind == Kind::Int      ? " INT"
                       : f.kind == Kind::Double ? " X"
                       : f.kind == Kind::String ? " S"
                                                : "";
    return "--" + f.name + meta;
  };
  for (const Flag& f : flags_) width = std::max(width, lhs(f).size());
  for (const Flag& f : flags_)
    os << "  " << std::left << std::setw(static_cast<int>(width)) << lhs(f) << "  " << f.help
       << " (default: " << f.def << ")\n";
  os << "  " << std::left << std::setw(static_cast<int>(width)) << "--help" << "  show this help and exit\n";
  return os.str();
}

int64_t Parser::get_int(const std::string& name) const { return get(name, Kind::Int).i; }
double Parser::get_double(const std::string& name) const { return get(name, Kind::Double).d; }
const std::string& Parser::get_string(const std::string& name) const { return get(name, Kind::String).s; }
bool Parser::get_bool(const std::string& name) const { return get(name, Kind::Bool).b; }
bool Parser::is_set(const std::string& name) const {
  for (const Flag& f : flags_)
    if (f.name == name) return f.set;
  throw std::logic_error("cli: flag --" + name + " was never declared");
}

namespace fs = std::filesystem;

// Creates dir and proves it writable, so no training time is spent on a run whose results could not be saved.
void prepare_output_dir(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw OutputError("cannot create output directory '" + dir.string() + "': " + ec.message());
  if (!fs::is_directory(dir, ec))
    throw OutputError("output path '" + dir.string() + "' exists and is not a directory");
  fs::path probe = dir / (".nash-write-test." + std::to_string(::getpid()));
  {
    std::ofstream f(probe);
    if (!f) throw OutputError("output directory '" + dir.string() + "' is not writable");
  }
  fs::remove(probe, ec);
}

// Writes to a temporary file beside `path` and renames it over `path`, so readers never see half a file.
void write_atomic(const std::string& path_name, const std::string& text) {
  const fs::path path(path_name);
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw OutputError("cannot write '" + tmp.string() + "'");
    f << text;
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw OutputError("failed writing '" + tmp.string() + "' (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ec2;
    fs::remove(tmp, ec2);
    throw OutputError("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
  }
}

std::vector<float> flat_parameters(const nn::Module& m) {
  std::vector<float> out;
  for (const Tensor& p : m.parameters()) {
    const std::vector<float> v = p.detach().to(Device::cpu()).contiguous().to(DType::Float32).to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

Device pick_device(const std::string& name, const char* app) {
  if (name == "auto") return cuda::is_available() ? Device::cuda() : Device::cpu();
  Device d = Device::parse(name);
  NASH_CHECK(!d.is_cuda() || cuda::is_available(), app, ": --device ", name, " asked for, but CUDA is not available (",
             cuda::unavailable_reason(), ")");
  return d;
}

}  // namespace cli
}  // namespace nash
