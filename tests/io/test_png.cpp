// Tests for the PNG writer: files decode back to the same pixels (compressed and stored), checksums, errors.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/png_reader.h"
#include "nash/core/error.h"
#include "nash/io/png.h"
#include "support.h"

namespace fs = std::filesystem;
using nash_test::decode_png;
using nash_test::PngImage;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("nash_test_png_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A deterministic image with gradients and noise, so a wrong row stride or channel order shows.
std::vector<uint8_t> test_image(int w, int h, uint32_t seed) {
  std::vector<uint8_t> rgb(static_cast<std::size_t>(w) * h * 3);
  uint32_t s = seed;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      s = s * 1664525u + 1013904223u;
      uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 7 + y);
      p[1] = static_cast<uint8_t>(y * 13);
      p[2] = static_cast<uint8_t>(s >> 24);
    }
  return rgb;
}

}  // namespace

TEST(Png, ChecksumsMatchKnownValues) {
  const std::string s = "123456789";  // the standard check string of both algorithms
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  EXPECT_EQ(nash::io::png_crc32(p, s.size()), 0xcbf43926u);
  EXPECT_EQ(nash::io::png_adler32(p, s.size()), 0x091e01deu);
  // Incremental use gives the same result.
  EXPECT_EQ(nash::io::png_crc32(p + 4, 5, nash::io::png_crc32(p, 4)), 0xcbf43926u);
  EXPECT_EQ(nash::io::png_adler32(p + 4, 5, nash::io::png_adler32(p, 4)), 0x091e01deu);
  // Adler-32 over more than one 5552-byte run: against a direct (slow, exact) evaluation.
  std::vector<uint8_t> big(20000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(255 - i % 251);
  uint64_t a = 1, b = 0;
  for (uint8_t v : big) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  EXPECT_EQ(nash::io::png_adler32(big.data(), big.size()), static_cast<uint32_t>((b << 16) | a));
}

TEST(Png, WritesAFileThatDecodesToTheSamePixels) {
  fs::path dir = temp_dir("roundtrip");
  for (auto [w, h] : {std::pair<int, int>{1, 1}, {17, 5}, {64, 48}}) {
    std::vector<uint8_t> rgb = test_image(w, h, static_cast<uint32_t>(w * 31 + h));
    const std::string path = (dir / ("img" + std::to_string(w) + ".png")).string();
    nash::io::write_png(path, w, h, rgb);
    PngImage img = nash_test::read_png(path);
    EXPECT_EQ(img.width, w);
    EXPECT_EQ(img.height, h);
    EXPECT_EQ(img.chunks, 3);  // IHDR, IDAT, IEND
    EXPECT_EQ(img.rgb, rgb) << w << "x" << h;
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
  // Overwriting an existing file replaces it.
  const std::string path = (dir / "img1.png").string();
  nash::io::write_png(path, 2, 1, {255, 0, 0, 0, 0, 255});
  PngImage img = nash_test::read_png(path);
  EXPECT_EQ(img.width, 2);
  EXPECT_EQ(img.at(0, 0), 0xff0000u);
  EXPECT_EQ(img.at(1, 0), 0x0000ffu);
  fs::remove_all(dir);
}

// The zlib-less path: stored deflate blocks, more than one of them (each holds at most 65535 bytes).
TEST(Png, StoredBlocksDecode) {
  const int w = 200, h = 150;  // 150 * 601 bytes of scanlines: two stored blocks
  std::vector<uint8_t> rgb = test_image(w, h, 7);
  std::vector<uint8_t> bytes = nash::io::encode_png(w, h, rgb, /*compress=*/false);
  EXPECT_GT(bytes.size(), rgb.size());
  PngImage img = decode_png(bytes);
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.height, h);
  EXPECT_EQ(img.rgb, rgb);
  // Corrupting one data byte breaks the chunk CRC, and the reader notices.
  bytes[bytes.size() / 2] ^= 0x5a;
  EXPECT_THROW(decode_png(bytes), std::runtime_error);
#ifdef NASH_HAVE_ZLIB
  // Compression helps on a flat image.
  std::vector<uint8_t> flat(static_cast<std::size_t>(w) * h * 3, 200);
  EXPECT_LT(nash::io::encode_png(w, h, flat).size(), nash::io::encode_png(w, h, flat, false).size() / 20);
  EXPECT_EQ(decode_png(nash::io::encode_png(w, h, flat)).rgb, flat);
#endif
}

TEST(Png, BadSizeThrowsNamingTheFile) {
  fs::path dir = temp_dir("bad");
  const std::string path = (dir / "x.png").string();
  nash_test::expect_error([&] { nash::io::write_png(path, 0, 4, {}); }, {"write_png", "x.png", "width"});
  nash_test::expect_error([&] { nash::io::write_png(path, 4, -1, {}); }, {"x.png", "4 x -1"});
  nash_test::expect_error([&] { nash::io::write_png(path, 2, 2, std::vector<uint8_t>(11)); },
                          {"x.png", "needs 12 bytes, got 11"});
  nash_test::expect_error([&] { nash::io::write_png(path, 1 << 20, 1, {}); }, {"x.png", "width"});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove_all(dir);
}

TEST(Png, UnwritablePathThrowsNamingTheFile) {
  fs::path dir = temp_dir("unwritable");
  std::vector<uint8_t> rgb = test_image(3, 3, 1);
  const std::string missing = (dir / "no" / "such" / "dir" / "a.png").string();
  nash_test::expect_error([&] { nash::io::write_png(missing, 3, 3, rgb); }, {"write_png", "no/such/dir/a.png"});
  // A directory where the file should go: the temp file is written, the rename fails and the temp file is removed.
  fs::create_directories(dir / "taken.png");
  fs::create_directories(dir / "taken.png" / "child");
  const std::string taken = (dir / "taken.png").string();
  nash_test::expect_error([&] { nash::io::write_png(taken, 3, 3, rgb); }, {"write_png", "taken.png"});
  EXPECT_FALSE(fs::exists(taken + ".tmp"));
  nash_test::expect_error([&] { nash::io::write_png("", 3, 3, rgb); }, {"write_png", "empty"});
  fs::remove_all(dir);
}
