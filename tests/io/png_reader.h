// PNG reading for tests: nash::io's libpng reader, as RGB, with a pixel accessor.
#pragma once
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "nash/io/png.h"

namespace nash_test {

struct PngImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes a pixel
  // The pixel at (x, y) as 0xRRGGBB.
  uint32_t at(int x, int y) const {
    const uint8_t* p = &rgb[(static_cast<std::size_t>(y) * width + x) * 3];
    return (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
  }
};

inline PngImage decode_png(const std::vector<uint8_t>& bytes) {
  nash::io::Image img = nash::io::decode_png(bytes, "test bytes", 3);
  return {img.width, img.height, img.pixels};
}

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline PngImage read_png(const std::string& path) {
  nash::io::Image img = nash::io::read_png(path, 3);
  return {img.width, img.height, img.pixels};
}

}  // namespace nash_test
