// CUDA multi-tensor optimizer step: a whole model per launch, whatever its tensor count. The host packs per-tensor
// metadata (pointers, sizes, group, per-tensor scalars), a block -> (tensor, chunk) work list and per-group item
// ranges into one buffer copied to the device each step. Adam is one launch. The norm rules are two: phase 1 moves
// the moments and writes each block's partial sums of squares; phase 2 has every block reduce its own group's
// partials in a fixed order (identical in every block, so no extra launch or grid-wide sync is needed), derive
// the group's scale and update its chunk. Loads and stores are float4 where a tensor's buffers are 16-byte aligned.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "kernels/cuda/backend.h"
#include "kernels/optim_step.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {

using detail::MomentCoeffs;
using detail::StepRule;

constexpr unsigned kThreads = 256;
constexpr int64_t kChunk = 4096;  // elements per block: four float4 rounds of 256 threads

struct DevTensor {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  int32_t group;
  int32_t vec;  // every buffer 16-byte aligned: float4 path
  float step_size, denom_scale, oracle_scale, unused;
};
struct DevItem {
  int32_t tensor, chunk;
};
struct DevGroup {
  int32_t first, end;  // the group's items
  double lr;
};

__device__ __forceinline__ float load_or(const float* p, int64_t i, float fallback) { return p ? p[i] : fallback; }

// Adam rule: one element (m absent: m = d, LREQAdam).
__device__ __forceinline__ void adam_elem(const DevTensor& t, const MomentCoeffs<float>& c, float& p, float g, float& m,
                                          float& v) {
  float d = g + c.wd * p;
  m = t.m ? detail::first_moment(c, m, d) : d;
  v = detail::second_moment(c, v, d);
  p -= t.step_size * detail::adam_ratio(m, v, t.denom_scale, c.eps);
}

// Oracle rules, phase 1: moves the moments, accumulates g² and A².
__device__ __forceinline__ void oracle_elem(const DevTensor& t, const MomentCoeffs<float>& c, float g, float& m,
                                            float& v, float& sg, float& sa) {
  m = detail::first_moment(c, m, g);
  v = detail::second_moment(c, v, g);
  float a = t.oracle_scale * detail::adam_ratio(m, v, t.denom_scale, c.eps);
  sg += g * g;
  sa += a * a;
}

__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

__global__ void adam_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                            MomentCoeffs<float> c) {
  const DevItem it = items[blockIdx.x];
  const DevTensor t = tensors[it.tensor];
  const int64_t begin = static_cast<int64_t>(it.chunk) * kChunk;
  const int64_t end = begin + kChunk < t.n ? begin + kChunk : t.n;
  for (int64_t i = begin + 4 * static_cast<int64_t>(threadIdx.x); i < end; i += 4 * static_cast<int64_t>(blockDim.x)) {
    if (t.vec && i + 4 <= end) {
      float4 p = load4(t.p + i), g = load4(t.g + i), v = load4(t.v + i);
      float4 m = t.m ? load4(t.m + i) : g;
      adam_elem(t, c, p.x, g.x, m.x, v.x);
      adam_elem(t, c, p.y, g.y, m.y, v.y);
      adam_elem(t, c, p.z, g.z, m.z, v.z);
      adam_elem(t, c, p.w, g.w, m.w, v.w);
      store4(t.p + i, p);
      store4(t.v + i, v);
      if (t.m) store4(t.m + i, m);
    } else {
      for (int64_t j = i; j < end && j < i + 4; ++j) {
        float p = t.p[j], v = t.v[j], m = load_or(t.m, j, 0.f);
        adam_elem(t, c, p, t.g[j], m, v);
        t.p[j] = p;
        t.v[j] = v;
        if (t.m) t.m[j] = m;
      }
    }
  }
}

