// Winograd minimal filtering F(2x2, RxR) for the CPU convolutions (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): a stride-1 "valid" convolution of C input planes with RxR kernels into
// Co output planes, computed per 2x2 output tile as A^T [ (G g G^T) .* (B^T d B) ] A. The elementwise products
// over all tiles of a block of images become (R+1)^2 GEMMs of (Co x C) by (C x tiles), which is where the saving
// lies: (R+1)^2 / (4 R^2) of the direct flops, 16/36 for 3x3 kernels and 9/16 for 2x2 ones.
//
// kernels/cpu/conv.cpp maps convolutions onto this engine: 3x3 stride 1 directly, and 4x4 stride 2 (the DCGAN
// layers) as a 2x2 stride-1 convolution over the four stride phases of the input (4 C planes). Besides the
// forward (run), the engine computes the weight gradient (run_grad_weight) and the input gradient
// (run_grad_input) of the same mapping by the transposition principle; a 3x3 stride-1 input gradient is also a
// 3x3 stride-1 convolution and runs forward.
//
// Numerics: float32 results differ from the direct sum by rounding only (about 1e-6 relative). A tile's
// transforms mix only inputs that its outputs read, so an inf or NaN input makes the same outputs non-finite as
// the direct convolution does, though an output the direct sum gives as +-inf may come out as NaN.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace nash {
namespace cpu {
namespace wino {

// One-dimensional transforms of F(2, R), each reading with stride s and writing with stride so.
template <int R>
struct F2;

// F(2, 3) on the points 0, 1, -1, infinity: all coefficients are 0, +-1 or 1/2, so the transforms are exact up to
// one rounding per addition.
template <>
struct F2<3> {
  static constexpr int A = 4;
  template <class T>
  static void input(const T* d, int s, T* o, int so) {
    const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
    o[0] = d0 - d2;
    o[so] = d1 + d2;
    o[2 * so] = d2 - d1;
    o[3 * so] = d1 - d3;
  }
  // The transpose of input (B m), for the input gradient by the transposition principle.
  template <class T>
  static void grad_input(const T* m, int s, T* o, int so) {
    const T m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s];
    o[0] = m0;
    o[so] = m1 - m2 + m3;
    o[2 * so] = m1 + m2 - m0;
    o[3 * so] = -m3;
  }
  template <class T>
  static void filter(const T* g, int s, T* o, int so) {
    const T g0 = g[0], g1 = g[s], g2 = g[2 * s];
    o[0] = g0;
    o[so] = (g0 + g1 + g2) * 0.5;
    o[2 * so] = (g0 - g1 + g2) * 0.5;
    o[3 * so] = g2;
  }
  template <class T>
  static void output(const T* m, int s, T* o, int so) {
    const T m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s];
    o[0] = m0 + m1 + m2;
    o[so] = m1 - m2 - m3;
  }
  // The weight gradient (the transposition principle: dg = G^T [(A dy) .* (B^T d)]): A dy for a 2-tap dy, and
  // G^T m back to the 3 taps.
  template <class T>
  static void grad_filter(const T* y, int s, T* o, int so) {
    const T y0 = y[0], y1 = y[s];
    o[0] = y0;
    o[so] = y0 + y1;
    o[2 * so] = y0 - y1;
    o[3 * so] = -y1;
  }
  template <class T>
  static void grad_output(const T* m, int s, T* o, int so) {
    const T m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s];
    o[0] = m0 + (m1 + m2) * 0.5;
    o[so] = (m1 - m2) * 0.5;
    o[2 * so] = (m1 + m2) * 0.5 + m3;
  }
};

