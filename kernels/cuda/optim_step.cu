// CUDA multi-tensor optimizer step: a whole model per launch, whatever its tensor count. Adam and SGD are one launch.
// The norm rules are two: phase 1 moves the moments and writes each block's partial sums of squares; phase 2 has
// every block reduce its own group's partials in a fixed order (identical in every block, so no extra launch or
// grid-wide sync is needed), derive the group's scale and update its chunk. Loads and stores are float4 where a
// tensor's buffers are 16-byte aligned. When the step's norms are asked for, the updating kernel's blocks also write
// their sums of g², p² and (Δp)², and the host adds each group's blocks in order after one copy back.
//
// Metadata. A step's description has two parts:
// * static: per tensor the parameter and moment pointers, size, group and float4 flag (DevTensor), the
//   block -> (tensor, chunk) work list (DevItem) and each group's item range (DevGroup). It is the same from step
//   to step while the parameter set is, so it stays on the device in a small cache (kStepCacheEntries entries,
//   least recently used dropped first; a GAN alternates G and D, so one entry would not do). An entry is keyed by
//   the device and the exact DevTensor bytes plus the group count (which determine the work list and the ranges);
//   a lookup compares those bytes, never only a hash. A hit uploads nothing.
// * per step: each tensor's gradient pointer (backward makes a new gradient tensor every step, so it is never
//   static) and scalars (step_size, denom_scale, oracle_scale, momentum_decay, grad_weight, which move with each
//   tensor's step count), and each group's lr. Up to kInlineTensors tensors and kInlineGroups groups they are one
//   fixed-size kernel argument (InlineScalars, 2.3 KB of the 4 KB parameter space), so a step is launches only;
//   beyond that they are copied to the device each step (GlobalScalars) as the whole description used to be.
// Validity: an entry owns its device buffer (a Tensor), so a buffer in use is never freed, and cuda::empty_cache
// (which releases only unused blocks) cannot take it; evicting an entry frees its buffer in stream order like any
// temporary. The pointers in an entry are used only by a step whose own pointers are the same bytes, so a tensor
// freed and re-allocated at the same address with the same size reuses the entry correctly, and one moved to
// another address or device misses.
#include <cmath>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "core/backend.h"
#include "kernels/cuda/backend.h"
#include "kernels/cuda/optim_step_cache.h"
#include "kernels/optim_step.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {

using detail::MomentCoeffs;
using detail::StepRule;

constexpr unsigned kThreads = 256;
constexpr int64_t kChunk = 4096;  // elements per block: four float4 rounds of 256 threads

// Static metadata (cached on the device).
struct DevTensor {
  float* p;
  float* m;  // null: the first moment is the gradient (LREQAdam) or SGD keeps no momentum buffer
  float* v;
  int64_t n;
  int32_t group;
  int32_t vec;  // p, m and v 16-byte aligned: float4 path if the step's gradient is too
};
static_assert(sizeof(DevTensor) == 3 * sizeof(float*) + 16, "DevTensor has no padding: the cache compares its bytes");
struct DevItem {
  int32_t tensor, chunk;
};
struct DevGroup {
  int32_t first, end;  // the group's items
};

// Per-step metadata of one tensor.
struct StepScalars {
  const float* g;
  float step_size, denom_scale, oracle_scale, momentum_decay, grad_weight;
};

__host__ __device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// The per-step metadata as a kernel argument, by value: read from the constant bank, nothing to upload.
struct InlineScalars {
  const float* g[kInlineTensors];
  float step_size[kInlineTensors], denom_scale[kInlineTensors], oracle_scale[kInlineTensors],
      momentum_decay[kInlineTensors], grad_weight[kInlineTensors];
  double lr[kInlineGroups];
  __device__ __forceinline__ StepScalars tensor(int32_t k) const {
    return {g[k], step_size[k], denom_scale[k], oracle_scale[k], momentum_decay[k], grad_weight[k]};
  }
  __device__ __forceinline__ double group_lr(int32_t k) const { return lr[k]; }
};
static_assert(sizeof(InlineScalars) <= 2560, "InlineScalars must leave room in the 4 KB kernel parameter space");

