// CUDA multi-tensor optimizer step: a whole model per launch, whatever its tensor count. The host packs per-tensor
// metadata (pointers, sizes, group, per-tensor scalars), a block -> (tensor, chunk) work list and per-group item
// ranges into one buffer copied to the device each step. Adam and SGD are one launch. The norm rules are two: phase 1 moves
// the moments and writes each block's partial sums of squares; phase 2 has every block reduce its own group's
// partials in a fixed order (identical in every block, so no extra launch or grid-wide sync is needed), derive
// the group's scale and update its chunk. Loads and stores are float4 where a tensor's buffers are 16-byte aligned.
// When the step's norms are asked for, the updating kernel's blocks also write their sums of g², p² and (Δp)², and
// the host adds each group's blocks in order after one copy back.
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
  float step_size, denom_scale, oracle_scale, momentum_decay, grad_weight, unused;
};
struct DevItem {
  int32_t tensor, chunk;
};
struct DevGroup {
  int32_t first, end;  // the group's items
  double lr;
};

__device__ __forceinline__ float load_or(const float* p, int64_t i, float fallback) { return p ? p[i] : fallback; }

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

// Adds the sums of squares of one element's step (gradient, parameter before, update) to acc.
__device__ __forceinline__ void add_norms(float (&acc)[3], float g, float p0, float p1) {
  const float d = p1 - p0;  // exact: p1 and p0 are within a factor of two unless the step is huge
  acc[0] += g * g;
  acc[1] += p0 * p0;
  acc[2] += d * d;
}

__device__ __forceinline__ void add_norms(float (&acc)[3], float4 g, float4 p0, float4 p1) {
  add_norms(acc, g.x, p0.x, p1.x);
  add_norms(acc, g.y, p0.y, p1.y);
  add_norms(acc, g.z, p0.z, p1.z);
  add_norms(acc, g.w, p0.w, p1.w);
}

// Thread 0 writes the block's three sums to norms[3 * block].
__device__ __forceinline__ void write_norms(float (&acc)[3], double* norms) {
  float c = acc[2];
  block_sum2(acc[0], acc[1]);
  __syncthreads();
  float unused = 0.f;
  block_sum2(c, unused);
  if (threadIdx.x == 0) {
    norms[3 * static_cast<int64_t>(blockIdx.x)] = acc[0];
    norms[3 * static_cast<int64_t>(blockIdx.x) + 1] = acc[1];
    norms[3 * static_cast<int64_t>(blockIdx.x) + 2] = c;
  }
}

// The elementwise rules, one element: Adam (m absent: m = d, LREQAdam) or SGD (m: the momentum buffer, if any).
template <StepRule R>
__device__ __forceinline__ void elementwise_elem(const DevTensor& t, const MomentCoeffs<float>& c, float momentum,
                                                 bool nesterov, float& p, float g, float& m, float& v) {
  const float d = g + c.wd * p;
  if (R == StepRule::SGD) {
    p -= t.step_size * detail::sgd_direction(t.m != nullptr, nesterov, momentum, t.momentum_decay, t.grad_weight, d, m);
  } else {
    m = t.m ? detail::first_moment(c, m, d) : d;
    v = detail::second_moment(c, v, d);
    p -= t.step_size * detail::adam_ratio(m, v, t.denom_scale, c.eps);
  }
}

