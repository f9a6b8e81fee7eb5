// PNG through libpng: RGB and grey files read back to the same pixels, conversions, and errors naming the file.
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
using nash_test::PngImage;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_png", name); }

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

#define NASH_REQUIRE_LIBPNG() \
  if (!nash::io::png_available()) GTEST_SKIP() << "nash was built without libpng"

}  // namespace

TEST(Png, WritesAFileThatDecodesToTheSamePixels) {
  NASH_REQUIRE_LIBPNG();
  fs::path dir = temp_dir("roundtrip");
  for (auto [w, h] : {std::pair<int, int>{1, 1}, {17, 5}, {64, 48}}) {
    std::vector<uint8_t> rgb = test_image(w, h, static_cast<uint32_t>(w * 31 + h));
    const std::string path = (dir / ("img" + std::to_string(w) + ".png")).string();
    nash::io::write_png(path, w, h, rgb);
    PngImage img = nash_test::read_png(path);
    EXPECT_EQ(img.width, w);
    EXPECT_EQ(img.height, h);
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

// Grey images (sample grids of one-channel data) stay grey, and read as RGB with three equal channels.
TEST(Png, GreyImagesAndChannelConversion) {
  NASH_REQUIRE_LIBPNG();
  fs::path dir = temp_dir("grey");
  nash::io::Image g{5, 3, 1, {}};
  for (int i = 0; i < 15; ++i) g.pixels.push_back(static_cast<uint8_t>(i * 17));
  const std::string path = (dir / "g.png").string();
  nash::io::write_png(path, g);
  nash::io::Image back = nash::io::read_png(path);
  EXPECT_EQ(back.channels, 1);
  EXPECT_EQ(back.pixels, g.pixels);
  nash::io::Image rgb = nash::io::read_png(path, 3);
  ASSERT_EQ(rgb.channels, 3);
  for (int i = 0; i < 15; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(rgb.pixels[3 * i + c], g.pixels[i]);
  fs::remove_all(dir);
}

TEST(Png, CorruptMissingAndTruncatedFilesNameTheFile) {
  NASH_REQUIRE_LIBPNG();
  fs::path dir = temp_dir("corrupt");
  const std::string path = (dir / "c.png").string();
  nash::io::write_png(path, 40, 30, test_image(40, 30, 3));
  std::vector<uint8_t> bytes = nash_test::read_file_bytes(path);
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2));
  nash_test::expect_error([&] { nash::io::decode_png(cut, "half.png"); }, {"half.png", "not a readable PNG"});
  std::vector<uint8_t> junk(100, 7);
  nash_test::expect_error([&] { nash::io::decode_png(junk, "junk.png"); }, {"junk.png", "not a readable PNG"});
  nash_test::expect_error([&] { nash::io::read_png((dir / "none.png").string()); }, {"read_png", "none.png", "cannot open"});
  nash_test::expect_error([&] { nash::io::read_png(path, 2); }, {"channels", "2"});
  fs::remove_all(dir);
}

TEST(Png, BadSizeThrowsNamingTheFile) {
  fs::path dir = temp_dir("bad");
  const std::string path = (dir / "x.png").string();
  nash_test::expect_error([&] { nash::io::write_png(path, 0, 4, {}); }, {"write_png", "x.png", "width"});
  nash_test::expect_error([&] { nash::io::write_png(path, 4, -1, {}); }, {"x.png", "4 x -1"});
  nash_test::expect_error([&] { nash::io::write_png(path, 2, 2, std::vector<uint8_t>(11)); },
                          {"x.png", "needs 12 bytes, got 11"});
  nash_test::expect_error([&] { nash::io::write_png(path, 1 << 20, 1, {}); }, {"x.png", "width"});
  nash_test::expect_error([&] { nash::io::write_png(path, nash::io::Image{2, 2, 2, std::vector<uint8_t>(8)}); },
                          {"x.png", "channels"});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove_all(dir);
}

TEST(Png, UnwritablePathThrowsNamingTheFile) {
  NASH_REQUIRE_LIBPNG();
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
