// A PNG reader for tests: 8-bit RGB, non-interlaced; inflates through zlib when nash has it, else stored blocks.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "nash/io/png.h"

#ifdef NASH_HAVE_ZLIB
#include <zlib.h>
#endif

namespace nash_test {

struct PngImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes a pixel
  int chunks = 0;            // chunks read, IEND included
  // The pixel at (x, y) as 0xRRGGBB.
  uint32_t at(int x, int y) const {
    const uint8_t* p = &rgb[(static_cast<std::size_t>(y) * width + x) * 3];
    return (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
  }
};

inline uint32_t png_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// Inflates a zlib stream made only of stored blocks (what nash writes without zlib), checking its Adler-32.
inline std::vector<uint8_t> inflate_stored(const std::vector<uint8_t>& z) {
  if (z.size() < 6 || (z[0] & 0x0f) != 8 || ((z[0] << 8) | z[1]) % 31 != 0)
    throw std::runtime_error("bad zlib header");
  std::vector<uint8_t> out;
  std::size_t pos = 2;
  for (bool last = false; !last;) {
    if (pos + 5 > z.size()) throw std::runtime_error("truncated stored block");
    last = z[pos] & 1;
    if ((z[pos] >> 1) != 0) throw std::runtime_error("not a stored block (build the test with zlib)");
    const std::size_t len = z[pos + 1] | (z[pos + 2] << 8), nlen = z[pos + 3] | (z[pos + 4] << 8);
    if ((len ^ 0xffff) != nlen) throw std::runtime_error("stored block LEN/NLEN mismatch");
    pos += 5;
    if (pos + len > z.size()) throw std::runtime_error("truncated stored block data");
    out.insert(out.end(), z.begin() + static_cast<std::ptrdiff_t>(pos),
               z.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  }
  if (pos + 4 != z.size()) throw std::runtime_error("bad zlib trailer length");
  if (png_be32(&z[pos]) != nash::io::png_adler32(out.data(), out.size())) throw std::runtime_error("bad Adler-32");
  return out;
}

inline std::vector<uint8_t> inflate_zlib(const std::vector<uint8_t>& z, std::size_t expected) {
  if (z.size() > 2 && (z[2] & 0x06) == 0) {
    // The first block is stored: the whole stream may be (nash's zlib-less output); zlib reads it too.
    try {
      return inflate_stored(z);
    } catch (const std::runtime_error&) {
    }
  }
#ifdef NASH_HAVE_ZLIB
  std::vector<uint8_t> out(expected);
  uLongf len = static_cast<uLongf>(expected);
  if (uncompress(out.data(), &len, z.data(), static_cast<uLong>(z.size())) != Z_OK || len != expected)
    throw std::runtime_error("zlib uncompress failed");
  return out;
#else
  return inflate_stored(z);
#endif
}

inline uint8_t paeth(int a, int b, int c) {
  int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return static_cast<uint8_t>(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// Decodes PNG bytes, checking the signature, every chunk's CRC, IHDR and the chunk order; throws runtime_error.
inline PngImage decode_png(const std::vector<uint8_t>& b) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || !std::equal(sig, sig + 8, b.begin())) throw std::runtime_error("no PNG signature");
  PngImage img;
  std::vector<uint8_t> idat;
  bool end = false;
  for (std::size_t pos = 8; !end;) {
    if (pos + 12 > b.size()) throw std::runtime_error("truncated chunk");
    const uint32_t len = png_be32(&b[pos]);
    if (pos + 12 + len > b.size()) throw std::runtime_error("truncated chunk data");
    const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    const uint8_t* data = &b[pos + 8];
    if (png_be32(data + len) != nash::io::png_crc32(&b[pos + 4], len + 4))
      throw std::runtime_error("bad CRC in " + type);
    if (img.chunks == 0 && type != "IHDR") throw std::runtime_error("first chunk is not IHDR");
    if (type == "IHDR") {
      if (len != 13) throw std::runtime_error("IHDR length");
      img.width = static_cast<int>(png_be32(data));
      img.height = static_cast<int>(png_be32(data + 4));
      if (data[8] != 8 || data[9] != 2 || data[10] != 0 || data[11] != 0 || data[12] != 0)
        throw std::runtime_error("not 8-bit non-interlaced RGB");
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + len);
    } else if (type == "IEND") {
      end = true;
      if (pos + 12 != b.size()) throw std::runtime_error("bytes after IEND");
    }
    ++img.chunks;
    pos += 12 + len;
  }
  const std::size_t row = static_cast<std::size_t>(img.width) * 3;
  std::vector<uint8_t> raw = inflate_zlib(idat, (row + 1) * img.height);
  if (raw.size() != (row + 1) * img.height) throw std::runtime_error("wrong decompressed size");
  img.rgb.assign(row * img.height, 0);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t f = raw[y * (row + 1)];
    const uint8_t* in = &raw[y * (row + 1) + 1];
    uint8_t* out = &img.rgb[y * row];
    const uint8_t* up = y ? out - row : nullptr;
    for (std::size_t i = 0; i < row; ++i) {
      int a = i >= 3 ? out[i - 3] : 0, u = up ? up[i] : 0, c = (up && i >= 3) ? up[i - 3] : 0;
      int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? u : f == 3 ? (a + u) / 2 : f == 4 ? paeth(a, u, c) : -1;
      if (pred < 0) throw std::runtime_error("bad filter type");
      out[i] = static_cast<uint8_t>(in[i] + pred);
    }
  }
  return img;
}

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline PngImage read_png(const std::string& path) { return decode_png(read_file_bytes(path)); }

}  // namespace nash_test
