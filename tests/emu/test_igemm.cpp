// The CUDA backend's tiled GEMM core (kernels/cuda/igemm.h) under the emulation: every tile shape, K-split and
// fetch path on shapes that straddle the tiles, against a float64 reference; grouped launches; the fast divisor of
// the gathers; the launch planning; and the matmul and convolution ops with each plan pinned, against the CPU.
#define NASH_CUDA_EMULATION 1
#include "kernels/cuda/fastdiv.h"
#include "kernels/cuda/igemm.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;
namespace k = nash::cuda_emu;

namespace {

constexpr double kCoreBound = 1e-5;  // float32 sums of at most 70 products against float64
constexpr double kOpBound = 1e-3;    // device vs CPU for GEMM/conv (the bound of the device parity tests)

Device emu_device() { return Device::parse("emu-cuda"); }

// A matrix operand as the core sees it (outer index i, reduction index k): element at p[i*ld + k] (KContig) or
// p[k*ld + i]. The float4-capable variant counts its float4 fetches.
template <bool KContig>
struct ScalarOperand {
  static constexpr bool kKFast = KContig;
  const float* p;
  int64_t ld;
  using Outer = int64_t;
  using Step = int64_t;
  Outer outer(int64_t i) const { return KContig ? i * ld : i; }
  Step step(int64_t kk) const { return KContig ? kk : kk * ld; }
  float load(Outer o, Step s) const { return p[o + s]; }
};
template <bool KContig>
struct Vec4Operand : ScalarOperand<KContig> {
  int* fetches;
  float4 load4(int64_t o, int64_t s) const {
    atomicAdd(fetches, 1);
    const float* q = this->p + o + s;
    return make_float4(q[0], q[1], q[2], q[3]);
  }
  bool vec4_ok(int64_t outer_extent, int64_t K) const {
    return reinterpret_cast<uintptr_t>(this->p) % 16 == 0 && this->ld % 4 == 0 && (KContig ? K : outer_extent) % 4 == 0;
  }
};
struct RowStore {
  float* c;
  int64_t ldc;
  void operator()(unsigned, int64_t m, int64_t n, float v) const { c[m * ldc + n] = v; }
};

// Host buffers of one GEMM problem: A (M x K) and B (K x N) stored k-contiguous or outer-contiguous, with padded
// leading dimensions, and C initialised to NaN so that an unwritten element fails.
struct Problem {
  int64_t M, N, K;
  bool a_kc, b_kc;
  int64_t lda, ldb;
  std::vector<float> a, b, c;
  std::vector<double> a_val, b_val;  // logical A[m][k], B[k][n]
  Problem(int64_t M_, int64_t N_, int64_t K_, bool a_kc_, bool b_kc_, uint64_t seed, int64_t pad = 3)
      : M(M_), N(N_), K(K_), a_kc(a_kc_), b_kc(b_kc_) {
    lda = (a_kc ? K : M) + pad;
    ldb = (b_kc ? K : N) + pad;
    Tensor ta = nash_test::randn32({M * K}, seed), tb = nash_test::randn32({K * N}, seed + 1);
    a_val = ta.to_vector<double>(), b_val = tb.to_vector<double>();
    a.assign(static_cast<size_t>(std::max<int64_t>(1, lda * (a_kc ? M : K))), std::nanf(""));
    b.assign(static_cast<size_t>(std::max<int64_t>(1, ldb * (b_kc ? N : K))), std::nanf(""));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t kk = 0; kk < K; ++kk) a[a_kc ? m * lda + kk : kk * lda + m] = float(a_val[m * K + kk]);
    for (int64_t kk = 0; kk < K; ++kk)
      for (int64_t n = 0; n < N; ++n) b[b_kc ? n * ldb + kk : kk * ldb + n] = float(b_val[kk * N + n]);
    c.assign(static_cast<size_t>(M * N), std::nanf(""));
  }
  // ||C - A·B|| / ||A·B||, infinite when an element is not finite.
  double error() const {
    double num = 0, den = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0;
        for (int64_t kk = 0; kk < K; ++kk) ref += a_val[m * K + kk] * b_val[kk * N + n];
        const double got = c[m * N + n];
        if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
        num += (got - ref) * (got - ref), den += ref * ref;
      }
    return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
  }
};

