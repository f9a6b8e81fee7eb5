// Tests for the IDX reader: good plain and gzip files, every kind of corrupt file, scaling/padding and Fashion-MNIST.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nash/data/idx.h"
#include "support.h"

#ifdef NASH_HAVE_ZLIB
#include <zlib.h>
#endif

namespace fs = std::filesystem;
using nash::data::IdxArray;
using nash::data::IdxType;
using Bytes = std::vector<uint8_t>;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_idx", name); }

void put32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

// An IDX file's bytes: magic 0x0000TTDD, dims, then `data`.
Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes b{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) put32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// Pseudo-random, never-constant bytes.
Bytes pattern(std::size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 12345u;
  for (auto& v : b) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(x >> 24);
  }
  return b;
}

void write(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

#ifdef NASH_HAVE_ZLIB
Bytes gzip(const Bytes& in) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}
#endif

// A tiny Fashion-MNIST lookalike in dir: n images of 28x28 and labels 0..9 cycling.
void write_fake_fmnist(const fs::path& dir, const std::string& prefix, uint32_t n, bool gz) {
  Bytes img = idx_bytes(0x08, {n, 28, 28}, pattern(n * 784, n));
  Bytes lab;
  for (uint32_t i = 0; i < n; ++i) lab.push_back(static_cast<uint8_t>(i % 10));
  lab = idx_bytes(0x08, {n}, lab);
  std::string ext;
#ifdef NASH_HAVE_ZLIB
  if (gz) {
    img = gzip(img);
    lab = gzip(lab);
    ext = ".gz";
  }
#endif
  write(dir / (prefix + "-images-idx3-ubyte" + ext), img);
  write(dir / (prefix + "-labels-idx1-ubyte" + ext), lab);
}

}  // namespace

TEST(Idx, ParsesUByteAndMultiByteTypes) {
  Bytes data = pattern(3 * 4 * 5, 1);
  IdxArray a = nash::data::parse_idx(idx_bytes(0x08, {3, 4, 5}, data), "mem");
  EXPECT_EQ(a.type, IdxType::UByte);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(a.numel(), 60);
  EXPECT_EQ(a.data, data);

  IdxArray b = nash::data::parse_idx(idx_bytes(0x0C, {2, 3}, pattern(24, 2)), "mem");
  EXPECT_EQ(b.type, IdxType::Int32);
  EXPECT_EQ(b.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b.data.size(), 24u);
}

TEST(Idx, ReadsPlainFile) {
  fs::path d = temp_dir("plain");
  Bytes data = pattern(2 * 6 * 7, 3);
  write(d / "x-idx3-ubyte", idx_bytes(0x08, {2, 6, 7}, data));
  IdxArray a = nash::data::read_idx((d / "x-idx3-ubyte").string());
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 6, 7}));
  EXPECT_EQ(a.data, data);
  fs::remove_all(d);
}

#ifdef NASH_HAVE_ZLIB
// A small gzip file whose header declares 10 bytes of data but which inflates to 64 MiB: the reader stops as soon as
// the output passes the declared size instead of inflating everything (a decompression bomb).
TEST(Idx, GzipInflatingPastItsHeaderStopsEarly) {
  fs::path d = temp_dir("bomb");
  Bytes file = idx_bytes(0x08, {10}, pattern(10, 1));
  file.resize(file.size() + (std::size_t(64) << 20), 0);
  const Bytes z = gzip(file);
  ASSERT_LT(z.size(), std::size_t(1) << 20);
  write(d / "bomb.gz", z);
  nash_test::expect_error([&] { nash::data::read_idx((d / "bomb.gz").string()); },
                          {"bomb.gz", "inflates to more than the 18 bytes its header declares"});
  fs::remove_all(d);
}

TEST(Idx, ReadsGzipFileAndConcatenatedMembers) {
  fs::path d = temp_dir("gz");
  Bytes data = pattern(5 * 28 * 28, 4);
  Bytes file = idx_bytes(0x08, {5, 28, 28}, data);
  write(d / "a.gz", gzip(file));
  EXPECT_EQ(nash::data::read_idx((d / "a.gz").string()).data, data);
  // The same bytes as two gzip members back to back (what `cat a.gz b.gz` gives).
  Bytes head(file.begin(), file.begin() + 1000), tail(file.begin() + 1000, file.end());
  Bytes two = gzip(head), t = gzip(tail);
  two.insert(two.end(), t.begin(), t.end());
  write(d / "two.gz", two);
  EXPECT_EQ(nash::data::read_idx((d / "two.gz").string()).data, data);
  // Compression is recognised by content, not by name.
  write(d / "plain.gz", file);
  EXPECT_EQ(nash::data::read_idx((d / "plain.gz").string()).data, data);
  fs::remove_all(d);
}

