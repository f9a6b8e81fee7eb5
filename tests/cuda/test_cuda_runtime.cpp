// CUDA runtime: device queries, host<->device round trips and fill; skips with the reason where no device answers.
#include "support.h"

using namespace nash;

namespace {
#define NASH_REQUIRE_CUDA()                                                     \
  do {                                                                          \
    if (!cuda::is_available()) GTEST_SKIP() << cuda::unavailable_reason();      \
  } while (0)
}  // namespace

TEST(Cuda, AvailabilityIsReportedWithAReason) {
  if (cuda::is_available()) {
    EXPECT_GT(cuda::device_count(), 0);
    EXPECT_TRUE(cuda::unavailable_reason().empty());
  } else {
    EXPECT_EQ(cuda::device_count(), 0);
    EXPECT_FALSE(cuda::unavailable_reason().empty());
    nash_test::expect_error([] { zeros({4}, DType::Float32, Device::cuda()); }, {"cuda"});
  }
}

TEST(Cuda, RoundTripAndFill) {
  NASH_REQUIRE_CUDA();
  Tensor h = arange(0, 1000).reshape({10, 100});
  Tensor d = h.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_vector(), h.to_vector());
  Tensor f = full({333}, 2.5, DType::Float32, Device::cuda());
  for (float v : f.to_vector<float>()) ASSERT_EQ(v, 2.5f);
  // float64 tensors travel to and from the device (a byte copy) though its kernels are float32-only.
  Tensor h64 = arange(0, 77, 1, DType::Float64);
  EXPECT_EQ(h64.to(Device::cuda()).to(Device::cpu()).to_vector<double>(), h64.to_vector<double>());
  EXPECT_EQ(d.transpose(0, 1).to(Device::cpu()).contiguous().to_vector()[1], 100);
  // Large transfers go through the pinned double-buffered staging path (several 8 MiB chunks).
  Generator g(5);
  Tensor big = randn({5'000'001}, DType::Float32, Device::cpu(), &g);
  EXPECT_EQ(big.to(Device::cuda()).to(Device::cpu()).to_vector(), big.to_vector());
}

// Every op has a CUDA kernel for float32; float64 on the device fails with the op's name rather than a crash.
TEST(Cuda, Float64OpsFailClearly) {
  NASH_REQUIRE_CUDA();
  Tensor d = ones({3}, DType::Float64, Device::cpu()).to(Device::cuda());
  nash_test::expect_error([&] { exp(d); }, {"exp", "float32"});
  nash_test::expect_error([&] { full({3}, 1.0, DType::Float64, Device::cuda()); }, {"fill", "float32"});
}

TEST(Cuda, CachingAllocatorReusesBlocksAndReportsOom) {
  NASH_REQUIRE_CUDA();
  cuda::empty_cache();
  auto s0 = cuda::memory_stats();
  { Tensor a = empty({1 << 18}, DType::Float32, Device::cuda()); }
  auto s1 = cuda::memory_stats();
  EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes);
  EXPECT_GT(s1.reserved_bytes, s0.reserved_bytes);
  for (int i = 0; i < 100; ++i) Tensor b = empty({1 << 18}, DType::Float32, Device::cuda());
  auto s2 = cuda::memory_stats();
  EXPECT_EQ(s2.device_mallocs, s1.device_mallocs) << "a freed block of the same size must be reused";
  EXPECT_EQ(s2.reserved_bytes, s1.reserved_bytes);
  EXPECT_GE(s2.peak_allocated_bytes, int64_t(1) << 20);
  cuda::empty_cache();
  EXPECT_EQ(cuda::memory_stats().reserved_bytes, cuda::memory_stats().allocated_bytes);
  nash_test::expect_error([] { empty({int64_t(1) << 50}, DType::Float32, Device::cuda()); },
                          {"out of memory", "bytes", "reserved"});
}
