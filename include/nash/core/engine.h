// Which implementation runs matmul and convolution on CUDA (nash's own kernels or the vendor libraries), and which
// algorithm nash's CPU convolutions use.
#pragma once

namespace nash {

enum class MatmulEngine { Nash, CuBLAS };
enum class ConvEngine { Nash, CuDNN };

// Global choices; the environment variables NASH_MATMUL_ENGINE=nash|cublas and NASH_CONV_ENGINE=nash|cudnn
// set the initial values. Defaults: cuBLAS for matmul, nash for convolution.
void set_matmul_engine(MatmulEngine e);
MatmulEngine matmul_engine();
void set_conv_engine(ConvEngine e);
ConvEngine conv_engine();

// CPU convolutions (conv2d, its two gradients, conv_transpose2d): Auto runs Winograd minimal filtering for 3x3
// stride-1 layers (F(2x2, 3x3)) and 4x4 stride-2 layers (F(2x2, 2x2) over the input's stride phases; their input
// gradient stays on im2col) with dilation 1 and at least 32 channels on both sides, and im2col + GEMM elsewhere;
// Im2col runs im2col + GEMM everywhere (results as the direct sum, up to the GEMM's rounding); Winograd runs it
// wherever the geometry allows. The environment variable NASH_CPU_CONV=auto|im2col|winograd sets the initial value
// (default auto).
enum class CpuConvAlgorithm { Auto, Im2col, Winograd };
void set_cpu_conv_algorithm(CpuConvAlgorithm a);
CpuConvAlgorithm cpu_conv_algorithm();

// Sets a choice for the current scope and restores the previous one on exit: MatmulEngineGuard, ConvEngineGuard,
// CpuConvAlgorithmGuard.
template <class E, E (*Get)(), void (*Set)(E)>
class ScopedChoice {
 public:
  explicit ScopedChoice(E e) : prev_(Get()) { Set(e); }
  ~ScopedChoice() { Set(prev_); }
  ScopedChoice(const ScopedChoice&) = delete;
  ScopedChoice& operator=(const ScopedChoice&) = delete;

 private:
  E prev_;
};
using MatmulEngineGuard = ScopedChoice<MatmulEngine, matmul_engine, set_matmul_engine>;
using ConvEngineGuard = ScopedChoice<ConvEngine, conv_engine, set_conv_engine>;
using CpuConvAlgorithmGuard = ScopedChoice<CpuConvAlgorithm, cpu_conv_algorithm, set_cpu_conv_algorithm>;

}  // namespace nash