template <bool KA, bool KB>
double run_scalar(Problem& p, const k::GemmPlan& plan) {
  k::igemm_planned("test_gemm", plan, p.M, p.N, p.K, ScalarOperand<KA>{p.a.data(), p.lda},
                   ScalarOperand<KB>{p.b.data(), p.ldb}, RowStore{p.c.data(), p.N}, emu_device());
  return p.error();
}
double run_scalar(Problem& p, const k::GemmPlan& plan) {
  if (p.a_kc && p.b_kc) return run_scalar<true, true>(p, plan);
  if (p.a_kc) return run_scalar<true, false>(p, plan);
  if (p.b_kc) return run_scalar<false, true>(p, plan);
  return run_scalar<false, false>(p, plan);
}

std::string plan_str(const k::GemmPlan& p) {
  return std::string(p.tile == k::GemmTile::Large ? "128x128" : "64x64") + " tiles, " + std::to_string(p.slices) +
         " K-slices";
}

const k::GemmPlan kPlans[] = {{k::GemmTile::Large, 1}, {k::GemmTile::Small, 1}, {k::GemmTile::Large, 3},
                              {k::GemmTile::Small, 2}, {k::GemmTile::Small, 7}};

}  // namespace

TEST(GemmCore, EveryPlanAndLayoutOnShapesStraddlingTheTiles) {
  // Partial tiles in M and N, K not a multiple of the k-tile (8), K below one k-tile, a 1x1x1 product, more
  // K-slices than k-tiles (empty slices add zeros), and K = 0 (C is zero).
  const std::array<int64_t, 3> shapes[] = {{130, 67, 37}, {1, 1, 1}, {5, 133, 3}, {64, 128, 16}, {129, 70, 9},
                                           {3, 4, 0}};
  for (const auto& [M, N, K] : shapes)
    for (int layout = 0; layout < 4; ++layout)
      for (const k::GemmPlan& plan : kPlans) {
        Problem p(M, N, K, layout & 1, layout & 2, static_cast<uint64_t>(M * 1000 + N * 10 + K));
        SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + " A " +
                     (p.a_kc ? "k-contiguous" : "m-contiguous") + ", B " + (p.b_kc ? "k-contiguous" : "n-contiguous") +
                     ", " + plan_str(plan));
        EXPECT_LE(run_scalar(p, plan), kCoreBound);
      }
}

