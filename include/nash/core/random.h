// Seeded counter-based (Philox-4x32-10) random numbers: the same seed gives the same tensors on every run.
#pragma once
#include <cstdint>

#include "nash/core/tensor.h"

namespace nash {

// Seeds the default generator (also used by module initialisation and data shuffling).
void manual_seed(uint64_t seed);

// A Philox stream: a key (the seed) and a 128-bit counter; each draw advances the counter.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x6e617368ULL) { set_seed(seed); }
  void set_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // number of 4x32-bit blocks consumed
  void set_offset(uint64_t o) { offset_ = o; }
  // Reserves n blocks of 4 uint32 and returns the first block index.
  uint64_t reserve(uint64_t nblocks) { uint64_t o = offset_; offset_ += nblocks; return o; }
  uint32_t next_u32();
  double next_uniform();  // [0, 1)
  double next_normal();

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

Generator& default_generator();

Tensor rand(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu(), Generator* gen = nullptr);
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu(), Generator* gen = nullptr);
Tensor rand_like(const Tensor& t, Generator* gen = nullptr);
Tensor randn_like(const Tensor& t, Generator* gen = nullptr);
// Integers uniform in [low, high) as float values.
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::Float32, Generator* gen = nullptr);
// A random permutation of 0..n-1 (Fisher-Yates on the generator).
std::vector<int64_t> randperm(int64_t n, Generator* gen = nullptr);

namespace philox {
// One Philox-4x32-10 block: counter (4 words) and key (2 words) to 4 random words.
void block(uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
}  // namespace philox

}  // namespace nash
