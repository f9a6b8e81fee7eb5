// Engine selection for CUDA matmul and convolution, initialised from the environment.
#include "nash/core/engine.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "nash/core/error.h"

namespace nash {

namespace {
template <class E>
E from_env(const char* var, E def, const char* a, E ea, const char* b, E eb) {
  const char* v = std::getenv(var);
  if (!v || !*v) return def;
  std::string s(v);
  if (s == a) return ea;
  if (s == b) return eb;
  detail::fail("environment variable ", var, "='", s, "' is not one of ", a, ", ", b);
}
std::atomic<MatmulEngine>& matmul_slot() {
  static std::atomic<MatmulEngine> e{
      from_env("NASH_MATMUL_ENGINE", MatmulEngine::CuBLAS, "nash", MatmulEngine::Nash, "cublas", MatmulEngine::CuBLAS)};
  return e;
}
std::atomic<ConvEngine>& conv_slot() {
  static std::atomic<ConvEngine> e{
      from_env("NASH_CONV_ENGINE", ConvEngine::Nash, "nash", ConvEngine::Nash, "cudnn", ConvEngine::CuDNN)};
  return e;
}
}  // namespace

void set_matmul_engine(MatmulEngine e) { matmul_slot() = e; }
MatmulEngine matmul_engine() { return matmul_slot(); }
void set_conv_engine(ConvEngine e) { conv_slot() = e; }
ConvEngine conv_engine() { return conv_slot(); }

}  // namespace nash
