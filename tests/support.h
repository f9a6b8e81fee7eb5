// Shared test helpers: closeness checks, gradcheck assertions, error expectations and scratch folders.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "nash/nash.h"

namespace nash_test {

// Whether m has a parameter or buffer of this dotted name.
inline bool has_name(const nash::nn::Module& m, const std::string& name) {
  for (const auto& kv : m.named_parameters())
    if (kv.first == name) return true;
  for (const auto& kv : m.named_buffers())
    if (kv.first == name) return true;
  return false;
}

// m's parameter of this dotted name; a failure (and an undefined tensor) when it has none.
inline nash::Tensor named_parameter(const nash::nn::Module& m, const std::string& name) {
  for (const auto& kv : m.named_parameters())
    if (kv.first == name) return kv.second;
  ADD_FAILURE() << m.type_name() << " has no parameter " << name;
  return nash::Tensor();
}

// |a - b| <= atol + rtol * |b| elementwise.
inline void expect_close(const nash::Tensor& a, const nash::Tensor& b, double atol = 1e-5, double rtol = 1e-4) {
  ASSERT_EQ(a.shape(), b.shape()) << nash::shape_str(a.shape()) << " vs " << nash::shape_str(b.shape());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  for (std::size_t i = 0; i < x.size(); ++i)
    ASSERT_LE(std::fabs(x[i] - y[i]), atol + rtol * std::fabs(y[i])) << "element " << i << ": " << x[i] << " vs " << y[i];
}

inline void expect_values(const nash::Tensor& a, const std::vector<double>& want, double tol = 1e-6) {
  std::vector<double> x = a.to_vector<double>();
  ASSERT_EQ(x.size(), want.size());
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], want[i], tol) << "element " << i;
}

// ||got - want|| / ||want|| over all elements (both moved to the host). A non-finite value where the reference is
// finite fails the test: on the emulated device that is an output element the kernel never wrote.
inline double rel_error(const nash::Tensor& got, const nash::Tensor& want) {
  std::vector<double> a = got.to(nash::Device::cpu()).to_vector<double>();
  std::vector<double> b = want.to(nash::Device::cpu()).to_vector<double>();
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(b[i])) {
      EXPECT_TRUE(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))) << "element " << i << ": " << a[i]
                                                                            << " vs " << b[i];
      continue;
    }
    if (!std::isfinite(a[i])) {
      ADD_FAILURE() << "element " << i << " is " << a[i] << " on the device, " << b[i] << " on the CPU (unwritten output?)";
      return std::numeric_limits<double>::infinity();
    }
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// A seeded float32 CPU tensor from N(0,1).
inline nash::Tensor randn32(const nash::Shape& s, uint64_t seed) {
  nash::Generator g(seed);
  return nash::randn(s, nash::DType::Float32, nash::Device::cpu(), &g);
}

// A float64 leaf with values from N(0,1) (seeded), requiring grad.
inline nash::Tensor leaf64(const nash::Shape& s, uint64_t seed, double shift = 0.0) {
  nash::Generator g(seed);
  nash::Tensor t = nash::randn(s, nash::DType::Float64, nash::Device::cpu(), &g);
  if (shift != 0.0) t = t + shift;
  return t.detach().requires_grad_();
}

#define EXPECT_GRADCHECK(fn, inputs)                                   \
  do {                                                                 \
    auto r_ = nash::autograd::gradcheck(fn, inputs);                   \
    EXPECT_TRUE(r_.ok) << "gradcheck: " << r_.message;                 \
  } while (0)
#define EXPECT_GRADGRADCHECK(fn, inputs)                               \
  do {                                                                 \
    auto r_ = nash::autograd::gradgradcheck(fn, inputs);               \
    EXPECT_TRUE(r_.ok) << "gradgradcheck: " << r_.message;             \
  } while (0)

// Expects a nash::Error whose message contains every fragment.
template <class F>
void expect_error(F f, std::initializer_list<const char*> fragments) {
  try {
    f();
  } catch (const nash::Error& e) {
    std::string msg = e.what();
    for (const char* frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "message: " << msg << " lacks " << frag;
    return;
  }
  ADD_FAILURE() << "expected nash::Error";
}

// A scratch path unique to this process, <temp>/nash_<prefix>_<name>_<pid>, emptied: created as an empty folder,
// or (create false) left absent for the code under test to make.
inline std::filesystem::path temp_dir(const std::string& prefix, const std::string& name, bool create = true) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("nash_" + prefix + "_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  if (create) fs::create_directories(d);
  return d;
}

}  // namespace nash_test
