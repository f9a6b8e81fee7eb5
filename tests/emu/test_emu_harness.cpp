// The CUDA emulation harness itself: barriers, shared memory, warp primitives, atomics, and the misuse it must catch.
#define NASH_CUDA_EMULATION 1
#include "kernels/cuda/compat.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "support.h"

namespace k = nash::cuda_emu;

namespace {

// Block sum through shared memory: every thread writes, barrier, tree reduction with a barrier per level.
__global__ void block_sum(const float* in, float* out, int n) {
  NASH_SHARED(float, buf, [256]);
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[threadIdx.x] = i < n ? in[i] : 0.f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < static_cast<unsigned>(s)) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

// The same with the first barrier missing: a thread may read a neighbour's slot before it is written.
__global__ void block_sum_missing_barrier(const float* in, float* out, int n) {
  NASH_SHARED(float, buf, [256]);
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[threadIdx.x] = i < n ? in[i] : 0.f;
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < static_cast<unsigned>(s)) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

// Early exit before a barrier: a real bug on a GPU, an error in the emulation.
__global__ void partial_barrier(float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  __syncthreads();
  out[i] = 1.f;
}

__global__ void warp_sum(const float* in, float* out) {
  float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  float all = __shfl_sync(0xffffffffu, v, 0);
  unsigned odd = __ballot_sync(0xffffffffu, threadIdx.x & 1);
  float x = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
  if (threadIdx.x % 32 == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = all;
  out[64 + blockIdx.x * blockDim.x + threadIdx.x] = x + (odd == 0xAAAAAAAAu ? 0.f : 1000.f);
}

__global__ void atomic_count(int* counter, float* total) {
  atomicAdd(counter, 1);
  atomicAdd(total, 0.5f);
}

__global__ void dyn_shared_reverse(const float* in, float* out) {
  float* s = k::dynamic_shared<float>();
  s[threadIdx.x] = in[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

std::vector<float> iota_vec(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(i % 17) - 8.f;
  return v;
}

}  // namespace

TEST(EmuHarness, SharedMemoryReductionWithBarriers) {
  int n = 1000;
  std::vector<float> in = iota_vec(n), out(4, -1.f);
  k::launch("block_sum", block_sum, dim3(4), dim3(256), 0, nullptr, in.data(), out.data(), n);
  for (int b = 0; b < 4; ++b) {
    float ref = 0;
    for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i) ref += in[i];
    EXPECT_FLOAT_EQ(out[b], ref) << "block " << b;
  }
}

TEST(EmuHarness, MissingBarrierGivesAWrongResult) {
  int n = 1024;
  std::vector<float> in = iota_vec(n), out(4, -1.f);
  k::launch("block_sum_missing_barrier", block_sum_missing_barrier, dim3(4), dim3(256), 0, nullptr, in.data(),
            out.data(), n);
  int wrong = 0;
  for (int b = 0; b < 4; ++b) {
    float ref = 0;
    for (int i = b * 256; i < (b + 1) * 256; ++i) ref += in[i];
    wrong += !(out[b] == ref);
  }
  EXPECT_GT(wrong, 0) << "the scrambled fiber order should expose the missing barrier";
}

TEST(EmuHarness, PartialBarrierIsAnError) {
  std::vector<float> out(100);
  nash_test::expect_error(
      [&] { k::launch("partial_barrier", partial_barrier, dim3(1), dim3(128), 0, nullptr, out.data(), 100); },
      {"partial_barrier", "__syncthreads reached by only part of the block"});
}

TEST(EmuHarness, WarpShufflesAndBallot) {
  std::vector<float> in = iota_vec(64), out(128, 0.f);
  k::launch("warp_sum", warp_sum, dim3(1), dim3(64), 0, nullptr, in.data(), out.data());
  for (int w = 0; w < 2; ++w) {
    float ref = std::accumulate(in.begin() + w * 32, in.begin() + (w + 1) * 32, 0.f);
    EXPECT_FLOAT_EQ(out[w], ref);
  }
  for (int t = 0; t < 64; ++t) EXPECT_EQ(out[64 + t], static_cast<float>(t ^ 1)) << t;
}

TEST(EmuHarness, AtomicsAcrossBlocks) {
  int counter = 0;
  float total = 0;
  k::launch("atomic_count", atomic_count, dim3(37), dim3(64), 0, nullptr, &counter, &total);
  EXPECT_EQ(counter, 37 * 64);
  EXPECT_FLOAT_EQ(total, 37 * 64 * 0.5f);
}

TEST(EmuHarness, DynamicSharedMemory) {
  std::vector<float> in = iota_vec(96), out(96);
  k::launch("dyn_shared_reverse", dyn_shared_reverse, dim3(1), dim3(96), 96 * sizeof(float), nullptr, in.data(),
            out.data());
  for (int i = 0; i < 96; ++i) EXPECT_EQ(out[i], in[95 - i]);
}

TEST(EmuHarness, InvalidLaunchesAreErrors) {
  std::vector<float> out(4);
  nash_test::expect_error([&] { k::launch("too_big", partial_barrier, dim3(1), dim3(2048), 0, nullptr, out.data(), 4); },
                          {"too_big", "1..1024"});
}

namespace {

constexpr int kTile = 16;

// Tiled transpose through shared memory: out (cols x rows) = in (rows x cols)ᵀ.
__global__ void tiled_transpose(const float* in, float* out, int rows, int cols) {
  NASH_SHARED(float, tile, [kTile][kTile + 1]);
  int c = blockIdx.x * kTile + threadIdx.x, r = blockIdx.y * kTile + threadIdx.y;
  if (r < rows && c < cols) tile[threadIdx.y][threadIdx.x] = in[r * cols + c];
  __syncthreads();
  int oc = blockIdx.y * kTile + threadIdx.x, orow = blockIdx.x * kTile + threadIdx.y;
  if (orow < cols && oc < rows) out[orow * rows + oc] = tile[threadIdx.x][threadIdx.y];
}

// Row sums over column tiles staged in shared memory. `floor_tiles` is the classic off-by-one in a tile
// bound: the tile count rounds down, so the last partial tile of every row is never loaded.
template <bool floor_tiles>
__global__ void tiled_row_sum(const float* in, float* out, int rows, int cols) {
  NASH_SHARED(float, tile, [kTile][kTile + 1]);
  int r = blockIdx.x * kTile + threadIdx.y;
  float acc = 0.f;
  int ntiles = floor_tiles ? cols / kTile : (cols + kTile - 1) / kTile;
  for (int t = 0; t < ntiles; ++t) {
    int c = t * kTile + threadIdx.x;
    tile[threadIdx.y][threadIdx.x] = (r < rows && c < cols) ? in[r * cols + c] : 0.f;
    __syncthreads();
    if (threadIdx.x == 0)
      for (int j = 0; j < kTile; ++j) acc += tile[threadIdx.y][j];
    __syncthreads();
  }
  if (threadIdx.x == 0 && r < rows) out[r] = acc;
}

template <bool floor_tiles>
int row_sum_mismatches(int rows, int cols) {
  std::vector<float> in(static_cast<std::size_t>(rows * cols)), out(static_cast<std::size_t>(rows), -1.f);
  for (int i = 0; i < rows * cols; ++i) in[i] = static_cast<float>(i % 7) - 3.f;
  k::launch("tiled_row_sum", tiled_row_sum<floor_tiles>, dim3((rows + kTile - 1) / kTile), dim3(kTile, kTile), 0,
            nullptr, in.data(), out.data(), rows, cols);
  int bad = 0;
  for (int r = 0; r < rows; ++r) {
    float ref = 0;
    for (int c = 0; c < cols; ++c) ref += in[r * cols + c];
    bad += !(out[r] == ref);
  }
  return bad;
}

}  // namespace

TEST(EmuHarness, TiledTransposeIsExact) {
  int rows = 37, cols = 21;
  std::vector<float> in(static_cast<std::size_t>(rows * cols)), out(in.size(), -1.f);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
  k::launch("tiled_transpose", tiled_transpose, dim3((cols + kTile - 1) / kTile, (rows + kTile - 1) / kTile),
            dim3(kTile, kTile), 0, nullptr, in.data(), out.data(), rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) ASSERT_EQ(out[c * rows + r], in[r * cols + c]);
}

TEST(EmuHarness, OffByOneTileBoundIsCaught) {
  EXPECT_EQ(row_sum_mismatches<false>(37, 50), 0);
  EXPECT_GT(row_sum_mismatches<true>(37, 50), 0) << "the broken tile bound drops the last partial tile";
}
