// Tests for BatchLoader: every index once per epoch, seeded orders, epoch reshuffles, drop_last and row gathering.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "nash/data/loader.h"
#include "support.h"

using nash::data::Batch;
using nash::data::BatchLoader;
using nash::data::LoaderOptions;

namespace {

// (n, 2, 3) images whose every element encodes its row (row * 10 + position), and labels = row % 10.
void dataset(int64_t n, nash::Tensor* images, nash::Tensor* labels) {
  std::vector<float> x(static_cast<std::size_t>(n * 6)), y(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 6; ++j) x[i * 6 + j] = static_cast<float>(i * 10 + j);
    y[i] = static_cast<float>(i % 10);
  }
  *images = nash::from_vector(x, {n, 2, 3});
  *labels = nash::from_vector(y, {n});
}

// All indices of one epoch, checking each batch's rows and labels against its indices.
std::vector<int64_t> drain(BatchLoader& l, std::vector<int64_t>* sizes = nullptr) {
  std::vector<int64_t> all;
  Batch b;
  while (l.next(&b)) {
    const int64_t bs = static_cast<int64_t>(b.indices.size());
    EXPECT_EQ(b.images.shape(), (nash::Shape{bs, 2, 3}));
    std::vector<float> x = b.images.to_vector<float>(), y = b.labels.to_vector<float>();
    for (int64_t k = 0; k < bs; ++k) {
      const int64_t i = b.indices[k];
      for (int64_t j = 0; j < 6; ++j) EXPECT_EQ(x[k * 6 + j], static_cast<float>(i * 10 + j));
      EXPECT_EQ(y[k], static_cast<float>(i % 10));
    }
    all.insert(all.end(), b.indices.begin(), b.indices.end());
    if (sizes) sizes->push_back(bs);
  }
  return all;
}

}  // namespace

TEST(Loader, EveryIndexOncePerEpoch) {
  nash::Tensor x, y;
  dataset(103, &x, &y);
  LoaderOptions o;
  o.batch_size = 16;
  o.seed = 7;
  BatchLoader l(x, y, o);
  EXPECT_EQ(l.batches_per_epoch(), 7);
  for (int64_t e = 0; e < 3; ++e) {
    l.start_epoch(e);
    std::vector<int64_t> sizes;
    std::vector<int64_t> idx = drain(l, &sizes);
    ASSERT_EQ(sizes.size(), 7u);
    EXPECT_EQ(sizes.back(), 103 - 6 * 16);
    std::vector<int64_t> sorted = idx;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 103; ++i) ASSERT_EQ(sorted[i], i) << "epoch " << e;
    EXPECT_NE(idx, sorted) << "epoch " << e << " was not shuffled";
  }
}

TEST(Loader, SameSeedSameOrderAndEpochsDiffer) {
  nash::Tensor x, y;
  dataset(64, &x, &y);
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 123;
  BatchLoader a(x, y, o), b(x, y, o);
  std::vector<int64_t> a0 = drain(a), b0 = drain(b);
  EXPECT_EQ(a0, b0);
  a.start_epoch(1);
  std::vector<int64_t> a1 = drain(a);
  EXPECT_NE(a0, a1);
  // An epoch's order depends on (seed, epoch) alone, not on what ran before.
  b.start_epoch(5);
  drain(b);
  b.start_epoch(1);
  EXPECT_EQ(drain(b), a1);
  EXPECT_EQ(nash::data::epoch_permutation(64, 123, 1), a1);
  o.seed = 124;
  BatchLoader c(x, y, o);
  EXPECT_NE(drain(c), a0);
}

TEST(Loader, DropLastAndNoShuffle) {
  nash::Tensor x, y;
  dataset(25, &x, &y);
  LoaderOptions o;
  o.batch_size = 8;
  o.drop_last = true;
  BatchLoader l(x, y, o);
  EXPECT_EQ(l.batches_per_epoch(), 3);
  std::vector<int64_t> sizes;
  std::vector<int64_t> idx = drain(l, &sizes);
  EXPECT_EQ(sizes, (std::vector<int64_t>{8, 8, 8}));
  EXPECT_EQ(idx.size(), 24u);
  o.shuffle = false;
  o.drop_last = false;
  BatchLoader s(x, y, o);
  std::vector<int64_t> in_order = drain(s);
  for (int64_t i = 0; i < 25; ++i) EXPECT_EQ(in_order[i], i);
}

TEST(Loader, WithoutLabelsAndBadArguments) {
  nash::Tensor x, y;
  dataset(5, &x, &y);
  LoaderOptions o;
  o.batch_size = 2;
  BatchLoader l(x, nash::Tensor(), o);
  Batch b;
  ASSERT_TRUE(l.next(&b));
  EXPECT_FALSE(b.labels.defined());
  nash_test::expect_error([&] { BatchLoader(x, nash::zeros({4}), o); }, {"BatchLoader", "labels must be (5)"});
  o.batch_size = 0;
  nash_test::expect_error([&] { BatchLoader(x, y, o); }, {"batch_size must be >= 1"});
  o.batch_size = 6;
  o.drop_last = true;
  nash_test::expect_error([&] { BatchLoader(x, y, o); }, {"drop_last", "batch_size 6 > 5"});
}

TEST(Loader, SeekContinuesWhereAnUninterruptedRunWouldBe) {
  nash::Tensor images, labels;
  dataset(23, &images, &labels);
  LoaderOptions o;
  o.batch_size = 4;
  o.drop_last = true;
  o.seed = 11;
  // Reference: 12 batches in a row over epochs of 5 batches, starting each epoch when the last one runs dry.
  BatchLoader a(images, labels, o);
  std::vector<std::vector<int64_t>> seq;
  Batch b;
  while (seq.size() < 12) {
    if (!a.next(&b)) {
      a.start_epoch(a.epoch() + 1);
      continue;
    }
    seq.push_back(b.indices);
  }
  for (int64_t k : {0, 3, 5, 7, 10}) {
    BatchLoader c(images, labels, o);
    c.seek(k);
    for (std::size_t i = static_cast<std::size_t>(k); i < seq.size(); ++i) {
      if (!c.next(&b)) {
        c.start_epoch(c.epoch() + 1);
        ASSERT_TRUE(c.next(&b));
      }
      EXPECT_EQ(b.indices, seq[i]) << "seek " << k << ", batch " << i;
    }
  }
  BatchLoader c(images, labels, o);
  EXPECT_THROW(c.seek(-1), nash::Error);
}
