// `nash sample`: images from the generator of a `nash fmnist` checkpoint (G, or its weight average G_ema), without
// training: a PNG grid, a folder of PNGs and/or a safetensors file of the images and their latents (each of which
// `nash fid` reads), with seeded latents, the truncation trick and latent interpolation. A library function and a
// subcommand.
#pragma once
#include <cstdint>
#include <string>

#include "apps/fmnist.h"
#include "nash/core/tensor.h"

namespace nash {
namespace apps {

struct SampleConfig {
  std::string checkpoint;     // a checkpoint.safetensors of `nash fmnist`
  bool ema = false;           // the weight average G_ema (a run with --g-ema) instead of G
  int64_t n = 64;             // images; with interpolate, rows of `interpolate` images each
  uint64_t seed = 0;          // the latents' stream
  double truncation = 0;      // > 0: every latent component drawn from N(0, 1) restricted to [-t, t] (BigGAN's trick)
  int64_t interpolate = 0;    // >= 2: each row walks a great circle between two latents in this many images
  // Class-conditional checkpoints (`nash fmnist --conditional`): every image of this class; -1: the classes in turn
  // (image i, or row i when interpolating, of class i mod 10). An unconditional checkpoint takes no class.
  int64_t label = -1;
  int64_t batch = 500;        // latents per forward pass
  std::string device = "auto";
  int threads = 0;            // CPU threads (0: the process default)
  // Outputs (at least one for the subcommand; none for a library call that only wants the tensors):
  std::string grid;           // one PNG of all images, `cols` per row
  int64_t cols = 0;           // 0: interpolate when interpolating, 10 for a conditional G's classes in turn, else 8
  int64_t scale = 2;          // grid pixels per image pixel
  std::string png_dir;        // one PNG per image, 000000.png, ... (the folder must hold no .png yet)
  std::string tensor;         // safetensors: "samples" (N, 1, 32, 32) in [-1, 1], "latents" (N, z_dim) and, for a
                              // conditional G, "labels" (N)

  // Every value checked (nash::Error naming the field and the value); outputs are not touched.
  void validate() const;
};

struct Samples {
  Tensor images;          // (N, 1, 32, 32) float32 on the CPU, in [-1, 1]
  Tensor latents;         // (N, z_dim) float32 on the CPU
  Tensor labels;          // (N) classes as float values on the CPU (conditional G), else undefined
  FmnistConfig model;     // the checkpoint's model flags
  int64_t step = 0;       // the checkpoint's step
  std::string weights;    // "G" or "G_ema"
  std::string device;
  double seconds = 0;     // loading and generating
};

// The latents sample_fmnist uses, on the CPU: n x z_dim independent draws, or with interpolate = K >= 2, n rows of K
// points t = 0, 1/(K-1), ..., 1 along the great circle between two draws (spherical interpolation; linear when the
// two are (anti)parallel within float precision), rows after one another. With truncation t > 0 each component of a
// draw is redrawn until |z| <= t. The same arguments give the same latents.
Tensor sample_latents(int64_t n, int64_t z_dim, uint64_t seed, double truncation = 0, int64_t interpolate = 0);

// Loads the checkpoint's G (or G_ema), puts it in eval mode (batch norm's running statistics) and generates. Errors
// name the checkpoint and what is wrong (not a `nash fmnist` checkpoint, no weight average, a mismatched tensor),
// and generated values that are not finite (a diverged checkpoint). Writes nothing.
Samples sample_fmnist(const SampleConfig& cfg);

// Writes cfg's outputs (each file atomically; PNG folder after checking it holds no PNG). Throws cli::OutputError
// naming a path that cannot be written.
void write_samples(const Samples& s, const SampleConfig& cfg);

// The subcommand: exit 0 ok, 1 the checkpoint cannot be used or G's output is not finite, 2 bad flags or an output
// that cannot be written.
int run_sample(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
