// IDX parsing with strict header/length checks, gzip inflation through zlib, and the Fashion-MNIST split loader.
#include "nash/data/idx.h"

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#ifdef NASH_HAVE_ZLIB
#include <zlib.h>
#endif

namespace nash {
namespace data {

namespace {

bool is_gzip(const std::vector<uint8_t>& b) { return b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b; }

bool valid_type(uint8_t code) {
  switch (code) {
    case 0x08: case 0x09: case 0x0B: case 0x0C: case 0x0D: case 0x0E: return true;
    default: return false;
  }
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NASH_CHECK(f.good(), "IDX file '", path, "': cannot open (missing or unreadable)");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  NASH_CHECK(!f.bad(), "IDX file '", path, "': read error");
  return bytes;
}

#ifdef NASH_HAVE_ZLIB
// The whole length an IDX file's header declares (header + data), from the first inflated bytes: 0 while the header
// is incomplete, SIZE_MAX when the header is invalid or implausible (parse_idx then reports what is wrong).
std::size_t idx_declared_size(const std::vector<uint8_t>& b) {
  if (b.size() < 4) return 0;
  if (b[0] != 0 || b[1] != 0 || b[3] < 1) return SIZE_MAX;
  std::size_t esize = 0;
  switch (b[2]) {
    case 0x08: case 0x09: esize = 1; break;
    case 0x0B: esize = 2; break;
    case 0x0C: case 0x0D: esize = 4; break;
    case 0x0E: esize = 8; break;
    default: return SIZE_MAX;
  }
  const std::size_t header = 4 + 4 * std::size_t(b[3]);
  if (b.size() < header) return 0;
  uint64_t numel = 1;
  for (std::size_t i = 0; i < b[3]; ++i) {
    const uint8_t* q = b.data() + 4 + 4 * i;
    const uint64_t d = uint64_t(q[0]) << 24 | uint64_t(q[1]) << 16 | uint64_t(q[2]) << 8 | q[3];
    if (d == 0 || d > (uint64_t(1) << 40) / numel) return SIZE_MAX;
    numel *= d;
  }
  return header + static_cast<std::size_t>(numel) * esize;
}

// Inflates every gzip member in turn (concatenated members are valid gzip); zlib checks each member's CRC-32
// and length, so corruption anywhere is caught, and a stream that ends before its trailer is reported as truncated.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path) {
  std::vector<uint8_t> out;
  // The trailer's ISIZE (the last member's length mod 2^32) is a good first guess for the output size.
  if (in.size() >= 18) {
    const uint8_t* t = in.data() + in.size() - 4;
    const std::size_t hint = uint32_t(t[0]) | uint32_t(t[1]) << 8 | uint32_t(t[2]) << 16 | uint32_t(t[3]) << 24;
    // Deflate cannot expand more than ~1032:1, so a damaged trailer cannot make us reserve absurd amounts.
    out.reserve(std::min(hint, in.size() * 1032));
  }
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  NASH_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "IDX file '", path, "': zlib inflateInit2 failed");
  std::size_t pos = 0;
  std::vector<uint8_t> buf(1 << 18);
  int rc = Z_OK;
  std::size_t declared = 0;  // what the IDX header promises; inflating past it stops at once (decompression bombs)
  while (true) {
    const std::size_t chunk = std::min<std::size_t>(in.size() - pos, std::numeric_limits<uInt>::max());
    zs.next_in = const_cast<Bytef*>(in.data() + pos);
    zs.avail_in = static_cast<uInt>(chunk);
    zs.next_out = buf.data();
    zs.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    pos += chunk - zs.avail_in;
    out.insert(out.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    if (declared == 0) declared = idx_declared_size(out);
    if (declared != 0 && declared != SIZE_MAX && out.size() > declared) {
      inflateEnd(&zs);
      detail::fail("IDX file '", path, "': the gzip stream inflates to more than the ", declared,
                   " bytes its header declares (stopped after ", out.size(), " bytes: a corrupt file or a "
                   "decompression bomb)");
    }
    if (rc == Z_STREAM_END) {
      if (pos == in.size()) break;
      if (in[pos] != 0x1f) break;  // trailing padding after the last member is tolerated, as gzip(1) does
      inflateReset(&zs);
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && pos == in.size()) {
      inflateEnd(&zs);
      detail::fail("IDX file '", path, "': truncated gzip stream (input ended after ", in.size(),
                   " compressed bytes, ", out.size(), " bytes inflated, before the end of the stream)");
    }
    std::string msg = zs.msg ? zs.msg : "error code " + std::to_string(rc);
    inflateEnd(&zs);
    detail::fail("IDX file '", path, "': corrupt gzip data (zlib: ", msg, ") after ", out.size(), " bytes inflated");
  }
  inflateEnd(&zs);
  return out;
}
#endif

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

}  // namespace

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::UByte: return "ubyte";
    case IdxType::SByte: return "sbyte";
    case IdxType::Int16: return "int16";
    case IdxType::Int32: return "int32";
    case IdxType::Float32: return "float32";
    case IdxType::Float64: return "float64";
  }
  return "?";
}

