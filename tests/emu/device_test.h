// The device fixture of the CUDA kernel tests: each test runs on the emulated CUDA device (always) and on a real
// one (skipped, with the reason, where no GPU answers). tools/gpu-check runs the real-GPU instances by their names,
// Devices/<suite>.<test>/Cuda.
#pragma once
#include <cmath>
#include <string>
#include <vector>

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

// The gradients of m's parameters, in order, concatenated on the host. A parameter without one is skipped when
// `require_all` is false (a penalty on the input gradient leaves biases without one), a failure otherwise.
inline std::vector<double> parameter_grads(const nash::nn::Module& m, bool require_all = true) {
  std::vector<double> out;
  for (const auto& p : m.parameters()) {
    if (!p.grad().defined()) {
      EXPECT_FALSE(require_all) << "a parameter of " << m.type_name() << " has no gradient";
      continue;
    }
    const std::vector<double> v = p.grad().to(nash::Device::cpu()).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// ||got - want|| / ||want|| of two vectors of the same length (want not all zero).
inline double relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size() && i < want.size(); ++i)
    num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  EXPECT_GT(den, 0);
  return std::sqrt(num / den);
}

inline std::string device_test_name(const ::testing::TestParamInfo<std::string>& i) {
  return i.param == "emu-cuda" ? "EmulatedCuda" : "Cuda";
}

}  // namespace nash_test

// Instantiates a DeviceTest suite as Devices/<suite>.<test>/EmulatedCuda and .../Cuda.
#define NASH_INSTANTIATE_DEVICE_TEST(suite) \
  INSTANTIATE_TEST_SUITE_P(Devices, suite, ::testing::Values("emu-cuda", "cuda"), nash_test::device_test_name)
