// The cuDNN convolution engine against nash's own CUDA kernels and a float64 CPU reference, at DCGAN and odd shapes;
// engine selection (guard, environment variable). GPU cases skip with the reason where no device or cuDNN answers.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "support.h"

using namespace nash;

namespace {

// ||a - b|| / ||b|| for float32 results on random inputs. nash's kernel measures about 2e-6 against float64 on these
// shapes (in the emulation); cuDNN's Winograd and FFT algorithms round differently but stay well below the bound.
constexpr double kConvBound = 1e-3;

#define NASH_REQUIRE_CUDNN()                                                                                      \
  do {                                                                                                            \
    if (!cuda::is_available()) GTEST_SKIP() << cuda::unavailable_reason();                                        \
    if (!cuda::cudnn_available()) GTEST_SKIP() << "nash was built without cuDNN (cudnn.h and libcudnn not found)"; \
  } while (0)

using nash_test::rel_error;
Tensor rnd(const Shape& s, uint64_t seed) { return nash_test::randn32(s, seed); }

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on float64 CPU copies (the reference) and on CUDA copies under each engine; all three must agree.
void expect_engines_agree(const std::vector<Tensor>& cpu_in, const Fn& f) {
  std::vector<Tensor> ref_in, dev_in;
  for (const Tensor& t : cpu_in) {
    ref_in.push_back(t.defined() ? t.to(DType::Float64) : t);
    dev_in.push_back(t.defined() ? t.to(Device::cuda()) : t);
  }
  Tensor ref = f(ref_in), by_nash, by_cudnn;
  {
    ConvEngineGuard g(ConvEngine::Nash);
    by_nash = f(dev_in);
  }
  {
    ConvEngineGuard g(ConvEngine::CuDNN);
    by_cudnn = f(dev_in);
  }
  ASSERT_TRUE(by_cudnn.device().is_cuda());
  ASSERT_EQ(by_cudnn.shape(), ref.shape());
  ASSERT_EQ(by_nash.shape(), ref.shape());
  EXPECT_LE(rel_error(by_cudnn, ref), kConvBound) << "cuDNN vs CPU";
  EXPECT_LE(rel_error(by_nash, ref), kConvBound) << "nash kernel vs CPU";
  EXPECT_LE(rel_error(by_cudnn, by_nash), kConvBound) << "cuDNN vs nash kernel";
}

struct ConvCase {
  const char* name;
  Shape x, w;  // x (N, C, H, W), w (O, C, kh, kw)
  Int2 stride, padding, dilation;
};

std::string describe(const ConvCase& c) {
  return std::string(c.name) + " x" + shape_str(c.x) + " w" + shape_str(c.w) + " s(" + std::to_string(c.stride.h) +
         "," + std::to_string(c.stride.w) + ") p(" + std::to_string(c.padding.h) + "," + std::to_string(c.padding.w) +
         ") d(" + std::to_string(c.dilation.h) + "," + std::to_string(c.dilation.w) + ")";
}

// DCGAN discriminators (64x64 RGB and 28x28 Fashion-MNIST, k4 s2 p1, batch kept small for the CPU reference), then
// shapes that leave partial tiles, asymmetric strides/padding/dilation, padding wider than the kernel, 1x1 kernels.
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"dcgan64 d1", {4, 3, 64, 64}, {64, 3, 4, 4}, 2, 1, 1},
      {"dcgan64 d2", {4, 64, 32, 32}, {128, 64, 4, 4}, 2, 1, 1},
      {"dcgan64 d3", {4, 128, 16, 16}, {256, 128, 4, 4}, 2, 1, 1},
      {"dcgan64 d4", {4, 256, 8, 8}, {512, 256, 4, 4}, 2, 1, 1},
      {"dcgan64 head", {4, 512, 4, 4}, {1, 512, 4, 4}, 1, 0, 1},
      {"fmnist d1", {5, 1, 28, 28}, {64, 1, 4, 4}, 2, 1, 1},
      {"fmnist d2", {5, 64, 14, 14}, {128, 64, 4, 4}, 2, 1, 1},
      {"odd asym", {3, 5, 13, 11}, {7, 5, 3, 2}, {2, 1}, {1, 2}, {1, 2}},
      {"odd stride3", {2, 3, 9, 17}, {4, 3, 5, 5}, 3, 2, 1},
      {"kernel=input", {2, 2, 7, 7}, {3, 2, 7, 7}, 1, 0, 1},
      {"1x1 strided", {2, 6, 10, 9}, {3, 6, 1, 1}, 2, 0, 1},
      {"wide pad dilated", {2, 4, 8, 8}, {5, 4, 3, 3}, 1, 4, 3},
  };
  return cases;
}

}  // namespace

