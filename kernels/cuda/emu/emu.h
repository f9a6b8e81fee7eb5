// CPU emulation of the CUDA device API used by nash's .cu kernels: each CUDA thread is a fiber; barriers,
// warp shuffles and atomics behave as on a GPU, and misuse (partial barriers) is reported as an error.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// Types CUDA defines globally get nash-private names here, so an emulated and a real translation unit
// linked into one program never disagree about a class called dim3.
#define dim3 nash_emu_dim3
#define uint3 nash_emu_uint3
#define float2 nash_emu_float2
#define float4 nash_emu_float4

struct nash_emu_uint3 {
  unsigned x, y, z;
};
struct nash_emu_dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr nash_emu_dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) nash_emu_float2 {
  float x, y;
};
struct alignas(16) nash_emu_float4 {
  float x, y, z, w;
};
inline nash_emu_float2 make_float2(float x, float y) { return {x, y}; }
inline nash_emu_float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict

namespace nash {
namespace emu {

// What the running fiber sees as its CUDA coordinates.
struct ThreadContext {
  nash_emu_uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
  nash_emu_dim3 block_dim, grid_dim;
};
const ThreadContext& ctx();

// Suspends the calling fiber until every thread of its block arrives.
void syncthreads();
// Suspends until every lane named in mask (and present in the warp) arrives.
void syncwarp(unsigned mask = 0xffffffffu);
// Warp data exchange through the block's 8-byte lane slots.
uint64_t exchange(unsigned mask, uint64_t bits, int src_lane);
unsigned ballot(unsigned mask, bool pred);
int lane_id();
// Block-shared memory: every thread's n-th call returns the same (NaN-filled at block start) region.
void* shared_alloc(std::size_t bytes, std::size_t align);
void* dynamic_shared();

using Body = std::function<void()>;
// Runs body as a CUDA grid: blocks spread over OS threads, each block's threads as fibers run in a
// scrambled order between barriers. Throws nash::Error on misuse or when a kernel thread throws.
void launch(const char* name, nash_emu_dim3 grid, nash_emu_dim3 block, std::size_t dynamic_smem, const Body& body);

// Statistics for tests: blocks and fiber switches run by all launches so far.
struct Stats {
  int64_t launches, blocks, switches;
};
Stats stats();

template <class T>
T shfl_bits(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of an unsupported type");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = exchange(mask, bits, src);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

}  // namespace emu
}  // namespace nash

#define threadIdx (::nash::emu::ctx().thread_idx)
#define blockIdx (::nash::emu::ctx().block_idx)
#define blockDim (::nash::emu::ctx().block_dim)
#define gridDim (::nash::emu::ctx().grid_dim)
#define warpSize 32

inline void __syncthreads() { ::nash::emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::nash::emu::syncwarp(mask); }
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::nash::emu::ballot(mask, pred != 0); }

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  int lane = ::nash::emu::lane_id();
  int base = lane - lane % width;
  return ::nash::emu::shfl_bits(mask, v, base + ((src % width) + width) % width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int lane = ::nash::emu::lane_id();
  int in_seg = lane % width;
  int src = in_seg + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : lane;
  return ::nash::emu::shfl_bits(mask, v, src);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int lane = ::nash::emu::lane_id();
  int in_seg = lane % width;
  int src = in_seg - static_cast<int>(delta) >= 0 ? lane - static_cast<int>(delta) : lane;
  return ::nash::emu::shfl_bits(mask, v, src);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  int lane = ::nash::emu::lane_id();
  int src = lane ^ lane_mask;
  if (src / width != lane / width) src = lane;
  return ::nash::emu::shfl_bits(mask, v, src);
}

// Atomics: blocks run concurrently on several OS threads, so these are real atomic operations.
inline float atomicAdd(float* p, float v) {
  uint32_t old_bits = __atomic_load_n(reinterpret_cast<uint32_t*>(p), __ATOMIC_RELAXED);
  while (true) {
    float old;
    std::memcpy(&old, &old_bits, 4);
    float nv = old + v;
    uint32_t new_bits;
    std::memcpy(&new_bits, &nv, 4);
    if (__atomic_compare_exchange_n(reinterpret_cast<uint32_t*>(p), &old_bits, new_bits, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      return old;
  }
}
inline double atomicAdd(double* p, double v) {
  uint64_t old_bits = __atomic_load_n(reinterpret_cast<uint64_t*>(p), __ATOMIC_RELAXED);
  while (true) {
    double old;
    std::memcpy(&old, &old_bits, 8);
    double nv = old + v;
    uint64_t new_bits;
    std::memcpy(&new_bits, &nv, 8);
    if (__atomic_compare_exchange_n(reinterpret_cast<uint64_t*>(p), &old_bits, new_bits, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      return old;
  }
}
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline int atomicMax(int* p, int v) {
  int old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int atomicCAS(int* p, int compare, int v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T>
inline T __ldg(const T* p) { return *p; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
