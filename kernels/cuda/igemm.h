// nash's tiled GEMM core for CUDA: C = A·B over shared-memory tiles, with A, B and the store given as small
// gather/scatter policies. Convolution forward, both convolution gradients and matmul are instances of it, so the
// implicit-GEMM convolutions never build an im2col buffer.
//
// The kernel is the classic fp32 SIMT SGEMM: 256 threads; a 128x128 block tile with an 8x8 register tile per thread
// (a 64x64 tile with 4x4 per thread when the large tiles would leave multiprocessors idle); k-tiles of 8; A stored
// transposed ([k][m]) and B as [k][n] in shared memory so every thread reads its fragments as float4s; tile t+1 is
// fetched into registers while tile t is multiplied and then stored into the second shared buffer (one barrier per
// k-tile). At 8x8 a thread does 64 FMAs per 4 shared float4 loads, and a block reads 2 * 128 * 8 floats from global
// memory per 128 * 128 * 8 FMAs (16 FMAs per byte), twice the reuse of a 64x64 tile.
//
// An operand policy (A is M x K with outer index m, B is K x N with outer index n) provides
//   static constexpr bool kKFast   k is the direction adjacent in memory: a warp then fetches runs of k (else runs
//                                  of outer indices);
//   Outer outer(int64_t i) const   what the gather needs of outer index i, computed once per thread and block;
//   Step step(int64_t k) const     what it needs of reduction index k, computed once per thread and k-tile;
//   float load(const Outer&, const Step&) const   the element (called only for in-range indices),
// so a convolution's index math is a few integer operations per element instead of a division chain. A policy may
// also provide float4 load4(...) (four elements consecutive along its fast direction, from a multiple of 4) and
// bool vec4_ok(int64_t outer_extent, int64_t K) (whether every such group is aligned and wholly in or out of
// range): the large tile then fetches float4s.
#pragma once
#include <algorithm>
#include <type_traits>
#include <utility>

#include "kernels/cuda/backend.h"
#include "kernels/cuda/compat.h"

namespace nash {
namespace NASH_CUDA_NS {

constexpr int kGemmThreads = 256, kTileK = 8;
// Floats after each shared row: the transposed scalar stores hit 32 different banks, rows stay 16-byte aligned.
constexpr int kSmemPad = 4;

// Block tile BM x BN; thread tile TM x TN, as TM/4 x TN/4 groups of 4x4 spread over the block tile (float4 reads).
template <int BM, int BN, int TM, int TN>
struct GemmTileShape {
  static constexpr int kBM = BM, kBN = BN, kTM = TM, kTN = TN;
  static_assert((BM / TM) * (BN / TN) == kGemmThreads, "one thread per thread tile");
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BM % 32 == 0 && BN % 32 == 0, "float4 fragments, 32-wide fetch runs");
};
using LargeTile = GemmTileShape<128, 128, 8, 8>;
using SmallTile = GemmTileShape<64, 64, 4, 4>;

template <class P, class = void>
struct Vec4Capable : std::false_type {};
template <class P>
struct Vec4Capable<P, decltype(static_cast<void>(std::declval<const P&>().vec4_ok(int64_t{}, int64_t{})))>
    : std::true_type {};

__device__ __forceinline__ float4 load_float4(const float* p) {  // p 16-byte aligned
#if defined(NASH_CUDA_EMULATION)
  return make_float4(p[0], p[1], p[2], p[3]);
#else
  return *reinterpret_cast<const float4*>(p);
#endif
}
__device__ __forceinline__ void store_float4(float* p, float4 v) {
#if defined(NASH_CUDA_EMULATION)
  p[0] = v.x, p[1] = v.y, p[2] = v.z, p[3] = v.w;
#else
  *reinterpret_cast<float4*>(p) = v;
#endif
}
__device__ __forceinline__ float4 ldg_float4(const float* p) {  // read-only global data, 16-byte aligned
#if defined(NASH_CUDA_EMULATION)
  return make_float4(p[0], p[1], p[2], p[3]);
#else
  return __ldg(reinterpret_cast<const float4*>(p));
#endif
}

// One operand's share of a k-tile (BO outer indices x kTileK) for one thread: E elements, fetched from global memory
// into registers, later stored into the shared tile [kTileK][BO + kSmemPad].
//  - scalar, k fast:     k = tid % 8,  outer = tid / 8 + 32 j   (a warp reads 8 consecutive k of 4 rows)
//  - scalar, outer fast: k = tid / 32, outer = tid % 32 + 32 j  (a warp reads 32 consecutive outer indices)
//  - float4, k fast:     k = (tid % 2) * 4 .. +3, outer = tid / 2
//  - float4, outer fast: k = tid / 32, outer = (tid % 32) * 4 .. +3
// Each thread thus has one k per tile (one step() per tile) and its outer indices fixed for the whole block.
template <class P, int BO, bool Vec>
struct TileFetch {
  static constexpr int kE = BO * kTileK / kGemmThreads;
  static constexpr int kLd = BO + kSmemPad;
  static constexpr int kOuters = Vec ? 1 : kE;
  static_assert(!Vec || kE == 4, "the float4 fetch is one float4 per thread");
  static_assert(kGemmThreads / 32 == kTileK, "the outer-fast fetch gives each warp one k");
  using Outer = typename P::Outer;

