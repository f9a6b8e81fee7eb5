// `nash spectrum`: the squared singular values of a discriminator's weight matrices in a checkpoint, as the
// SN-GAN paper plots them (sorted descending, normalised by the largest), to a CSV, one PNG per layer and a summary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace apps {

struct LayerSpectrum {
  std::string name;          // the weight's tensor name in the checkpoint, e.g. "D.0.module.weight"
  Shape shape;               // the stored tensor's shape
  int64_t rows = 0, cols = 0;  // the matrix the SVD ran on: (size(0), numel / size(0))
  bool weight_normalized = false;  // g · V / ‖V‖ assembled from a WeightNorm layer's "<x>.weight_g"
  std::vector<double> sigma_sq;    // squared singular values, descending

  double sigma_max() const;
  // (Σσ²)² / Σσ⁴: the participation ratio of the plotted spectrum, from 1 (one direction) to min(rows, cols) (flat).
  double effective_rank() const;
  // How many σ² are above 1% of the largest.
  int64_t count_above(double fraction_of_max = 0.01) const;
};

// The spectrum of every tensor in a safetensors checkpoint whose name starts with `prefix` (and, unless the prefix
// does, not with "optim."), whose last name component is "weight" and whose dim is >= 2, in file order. Each
// weight is read as the (size(0), rest) matrix: dim 0 as rows, which is a Linear's or Conv2d's output units; a
// ConvTranspose2d's (in, out, kh, kw) weight cannot be told apart in the file, so it too is read with dim 0 (its
// input channels) as rows. A WeightNorm layer's direction "<x>.module.weight" is combined with its "<x>.weight_g"
// into the weight the layer runs with; other weights (SpectralNorm's included: W/σ only rescales the spectrum) are
// taken as stored. Throws nash::Error when the file cannot be read or holds no such weight.
std::vector<LayerSpectrum> checkpoint_spectra(const std::string& path, const std::string& prefix = "D.");

// The subcommand: exit 0 ok, 1 the checkpoint cannot be read (or holds no matching weight), 2 bad flags or an
// output directory that cannot be written.
int run_spectrum(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