// F(2, 2) on the points 0, 1, infinity.
template <>
struct F2<2> {
  static constexpr int A = 3;
  template <class T>
  static void input(const T* d, int s, T* o, int so) {
    const T d0 = d[0], d1 = d[s], d2 = d[2 * s];
    o[0] = d0 - d1;
    o[so] = d1;
    o[2 * so] = d2 - d1;
  }
  template <class T>
  static void grad_input(const T* m, int s, T* o, int so) {
    const T m0 = m[0], m1 = m[s], m2 = m[2 * s];
    o[0] = m0;
    o[so] = m1 - m0 - m2;
    o[2 * so] = m2;
  }
  template <class T>
  static void filter(const T* g, int s, T* o, int so) {
    const T g0 = g[0], g1 = g[s];
    o[0] = g0;
    o[so] = g0 + g1;
    o[2 * so] = g1;
  }
  template <class T>
  static void output(const T* m, int s, T* o, int so) {
    const T m0 = m[0], m1 = m[s], m2 = m[2 * s];
    o[0] = m0 + m1;
    o[so] = m1 + m2;
  }
  // For F(2, 2), A = G: the weight gradient's transforms A dy and G^T m are the filter and output transforms.
  template <class T>
  static void grad_filter(const T* y, int s, T* o, int so) {
    filter(y, s, o, so);
  }
  template <class T>
  static void grad_output(const T* m, int s, T* o, int so) {
    output(m, s, o, so);
  }
};

// The 2-D transforms of one tile (or kernel), written so that the loops over tiles around them vectorize.
template <int R, class T>
inline void input_2d(const T* d, T* v) {  // v = B^T d B, A x A
  constexpr int A = F2<R>::A;
  T t[A * A];
  for (int j = 0; j < A; ++j) F2<R>::input(d + j, A, t + j, A);
  for (int i = 0; i < A; ++i) F2<R>::input(t + i * A, 1, v + i * A, 1);
}
template <int R, class T>
inline void grad_input_2d(const T* m, T* d) {  // d = B m B^T, A x A
  constexpr int A = F2<R>::A;
  T t[A * A];
  for (int j = 0; j < A; ++j) F2<R>::grad_input(m + j, A, t + j, A);
  for (int i = 0; i < A; ++i) F2<R>::grad_input(t + i * A, 1, d + i * A, 1);
}
template <int R, class T>
inline void filter_2d(const T* g, T* u) {  // u = G g G^T, g R x R, u A x A
  constexpr int A = F2<R>::A;
  T t[A * R];
  for (int j = 0; j < R; ++j) F2<R>::filter(g + j, R, t + j, R);
  for (int i = 0; i < A; ++i) F2<R>::filter(t + i * R, 1, u + i * A, 1);
}
template <int R, class T>
inline void output_2d(const T* m, T* y) {  // y = A^T m A, 2 x 2
  constexpr int A = F2<R>::A;
  T t[2 * A];
  for (int j = 0; j < A; ++j) F2<R>::output(m + j, A, t + j, A);
  F2<R>::output(t, 1, y, 1);
  F2<R>::output(t + A, 1, y + 2, 1);
}

template <int R, class T>
inline void grad_filter_2d(const T* y, T* u) {  // u = A y A^T, y 2 x 2, u A x A
  constexpr int A = F2<R>::A;
  T t[A * 2];
  for (int j = 0; j < 2; ++j) F2<R>::grad_filter(y + j, 2, t + j, 2);
  for (int i = 0; i < A; ++i) F2<R>::grad_filter(t + i * 2, 1, u + i * A, 1);
}
template <int R, class T>
inline void grad_output_2d(const T* m, T* g) {  // g = G^T m G, m A x A, g R x R
  constexpr int A = F2<R>::A;
  T t[R * A];
  for (int j = 0; j < A; ++j) F2<R>::grad_output(m + j, A, t + j, A);
  for (int i = 0; i < R; ++i) F2<R>::grad_output(t + i * A, 1, g + i * R, 1);
}

// Applies a transform to n items read from KI input streams and written to KO output streams: in[k][t] (k < KI) ->
// out[x][t] (x < KO). The transform is generic in its element type: it runs on GCC vectors of 32 bytes (8 floats, 4
// doubles; two SSE registers each on a baseline x86-64 build) across items, then on scalars for the remainder. The
// stream loops are unrolled explicitly: without that GCC copied every stream through the stack.
template <int KI, int KO, class T, class F>
inline void transform_streams(int64_t n, const T* const* in, T* const* out, F&& f) {
  typedef T Vec __attribute__((vector_size(32)));
  constexpr int64_t L = 32 / sizeof(T);
  // Local copies of the stream pointers: the stores below (memcpy) could alias the caller's arrays of them, which
  // would make the compiler reload every pointer after every store.
  const T* ip[KI];
  T* op[KO];
  for (int k = 0; k < KI; ++k) ip[k] = in[k];
  for (int x = 0; x < KO; ++x) op[x] = out[x];
  int64_t t = 0;
  for (; t + L <= n; t += L) {
    Vec a[KI], b[KO];
#pragma GCC unroll 16
    for (int k = 0; k < KI; ++k) std::memcpy(&a[k], ip[k] + t, sizeof(Vec));
    f(a, b);
#pragma GCC unroll 16
    for (int x = 0; x < KO; ++x) std::memcpy(op[x] + t, &b[x], sizeof(Vec));
  }
  for (; t < n; ++t) {
    T a[KI], b[KO];
    for (int k = 0; k < KI; ++k) a[k] = ip[k][t];
    f(a, b);
    for (int x = 0; x < KO; ++x) op[x][t] = b[x];
  }
}

