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
#include "kernels/cpu/winograd.h"
#include "nash/core/engine.h"

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
  thread_local Buf bufs[4];
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

// ---- Winograd F(2x2, 3x3) and F(2x2, 2x2) paths (kernels/cpu/winograd.h) ----

enum class Wino { None, K3S1, K4S2 };

// Which Winograd mapping a convolution gets (the same for its three passes): 3x3 stride 1, or 4x4 stride 2
// through its stride phases; dilation 1, any padding. Auto keeps im2col + GEMM where the GEMMs would be too thin
// for the transforms to pay (fewer than 32 channels on either side, fewer than 4 output pixels).
Wino winograd_kind(const Geom& g) {
  const CpuConvAlgorithm algo = cpu_conv_algorithm();
  if (algo == CpuConvAlgorithm::Im2col || g.d.h != 1 || g.d.w != 1 || g.Ho < 1 || g.Wo < 1) return Wino::None;
  // The tile gathers keep plane offsets in int32.
  constexpr int64_t kMaxPlane = int64_t(1) << 30;
  if (g.H * g.W >= kMaxPlane || (g.Ho + 4) * (g.Wo + 4) >= kMaxPlane) return Wino::None;
  Wino k = Wino::None;
  if (g.kh == 3 && g.kw == 3 && g.s.h == 1 && g.s.w == 1) k = Wino::K3S1;
  if (g.kh == 4 && g.kw == 4 && g.s.h == 2 && g.s.w == 2) k = Wino::K4S2;
  if (algo == CpuConvAlgorithm::Auto && (std::min(g.Cin, g.Cout) < 32 || g.Ho * g.Wo < 4)) return Wino::None;
  return k;
}

// pr.U[xi][o][i] = (G g G^T)[xi] for the R x R kernels g(a, b) = w[base(o, i) + a*ld + b*cs], o < pr.Co,
// i < pr.C, in this thread's scratch; its matrices lie padded() apart (Co * C is often a multiple of 4 KiB, and
// the transform writes all (R+1)^2 of them at once).
template <class T, int R, class Base>
void transform_filters(wino::Problem<T, R>& pr, const T* w, int64_t ld, int64_t cs, Base&& base) {
  const int64_t Co = pr.Co, C = pr.C, ldu = wino::padded(Co * C);
  T* U = thread_scratch<T>(3, pr.AA * ldu);
  parallel_region(Co * C >= 4096, [&] {
    T* gl = thread_scratch<T>(1, R * R * C);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < Co; ++o) wino::transform_filters_row<R>(o, C, w, ld, cs, base, gl, U, ldu);
  });
  pr.U = U;
  pr.ldu = ldu;
}

int64_t half_up(int64_t v) { return (v + 1) / 2; }

// One Winograd problem over the batch: its input windows and their tap tables (`windows` of them, channel c
// reading window c % windows: 4 for the stride phases of a 4x4 stride-2 layer, else 1; the 2x2 tiles of the
// Ho x Wo planes on the other side), the threads, the images per block and each thread's workspace. The plan
// points the problem at its windows (pr.win), so it must outlive the problem's use.
template <class T, int R>
struct WinoPlan {
  std::vector<wino::Window> wins;
  std::vector<int32_t> taps, ytaps;
  int windows, threads;
  int64_t group, elems;
  template <class WindowOf>
  WinoPlan(const Geom& g, wino::Problem<T, R>& pr, int nwin, WindowOf&& window, int64_t Ho, int64_t Wo)
      : taps(static_cast<size_t>(nwin * pr.AA * pr.tiles())), ytaps(static_cast<size_t>(4 * pr.tiles())),
        windows(nwin) {
    for (int k = 0; k < nwin; ++k) wins.push_back(window(k));
    pr.win = wins.data();
    for (int k = 0; k < nwin; ++k) wino::make_taps(pr, wins[k], taps.data() + k * pr.AA * pr.tiles());
    wino::make_output_taps(pr, Ho, Wo, ytaps.data());
    threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), g.N)));
    group = wino::block_images(pr, (g.N + threads - 1) / threads);
    elems = wino::workspace_elems(pr, group);
  }
};

// The 4x4 stride-2 convolution as a 2x2 stride-1 one over the input's stride phases: input channel
// c' = 4c + 2ri + rj is the phase plane x[c][2r + ri - ph][2s + rj - pw], its sub-kernel w[co][c][2a + ri][2b + rj].
template <class T>
wino::Problem<T, 2> k4s2_problem(const Geom& g, const T* w) {
  wino::Problem<T, 2> pr{4 * g.Cin, g.Cout, half_up(g.Ho), half_up(g.Wo), nullptr};
  transform_filters(pr, w, 8, 2,
                    [&](int64_t o, int64_t i) { return (o * g.Cin + i / 4) * 16 + (i / 2 % 2) * 4 + i % 2; });
  return pr;
}

