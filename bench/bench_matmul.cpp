// nash_bench_matmul: square float32 matmul (Google Benchmark), n = 256, 512, 1024, 2048. CPU: nash's matmul op
// (OpenBLAS when the build found it, else the built-in blocked GEMM; the label says which) and the built-in GEMM
// called directly, so OpenBLAS builds measure it too. CUDA: nash's GEMM kernel against cuBLAS, through
// MatmulEngine. Counter FLOP/s: 2·n³.
#include <string>
#include <vector>

#include "micro.h"
// Not public API: the CPU GEMM entry points the CPU kernels call (the tests use it the same way). The public
// matmul op always takes the build's choice, so this is the only way to time the built-in GEMM beside OpenBLAS.
#include "kernels/cpu/gemm.h"

using namespace nash;
namespace {

enum class Engine { CpuMatmul, CpuBuiltin, NashCuda, CuBLAS };

const char* engine_name(Engine e) {
  switch (e) {
    case Engine::CpuMatmul: return "cpu_matmul";
    case Engine::CpuBuiltin: return "cpu_builtin_gemm";
    case Engine::NashCuda: return "nash_cuda";
    case Engine::CuBLAS: return "cublas";
  }
  return "?";
}

void BM_Matmul(benchmark::State& state, int64_t n, Engine engine) {
  const bool on_cuda = engine == Engine::NashCuda || engine == Engine::CuBLAS;
  const Device dev = on_cuda ? Device::cuda() : Device::cpu();
  if (!nash_bench::usable(state, dev)) return;
  MatmulEngineGuard guard(engine == Engine::CuBLAS ? MatmulEngine::CuBLAS : MatmulEngine::Nash);
  NoGradGuard no_grad;
  manual_seed(0);
  const std::vector<Tensor> a = nash_bench::rotating_randn({n, n}, dev), b = nash_bench::rotating_randn({n, n}, dev);
  if (engine == Engine::CpuMatmul) state.SetLabel(cpu::gemm_backend());
  if (engine == Engine::CpuBuiltin) state.SetLabel(std::string("builtin, ") + cpu::builtin_gemm_kernel() + " kernel");
  nash_bench::timed_loop(state, dev, [&](int k) {
    if (engine != Engine::CpuBuiltin) {
      matmul(a[k], b[k]);
      return;
    }
    Tensor c = empty({n, n});  // as the op allocates its result
    cpu::builtin_gemm<float>(false, false, n, n, n, 1.0f, a[k].data_ptr<float>(), n, b[k].data_ptr<float>(), n, 0.0f,
                             c.data_ptr<float>(), n);
  });
  state.counters["FLOP/s"] = nash_bench::rate(2.0 * n * n * n);
}

void register_all(int*, char**) {
  for (int64_t n : {256, 512, 1024, 2048})
    for (Engine e : {Engine::CpuMatmul, Engine::CpuBuiltin, Engine::NashCuda, Engine::CuBLAS}) {
      const std::string name = "matmul/" + std::to_string(n) + "/" + engine_name(e);
      benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, n, e)->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
}

}  // namespace

int main(int argc, char** argv) { return nash_bench::run_main(argc, argv, "  (none)", register_all); }
