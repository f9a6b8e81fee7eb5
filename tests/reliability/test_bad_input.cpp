// The bad-input matrix: corrupt IDX and safetensors files, checkpoints of another architecture, every numeric flag
// of every subcommand with a missing or out-of-range value, unwritable outputs and writes that fail part-way (a full
// disk). Each case asserts the error's class, that its message names the problem, and that nothing was changed.
// Cases already covered next to their code (tests/data/test_idx.cpp, tests/io/test_safetensors.cpp,
// tests/nn/test_checkpoint.cpp, tests/apps/test_*.cpp) are not repeated here.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bimodal.h"
#include "apps/classifier.h"
#include "apps/cli.h"
#include "apps/fid.h"
#include "apps/sample.h"
#include "apps/mixture.h"
#include "apps/sweep.h"
#include "apps/fmnist.h"
#include "nash/data/idx.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/nn/checkpoint.h"
#include "support.h"

#ifdef NASH_HAVE_ZLIB
#include <zlib.h>
#endif

using namespace nash;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("bad_input", name); }

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Every entry under root (relative path -> contents; "<dir>" for a directory), to show that nothing changed.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(root))
    m[fs::relative(e.path(), root).string()] = e.is_directory() ? "<dir>" : read_file(e.path());
  return m;
}

// Lowers the process's file-size limit, so a write past `bytes` fails part-way with EFBIG as it would on a disk that
// fills up; SIGXFSZ (which would kill the process) is ignored meanwhile. Restores both on destruction.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    ok_ = ::getrlimit(RLIMIT_FSIZE, &old_) == 0;
    rlimit r = old_;
    r.rlim_cur = bytes;
    ok_ = ok_ && (r.rlim_max == RLIM_INFINITY || r.rlim_max >= bytes) && ::setrlimit(RLIMIT_FSIZE, &r) == 0;
  }
  ~FileSizeLimit() {
    if (ok_) ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
  bool ok_ = false;
};

// Runs a subcommand's run function on args (after "nash <sub>"); returns its exit code, with stdout/stderr captured.
using RunFn = int (*)(int, const char* const*, int);
int run_sub(RunFn fn, const std::string& sub, std::vector<std::string> args, std::string* err,
            std::string* out = nullptr) {
  args.insert(args.begin(), {"nash", sub});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  const int rc = fn(static_cast<int>(argv.size()), argv.data(), 2);
  const std::string o = testing::internal::GetCapturedStdout();
  if (out) *out = o;
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

// A small MLP like the mixture app's players (with batch norm, so the checkpoint holds buffers too).
std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out) {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(in, hidden), std::make_shared<nn::BatchNorm1d>(hidden),
      std::make_shared<nn::LeakyReLU>(0.2), std::make_shared<nn::Linear>(hidden, out)});
}

// Every parameter and buffer of m, in order.
std::vector<std::vector<float>> values(const nn::Module& m) {
  std::vector<std::vector<float>> v;
  for (auto& p : m.named_parameters()) v.push_back(p.second.to_vector());
  for (auto& b : m.named_buffers()) v.push_back(b.second.to_vector());
  return v;
}

// A model with an Adam state (one step taken), ready to checkpoint.
struct Player {
  std::shared_ptr<nn::Sequential> net;
  optim::Adam opt;
  Player(int64_t in, int64_t hidden, int64_t out) : net(mlp(in, hidden, out)), opt(net->parameters(), {}) {
    Tensor y = net->forward(randn({8, in}));
    Tensor loss = (y * y).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  nn::Checkpoint parts(int64_t step = 0) { return {{{"G", net.get()}}, {{"G", &opt}}, step, {}}; }
};

void put32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, std::size_t data_bytes) {
  Bytes b{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) put32(b, d);
  for (std::size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i * 37 + 11));
  return b;
}

void write_bytes(const fs::path& p, const Bytes& b) {
  write_file(p, std::string(b.begin(), b.end()));
}

