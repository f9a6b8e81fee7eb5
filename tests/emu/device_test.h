// The device fixture of the CUDA kernel tests: each test runs on the emulated CUDA device (always) and on a real
// one (skipped, with the reason, where no GPU answers). tools/gpu-check runs the real-GPU instances by their names,
// Devices/<suite>.<test>/Cuda.
#pragma once
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "nash/nash.h"
#include "support.h"

namespace nash_test {

class DeviceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    device_ = nash::Device::parse(GetParam());
    if (device_.is_cuda() && !nash::cuda::is_available()) GTEST_SKIP() << nash::cuda::unavailable_reason();
  }
  nash::Device device_;
};

// The gradients of m's parameters, in order, concatenated into one float64 host tensor. A parameter without one is
// skipped when `require_all` is false (a penalty on the input gradient leaves biases without one), a failure
// otherwise.
inline nash::Tensor parameter_grads(const nash::nn::Module& m, bool require_all = true) {
  std::vector<double> out;
  for (const auto& p : m.parameters()) {
    if (!p.grad().defined()) {
      EXPECT_FALSE(require_all) << "a parameter of " << m.type_name() << " has no gradient";
      continue;
    }
    const std::vector<double> v = p.grad().to(nash::Device::cpu()).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return nash::from_vector(out, {static_cast<int64_t>(out.size())});
}

// rel_error of two sets of gradients whose reference is not all zero (vanishing gradients would check nothing).
inline double relative_error(const nash::Tensor& got, const nash::Tensor& want) {
  EXPECT_GT(want.numel() > 0 ? nash::amax(nash::abs(want)).item() : 0.0, 0.0) << "the reference gradients are all 0";
  return rel_error(got, want);
}

// A G and D pair built twice by make() (which seeds the generator, so both are the same), the second moved to
// `device`: (G, D) on the CPU, then (G, D) on the device.
template <class Make>
auto twin_pairs(Make&& make, const nash::Device& device) {
  auto [gc, dc] = make();
  auto [gd, dd] = make();
  gd->to(device);
  dd->to(device);
  return std::make_tuple(gc, dc, gd, dd);
}

// A G and D pair on the device against the same pair on the CPU: D's scores sd (any device) against sc, then, after
// the backward of each pair's summed scores, the parameter gradients of G and of D, all within `tol` (relative).
inline void expect_scores_and_grads_match(const nash::Tensor& sc, const nash::Tensor& sd, const nash::nn::Module& gc,
                                          const nash::nn::Module& dc, const nash::nn::Module& gd,
                                          const nash::nn::Module& dd, double tol = 1e-4) {
  EXPECT_LT(rel_error(sd, sc), tol) << "D's scores";
  nash::sum(sc).backward();
  nash::sum(sd).backward();
  EXPECT_LT(relative_error(parameter_grads(gd), parameter_grads(gc)), tol) << "G's gradients";
  EXPECT_LT(relative_error(parameter_grads(dd), parameter_grads(dc)), tol) << "D's gradients";
}

inline std::string device_test_name(const ::testing::TestParamInfo<std::string>& i) {
  return i.param == "emu-cuda" ? "EmulatedCuda" : "Cuda";
}

}  // namespace nash_test

// Instantiates a DeviceTest suite as Devices/<suite>.<test>/EmulatedCuda and .../Cuda.
#define NASH_INSTANTIATE_DEVICE_TEST(suite) \
  INSTANTIATE_TEST_SUITE_P(Devices, suite, ::testing::Values("emu-cuda", "cuda"), nash_test::device_test_name)