TEST(Idx, CorruptGzipIsAnErrorNamingTheFile) {
  fs::path d = temp_dir("badgz");
  Bytes gz = gzip(idx_bytes(0x08, {4, 28, 28}, pattern(4 * 784, 5)));
  Bytes truncated(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  write(d / "trunc.gz", truncated);
  nash_test::expect_error([&] { nash::data::read_idx((d / "trunc.gz").string()); },
                          {"trunc.gz", "truncated gzip stream"});
  Bytes no_trailer(gz.begin(), gz.end() - 4);
  write(d / "notrailer.gz", no_trailer);
  nash_test::expect_error([&] { nash::data::read_idx((d / "notrailer.gz").string()); },
                          {"notrailer.gz", "truncated gzip"});
  Bytes flipped = gz;
  for (std::size_t i = 20; i < 40; ++i) flipped[i] ^= 0x5a;
  write(d / "flipped.gz", flipped);
  nash_test::expect_error([&] { nash::data::read_idx((d / "flipped.gz").string()); }, {"flipped.gz", "corrupt gzip"});
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0xff;  // inside the CRC-32 of the trailer
  write(d / "crc.gz", bad_crc);
  nash_test::expect_error([&] { nash::data::read_idx((d / "crc.gz").string()); }, {"crc.gz", "corrupt gzip"});
  fs::remove_all(d);
}
#endif

TEST(Idx, BadMagicNumbers) {
  Bytes data = pattern(12, 6);
  Bytes b = idx_bytes(0x08, {3, 4}, data);
  b[0] = 1;
  nash_test::expect_error([&] { nash::data::parse_idx(b, "f1"); }, {"f1", "bad magic number", "0x01000802"});
  b = idx_bytes(0x07, {3, 4}, data);
  nash_test::expect_error([&] { nash::data::parse_idx(b, "f2"); }, {"f2", "bad magic number"});
  b = idx_bytes(0x08, {}, data);
  nash_test::expect_error([&] { nash::data::parse_idx(b, "f3"); }, {"f3", "bad magic number"});
  nash_test::expect_error([&] { nash::data::parse_idx(Bytes{0, 0}, "f4"); }, {"f4", "too short"});
  // A gzip file handed to the plain parser is not an IDX header either.
  nash_test::expect_error([&] { nash::data::parse_idx(Bytes{0x1f, 0x8b, 8, 0, 0, 0}, "f5"); },
                          {"f5", "bad magic number"});
}

TEST(Idx, LengthAndDimensionErrors) {
  Bytes full = idx_bytes(0x08, {3, 4}, pattern(12, 7));
  Bytes cut(full.begin(), full.end() - 1);
  nash_test::expect_error([&] { nash::data::parse_idx(cut, "short"); },
                          {"short", "truncated data", "[3, 4]", "need 12 bytes", "has 11"});
  Bytes extra = full;
  extra.push_back(0);
  nash_test::expect_error([&] { nash::data::parse_idx(extra, "long"); }, {"long", "1 unexpected bytes"});
  Bytes header_cut(full.begin(), full.begin() + 9);
  nash_test::expect_error([&] { nash::data::parse_idx(header_cut, "hdr"); }, {"hdr", "truncated header"});
  nash_test::expect_error([&] { nash::data::parse_idx(idx_bytes(0x08, {3, 0}, {}), "zero"); },
                          {"zero", "dimension 1 is 0"});
  nash_test::expect_error([&] { nash::data::parse_idx(idx_bytes(0x0E, {0xffffffffu, 0xffffffffu, 4}, {}), "huge"); },
                          {"huge", "implausibly large"});
  // int16 data must be counted in 2-byte elements.
  nash_test::expect_error([&] { nash::data::parse_idx(idx_bytes(0x0B, {5}, pattern(5, 8)), "i16"); },
                          {"i16", "int16", "need 10 bytes"});
}

TEST(Idx, MissingFile) {
  nash_test::expect_error([] { nash::data::read_idx("/nonexistent/nash/none-idx3-ubyte"); },
                          {"/nonexistent/nash/none-idx3-ubyte", "cannot open"});
}

TEST(Idx, ImagesScaledAndPadded) {
  Bytes data = pattern(2 * 28 * 28, 9);
  data[0] = 0;
  data[1] = 255;
  data[2] = 128;
  IdxArray a = nash::data::parse_idx(idx_bytes(0x08, {2, 28, 28}, data), "img");
  nash::Tensor x = nash::data::idx_to_images(a, "img");
  ASSERT_EQ(x.shape(), (nash::Shape{2, 1, 28, 28}));
  std::vector<float> v = x.to_vector<float>();
  EXPECT_FLOAT_EQ(v[0], -1.0f);
  EXPECT_FLOAT_EQ(v[1], 1.0f);
  EXPECT_NEAR(v[2], 128.0 / 127.5 - 1.0, 1e-6);
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], data[i] / 127.5 - 1.0, 1e-6) << i;

  nash::Tensor p = nash::data::idx_to_images(a, "img", 32);
  ASSERT_EQ(p.shape(), (nash::Shape{2, 1, 32, 32}));
  std::vector<float> w = p.to_vector<float>();
  for (int i = 0; i < 2; ++i)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const float got = w[(i * 32 + y) * 32 + x];
        const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const float want = inside ? v[(i * 28 + y - 2) * 28 + x - 2] : -1.0f;
        ASSERT_EQ(got, want) << i << "," << y << "," << x;
      }
  nash_test::expect_error([&] { nash::data::idx_to_images(a, "img", 31); }, {"img", "cannot pad 28x28", "31"});
  IdxArray lab = nash::data::parse_idx(idx_bytes(0x08, {4}, {0, 9, 3, 10}), "lab");
  nash_test::expect_error([&] { nash::data::idx_to_labels(lab, "lab"); }, {"lab", "label 3 is 10"});
  nash_test::expect_error([&] { nash::data::idx_to_images(lab, "lab"); }, {"lab", "expected images"});
}