std::string with_header(const std::string& json, const std::string& data) {
  std::string s(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s + json + data;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// IDX: what test_idx.cpp leaves out - a header whose dimensions wrap 64 bits, 255 dimensions, and errors from a file
// on disk (plain and gzip) naming that file.

TEST(BadInput, IdxDimensionsThatWrapOrOverrunNameTheFile) {
  // 65536^4 = 2^64 wraps to 0 in a 64-bit product: the bound must catch it before the multiplication.
  nash_test::expect_error(
      [] { data::parse_idx(idx_bytes(0x08, {65536, 65536, 65536, 65536}, 16), "wrap-idx"); },
      {"wrap-idx", "implausibly large"});
  Bytes many{0, 0, 0x08, 255};
  for (int i = 0; i < 10; ++i) many.push_back(1);
  nash_test::expect_error([&] { data::parse_idx(many, "many-dims"); },
                          {"many-dims", "truncated header", "255 dimensions need 1024 bytes", "has 14"});
  // float64 elements are counted in 8-byte units: 7 bytes short of one element.
  nash_test::expect_error([] { data::parse_idx(idx_bytes(0x0E, {2}, 9), "f64"); },
                          {"f64", "float64", "need 16 bytes", "has 9"});
}

TEST(BadInput, IdxFileErrorsNameThePath) {
  fs::path d = temp_dir("idx");
  write_bytes(d / "short-idx3-ubyte", idx_bytes(0x08, {4, 28, 28}, 4 * 784 - 5));
  nash_test::expect_error([&] { data::read_idx((d / "short-idx3-ubyte").string()); },
                          {(d / "short-idx3-ubyte").c_str(), "truncated data", "[4, 28, 28]", "need 3136 bytes"});
  write_bytes(d / "long-idx1-ubyte", idx_bytes(0x08, {10}, 12));
  nash_test::expect_error([&] { data::read_idx((d / "long-idx1-ubyte").string()); },
                          {(d / "long-idx1-ubyte").c_str(), "2 unexpected bytes", "[10]"});
  write_bytes(d / "magic-idx1-ubyte", Bytes{0, 0, 0x08, 0, 1, 2, 3, 4});
  nash_test::expect_error([&] { data::read_idx((d / "magic-idx1-ubyte").string()); },
                          {(d / "magic-idx1-ubyte").c_str(), "bad magic number", "0x00000800"});
  write_bytes(d / "empty", Bytes{});
  nash_test::expect_error([&] { data::read_idx((d / "empty").string()); }, {(d / "empty").c_str(), "too short"});
#ifdef NASH_HAVE_ZLIB
  // A sound gzip stream around a truncated IDX file: the IDX error still names the .gz file.
  Bytes inner = idx_bytes(0x08, {3, 28, 28}, 3 * 784 - 1);
  uLongf n = compressBound(static_cast<uLong>(inner.size())) + 64;
  Bytes gz(n);
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  zs.next_in = inner.data();
  zs.avail_in = static_cast<uInt>(inner.size());
  zs.next_out = gz.data();
  zs.avail_out = static_cast<uInt>(gz.size());
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  write_bytes(d / "cut-idx3-ubyte.gz", gz);
  nash_test::expect_error([&] { data::read_idx((d / "cut-idx3-ubyte.gz").string()); },
                          {(d / "cut-idx3-ubyte.gz").c_str(), "truncated data", "[3, 28, 28]"});
#endif
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------------------------------------------
// safetensors: header and offset cases test_safetensors.cpp leaves out.

TEST(BadInput, SafetensorsHeaderAndOffsetCases) {
  const std::string data(16, '\0');
  struct Case {
    std::string bytes;
    std::vector<const char*> fragments;
  };
  const std::vector<Case> cases = {
      {with_header("", data), {"not valid JSON"}},
      {with_header("{}", "") + std::string(3, 'x'), {}},  // valid: no tensors, trailing bytes ignored (see below)
      {with_header(R"({"t":5})", data), {"tensor 't'", "lacks dtype, shape or data_offsets"}},
      {with_header(R"({"t":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", data), {"tensor 't'", "non-string dtype"}},
      {with_header(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", data), {"tensor 't'", "not a list"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", data),
       {"tensor 't'", "non-integer dimension"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", data),
       {"tensor 't'", "overflowing shape"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,8]}})", data),
       {"tensor 't'", "[2147483648, 2147483648]", "data_offsets span 8"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data),
       {"tensor 't'", "data_offsets [8, 0)", "outside the data section of 16 bytes"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", data),
       {"tensor 't'", "data_offsets [12, 20)", "outside the data section of 16 bytes"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data),
       {"tensor 't'", "not two non-negative integers"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", data),
       {"tensor 't'", "not two non-negative integers"}},
      {with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", data),
       {"tensor 't'", "not two non-negative integers"}},
      {with_header(R"({"t":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", data),
       {"tensor 't'", "[2] F64 needs 16 bytes", "span 8"}},
      // The same bytes claimed by a tensor and by one nested inside it.
      {with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   data),
       {"overlap"}},
      {with_header(R"({"__metadata__":[1]})", data), {"__metadata__ is not an object"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.bytes.substr(8));
    if (c.fragments.empty()) {
      EXPECT_NO_THROW(io::parse_safetensors(c.bytes, "cases.safetensors"));
      continue;
    }
    try {
      io::parse_safetensors(c.bytes, "cases.safetensors");
      ADD_FAILURE() << "expected nash::Error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("cases.safetensors"), std::string::npos) << msg;
      for (const char* f : c.fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg << " lacks " << f;
    }
  }
}

// A checkpoint cut short on disk (an interrupted copy): the error names the file and the tensor, and the model and
// optimizer keep their values.
TEST(BadInput, TruncatedCheckpointFileChangesNothing) {
  manual_seed(5);
  Player saved(3, 16, 2);
  fs::path d = temp_dir("trunc_ckpt");
  const fs::path p = d / "cut.safetensors";
  nn::save_checkpoint(p.string(), saved.parts(3));
  const std::string full = read_file(p);
  write_file(p, full.substr(0, full.size() - 4));
  manual_seed(6);
  Player into(3, 16, 2);
  const auto before = values(*into.net);
  const auto state_before = into.opt.state();
  nn::Checkpoint c = into.parts(7);
  try {
    nn::load_checkpoint(p.string(), c);
    ADD_FAILURE() << "expected nash::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("outside the data section"), std::string::npos) << msg;
  }
  EXPECT_EQ(values(*into.net), before);
  EXPECT_EQ(into.opt.state().size(), state_before.size());
  for (const auto& [k, t] : into.opt.state()) EXPECT_EQ(t.to_vector<double>(), state_before.at(k).to_vector<double>()) << k;
  EXPECT_EQ(c.step, 7);
  // A well-formed safetensors file that is no nash checkpoint.
  io::save_safetensors(p.string(), {{"G.0.weight", zeros({16, 3})}});
  nash_test::expect_error([&] { nn::load_checkpoint(p.string(), c); }, {p.c_str(), "is not a nash checkpoint"});
  EXPECT_EQ(values(*into.net), before);
  fs::remove_all(d);
}

// Another architecture whose first layers match: the mismatch is found in the last layer, after tensors that would
// load, and still nothing changes (parameters, buffers, optimizer state, the random stream, the step).
TEST(BadInput, CheckpointOfAnotherArchitectureChangesNothing) {
  manual_seed(7);
  Player saved(3, 16, 2);
  fs::path d = temp_dir("arch");
  const fs::path p = d / "g.safetensors";
  nn::save_checkpoint(p.string(), saved.parts(11));

  manual_seed(8);
  Player wider_out(3, 16, 5);  // G.3.weight is [5, 16] here, [2, 16] in the file
  randn({3});
  const uint64_t seed = default_generator().seed(), offset = default_generator().offset();
  const auto before = values(*wider_out.net);
  nn::Checkpoint c = wider_out.parts(1);
  try {
    nn::load_checkpoint(p.string(), c);
    ADD_FAILURE() << "expected nash::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* f : {"G.3.weight", "[2, 16]", "[5, 16]"}) EXPECT_NE(msg.find(f), std::string::npos) << msg;
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  }
  EXPECT_EQ(values(*wider_out.net), before) << "a failed load must change no parameter or buffer";
  EXPECT_EQ(default_generator().seed(), seed);
  EXPECT_EQ(default_generator().offset(), offset);
  EXPECT_EQ(c.step, 1);

  // The right shapes in the wrong dtype: named with both dtypes.
  io::SafetensorsFile f = io::load_safetensors(p.string());
  for (auto& [name, t] : f.tensors)
    if (name == "G.3.bias") t = t.to(DType::Float64);
  const fs::path p64 = d / "g64.safetensors";
  io::save_safetensors(p64.string(), f.tensors, f.metadata);
  manual_seed(9);
  Player same(3, 16, 2);
  const auto same_before = values(*same.net);
  nn::Checkpoint c2 = same.parts();
  nash_test::expect_error([&] { nn::load_checkpoint(p64.string(), c2); }, {"G.3.bias", "float64", "float32"});
  EXPECT_EQ(values(*same.net), same_before);
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------------------------------------------
// Writes that fail part-way: a full disk, simulated two ways - the temporary file made a link to /dev/full (every
// write fails with ENOSPC), and a file-size limit (the write stops part-way through the data with EFBIG).

TEST(BadInput, CheckpointOnAFullDiskKeepsThePreviousFile) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  manual_seed(10);
  Player a(3, 16, 2);
  fs::path d = temp_dir("full");
  const fs::path p = d / "ckpt.safetensors";
  nn::save_checkpoint(p.string(), a.parts(1));
  const std::string before = read_file(p);
  a.opt.step();  // different values, so a partial overwrite would show
  // save_safetensors writes to "<path>.tmp.<pid>" and renames it; a link there sends the bytes to /dev/full.
  const fs::path tmp = p.string() + ".tmp." + std::to_string(::getpid());
  fs::create_symlink("/dev/full", tmp);
  try {
    nn::save_checkpoint(p.string(), a.parts(2));
    ADD_FAILURE() << "expected nash::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  }
  EXPECT_EQ(read_file(p), before) << "the previous checkpoint must be left byte-identical";
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmp))) << "the temporary file must be removed";
  fs::remove_all(d);
}

TEST(BadInput, WritesFailingPartWayKeepThePreviousFiles) {
  fs::path d = temp_dir("fsize");
  manual_seed(11);
  Player a(3, 64, 2);
  const fs::path ckpt = d / "ckpt.safetensors", png = d / "img.png", txt = d / "summary.json";
  nn::save_checkpoint(ckpt.string(), a.parts(1));
  const std::string ckpt_before = read_file(ckpt);
  constexpr rlim_t kLimit = 4096;
  ASSERT_GT(ckpt_before.size(), 2 * kLimit) << "the checkpoint must be larger than the limit for the test to bite";
  const bool have_png = io::png_available();
  io::Image img{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)};
  uint32_t x = 12345;  // noise, so the PNG does not compress below the limit
  for (auto& v : img.pixels) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(x >> 24);
  }
  if (have_png) io::write_png(png.string(), img);
  const std::string png_before = have_png ? read_file(png) : "";
  if (have_png) ASSERT_GT(png_before.size(), kLimit);
  cli::write_atomic(txt.string(), "{\"old\": 1}\n");
  a.opt.step();
  for (auto& v : img.pixels) v = static_cast<uint8_t>(255 - v);

  std::string ckpt_msg, png_msg, txt_msg;
  {
    FileSizeLimit limit(kLimit);
    if (!limit.ok()) GTEST_SKIP() << "cannot lower RLIMIT_FSIZE";
    try {
      nn::save_checkpoint(ckpt.string(), a.parts(2));
    } catch (const Error& e) {
      ckpt_msg = e.what();
    }
    if (have_png) {
      try {
        io::write_png(png.string(), img);
      } catch (const Error& e) {
        png_msg = e.what();
      }
    }
    try {
      cli::write_atomic(txt.string(), std::string(3 * kLimit, 'x'));
    } catch (const cli::OutputError& e) {
      txt_msg = e.what();
    }
  }
  EXPECT_NE(ckpt_msg.find(ckpt.string()), std::string::npos) << "nash::Error naming the file expected: " << ckpt_msg;
  EXPECT_NE(ckpt_msg.find("File too large"), std::string::npos) << ckpt_msg;
  EXPECT_EQ(read_file(ckpt), ckpt_before);
  if (have_png) {
    EXPECT_NE(png_msg.find(png.string()), std::string::npos) << "nash::Error naming the file expected: " << png_msg;
    EXPECT_EQ(read_file(png), png_before);
  }
  EXPECT_NE(txt_msg.find(txt.string()), std::string::npos) << "cli::OutputError naming the file expected: " << txt_msg;
  EXPECT_EQ(read_file(txt), "{\"old\": 1}\n");
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(d)) left.insert(e.path().filename().string());
  EXPECT_EQ(left, (have_png ? std::set<std::string>{"ckpt.safetensors", "img.png", "summary.json"}
                            : std::set<std::string>{"ckpt.safetensors", "summary.json"}))
      << "no temporary file may be left behind";
  fs::remove_all(d);
}