template <StepRule R, bool Norms>
__global__ void elementwise_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                                   MomentCoeffs<float> c, float momentum, bool nesterov, double* norms) {
  const DevItem it = items[blockIdx.x];
  const DevTensor t = tensors[it.tensor];
  const bool has_v = R == StepRule::Adam;
  const int64_t begin = static_cast<int64_t>(it.chunk) * kChunk;
  const int64_t end = begin + kChunk < t.n ? begin + kChunk : t.n;
  float acc[3] = {0.f, 0.f, 0.f};
  for (int64_t i = begin + 4 * static_cast<int64_t>(threadIdx.x); i < end; i += 4 * static_cast<int64_t>(blockDim.x)) {
    if (t.vec && i + 4 <= end) {
      const float4 p0 = load4(t.p + i), g = load4(t.g + i);
      float4 p = p0, v = has_v ? load4(t.v + i) : make_float4(0.f, 0.f, 0.f, 0.f);
      float4 m = t.m ? load4(t.m + i) : g;
      elementwise_elem<R>(t, c, momentum, nesterov, p.x, g.x, m.x, v.x);
      elementwise_elem<R>(t, c, momentum, nesterov, p.y, g.y, m.y, v.y);
      elementwise_elem<R>(t, c, momentum, nesterov, p.z, g.z, m.z, v.z);
      elementwise_elem<R>(t, c, momentum, nesterov, p.w, g.w, m.w, v.w);
      store4(t.p + i, p);
      if (has_v) store4(t.v + i, v);
      if (t.m) store4(t.m + i, m);
      if (Norms) add_norms(acc, g, p0, p);
    } else {
      for (int64_t j = i; j < end && j < i + 4; ++j) {
        const float p0 = t.p[j], g = t.g[j];
        float p = p0, v = has_v ? t.v[j] : 0.f, m = load_or(t.m, j, 0.f);
        elementwise_elem<R>(t, c, momentum, nesterov, p, g, m, v);
        t.p[j] = p;
        if (has_v) t.v[j] = v;
        if (t.m) t.m[j] = m;
        if (Norms) add_norms(acc, g, p0, p);
      }
    }
  }
  if (Norms) write_norms(acc, norms);
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
template <StepRule R, bool Norms>
__global__ void update_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                              const DevGroup* __restrict__ groups, const float* __restrict__ partial,
                              MomentCoeffs<float> c, double eps, double* stats, double* norms) {
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
  float acc[3] = {0.f, 0.f, 0.f};
  for (int64_t i = begin + 4 * static_cast<int64_t>(threadIdx.x); i < end; i += 4 * static_cast<int64_t>(blockDim.x)) {
    if (t.vec && i + 4 <= end) {
      const float4 p0 = load4(t.p + i);
      float4 p = p0, d, g;
      if (R == StepRule::AdaDir) {
        float4 m = load4(t.m + i), v = load4(t.v + i);
        d.x = t.oracle_scale * detail::adam_ratio(m.x, v.x, t.denom_scale, c.eps);
        d.y = t.oracle_scale * detail::adam_ratio(m.y, v.y, t.denom_scale, c.eps);
        d.z = t.oracle_scale * detail::adam_ratio(m.z, v.z, t.denom_scale, c.eps);
        d.w = t.oracle_scale * detail::adam_ratio(m.w, v.w, t.denom_scale, c.eps);
        if (Norms) g = load4(t.g + i);
      } else {
        d = g = load4(t.g + i);
      }
      p.x -= scale * d.x;
      p.y -= scale * d.y;
      p.z -= scale * d.z;
      p.w -= scale * d.w;
      store4(t.p + i, p);
      if (Norms) add_norms(acc, g, p0, p);
    } else {
      for (int64_t j = i; j < end && j < i + 4; ++j) {
        float d =
            R == StepRule::AdaDir ? t.oracle_scale * detail::adam_ratio(t.m[j], t.v[j], t.denom_scale, c.eps) : t.g[j];
        const float p0 = t.p[j], p = p0 - scale * d;
        t.p[j] = p;
        if (Norms) add_norms(acc, t.g[j], p0, p);
      }
    }
  }
  if (Norms) write_norms(acc, norms);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

std::size_t align_up(std::size_t n) { return (n + 15) & ~static_cast<std::size_t>(15); }

template <StepRule R>
void run_norm_rule(const DevTensor* t, const DevItem* it, const DevGroup* g, int64_t ni, const MomentCoeffs<float>& c,
                   double eps, double* stats, double* norms, Device device) {
  Tensor partial = empty({2 * ni}, DType::Float32, device);
  const dim3 grid(static_cast<unsigned>(ni)), block(kThreads);
  launch("optim_step_norms", norms_kernel<R>, grid, block, 0, current_stream(), t, it, c, partial.data_ptr<float>());
  const float* part = partial.data_ptr<float>();
  if (norms)
    launch("optim_step_update", update_kernel<R, true>, grid, block, 0, current_stream(), t, it, g, part, c, eps, stats,
           norms);
  else
    launch("optim_step_update", update_kernel<R, false>, grid, block, 0, current_stream(), t, it, g, part, c, eps, stats,
           norms);
}

template <StepRule R>
void run_elementwise(const DevTensor* t, const DevItem* it, int64_t ni, const detail::MultiTensorStep& s,
                     double* norms) {
  const MomentCoeffs<float> c = MomentCoeffs<float>::make(s);
  const float momentum = static_cast<float>(s.beta1);
  const dim3 grid(static_cast<unsigned>(ni)), block(kThreads);
  if (norms)
    launch("optim_step_elementwise", elementwise_kernel<R, true>, grid, block, 0, current_stream(), t, it, c, momentum,
           s.nesterov, norms);
  else
    launch("optim_step_elementwise", elementwise_kernel<R, false>, grid, block, 0, current_stream(), t, it, c,
           momentum, s.nesterov, norms);
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
    d.momentum_decay = static_cast<float>(st.momentum_decay);
    d.grad_weight = static_cast<float>(st.grad_weight);
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
  Tensor norms;  // float64 [3 * items]: each block's sums for step_norms
  if (s.step_norms) norms = empty({3 * ni}, DType::Float64, s.device);
  double* dn = s.step_norms ? norms.data_ptr<double>() : nullptr;
  switch (s.rule) {
    case StepRule::Adam:
      run_elementwise<StepRule::Adam>(dt, di, ni, s, dn);
      break;
    case StepRule::SGD:
      run_elementwise<StepRule::SGD>(dt, di, ni, s, dn);
      break;
    case StepRule::NSGDA:
      run_norm_rule<StepRule::NSGDA>(dt, di, dg, ni, c, s.eps, s.group_stats, dn, s.device);
      break;
    case StepRule::AdaNSGDA:
      run_norm_rule<StepRule::AdaNSGDA>(dt, di, dg, ni, c, s.eps, s.group_stats, dn, s.device);
      break;
    case StepRule::AdaDir:
      run_norm_rule<StepRule::AdaDir>(dt, di, dg, ni, c, s.eps, s.group_stats, dn, s.device);
      break;
  }
  if (!s.step_norms) return;
  std::vector<double> host_norms(static_cast<std::size_t>(3 * ni));
  detail::copy_bytes(host_norms.data(), Device::cpu(), dn, s.device, host_norms.size() * sizeof(double));
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    if (groups[gi].end == 0) continue;
    double sum[3] = {0, 0, 0};
    for (int32_t k = groups[gi].first; k < groups[gi].end; ++k)
      for (int j = 0; j < 3; ++j) sum[j] += host_norms[3 * static_cast<std::size_t>(k) + j];
    for (int j = 0; j < 3; ++j) s.step_norms[3 * gi + j] = sum[j];
  }
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