// The same for items stored as planes a fixed distance apart: in[k * ldi + t] (k < KI) -> out[x * ldo + t] (x < KO).
template <int KI, int KO, class T, class F>
inline void transform_items(int64_t n, const T* in, int64_t ldi, T* out, int64_t ldo, F&& f) {
  const T* ip[KI];
  T* op[KO];
  for (int k = 0; k < KI; ++k) ip[k] = in + k * ldi;
  for (int x = 0; x < KO; ++x) op[x] = out + x * ldo;
  transform_streams<KI, KO>(n, ip, op, f);
}

// Row o of the transformed filters: U[xi * ldu + o * C + i] = (G g G^T)[xi] for the kernels
// g(a, b) = w[base(o, i) + a*ld + b*cs], i < C; gl holds R * R * C (the kernels gathered densely first).
template <int R, class T, class Base>
void transform_filters_row(int64_t o, int64_t C, const T* w, int64_t ld, int64_t cs, Base&& base, T* gl, T* U,
                           int64_t ldu) {
  constexpr int AA = (R + 1) * (R + 1);
  for (int64_t i = 0; i < C; ++i) {
    const T* g = w + base(o, i);
    for (int a = 0; a < R; ++a)
      for (int b = 0; b < R; ++b) gl[(a * R + b) * C + i] = g[a * ld + b * cs];
  }
  transform_items<R * R, AA>(C, gl, C, U + o * C, ldu, [](const auto* g, auto* u) { filter_2d<R>(g, u); });
}

// Where the input tiles read: input plane element (r, s), r < 2 th + R - 1, is image[(r*sr + r0) * W + s*ss + s0]
// of an H x W source image, zero outside it. That covers padding, shifts and stride phases alike.
struct Window {
  int64_t H, W, r0, sr, s0, ss;
};

// The engine's view of one convolution: C planes in, Co planes out, th x tw output tiles of 2x2 per plane, the
// transformed filters U laid out [(R+1)^2][Co][C], their matrices ldu elements apart.
template <class T, int R>
struct Problem {
  int64_t C, Co, th, tw;
  const T* U;
  int64_t ldu = 0;  // elements between U's (R+1)^2 matrices
  // The input windows (channel c reads win[c % windows]) for the input stage (input_block); the caller sets them.
  const Window* win = nullptr;
  static constexpr int A = F2<R>::A, AA = A * A;
  int64_t tiles() const { return th * tw; }
  // The input stage keeps window rows 0 … 2 th + A - 2, the even ones and the odd ones apart: this many of each.
  int64_t parity_rows() const { return th + A / 2; }
  // Scratch of the input stage for one plane: its rows transformed along their columns, and one row split into its
  // even and odd columns.
  int64_t input_scratch() const { return A * 2 * parity_rows() * tw + 2 * (tw + 1); }
};

// taps[k * tiles + t]: the source offset element k = i*A + j of tile t reads, or -1 for a zero.
template <class T, int R>
void make_taps(const Problem<T, R>& p, const Window& w, int32_t* taps) {
  constexpr int A = F2<R>::A;
  const int64_t n = p.tiles();
  for (int i = 0; i < A; ++i)
    for (int j = 0; j < A; ++j)
      for (int64_t ty = 0; ty < p.th; ++ty)
        for (int64_t tx = 0; tx < p.tw; ++tx) {
          const int64_t ih = (2 * ty + i) * w.sr + w.r0, iw = (2 * tx + j) * w.ss + w.s0;
          taps[(i * A + j) * n + ty * p.tw + tx] =
              ih >= 0 && ih < w.H && iw >= 0 && iw < w.W ? static_cast<int32_t>(ih * w.W + iw) : -1;
        }
}