// The per-step metadata in device memory, for steps too large for InlineScalars.
struct GlobalScalars {
  const StepScalars* tensors;
  const double* lr;
  __device__ __forceinline__ StepScalars tensor(int32_t k) const { return tensors[k]; }
  __device__ __forceinline__ double group_lr(int32_t k) const { return lr[k]; }
};

// One tensor as a block sees it: its static and per-step parts together.
struct TensorView {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  int32_t group;
  bool vec;
  float step_size, denom_scale, oracle_scale, momentum_decay, grad_weight;
};

template <class S>
__device__ __forceinline__ TensorView tensor_view(const DevTensor* __restrict__ tensors, const S& scalars, int32_t k) {
  const DevTensor t = tensors[k];
  const StepScalars s = scalars.tensor(k);
  TensorView v;
  v.p = t.p;
  v.g = s.g;
  v.m = t.m;
  v.v = t.v;
  v.n = t.n;
  v.group = t.group;
  v.vec = t.vec != 0 && aligned16(s.g);
  v.step_size = s.step_size;
  v.denom_scale = s.denom_scale;
  v.oracle_scale = s.oracle_scale;
  v.momentum_decay = s.momentum_decay;
  v.grad_weight = s.grad_weight;
  return v;
}

__device__ __forceinline__ float load_or(const float* p, int64_t i, float fallback) { return p ? p[i] : fallback; }

