// What every nash .cu kernel file includes: real CUDA under nvcc, the fiber emulation under NASH_CUDA_EMULATION,
// the shared-memory helpers and the one launch path (nash kernels are never launched with <<<>>> elsewhere).
#pragma once
#include <cstddef>
#include <cstdint>

#include "nash/core/error.h"

#if defined(NASH_CUDA_EMULATION)
#include "kernels/cuda/emu/emu.h"
// The same sources compile into a second namespace, so emulated and real kernels can live in one program.
#define NASH_CUDA_NS cuda_emu
// Block-shared array: NASH_SHARED(float, tile, [32][33]);
#define NASH_SHARED(type, name, dims) \
  type(&name) dims = *reinterpret_cast<type(*) dims>(::nash::emu::shared_alloc(sizeof(type dims), alignof(type)))
#define NASH_UNROLL
#else
#include <cuda_runtime.h>
#define NASH_CUDA_NS cuda_impl
#define NASH_SHARED(type, name, dims) __shared__ type name dims
#define NASH_UNROLL _Pragma("unroll")
#endif

namespace nash {
namespace NASH_CUDA_NS {

#if defined(NASH_CUDA_EMULATION)
using Stream = void*;
template <class T>
inline T* dynamic_shared() {
  return static_cast<T*>(::nash::emu::dynamic_shared());
}
#else
using Stream = cudaStream_t;
extern __shared__ __align__(16) unsigned char nash_dynamic_smem[];
template <class T>
__device__ __forceinline__ T* dynamic_shared() {
  return reinterpret_cast<T*>(nash_dynamic_smem);
}
#endif

// Launches kernel over grid x block with dynamic shared memory and a stream, and checks the launch.
// Arguments are converted to the kernel's parameter types, as a <<<>>> launch would.
template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t shared_bytes, Stream stream,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: wrong number of kernel arguments");
  if (static_cast<int64_t>(grid.x) * grid.y * grid.z == 0) return;
#if defined(NASH_CUDA_EMULATION)
  (void)stream;
  ::nash::emu::launch(name, grid, block, shared_bytes, [&] { kernel(static_cast<P>(args)...); });
#else
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<P>(args)...);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    ::nash::detail::fail("CUDA kernel ", name, " failed to launch (grid ", grid.x, "x", grid.y, "x", grid.z,
                         ", block ", block.x, "x", block.y, "x", block.z, ", ", shared_bytes,
                         " B shared): ", cudaGetErrorString(err));
#endif
}

inline unsigned blocks_for(int64_t n, unsigned threads, unsigned max_blocks = 65535u * 8u) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