// The input window of phase plane k (= 2ri + rj) of a 4x4 stride-2 convolution.
inline wino::Window k4s2_window(const Geom& g, int k) {
  return wino::Window{g.H, g.W, k / 2 - g.p.h, 2, k % 2 - g.p.w, 2};
}

// y = conv(x, w) + bias on the Winograd path.
template <class T>
void winograd_forward(Wino kind, const Geom& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t HW = g.H * g.W, P = g.P();
  const wino::Planes<T> out{y, g.Cout * P, P, 1};
  if (kind == Wino::K3S1) {
    wino::Problem<T, 3> pr{g.Cin, g.Cout, half_up(g.Ho), half_up(g.Wo), nullptr};
    transform_filters(pr, w, 3, 1, [&](int64_t o, int64_t i) { return (o * g.Cin + i) * 9; });
    const WinoPlan<T, 3> plan(g, pr, 1, [&](int) { return wino::Window{g.H, g.W, -g.p.h, 1, -g.p.w, 1}; }, g.Ho, g.Wo);
    for_batch_ranges(g.N, plan.threads, [&](int64_t n0, int64_t n1, int) {
      wino::run(pr, n0, n1, plan.group, thread_scratch<T>(0, plan.elems), wino::Planes<const T>{x, g.Cin * HW, HW, 1},
                plan.taps.data(), 1, out, plan.ytaps.data(), bias);
    });
    return;
  }
  wino::Problem<T, 2> pr = k4s2_problem(g, w);
  const WinoPlan<T, 2> plan(g, pr, 4, [&](int k) { return k4s2_window(g, k); }, g.Ho, g.Wo);
  for_batch_ranges(g.N, plan.threads, [&](int64_t n0, int64_t n1, int) {
    wino::run(pr, n0, n1, plan.group, thread_scratch<T>(0, plan.elems), wino::Planes<const T>{x, g.Cin * HW, HW, 4},
              plan.taps.data(), 4, out, plan.ytaps.data(), bias);
  });
}

// gx = the input gradient on the Winograd path.
template <class T>
void winograd_grad_input(Wino kind, const Geom& g, const T* gy, const T* w, T* gx) {
  const int64_t HW = g.H * g.W, P = g.P();
  const wino::Planes<const T> dy{gy, g.Cout * P, P, 1};
  if (kind == Wino::K3S1) {
    // gx[h][w] = sum w[co][c][i][j] gy[co][h + ph - i][w + pw - j]: a valid 3x3 convolution of gy shifted by
    // (ph - 2, pw - 2) with the kernel flipped in both axes.
    wino::Problem<T, 3> pr{g.Cout, g.Cin, half_up(g.H), half_up(g.W), nullptr};
    transform_filters(pr, w, -3, -1, [&](int64_t c, int64_t co) { return (co * g.Cin + c) * 9 + 8; });
    const WinoPlan<T, 3> plan(
        g, pr, 1, [&](int) { return wino::Window{g.Ho, g.Wo, g.p.h - 2, 1, g.p.w - 2, 1}; }, g.H, g.W);
    for_batch_ranges(g.N, plan.threads, [&](int64_t n0, int64_t n1, int) {
      wino::run(pr, n0, n1, plan.group, thread_scratch<T>(0, plan.elems), dy, plan.taps.data(), 1,
                wino::Planes<T>{gx, g.Cin * HW, HW, 1}, plan.ytaps.data(), static_cast<const T*>(nullptr));
    });
    return;
  }
  // 4x4 stride 2: the transpose of the forward's mapping (wino::run_grad_input), with the forward's transformed
  // filters and stride-phase windows; each thread zeroes its images' planes of gx, then adds the tiles into them.
  wino::Problem<T, 2> pr = k4s2_problem(g, w);
  const WinoPlan<T, 2> plan(g, pr, 4, [&](int k) { return k4s2_window(g, k); }, g.Ho, g.Wo);
  for_batch_ranges(g.N, plan.threads, [&](int64_t n0, int64_t n1, int) {
    std::fill(gx + n0 * g.Cin * HW, gx + n1 * g.Cin * HW, T(0));
    wino::run_grad_input(pr, n0, n1, plan.group, thread_scratch<T>(0, plan.elems),
                         wino::Planes<T>{gx, g.Cin * HW, HW, 4}, plan.taps.data(), 4, dy, plan.ytaps.data());
  });
}