// Oracle rules, phase 1: moves the moments, accumulates g² and A².
__device__ __forceinline__ void oracle_elem(const TensorView& t, const MomentCoeffs<float>& c, float g, float& m,
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
__device__ __forceinline__ void elementwise_elem(const TensorView& t, const MomentCoeffs<float>& c, float momentum,
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

template <StepRule R, bool Norms, class S>
__global__ void elementwise_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                                   const S scalars, MomentCoeffs<float> c, float momentum, bool nesterov,
                                   double* norms) {
  const DevItem it = items[blockIdx.x];
  const TensorView t = tensor_view(tensors, scalars, it.tensor);
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
template <StepRule R, class S>
__global__ void norms_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                             const S scalars, MomentCoeffs<float> c, float* __restrict__ partial) {
  const DevItem it = items[blockIdx.x];
  const TensorView t = tensor_view(tensors, scalars, it.tensor);
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
template <StepRule R, bool Norms, class S>
__global__ void update_kernel(const DevTensor* __restrict__ tensors, const DevItem* __restrict__ items,
                              const DevGroup* __restrict__ groups, const S scalars, const float* __restrict__ partial,
                              MomentCoeffs<float> c, double eps, double* stats, double* norms) {
  NASH_SHARED(double, red, [2][kThreads]);
  const DevItem it = items[blockIdx.x];
  const TensorView t = tensor_view(tensors, scalars, it.tensor);
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
  const float scale = static_cast<float>(detail::group_scale(R, scalars.group_lr(t.group), gn, an, eps));
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

std::size_t align_up(std::size_t n) { return (n + 15) & ~static_cast<std::size_t>(15); }

// One parameter set's static metadata on the device: [tensors][items][groups], each 16-byte aligned.
struct Resident {
  Device device;
  std::vector<unsigned char> key;  // the DevTensor bytes, then the group count
  Tensor buffer;                   // owns the device copy: never freed while an entry or a step holds it
  std::vector<DevGroup> groups;    // host copy, for the step norms' per-group sums
  int64_t items = 0;
  const DevTensor* tensors = nullptr;
  const DevItem* item_list = nullptr;
  const DevGroup* group_ranges = nullptr;
};

struct StaticCache {
  std::mutex mu;
  std::list<std::shared_ptr<const Resident>> entries;  // most recently used first
  StepCacheStats stats;
};

StaticCache& static_cache() {
  static StaticCache* c = new StaticCache();  // never destroyed: a step may run during static destruction
  return *c;
}

// Builds the work list and group ranges of `tensors` and copies all three to the device.
std::shared_ptr<const Resident> upload(const detail::MultiTensorStep& s, const std::vector<DevTensor>& tensors,
                                       std::vector<unsigned char> key) {
  auto r = std::make_shared<Resident>();
  r->device = s.device;
  r->key = std::move(key);
  r->groups.assign(s.group_lr.size(), DevGroup{0, 0});
  std::vector<DevItem> items;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const DevTensor& d = tensors[k];
    const int64_t chunks = (d.n + kChunk - 1) / kChunk;
    DevGroup& g = r->groups[static_cast<std::size_t>(d.group)];
    if (chunks > 0 && g.end == 0) g.first = static_cast<int32_t>(items.size());
    for (int64_t c = 0; c < chunks; ++c) items.push_back({static_cast<int32_t>(k), static_cast<int32_t>(c)});
    if (chunks > 0) g.end = static_cast<int32_t>(items.size());
  }
  r->items = static_cast<int64_t>(items.size());
  // One host buffer, one copy.
  const std::size_t off_items = align_up(tensors.size() * sizeof(DevTensor));
  const std::size_t off_groups = off_items + align_up(items.size() * sizeof(DevItem));
  const std::size_t bytes = off_groups + align_up(r->groups.size() * sizeof(DevGroup));
  std::vector<unsigned char> host(bytes, 0);
  std::memcpy(host.data(), tensors.data(), tensors.size() * sizeof(DevTensor));
  std::memcpy(host.data() + off_items, items.data(), items.size() * sizeof(DevItem));
  std::memcpy(host.data() + off_groups, r->groups.data(), r->groups.size() * sizeof(DevGroup));
  r->buffer = empty({static_cast<int64_t>(bytes / 4)}, DType::Float32, s.device);
  detail::copy_bytes(r->buffer.raw_data(), s.device, host.data(), Device::cpu(), bytes);
  const unsigned char* base = static_cast<const unsigned char*>(r->buffer.raw_data());
  r->tensors = reinterpret_cast<const DevTensor*>(base);
  r->item_list = reinterpret_cast<const DevItem*>(base + off_items);
  r->group_ranges = reinterpret_cast<const DevGroup*>(base + off_groups);
  return r;
}

// The static metadata of `tensors` on the step's device: from the cache when the same bytes are resident there,
// else uploaded and cached (dropping the least recently used entry beyond kStepCacheEntries).
std::shared_ptr<const Resident> resident(const detail::MultiTensorStep& s, const std::vector<DevTensor>& tensors) {
  const uint64_t ngroups = s.group_lr.size();
  std::vector<unsigned char> key(tensors.size() * sizeof(DevTensor) + sizeof ngroups);
  std::memcpy(key.data(), tensors.data(), tensors.size() * sizeof(DevTensor));
  std::memcpy(key.data() + tensors.size() * sizeof(DevTensor), &ngroups, sizeof ngroups);
  StaticCache& c = static_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto it = c.entries.begin(); it != c.entries.end(); ++it) {
    if ((*it)->device != s.device || (*it)->key != key) continue;
    c.entries.splice(c.entries.begin(), c.entries, it);
    ++c.stats.hits;
    return c.entries.front();
  }
  std::shared_ptr<const Resident> r = upload(s, tensors, std::move(key));
  ++c.stats.misses;
  c.entries.push_front(r);
  if (c.entries.size() > static_cast<std::size_t>(kStepCacheEntries)) c.entries.pop_back();
  return r;
}

template <StepRule R, class S>
void run_norm_rule(const Resident& r, const S& scalars, const MomentCoeffs<float>& c, double eps, double* stats,
                   double* norms, Device device) {
  Tensor partial = empty({2 * r.items}, DType::Float32, device);
  const dim3 grid(static_cast<unsigned>(r.items)), block(kThreads);
  const DevTensor* t = r.tensors;
  const DevItem* it = r.item_list;
  const DevGroup* g = r.group_ranges;
  launch("optim_step_norms", norms_kernel<R, S>, grid, block, 0, current_stream(), t, it, scalars, c,
         partial.data_ptr<float>());
  const float* part = partial.data_ptr<float>();
  if (norms)
    launch("optim_step_update", update_kernel<R, true, S>, grid, block, 0, current_stream(), t, it, g, scalars, part,
           c, eps, stats, norms);
  else
    launch("optim_step_update", update_kernel<R, false, S>, grid, block, 0, current_stream(), t, it, g, scalars, part,
           c, eps, stats, norms);
}

template <StepRule R, class S>
void run_elementwise(const Resident& r, const S& scalars, const detail::MultiTensorStep& s, double* norms) {
  const MomentCoeffs<float> c = MomentCoeffs<float>::make(s);
  const float momentum = static_cast<float>(s.beta1);
  const dim3 grid(static_cast<unsigned>(r.items)), block(kThreads);
  if (norms)
    launch("optim_step_elementwise", elementwise_kernel<R, true, S>, grid, block, 0, current_stream(), r.tensors,
           r.item_list, scalars, c, momentum, s.nesterov, norms);
  else
    launch("optim_step_elementwise", elementwise_kernel<R, false, S>, grid, block, 0, current_stream(), r.tensors,
           r.item_list, scalars, c, momentum, s.nesterov, norms);
}

template <class S>
void run_rule(const detail::MultiTensorStep& s, const Resident& r, const S& scalars, double* norms) {
  const MomentCoeffs<float> c = MomentCoeffs<float>::make(s);
  switch (s.rule) {
    case StepRule::Adam:
      run_elementwise<StepRule::Adam>(r, scalars, s, norms);
      break;
    case StepRule::SGD:
      run_elementwise<StepRule::SGD>(r, scalars, s, norms);
      break;
    case StepRule::NSGDA:
      run_norm_rule<StepRule::NSGDA>(r, scalars, c, s.eps, s.group_stats, norms, s.device);
      break;
    case StepRule::AdaNSGDA:
      run_norm_rule<StepRule::AdaNSGDA>(r, scalars, c, s.eps, s.group_stats, norms, s.device);
      break;
    case StepRule::AdaDir:
      run_norm_rule<StepRule::AdaDir>(r, scalars, c, s.eps, s.group_stats, norms, s.device);
      break;
  }
}

StepScalars step_scalars(const detail::StepTensor& st) {
  StepScalars d{};
  d.g = static_cast<const float*>(st.grad);
  d.step_size = static_cast<float>(st.step_size);
  d.denom_scale = static_cast<float>(st.denom_scale);
  d.oracle_scale = static_cast<float>(st.oracle_scale);
  d.momentum_decay = static_cast<float>(st.momentum_decay);
  d.grad_weight = static_cast<float>(st.grad_weight);
  return d;
}

}  // namespace

