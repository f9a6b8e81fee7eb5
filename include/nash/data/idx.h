// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, and the Fashion-MNIST splits as tensors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace data {

// IDX element types, by their code in the third magic byte.
enum class IdxType : uint8_t { UByte = 0x08, SByte = 0x09, Int16 = 0x0B, Int32 = 0x0C, Float32 = 0x0D, Float64 = 0x0E };
const char* idx_type_name(IdxType t);
std::size_t idx_type_size(IdxType t);

// One IDX array: its dimensions and its elements as stored (big-endian for the multi-byte types).
struct IdxArray {
  IdxType type = IdxType::UByte;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // numel() * idx_type_size(type) bytes
  int64_t numel() const;
};

// Parses the bytes of an (uncompressed) IDX file. Every malformed input is a nash::Error naming `what` and the
// problem: a short header, a bad magic number (non-zero first bytes, unknown type, zero dimensions), a zero or
// overflowing dimension, data shorter (truncated) or longer than the dimensions say.
IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& what);

// Reads an IDX file; gzip-compressed files (recognised by their magic bytes, whatever the name) are inflated through
// zlib, and a truncated or corrupt gzip stream is an error naming the file. In a build without zlib, a gzip file is
// an error saying so. A missing or unreadable file is an error naming it.
IdxArray read_idx(const std::string& path);

// The raw bytes of a file, inflated when it is gzip-compressed (the reader under read_idx; errors as there).
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

// Images from a UByte IDX array of dims (N, H, W): a float32 (N, 1, H, W) tensor scaled from [0, 255] to [-1, 1]
// (0 -> -1, 255 -> 1). pad_to >= H, W pads each image symmetrically to pad_to x pad_to with the background value
// -1 (Fashion-MNIST's 28 -> 32: 2 pixels each side); pad_to = 0 keeps the size. `what` names the source in errors.
Tensor idx_to_images(const IdxArray& a, const std::string& what, int64_t pad_to = 0);
// Labels from a UByte IDX array of dims (N): float32 (N) class indices, each checked to be < num_classes.
Tensor idx_to_labels(const IdxArray& a, const std::string& what, int64_t num_classes = 10);

// Where Debian's dataset-fashion-mnist package puts the four files.
const char* default_fashion_mnist_dir();

enum class Split { Train, Test };

struct ImageDataset {
  Tensor images;  // float32 (N, 1, S, S) in [-1, 1], on the CPU
  Tensor labels;  // float32 (N) class indices 0..9
};

struct FashionMnistOptions {
  std::string dir;      // empty: default_fashion_mnist_dir()
  int64_t pad_to = 0;   // 0: 28 x 28; 32: padded to 32 x 32 with -1
  int64_t limit = 0;    // > 0: only the first `limit` examples (tests, smoke runs)
};

// The file of a split ("train-images-idx3-ubyte" / "t10k-labels-idx1-ubyte" ...) in dir, with ".gz" or without
// (the compressed name is tried first). Throws naming both candidates when neither exists.
std::string fashion_mnist_file(const std::string& dir, Split split, bool labels);

// Reads a split (Fashion-MNIST has 60000 train and 10000 test examples): 28 x 28 UByte images and UByte labels,
// checked to agree in count, with labels in 0..9. Errors name the file and what was wrong, and say how to point
// --data elsewhere.
ImageDataset load_fashion_mnist(Split split, const FashionMnistOptions& opt = {});

}  // namespace data
}  // namespace nash