TEST(GemmCore, Float4FetchesWhereAlignedAndScalarFallbackElsewhere) {
  struct Case {
    int64_t M, N, K;
    bool a_kc, b_kc;
    int64_t pad;
    int offset;        // floats A's data starts after a 16-byte boundary
    k::GemmPlan plan;
    bool want_vec4;
  };
  const k::GemmPlan large{k::GemmTile::Large, 1}, large3{k::GemmTile::Large, 3}, small{k::GemmTile::Small, 1};
  const Case cases[] = {
      {130, 132, 36, true, false, 4, 0, large, true},   // row-major A and B (a matmul), edges in M and N
      {130, 132, 36, true, true, 0, 0, large, true},    // B k-contiguous (x·Wᵀ)
      {132, 68, 40, false, false, 4, 0, large3, true},  // A m-contiguous (Xᵀ·G), K split
      {132, 68, 44, false, true, 8, 0, large, true},
      {130, 132, 36, true, false, 4, 1, large, false},  // A misaligned: scalar
      {130, 132, 37, true, false, 3, 0, large, false},  // K not a multiple of 4
      {130, 130, 36, false, false, 4, 0, large, false}, // N not a multiple of 4 (B n-contiguous)
      {130, 132, 36, true, false, 4, 0, small, false},  // the small tile fetches scalars
  };
  for (const Case& c : cases) {
    Problem p(c.M, c.N, c.K, c.a_kc, c.b_kc, 77, c.pad);
    std::vector<float> a_shifted(p.a.size() + 4);
    float* a16 = a_shifted.data();
    while (reinterpret_cast<uintptr_t>(a16) % 16 != 0) ++a16;
    std::copy(p.a.begin(), p.a.end(), a16 + c.offset);
    int fetches = 0;
    SCOPED_TRACE(std::to_string(c.M) + "x" + std::to_string(c.N) + "x" + std::to_string(c.K) + " offset " +
                 std::to_string(c.offset) + ", " + plan_str(c.plan));
    auto run = [&](auto ka, auto kb) {
      Vec4Operand<decltype(ka)::value> A{{a16 + c.offset, p.lda}, &fetches};
      Vec4Operand<decltype(kb)::value> B{{p.b.data(), p.ldb}, &fetches};
      k::igemm_planned("test_gemm_vec4", c.plan, p.M, p.N, p.K, A, B, RowStore{p.c.data(), p.N}, emu_device());
    };
    using T = std::true_type;
    using F = std::false_type;
    if (c.a_kc && c.b_kc) run(T{}, T{});
    if (c.a_kc && !c.b_kc) run(T{}, F{});
    if (!c.a_kc && c.b_kc) run(F{}, T{});
    if (!c.a_kc && !c.b_kc) run(F{}, F{});
    EXPECT_LE(p.error(), kCoreBound);
    EXPECT_EQ(fetches > 0, c.want_vec4) << fetches << " float4 fetches";
  }
}

namespace {
// Three GEMMs of different sizes (one with K = 0) in one launch, each into its own C.
struct ThreeGemms {
  using A = ScalarOperand<true>;
  using B = ScalarOperand<false>;
  k::Gemm<A, B, RowStore> g[3];
  k::Gemm<A, B, RowStore> group(unsigned i) const { return g[i]; }
};
}  // namespace

TEST(GemmCore, GroupsOfDifferentSizesShareOneLaunch) {
  for (const k::GemmPlan& plan : kPlans) {
    SCOPED_TRACE(plan_str(plan));
    std::vector<Problem> ps;
    ps.emplace_back(70, 150, 20, true, false, 1);
    ps.emplace_back(131, 40, 0, true, false, 2);
    ps.emplace_back(5, 9, 45, true, false, 3);
    ThreeGemms job{};
    int64_t M = 0, N = 0, K = 0;
    for (int i = 0; i < 3; ++i) {
      Problem& p = ps[i];
      job.g[i] = {p.M, p.N, p.K, {p.a.data(), p.lda}, {p.b.data(), p.ldb}, {p.c.data(), p.N}};
      M = std::max(M, p.M), N = std::max(N, p.N), K = std::max(K, p.K);
    }
    k::run_igemm("test_gemm_groups", plan, false, M, N, K, 3, job, emu_device());
    for (int i = 0; i < 3; ++i) EXPECT_LE(ps[i].error(), kCoreBound) << "group " << i;
  }
}

TEST(GemmCore, FastDivmodEqualsIntegerDivision) {
  const int64_t big = 2147483647;
  std::vector<int64_t> divisors = {1, 2, 3, 5, 7, 9, 12, 16, 25, 49, 100, 1023, 1024, 4097, 65537, 1 << 30,
                                   (1 << 30) + 1, big - 1, big};
  Generator gen(5);
  Tensor r = rand({64}, DType::Float64, Device::cpu(), &gen);
  for (double u : r.to_vector<double>()) divisors.push_back(1 + static_cast<int64_t>(u * 300000));
  for (int64_t d : divisors) {
    const k::FastDivmod f(d);
    std::vector<int64_t> ns = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, big - 1, big, big - d};
    for (int64_t i = 1; i < 2000; ++i) ns.push_back((i * 1103515245LL + 12345) % (big + 1));
    for (int64_t n : ns) {
      if (n < 0 || n > big) continue;
      int q = -1, rem = -1;
      f.divmod(static_cast<int>(n), q, rem);
      ASSERT_EQ(q, n / d) << n << " / " << d;
      ASSERT_EQ(rem, n % d) << n << " % " << d;
    }
  }
}