  Outer outer[kOuters];
  bool in[kOuters];
  int k_local, o_local;
  float r[kE];

  __device__ __forceinline__ void init(const P& p, int tid, int64_t o0, int64_t extent) {
    if (Vec) {
      k_local = P::kKFast ? (tid % 2) * 4 : tid / 32;
      o_local = P::kKFast ? tid / 2 : (tid % 32) * 4;
    } else {
      k_local = P::kKFast ? tid % kTileK : tid / 32;
      o_local = P::kKFast ? tid / kTileK : tid % 32;
    }
NASH_UNROLL
    for (int j = 0; j < kOuters; ++j) {
      const int64_t i = o0 + o_local + 32 * j;
      in[j] = i < extent;
      outer[j] = p.outer(in[j] ? i : extent - 1);  // clamped: the index math of a row past the edge stays in range
    }
  }
  // Fetches this thread's elements of the k-tile starting at k0 (zeros past ke or the outer extent).
  __device__ __forceinline__ void fetch(const P& p, int64_t k0, int64_t ke) {
    const int64_t k = k0 + k_local;
    const bool kin = k < ke;
    const auto s = p.step(kin ? k : ke - 1);
    if constexpr (Vec) {
      const float4 v = kin && in[0] ? p.load4(outer[0], s) : make_float4(0.f, 0.f, 0.f, 0.f);
      r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
    } else {
NASH_UNROLL
      for (int j = 0; j < kE; ++j) r[j] = kin && in[j] ? p.load(outer[j], s) : 0.f;
    }
  }
  __device__ __forceinline__ void store(float* tile) const {
    if constexpr (Vec && P::kKFast) {
NASH_UNROLL
      for (int i = 0; i < 4; ++i) tile[(k_local + i) * kLd + o_local] = r[i];
    } else if constexpr (Vec) {
      store_float4(tile + k_local * kLd + o_local, make_float4(r[0], r[1], r[2], r[3]));
    } else {
NASH_UNROLL
      for (int j = 0; j < kE; ++j) tile[k_local * kLd + o_local + 32 * j] = r[j];
    }
  }
};

// One GEMM of a launch: C (M x N) = A (M x K) · B (K x N), written through store(slice, m, n, value).
template <class A, class B, class Store>
struct Gemm {
  int64_t M, N, K;
  A a;
  B b;
  Store store;
};

// A launch of one GEMM. A launch of several (blockIdx.z = group * slices + slice) is any type with the same members
// whose group(g) returns the g-th GEMM; the grid covers the largest, blocks outside a smaller one return at once.
template <class A_, class B_, class Store_>
struct OneGemm {
  using A = A_;
  using B = B_;
  Gemm<A_, B_, Store_> gemm;
  __host__ __device__ __forceinline__ const Gemm<A_, B_, Store_>& group(unsigned) const { return gemm; }
};

// grid: (N tiles, M tiles, groups * slices); slice s reduces k in [s * k_per_slice, (s + 1) * k_per_slice).
template <class Shape, bool Vec, class Job>
__global__ void __launch_bounds__(kGemmThreads, 2)
    igemm_kernel(Job job, int64_t k_per_slice, unsigned slices) {
  using A = typename Job::A;
  using B = typename Job::B;
  constexpr int BM = Shape::kBM, BN = Shape::kBN, TM = Shape::kTM, TN = Shape::kTN;
  constexpr int LA = BM + kSmemPad, LB = BN + kSmemPad;
  NASH_SHARED(float4, As4, [2 * kTileK * LA / 4]);  // [buffer][k][m]
  NASH_SHARED(float4, Bs4, [2 * kTileK * LB / 4]);  // [buffer][k][n]
  float* As = reinterpret_cast<float*>(&As4[0]);
  float* Bs = reinterpret_cast<float*>(&Bs4[0]);

  const unsigned group = blockIdx.z / slices, slice = blockIdx.z % slices;
  const auto& p = job.group(group);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  if (m0 >= p.M || n0 >= p.N) return;  // the whole block: a smaller GEMM of a grouped launch
  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int64_t kb = static_cast<int64_t>(slice) * k_per_slice;
  const int64_t ke = kb + k_per_slice < p.K ? kb + k_per_slice : p.K;

  float acc[TM][TN];
NASH_UNROLL
  for (int i = 0; i < TM; ++i)
NASH_UNROLL
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  if (kb < ke) {  // an empty slice (K = 0, or past K) stores zeros
    TileFetch<A, BM, Vec> fa;
    TileFetch<B, BN, Vec> fb;
    fa.init(p.a, tid, m0, p.M);
    fb.init(p.b, tid, n0, p.N);
    fa.fetch(p.a, kb, ke);
    fb.fetch(p.b, kb, ke);
    fa.store(As);
    fb.store(Bs);
    __syncthreads();
    int buf = 0;
    for (int64_t k0 = kb; k0 < ke; k0 += kTileK) {
      const bool more = k0 + kTileK < ke;
      if (more) {  // the next tile's global loads are in flight during this tile's FMAs
        fa.fetch(p.a, k0 + kTileK, ke);
        fb.fetch(p.b, k0 + kTileK, ke);
      }
      const float* as = As + buf * kTileK * LA;
      const float* bs = Bs + buf * kTileK * LB;
NASH_UNROLL
      for (int kk = 0; kk < kTileK; ++kk) {
        float ar[TM], br[TN];
        // Thread tile rows ty*4..+3 of each BM/(TM/4)-row band (likewise columns): neighbouring threads read
        // neighbouring float4s, conflict-free.
NASH_UNROLL
        for (int g = 0; g < TM / 4; ++g) {
          const float4 v = load_float4(as + kk * LA + g * (BM * 4 / TM) + ty * 4);
          ar[4 * g] = v.x, ar[4 * g + 1] = v.y, ar[4 * g + 2] = v.z, ar[4 * g + 3] = v.w;
        }
NASH_UNROLL
        for (int g = 0; g < TN / 4; ++g) {
          const float4 v = load_float4(bs + kk * LB + g * (BN * 4 / TN) + tx * 4);
          br[4 * g] = v.x, br[4 * g + 1] = v.y, br[4 * g + 2] = v.z, br[4 * g + 3] = v.w;
        }
NASH_UNROLL
        for (int i = 0; i < TM; ++i)
NASH_UNROLL
          for (int j = 0; j < TN; ++j) acc[i][j] += ar[i] * br[j];
      }
      if (more) {  // the other buffer was last read before the previous barrier
        fa.store(As + (buf ^ 1) * kTileK * LA);
        fb.store(Bs + (buf ^ 1) * kTileK * LB);
      }
      __syncthreads();
      buf ^= 1;
    }
  }

NASH_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int64_t gm = m0 + (i / 4) * (BM * 4 / TM) + ty * 4 + i % 4;
    if (gm >= p.M) continue;
NASH_UNROLL
    for (int j = 0; j < TN; ++j) {
      const int64_t gn = n0 + (j / 4) * (BN * 4 / TN) + tx * 4 + j % 4;
      if (gn < p.N) p.store(slice, gm, gn, acc[i][j]);
    }
  }
}

