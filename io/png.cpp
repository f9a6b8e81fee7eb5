// PNG encoding: IHDR/IDAT/IEND chunks around a zlib stream of unfiltered scanlines, written through a temp file.
#include "nash/io/png.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "nash/core/error.h"

#ifdef NASH_HAVE_ZLIB
#include <zlib.h>
#endif

namespace nash {
namespace io {

namespace {

// Generous for plots, and keeps width * height * 3 far from overflowing anything.
constexpr int kMaxSide = 1 << 15;

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char type[4], const std::vector<uint8_t>& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_u32(out, png_crc32(out.data() + start, out.size() - start));
}

// A zlib stream of stored deflate blocks (at most 65535 bytes each) followed by the Adler-32 of the data.
std::vector<uint8_t> zlib_stored(const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> z = {0x78, 0x01};
  std::size_t pos = 0;
  do {
    const std::size_t len = std::min<std::size_t>(65535, raw.size() - pos);
    const bool last = pos + len == raw.size();
    z.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
    z.push_back(static_cast<uint8_t>(len & 0xff));
    z.push_back(static_cast<uint8_t>(len >> 8));
    z.push_back(static_cast<uint8_t>(~len & 0xff));
    z.push_back(static_cast<uint8_t>((~len >> 8) & 0xff));
    z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos),
             raw.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  } while (pos < raw.size());
  put_u32(z, png_adler32(raw.data(), raw.size()));
  return z;
}

std::vector<uint8_t> zlib_stream(const std::vector<uint8_t>& raw, bool compress) {
#ifdef NASH_HAVE_ZLIB
  if (compress) {
    uLongf len = compressBound(static_cast<uLong>(raw.size()));
    std::vector<uint8_t> z(len);
    int rc = compress2(z.data(), &len, raw.data(), static_cast<uLong>(raw.size()), 6);
    NASH_CHECK(rc == Z_OK, "encode_png: zlib compress2 failed with code ", rc);
    z.resize(len);
    return z;
  }
#endif
  (void)compress;
  return zlib_stored(raw);
}

}  // namespace

uint32_t png_crc32(const uint8_t* data, std::size_t n, uint32_t crc) {
  const auto& t = crc_table();
  uint32_t c = crc ^ 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) c = t[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t png_adler32(const uint8_t* data, std::size_t n, uint32_t adler) {
  uint32_t a = adler & 0xffff, b = adler >> 16;
  while (n > 0) {
    // 5552 bytes is the most that can be summed before b can overflow 32 bits (zlib's NMAX).
    std::size_t chunk = std::min<std::size_t>(n, 5552);
    n -= chunk;
    while (chunk--) {
      a += *data++;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return (b << 16) | a;
}

std::vector<uint8_t> encode_png(int width, int height, const std::vector<uint8_t>& rgb, bool compress) {
  NASH_CHECK(width >= 1 && height >= 1 && width <= kMaxSide && height <= kMaxSide,
             "encode_png: width and height must be in [1, ", kMaxSide, "], got ", width, " x ", height);
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  NASH_CHECK(rgb.size() == row * static_cast<std::size_t>(height), "encode_png: a ", width, " x ", height,
             " RGB image needs ", row * static_cast<std::size_t>(height), " bytes, got ", rgb.size());
  // Every scanline starts with its filter type; 0 (none) keeps the encoder trivial and zlib still finds the runs.
  std::vector<uint8_t> raw;
  raw.reserve((row + 1) * static_cast<std::size_t>(height));
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);
    const auto first = rgb.begin() + static_cast<std::ptrdiff_t>(row * static_cast<std::size_t>(y));
    raw.insert(raw.end(), first, first + static_cast<std::ptrdiff_t>(row));
  }
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, static_cast<uint32_t>(width));
  put_u32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8 bits, colour type 2 (RGB), deflate, filter set 0, no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", zlib_stream(raw, compress));
  put_chunk(out, "IEND", {});
  return out;
}

void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb) {
  NASH_CHECK(!path.empty(), "write_png: the path is empty");
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_png(width, height, rgb);
  } catch (const Error& e) {
    throw Error("write_png: '" + path + "': " + e.what());
  }
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  NASH_CHECK(f, "write_png: cannot open '", tmp, "' for writing: ", std::strerror(errno));
  const bool wrote = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed) {
    std::remove(tmp.c_str());
    NASH_CHECK(false, "write_png: writing '", tmp, "' failed: ", std::strerror(wrote ? errno : err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    NASH_CHECK(false, "write_png: cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
}

}  // namespace io
}  // namespace nash