StepCacheStats step_cache_stats() {
  StaticCache& c = static_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  StepCacheStats out = c.stats;
  out.entries = static_cast<int64_t>(c.entries.size());
  return out;
}

void clear_step_cache() {
  StaticCache& c = static_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.entries.clear();
  c.stats = StepCacheStats{};
}

void multi_tensor_step(const detail::MultiTensorStep& s) {
  NASH_CHECK(s.dtype == DType::Float32, "optim_step: CUDA kernels are float32-only, got ", dtype_name(s.dtype),
             " (use float64 on the CPU)");
  std::vector<DevTensor> tensors(s.tensors.size());
  int64_t ni = 0;
  for (std::size_t k = 0; k < s.tensors.size(); ++k) {
    const detail::StepTensor& st = s.tensors[k];
    DevTensor& d = tensors[k];
    d.p = static_cast<float*>(st.param);
    d.m = static_cast<float*>(st.exp_avg);
    d.v = static_cast<float*>(st.exp_avg_sq);
    d.n = st.numel;
    d.group = st.group;
    d.vec = aligned16(d.p) && (!d.m || aligned16(d.m)) && (!d.v || aligned16(d.v));
    const int64_t chunks = (st.numel + kChunk - 1) / kChunk;
    NASH_CHECK(chunks < (int64_t{1} << 31), "optim_step: tensor of ", st.numel, " elements is too large");
    ni += chunks;
  }
  if (ni == 0) return;
  NASH_CHECK(ni < (int64_t{1} << 31), "optim_step: ", ni, " blocks exceed one launch");
  const std::shared_ptr<const Resident> r = resident(s, tensors);

  Tensor norms;  // float64 [3 * items]: each block's sums for step_norms
  if (s.step_norms) norms = empty({3 * ni}, DType::Float64, s.device);
  double* dn = s.step_norms ? norms.data_ptr<double>() : nullptr;
  const std::size_t nt = s.tensors.size(), ng = s.group_lr.size();
  if (nt <= static_cast<std::size_t>(kInlineTensors) && ng <= static_cast<std::size_t>(kInlineGroups)) {
    InlineScalars in{};  // slots past nt and ng are never read
    for (std::size_t k = 0; k < nt; ++k) {
      const StepScalars d = step_scalars(s.tensors[k]);
      in.g[k] = d.g;
      in.step_size[k] = d.step_size;
      in.denom_scale[k] = d.denom_scale;
      in.oracle_scale[k] = d.oracle_scale;
      in.momentum_decay[k] = d.momentum_decay;
      in.grad_weight[k] = d.grad_weight;
    }
    for (std::size_t g = 0; g < ng; ++g) in.lr[g] = s.group_lr[g];
    run_rule(s, *r, in, dn);
  } else {
    // [per-tensor scalars][group lrs], one copy as the whole description used to be.
    const std::size_t off_lr = align_up(nt * sizeof(StepScalars));
    const std::size_t bytes = off_lr + align_up(ng * sizeof(double));
    std::vector<unsigned char> host(bytes, 0);
    for (std::size_t k = 0; k < nt; ++k) {
      const StepScalars d = step_scalars(s.tensors[k]);
      std::memcpy(host.data() + k * sizeof(StepScalars), &d, sizeof d);
    }
    std::memcpy(host.data() + off_lr, s.group_lr.data(), ng * sizeof(double));
    Tensor dev = empty({static_cast<int64_t>(bytes / 4)}, DType::Float32, s.device);
    detail::copy_bytes(dev.raw_data(), s.device, host.data(), Device::cpu(), bytes);
    const unsigned char* base = static_cast<const unsigned char*>(dev.raw_data());
    const GlobalScalars gs{reinterpret_cast<const StepScalars*>(base), reinterpret_cast<const double*>(base + off_lr)};
    {
      StaticCache& c = static_cache();
      std::lock_guard<std::mutex> lock(c.mu);
      ++c.stats.scalar_uploads;
    }
    run_rule(s, *r, gs, dn);
  }
  if (!s.step_norms) return;
  std::vector<double> host_norms(static_cast<std::size_t>(3 * ni));
  detail::copy_bytes(host_norms.data(), Device::cpu(), dn, s.device, host_norms.size() * sizeof(double));
  for (std::size_t gi = 0; gi < r->groups.size(); ++gi) {
    const DevGroup& grp = r->groups[gi];
    if (grp.end == 0) continue;
    double sum[3] = {0, 0, 0};
    for (int32_t k = grp.first; k < grp.end; ++k)
      for (int j = 0; j < 3; ++j) sum[j] += host_norms[3 * static_cast<std::size_t>(k) + j];
    for (int j = 0; j < 3; ++j) s.step_norms[3 * gi + j] = sum[j];
  }
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