// ---- launch planning -------------------------------------------------------------------------------------------

enum class GemmTile { Large, Small };
struct GemmPlan {
  GemmTile tile;
  int64_t slices;  // K-slices (partials summed in a fixed order afterwards), 1 for none
};

inline int64_t gemm_tiles(int64_t M, int64_t N, int bm, int bn) { return ((M + bm - 1) / bm) * ((N + bn - 1) / bn); }

// K-slices (of at least min_slice) for `tiles` output tiles on `sms` multiprocessors that run two blocks each at
// once: a full wave of blocks when K is long enough, else at most one block per multiprocessor (a wave and a half
// would leave the device waiting on the doubly loaded multiprocessors).
inline int64_t k_slices_for(int64_t tiles, int64_t K, int64_t min_slice, int sms) {
  const int64_t most = K / min_slice, full = 2 * static_cast<int64_t>(sms) / std::max<int64_t>(tiles, 1);
  return std::max<int64_t>(1, full <= most ? full : std::min(most, sms / std::max<int64_t>(tiles, 1)));
}

// The block tile and K-split of `groups` M x N x K GEMMs in one launch:
//  - 128x128 tiles when they give every multiprocessor a block;
//  - else, when K may be split and is long, 128x128 tiles over a full wave of K-slices of at least kMinSliceLarge
//    (a conv weight gradient: a small output, a reduction over the whole batch);
//  - else 64x64 tiles (four times the blocks), their K split (slices of at least kMinSliceSmall) while they leave
//    multiprocessors idle.
// large_ok: the job's per-thread state fits the large tile (large_tile_fits).
constexpr int64_t kMinSliceLarge = 512, kMinSliceSmall = 256;
inline GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K, bool may_split, int sms, int64_t groups = 1,
                          bool large_ok = true) {
  const int64_t large = groups * gemm_tiles(M, N, LargeTile::kBM, LargeTile::kBN);
  const int64_t small = groups * gemm_tiles(M, N, SmallTile::kBM, SmallTile::kBN);
  if (large_ok && large >= sms) return {GemmTile::Large, 1};
  if (large_ok && may_split) {
    const int64_t full = 2 * static_cast<int64_t>(sms) / std::max<int64_t>(large, 1);
    if (full >= 2 && K / kMinSliceLarge >= full) return {GemmTile::Large, full};
  }
  if (small >= sms || !may_split) return {GemmTile::Small, 1};
  return {GemmTile::Small, k_slices_for(small, K, kMinSliceSmall, sms)};
}

