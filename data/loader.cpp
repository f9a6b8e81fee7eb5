// BatchLoader: per-epoch permutations keyed by (seed, epoch), batches gathered row by row into fresh tensors.
#include "nash/data/loader.h"

#include <cstring>

#include "nash/core/random.h"

namespace nash {
namespace data {

namespace {
// SplitMix64's finaliser: spreads (seed, epoch) over the key so nearby seeds and epochs give unrelated streams.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Rows idx of a contiguous float32 (N, ...) tensor into a new (B, ...) tensor.
Tensor gather_rows(const Tensor& src, const std::vector<int64_t>& idx, std::size_t begin, std::size_t end,
                   int64_t row) {
  Shape s = src.shape();
  s[0] = static_cast<int64_t>(end - begin);
  Tensor out = empty(s, DType::Float32);
  const float* in = src.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (std::size_t i = begin; i < end; ++i)
    std::memcpy(o + (i - begin) * row, in + idx[i] * row, sizeof(float) * static_cast<std::size_t>(row));
  return out;
}
}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  Generator g(mix(seed ^ mix(static_cast<uint64_t>(epoch))));
  return randperm(n, &g);
}

BatchLoader::BatchLoader(const Tensor& images, const Tensor& labels, LoaderOptions opt) : opt_(opt) {
  NASH_CHECK(images.defined() && images.dim() >= 1 && images.size(0) >= 1, "BatchLoader: images must be (N, ...) "
             "with N >= 1, got ", shape_str(images));
  NASH_CHECK(images.device().is_cpu() && images.dtype() == DType::Float32, "BatchLoader: images must be float32 on "
             "the CPU, got ", images.str());
  NASH_CHECK(opt_.batch_size >= 1, "BatchLoader: batch_size must be >= 1, got ", opt_.batch_size);
  n_ = images.size(0);
  row_ = images.numel() / n_;
  images_ = images.detach().contiguous();
  if (labels.defined()) {
    NASH_CHECK(labels.dim() == 1 && labels.size(0) == n_, "BatchLoader: labels must be (", n_,
               ") to match images ", shape_str(images.shape()), ", got ", shape_str(labels.shape()));
    NASH_CHECK(labels.device().is_cpu() && labels.dtype() == DType::Float32, "BatchLoader: labels must be float32 "
               "on the CPU, got ", labels.str());
    labels_ = labels.detach().contiguous();
  }
  NASH_CHECK(!opt_.drop_last || opt_.batch_size <= n_, "BatchLoader: drop_last with batch_size ", opt_.batch_size,
             " > ", n_, " samples would give no batch at all");
  start_epoch(0);
}

int64_t BatchLoader::batches_per_epoch() const {
  return opt_.drop_last ? n_ / opt_.batch_size : (n_ + opt_.batch_size - 1) / opt_.batch_size;
}

void BatchLoader::start_epoch(int64_t e) {
  NASH_CHECK(e >= 0, "BatchLoader::start_epoch: epoch must be >= 0, got ", e);
  epoch_ = e;
  pos_ = 0;
  if (opt_.shuffle) {
    order_ = epoch_permutation(n_, opt_.seed, e);
  } else {
    order_.resize(static_cast<std::size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) order_[i] = i;
  }
}

void BatchLoader::seek(int64_t batches) {
  NASH_CHECK(batches >= 0, "BatchLoader::seek: batches must be >= 0, got ", batches);
  const int64_t per = batches_per_epoch();
  start_epoch(batches / per);
  const int64_t k = batches % per;  // full batches only: every batch but an epoch's last is batch_size long
  pos_ = k * opt_.batch_size;
}

int64_t BatchLoader::batches_taken() const { return (pos_ + opt_.batch_size - 1) / opt_.batch_size; }

bool BatchLoader::next(Batch* out) {
  NASH_CHECK(out != nullptr, "BatchLoader::next: out is null");
  const int64_t left = n_ - pos_;
  if (left <= 0 || (opt_.drop_last && left < opt_.batch_size)) return false;
  const int64_t b = std::min(left, opt_.batch_size);
  const std::size_t begin = static_cast<std::size_t>(pos_), end = begin + static_cast<std::size_t>(b);
  const auto first = order_.begin() + static_cast<std::ptrdiff_t>(begin);
  out->indices.assign(first, first + b);
  out->images = gather_rows(images_, order_, begin, end, row_);
  out->labels = labels_.defined() ? gather_rows(labels_, order_, begin, end, 1) : Tensor();
  if (!opt_.device.is_cpu()) {
    out->images = out->images.to(opt_.device);
    if (out->labels.defined()) out->labels = out->labels.to(opt_.device);
  }
  pos_ += b;
  return true;
}

}  // namespace data
}  // namespace nash