// ytaps[k * tiles + t]: the offset in an Ho x Wo output plane of element k = u*2 + v of the 2x2 tile t, or -1
// where the tile reaches past the plane.
template <class T, int R>
void make_output_taps(const Problem<T, R>& p, int64_t Ho, int64_t Wo, int32_t* ytaps) {
  const int64_t n = p.tiles();
  for (int u = 0; u < 2; ++u)
    for (int v = 0; v < 2; ++v)
      for (int64_t ty = 0; ty < p.th; ++ty)
        for (int64_t tx = 0; tx < p.tw; ++tx) {
          const int64_t oh = 2 * ty + u, ow = 2 * tx + v;
          ytaps[(u * 2 + v) * n + ty * p.tw + tx] = oh < Ho && ow < Wo ? static_cast<int32_t>(oh * Wo + ow) : -1;
        }
}

// How many images one block takes: enough tiles for a GEMM that runs at full speed (>= 128 columns), within a
// per-thread workspace of about 16 MiB for the transformed inputs and products.
template <class T, int R>
int64_t block_images(const Problem<T, R>& p, int64_t per_thread) {
  const int64_t tiles = std::max<int64_t>(1, p.tiles());
  int64_t grp = (128 + tiles - 1) / tiles;
  const int64_t per_image = Problem<T, R>::AA * (p.C + p.Co) * tiles;
  grp = std::min(grp, std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(1, per_image)));
  return std::max<int64_t>(1, std::min(grp, per_thread));
}

// The (R+1)^2 matrices of a block (transformed inputs, products) lie `stride` elements apart: their size plus 64
// bytes, so that the transforms, which write or read all of them at once, do not send every stream to the same
// cache set when the size is a multiple of 4 KiB.
inline int64_t padded(int64_t elems) { return elems + 16; }

// Elements of the per-thread workspace run(), run_grad_weight() and run_grad_input() need for blocks of `group` images.
template <class T, int R>
int64_t workspace_elems(const Problem<T, R>& p, int64_t group) {
  constexpr int AA = Problem<T, R>::AA;
  const int64_t cols = p.tiles() * group;
  return AA * (padded(p.C * cols) + padded(p.Co * cols)) + std::max(AA * cols, p.input_scratch());
}

// A batch of planes in memory: plane c of image n starts at data + n * image + (c / div) * channel, so that the
// stride phases of one input channel (div = 4) share its plane.
template <class T>
struct Planes {
  T* data;
  int64_t image, channel, div;
  T* at(int64_t n, int64_t c) const { return data + n * image + (c / div) * channel; }
};

// The tap tables of a problem (make_taps for each of `windows` input windows, channel c reading through window
// c % windows; make_output_taps for the 2x2 output tiles) widened to a block of bc images of a batch: element j
// = b * tiles + t of a block's rows reads offset b * image + tap of image n's plane, or nothing (-1). One flat
// loop then gathers or scatters all the tiles of a block's channel, however few tiles a plane has.
template <class T, int R>
struct BlockTaps {
  static constexpr int AA = Problem<T, R>::AA;
  std::vector<int64_t> in, out;  // [windows][AA][cols], [4][cols]
  int64_t cols = 0;
  int windows = 1;
  void build(const Problem<T, R>& p, const int32_t* taps, int nwin, int64_t in_image, const int32_t* ytaps,
             int64_t out_image, int64_t bc) {
    const int64_t tiles = p.tiles();
    cols = bc * tiles;
    windows = nwin;
    in.resize(static_cast<size_t>(nwin * AA * cols));
    out.resize(static_cast<size_t>(4 * cols));
    widen(taps, nwin * AA, tiles, bc, in_image, in.data());
    widen(ytaps, 4, tiles, bc, out_image, out.data());
  }
  const int64_t* input(int64_t c) const { return in.data() + (c % windows) * AA * cols; }
  static void widen(const int32_t* taps, int64_t rows, int64_t tiles, int64_t bc, int64_t image, int64_t* o) {
    for (int64_t k = 0; k < rows; ++k)
      for (int64_t b = 0; b < bc; ++b)
        for (int64_t t = 0; t < tiles; ++t) {
          const int32_t v = taps[k * tiles + t];
          o[(k * bc + b) * tiles + t] = v >= 0 ? b * image + v : -1;
        }
  }
};