// Whether the large tile's 128 registers per thread hold a job's state besides 64 accumulators, 16 fragment values
// and 8 prefetched ones: 4 outer states per operand. 32-bit gathers (at most 24 bytes for both) fit; 64-bit ones
// would spill and take the small tile.
template <class Job>
constexpr bool large_tile_fits() {
  return sizeof(typename Job::A::Outer) + sizeof(typename Job::B::Outer) <= 24;
}

// Launches job's GEMMs (each at most M x N x K) with the plan's tile and slices.
template <class Job>
void launch_igemm(const char* name, const GemmPlan& plan, bool vec4, int64_t M, int64_t N, int64_t K, int64_t groups,
                  const Job& job, Stream stream) {
  constexpr bool kLargeFits = large_tile_fits<Job>();
  const bool large = kLargeFits && plan.tile == GemmTile::Large;
  const int bm = large ? LargeTile::kBM : SmallTile::kBM, bn = large ? LargeTile::kBN : SmallTile::kBN;
  const int64_t gx = (N + bn - 1) / bn, gy = (M + bm - 1) / bm, gz = groups * plan.slices;
  NASH_CHECK(gx <= 2147483647LL && gy <= 65535 && gz <= 65535, name, ": GEMM of ", M, "x", N, "x", K, " (",
             groups, " groups, ", plan.slices, " K-slices) is too large for one launch");
  int64_t per = (K + plan.slices - 1) / plan.slices;
  per = (per + kTileK - 1) / kTileK * kTileK;
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz));
  const unsigned slices = static_cast<unsigned>(plan.slices);
  if constexpr (kLargeFits) {
    if (large) {
      if constexpr (Vec4Capable<typename Job::A>::value && Vec4Capable<typename Job::B>::value) {
        if (vec4) {
          launch(name, igemm_kernel<LargeTile, true, Job>, grid, dim3(kGemmThreads), 0, stream, job, per, slices);
          return;
        }
      }
      launch(name, igemm_kernel<LargeTile, false, Job>, grid, dim3(kGemmThreads), 0, stream, job, per, slices);
      return;
    }
  }
  (void)vec4;
  launch(name, igemm_kernel<SmallTile, false, Job>, grid, dim3(kGemmThreads), 0, stream, job, per, slices);
}

struct SliceStore {  // partial[slice, m, n]
  float* part;
  int64_t M, N;
  __host__ __device__ __forceinline__ void operator()(unsigned slice, int64_t m, int64_t n, float v) const {
    part[(static_cast<int64_t>(slice) * M + m) * N + n] = v;
  }
};

