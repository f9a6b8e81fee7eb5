// CPU convolution: im2col/col2im + GEMM (OpenBLAS or built-in) over groups of images, the batch split across OpenMP
// threads.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {

// Geometry of one convolution; x (N,Cin,H,W), w (Cout,Cin,kh,kw), y (N,Cout,Ho,Wo).
struct Geom {
  int64_t N, Cin, H, W, Cout, kh, kw, Ho, Wo;
  Int2 s, p, d;
  int64_t K() const { return Cin * kh * kw; }
  int64_t P() const { return Ho * Wo; }
  int64_t in_size() const { return Cin * H * W; }
  int64_t out_size() const { return Cout * Ho * Wo; }
  // 1x1, stride 1, no padding: x[n] viewed as (Cin, H*W) already is the column matrix.
  bool pointwise() const { return kh == 1 && kw == 1 && s.h == 1 && s.w == 1 && p.h == 0 && p.w == 0; }
};

Geom make_geom(const Tensor& x, const Tensor& y, int64_t kh, int64_t kw, Int2 s, Int2 p, Int2 d) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), y.size(1), kh, kw, y.size(2), y.size(3), s, p, d};
}

int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// Output columns [lo, hi) whose input coordinate o*s + off falls inside [0, size).
void valid_range(int64_t off, int64_t s, int64_t size, int64_t n_out, int64_t& lo, int64_t& hi) {
  lo = std::min(n_out, off >= 0 ? 0 : ceil_div(-off, s));
  hi = std::max(lo, std::min(n_out, ceil_div(size - off, s)));
}

// Where each kernel tap reads for each output position: tab[(i*kw + j)*P + q] is the offset of the input element
// that output q sees through tap (i, j) within one channel plane, or -1 where it falls into the padding. Built once
// per call; im2col/col2im walk it instead of recomputing the window bounds per row, which is what costs for the
// small, strided outputs of a GAN's deeper layers (4x4 or 8x8 outputs: the rows are 4-8 elements long).
struct TapTable {
  std::vector<int32_t> off;
  bool use = false;
};

TapTable make_tap_table(const Geom& g) {
  TapTable t;
  // Long stride-1 rows copy faster with memcpy; the table pays off for short or strided rows.
  t.use = (g.s.w != 1 || g.Wo < 16) && g.H * g.W < (int64_t(1) << 30);
  if (!t.use) return t;
  const int64_t P = g.P();
  t.off.resize(static_cast<size_t>(g.kh * g.kw * P));
  int32_t* o = t.off.data();
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j)
      for (int64_t oh = 0; oh < g.Ho; ++oh)
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          const int64_t ih = oh * g.s.h + i * g.d.h - g.p.h, iw = ow * g.s.w + j * g.d.w - g.p.w;
          *o++ = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? static_cast<int32_t>(ih * g.W + iw) : -1;
        }
  return t;
}

// Writes the (K, P) column matrix of one image into col, whose rows are ld apart.
template <class T>
void im2col(const T* x, const Geom& g, const TapTable& tab, T* col, int64_t ld) {
  const int64_t Ho = g.Ho, Wo = g.Wo;
  if (tab.use) {
    const int64_t P = g.P(), taps = g.kh * g.kw;
    for (int64_t c = 0; c < g.Cin; ++c) {
      const T* xc = x + c * g.H * g.W;
      const int32_t* o = tab.off.data();
      for (int64_t t = 0; t < taps; ++t, col += ld, o += P)
        for (int64_t q = 0; q < P; ++q) col[q] = o[q] >= 0 ? xc[o[q]] : T(0);
    }
    return;
  }
  for (int64_t c = 0; c < g.Cin; ++c) {
    const T* xc = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t dh = i * g.d.h - g.p.h;
      int64_t oh_lo, oh_hi;
      valid_range(dh, g.s.h, g.H, Ho, oh_lo, oh_hi);
      for (int64_t j = 0; j < g.kw; ++j, col += ld) {
        const int64_t dw = j * g.d.w - g.p.w;
        int64_t ow_lo, ow_hi;
        valid_range(dw, g.s.w, g.W, Wo, ow_lo, ow_hi);
        std::fill(col, col + oh_lo * Wo, T(0));
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* dst = col + oh * Wo;
          const T* src = xc + (oh * g.s.h + dh) * g.W + dw;
          std::fill(dst, dst + ow_lo, T(0));
          if (g.s.w == 1) {
            std::memcpy(dst + ow_lo, src + ow_lo, sizeof(T) * (ow_hi - ow_lo));
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = src[ow * g.s.w];
          }
          std::fill(dst + ow_hi, dst + Wo, T(0));
        }
        std::fill(col + oh_hi * Wo, col + Ho * Wo, T(0));
      }
    }
  }
}