TEST(CudnnConv, EngineGuardRoundTrips) {
  const ConvEngine before = conv_engine();
  {
    ConvEngineGuard a(ConvEngine::CuDNN);
    EXPECT_EQ(conv_engine(), ConvEngine::CuDNN);
    {
      ConvEngineGuard b(ConvEngine::Nash);
      EXPECT_EQ(conv_engine(), ConvEngine::Nash);
    }
    EXPECT_EQ(conv_engine(), ConvEngine::CuDNN);
  }
  EXPECT_EQ(conv_engine(), before);
  set_conv_engine(ConvEngine::CuDNN);
  EXPECT_EQ(conv_engine(), ConvEngine::CuDNN);
  set_conv_engine(before);
}

// The engine picks between CUDA implementations only: CPU convolutions (and the emulated device, which never runs
// cuDNN) give the same results whichever engine is selected.
TEST(CudnnConv, EngineOnlyAffectsCudaDevices) {
  Tensor x = rnd({2, 3, 9, 8}, 1), w = rnd({4, 3, 3, 3}, 2), b = rnd({4}, 3);
  Tensor by_nash, by_cudnn;
  {
    ConvEngineGuard g(ConvEngine::Nash);
    by_nash = conv2d(x, w, b, 2, 1);
  }
  {
    ConvEngineGuard g(ConvEngine::CuDNN);
    by_cudnn = conv2d(x, w, b, 2, 1);
  }
  EXPECT_EQ(by_cudnn.to_vector(), by_nash.to_vector());
#if defined(NASH_CUDA_EMULATION_AVAILABLE)
  ConvEngineGuard g(ConvEngine::CuDNN);
  Tensor on_emu = conv2d(x.to(Device::emu_cuda()), w.to(Device::emu_cuda()), b.to(Device::emu_cuda()), 2, 1);
  EXPECT_LE(rel_error(on_emu, by_nash), 1e-5);
#endif
}

// NASH_CONV_ENGINE is read once per process, so each value is checked in a child process running this same test
// (no setenv in a process with other threads).
TEST(CudnnConv, EnvironmentVariableSelectsEngine) {
  if (const char* child = std::getenv("NASH_TEST_ENGINE_CHILD"); child && *child) {
    try {
      std::printf("[engine=%s]\n", conv_engine() == ConvEngine::CuDNN ? "cudnn" : "nash");
    } catch (const Error& e) {
      std::printf("[error=%s]\n", e.what());
    }
    return;
  }
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec || exe.find('\'') != std::string::npos) GTEST_SKIP() << "cannot locate this test binary to rerun it";
  auto run_child = [&](const std::string& value) {
    const std::string cmd = "env -u GTEST_OUTPUT -u GTEST_SHARD_INDEX -u GTEST_TOTAL_SHARDS NASH_TEST_ENGINE_CHILD=1 "
                            "NASH_CONV_ENGINE='" + value + "' '" + exe +
                            "' --gtest_filter=CudnnConv.EnvironmentVariableSelectsEngine 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return std::string("popen failed");
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
  };
  EXPECT_NE(run_child("cudnn").find("[engine=cudnn]"), std::string::npos);
  EXPECT_NE(run_child("nash").find("[engine=nash]"), std::string::npos);
  EXPECT_NE(run_child("").find("[engine=nash]"), std::string::npos) << "unset or empty means the default, nash";
  const std::string bad = run_child("bogus");
  for (const char* frag : {"[error=", "NASH_CONV_ENGINE", "'bogus'", "nash", "cudnn"})
    EXPECT_NE(bad.find(frag), std::string::npos) << "child output: " << bad << " lacks " << frag;
}

