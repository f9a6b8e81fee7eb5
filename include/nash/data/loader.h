// A seeded shuffling batch loader over an in-memory image tensor and its labels, reshuffled every epoch.
#pragma once
#include <cstdint>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace data {

struct Batch {
  Tensor images;                 // (B, ...) rows of the loader's images, float32, on the loader's device
  Tensor labels;                 // (B) when the loader has labels, else undefined
  std::vector<int64_t> indices;  // which rows of the dataset, in batch order
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;     // false: rows in dataset order every epoch
  bool drop_last = false;  // drop the last, smaller batch of an epoch
  uint64_t seed = 0;       // with the epoch number, fixes the order: epoch e's order depends on (seed, e) alone
  Device device = Device::cpu();
};

class BatchLoader {
 public:
  // images: (N, ...) on the CPU; labels: (N) or undefined. Both are made contiguous once (no copy when they are).
  BatchLoader(const Tensor& images, const Tensor& labels, LoaderOptions opt);

  int64_t num_samples() const { return n_; }
  int64_t batches_per_epoch() const;
  int64_t epoch() const { return epoch_; }
  const LoaderOptions& options() const { return opt_; }

  // Starts epoch e (0, 1, ...): draws its order, which is the same for the same (seed, e) whatever came before.
  void start_epoch(int64_t e);
  // The next batch of the current epoch into *out; false when the epoch is exhausted (then call start_epoch).
  bool next(Batch* out);
  // Continues a run after `batches` batches in all (from epoch 0): starts the epoch they end in and skips that
  // epoch's batches already taken, without gathering them. A resumed run then sees the batches an uninterrupted
  // one would.
  void seek(int64_t batches);
  // Batches taken from the current epoch so far.
  int64_t batches_taken() const;
  // The whole order of the current epoch (for tests).
  const std::vector<int64_t>& order() const { return order_; }

 private:
  Tensor images_, labels_;
  LoaderOptions opt_;
  int64_t n_ = 0, row_ = 0;  // samples, and elements per sample
  int64_t epoch_ = 0, pos_ = 0;
  std::vector<int64_t> order_;
};

// The order of epoch e for n samples under seed (a Fisher-Yates permutation from a Philox stream keyed by (seed, e)).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace data
}  // namespace nash
