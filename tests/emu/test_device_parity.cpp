// Device parity: every op with a CUDA kernel, run on the emulated CUDA device (always) and a real GPU (when one
// answers), against the CPU reference with the bound stated per op family: ||dev - cpu|| / ||cpu||.
#include <array>
#include <functional>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;

namespace {

constexpr double kElementwiseBound = 1e-5;
constexpr double kReductionBound = 1e-4;

using nash_test::rel_error;

class DeviceParity : public nash_test::DeviceTest {
 protected:
  Tensor on_dev(const Tensor& t) const { return t.to(device_); }
  // Runs f on CPU inputs and on device copies of them; returns the relative error of the outputs.
  double compare(const std::vector<Tensor>& cpu_in, const std::function<Tensor(const std::vector<Tensor>&)>& f) {
    std::vector<Tensor> dev_in;
    for (const Tensor& t : cpu_in) dev_in.push_back(on_dev(t));
    Tensor ref = f(cpu_in), got = f(dev_in);
    EXPECT_EQ(got.device(), device_);
    EXPECT_EQ(got.shape(), ref.shape());
    return rel_error(got.to(Device::cpu()), ref);
  }
};

Tensor rnd(const Shape& s, uint64_t seed) { return nash_test::randn32(s, seed); }

}  // namespace

TEST_P(DeviceParity, UnaryOpsDenseStridedAndOddSizes) {
  std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(abs(x) + 0.1); }},
      {"sqrt", [](const Tensor& x) { return sqrt(abs(x)); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.3, 0.4); }},
      {"pow", [](const Tensor& x) { return pow(x, 3.0); }},
      {"scalars", [](const Tensor& x) { return 2.0 / (abs(x) + 1.0) - x * 0.5 + 3.0; }},
      {"masks", [](const Tensor& x) { return gt(x, 0.1) + le(x, -0.2) + sign(x); }},
  };
  for (int64_t n : {1, 3, 257, 1031}) {
    Tensor x = rnd({n}, static_cast<uint64_t>(n));
    Tensor m = rnd({5, n}, 7).t();  // non-contiguous input
    for (auto& [name, op] : ops) {
      SCOPED_TRACE(std::string(name) + " n=" + std::to_string(n));
      EXPECT_LE(compare({x}, [&](const std::vector<Tensor>& in) { return op(in[0]); }), kElementwiseBound);
      EXPECT_LE(compare({m}, [&](const std::vector<Tensor>& in) { return op(in[0]); }), kElementwiseBound);
    }
  }
}

TEST_P(DeviceParity, BinaryOpsWithBroadcasting) {
  std::vector<std::pair<Shape, Shape>> shapes = {{{37}, {37}}, {{4, 1, 9}, {3, 1}}, {{1}, {2, 5}}, {{6, 7}, {7}}};
  for (auto& [sa, sb] : shapes) {
    Tensor a = rnd(sa, 1), b = rnd(sb, 2) + 3.0;
    SCOPED_TRACE(shape_str(sa) + " vs " + shape_str(sb));
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return in[0] + in[1]; }), kElementwiseBound);
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return in[0] - in[1]; }), kElementwiseBound);
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return in[0] * in[1]; }), kElementwiseBound);
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return in[0] / in[1]; }), kElementwiseBound);
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return pow(abs(in[0]) + 0.5, in[1]); }),
              kElementwiseBound);
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return where(gt(in[0], 0.0), in[0], in[1]); }),
              kElementwiseBound);
  }
}

TEST_P(DeviceParity, ReductionsOverDimsIncludingLongRows) {
  Tensor x = rnd({3, 50, 7}, 3);
  Tensor longrow = rnd({2, 20011}, 4);  // several chunks per row: the two-pass path
  Tensor wide = rnd({1, 70001}, 5);
  std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"sum", [](const Tensor& t) { return sum(t); }},
      {"sum_dim1", [](const Tensor& t) { return sum(t, {1}); }},
      {"mean_dim0_keep", [](const Tensor& t) { return mean(t, {0}, true); }},
      {"amax", [](const Tensor& t) { return amax(t, {-1}); }},
      {"amin", [](const Tensor& t) { return amin(t, {}); }},
      {"norm", [](const Tensor& t) { return norm(t, 2.0, {1}); }},
      {"logsumexp", [](const Tensor& t) { return logsumexp(t, -1); }},
  };
  for (const Tensor& t : {x, longrow, wide})
    for (auto& [name, op] : ops) {
      SCOPED_TRACE(std::string(name) + " " + shape_str(t.shape()));
      EXPECT_LE(compare({t}, [&](const std::vector<Tensor>& in) { return op(in[0]); }), kReductionBound);
    }
  EXPECT_EQ(argmax(on_dev(longrow), 1).to_vector(), argmax(longrow, 1).to_vector());
  EXPECT_EQ(argmax(on_dev(x), 1).to_vector(), argmax(x, 1).to_vector());
}