// The same through the program: `nash mixture` writing into a directory that holds an earlier run's results when the
// disk fills - exit code 2, the file named, the earlier results left as they were.
TEST(BadInput, MixtureRunOnAFullDiskKeepsTheEarlierResults) {
  fs::path d = temp_dir("mixture_full");
  const std::vector<std::string> base = {"--steps", "3", "--batch", "8", "--hidden", "4", "--eval-samples", "400",
                                         "--plots=false", "--quiet", "--out", d.string()};
  std::string err;
  std::vector<std::string> first = base;
  first.insert(first.end(), {"--seed", "1"});
  ASSERT_EQ(run_sub(apps::run_mixture, "mixture", first, &err), 0) << err;
  const auto before = snapshot(d);
  ASSERT_GT(before.at("samples.csv").size(), 4096u);
  std::vector<std::string> second = base;
  second.insert(second.end(), {"--seed", "2"});
  int rc = 0;
  {
    FileSizeLimit limit(4096);
    if (!limit.ok()) GTEST_SKIP() << "cannot lower RLIMIT_FSIZE";
    rc = run_sub(apps::run_mixture, "mixture", second, &err);
  }
  EXPECT_EQ(rc, cli::kUsageExit) << err;
  EXPECT_NE(err.find(d.string() + "/"), std::string::npos) << "the message must name the file: " << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(snapshot(d), before) << "the earlier run's files must be left byte-identical";
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------------------------------------------
// Every numeric flag of every subcommand, each with a missing, negative, zero, NaN, infinite and huge value.

namespace {

enum class FlagKind {
  Int,
  Real,
  RealText,  // a string flag holding a number (e.g. "auto" or a learning rate), checked after parsing
};

struct NumericFlag {
  const char* sub;
  const char* flag;
  FlagKind kind;
  bool zero_ok;  // 0 is a valid value (a seed, "0: auto", ...)
};

const std::vector<NumericFlag>& numeric_flags() {
  using K = FlagKind;
  static const std::vector<NumericFlag> t = {
      {"mixture", "--steps", K::Int, false},        {"mixture", "--n-dis", K::Int, true},
      {"mixture", "--batch", K::Int, false},        {"mixture", "--lr-d", K::RealText, false},
      {"mixture", "--lr-g", K::RealText, false},    {"mixture", "--beta1", K::Real, true},
      {"mixture", "--beta2", K::Real, true},        {"mixture", "--gp-lambda", K::Real, true},
      {"mixture", "--z-dim", K::Int, false},        {"mixture", "--hidden", K::Int, false},
      {"mixture", "--seed", K::Int, true},          {"mixture", "--seeds", K::Int, false},
      {"mixture", "--jobs", K::Int, true},          {"mixture", "--eval-samples", K::Int, false},
      {"mixture", "--log-every", K::Int, false},    {"mixture", "--threads", K::Int, true},
      {"mixture", "--d-reg-weight", K::Real, true}, {"mixture", "--d-clip", K::Real, true},
      {"sweep", "--seeds", K::Int, false},          {"sweep", "--seed", K::Int, true},
      {"sweep", "--steps", K::Int, false},          {"sweep", "--batch", K::Int, false},
      {"sweep", "--hidden", K::Int, false},         {"sweep", "--n-dis", K::Int, true},
      {"sweep", "--lr-g", K::RealText, false},      {"sweep", "--ttur", K::RealText, false},
      {"sweep", "--eval-samples", K::Int, false},   {"sweep", "--jobs", K::Int, true},
      {"bimodal", "--lr-d", K::Real, false},        {"bimodal", "--lr-g", K::Real, false},
      {"bimodal", "--steps", K::Int, false},        {"bimodal", "--sgda-steps", K::Int, false},
      {"bimodal", "--seed", K::Int, true},          {"bimodal", "--seeds", K::Int, false},
      {"bimodal", "--d", K::Int, false},            {"bimodal", "--gamma", K::Real, true},
      {"bimodal", "--m-d", K::Int, true},           {"bimodal", "--m-g", K::Int, true},
      {"bimodal", "--init-std", K::Real, true},     {"bimodal", "--p-two", K::Real, true},
      {"bimodal", "--threshold", K::Real, false},   {"bimodal", "--log-every", K::Int, false},
      {"bimodal", "--jobs", K::Int, false},         {"classifier", "--epochs", K::Int, false},
      {"classifier", "--batch", K::Int, false},     {"classifier", "--lr", K::Real, false},
      {"classifier", "--seed", K::Int, true},       {"classifier", "--features", K::Int, false},
      {"classifier", "--limit", K::Int, true},      {"classifier", "--test-limit", K::Int, true},
      {"classifier", "--max-steps", K::Int, true},  {"classifier", "--threads", K::Int, true},
      {"fid", "--limit", K::Int, true},             {"fid", "--batch", K::Int, false},
      {"fid", "--threads", K::Int, true},           {"fid", "--k", K::Int, true},
      {"fid", "--kid-subsets", K::Int, true},       {"fid", "--kid-size", K::Int, false},
      {"fmnist", "--steps", K::Int, true},          {"fmnist", "--n-dis", K::Int, true},
      {"fmnist", "--batch", K::Int, true},          {"fmnist", "--width", K::Int, true},
      {"fmnist", "--z-dim", K::Int, true},          {"fmnist", "--lr-g", K::Real, true},
      {"fmnist", "--lr-d", K::Real, true},          {"fmnist", "--ttur", K::Real, true},
      {"fmnist", "--beta1", K::Real, true},         {"fmnist", "--beta2", K::Real, true},
      {"fmnist", "--d-reg-weight", K::Real, true},  {"fmnist", "--d-clip", K::Real, true},
      {"fmnist", "--seed", K::Int, true},           {"fmnist", "--magnitudes-every", K::Int, true},
      {"fmnist", "--limit", K::Int, true},          {"fmnist", "--fid-samples", K::Int, true},
      {"fmnist", "--fid-every", K::Int, true},      {"fmnist", "--sample-every", K::Int, true},
      {"fmnist", "--checkpoint-every", K::Int, true}, {"fmnist", "--log-every", K::Int, true},
      {"fmnist", "--threads", K::Int, true},          {"fmnist", "--g-ema", K::Real, true},
      {"fmnist", "--attention", K::Int, true},
      {"sample", "--n", K::Int, false},               {"sample", "--seed", K::Int, true},
      {"sample", "--truncation", K::Real, true},      {"sample", "--interpolate", K::Int, true},
      {"sample", "--cols", K::Int, true},             {"sample", "--scale", K::Int, false},
      {"sample", "--batch", K::Int, false},           {"sample", "--threads", K::Int, true},
      {"sample", "--class", K::Int, true},
  };
  return t;
}

RunFn run_fn(const std::string& sub) {
  if (sub == "mixture") return apps::run_mixture;
  if (sub == "sweep") return apps::run_sweep_cli;
  if (sub == "bimodal") return apps::run_bimodal;
  if (sub == "classifier") return apps::run_classifier;
  if (sub == "fid") return apps::run_fid;
  if (sub == "fmnist") return apps::run_fmnist;
  if (sub == "sample") return apps::run_sample;
  return nullptr;
}

// Flags that make a run which should never start cost milliseconds if it does (RealText flags are checked after
// parsing, so no later bad flag can stop such a run); `skip` is the flag under test.
std::vector<std::string> cheap_run(const std::string& sub, const std::string& skip, const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> kv;
  if (sub == "mixture")
    kv = {{"--steps", "1"}, {"--batch", "4"}, {"--hidden", "2"}, {"--eval-samples", "4"}, {"--plots", "false"},
          {"--quiet", "true"}, {"--out", (dir / "mixture").string()}};
  else if (sub == "sweep")
    kv = {{"--seeds", "1"},   {"--steps", "1"},        {"--batch", "4"},   {"--hidden", "2"},
          {"--eval-samples", "4"}, {"--optimizers", "adam"}, {"--sn", "off"}, {"--ttur", "1"},
          {"--jobs", "1"},    {"--results", (dir / "R.md").string()}, {"--quiet", "true"}};
  std::vector<std::string> out;
  for (const auto& [k, v] : kv)
    if (k != skip) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

TEST(BadInput, EveryNumericFlagRejectsMissingAndOutOfRangeValues) {
  fs::path dir = temp_dir("flags");
  // A flag after the one under test that no parser knows: when the value under test is (rightly) accepted, parsing
  // stops there with exit code 2 and nothing runs.
  const std::string sentinel = "--zz-no-such-flag";
  int checked = 0;
  for (const NumericFlag& f : numeric_flags()) {
    const bool real = f.kind != FlagKind::Int;
    const std::vector<std::pair<const char*, std::optional<std::string>>> values = {
        {"missing", std::nullopt},
        {"negative", "-7"},
        {"zero", "0"},
        {"NaN", "nan"},
        {"infinity", "inf"},
        {"minus infinity", "-inf"},
        {"huge", real ? "1e300" : "99999999999999999999"},
        {"overflowing", real ? "1e999" : "18446744073709551616"},
    };
    for (const auto& [what, value] : values) {
      SCOPED_TRACE(std::string("nash ") + f.sub + " " + f.flag + " " + (value ? *value : "") + " (" + what + ")");
      std::vector<std::string> args;
      if (f.kind == FlagKind::RealText) args = cheap_run(f.sub, f.flag, dir);
      args.push_back(f.flag);
      if (value) args.push_back(*value);
      if (value && f.kind != FlagKind::RealText) args.push_back(sentinel);
      std::string err, out;
      const int rc = run_sub(run_fn(f.sub), f.sub, args, &err, &out);
      ++checked;
      EXPECT_EQ(rc, cli::kUsageExit) << err;
      EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line expected: " << err;
      EXPECT_EQ(err.rfind(std::string("nash ") + f.sub + ": ", 0), 0u) << err;
      const bool accepted = value && *value == "0" && f.zero_ok;
      if (accepted) {
        EXPECT_NE(err.find(sentinel), std::string::npos) << "0 should be accepted: " << err;
        continue;
      }
      EXPECT_NE(err.find(f.flag), std::string::npos) << "the message must name the flag: " << err;
      if (value) EXPECT_NE(err.find(*value), std::string::npos) << "the message must quote the value: " << err;
      else EXPECT_NE(err.find("missing value"), std::string::npos) << err;
      EXPECT_EQ(err.find(sentinel), std::string::npos) << "the bad value was accepted: " << err;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(numeric_flags().size()) * 8);
  // Nothing ran: no run directory, no results file.
  EXPECT_TRUE(snapshot(dir).empty());
  fs::remove_all(dir);
}

// The table above must list every INT and X flag each subcommand's --help shows, so a new numeric flag is covered.
TEST(BadInput, NumericFlagTableCoversEveryHelpFlag) {
  const std::regex line(R"(^  (--[a-z0-9-]+) (INT|X) )");
  for (const char* sub : {"mixture", "sweep", "bimodal", "classifier", "fid", "fmnist", "sample"}) {
    SCOPED_TRACE(sub);
    std::string err, out;
    ASSERT_EQ(run_sub(run_fn(sub), sub, {"--help"}, &err, &out), 0) << err;
    std::set<std::string> in_help, in_table;
    std::istringstream is(out);
    for (std::string l; std::getline(is, l);) {
      std::smatch m;
      if (std::regex_search(l, m, line)) {
        in_help.insert(m[1]);
        const bool is_int = m[2] == "INT";
        bool found = false;
        for (const NumericFlag& f : numeric_flags())
          if (f.sub == std::string(sub) && m[1] == f.flag) {
            found = true;
            EXPECT_EQ(f.kind == FlagKind::Int, is_int) << f.flag << " has another type in --help";
          }
        EXPECT_TRUE(found) << "numeric flag " << m[1] << " of nash " << sub << " is missing from numeric_flags()";
      }
    }
    for (const NumericFlag& f : numeric_flags())
      if (f.sub == std::string(sub)) in_table.insert(f.flag);
    for (const std::string& f : in_table)
      EXPECT_NE(out.find("  " + f + " "), std::string::npos) << f << " is in the table but not in --help";
    EXPECT_GE(in_help.size(), 3u) << out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Outputs that cannot be written: exit code 2 before any work, the path named, nothing created or overwritten.

TEST(BadInput, UnwritableOutputsExitTwoAndChangeNothing) {
  fs::path d = temp_dir("unwritable");
  const fs::path file = d / "a_file";
  write_file(file, "keep me\n");
  fs::create_directories(d / "a_dir");
  const std::string under_file = (file / "sub").string();  // no directory can be made under a regular file
  struct Case {
    const char* sub;
    std::vector<std::string> args;
    std::string named;  // the path the message must name
  };
  const std::vector<Case> cases = {
      {"mixture", {"--steps", "2", "--batch", "8", "--hidden", "4", "--quiet", "--out", under_file}, under_file},
      {"mixture", {"--steps", "2", "--batch", "8", "--hidden", "4", "--quiet", "--out", file.string()}, file.string()},
      {"mixture",
       {"--steps", "2", "--batch", "8", "--hidden", "4", "--quiet", "--seeds", "2", "--jobs", "1", "--out", under_file},
       under_file},
      {"bimodal", {"--steps", "5", "--plots=false", "--quiet", "--out", under_file}, under_file},
      {"bimodal", {"--steps", "5", "--plots=false", "--quiet", "--out", file.string()}, file.string()},
      {"classifier",
       {"--data", (d / "no-data").string(), "--device", "cpu", "--quiet", "--out", under_file + "/x.safetensors"},
       under_file},
      {"classifier",
       {"--data", (d / "no-data").string(), "--device", "cpu", "--quiet", "--out", (d / "a_dir").string()},
       (d / "a_dir").string()},
      {"sweep",
       {"--seeds", "1", "--steps", "1", "--optimizers", "adam", "--sn", "off", "--ttur", "1", "--jobs", "1", "--quiet",
        "--results", under_file + "/R.md"},
       under_file + "/R.md"},
      {"sweep",
       {"--seeds", "1", "--steps", "1", "--optimizers", "adam", "--sn", "off", "--ttur", "1", "--jobs", "1", "--quiet",
        "--results", (d / "R.md").string(), "--out", under_file},
       under_file},
      {"fmnist", {"--steps", "1", "--quiet", "--out", under_file}, under_file},
      {"fmnist", {"--steps", "1", "--quiet", "--out", file.string()}, file.string()},
  };
  const auto before = snapshot(d);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("nash ") + c.sub + " ... " + c.args.back());
    std::string err, out;
    EXPECT_EQ(run_sub(run_fn(c.sub), c.sub, c.args, &err, &out), cli::kUsageExit) << err;
    EXPECT_NE(err.find(c.named), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(snapshot(d), before) << "nothing may be created or overwritten";
  }
  // A read-only directory stops only an unprivileged user (root writes anyway).
  if (::geteuid() != 0) {
    const fs::path ro = d / "read_only";
    fs::create_directories(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    std::string err, out;
    EXPECT_EQ(run_sub(apps::run_mixture, "mixture", {"--steps", "2", "--quiet", "--out", (ro / "run").string()}, &err,
                      &out),
              cli::kUsageExit)
        << err;
    EXPECT_NE(err.find((ro / "run").string()), std::string::npos) << err;
    EXPECT_TRUE(fs::is_empty(ro));
    fs::permissions(ro, fs::perms::owner_all);
  }
  fs::remove_all(d);
}

// A checkpoint whose tensors fit but whose metadata is missing or malformed ("rng.offset" gone, "step" not a number)
// must be rejected before anything changes. Disabled: load_checkpoint reads the metadata only after it has copied the
// tensors and loaded the optimizer state (nn/checkpoint.cpp, step 3), so such a file leaves a half-loaded model.
// Enable once the metadata is parsed before the commit.
TEST(BadInput, CheckpointWithBadMetadataChangesNothing) {
  manual_seed(12);
  Player saved(3, 16, 2);
  fs::path d = temp_dir("meta");
  const fs::path p = d / "g.safetensors";
  nn::save_checkpoint(p.string(), saved.parts(4));
  const io::SafetensorsFile good = io::load_safetensors(p.string());
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{{"rng.offset", ""}, {"step", "x1"}}) {
    SCOPED_TRACE(key);
    io::SafetensorsFile f = good;
    if (value.empty()) f.metadata.erase(key);
    else f.metadata[key] = value;
    io::save_safetensors(p.string(), f.tensors, f.metadata);
    manual_seed(13);
    Player into(3, 16, 2);
    const auto before = values(*into.net);
    const auto state_before = into.opt.state();
    nn::Checkpoint c = into.parts(1);
    nash_test::expect_error([&] { nn::load_checkpoint(p.string(), c); }, {p.c_str(), key.c_str()});
    EXPECT_EQ(values(*into.net), before);
    for (const auto& [k, t] : into.opt.state())
      EXPECT_EQ(t.to_vector<double>(), state_before.at(k).to_vector<double>()) << k;
    EXPECT_EQ(c.step, 1);
  }
  fs::remove_all(d);
}