std::size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::UByte: case IdxType::SByte: return 1;
    case IdxType::Int16: return 2;
    case IdxType::Int32: case IdxType::Float32: return 4;
    case IdxType::Float64: return 8;
  }
  return 1;
}

int64_t IdxArray::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

IdxArray parse_idx(const std::vector<uint8_t>& b, const std::string& what) {
  NASH_CHECK(b.size() >= 4, "IDX file '", what, "': too short for the 4-byte magic number (", b.size(), " bytes)");
  char magic[16];
  std::snprintf(magic, sizeof magic, "0x%08x", be32(b.data()));
  NASH_CHECK(b[0] == 0 && b[1] == 0 && valid_type(b[2]) && b[3] >= 1, "IDX file '", what, "': bad magic number ",
             magic, " (expected 0x0000TTDD: two zero bytes, a type code 08/09/0B/0C/0D/0E and 1 or more dimensions)");
  IdxArray a;
  a.type = static_cast<IdxType>(b[2]);
  const std::size_t nd = b[3];
  const std::size_t header = 4 + 4 * nd;
  NASH_CHECK(b.size() >= header, "IDX file '", what, "': truncated header: ", nd, " dimensions need ", header,
             " bytes, the file has ", b.size());
  // Dimensions are checked against a bound well below int64 overflow so a lying header cannot wrap the product.
  const int64_t kMaxBytes = int64_t(1) << 40;
  int64_t numel = 1;
  for (std::size_t i = 0; i < nd; ++i) {
    const int64_t d = be32(b.data() + 4 + 4 * i);
    NASH_CHECK(d >= 1, "IDX file '", what, "': dimension ", i, " is 0");
    NASH_CHECK(d <= kMaxBytes / numel, "IDX file '", what, "': dimensions are implausibly large (over 2^40 elements)");
    numel *= d;
    a.dims.push_back(d);
  }
  const std::size_t esize = idx_type_size(a.type);
  const std::size_t want = static_cast<std::size_t>(numel) * esize, have = b.size() - header;
  auto dims_str = [&] { return shape_str(a.dims); };
  NASH_CHECK(have >= want, "IDX file '", what, "': truncated data: dimensions ", dims_str(), " of ",
             idx_type_name(a.type), " need ", want, " bytes after the ", header, "-byte header, the file has ", have);
  NASH_CHECK(have == want, "IDX file '", what, "': ", have - want, " unexpected bytes after the data (dimensions ",
             dims_str(), " of ", idx_type_name(a.type), " need ", want, " bytes); wrong dimensions?");
  a.data.assign(b.begin() + static_cast<std::ptrdiff_t>(header), b.end());
  return a;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  if (!is_gzip(bytes)) return bytes;
#ifdef NASH_HAVE_ZLIB
  return gunzip(bytes, path);
#else
  detail::fail("IDX file '", path, "' is gzip-compressed, but nash was built without zlib: install zlib (Debian: "
               "zlib1g-dev) and rebuild, or decompress it first (gunzip -k)");
#endif
}

IdxArray read_idx(const std::string& path) { return parse_idx(read_maybe_gzip(path), path); }

