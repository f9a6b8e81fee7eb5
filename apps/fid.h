// `nash fid`: the FID between two image sets (IDX files, folders of PNGs or sample tensor files) under the
// Fashion-MNIST feature network that `nash classifier` trains.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace apps {

// Reads an image set as float32 (N, 1, H, W) in [-1, 1] on the CPU, whatever its form:
//  - an IDX images file (ubyte (N, H, W); gzip-compressed or plain), scaled from [0, 255];
//  - a directory of .png files (read in name order; any bit depth or colour type, converted to 8-bit grey through
//    libpng), all of one size, scaled from [0, 255];
//  - a safetensors file holding one float tensor (or one named "samples" or "images") of shape (N, 1, H, W) or
//    (N, H, W) with values in [-1, 1].
// limit > 0 keeps the first `limit` images. Errors name the path and what was wrong.
Tensor load_image_set(const std::string& path, int64_t limit = 0);

// The regular .png files (any case of the extension) directly in a directory, in name order: the images a PNG image
// set holds.
std::vector<std::string> png_files(const std::string& dir);

// Reads the class labels of an image set as float32 (N) class indices on the CPU: an IDX labels file (ubyte (N);
// gzip-compressed or plain; values 0..9) or a safetensors file with a (N) tensor named "labels" (what
// `nash sample --tensor` writes for a conditional G). limit > 0 keeps the first `limit`. Errors name the path.
Tensor load_label_set(const std::string& path, int64_t limit = 0);

// The subcommand: exit 0 ok, 1 runtime failure (unreadable sets, too few images), 2 bad flags.
int run_fid(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