TEST(CudnnConv, SelectingItWithoutCudnnFailsClearly) {
  if (!cuda::is_available()) GTEST_SKIP() << cuda::unavailable_reason();
  if (cuda::cudnn_available()) GTEST_SKIP() << "nash was built with cuDNN; this checks builds without it";
  Tensor x = ones({1, 1, 4, 4}, DType::Float32, Device::cuda()), w = ones({1, 1, 3, 3}, DType::Float32, Device::cuda());
  ConvEngineGuard g(ConvEngine::CuDNN);
  nash_test::expect_error([&] { conv2d(x, w); }, {"conv2d", "cuDNN", "ConvEngine::Nash"});
}

TEST(CudnnConv, ForwardMatchesNashAndCpu) {
  NASH_REQUIRE_CUDNN();
  uint64_t seed = 10;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    Tensor x = rnd(c.x, ++seed), w = rnd(c.w, ++seed), b = rnd({c.w[0]}, ++seed);
    expect_engines_agree({x, w}, [&](const std::vector<Tensor>& in) {
      return conv2d(in[0], in[1], Tensor(), c.stride, c.padding, c.dilation);
    });
    expect_engines_agree({x, w, b}, [&](const std::vector<Tensor>& in) {
      return conv2d(in[0], in[1], in[2], c.stride, c.padding, c.dilation);
    });
  }
}

TEST(CudnnConv, GradInputMatchesNashAndCpu) {
  NASH_REQUIRE_CUDNN();
  uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    const Int2 in_hw{c.x[2], c.x[3]};
    const Int2 o = conv2d_output_hw(in_hw, {c.w[2], c.w[3]}, c.stride, c.padding, c.dilation);
    Tensor g = rnd({c.x[0], c.w[0], o.h, o.w}, ++seed), w = rnd(c.w, ++seed);
    expect_engines_agree({g, w}, [&](const std::vector<Tensor>& in) {
      return conv2d_grad_input(in[0], in[1], in_hw, c.stride, c.padding, c.dilation);
    });
  }
}

TEST(CudnnConv, GradWeightMatchesNashAndCpu) {
  NASH_REQUIRE_CUDNN();
  uint64_t seed = 200;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    const Int2 k{c.w[2], c.w[3]};
    const Int2 o = conv2d_output_hw({c.x[2], c.x[3]}, k, c.stride, c.padding, c.dilation);
    Tensor x = rnd(c.x, ++seed), g = rnd({c.x[0], c.w[0], o.h, o.w}, ++seed);
    expect_engines_agree({x, g}, [&](const std::vector<Tensor>& in) {
      return conv2d_grad_weight(in[0], in[1], k, c.stride, c.padding, c.dilation);
    });
  }
}

