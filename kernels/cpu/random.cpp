// CPU random fills: element i draws from Philox block offset + i/4, so results are independent of threading.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"
#include "kernels/philox.h"

namespace nash {
namespace cpu {

namespace {
template <class F>
void fill_with(const Tensor& out, F f) {
  const int64_t n = out.numel();
  if (out.dtype() == DType::Float32) {
    float* p = out.data_ptr<float>();
    parallel_for(n, n >= kParallelGrain, [&](int64_t i) { p[i] = static_cast<float>(f(i)); });
  } else {
    double* p = out.data_ptr<double>();
    parallel_for(n, n >= kParallelGrain, [&](int64_t i) { p[i] = f(i); });
  }
}
}  // namespace

void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset) {
  fill_with(out, [&](int64_t i) { return philox::uniform_at(seed, offset, i); });
}

void fill_normal(const Tensor& out, uint64_t seed, uint64_t offset) {
  fill_with(out, [&](int64_t i) { return philox::normal_at(seed, offset, i); });
}

}  // namespace cpu
}  // namespace nash