// The K-split of a job: group g writes its partial sums to part + g * group_stride.
template <class Job>
struct SlicedJob {
  using A = typename Job::A;
  using B = typename Job::B;
  Job job;
  float* part;
  int64_t group_stride;
  __host__ __device__ __forceinline__ Gemm<A, B, SliceStore> group(unsigned g) const {
    const auto& p = job.group(g);
    return {p.M, p.N, p.K, p.a, p.b, SliceStore{part + g * group_stride, p.M, p.N}};
  }
};

// The finish of a K-split job (blockIdx.y: the group): store(m, n, sum over s of part[s, m, n]), added in slice
// order (deterministic).
template <class Job>
__global__ void sum_slices_into(const float* __restrict__ part, int64_t slices, int64_t group_stride, Job job) {
  const auto& p = job.group(blockIdx.y);
  const int64_t total = p.M * p.N;
  part += blockIdx.y * group_stride;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int64_t k = 0; k < slices; ++k) s += part[k * total + i];
    p.store(0, i / p.N, i % p.N, s);
  }
}

// Runs job (`groups` GEMMs, each at most M x N x K) with a given plan: a K-split one through partials and a
// fixed-order sum.
template <class Job>
void run_igemm(const char* name, const GemmPlan& plan, bool vec4, int64_t M, int64_t N, int64_t K, int64_t groups,
               const Job& job, Device device) {
  if (M == 0 || N == 0 || groups == 0) return;
  if (plan.slices <= 1) {
    launch_igemm(name, {plan.tile, 1}, vec4, M, N, K, groups, job, current_stream());
    return;
  }
  const int64_t stride = plan.slices * M * N;
  Tensor part = empty({groups * stride}, DType::Float32, device);
  launch_igemm(name, plan, vec4, M, N, K, groups, SlicedJob<Job>{job, part.data_ptr<float>(), stride},
               current_stream());
  launch(name, sum_slices_into<Job>, dim3(blocks_for(M * N, 256), static_cast<unsigned>(groups)), dim3(256), 0,
         current_stream(), static_cast<const float*>(part.data_ptr<float>()), plan.slices, stride, job);
}

// C = A·B into store with a given plan.
template <class A, class B, class Store>
void igemm_planned(const char* name, const GemmPlan& plan, int64_t M, int64_t N, int64_t K, const A& a, const B& b,
                   const Store& store, Device device) {
  bool vec4 = false;
  if constexpr (Vec4Capable<A>::value && Vec4Capable<B>::value) vec4 = a.vec4_ok(M, K) && b.vec4_ok(N, K);
  run_igemm(name, plan, vec4, M, N, K, 1, OneGemm<A, B, Store>{{M, N, K, a, b, store}}, device);
}

#if defined(NASH_CUDA_EMULATION)
// The emulation's tests pin the plan so that problems small enough to emulate run every tile shape and K-split
// (the H100-sized planning would give them the small tile without a split). Inactive unless a test sets it.
struct GemmPlanPin {
  bool active = false;
  GemmPlan plan{GemmTile::Small, 1};
};
inline GemmPlanPin& gemm_plan_pin() {
  static GemmPlanPin pin;
  return pin;
}
#endif

// The plan of an M x N x K GEMM (`groups` of them in one launch) on this device. may_split: the store is linear,
// so a K-split's partial sums may be added afterwards (false for an epilogue such as an activation).
inline GemmPlan plan_for_device(int64_t M, int64_t N, int64_t K, bool may_split, int64_t groups, bool large_ok) {
#if defined(NASH_CUDA_EMULATION)
  if (gemm_plan_pin().active) {
    GemmPlan p = gemm_plan_pin().plan;
    if (!may_split) p.slices = 1;
    if (!large_ok) p.tile = GemmTile::Small;
    return p;
  }
#endif
  return plan_gemm(M, N, K, may_split, device_sm_count(), groups, large_ok);
}

// C = A·B into store, planned for this device (see plan_for_device for may_split).
template <class A, class B, class Store>
void igemm(const char* name, int64_t M, int64_t N, int64_t K, const A& a, const B& b, const Store& store,
           bool may_split, Device device) {
  const bool large_ok = large_tile_fits<OneGemm<A, B, Store>>();
  igemm_planned(name, plan_for_device(M, N, K, may_split, 1, large_ok), M, N, K, a, b, store, device);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