// Sums two values over the block (warp shuffles, then the warps' partials); thread 0 gets the totals.
__device__ __forceinline__ void block_sum2(float& a, float& b) {
  NASH_SHARED(float, part, [2][kThreads / 32]);
  for (int o = 16; o > 0; o /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    part[0][warp] = a;
    part[1][warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < blockDim.x / 32 ? part[0][lane] : 0.f;
    b = lane < blockDim.x / 32 ? part[1][lane] : 0.f;
    for (int o = 16; o > 0; o /= 2) {
      a += __shfl_down_sync(0xffffffffu, a, o);
      b += __shfl_down_sync(0xffffffffu, b, o);
    }
  }
}

// Phase 1: partial[2k] = sum of g² over item k, partial[2k + 1] = sum of A² (oracle rules).
template <StepRule R>
__global__ void norms_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                             MomentCoeffs<float> c, float* __restrict__ partial) {
  const DevItem it = items[blockIdx.x];
  const DevTensor t = tensors[it.tensor];
  const int64_t begin = static_cast<int64_t>(it.chunk) * kChunk;
  const int64_t end = begin + kChunk < t.n ? begin + kChunk : t.n;
  float sg = 0.f, sa = 0.f;
  for (int64_t i = begin + 4 * static_cast<int64_t>(threadIdx.x); i < end; i += 4 * static_cast<int64_t>(blockDim.x)) {
    if (t.vec && i + 4 <= end) {
      float4 g = load4(t.g + i);
      if (R == StepRule::NSGDA) {
        sg += g.x * g.x + g.y * g.y + g.z * g.z + g.w * g.w;
      } else {
        float4 m = load4(t.m + i), v = load4(t.v + i);
        oracle_elem(t, c, g.x, m.x, v.x, sg, sa);
        oracle_elem(t, c, g.y, m.y, v.y, sg, sa);
        oracle_elem(t, c, g.z, m.z, v.z, sg, sa);
        oracle_elem(t, c, g.w, m.w, v.w, sg, sa);
        store4(t.m + i, m);
        store4(t.v + i, v);
      }
    } else {
      for (int64_t j = i; j < end && j < i + 4; ++j) {
        float g = t.g[j];
        if (R == StepRule::NSGDA) {
          sg += g * g;
        } else {
          float m = t.m[j], v = t.v[j];
          oracle_elem(t, c, g, m, v, sg, sa);
          t.m[j] = m;
          t.v[j] = v;
        }
      }
    }
  }
  block_sum2(sg, sa);
  if (threadIdx.x == 0) {
    partial[2 * static_cast<int64_t>(blockIdx.x)] = sg;
    partial[2 * static_cast<int64_t>(blockIdx.x) + 1] = sa;
  }
}