TEST(Idx, FashionMnistLayoutFromDataDir) {
  fs::path d = temp_dir("fm");
  write_fake_fmnist(d, "train", 30, true);
  write_fake_fmnist(d, "t10k", 20, false);
  nash::data::FashionMnistOptions o;
  o.dir = d.string();
  nash::data::ImageDataset tr = nash::data::load_fashion_mnist(nash::data::Split::Train, o);
  EXPECT_EQ(tr.images.shape(), (nash::Shape{30, 1, 28, 28}));
  EXPECT_EQ(tr.labels.shape(), (nash::Shape{30}));
  EXPECT_FLOAT_EQ(tr.labels.to_vector<float>()[13], 3.0f);
  o.pad_to = 32;
  o.limit = 7;
  nash::data::ImageDataset te = nash::data::load_fashion_mnist(nash::data::Split::Test, o);
  EXPECT_EQ(te.images.shape(), (nash::Shape{7, 1, 32, 32}));
  EXPECT_EQ(te.labels.shape(), (nash::Shape{7}));

  // Counts that disagree, wrong image size, missing files.
  write(d / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {19}, Bytes(19, 1)));
  nash_test::expect_error([&] { nash::data::load_fashion_mnist(nash::data::Split::Test, o); },
                          {"t10k-images-idx3-ubyte", "20 images", "19 labels"});
  write(d / "t10k-images-idx3-ubyte", idx_bytes(0x08, {19, 27, 28}, pattern(19 * 27 * 28, 1)));
  nash_test::expect_error([&] { nash::data::load_fashion_mnist(nash::data::Split::Test, o); },
                          {"t10k-images-idx3-ubyte", "expected Fashion-MNIST images", "[19, 27, 28]"});
  fs::remove(d / "t10k-images-idx3-ubyte");
  nash_test::expect_error([&] { nash::data::load_fashion_mnist(nash::data::Split::Test, o); },
                          {"t10k-images-idx3-ubyte.gz", "--data"});
  fs::remove_all(d);
}

TEST(Idx, RealFashionMnistTestSplit) {
  const std::string dir = nash::data::default_fashion_mnist_dir();
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed in " << dir;
  nash::data::ImageDataset te = nash::data::load_fashion_mnist(nash::data::Split::Test);
  ASSERT_EQ(te.images.shape(), (nash::Shape{10000, 1, 28, 28}));
  std::vector<float> l = te.labels.to_vector<float>();
  std::vector<int> count(10, 0);
  for (float v : l) ++count[static_cast<int>(v)];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(count[c], 1000) << "class " << c;  // the test split is balanced
  std::vector<float> px = te.images.to_vector<float>();
  float lo = 2, hi = -2;
  for (float v : px) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_FLOAT_EQ(lo, -1.0f);
  EXPECT_FLOAT_EQ(hi, 1.0f);
}
