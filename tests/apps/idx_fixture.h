// A small learnable stand-in for Fashion-MNIST written as IDX files, for the app tests (no dataset package needed).
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace nash_test {

namespace fs = std::filesystem;

inline void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline std::vector<uint8_t> idx_header(uint8_t ndims, const std::vector<uint32_t>& dims) {
  std::vector<uint8_t> b{0, 0, 0x08, ndims};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  return b;
}

// n images where class k (= i % 10) is a bright band on rows 2k+1 .. 2k+4 over dim noise: learnable in a few steps.
inline std::vector<uint8_t> band_pixels(uint32_t n, uint32_t seed) {
  std::vector<uint8_t> px(n * 784);
  uint32_t x = seed * 747796405u + 1u;
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t y = 0; y < 28; ++y)
      for (uint32_t c = 0; c < 28; ++c) {
        x = x * 1664525u + 1013904223u;
        const uint32_t k = i % 10, noise = x >> 26;  // 0..63
        px[(i * 28 + y) * 28 + c] = static_cast<uint8_t>(y >= 2 * k + 1 && y <= 2 * k + 4 ? 190 + noise : noise);
      }
  return px;
}

// The images and labels files of one split ("train" or "t10k") in dir.
inline void write_split(const fs::path& dir, const std::string& prefix, uint32_t n, uint32_t seed) {
  std::vector<uint8_t> img = idx_header(3, {n, 28, 28}), px = band_pixels(n, seed);
  img.insert(img.end(), px.begin(), px.end());
  write_bytes(dir / (prefix + "-images-idx3-ubyte"), img);
  std::vector<uint8_t> lab = idx_header(1, {n});
  for (uint32_t i = 0; i < n; ++i) lab.push_back(static_cast<uint8_t>(i % 10));
  write_bytes(dir / (prefix + "-labels-idx1-ubyte"), lab);
}

}  // namespace nash_test
