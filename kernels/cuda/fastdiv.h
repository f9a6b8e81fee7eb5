// Division by a divisor fixed at launch, for the index math of the implicit-GEMM gathers: a 32-bit integer division
// is a ~20-instruction sequence on a GPU, a multiply-high, an add and a shift is three.
#pragma once
#include <cstdint>

#include "kernels/cuda/compat.h"

namespace nash {
namespace NASH_CUDA_NS {

// q = n / d and r = n % d for 0 <= n < 2^31 and 1 <= d < 2^31, by the round-up method of Granlund & Montgomery
// ("Division by invariant integers using multiplication", 1994): with l = ceil(log2 d) and
// m = floor(2^32 * (2^l - d) / d) + 1, n / d = (mulhi(m, n) + n) >> l. The sum stays below 2^32 because
// mulhi(m, n) <= n < 2^31, and m < 2^32 because d > 2^(l-1) unless d is a power of two (where m = 1).
struct FastDivmod {
  uint32_t d = 1, mul = 1, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(int64_t divisor) {
    const uint64_t v = divisor < 1 ? 1 : static_cast<uint64_t>(divisor);  // an empty range divides by nothing
    d = static_cast<uint32_t>(v);
    while ((uint64_t{1} << shift) < v) ++shift;
    mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - v)) / v + 1);
  }
  __host__ __device__ __forceinline__ int div(int n) const {
    const uint32_t u = static_cast<uint32_t>(n);
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(u, mul);
#else
    const uint32_t hi = static_cast<uint32_t>((static_cast<uint64_t>(u) * mul) >> 32);
#endif
    return static_cast<int>((hi + u) >> shift);
  }
  __host__ __device__ __forceinline__ void divmod(int n, int& q, int& r) const {
    q = div(n);
    r = n - q * static_cast<int>(d);
  }
};

// The divisor of a gather's index type: the fast one for 32-bit indices, plain division for 64-bit ones.
template <class I>
struct Divisor;
template <>
struct Divisor<int> : FastDivmod {
  Divisor() = default;
  explicit Divisor(int64_t v) : FastDivmod(v) {}
};
template <>
struct Divisor<int64_t> {
  int64_t d = 1;
  Divisor() = default;
  explicit Divisor(int64_t v) : d(v < 1 ? 1 : v) {}
  __host__ __device__ __forceinline__ int64_t div(int64_t n) const { return n / d; }
  __host__ __device__ __forceinline__ void divmod(int64_t n, int64_t& q, int64_t& r) const {
    q = n / d;
    r = n - q * d;
  }
};

}  // namespace NASH_CUDA_NS
}  // namespace nash