TEST(CudnnConv, ConvTranspose2dMatchesNashAndCpu) {
  NASH_REQUIRE_CUDNN();
  struct Case {
    const char* name;
    Shape x, w;  // w (Cin, Cout, kh, kw)
    Int2 stride, padding, output_padding, dilation;
  };
  // DCGAN generators (64x64 RGB, 28x28 Fashion-MNIST), then odd ones, including output_padding >= stride (allowed
  // by a larger dilation), which pads the input before the transposed convolution.
  const std::vector<Case> cases = {
      {"dcgan64 g1", {4, 100, 1, 1}, {100, 512, 4, 4}, 1, 0, 0, 1},
      {"dcgan64 g2", {4, 512, 4, 4}, {512, 256, 4, 4}, 2, 1, 0, 1},
      {"dcgan64 g3", {4, 256, 8, 8}, {256, 128, 4, 4}, 2, 1, 0, 1},
      {"dcgan64 g4", {4, 128, 16, 16}, {128, 64, 4, 4}, 2, 1, 0, 1},
      {"dcgan64 g5", {4, 64, 32, 32}, {64, 3, 4, 4}, 2, 1, 0, 1},
      {"fmnist g1", {5, 128, 7, 7}, {128, 64, 4, 4}, 2, 1, 0, 1},
      {"fmnist g2", {5, 64, 14, 14}, {64, 1, 4, 4}, 2, 1, 0, 1},
      {"odd", {2, 3, 5, 7}, {3, 4, 3, 2}, {2, 3}, {1, 0}, {1, 2}, 1},
      {"opad>=stride", {2, 3, 6, 5}, {3, 2, 3, 3}, 1, 1, 1, 2},
  };
  uint64_t seed = 300;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = rnd(c.x, ++seed), w = rnd(c.w, ++seed), b = rnd({c.w[1]}, ++seed);
    expect_engines_agree({x, w, b}, [&](const std::vector<Tensor>& in) {
      return conv_transpose2d(in[0], in[1], in[2], c.stride, c.padding, c.output_padding, c.dilation);
    });
  }
}

// Backward and double backward (a gradient penalty's path) run every conv op through the selected engine.
TEST(CudnnConv, GradientPenaltyThroughAutograd) {
  NASH_REQUIRE_CUDNN();
  Tensor x = rnd({3, 4, 11, 10}, 401), w = rnd({6, 4, 3, 3}, 402), b = rnd({6}, 403);
  expect_engines_agree({x, w, b}, [](const std::vector<Tensor>& in) {
    Tensor xi = in[0].detach().requires_grad_(), wi = in[1].detach().requires_grad_(),
           bi = in[2].detach().requires_grad_();
    Tensor y = conv2d(xi, wi, bi, 2, 1);
    Tensor gx = autograd::grad({sum(y * y)}, {xi}, {}, false, true)[0];
    Tensor penalty = sum(gx * gx);
    std::vector<Tensor> g = autograd::grad({penalty}, {wi, xi});
    // One output for the comparison: both gradients, flattened.
    return cat({g[0].reshape({-1}), g[1].reshape({-1})}, 0);
  });
}

// TF32 tensor cores keep 10 mantissa bits, an error near 1e-4 relative; float32 FMA math stays near 1e-7. A 1x1
// kernel keeps every algorithm a plain sum of few products, so a tight bound here catches TF32 without flagging the
// legitimate rounding differences of Winograd or FFT algorithms at other shapes.
TEST(CudnnConv, KeepsFloat32PrecisionNoTF32) {
  NASH_REQUIRE_CUDNN();
  constexpr double kFloat32Bound = 1e-5;
  Tensor x = rnd({4, 16, 12, 12}, 601), w = rnd({24, 16, 1, 1}, 602), g = rnd({4, 24, 12, 12}, 603);
  ConvEngineGuard guard(ConvEngine::CuDNN);
  const Tensor xd = x.to(Device::cuda()), wd = w.to(Device::cuda()), gd = g.to(Device::cuda());
  const Tensor x64 = x.to(DType::Float64), w64 = w.to(DType::Float64), g64 = g.to(DType::Float64);
  EXPECT_LE(rel_error(conv2d(xd, wd), conv2d(x64, w64)), kFloat32Bound) << "forward";
  EXPECT_LE(rel_error(conv2d_grad_input(gd, wd, {12, 12}), conv2d_grad_input(g64, w64, {12, 12})), kFloat32Bound)
      << "grad_input";
  EXPECT_LE(rel_error(conv2d_grad_weight(xd, gd, 1), conv2d_grad_weight(x64, g64, 1)), kFloat32Bound)
      << "grad_weight";
}