TEST(GemmPlan, TileAndSplitFollowTheDeviceFill) {
  using k::GemmTile;
  const int sms = 132;
  auto plan = [&](int64_t M, int64_t N, int64_t K, bool split = true, bool large_ok = true) {
    return k::plan_gemm(M, N, K, split, sms, 1, large_ok);
  };
  // Enough 128x128 tiles for every multiprocessor: no split (4096^3 matmul; a 3x3 conv at batch 128).
  EXPECT_EQ(plan(4096, 4096, 4096).tile, GemmTile::Large);
  EXPECT_EQ(plan(128, 131072, 1152).slices, 1);
  // A conv weight gradient (128 x 1152 over K = 128*32*32): 9 large tiles split into 29 slices, one wave.
  const k::GemmPlan gw = plan(128, 1152, 131072);
  EXPECT_EQ(gw.tile, GemmTile::Large);
  EXPECT_EQ(gw.slices, 29);
  // 1024^3: 64 large tiles would idle half the device, 256 small ones fill it.
  EXPECT_EQ(plan(1024, 1024, 1024).tile, GemmTile::Small);
  EXPECT_EQ(plan(1024, 1024, 1024).slices, 1);
  // A 4x4 stride-2 weight gradient (128 x 1024 over 4096): small tiles, 8 slices of 512.
  EXPECT_EQ(plan(128, 1024, 4096).tile, GemmTile::Small);
  EXPECT_EQ(plan(128, 1024, 4096).slices, 8);
  // A shorter reduction (128 x 1024 over 1024): as many slices of 256 as K allows, one block per multiprocessor.
  EXPECT_EQ(plan(128, 1024, 1024).slices, 4);
  // Four stride phases of a DCGAN input gradient in one launch (each 64 x 4096 over 512): 256 small tiles.
  EXPECT_EQ(k::plan_gemm(64, 4096, 512, true, sms, 4).tile, GemmTile::Small);
  EXPECT_EQ(k::plan_gemm(64, 4096, 512, true, sms, 4).slices, 1);
  // No split when the epilogue is not linear, no large tile when the gather's state does not fit it.
  EXPECT_EQ(plan(128, 1024, 4096, false).slices, 1);
  EXPECT_EQ(plan(4096, 4096, 4096, true, false).tile, GemmTile::Small);
  // Every split plan stays within one wave (two blocks per multiprocessor), fills it when it has more blocks than
  // multiprocessors, and keeps slices long.
  for (int64_t M : {1, 64, 128, 300, 1000})
    for (int64_t N : {1, 100, 1152, 5000})
      for (int64_t K : {0, 100, 1000, 20000, 300000}) {
        const k::GemmPlan p = plan(M, N, K);
        if (p.slices == 1) continue;
        const bool large = p.tile == GemmTile::Large;
        const int64_t tiles = k::gemm_tiles(M, N, large ? 128 : 64, large ? 128 : 64);
        EXPECT_LE(tiles * p.slices, 2 * sms) << M << "x" << N << "x" << K;
        if (tiles * p.slices > sms) EXPECT_EQ(p.slices, 2 * sms / tiles) << M << "x" << N << "x" << K;  // a full wave
        EXPECT_GE(K / p.slices, large ? k::kMinSliceLarge : k::kMinSliceSmall) << M << "x" << N << "x" << K;
      }
}

// ---- the ops through the core, each plan pinned (on a real GPU: the device's own plans) -----------------------

