// safetensors: a little-endian u64 header size, a JSON header {name: {dtype, shape, data_offsets}}, the data.
#include "nash/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace nash {
namespace io {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference implementation's limit

const char* dtype_code(DType t) { return t == DType::Float32 ? "F32" : "F64"; }

[[noreturn]] void bad(const std::string& what, const std::string& msg) {
  detail::fail("safetensors: ", what, ": ", msg);
}

void write_all(int fd, const char* p, std::size_t n, const std::string& tmp) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) detail::fail("safetensors: cannot write ", tmp, ": ", std::strerror(errno));
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return &kv.second;
  return nullptr;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    NASH_CHECK(!name.empty() && name != "__metadata__", "safetensors: invalid tensor name '", name, "' for ", path);
    NASH_CHECK(names.insert(name).second, "safetensors: tensor name '", name, "' appears twice (writing ", path, ")");
    NASH_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined (writing ", path, ")");
    Tensor h = t.detach().to(Device::cpu()).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(h.numel()) * element_size(h.dtype());
    header[name] = {{"dtype", dtype_code(h.dtype())}, {"shape", h.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    host.push_back(h);
  }
  std::string head = header.dump();
  head.append((8 - head.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the reference writer does
  const uint64_t n = head.size();

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) detail::fail("safetensors: cannot create ", tmp, " (for ", path, "): ", std::strerror(errno));
  try {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    write_all(fd, reinterpret_cast<const char*>(len), 8, tmp);
    write_all(fd, head.data(), head.size(), tmp);
    for (const Tensor& h : host)
      write_all(fd, static_cast<const char*>(h.raw_data()), static_cast<std::size_t>(h.numel()) * element_size(h.dtype()),
                tmp);
    if (::fsync(fd) != 0) detail::fail("safetensors: cannot flush ", tmp, ": ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    detail::fail("safetensors: cannot close ", tmp, ": ", std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    detail::fail("safetensors: cannot rename ", tmp, " to ", path, ": ", std::strerror(e));
  }
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 8) bad(what, "file is " + std::to_string(bytes.size()) + " bytes, shorter than the 8-byte header size");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > kMaxHeader) bad(what, "header size " + std::to_string(n) + " exceeds the 100 MiB limit");
  if (n > bytes.size() - 8)
    bad(what, "header size " + std::to_string(n) + " runs past the end of the file (" + std::to_string(bytes.size()) +
                  " bytes)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const nlohmann::json::exception& e) {
    bad(what, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) bad(what, "header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;

  SafetensorsFile out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) bad(what, "__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) bad(what, "__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      bad(what, where + " lacks dtype, shape or data_offsets");
    if (!e["dtype"].is_string()) bad(what, where + " has a non-string dtype");
    const std::string dt = e["dtype"].get<std::string>();
    DType dtype;
    if (dt == "F32") dtype = DType::Float32;
    else if (dt == "F64") dtype = DType::Float64;
    else bad(what, where + " has dtype " + dt + " (nash reads F32 and F64)");
    if (!e["shape"].is_array()) bad(what, where + " has a shape that is not a list");
    Shape shape;
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) bad(what, where + " has a negative or non-integer dimension");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) bad(what, where + " has an overflowing shape");
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad(what, where + " has data_offsets that are not two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (b > end || end > data_size)
      bad(what, where + " has data_offsets [" + std::to_string(b) + ", " + std::to_string(end) +
                    ") outside the data section of " + std::to_string(data_size) + " bytes");
    const uint64_t want = numel * element_size(dtype);
    if (numel > (1ull << 60) || end - b != want)
      bad(what, where + " of shape " + shape_str(shape) + " " + dt + " needs " + std::to_string(want) +
                    " bytes but its data_offsets span " + std::to_string(end - b));
    ranges.emplace_back(b, end);
    Tensor t = empty(shape, dtype);
    if (want) std::memcpy(t.raw_data(), data + b, want);
    out.tensors.emplace_back(name, t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second && ranges[i].first != ranges[i].second) bad(what, "tensors' data overlap");
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) detail::fail("safetensors: cannot open ", path, ": ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) detail::fail("safetensors: cannot read ", path);
  return parse_safetensors(ss.str(), path);
}

}  // namespace io
}  // namespace nash