// Phase 2: the group's norms from its partials (float64, fixed tree), then p -= scale * direction.
template <StepRule R>
__global__ void update_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                              const DevGroup* __restrict__ groups, const float* __restrict__ partial,
                              MomentCoeffs<float> c, double eps, double* stats) {
  NASH_SHARED(double, red, [2][kThreads]);
  const DevItem it = items[blockIdx.x];
  const DevTensor t = tensors[it.tensor];
  const DevGroup grp = groups[t.group];
  double sg = 0, sa = 0;
  for (int32_t k = grp.first + static_cast<int32_t>(threadIdx.x); k < grp.end; k += static_cast<int32_t>(blockDim.x)) {
    sg += partial[2 * static_cast<int64_t>(k)];
    sa += partial[2 * static_cast<int64_t>(k) + 1];
  }
  red[0][threadIdx.x] = sg;
  red[1][threadIdx.x] = sa;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      red[0][threadIdx.x] += red[0][threadIdx.x + s];
      red[1][threadIdx.x] += red[1][threadIdx.x + s];
    }
    __syncthreads();
  }
  const double gn = std::sqrt(red[0][0]), an = std::sqrt(red[1][0]);
  const float scale = static_cast<float>(detail::group_scale(R, grp.lr, gn, an, eps));
  if (stats && threadIdx.x == 0 && static_cast<int32_t>(blockIdx.x) == grp.first) {
    stats[3 * t.group] = gn;
    stats[3 * t.group + 1] = an;
    stats[3 * t.group + 2] += an;
  }
  const int64_t begin = static_cast<int64_t>(it.chunk) * kChunk;
  const int64_t end = begin + kChunk < t.n ? begin + kChunk : t.n;
  for (int64_t i = begin + 4 * static_cast<int64_t>(threadIdx.x); i < end; i += 4 * static_cast<int64_t>(blockDim.x)) {
    if (t.vec && i + 4 <= end) {
      float4 p = load4(t.p + i), d;
      if (R == StepRule::AdaDir) {
        float4 m = load4(t.m + i), v = load4(t.v + i);
        d.x = t.oracle_scale * detail::adam_ratio(m.x, v.x, t.denom_scale, c.eps);
        d.y = t.oracle_scale * detail::adam_ratio(m.y, v.y, t.denom_scale, c.eps);
        d.z = t.oracle_scale * detail::adam_ratio(m.z, v.z, t.denom_scale, c.eps);
        d.w = t.oracle_scale * detail::adam_ratio(m.w, v.w, t.denom_scale, c.eps);
      } else {
        d = load4(t.g + i);
      }
      p.x -= scale * d.x;
      p.y -= scale * d.y;
      p.z -= scale * d.z;
      p.w -= scale * d.w;
      store4(t.p + i, p);
    } else {
      for (int64_t j = i; j < end && j < i + 4; ++j) {
        float d =
            R == StepRule::AdaDir ? t.oracle_scale * detail::adam_ratio(t.m[j], t.v[j], t.denom_scale, c.eps) : t.g[j];
        t.p[j] -= scale * d;
      }
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

std::size_t align_up(std::size_t n) { return (n + 15) & ~static_cast<std::size_t>(15); }

template <StepRule R>
void run_norm_rule(const DevTensor* t, const DevItem* it, const DevGroup* g, int64_t ni, const MomentCoeffs<float>& c,
                   double eps, double* stats, Device device) {
  Tensor partial = empty({2 * ni}, DType::Float32, device);
  launch("optim_step_norms", norms_kernel<R>, dim3(static_cast<unsigned>(ni)), dim3(kThreads), 0, current_stream(), t,
         it, c, partial.data_ptr<float>());
  launch("optim_step_update", update_kernel<R>, dim3(static_cast<unsigned>(ni)), dim3(kThreads), 0, current_stream(), t,
         it, g, static_cast<const float*>(partial.data_ptr<float>()), c, eps, stats);
}

}  // namespace

void multi_tensor_step(const detail::MultiTensorStep& s) {
  NASH_CHECK(s.dtype == DType::Float32, "optim_step: CUDA kernels are float32-only, got ", dtype_name(s.dtype),
             " (use float64 on the CPU)");
  std::vector<DevTensor> tensors;
  std::vector<DevItem> items;
  std::vector<DevGroup> groups(s.group_lr.size(), DevGroup{0, 0, 0.0});
  for (std::size_t gi = 0; gi < groups.size(); ++gi) groups[gi].lr = s.group_lr[gi];
  for (const detail::StepTensor& st : s.tensors) {
    DevTensor d{};
    d.p = static_cast<float*>(st.param);
    d.g = static_cast<const float*>(st.grad);
    d.m = static_cast<float*>(st.exp_avg);
    d.v = static_cast<float*>(st.exp_avg_sq);
    d.n = st.numel;
    d.group = st.group;
    d.vec = aligned16(d.p) && aligned16(d.g) && (!d.m || aligned16(d.m)) && (!d.v || aligned16(d.v));
    d.step_size = static_cast<float>(st.step_size);
    d.denom_scale = static_cast<float>(st.denom_scale);
    d.oracle_scale = static_cast<float>(st.oracle_scale);
    const int64_t chunks = (st.numel + kChunk - 1) / kChunk;
    NASH_CHECK(chunks < (int64_t{1} << 31), "optim_step: tensor of ", st.numel, " elements is too large");
    const int32_t tensor = static_cast<int32_t>(tensors.size());
    if (chunks > 0 && groups[st.group].end == 0) groups[st.group].first = static_cast<int32_t>(items.size());
    for (int64_t k = 0; k < chunks; ++k) items.push_back({tensor, static_cast<int32_t>(k)});
    if (chunks > 0) groups[st.group].end = static_cast<int32_t>(items.size());
    tensors.push_back(d);
  }
  const int64_t ni = static_cast<int64_t>(items.size());
  if (ni == 0) return;
  NASH_CHECK(ni < (int64_t{1} << 31), "optim_step: ", ni, " blocks exceed one launch");

  // One host buffer, one copy: [tensors][items][groups], each 16-byte aligned.
  const std::size_t off_items = align_up(tensors.size() * sizeof(DevTensor));
  const std::size_t off_groups = off_items + align_up(items.size() * sizeof(DevItem));
  const std::size_t bytes = off_groups + align_up(groups.size() * sizeof(DevGroup));
  std::vector<unsigned char> host(bytes, 0);
  std::memcpy(host.data(), tensors.data(), tensors.size() * sizeof(DevTensor));
  std::memcpy(host.data() + off_items, items.data(), items.size() * sizeof(DevItem));
  std::memcpy(host.data() + off_groups, groups.data(), groups.size() * sizeof(DevGroup));
  Tensor meta = empty({static_cast<int64_t>(bytes / 4)}, DType::Float32, s.device);
  detail::copy_bytes(meta.raw_data(), s.device, host.data(), Device::cpu(), bytes);
  unsigned char* base = static_cast<unsigned char*>(meta.raw_data());
  const DevTensor* dt = reinterpret_cast<const DevTensor*>(base);
  const DevItem* di = reinterpret_cast<const DevItem*>(base + off_items);
  const DevGroup* dg = reinterpret_cast<const DevGroup*>(base + off_groups);

  const MomentCoeffs<float> c = MomentCoeffs<float>::make(s);
  switch (s.rule) {
    case StepRule::Adam:
      launch("optim_step_adam", adam_kernel, dim3(static_cast<unsigned>(ni)), dim3(kThreads), 0, current_stream(), dt,
             di, c);
      break;
    case StepRule::NSGDA:
      run_norm_rule<StepRule::NSGDA>(dt, di, dg, ni, c, s.eps, s.group_stats, s.device);
      break;
    case StepRule::AdaNSGDA:
      run_norm_rule<StepRule::AdaNSGDA>(dt, di, dg, ni, c, s.eps, s.group_stats, s.device);
      break;
    case StepRule::AdaDir:
      run_norm_rule<StepRule::AdaDir>(dt, di, dg, ni, c, s.eps, s.group_stats, s.device);
      break;
  }
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