// Adds the (K, P) column matrix (rows ld apart) back into one image gx (the adjoint of im2col).
template <class T>
void col2im(const T* col, const Geom& g, const TapTable& tab, int64_t ld, T* gx) {
  const int64_t Wo = g.Wo;
  if (tab.use) {
    const int64_t P = g.P(), taps = g.kh * g.kw;
    for (int64_t c = 0; c < g.Cin; ++c) {
      T* xc = gx + c * g.H * g.W;
      const int32_t* o = tab.off.data();
      for (int64_t t = 0; t < taps; ++t, col += ld, o += P)
        for (int64_t q = 0; q < P; ++q)
          if (o[q] >= 0) xc[o[q]] += col[q];
    }
    return;
  }
  for (int64_t c = 0; c < g.Cin; ++c) {
    T* xc = gx + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t dh = i * g.d.h - g.p.h;
      int64_t oh_lo, oh_hi;
      valid_range(dh, g.s.h, g.H, g.Ho, oh_lo, oh_hi);
      for (int64_t j = 0; j < g.kw; ++j, col += ld) {
        const int64_t dw = j * g.d.w - g.p.w;
        int64_t ow_lo, ow_hi;
        valid_range(dw, g.s.w, g.W, Wo, ow_lo, ow_hi);
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          const T* src = col + oh * Wo;
          T* dst = xc + (oh * g.s.h + dh) * g.W + dw;
          if (g.s.w == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += src[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow * g.s.w] += src[ow];
          }
        }
      }
    }
  }
}

// A per-thread buffer of at least n elements, kept between calls (and never zero-filled): every call used to
// allocate and clear its column matrices, which cost page faults, a memset and an idle second thread.
template <class T>
T* thread_scratch(int slot, int64_t n) {
  struct Buf {
    std::unique_ptr<T[]> p;
    int64_t n = 0;
  };
  thread_local Buf bufs[3];
  Buf& b = bufs[slot];
  if (b.n < n) {
    b.p.reset();
    b.p.reset(new T[static_cast<size_t>(n)]);
    b.n = n;
  }
  return b.p.get();
}

// How the batch is cut: each thread takes a contiguous range of images and walks it in groups of `group`
// images, so that one GEMM sees group * P columns (per-image GEMMs are too thin for the deep, small layers).
struct Plan {
  int threads = 1;
  int64_t group = 1;
};

constexpr int64_t kTargetColumns = 256;       // GEMM width worth batching images for (the buffer stays in L2)
constexpr int64_t kMaxColumnElems = 1 << 22;  // per-thread column buffer cap (16 MiB in float32)

Plan make_plan(const Geom& g, bool direct_ok) {
  Plan pl;
  pl.threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), g.N)));
  const int64_t per_thread = (g.N + pl.threads - 1) / pl.threads;
  const int64_t P = std::max<int64_t>(g.P(), 1);
  if (direct_ok && P >= kTargetColumns) return pl;  // pointwise and wide: GEMM straight on the image
  int64_t grp = (kTargetColumns + P - 1) / P;
  grp = std::min(grp, std::max<int64_t>(1, kMaxColumnElems / std::max<int64_t>(1, g.K() * P)));
  pl.group = std::max<int64_t>(1, std::min(grp, per_thread));
  return pl;
}

// Runs body(first, last, thread) on contiguous batch ranges, one per thread. With several threads, BLAS runs
// single-threaded inside (OpenBLAS has its own pool; nesting it would oversubscribe the cores).
template <class F>
void for_batch_ranges(int64_t N, int threads, F&& body) {
  if (threads <= 1) {
    body(int64_t(0), N, 0);
    return;
  }
  GemmSingleThreadGuard single;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    body(N * t / nt, N * (t + 1) / nt, t);
  }
}