// A batch slice is contiguous but starts mid-allocation, so cuDNN gets pointers aligned to 4 bytes only.
TEST(CudnnConv, OffsetViewsOfALargerBatch) {
  NASH_REQUIRE_CUDNN();
  Tensor big = rnd({5, 3, 7, 9}, 501), w = rnd({4, 3, 3, 3}, 502), g = rnd({5, 4, 7, 9}, 503);
  expect_engines_agree({big, w}, [](const std::vector<Tensor>& in) {
    return conv2d(in[0].narrow(0, 1, 3), in[1], Tensor(), 1, 1);
  });
  expect_engines_agree({g, w}, [](const std::vector<Tensor>& in) {
    return conv2d_grad_input(in[0].narrow(0, 1, 3), in[1], {7, 9}, 1, 1);
  });
  expect_engines_agree({big, g}, [](const std::vector<Tensor>& in) {
    return conv2d_grad_weight(in[0].narrow(0, 1, 3), in[1].narrow(0, 2, 3), 3, 1, 1);
  });
}

TEST(CudnnConv, EmptyBatch) {
  NASH_REQUIRE_CUDNN();
  ConvEngineGuard g(ConvEngine::CuDNN);
  Tensor x = empty({0, 3, 8, 8}, DType::Float32, Device::cuda()), w = rnd({4, 3, 3, 3}, 5).to(Device::cuda());
  EXPECT_EQ(conv2d(x, w, Tensor(), 1, 1).shape(), (Shape{0, 4, 8, 8}));
  Tensor gy = empty({0, 4, 8, 8}, DType::Float32, Device::cuda());
  Tensor gw = conv2d_grad_weight(x, gy, 3, 1, 1);
  ASSERT_EQ(gw.shape(), (Shape{4, 3, 3, 3}));
  for (float v : gw.to(Device::cpu()).to_vector()) ASSERT_EQ(v, 0.f);
}

// Workspaces come from the caching allocator: once a shape has run, repeating it asks the driver for nothing.
TEST(CudnnConv, RepeatedCallsReuseCachedMemory) {
  NASH_REQUIRE_CUDNN();
  ConvEngineGuard g(ConvEngine::CuDNN);
  Tensor x = rnd({8, 64, 16, 16}, 6).to(Device::cuda()), w = rnd({128, 64, 4, 4}, 7).to(Device::cuda());
  auto step = [&] {
    Tensor y = conv2d(x, w, Tensor(), 2, 1);
    Tensor gx = conv2d_grad_input(y, w, {16, 16}, 2, 1);
    Tensor gw = conv2d_grad_weight(x, y, 4, 2, 1);
    return sum(gx).item() + sum(gw).item();
  };
  const double first = step();
  const int64_t mallocs = cuda::memory_stats().device_mallocs;
  // Some cuDNN algorithms accumulate with atomics, so repeats may differ in the last bits.
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(step(), first, 1e-4 * (std::fabs(first) + 1.0));
  EXPECT_EQ(cuda::memory_stats().device_mallocs, mallocs);
}

// One handle per device is shared; concurrent callers must not interleave on it.
TEST(CudnnConv, ConcurrentCallersAgree) {
  NASH_REQUIRE_CUDNN();
  ConvEngineGuard g(ConvEngine::CuDNN);
  Tensor x = rnd({4, 8, 20, 20}, 8), w = rnd({16, 8, 3, 3}, 9);
  Tensor ref = conv2d(x.to(DType::Float64), w.to(DType::Float64), Tensor(), 1, 1);
  Tensor xd = x.to(Device::cuda()), wd = w.to(Device::cuda());
  std::vector<double> errs(4, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      double worst = 0;
      for (int i = 0; i < 20; ++i) worst = std::max(worst, rel_error(conv2d(xd, wd, Tensor(), 1, 1), ref));
      errs[static_cast<std::size_t>(t)] = worst;
    });
  for (auto& th : threads) th.join();
  for (double e : errs) EXPECT_LE(e, kConvBound);
}
