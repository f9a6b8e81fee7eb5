// The device fixture of the CUDA kernel tests: each test runs on the emulated CUDA device (always) and on a real
// one (skipped, with the reason, where no GPU answers). tools/gpu-check runs the real-GPU instances by their names,
// Devices/<suite>.<test>/Cuda.
#pragma once
#include <string>

#include <gtest/gtest.h>

#include "nash/nash.h"

namespace nash_test {

class DeviceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    device_ = nash::Device::parse(GetParam());
    if (device_.is_cuda() && !nash::cuda::is_available()) GTEST_SKIP() << nash::cuda::unavailable_reason();
  }
  nash::Device device_;
};

inline std::string device_test_name(const ::testing::TestParamInfo<std::string>& i) {
  return i.param == "emu-cuda" ? "EmulatedCuda" : "Cuda";
}

}  // namespace nash_test

// Instantiates a DeviceTest suite as Devices/<suite>.<test>/EmulatedCuda and .../Cuda.
#define NASH_INSTANTIATE_DEVICE_TEST(suite) \
  INSTANTIATE_TEST_SUITE_P(Devices, suite, ::testing::Values("emu-cuda", "cuda"), nash_test::device_test_name)