// Copies images [n, n+bc) of a (N, C, P) tensor into a (C, bc*P) matrix (channels major), and back.
template <class T>
void gather_channels(const T* src, int64_t C, int64_t P, int64_t bc, T* dst) {
  for (int64_t b = 0; b < bc; ++b)
    for (int64_t c = 0; c < C; ++c) std::memcpy(dst + c * bc * P + b * P, src + (b * C + c) * P, sizeof(T) * P);
}

// One call's plan, its tap table and each thread's buffers: a column matrix (unless a pointwise conv reads the
// images directly) and, when images are grouped, a (Cout, group*P) scratch. The buffers are the threads' own
// (thread_scratch), fetched inside the parallel region.
template <class T>
struct Workspace {
  Plan pl;
  bool use_direct;
  TapTable tab;
  int64_t col_size, tmp_size;

  explicit Workspace(const Geom& g)
      : pl(make_plan(g, g.pointwise())),
        use_direct(g.pointwise() && pl.group == 1),
        tab(use_direct ? TapTable() : make_tap_table(g)),
        col_size(use_direct ? 0 : g.K() * g.P() * pl.group),
        tmp_size(pl.group > 1 ? g.Cout * g.P() * pl.group : 0) {}
  T* col() const { return thread_scratch<T>(0, col_size); }
  T* tmp() const { return thread_scratch<T>(1, tmp_size); }
  // Images [n, n+bc) of x as the (K, bc*P) column matrix of the calling thread.
  const T* columns(const Geom& g, const T* x, int64_t n, int64_t bc) const {
    if (use_direct) return x + n * g.in_size();
    const int64_t cols = bc * g.P();
    T* c = col();
    for (int64_t b = 0; b < bc; ++b) im2col(x + (n + b) * g.in_size(), g, tab, c + b * g.P(), cols);
    return c;
  }
  // Output-shaped images [n, n+bc) of gy as one (Cout, bc*P) matrix of the calling thread.
  const T* gathered(const Geom& g, const T* gy, int64_t n, int64_t bc) const {
    const T* G = gy + n * g.out_size();
    if (bc == 1) return G;
    T* t = tmp();
    gather_channels(G, g.Cout, g.P(), bc, t);
    return t;
  }
};

template <class T>
void conv_forward(const Geom& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t K = g.K(), P = g.P();
  Workspace<T> ws(g);
  const Plan& pl = ws.pl;
  for_batch_ranges(g.N, pl.threads, [&](int64_t n0, int64_t n1, int t) {
    for (int64_t n = n0; n < n1; n += pl.group) {
      const int64_t bc = std::min(pl.group, n1 - n), cols = bc * P;
      const T* B = ws.columns(g, x, n, bc);
      T* yn = y + n * g.out_size();
      if (bc == 1) {
        gemm<T>(false, false, g.Cout, P, K, T(1), w, K, B, P, T(0), yn, P);
        if (bias)
          for (int64_t co = 0; co < g.Cout; ++co)
            for (int64_t q = 0; q < P; ++q) yn[co * P + q] += bias[co];
        continue;
      }
      T* C = ws.tmp();
      gemm<T>(false, false, g.Cout, cols, K, T(1), w, K, B, cols, T(0), C, cols);
      for (int64_t b = 0; b < bc; ++b)
        for (int64_t co = 0; co < g.Cout; ++co) {
          const T* src = C + co * cols + b * P;
          T* dst = yn + (b * g.Cout + co) * P;
          const T bv = bias ? bias[co] : T(0);
          for (int64_t q = 0; q < P; ++q) dst[q] = src[q] + bv;
        }
    }
  });
}

template <class T>
void conv_grad_input(const Geom& g, const T* gy, const T* w, T* gx) {
  const int64_t K = g.K(), P = g.P();
  Workspace<T> ws(g);
  const Plan& pl = ws.pl;
  for_batch_ranges(g.N, pl.threads, [&](int64_t n0, int64_t n1, int t) {
    for (int64_t n = n0; n < n1; n += pl.group) {
      const int64_t bc = std::min(pl.group, n1 - n), cols = bc * P;
      const T* G = ws.gathered(g, gy, n, bc);
      T* gxn = gx + n * g.in_size();
      if (ws.use_direct) {  // col2im of a pointwise conv is the identity
        gemm<T>(true, false, K, P, g.Cout, T(1), w, K, G, P, T(0), gxn, P);
        continue;
      }
      T* C = ws.col();
      gemm<T>(true, false, K, cols, g.Cout, T(1), w, K, G, cols, T(0), C, cols);
      std::fill(gxn, gxn + bc * g.in_size(), T(0));
      for (int64_t b = 0; b < bc; ++b) col2im(C + b * P, g, ws.tab, cols, gxn + b * g.in_size());
    }
  });
}

