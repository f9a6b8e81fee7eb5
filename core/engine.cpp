// Engine selection for CUDA matmul and convolution and the CPU convolution algorithm, initialised from the
// environment.
#include "nash/core/engine.h"

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <utility>

#include "nash/core/error.h"

namespace nash {

namespace {
template <class E>
E from_env(const char* var, E def, std::initializer_list<std::pair<const char*, E>> choices) {
  const char* v = std::getenv(var);
  if (!v || !*v) return def;
  const std::string s(v);
  std::string names;
  for (const auto& [name, e] : choices) {
    if (s == name) return e;
    names += names.empty() ? name : std::string(", ") + name;
  }
  detail::fail("environment variable ", var, "='", s, "' is not one of ", names);
}
std::atomic<MatmulEngine>& matmul_slot() {
  static std::atomic<MatmulEngine> e{
      from_env("NASH_MATMUL_ENGINE", MatmulEngine::CuBLAS,
               {{"nash", MatmulEngine::Nash}, {"cublas", MatmulEngine::CuBLAS}})};
  return e;
}
std::atomic<ConvEngine>& conv_slot() {
  static std::atomic<ConvEngine> e{
      from_env("NASH_CONV_ENGINE", ConvEngine::Nash, {{"nash", ConvEngine::Nash}, {"cudnn", ConvEngine::CuDNN}})};
  return e;
}
std::atomic<CpuConvAlgorithm>& cpu_conv_slot() {
  static std::atomic<CpuConvAlgorithm> e{from_env("NASH_CPU_CONV", CpuConvAlgorithm::Auto,
                                                  {{"auto", CpuConvAlgorithm::Auto},
                                                   {"im2col", CpuConvAlgorithm::Im2col},
                                                   {"winograd", CpuConvAlgorithm::Winograd}})};
  return e;
}
}  // namespace

void set_matmul_engine(MatmulEngine e) { matmul_slot() = e; }
MatmulEngine matmul_engine() { return matmul_slot(); }
void set_conv_engine(ConvEngine e) { conv_slot() = e; }
ConvEngine conv_engine() { return conv_slot(); }
void set_cpu_conv_algorithm(CpuConvAlgorithm a) { cpu_conv_slot() = a; }
CpuConvAlgorithm cpu_conv_algorithm() { return cpu_conv_slot(); }

}  // namespace nash