TEST_P(DeviceParity, RandomNumbersEqualTheCpuStream) {
  Generator a(99), b(99);
  Tensor h = randn({1001}, DType::Float32, Device::cpu(), &a);
  Tensor d = randn({1001}, DType::Float32, device_, &b);
  EXPECT_LE(rel_error(d.to(Device::cpu()), h), 1e-6);
  EXPECT_EQ(a.offset(), b.offset());
  Tensor u = rand({513}, DType::Float32, device_, &b);
  for (float v : u.to_vector()) ASSERT_TRUE(v > 0 && v < 1);
}

TEST_P(DeviceParity, CopiesFillsAndInPlaceUpdates) {
  Tensor x = rnd({4, 6}, 6);
  Tensor d = on_dev(x);
  EXPECT_EQ(d.to(Device::cpu()).to_vector(), x.to_vector());
  EXPECT_EQ(d.t().contiguous().to(Device::cpu()).to_vector(), x.t().contiguous().to_vector());
  Tensor f = full({3, 5}, 1.25, DType::Float32, device_);
  for (float v : f.to_vector()) ASSERT_EQ(v, 1.25f);
  Tensor z = zeros({4, 6}, DType::Float32, device_);
  {
    NoGradGuard ng;
    z.narrow(1, 2, 3).fill_(7.0);  // strided fill
    z.add_(d, 2.0);
    z.mul_(0.5);
  }
  Tensor ref = zeros({4, 6});
  {
    NoGradGuard ng;
    ref.narrow(1, 2, 3).fill_(7.0);
    ref.add_(x, 2.0);
    ref.mul_(0.5);
  }
  EXPECT_LE(rel_error(z.to(Device::cpu()), ref), kElementwiseBound);
  EXPECT_EQ(cat({d, d}, 0).to(Device::cpu()).to_vector(), cat({x, x}, 0).to_vector());
}

TEST_P(DeviceParity, BackwardAndDoubleBackwardMatchTheCpu) {
  // A gradient-penalty-like chain of elementwise ops and reductions: first and second derivatives on the device.
  auto penalty = [](const Tensor& x, const Tensor& w) {
    Tensor y = sum(tanh(x * w) * sigmoid(x), {1});
    Tensor g = autograd::grad({sum(y)}, {x}, {}, true, true)[0];
    return mean(square(norm(g, 2.0, {1}) - 1.0));
  };
  Tensor x = rnd({5, 9}, 8), w = rnd({9}, 9);
  Tensor xc = x.detach().requires_grad_(), wc = w.detach().requires_grad_();
  Tensor xd = on_dev(x).detach().requires_grad_(), wd = on_dev(w).detach().requires_grad_();
  penalty(xc, wc).backward();
  penalty(xd, wd).backward();
  EXPECT_LE(rel_error(wd.grad().to(Device::cpu()), wc.grad()), kReductionBound);
  EXPECT_LE(rel_error(xd.grad().to(Device::cpu()), xc.grad()), kReductionBound);
}

NASH_INSTANTIATE_DEVICE_TEST(DeviceParity);

#if defined(NASH_CUDA_EMULATION_AVAILABLE)
namespace nash {
namespace emu {
struct Stats {
  int64_t launches, blocks, switches;
};
Stats stats();
}  // namespace emu
}  // namespace nash

TEST(EmulatedCuda, OpsRunThroughTheHarness) {
  auto before = emu::stats();
  Tensor a = ones({300}, DType::Float32, Device::emu_cuda());
  Tensor b = sum(a * 2.0 + a);
  EXPECT_EQ(b.device(), Device::emu_cuda());
  EXPECT_EQ(b.item(), 900);
  auto after = emu::stats();
  EXPECT_GE(after.launches - before.launches, 4);  // fill, mul, add, sum
  EXPECT_GT(after.switches, before.switches);
}
#endif

