// DiffAugment: color, translation and cutout as differentiable ops with per-image draws.
#include "nash/nn/augment.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "nash/core/ops.h"

namespace nash {
namespace nn {

namespace {

// Per-image draws for the global batch, this shard's rows picked out.
struct Draws {
  std::vector<double> brightness, saturation, contrast;
  std::vector<int64_t> ty, tx, cy, cx;
};

Draws draw(int64_t n, int64_t channels, int64_t h, int64_t w, const DiffAugmentOptions& o, Generator& gen,
           int64_t rank, int64_t count) {
  const int64_t global = n * count;
  auto uniform = [&](double lo, double hi) {
    std::vector<double> v(static_cast<std::size_t>(global));
    for (double& x : v) x = lo + (hi - lo) * gen.next_uniform();
    return v;
  };
  auto integers = [&](int64_t lo, int64_t hi) {  // uniform in [lo, hi]
    std::vector<int64_t> v(static_cast<std::size_t>(global));
    for (int64_t& x : v)
      x = std::min(hi, lo + static_cast<int64_t>(std::floor(gen.next_uniform() * static_cast<double>(hi - lo + 1))));
    return v;
  };
  auto mine = [&](auto v) {  // rows rank, rank + count, ...
    decltype(v) out;
    for (int64_t j = 0; j < n; ++j) out.push_back(v[static_cast<std::size_t>(j * count + rank)]);
    return out;
  };
  Draws d;
  if (o.color) {
    d.brightness = mine(uniform(-0.5, 0.5));
    if (channels > 1) d.saturation = mine(uniform(0.0, 2.0));
    d.contrast = mine(uniform(0.5, 1.5));
  }
  if (o.translation) {
    const int64_t ry = std::llround(o.translation_ratio * static_cast<double>(h));
    const int64_t rx = std::llround(o.translation_ratio * static_cast<double>(w));
    d.ty = mine(integers(-ry, ry));
    d.tx = mine(integers(-rx, rx));
  }
  if (o.cutout) {
    d.cy = mine(integers(0, h - 1));
    d.cx = mine(integers(0, w - 1));
  }
  return d;
}

// A (N, 1, 1, 1) tensor of per-image values, like x.
Tensor per_image(const std::vector<double>& v, const Tensor& x) {
  return from_vector(v, {static_cast<int64_t>(v.size()), 1, 1, 1}).to(x.dtype()).to(x.device());
}

// (N·C, size, size) shift matrices: row i of image n has a 1 in column i − t_n (when inside), so S x moves x's rows
// down by t (zeros in at the edge); for columns the transpose is applied on the right.
Tensor shift_matrices(const std::vector<int64_t>& t, int64_t channels, int64_t size, bool transposed, const Tensor& x) {
  const int64_t n = static_cast<int64_t>(t.size());
  std::vector<double> m(static_cast<std::size_t>(n * channels * size * size), 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < size; ++i) {
        const int64_t src = i - t[static_cast<std::size_t>(b)];
        if (src < 0 || src >= size) continue;
        const int64_t at = ((b * channels + c) * size) * size + (transposed ? src * size + i : i * size + src);
        m[static_cast<std::size_t>(at)] = 1.0;
      }
  return from_vector(m, {n * channels, size, size}).to(x.dtype()).to(x.device());
}

}  // namespace

DiffAugmentOptions parse_diff_augment_policy(const std::string& policy) {
  DiffAugmentOptions o;
  o.color = o.translation = o.cutout = false;
  std::stringstream ss(policy);
  std::string part;
  bool any = false;
  while (std::getline(ss, part, ',')) {
    if (part == "color")
      o.color = true;
    else if (part == "translation")
      o.translation = true;
    else if (part == "cutout")
      o.cutout = true;
    else
      detail::fail("DiffAugment: unknown policy part '", part, "' in '", policy,
                   "' (expected a comma-separated subset of color, translation, cutout)");
    any = true;
  }
  NASH_CHECK(any, "DiffAugment: empty policy (expected a comma-separated subset of color, translation, cutout)");
  return o;
}

std::string diff_augment_policy_name(const DiffAugmentOptions& o) {
  std::string s;
  for (const auto& [on, name] : {std::make_pair(o.color, "color"), std::make_pair(o.translation, "translation"),
                                 std::make_pair(o.cutout, "cutout")})
    if (on) s += (s.empty() ? "" : ",") + std::string(name);
  return s;
}

Tensor diff_augment(const Tensor& x, const DiffAugmentOptions& o, Generator* gen, int64_t shard_rank,
                    int64_t shard_count) {
  NASH_CHECK(x.defined() && x.dim() == 4, "diff_augment: expected images (N, C, H, W), got ",
             shape_str(x));
  NASH_CHECK(shard_count >= 1 && shard_rank >= 0 && shard_rank < shard_count, "diff_augment: shard ", shard_rank,
             " of ", shard_count, " is not a valid shard");
  NASH_CHECK(o.translation_ratio >= 0 && o.translation_ratio < 1 && o.cutout_ratio >= 0 && o.cutout_ratio <= 1,
             "diff_augment: translation_ratio must be in [0, 1) and cutout_ratio in [0, 1], got ",
             o.translation_ratio, " and ", o.cutout_ratio);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const Draws d = draw(n, c, h, w, o, gen ? *gen : default_generator(), shard_rank, shard_count);
  Tensor y = x;
  if (o.color) {
    y = add(y, per_image(d.brightness, y));
    if (c > 1) {
      const Tensor m = mean(y, {1}, true);
      y = add(mul(sub(y, m), per_image(d.saturation, y)), m);
    }
    const Tensor m = mean(y, {1, 2, 3}, true);
    y = add(mul(sub(y, m), per_image(d.contrast, y)), m);
  }
  if (o.translation) {
    const Tensor rows = shift_matrices(d.ty, c, h, false, y), cols = shift_matrices(d.tx, c, w, true, y);
    y = matmul(matmul(rows, y.reshape({n * c, h, w})), cols).reshape({n, c, h, w});
  }
  if (o.cutout) {
    const int64_t sy = std::llround(o.cutout_ratio * static_cast<double>(h));
    const int64_t sx = std::llround(o.cutout_ratio * static_cast<double>(w));
    std::vector<double> mask(static_cast<std::size_t>(n * h * w), 1.0);
    for (int64_t b = 0; b < n; ++b) {
      const int64_t y0 = std::max<int64_t>(0, d.cy[static_cast<std::size_t>(b)] - sy / 2);
      const int64_t y1 = std::min<int64_t>(h, d.cy[static_cast<std::size_t>(b)] - sy / 2 + sy);
      const int64_t x0 = std::max<int64_t>(0, d.cx[static_cast<std::size_t>(b)] - sx / 2);
      const int64_t x1 = std::min<int64_t>(w, d.cx[static_cast<std::size_t>(b)] - sx / 2 + sx);
      for (int64_t i = y0; i < y1; ++i)
        for (int64_t j = x0; j < x1; ++j) mask[static_cast<std::size_t>((b * h + i) * w + j)] = 0.0;
    }
    y = mul(y, from_vector(mask, {n, 1, h, w}).to(y.dtype()).to(y.device()));
  }
  return y;
}

}  // namespace nn
}  // namespace nash