template <class T>
inline void gather(const T* base, const int64_t* off, int64_t n, T* d) {
  for (int64_t j = 0; j < n; ++j) d[j] = off[j] >= 0 ? base[off[j]] : T(0);
}

// A thread's workspace (workspace_elems) for blocks of `group` images: AA matrices on the C side (transformed
// inputs or input-side products), AA on the Co side, each padded() apart, then the scratch la of AA * cols (or the
// input stage's scratch, if larger).
template <class T>
struct BlockWorkspace {
  T *cside, *coside, *la;
  int64_t ldc, ldco;
  template <int R>
  BlockWorkspace(const Problem<T, R>& p, int64_t group, T* ws)
      : ldc(padded(p.C * p.tiles() * group)), ldco(padded(p.Co * p.tiles() * group)) {
    cside = ws;
    coside = cside + Problem<T, R>::AA * ldc;
    la = coside + Problem<T, R>::AA * ldco;
  }
};

// Calls body(n, bt) for each block [n, n + group) of images [n0, n1) (the last one may be shorter) with the tap
// tables widened to it; in_image and out_image are the image strides of the input-side and output-side planes.
template <class T, int R, class Body>
void for_blocks(const Problem<T, R>& p, int64_t n0, int64_t n1, int64_t group, const int32_t* taps, int windows,
                int64_t in_image, const int32_t* ytaps, int64_t out_image, Body&& body) {
  BlockTaps<T, R> bt;
  for (int64_t n = n0; n < n1; n += group) {
    const int64_t bc = std::min(group, n1 - n);
    if (n == n0 || bt.cols != bc * p.tiles()) bt.build(p, taps, windows, in_image, ytaps, out_image, bc);
    body(n, static_cast<const BlockTaps<T, R>&>(bt));
  }
}

// The input stage of one plane: v[xi * ldv + t] = (B^T d_t B)[xi] for its tiles t = ty * tw + tx, d_t the A x A
// elements of window w from (2 ty, 2 tx). Separably: each window row r is split into its even and odd columns, so
// that the A elements a tile column reads, from column 2 tx, are four (three) contiguous runs over tx, and is
// transformed along its columns into rows[((jj * 2 + r % 2) * RR + r / 2) * tw + tx] (RR = parity_rows()); that
// layout makes the A rows 2 ty + i of every tile row one contiguous run over all tiles for each i, which the
// transform along the rows then reads. Every element is read once from the plane, the loops run on vectors, and
// padding costs a zero row or column instead of a test per tap. scratch holds input_scratch() elements.
template <class T, int R>
void input_plane(const Problem<T, R>& p, const Window& w, const T* plane, T* scratch, T* v, int64_t ldv) {
  constexpr int A = F2<R>::A;
  const int64_t th = p.th, tw = p.tw, rr = p.parity_rows();
  T* rows = scratch;
  T* even = rows + A * 2 * rr * tw;
  T* odd = even + tw + 1;
  auto along = [](const auto* d, auto* o) { F2<R>::input(d, 1, o, 1); };
  const T* split[4] = {even, odd, even + 1, odd + 1};  // element j of a tile column, over tx (A = 3 reads three)
  for (int64_t r = 0; r < 2 * th + A - 1; ++r) {
    T* out[A];
    for (int jj = 0; jj < A; ++jj) out[jj] = rows + ((jj * 2 + r % 2) * rr + r / 2) * tw;
    const int64_t hr = r * w.sr + w.r0;
    if (hr < 0 || hr >= w.H) {
      for (int jj = 0; jj < A; ++jj) std::fill(out[jj], out[jj] + tw, T(0));
      continue;
    }
    const T* src = plane + hr * w.W;
    for (int64_t u = 0; u <= tw; ++u) {
      const int64_t c0 = 2 * u * w.ss + w.s0, c1 = c0 + w.ss;
      even[u] = c0 >= 0 && c0 < w.W ? src[c0] : T(0);
      odd[u] = c1 >= 0 && c1 < w.W ? src[c1] : T(0);
    }
    transform_streams<A, A>(tw, split, out, along);
  }
  for (int jj = 0; jj < A; ++jj) {
    const T* in[A];
    T* out[A];
    for (int i = 0; i < A; ++i) in[i] = rows + ((jj * 2 + i % 2) * rr + i / 2) * tw;
    for (int ii = 0; ii < A; ++ii) out[ii] = v + (ii * A + jj) * ldv;
    transform_streams<A, A>(th * tw, in, out, along);
  }
}