namespace {
class PinPlan {
 public:
  explicit PinPlan(const k::GemmPlan& p) { k::gemm_plan_pin() = {true, p}; }
  ~PinPlan() { k::gemm_plan_pin() = {}; }
  PinPlan(const PinPlan&) = delete;
  PinPlan& operator=(const PinPlan&) = delete;
};

class GemmOps : public nash_test::DeviceTest {
 protected:
  // Runs check once per pinned plan on the emulated device, once with the device's plans on a GPU.
  void for_each_plan(const std::function<void()>& check) {
    if (!device_.is_emu_cuda()) return check();
    const k::GemmPlan plans[] = {{k::GemmTile::Large, 1}, {k::GemmTile::Large, 3}, {k::GemmTile::Small, 1},
                                 {k::GemmTile::Small, 2}};
    for (const k::GemmPlan& p : plans) {
      SCOPED_TRACE(plan_str(p));
      PinPlan pin(p);
      check();
    }
  }
  double compare(const std::vector<Tensor>& cpu_in, const std::function<Tensor(const std::vector<Tensor>&)>& f) {
    std::vector<Tensor> dev_in;
    for (const Tensor& t : cpu_in) dev_in.push_back(t.to(device_));
    Tensor ref = f(cpu_in), got = f(dev_in);
    EXPECT_EQ(got.device(), device_);
    return nash_test::rel_error(got, ref);
  }
};
Tensor rnd(const Shape& s, uint64_t seed) { return nash_test::randn32(s, seed); }
}  // namespace

TEST_P(GemmOps, MatmulLayoutsAlignmentAndEdges) {
  MatmulEngineGuard nash_engine(MatmulEngine::Nash);
  for_each_plan([&] {
    for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{130, 36, 132}, {67, 9, 5}, {1, 70, 129}}) {
      SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N));
      Tensor a = rnd({M, K}, 1), b = rnd({K, N}, 2), at = rnd({K, M}, 3), bt = rnd({N, K}, 4);
      // Row-major, both transposed, an operand with no unit stride (copied), a misaligned view (scalar fetches).
      Tensor a3 = rnd({M, K, 2}, 5), wide = rnd({M, K + 1}, 6);
      auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
      EXPECT_LE(compare({a, b}, mm), kOpBound);
      EXPECT_LE(compare({at, bt}, [](const std::vector<Tensor>& in) { return matmul(in[0].t(), in[1].t()); }),
                kOpBound);
      EXPECT_LE(compare({a, bt}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1].t()); }), kOpBound);
      EXPECT_LE(compare({a3, b}, [](const std::vector<Tensor>& in) { return matmul(in[0].select(2, 1), in[1]); }),
                kOpBound);
      EXPECT_LE(compare({wide, b}, [&](const std::vector<Tensor>& in) { return matmul(in[0].narrow(1, 1, K), in[1]); }),
                kOpBound);
    }
  });
}

// A batched product runs as the igemm's groups, one launch for the batch (two with a K-split; on a GPU's cuBLAS
// engine one strided-batched call, not counted here): uniform batches,
// transposed batch views, a B shared by the batch (stride 0); a batch with no unit-stride operand falls back to one
// product at a time.
TEST_P(GemmOps, BatchedMatmulRunsAsOneLaunch) {
  MatmulEngineGuard nash_engine(MatmulEngine::Nash);
  for_each_plan([&] {
    const Tensor a = rnd({5, 67, 9}, 20), b = rnd({5, 9, 33}, 21), bt = rnd({5, 33, 9}, 22), w = rnd({9, 33}, 23);
    auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
    const auto launches = [] { return nash::emu::stats().launches; };
    int64_t before = launches();
    EXPECT_LE(compare({a, b}, mm), kOpBound);
    if (device_.is_emu_cuda()) EXPECT_LE(launches() - before, 2) << "one igemm launch (and a K-split's sum)";
    EXPECT_LE(compare({a, bt}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1].transpose(1, 2)); }),
              kOpBound);
    const Tensor at = rnd({5, 9, 67}, 25);
    EXPECT_LE(compare({at, bt}, [](const std::vector<Tensor>& in) {
                return matmul(in[0].transpose(1, 2), in[1].transpose(1, 2));
              }),
              kOpBound);
    EXPECT_LE(compare({a, w}, mm), kOpBound);
    const Tensor strided = rnd({5, 67, 9, 2}, 24);
    before = launches();
    EXPECT_LE(compare({strided, b}, [](const std::vector<Tensor>& in) { return matmul(in[0].select(3, 1), in[1]); }),
              kOpBound);
    if (device_.is_emu_cuda()) EXPECT_GE(launches() - before, 5) << "no unit stride: one product at a time";
  });
}