namespace {
constexpr double kGemmBound = 1e-3;  // float32 GEMM/conv at K <= 4608, different summation order
}  // namespace

TEST_P(DeviceParity, MatmulTiledKernelOnOddShapesAndLayouts) {
  // Shapes straddling the 64x64x16 tiles: edges in every dimension, and transposed/strided operands.
  MatmulEngineGuard nash_engine(MatmulEngine::Nash);
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {65, 17, 63}, {130, 33, 70}, {7, 200, 129}}) {
    SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N));
    Tensor a = rnd({M, K}, 10), b = rnd({K, N}, 11), at = rnd({K, M}, 12), bt = rnd({N, K}, 13);
    EXPECT_LE(compare({a, b}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }), kGemmBound);
    EXPECT_LE(compare({at, bt}, [](const std::vector<Tensor>& in) { return matmul(in[0].t(), in[1].t()); }), kGemmBound);
  }
  Tensor a3 = rnd({3, 20, 9}, 14), b3 = rnd({3, 9, 11}, 15);
  EXPECT_LE(compare({a3, b3}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }), kGemmBound);
}

TEST_P(DeviceParity, LinearLayerForwardBackward) {
  Tensor x = rnd({33, 21}, 16), w = rnd({10, 21}, 17), b = rnd({10}, 18);
  EXPECT_LE(compare({x, w, b},
                    [](const std::vector<Tensor>& in) {
                      Tensor xi = in[0].detach().requires_grad_(), wi = in[1].detach().requires_grad_();
                      Tensor y = sum(square(linear(xi, wi, in[2])));
                      auto g = autograd::grad({y}, {xi, wi});
                      return cat({g[0].flatten(), g[1].flatten()}, 0);
                    }),
            kGemmBound);
}

TEST_P(DeviceParity, ConvolutionFamilyOnGanShapesAndEdges) {
  struct Case {
    Shape x, w;
    Int2 s, p, d;
  };
  // DCGAN-like 4x4 stride-2 layers, 3x3 and 1x1, dilation, odd sizes that leave partial tiles.
  std::vector<Case> cases = {{{2, 1, 16, 16}, {8, 1, 4, 4}, 2, 1, 1},  {{2, 8, 8, 8}, {16, 8, 4, 4}, 2, 1, 1},
                             {{1, 3, 9, 7}, {5, 3, 3, 3}, 1, 1, 1},    {{3, 4, 6, 6}, {2, 4, 1, 1}, 1, 0, 1},
                             {{1, 2, 11, 10}, {3, 2, 3, 2}, {2, 1}, {0, 2}, {2, 1}},
                             // Stride phases: odd sizes, a 1x1 stride-2 kernel (phases without taps), stride 3 with
                             // uneven taps per phase, no and large padding; 5-6 channels take the phase GEMMs, 1-4
                             // the few-channel kernel; a deep layer at batch 2 splits K in the forward.
                             {{2, 6, 9, 7}, {4, 6, 4, 4}, 2, 1, 1},     {{1, 5, 7, 8}, {3, 5, 1, 1}, 2, 0, 1},
                             {{1, 6, 10, 11}, {2, 6, 4, 5}, {3, 2}, {2, 0}, 1},  {{2, 3, 9, 9}, {4, 3, 3, 3}, 2, 2, 1},
                             {{1, 1, 8, 8}, {4, 1, 3, 3}, 2, 1, 2},     {{2, 64, 4, 4}, {8, 64, 3, 3}, 1, 1, 1}};
  for (const Case& c : cases) {
    SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w));
    Tensor x = rnd(c.x, 20), w = rnd(c.w, 21), b = rnd({c.w[0]}, 22);
    EXPECT_LE(compare({x, w, b},
                      [&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], c.s, c.p, c.d); }),
              kGemmBound);
    Tensor y = conv2d(x, w, Tensor(), c.s, c.p, c.d);
    Tensor gy = rnd(y.shape(), 23);
    EXPECT_LE(compare({gy, w},
                      [&](const std::vector<Tensor>& in) {
                        return conv2d_grad_input(in[0], in[1], {c.x[2], c.x[3]}, c.s, c.p, c.d);
                      }),
              kGemmBound);
    EXPECT_LE(compare({x, gy},
                      [&](const std::vector<Tensor>& in) {
                        return conv2d_grad_weight(in[0], in[1], {c.w[2], c.w[3]}, c.s, c.p, c.d);
                      }),
              kGemmBound);
  }
  // The generator's transposed convolutions go through conv2d_grad_input.
  Tensor z = rnd({2, 16, 4, 4}, 24), wt = rnd({16, 8, 4, 4}, 25);
  EXPECT_LE(compare({z, wt}, [](const std::vector<Tensor>& in) { return conv_transpose2d(in[0], in[1], Tensor(), 2, 1); }),
            kGemmBound);
}