// The input stage of a block: V[xi * ldv + c * cols + j] = (B^T d_j B)[xi] for the cols tiles j of the block's
// images, every channel; la holds max(AA * cols, input_scratch()) elements. Planes at least one vector (8 floats)
// of tiles wide go through input_plane; narrower ones would run its row loops on scalars, so their tiles are
// gathered through the tap tables, all the block's images in one run per channel, and transformed together.
template <class T, int R>
void input_block(const Problem<T, R>& p, int64_t n, const Planes<const T>& src, const BlockTaps<T, R>& bt, T* la,
                 T* V, int64_t ldv) {
  constexpr int AA = Problem<T, R>::AA;
  const int64_t cols = bt.cols, tiles = p.tiles(), images = cols / tiles;
  if (p.tw >= 32 / static_cast<int64_t>(sizeof(T))) {
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t b = 0; b < images; ++b)
        input_plane(p, p.win[c % bt.windows], src.at(n + b, c), la, V + c * cols + b * tiles, ldv);
    return;
  }
  for (int64_t c = 0; c < p.C; ++c) {
    gather(src.at(n, c), bt.input(c), AA * cols, la);
    transform_items<AA, AA>(cols, la, cols, V + c * cols, ldv, [](const auto* d, auto* v) { input_2d<R>(d, v); });
  }
}

// The output-gradient stage of a block: Y[xi * ldy + co * cols + j] = (A dy_j A^T)[xi] for the 2x2 tiles dy_j of
// output-gradient plane co; la holds 4 * cols.
template <class T, int R>
void output_grad_block(const Problem<T, R>& p, int64_t n, const Planes<const T>& dy, const BlockTaps<T, R>& bt, T* la,
                       T* Y, int64_t ldy) {
  constexpr int AA = Problem<T, R>::AA;
  const int64_t cols = bt.cols;
  for (int64_t co = 0; co < p.Co; ++co) {
    gather(dy.at(n, co), bt.out.data(), 4 * cols, la);
    transform_items<4, AA>(cols, la, cols, Y + co * cols, ldy, [](const auto* y, auto* u) { grad_filter_2d<R>(y, u); });
  }
}

// Runs images [n0, n1) on the calling thread in blocks of `group` images: output plane co of image n, dst.at(n, co)
// (an Ho x Wo plane whose offsets ytaps holds, make_output_taps), = bias[co] (bias may be null) + the convolution
// of the input planes src.at(n, c) read through taps (make_taps, `windows` windows). ws holds workspace_elems().
// A block's transforms run over all its tiles of one channel at once, so small planes (a 4x4 output has 4 tiles)
// cost no per-plane overhead.
template <class T, int R>
void run(const Problem<T, R>& p, int64_t n0, int64_t n1, int64_t group, T* ws, const Planes<const T>& src,
         const int32_t* taps, int windows, const Planes<T>& dst, const int32_t* ytaps, const T* bias) {
  constexpr int AA = Problem<T, R>::AA;
  // C side: the transformed inputs V; Co side: the products M; la: gathered inputs, then a plane's 4 * cols outputs.
  const BlockWorkspace<T> w(p, group, ws);
  for_blocks(p, n0, n1, group, taps, windows, src.image, ytaps, dst.image, [&](int64_t n, const BlockTaps<T, R>& bt) {
    const int64_t cols = bt.cols;
    input_block(p, n, src, bt, w.la, w.cside, w.ldc);
    for (int xi = 0; xi < AA; ++xi)
      gemm<T>(false, false, p.Co, cols, p.C, T(1), p.U + xi * p.ldu, p.C, w.cside + xi * w.ldc, cols, T(0),
              w.coside + xi * w.ldco, cols);
    const int64_t* off = bt.out.data();
    for (int64_t co = 0; co < p.Co; ++co) {
      transform_items<AA, 4>(cols, w.coside + co * cols, w.ldco, w.la, cols,
                             [](const auto* mv, auto* o) { output_2d<R>(mv, o); });
      T* y = dst.at(n, co);
      const T bv = bias ? bias[co] : T(0);
      for (int64_t j = 0; j < 4 * cols; ++j)
        if (off[j] >= 0) y[off[j]] = w.la[j] + bv;
    }
  });
}