TEST_P(GemmOps, ConvolutionsOnEdgeShapes) {
  struct Case {
    Shape x, w;
    Int2 s, p, d;
  };
  // Edges in every GEMM dimension; 3x3 stride 1 (one phase), 4x4 stride 2 (four phases in one launch), stride 3
  // (nine phases: three launches), a tap-less phase (1x1 stride 2), dilation (the general input gradient).
  const Case cases[] = {{{2, 5, 9, 7}, {67, 5, 3, 3}, 1, 1, 1},      {{2, 6, 8, 8}, {9, 6, 4, 4}, 2, 1, 1},
                        {{1, 6, 10, 11}, {5, 6, 4, 5}, {3, 3}, {2, 0}, 1}, {{2, 5, 7, 8}, {3, 5, 1, 1}, 2, 0, 1},
                        {{1, 6, 11, 10}, {7, 6, 3, 2}, {2, 1}, {0, 2}, {2, 1}}};
  for_each_plan([&] {
    for (const Case& c : cases) {
      SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w));
      Tensor x = rnd(c.x, 20), w = rnd(c.w, 21), b = rnd({c.w[0]}, 22);
      EXPECT_LE(compare({x, w, b},
                        [&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], c.s, c.p, c.d); }),
                kOpBound);
      Tensor gy = rnd(conv2d(x, w, Tensor(), c.s, c.p, c.d).shape(), 23);
      EXPECT_LE(compare({gy, w},
                        [&](const std::vector<Tensor>& in) {
                          return conv2d_grad_input(in[0], in[1], {c.x[2], c.x[3]}, c.s, c.p, c.d);
                        }),
                kOpBound);
      EXPECT_LE(compare({x, gy},
                        [&](const std::vector<Tensor>& in) {
                          return conv2d_grad_weight(in[0], in[1], {c.w[2], c.w[3]}, c.s, c.p, c.d);
                        }),
                kOpBound);
      // The fused epilogue (never K-split).
      EXPECT_LE(compare({x, w, b},
                        [&](const std::vector<Tensor>& in) {
                          return conv2d_scaled_bias_act(in[0], in[1], 0.7, in[2], 0.5, 0.2, 1.4, c.s, c.p, c.d);
                        }),
                kOpBound);
    }
  });
}

TEST_P(GemmOps, DeviceSizedShapesTakeTheLargeTileAndItsSplit) {
  if (device_.is_emu_cuda())
    GTEST_SKIP() << "device-sized problems: run on a GPU (the pinned plans cover the emulation)";
  MatmulEngineGuard nash_engine(MatmulEngine::Nash);
  ConvEngineGuard nash_conv(ConvEngine::Nash);
  // 13 x 13 large tiles with float4 fetches, edges in M and N.
  Tensor a = rnd({1540, 100}, 30), b = rnd({100, 1548}, 31);
  EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }), kOpBound);
  // A 3x3 conv over 18432 output pixels (144 large tiles); its weight gradient reduces over 20*48*48 pixels in
  // 3 large tiles split into a full wave of slices.
  Tensor x = rnd({20, 32, 48, 48}, 32), w = rnd({64, 32, 3, 3}, 33), gy = rnd({20, 64, 48, 48}, 34);
  EXPECT_LE(compare({x.narrow(0, 0, 8), w},
                    [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), 1, 1, 1); }),
            kOpBound);
  EXPECT_LE(compare({x, gy},
                    [](const std::vector<Tensor>& in) {
                      return conv2d_grad_weight(in[0], in[1], {3, 3}, 1, 1, 1);
                    }),
            kOpBound);
}

NASH_INSTANTIATE_DEVICE_TEST(GemmOps);
