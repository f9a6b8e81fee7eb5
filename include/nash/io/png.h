// PNG images through libpng: 8-bit grey or RGB, written atomically (temp file + rename) and read with conversion.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nash {
namespace io {

// An 8-bit image, row-major with interleaved channels (1: grey, 3: RGB): width * height * channels bytes.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Whether nash was built with libpng (Debian: libpng-dev); without it the functions below throw saying so.
bool png_available();

// Writes img to path as a PNG: to path + ".tmp", then renamed over path, so readers never see half a file. Throws
// nash::Error naming the file for a bad size or channel count, or a path that cannot be written.
void write_png(const std::string& path, const Image& img);
// The same for an RGB image given as its bytes (width * height * 3).
void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);

// Reads a PNG of any colour type and bit depth, converted to `channels` (1 grey, 3 RGB; 0 keeps grey as grey and
// makes everything else RGB); alpha is composited over black. Throws nash::Error naming the file (or `what` for
// bytes in memory) and libpng's reason for a missing, truncated or corrupt file.
Image read_png(const std::string& path, int channels = 0);
Image decode_png(const std::vector<uint8_t>& bytes, const std::string& what, int channels = 0);

}  // namespace io
}  // namespace nash
