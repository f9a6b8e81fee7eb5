// Philox-4x32-10 counter-based generator and the uniform/normal transforms, shared by the CPU and CUDA backends.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/math.h"

namespace nash {
namespace philox {

struct U4 {
  uint32_t x, y, z, w;
};

NASH_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds of Philox-4x32 on a 128-bit counter under a 64-bit key.
NASH_HD U4 rounds(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return U4{c0, c1, c2, c3};
}

// Block `index` of the stream keyed by `seed` (counter = index in the low 64 bits).
NASH_HD U4 draw(uint64_t seed, uint64_t index) {
  return rounds(static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0, 0, static_cast<uint32_t>(seed),
                static_cast<uint32_t>(seed >> 32));
}

// A uniform in (0, 1) from 32 random bits (never 0, so log() is safe).
NASH_HD double to_uniform(uint32_t v) { return (static_cast<double>(v) + 0.5) * (1.0 / 4294967296.0); }

// Element i of a stream starting at block `offset`: four elements per block.
NASH_HD double uniform_at(uint64_t seed, uint64_t offset, int64_t i) {
  U4 u = draw(seed, offset + static_cast<uint64_t>(i) / 4);
  uint32_t w = (i & 3) == 0 ? u.x : (i & 3) == 1 ? u.y : (i & 3) == 2 ? u.z : u.w;
  return to_uniform(w);
}

// Box-Muller on word pairs (x,y) and (z,w): four normals per block.
NASH_HD double normal_at(uint64_t seed, uint64_t offset, int64_t i) {
  U4 u = draw(seed, offset + static_cast<uint64_t>(i) / 4);
  int j = static_cast<int>(i & 3);
  double u1 = to_uniform(j < 2 ? u.x : u.z), u2 = to_uniform(j < 2 ? u.y : u.w);
  double r = std::sqrt(-2.0 * std::log(u1));
  double th = 6.283185307179586 * u2;
  return (j & 1) ? r * std::sin(th) : r * std::cos(th);
}

}  // namespace philox
}  // namespace nash
