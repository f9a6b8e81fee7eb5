// CPU multi-tensor optimizer step: a whole model in one OpenMP region. Tensors are cut into fixed chunks. The
// elementwise rules (Adam, SGD) are one pass; the norm rules' phase 1 writes per-chunk partial sums of squares,
// each group's partials are summed in chunk order (so results do not depend on the thread count), and phase 2
// applies every chunk's update. The step's norms, when asked for, are summed per chunk in the update pass.
#include "kernels/optim_step.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {

using detail::MomentCoeffs;
using detail::MultiTensorStep;
using detail::StepRule;

constexpr int64_t kChunk = 1 << 14;

struct Item {
  int32_t tensor;
  int64_t begin, end;
};

template <class T>
struct View {
  T* p;
  const T* g;
  T* m;
  T* v;
  T step_size, denom_scale, oracle_scale, momentum_decay, grad_weight;
};

// The loops copy pointers and scalars into restrict-qualified locals: through the View they could alias the
// stores, which stops GCC from vectorising. Sums of squares use 8 interleaved double accumulators: a fixed order
// (deterministic) that still vectorises.
constexpr int kLanes = 8;

inline double combine(const double* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Per-item sums for MultiTensorStep::step_norms: g², p² before the step, (p_after - p_before)².
struct Sums {
  double g = 0, p = 0, d = 0;
};

// Runs elem(i, g, p_before, p_after) over [b, e): elem updates element i and reports its gradient and the parameter
// before and after. With sums, the three sums of squares are accumulated; without, the reports are dead code the
// compiler drops, leaving the plain update loop.
template <class T, class Elem>
void chunk_loop(int64_t b, int64_t e, Sums* sums, Elem elem) {
  if (!sums) {
    for (int64_t i = b; i < e; ++i) {
      T g, p0, p1;
      elem(i, g, p0, p1);
    }
    return;
  }
  double ag[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0}, ap[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0},
         ad[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  auto one = [&](int64_t i, int j) {
    T g, p0, p1;
    elem(i, g, p0, p1);
    const double dp = static_cast<double>(p1) - static_cast<double>(p0);
    ag[j] += static_cast<double>(g) * g;
    ap[j] += static_cast<double>(p0) * p0;
    ad[j] += dp * dp;
  };
  int64_t i = b;
  for (; i + kLanes <= e; i += kLanes)
    for (int j = 0; j < kLanes; ++j) one(i + j, j);
  for (int j = 0; i < e; ++i, ++j) one(i, j);
  sums->g = combine(ag);
  sums->p = combine(ap);
  sums->d = combine(ad);
}

template <class T, bool HasM>
void adam_chunk(const View<T>& t, const MomentCoeffs<T>& c, int64_t b, int64_t e, Sums* sums) {
  T* __restrict p = t.p;
  const T* __restrict g = t.g;
  T* __restrict m = t.m;
  T* __restrict v = t.v;
  const T step = t.step_size, ds = t.denom_scale;
  const MomentCoeffs<T> k = c;
  chunk_loop<T>(b, e, sums, [&](int64_t i, T& gi, T& p0, T& p1) {
    gi = g[i];
    p0 = p[i];
    T d = gi + k.wd * p0;
    T mi = HasM ? detail::first_moment(k, m[i], d) : d;
    T vi = detail::second_moment(k, v[i], d);
    if (HasM) m[i] = mi;
    v[i] = vi;
    p1 = p0 - step * detail::adam_ratio(mi, vi, ds, k.eps);
    p[i] = p1;
  });
}

template <class T, bool HasBuffer, bool Nesterov>
void sgd_chunk(const View<T>& t, const MomentCoeffs<T>& c, T momentum, int64_t b, int64_t e, Sums* sums) {
  T* __restrict p = t.p;
  const T* __restrict g = t.g;
  T* __restrict buf = t.m;
  const T lr = t.step_size, decay = t.momentum_decay, weight = t.grad_weight, wd = c.wd, mom = momentum;
  chunk_loop<T>(b, e, sums, [&](int64_t i, T& gi, T& p0, T& p1) {
    gi = g[i];
    p0 = p[i];
    T bi = HasBuffer ? buf[i] : T(0);
    T dir = detail::sgd_direction(HasBuffer, Nesterov, mom, decay, weight, gi + wd * p0, bi);
    if (HasBuffer) buf[i] = bi;
    p1 = p0 - lr * dir;
    p[i] = p1;
  });
}

template <class T>
double sum_squares(const T* __restrict x, int64_t b, int64_t e) {
  double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = b;
  for (; i + kLanes <= e; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (int j = 0; i < e; ++i, ++j) acc[j] += static_cast<double>(x[i]) * x[i];
  return combine(acc);
}

// Phase 1 of the oracle rules: moves the moments, sums g² and A².
template <class T>
void oracle_chunk(const View<T>& t, const MomentCoeffs<T>& c, int64_t b, int64_t e, double& sg, double& sa) {
  const T* __restrict g = t.g;
  T* __restrict m = t.m;
  T* __restrict v = t.v;
  const T os = t.oracle_scale, ds = t.denom_scale;
  const MomentCoeffs<T> k = c;
  double ag[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0}, aa[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  auto one = [&](int64_t i, int j) {
    T gi = g[i];
    T mi = detail::first_moment(k, m[i], gi), vi = detail::second_moment(k, v[i], gi);
    m[i] = mi;
    v[i] = vi;
    T a = os * detail::adam_ratio(mi, vi, ds, k.eps);
    ag[j] += static_cast<double>(gi) * gi;
    aa[j] += static_cast<double>(a) * a;
  };
  int64_t i = b;
  for (; i + kLanes <= e; i += kLanes)
    for (int j = 0; j < kLanes; ++j) one(i + j, j);
  for (int j = 0; i < e; ++i, ++j) one(i, j);
  sg = combine(ag);
  sa = combine(aa);
}

// Phase 2 of the norm rules: p -= scale * direction (the gradient, or Adam's oracle for AdaDir).
template <class T>
void update_chunk(StepRule rule, const View<T>& t, const MomentCoeffs<T>& c, T scale, int64_t b, int64_t e,
                  Sums* sums) {
  T* __restrict p = t.p;
  const T* __restrict g = t.g;
  const T s = scale;
  if (rule == StepRule::AdaDir) {
    const T* __restrict m = t.m;
    const T* __restrict v = t.v;
    const T os = t.oracle_scale, ds = t.denom_scale, eps = c.eps;
    chunk_loop<T>(b, e, sums, [&](int64_t i, T& gi, T& p0, T& p1) {
      gi = g[i];
      p0 = p[i];
      p1 = p0 - s * (os * detail::adam_ratio(m[i], v[i], ds, eps));
      p[i] = p1;
    });
  } else {
    chunk_loop<T>(b, e, sums, [&](int64_t i, T& gi, T& p0, T& p1) {
      gi = g[i];
      p0 = p[i];
      p1 = p0 - s * gi;
      p[i] = p1;
    });
  }
}

// One elementwise rule's chunk (Adam or SGD).
template <class T>
void elementwise_chunk(const MultiTensorStep& s, const View<T>& t, const MomentCoeffs<T>& c, int64_t b, int64_t e,
                       Sums* sums) {
  if (s.rule == StepRule::Adam) {
    if (t.m)
      adam_chunk<T, true>(t, c, b, e, sums);
    else
      adam_chunk<T, false>(t, c, b, e, sums);
    return;
  }
  const T mom = static_cast<T>(s.beta1);
  if (!t.m)
    sgd_chunk<T, false, false>(t, c, mom, b, e, sums);
  else if (s.nesterov)
    sgd_chunk<T, true, true>(t, c, mom, b, e, sums);
  else
    sgd_chunk<T, true, false>(t, c, mom, b, e, sums);
}

template <class T>
void run(const MultiTensorStep& s) {
  const std::size_t nt = s.tensors.size(), ng = s.group_lr.size();
  std::vector<View<T>> views(nt);
  std::vector<Item> items;
  std::vector<int64_t> group_first(ng, -1), group_end(ng, -1);
  int64_t total = 0;
  for (std::size_t k = 0; k < nt; ++k) {
    const detail::StepTensor& st = s.tensors[k];
    views[k] = {static_cast<T*>(st.param),        static_cast<const T*>(st.grad),       static_cast<T*>(st.exp_avg),
                static_cast<T*>(st.exp_avg_sq),   static_cast<T>(st.step_size),         static_cast<T>(st.denom_scale),
                static_cast<T>(st.oracle_scale),  static_cast<T>(st.momentum_decay),    static_cast<T>(st.grad_weight)};
    if (group_first[st.group] < 0) group_first[st.group] = static_cast<int64_t>(items.size());
    for (int64_t b = 0; b < st.numel; b += kChunk)
      items.push_back({static_cast<int32_t>(k), b, b + kChunk < st.numel ? b + kChunk : st.numel});
    group_end[st.group] = static_cast<int64_t>(items.size());
    total += st.numel;
  }
  const int64_t ni = static_cast<int64_t>(items.size());
  const MomentCoeffs<T> c = MomentCoeffs<T>::make(s);
  std::vector<Sums> sums(s.step_norms ? ni : 0);
  auto sums_of = [&](int64_t k) { return s.step_norms ? &sums[k] : nullptr; };
  if (!detail::rule_has_norms(s.rule)) {
    parallel_for(ni, total >= kParallelGrain, [&](int64_t k) {
      elementwise_chunk(s, views[items[k].tensor], c, items[k].begin, items[k].end, sums_of(k));
    });
  } else {
    std::vector<double> part_g(ni), part_a(ni);
    parallel_region(total >= kParallelGrain, [&] {
#pragma omp for schedule(static)
      for (int64_t k = 0; k < ni; ++k) {
        const View<T>& t = views[items[k].tensor];
        if (s.rule == StepRule::NSGDA) {
          part_g[k] = sum_squares(t.g, items[k].begin, items[k].end);
          part_a[k] = 0;
        } else {
          oracle_chunk(t, c, items[k].begin, items[k].end, part_g[k], part_a[k]);
        }
      }
      // After the loop's barrier every thread derives every group's scale itself (a few hundred additions in
      // chunk order, the same in each thread): one barrier fewer than handing them over from a single thread.
      std::vector<T> scale(ng, T(0));
      for (std::size_t gi = 0; gi < ng; ++gi) {
        if (group_first[gi] < 0) continue;
        double sg = 0, sa = 0;
        for (int64_t k = group_first[gi]; k < group_end[gi]; ++k) {
          sg += part_g[k];
          sa += part_a[k];
        }
        const double gn = std::sqrt(sg), an = std::sqrt(sa);
        scale[gi] = static_cast<T>(detail::group_scale(s.rule, s.group_lr[gi], gn, an, s.eps));
#pragma omp master
        if (s.group_stats) {
          s.group_stats[3 * gi] = gn;
          s.group_stats[3 * gi + 1] = an;
          s.group_stats[3 * gi + 2] += an;
        }
      }
#pragma omp for schedule(static) nowait
      for (int64_t k = 0; k < ni; ++k) {
        const Item& it = items[k];
        update_chunk(s.rule, views[it.tensor], c, scale[s.tensors[it.tensor].group], it.begin, it.end, sums_of(k));
      }
    });
  }
  if (!s.step_norms) return;
  for (std::size_t gi = 0; gi < ng; ++gi) {
    if (group_first[gi] < 0) continue;
    Sums t;
    for (int64_t k = group_first[gi]; k < group_end[gi]; ++k) {
      t.g += sums[k].g;
      t.p += sums[k].p;
      t.d += sums[k].d;
    }
    s.step_norms[3 * gi] = t.g;
    s.step_norms[3 * gi + 1] = t.p;
    s.step_norms[3 * gi + 2] = t.d;
  }
}

}  // namespace

void multi_tensor_step(const detail::MultiTensorStep& step) {
  if (step.dtype == DType::Float32)
    run<float>(step);
  else
    run<double>(step);
}

}  // namespace cpu
}  // namespace nash
