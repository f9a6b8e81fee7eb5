// Tensor basics: factories, views, contiguity, dtype/device conversion, printing, RNG reproducibility, errors.
#include <sstream>

#include "support.h"

using namespace nash;
using nash_test::expect_error;
using nash_test::leaf64;

TEST(Tensor, FactoriesAndAccessors) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dim(), 2);
  EXPECT_EQ(z.dtype(), DType::Float32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_EQ(sum(ones({4}, DType::Float64)).item(), 4);
  nash_test::expect_values(arange(0, 5), {0, 1, 2, 3, 4});
  nash_test::expect_values(arange(1, 2, 0.25), {1, 1.25, 1.5, 1.75});
  nash_test::expect_values(full({2}, 7.5), {7.5, 7.5});
  Tensor v = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.size(-1), 3);
  EXPECT_EQ(v.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  expect_error([] { from_vector(std::vector<float>{1, 2, 3}, {2, 2}); }, {"from_vector", "[2, 2]"});
  expect_error([&] { v.item(); }, {"item", "[2, 3]"});
  expect_error([] { empty({2, -1}); }, {"negative"});
  Tensor undefined;
  expect_error([&] { undefined.shape(); }, {"undefined"});
}

TEST(Tensor, ViewsShareStorage) {
  Tensor x = arange(0, 24).reshape({2, 3, 4});
  EXPECT_EQ(x.shape(), (Shape{2, 3, 4}));
  Tensor t = x.transpose(0, 2);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.raw_data(), x.raw_data());
  std::vector<float> tv = t.to_vector();
  EXPECT_EQ(tv[1], 12);  // t[0,0,1] = x[1,0,0]
  Tensor n = x.narrow(1, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(n.to_vector()[0], 4);
  EXPECT_EQ(x.select(0, 1).to_vector()[0], 12);
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(x.reshape({-1, 4}).shape(), (Shape{6, 4}));
  EXPECT_EQ(x.unsqueeze(1).shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(x.unsqueeze(-1).squeeze(-1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(x.permute({2, 0, 1}).contiguous().to_vector()[1], 4);
  EXPECT_EQ(x.permute({2, 0, 1}).contiguous().to_vector()[3], 12);
  EXPECT_EQ(ones({3, 1}).expand({3, 5}).shape(), (Shape{3, 5}));
  expect_error([&] { x.reshape({5, 5}); }, {"reshape", "[2, 3, 4]"});
  expect_error([&] { x.narrow(2, 3, 2); }, {"narrow", "out of bounds"});
  expect_error([&] { x.permute({0, 0, 1}); }, {"permute", "repeated"});
}

TEST(Tensor, ViewGradients) {
  Tensor x = leaf64({2, 3, 4}, 1);
  std::vector<std::pair<const char*, autograd::TensorFn>> fns = {
      {"reshape", [](const std::vector<Tensor>& in) { return in[0].reshape({4, 6}) * 2.0; }},
      {"transpose", [](const std::vector<Tensor>& in) { return in[0].transpose(0, 2) * 1.5; }},
      {"permute", [](const std::vector<Tensor>& in) { return square(in[0].permute({1, 2, 0})); }},
      {"narrow", [](const std::vector<Tensor>& in) { return square(in[0].narrow(2, 1, 2)); }},
      {"select", [](const std::vector<Tensor>& in) { return square(in[0].select(1, 2)); }},
      {"expand", [](const std::vector<Tensor>& in) { return square(in[0].narrow(0, 0, 1).expand({3, 3, 4})); }},
      {"cat", [](const std::vector<Tensor>& in) { return square(cat({in[0], in[0] * 2.0}, 1)); }},
      {"stack", [](const std::vector<Tensor>& in) { return square(stack({in[0], in[0]}, 3)); }},
  };
  for (auto& [name, f] : fns) {
    SCOPED_TRACE(name);
    EXPECT_GRADCHECK(f, {x});
    EXPECT_GRADGRADCHECK(f, {x});
  }
}

TEST(Tensor, CatAndStackValues) {
  Tensor a = from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  Tensor b = from_vector(std::vector<float>{5, 6}, {2, 1});
  EXPECT_EQ(cat({a, b}, 1).to_vector(), (std::vector<float>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(stack({a, a}, 0).shape(), (Shape{2, 2, 2}));
  expect_error([&] { cat({a, b}, 0); }, {"cat", "[2, 1]", "[2, 2]"});
}

TEST(Tensor, DtypeAndDeviceConversion) {
  Tensor x = from_vector(std::vector<float>{1.5f, -2.f}, {2});
  Tensor d = x.to(DType::Float64);
  EXPECT_EQ(d.dtype(), DType::Float64);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{1.5, -2}));
  EXPECT_EQ(x.to(Device::cpu()).raw_data(), x.raw_data());
  if (!cuda::is_available()) {
    expect_error([&] { x.to(Device::cuda()); }, {"cuda"});
  }
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  expect_error([] { Device::parse("gpu"); }, {"invalid device", "gpu"});
}

TEST(Tensor, PrintsLikeLibtorch) {
  std::ostringstream os;
  os << from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  std::string s = os.str();
  EXPECT_NE(s.find("[ CPUFloatType{2,3} ]"), std::string::npos) << s;
  EXPECT_NE(s.find("6"), std::string::npos);
  std::ostringstream os2;
  os2 << ones({2}, DType::Float64).requires_grad_();
  EXPECT_NE(os2.str().find("CPUDoubleType{2}, requires_grad"), std::string::npos) << os2.str();
}

TEST(Tensor, SeededRandomIsReproducible) {
  manual_seed(42);
  std::vector<float> a = randn({1000}).to_vector();
  manual_seed(42);
  std::vector<float> b = randn({1000}).to_vector();
  EXPECT_EQ(a, b);
  double m = 0, s = 0;
  for (float v : a) m += v;
  m /= 1000;
  for (float v : a) s += (v - m) * (v - m);
  s = std::sqrt(s / 999);
  EXPECT_NEAR(m, 0, 0.1);
  EXPECT_NEAR(s, 1, 0.1);
  std::vector<float> u = rand({1000}).to_vector();
  for (float v : u) ASSERT_TRUE(v > 0 && v < 1);
  auto p = randperm(10);
  std::sort(p.begin(), p.end());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p[i], i);
}

TEST(Tensor, PhiloxKnownAnswer) {
  // Published known-answer vectors of Philox-4x32-10.
  uint32_t ctr0[4] = {0, 0, 0, 0}, key0[2] = {0, 0}, out[4];
  philox::block(ctr0, key0, out);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
  uint32_t ctr1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, key1[2] = {0xffffffffu, 0xffffffffu};
  philox::block(ctr1, key1, out);
  EXPECT_EQ(out[0], 0x408f276du);
  EXPECT_EQ(out[3], 0x6d5451fdu);
}

TEST(Tensor, InPlaceOpsRefuseRecordedTensors) {
  Tensor w = leaf64({3}, 2);
  expect_error([&] { w.mul_(2.0); }, {"mul_", "NoGradGuard"});
  NoGradGuard ng;
  w.mul_(2.0);
  w.add_(ones({3}, DType::Float64), 0.5);
  w.zero_();
  nash_test::expect_values(w, {0, 0, 0});
}

TEST(Threads, SetAndRestoreThreadCount) {
  int before = get_num_threads();
  {
    NumThreadsGuard one(1);
    EXPECT_EQ(get_num_threads(), 1);
    Tensor a = randn({64, 64});
    EXPECT_EQ(matmul(a, a).shape(), (Shape{64, 64}));
  }
  EXPECT_EQ(get_num_threads(), before);
  expect_error([] { set_num_threads(0); }, {"set_num_threads", "0"});
}

// Host blocks of 32 MiB and more sit on 2 MiB boundaries (marked for transparent huge pages), and work as any other.
TEST(Tensor, LargeHostBlocksAreHugePageAligned) {
  const int64_t n = int64_t(10) << 20;  // 40 MiB of float32
  nash::Tensor t = nash::empty({n});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % (uintptr_t(2) << 20), 0u);
  t.fill_(0.5);
  EXPECT_EQ(t.data_ptr<float>()[n - 1], 0.5f);
  nash::Tensor small = nash::empty({1000});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.raw_data()) % 64, 0u);
}