template <class T>
void conv_grad_weight(const Geom& g, const T* x, const T* gy, T* gw) {
  const int64_t K = g.K(), P = g.P(), WK = g.Cout * K;
  Workspace<T> ws(g);
  const Plan& pl = ws.pl;
  std::vector<T*> part(pl.threads, nullptr);
  for_batch_ranges(g.N, pl.threads, [&](int64_t n0, int64_t n1, int t) {
    T* acc = t == 0 ? gw : (part[t] = thread_scratch<T>(2, WK));
    if (n0 == n1) std::fill(acc, acc + WK, T(0));
    for (int64_t n = n0; n < n1; n += pl.group) {
      const int64_t bc = std::min(pl.group, n1 - n), cols = bc * P;
      const T* G = ws.gathered(g, gy, n, bc);
      const T* B = ws.columns(g, x, n, bc);
      gemm<T>(false, true, g.Cout, K, cols, T(1), G, cols, B, cols, n == n0 ? T(0) : T(1), acc, K);
    }
    if (pl.threads <= 1) return;
    // Each thread then sums one slice of the partials into gw, in thread order, so a run is reproducible for a
    // given thread count (and the partials live in the threads' own buffers, read while the team is alive).
#pragma omp barrier
    const int nt = omp_get_num_threads();
    const int64_t lo = WK * t / nt, hi = WK * (t + 1) / nt;
    for (int64_t i = lo; i < hi; ++i) {
      T s = gw[i];
      for (int u = 1; u < nt; ++u) s += part[u][i];
      gw[i] = s;
    }
  });
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

void require_contiguous(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    NASH_CHECK(!t->defined() || t->is_contiguous(), op, ": the CPU kernel needs contiguous tensors");
}

}  // namespace

void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Int2 stride, Int2 padding, Int2 dilation,
            const Tensor& out) {
  require_contiguous("conv2d", {&x, &w, &bias, &out});
  Geom g = make_geom(x, out, w.size(2), w.size(3), stride, padding, dilation);
  if (out.numel() == 0) return;
  if (x.dtype() == DType::Float32)
    conv_forward(g, x.data_ptr<float>(), w.data_ptr<float>(), ptr_or_null<float>(bias), out.data_ptr<float>());
  else
    conv_forward(g, x.data_ptr<double>(), w.data_ptr<double>(), ptr_or_null<double>(bias), out.data_ptr<double>());
}

void conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                       const Tensor& grad_in) {
  require_contiguous("conv2d_grad_input", {&grad_out, &w, &grad_in});
  Geom g = make_geom(grad_in, grad_out, w.size(2), w.size(3), stride, padding, dilation);
  if (grad_in.numel() == 0) return;
  if (grad_out.numel() == 0) {
    fill(grad_in, 0.0);
    return;
  }
  if (w.dtype() == DType::Float32)
    conv_grad_input(g, grad_out.data_ptr<float>(), w.data_ptr<float>(), grad_in.data_ptr<float>());
  else
    conv_grad_input(g, grad_out.data_ptr<double>(), w.data_ptr<double>(), grad_in.data_ptr<double>());
}

void conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 stride, Int2 padding, Int2 dilation,
                        const Tensor& grad_w) {
  require_contiguous("conv2d_grad_weight", {&x, &grad_out, &grad_w});
  Geom g = make_geom(x, grad_out, grad_w.size(2), grad_w.size(3), stride, padding, dilation);
  if (grad_w.numel() == 0) return;
  if (grad_out.numel() == 0) {
    fill(grad_w, 0.0);
    return;
  }
  if (x.dtype() == DType::Float32)
    conv_grad_weight(g, x.data_ptr<float>(), grad_out.data_ptr<float>(), grad_w.data_ptr<float>());
  else
    conv_grad_weight(g, x.data_ptr<double>(), grad_out.data_ptr<double>(), grad_w.data_ptr<double>());
}

}  // namespace cpu
}  // namespace nash