TEST_P(DeviceParity, ConvDoubleBackwardForGradientPenalties) {
  Tensor x = rnd({2, 3, 8, 8}, 26), w = rnd({4, 3, 4, 4}, 27), v = rnd({4 * 3 * 4 * 4}, 28);
  EXPECT_LE(compare({x, w},
                    [](const std::vector<Tensor>& in) {
                      Tensor xi = in[0].detach().requires_grad_(), wi = in[1].detach().requires_grad_();
                      Tensor d = sum(leaky_relu(conv2d(xi, wi, Tensor(), 2, 1), 0.2));
                      Tensor gx = autograd::grad({d}, {xi}, {}, true, true)[0];
                      Tensor pen = mean(square(norm(gx.flatten(1), 2.0, {1}) - 1.0));
                      return autograd::grad({pen}, {wi})[0];
                    }),
            kGemmBound);
}

TEST_P(DeviceParity, PoolingAndResampling) {
  Tensor x = rnd({2, 3, 9, 8}, 29);
  EXPECT_LE(compare({x}, [](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 2); }), kElementwiseBound);
  EXPECT_LE(compare({x}, [](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, 2, 1); }), kElementwiseBound);
  Tensor g = rnd({2, 3, 5, 4}, 30);
  EXPECT_LE(compare({g}, [](const std::vector<Tensor>& in) { return avg_pool2d_grad(in[0], {9, 8}, 3, 2, 1); }),
            kElementwiseBound);
  EXPECT_LE(compare({x}, [](const std::vector<Tensor>& in) { return upsample_nearest2d(in[0], 2); }), kElementwiseBound);
  Tensor y = rnd({2, 3, 8, 6}, 31);
  EXPECT_LE(compare({y}, [](const std::vector<Tensor>& in) { return sum_pool2d(in[0], 2); }), kElementwiseBound);
}

TEST_P(DeviceParity, LossesAndJoins) {
  Tensor logits = rnd({6, 5}, 40), targets = rand({6, 5}, DType::Float32), labels = from_vector(std::vector<float>{0, 4, 2, 2, 1, 3}, {6});
  EXPECT_LE(compare({logits, targets},
                    [](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], in[1]); }),
            kReductionBound);
  EXPECT_LE(compare({logits, labels}, [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); }),
            kReductionBound);
  EXPECT_LE(compare({logits, targets}, [](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); }),
            kReductionBound);
  EXPECT_LE(compare({logits}, [](const std::vector<Tensor>& in) { return softmax(in[0], 1); }), kReductionBound);
  EXPECT_LE(compare({logits},
                    [](const std::vector<Tensor>& in) {
                      Tensor x = in[0].detach().requires_grad_();
                      Tensor y = sum(square(stack({x.narrow(1, 1, 3), x.narrow(1, 0, 3)}, 0)));
                      return autograd::grad({y}, {x})[0];
                    }),
            kElementwiseBound);
}

TEST_P(DeviceParity, ModulesForwardAndBackward) {
  manual_seed(3);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      // No conv bias: BatchNorm cancels it, so its gradient is rounding noise with no relative accuracy.
      std::make_shared<nn::Conv2d>(2, 4, 3, 1, 1, false), std::make_shared<nn::BatchNorm2d>(4),
      std::make_shared<nn::LeakyReLU>(0.2), std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 5 * 5, 3)});
  Tensor x = rnd({3, 2, 5, 5}, 41);
  Tensor ref = sum(square(net->forward(x)));
  ref.backward();
  std::vector<Tensor> ref_grads;
  for (auto& p : net->parameters()) ref_grads.push_back(p.grad());
  net->zero_grad();
  net->to(device_);
  Tensor got = sum(square(net->forward(on_dev(x))));
  got.backward();
  EXPECT_LE(rel_error(got.to(Device::cpu()), ref), kGemmBound);
  auto params = net->parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    ASSERT_EQ(params[i].device(), device_);
    EXPECT_LE(rel_error(params[i].grad().to(Device::cpu()), ref_grads[i]), kGemmBound);
  }
}