Tensor idx_to_images(const IdxArray& a, const std::string& what, int64_t pad_to) {
  NASH_CHECK(a.type == IdxType::UByte && a.dims.size() == 3, "IDX file '", what,
             "': expected images as ubyte with 3 dimensions (N, H, W), got ", idx_type_name(a.type),
             " with dimensions ",
             shape_str(a.dims));
  const int64_t n = a.dims[0], h = a.dims[1], w = a.dims[2];
  NASH_CHECK(pad_to == 0 || (pad_to >= h && pad_to >= w && (pad_to - h) % 2 == 0 && (pad_to - w) % 2 == 0),
             "IDX file '", what, "': cannot pad ", h, "x", w, " images to ", pad_to, "x", pad_to,
             " (needs a size >= both sides, differing from each by an even number)");
  const int64_t oh = pad_to ? pad_to : h, ow = pad_to ? pad_to : w;
  const int64_t top = (oh - h) / 2, left = (ow - w) / 2;
  Tensor out = full({n, 1, oh, ow}, -1.0);
  float* o = out.data_ptr<float>();
  const uint8_t* src = a.data.data();
  const float scale = 2.0f / 255.0f;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* s = src + (i * h + y) * w;
      float* d = o + (i * oh + y + top) * ow + left;
      for (int64_t x = 0; x < w; ++x) d[x] = static_cast<float>(s[x]) * scale - 1.0f;
    }
  return out;
}

Tensor idx_to_labels(const IdxArray& a, const std::string& what, int64_t num_classes) {
  NASH_CHECK(a.type == IdxType::UByte && a.dims.size() == 1, "IDX file '", what,
             "': expected labels as ubyte with 1 dimension (N), got ", idx_type_name(a.type), " with dimensions ",
             shape_str(a.dims));
  std::vector<float> v(a.data.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    NASH_CHECK(a.data[i] < num_classes, "IDX file '", what, "': label ", i, " is ", int(a.data[i]),
               ", outside 0..", num_classes - 1);
    v[i] = a.data[i];
  }
  return from_vector(v, {static_cast<int64_t>(v.size())});
}

const char* default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

std::string fashion_mnist_file(const std::string& dir, Split split, bool labels) {
  std::string base = dir.empty() ? default_fashion_mnist_dir() : dir;
  if (base.back() != '/') base += '/';
  base += split == Split::Train ? "train" : "t10k";
  base += labels ? "-labels-idx1-ubyte" : "-images-idx3-ubyte";
  for (const std::string& p : {base + ".gz", base}) {
    std::ifstream f(p, std::ios::binary);
    if (f.good()) return p;
  }
  detail::fail("Fashion-MNIST: neither '", base, ".gz' nor '", base, "' exists; install Debian's dataset-fashion-mnist "
               "package (files in ", default_fashion_mnist_dir(), ") or copy the four IDX files to a folder and pass "
               "--data DIR");
}

ImageDataset load_fashion_mnist(Split split, const FashionMnistOptions& opt) {
  NASH_CHECK(opt.limit >= 0, "load_fashion_mnist: limit must be >= 0, got ", opt.limit);
  const std::string ipath = fashion_mnist_file(opt.dir, split, false);
  const std::string lpath = fashion_mnist_file(opt.dir, split, true);
  IdxArray ia = read_idx(ipath);
  NASH_CHECK(ia.type == IdxType::UByte && ia.dims.size() == 3 && ia.dims[1] == 28 && ia.dims[2] == 28, "IDX file '",
             ipath, "': expected Fashion-MNIST images, ubyte (N, 28, 28) (magic 0x00000803), got ",
             idx_type_name(ia.type), " ", shape_str(ia.dims));
  IdxArray la = read_idx(lpath);
  NASH_CHECK(la.type == IdxType::UByte && la.dims.size() == 1, "IDX file '", lpath,
             "': expected Fashion-MNIST labels, ubyte (N) (magic 0x00000801), got ", idx_type_name(la.type), " ",
             shape_str(la.dims));
  NASH_CHECK(la.dims[0] == ia.dims[0], "Fashion-MNIST: '", ipath, "' holds ", ia.dims[0], " images but '", lpath,
             "' holds ", la.dims[0], " labels");
  if (opt.limit > 0 && opt.limit < ia.dims[0]) {
    ia.data.resize(static_cast<std::size_t>(opt.limit * 28 * 28));
    ia.dims[0] = opt.limit;
    la.data.resize(static_cast<std::size_t>(opt.limit));
    la.dims[0] = opt.limit;
  }
  ImageDataset ds;
  ds.images = idx_to_images(ia, ipath, opt.pad_to);
  ds.labels = idx_to_labels(la, lpath, 10);
  return ds;
}

}  // namespace data
}  // namespace nash
