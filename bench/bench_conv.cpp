// nash_bench_conv: conv2d forward, input gradient and weight gradient (Google Benchmark) at the Fashion-MNIST
// apps' discriminator shapes and one larger layer, on nash's CPU kernels, nash's CUDA kernels and cuDNN (the CUDA
// engines skip with the reason where no device answers or the build has no cuDNN). On the CPU, nash_cpu is what
// conv2d does by default (CpuConvAlgorithm::Auto); nash_cpu_im2col and nash_cpu_winograd force one algorithm
// (the latter only on the shapes it applies to). Counter FLOP/s: the direct convolution's
// 2·N·Cout·OH·OW·Cin·kh·kw, the same for all three ops and algorithms.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "micro.h"

using namespace nash;
namespace {

// x (n, cin, hw, hw), w (cout, cin, k, k).
struct ConvCase {
  int64_t n, cin, hw, cout, k, stride, pad;
};

enum class Op { Forward, GradInput, GradWeight };
enum class Engine { NashCpu, NashCpuIm2col, NashCpuWinograd, NashCuda, CuDNN };

const char* op_name(Op op) {
  return op == Op::Forward ? "fwd" : op == Op::GradInput ? "grad_input" : "grad_weight";
}
const char* engine_name(Engine e) {
  switch (e) {
    case Engine::NashCpu: return "nash_cpu";
    case Engine::NashCpuIm2col: return "nash_cpu_im2col";
    case Engine::NashCpuWinograd: return "nash_cpu_winograd";
    case Engine::NashCuda: return "nash_cuda";
    default: return "cudnn";
  }
}

bool on_cpu(Engine e) { return e == Engine::NashCpu || e == Engine::NashCpuIm2col || e == Engine::NashCpuWinograd; }

// The CPU convolution algorithm an engine row runs.
CpuConvAlgorithm cpu_algorithm(Engine e) {
  return e == Engine::NashCpuIm2col     ? CpuConvAlgorithm::Im2col
         : e == Engine::NashCpuWinograd ? CpuConvAlgorithm::Winograd
                                        : CpuConvAlgorithm::Auto;
}
void BM_Conv(benchmark::State& state, ConvCase c, Op op, Engine engine) {
  const Device dev = on_cpu(engine) ? Device::cpu() : Device::cuda();
  if (!nash_bench::usable(state, dev)) return;
  if (engine == Engine::CuDNN && !cuda::cudnn_available()) {
    state.SkipWithError("this nash build has no cuDNN (ConvEngine::CuDNN unavailable)");
    return;
  }
  ConvEngineGuard guard(engine == Engine::CuDNN ? ConvEngine::CuDNN : ConvEngine::Nash);
  CpuConvAlgorithmGuard algorithm(cpu_algorithm(engine));
  const bool winograd_applies = c.k == 3 ? c.stride == 1 : c.k == 4 && c.stride == 2;
  if (engine == Engine::NashCpuWinograd && !winograd_applies) {
    state.SkipWithError("Winograd applies to 3x3 stride-1 and 4x4 stride-2 convolutions only");
    return;
  }
  NoGradGuard no_grad;
  manual_seed(0);
  const Int2 ohw = conv2d_output_hw({c.hw, c.hw}, {c.k, c.k}, c.stride, c.pad, 1);
  // Only the operands the op reads, so that the large case's setup stays short.
  const Shape xs{c.n, c.cin, c.hw, c.hw}, ws{c.cout, c.cin, c.k, c.k}, ys{c.n, c.cout, ohw.h, ohw.w};
  const std::vector<Tensor> x = op != Op::GradInput ? nash_bench::rotating_randn(xs, dev) : std::vector<Tensor>();
  const std::vector<Tensor> w =
      op != Op::GradWeight ? nash_bench::rotating_randn(ws, dev, 1.0 / std::sqrt(double(c.cin * c.k * c.k)))
                           : std::vector<Tensor>();
  const std::vector<Tensor> gy = op != Op::Forward ? nash_bench::rotating_randn(ys, dev) : std::vector<Tensor>();
  nash_bench::timed_loop(state, dev, [&](int k) {
    switch (op) {
      case Op::Forward: conv2d(x[k], w[k], Tensor(), c.stride, c.pad); break;
      case Op::GradInput: conv2d_grad_input(gy[k], w[k], Int2(c.hw, c.hw), c.stride, c.pad); break;
      case Op::GradWeight: conv2d_grad_weight(x[k], gy[k], Int2(c.k, c.k), c.stride, c.pad); break;
    }
  });
  const double flops = 2.0 * c.n * c.cout * ohw.h * ohw.w * c.cin * c.k * c.k;
  state.counters["FLOP/s"] = nash_bench::rate(flops);
}

void register_all(int*, char**) {
  // The apps' discriminator convolutions at batch 64 (32 -> 16 -> 8 -> 4 pixels), the same channel counts with
  // 3x3 stride-1 kernels, and one larger layer.
  const std::vector<ConvCase> cases = {
      {64, 1, 32, 64, 4, 2, 1},   {64, 64, 16, 128, 4, 2, 1},  {64, 128, 8, 256, 4, 2, 1},
      {64, 1, 32, 64, 3, 1, 1},   {64, 64, 16, 128, 3, 1, 1},  {64, 128, 8, 256, 3, 1, 1},
      {128, 128, 32, 128, 3, 1, 1},
  };
  for (const ConvCase& c : cases)
    for (Op op : {Op::Forward, Op::GradInput, Op::GradWeight})
      for (Engine e :
           {Engine::NashCpu, Engine::NashCpuIm2col, Engine::NashCpuWinograd, Engine::NashCuda, Engine::CuDNN}) {
        char name[128];
        std::snprintf(name, sizeof name, "conv/%s/n%ld_c%ld_%ldx%ld_o%ld_k%lds%ldp%ld/%s", op_name(op), long(c.n),
                      long(c.cin), long(c.hw), long(c.hw), long(c.cout), long(c.k), long(c.stride), long(c.pad),
                      engine_name(e));
        benchmark::RegisterBenchmark(name, BM_Conv, c, op, e)->UseManualTime()->Unit(benchmark::kMicrosecond);
      }
}

}  // namespace

int main(int argc, char** argv) { return nash_bench::run_main(argc, argv, "  (none)", register_all); }
