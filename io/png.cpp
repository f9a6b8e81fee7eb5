// PNG reading and writing through libpng's simplified API (png_image_*), which handles every colour type and bit
// depth and reports errors as messages rather than longjmp.
#include "nash/io/png.h"

#include <cerrno>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "nash/core/error.h"

#ifdef NASH_HAVE_PNG
#include <png.h>
#endif

namespace nash {
namespace io {

namespace {

// Generous for sample grids and plots, and keeps width * height * 3 far from overflowing anything.
constexpr int kMaxSide = 1 << 15;

void require_libpng(const char* op) {
  NASH_CHECK(png_available(), op, ": nash was built without libpng (Debian: apt-get install libpng-dev, then "
                                  "reconfigure)");
}

#ifdef NASH_HAVE_PNG
Image finish_read(png_image& img, int channels, const std::string& what) {
  if (channels == 0) channels = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image out;
  out.width = static_cast<int>(img.width);
  out.height = static_cast<int>(img.height);
  out.channels = channels;
  if (img.width > static_cast<png_uint_32>(kMaxSide) || img.height > static_cast<png_uint_32>(kMaxSide)) {
    png_image_free(&img);
    detail::fail("read_png: '", what, "' is ", img.width, " x ", img.height, " pixels; at most ", kMaxSide,
                 " a side are read");
  }
  out.pixels.resize(PNG_IMAGE_SIZE(img));
  png_color black{0, 0, 0};
  if (!png_image_finish_read(&img, &black, out.pixels.data(), 0, nullptr)) {
    const std::string msg = img.message;
    png_image_free(&img);
    detail::fail("read_png: '", what, "' is not a readable PNG: ", msg);
  }
  return out;
}
#endif

}  // namespace

bool png_available() {
#ifdef NASH_HAVE_PNG
  return true;
#else
  return false;
#endif
}

void write_png(const std::string& path, const Image& img) {
  NASH_CHECK(!path.empty(), "write_png: the path is empty");
  NASH_CHECK(img.width >= 1 && img.height >= 1 && img.width <= kMaxSide && img.height <= kMaxSide, "write_png: '",
             path, "': width and height must be in [1, ", kMaxSide, "], got ", img.width, " x ", img.height);
  NASH_CHECK(img.channels == 1 || img.channels == 3, "write_png: '", path, "': channels must be 1 (grey) or 3 (RGB), got ",
             img.channels);
  const std::size_t need = static_cast<std::size_t>(img.width) * img.height * img.channels;
  NASH_CHECK(img.pixels.size() == need, "write_png: '", path, "': a ", img.width, " x ", img.height, " x ",
             img.channels, " image needs ", need, " bytes, got ", img.pixels.size());
  require_libpng("write_png");
#ifdef NASH_HAVE_PNG
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());  // two writers of one path never collide
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  NASH_CHECK(f, "write_png: cannot open '", tmp, "' for writing: ", std::strerror(errno));
  png_image pi;
  std::memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = static_cast<png_uint_32>(img.width);
  pi.height = static_cast<png_uint_32>(img.height);
  pi.format = img.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const bool encoded = png_image_write_to_stdio(&pi, f, 0, img.pixels.data(), 0, nullptr) != 0;
  const std::string msg = encoded ? "" : pi.message;
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!encoded || !flushed || !closed) {
    std::remove(tmp.c_str());
    detail::fail("write_png: writing '", tmp, "' failed: ", encoded ? std::strerror(err) : msg);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    detail::fail("write_png: cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
#endif
}

void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb) {
  write_png(path, Image{width, height, 3, rgb});
}

Image read_png(const std::string& path, int channels) {
  NASH_CHECK(channels == 0 || channels == 1 || channels == 3, "read_png: '", path,
             "': channels must be 0, 1 or 3, got ", channels);
  require_libpng("read_png");
#ifdef NASH_HAVE_PNG
  std::FILE* f = std::fopen(path.c_str(), "rb");
  NASH_CHECK(f, "read_png: cannot open '", path, "': ", std::strerror(errno));
  std::fclose(f);
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str()))
    detail::fail("read_png: '", path, "' is not a readable PNG: ", img.message);
  return finish_read(img, channels, path);
#else
  return {};
#endif
}

Image decode_png(const std::vector<uint8_t>& bytes, const std::string& what, int channels) {
  NASH_CHECK(channels == 0 || channels == 1 || channels == 3, "decode_png: '", what,
             "': channels must be 0, 1 or 3, got ", channels);
  require_libpng("decode_png");
#ifdef NASH_HAVE_PNG
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size()))
    detail::fail("read_png: '", what, "' is not a readable PNG: ", img.message);
  return finish_read(img, channels, what);
#else
  return {};
#endif
}

}  // namespace io
}  // namespace nash
