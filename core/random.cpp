// The default generator, seeding, and random tensor factories.
#include "nash/core/random.h"

#include <cmath>

#include "core/backend.h"
#include "kernels/philox.h"

namespace nash {

Generator& default_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) { default_generator().set_seed(seed); }

uint32_t Generator::next_u32() { return philox::draw(seed_, reserve(1)).x; }
double Generator::next_uniform() { return philox::to_uniform(next_u32()); }
double Generator::next_normal() { return philox::normal_at(seed_, reserve(1), 0); }

namespace {
Tensor random_fill(bool normal, const Shape& shape, DType dtype, Device device, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  Tensor out = empty(shape, dtype, device);
  // Four values per Philox block; element i always comes from block offset + i/4, on every device.
  uint64_t off = g.reserve(static_cast<uint64_t>((out.numel() + 3) / 4));
  if (normal) detail::call("randn", device, &detail::Backend::fill_normal, out, g.seed(), off);
  else detail::call("rand", device, &detail::Backend::fill_uniform, out, g.seed(), off);
  return out;
}
}  // namespace

Tensor rand(const Shape& shape, DType dtype, Device device, Generator* gen) {
  return random_fill(false, shape, dtype, device, gen);
}
Tensor randn(const Shape& shape, DType dtype, Device device, Generator* gen) {
  return random_fill(true, shape, dtype, device, gen);
}
Tensor rand_like(const Tensor& t, Generator* gen) { return rand(t.shape(), t.dtype(), t.device(), gen); }
Tensor randn_like(const Tensor& t, Generator* gen) { return randn(t.shape(), t.dtype(), t.device(), gen); }

Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Generator* gen) {
  NASH_CHECK(high > low, "randint: empty range [", low, ", ", high, ")");
  Tensor u = rand(shape, DType::Float64, Device::cpu(), gen);
  std::vector<double> v = u.to_vector<double>();
  double span = static_cast<double>(high - low);
  for (double& x : v) x = static_cast<double>(low) + std::min(std::floor(x * span), span - 1);
  return from_vector(v, shape).to(dtype);
}

std::vector<int64_t> randperm(int64_t n, Generator* gen) {
  NASH_CHECK(n >= 0, "randperm: n must be non-negative, got ", n);
  Generator& g = gen ? *gen : default_generator();
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(g.next_uniform() * static_cast<double>(i + 1));
    if (j > i) j = i;
    std::swap(p[i], p[j]);
  }
  return p;
}

namespace philox {
void block(uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  U4 u = rounds(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
  out[0] = u.x;
  out[1] = u.y;
  out[2] = u.z;
  out[3] = u.w;
}
}  // namespace philox

}  // namespace nash