// gw = the weight gradient on the Winograd path: per pair (co, c), G^T [sum over tiles (A gy_t A^T) .* (B^T x_t B)] G
// with the forward's input tiles x_t (and, for 4x4 stride 2, its stride phases) and 2x2 tiles gy_t of gy.
template <class T, int R, class WindowOf, class Put>
void winograd_weight_sum(const Geom& g, wino::Problem<T, R> pr, int windows, WindowOf&& window,
                         const T* x, int64_t x_channels_per_plane, const T* gy, Put&& put) {
  constexpr int AA = wino::Problem<T, R>::AA;
  const int64_t HW = g.H * g.W, P = g.P();
  const int64_t lda = wino::padded(pr.Co * pr.C), MN = AA * lda;
  const WinoPlan<T, R> plan(g, pr, windows, window, g.Ho, g.Wo);
  const int threads = plan.threads;
  std::vector<T*> acc(threads, nullptr);
  for_batch_ranges(g.N, threads, [&](int64_t n0, int64_t n1, int t) {
    acc[t] = thread_scratch<T>(2, MN);
    wino::run_grad_weight(pr, n0, n1, plan.group, thread_scratch<T>(0, plan.elems),
                          wino::Planes<const T>{x, g.Cin * HW, HW, x_channels_per_plane}, plan.taps.data(), windows,
                          wino::Planes<const T>{gy, g.Cout * P, P, 1}, plan.ytaps.data(), acc[t]);
    // The team for_batch_ranges opened (one thread when it ran the body inline, maybe inside a caller's parallel
    // region, whose barrier this must not join).
    const int nt = threads > 1 ? omp_get_num_threads() : 1;
    if (nt > 1) {  // the threads' sums, added in thread order (reproducible for a thread count)
#pragma omp barrier
      for (int64_t i = MN * t / nt, hi = MN * (t + 1) / nt; i < hi; ++i) {
        T s = acc[0][i];
        for (int u = 1; u < nt; ++u) s += acc[u][i];
        acc[0][i] = s;
      }
#pragma omp barrier
    }
    // Back to kernel taps, rows of co split across the threads.
    T* out = thread_scratch<T>(1, R * R * pr.C);
    for (int64_t co = pr.Co * t / nt, hi = pr.Co * (t + 1) / nt; co < hi; ++co) {
      wino::transform_items<AA, R * R>(pr.C, acc[0] + co * pr.C, lda, out, pr.C,
                                       [](const auto* m, auto* o) { wino::grad_output_2d<R>(m, o); });
      for (int64_t c = 0; c < pr.C; ++c)
        for (int k = 0; k < R * R; ++k) put(co, c, k / R, k % R, out[k * pr.C + c]);
    }
  });
}

template <class T>
void winograd_grad_weight(Wino kind, const Geom& g, const T* x, const T* gy, T* gw) {
  if (kind == Wino::K3S1) {
    wino::Problem<T, 3> pr{g.Cin, g.Cout, half_up(g.Ho), half_up(g.Wo), nullptr};
    winograd_weight_sum(
        g, pr, 1, [&](int) { return wino::Window{g.H, g.W, -g.p.h, 1, -g.p.w, 1}; }, x, 1, gy,
        [&](int64_t co, int64_t c, int a, int b, T v) { gw[((co * g.Cin + c) * 3 + a) * 3 + b] = v; });
    return;
  }
  wino::Problem<T, 2> pr{4 * g.Cin, g.Cout, half_up(g.Ho), half_up(g.Wo), nullptr};
  winograd_weight_sum(
      g, pr, 4, [&](int k) { return k4s2_window(g, k); }, x, 4, gy,
      [&](int64_t co, int64_t c4, int a, int b, T v) {
        gw[(co * g.Cin + c4 / 4) * 16 + (2 * a + c4 / 2 % 2) * 4 + 2 * b + c4 % 2] = v;
      });
}

template <class T>
void conv_forward(const Geom& g, const T* x, const T* w, const T* bias, T* y) {
  if (const Wino kind = winograd_kind(g); kind != Wino::None) return winograd_forward(kind, g, x, w, bias, y);
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
          for (int64_t co = 0; co < g.Cout; ++co) {
            const T bv = bias[co];  // a local: read through the pointer it could alias the stores
            for (int64_t q = 0; q < P; ++q) yn[co * P + q] += bv;
          }
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
  if (const Wino kind = winograd_kind(g); kind != Wino::None) return winograd_grad_input(kind, g, gy, w, gx);
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
  if (const Wino kind = winograd_kind(g); kind != Wino::None) return winograd_grad_weight(kind, g, x, gy, gw);
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
