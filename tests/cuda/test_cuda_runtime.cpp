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
  Tensor f = full({333}, 2.5, DType::Float64, Device::cuda());
  for (double v : f.to_vector<double>()) ASSERT_EQ(v, 2.5);
  EXPECT_EQ(d.transpose(0, 1).to(Device::cpu()).contiguous().to_vector()[1], 100);
}

TEST(Cuda, OpsWithoutKernelsFailClearly) {
  NASH_REQUIRE_CUDA();
  Tensor d = ones({3}, DType::Float32, Device::cuda());
  nash_test::expect_error([&] { exp(d); }, {"exp", "no CUDA kernel"});
}
