// Writing 8-bit RGB PNG images (zlib-compressed when zlib is available, stored deflate blocks otherwise), atomically.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nash {
namespace io {

// Writes a width x height 8-bit RGB image (rgb: row-major, 3 bytes a pixel, width * height * 3 bytes) to path as a
// PNG. The file is written to path + ".tmp" and renamed over path, so readers never see half a file. Throws
// nash::Error naming the file for a bad size or a path that cannot be written.
void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);

// The PNG file's bytes. compress = false writes stored (uncompressed) deflate blocks, which is also what happens
// when nash was built without zlib.
std::vector<uint8_t> encode_png(int width, int height, const std::vector<uint8_t>& rgb, bool compress = true);

// The checksums PNG uses (exposed for tests): CRC-32 (ISO 3309, as in chunk trailers) and zlib's Adler-32.
uint32_t png_crc32(const uint8_t* data, std::size_t n, uint32_t crc = 0);
uint32_t png_adler32(const uint8_t* data, std::size_t n, uint32_t adler = 1);

}  // namespace io
}  // namespace nash
