// safetensors: the exact byte layout, round trips, atomic replacement, and every kind of malformed file.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "nash/io/safetensors.h"
#include "support.h"

using namespace nash;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("nash_st_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}
std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
std::string with_header(const std::string& json, const std::string& data) {
  std::string s(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s + json + data;
}
}  // namespace

TEST(Safetensors, ByteLayoutMatchesTheFormat) {
  fs::path p = scratch("layout.safetensors");
  Tensor a = from_vector(std::vector<float>{1.5f, -2.f}, {2});
  Tensor b = from_vector(std::vector<double>{3.25}, {1, 1});
  io::save_safetensors(p.string(), {{"a", a}, {"b", b}}, {{"k", "v"}});
  std::string bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  ASSERT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  EXPECT_NE(header.find("\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"), std::string::npos) << header;
  EXPECT_NE(header.find("\"b\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[8,16]}"), std::string::npos);
  EXPECT_NE(header.find("\"__metadata__\":{\"k\":\"v\"}"), std::string::npos);
  ASSERT_EQ(bytes.size(), 8 + n + 16);
  float f0;
  std::memcpy(&f0, bytes.data() + 8 + n, 4);
  EXPECT_EQ(f0, 1.5f);
  io::SafetensorsFile back = io::load_safetensors(p.string());
  ASSERT_EQ(back.tensors.size(), 2u);
  EXPECT_EQ(back.find("a")->to_vector(), a.to_vector());
  EXPECT_EQ(back.find("b")->to_vector<double>(), b.to_vector<double>());
  EXPECT_EQ(back.find("b")->shape(), (Shape{1, 1}));
  EXPECT_EQ(back.metadata.at("k"), "v");
}

TEST(Safetensors, FailedWriteLeavesThePreviousFile) {
  fs::path p = scratch("keep.safetensors");
  io::save_safetensors(p.string(), {{"x", ones({3})}});
  std::string before = read_bytes(p);
  nash_test::expect_error([&] { io::save_safetensors(p.string(), {{"x", ones({3})}, {"x", ones({2})}}); },
                          {"appears twice"});
  nash_test::expect_error([&] { io::save_safetensors("/nonexistent-dir/x.safetensors", {{"x", ones({3})}}); },
                          {"/nonexistent-dir/x.safetensors"});
  EXPECT_EQ(read_bytes(p), before);
  for (auto& e : fs::directory_iterator(p.parent_path()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "left a temporary file: " << e.path();
}

TEST(Safetensors, MalformedFilesAreClearErrors) {
  const std::string ok_json = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data(8, '\0');
  EXPECT_NO_THROW(io::parse_safetensors(with_header(ok_json, data), "ok"));
  struct Case {
    std::string bytes;
    const char* fragment;
  };
  std::string huge(8, '\xff');
  std::vector<Case> cases = {
      {"abc", "shorter than the 8-byte header"},
      {huge, "exceeds the 100 MiB limit"},
      {with_header(ok_json, data).substr(0, 20), "runs past the end"},
      {with_header("{not json", data), "not valid JSON"},
      {with_header("[1,2]", data), "not a JSON object"},
      {with_header(R"({"t":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", data), "dtype I8"},
      {with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}})", data), "outside the data section"},
      {with_header(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "needs 12 bytes"},
      {with_header(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "negative"},
      {with_header(R"({"t":{"dtype":"F32","shape":[2]}})", data), "lacks dtype, shape or data_offsets"},
      {with_header(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"u":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                   data),
       "overlap"},
      {with_header(R"({"__metadata__":{"a":1}})", ""), "not a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fragment);
    nash_test::expect_error([&] { io::parse_safetensors(c.bytes, "bad.safetensors"); },
                            {"safetensors", "bad.safetensors", c.fragment});
  }
  nash_test::expect_error([] { io::load_safetensors("/nonexistent/file.safetensors"); },
                          {"cannot open", "/nonexistent/file.safetensors"});
}

TEST(Safetensors, ReadableByPythonSafetensors) {
  if (std::system("python3 -c 'import safetensors.numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with the safetensors package is not installed (pip install safetensors numpy)";
  fs::path p = scratch("py.safetensors");
  io::save_safetensors(p.string(), {{"G.net.0.weight", arange(0, 6).reshape({2, 3})}, {"s", ones({1}, DType::Float64)}},
                       {{"step", "7"}});
  std::string cmd = "python3 -c \"import sys; from safetensors.numpy import load_file; from safetensors import safe_open; "
                    "d = load_file('" + p.string() + "'); w = d['G.net.0.weight']; "
                    "ok = w.shape == (2, 3) and w.dtype.name == 'float32' and float(w[1, 2]) == 5.0 and "
                    "d['s'].dtype.name == 'float64'; "
                    "f = safe_open('" + p.string() + "', 'np'); ok = ok and f.metadata()['step'] == '7'; "
                    "sys.exit(0 if ok else 1)\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