// The weight gradient of the same convolution: acc[xi][co][c] = sum over the tiles of images [n0, n1) of
// (A dy_t A^T)[xi] (B^T d_t B)[xi], where dy_t is tile t (2x2) of output-gradient plane dy.at(n, co) (an Ho x Wo
// plane, ytaps). The caller adds the threads' acc and maps each (co, c) back with G^T acc G (grad_output_2d). ws
// holds workspace_elems() elements; acc holds AA matrices of Co x C, padded(Co * C) apart.
template <class T, int R>
void run_grad_weight(const Problem<T, R>& p, int64_t n0, int64_t n1, int64_t group, T* ws, const Planes<const T>& src,
                     const int32_t* taps, int windows, const Planes<const T>& dy, const int32_t* ytaps, T* acc) {
  constexpr int AA = Problem<T, R>::AA;
  const int64_t lda = padded(p.Co * p.C);
  if (n0 >= n1)
    for (int xi = 0; xi < AA; ++xi) std::fill(acc + xi * lda, acc + xi * lda + p.Co * p.C, T(0));
  // C side: the transformed inputs V; Co side: the transformed output-gradient tiles Y.
  const BlockWorkspace<T> w(p, group, ws);
  for_blocks(p, n0, n1, group, taps, windows, src.image, ytaps, dy.image, [&](int64_t n, const BlockTaps<T, R>& bt) {
    const int64_t cols = bt.cols;
    input_block(p, n, src, bt, w.la, w.cside, w.ldc);
    output_grad_block(p, n, dy, bt, w.la, w.coside, w.ldco);
    for (int xi = 0; xi < AA; ++xi)
      gemm<T>(false, true, p.Co, p.C, cols, T(1), w.coside + xi * w.ldco, cols, w.cside + xi * w.ldc, cols,
              n == n0 ? T(0) : T(1), acc + xi * lda, p.C);
  });
}

// The input gradient of the same convolution by the transposition principle: the forward maps an input tile d_t
// to A^T [U .* (B^T d_t B)] A, so d_t receives B [sum over co of U^T .* (A dy_t A^T)] B^T, where dy_t is tile t
// of the output gradient, read as in run_grad_weight. Per block that is the forward's (R+1)^2 GEMMs transposed
// (C x Co by Co x tiles), one small transform of the 2x2 output-gradient tiles and one of the products. The
// tiles' (R+1) x (R+1) input windows overlap, so their contributions are added into the input-gradient planes
// dst.at(n, c) through the forward's taps; the caller has zeroed them (the stride phases of one image share one
// plane and write disjoint elements of it). ws holds workspace_elems() elements.
template <class T, int R>
void run_grad_input(const Problem<T, R>& p, int64_t n0, int64_t n1, int64_t group, T* ws, const Planes<T>& dst,
                    const int32_t* taps, int windows, const Planes<const T>& dy, const int32_t* ytaps) {
  constexpr int AA = Problem<T, R>::AA;
  // C side: the products P; Co side: the transformed output-gradient tiles Y.
  const BlockWorkspace<T> w(p, group, ws);
  for_blocks(p, n0, n1, group, taps, windows, dst.image, ytaps, dy.image, [&](int64_t n, const BlockTaps<T, R>& bt) {
    const int64_t cols = bt.cols;
    output_grad_block(p, n, dy, bt, w.la, w.coside, w.ldco);
    for (int xi = 0; xi < AA; ++xi)
      gemm<T>(true, false, p.C, cols, p.Co, T(1), p.U + xi * p.ldu, p.C, w.coside + xi * w.ldco, cols, T(0),
              w.cside + xi * w.ldc, cols);
    for (int64_t c = 0; c < p.C; ++c) {
      transform_items<AA, AA>(cols, w.cside + c * cols, w.ldc, w.la, cols,
                              [](const auto* m, auto* d) { grad_input_2d<R>(m, d); });
      T* im = dst.at(n, c);
      const int64_t* off = bt.input(c);
      for (int64_t j = 0; j < AA * cols; ++j)
        if (off[j] >= 0) im[off[j]] += w.la[j];
    }
  });
}

}  // namespace wino
}  // namespace cpu
}  // namespace nash
