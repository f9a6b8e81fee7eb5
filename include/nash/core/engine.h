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

// Sets an engine for the current scope and restores the previous one on exit.
class MatmulEngineGuard {
 public:
  explicit MatmulEngineGuard(MatmulEngine e) : prev_(matmul_engine()) { set_matmul_engine(e); }
  ~MatmulEngineGuard() { set_matmul_engine(prev_); }
  MatmulEngineGuard(const MatmulEngineGuard&) = delete;
  MatmulEngineGuard& operator=(const MatmulEngineGuard&) = delete;

 private:
  MatmulEngine prev_;
};

// CPU convolutions (conv2d, its two gradients, conv_transpose2d): Auto runs Winograd minimal filtering for 3x3
// stride-1 layers (F(2x2, 3x3)) and 4x4 stride-2 layers (F(2x2, 2x2) over the input's stride phases; their input
// gradient stays on im2col) with dilation 1 and at least 32 channels on both sides, and im2col + GEMM elsewhere;
// Im2col runs im2col + GEMM everywhere (results as the direct sum, up to the GEMM's rounding); Winograd runs it
// wherever the geometry allows. The environment variable NASH_CPU_CONV=auto|im2col|winograd sets the initial value
// (default auto).
enum class CpuConvAlgorithm { Auto, Im2col, Winograd };
void set_cpu_conv_algorithm(CpuConvAlgorithm a);
CpuConvAlgorithm cpu_conv_algorithm();

class ConvEngineGuard {
 public:
  explicit ConvEngineGuard(ConvEngine e) : prev_(conv_engine()) { set_conv_engine(e); }
  ~ConvEngineGuard() { set_conv_engine(prev_); }
  ConvEngineGuard(const ConvEngineGuard&) = delete;
  ConvEngineGuard& operator=(const ConvEngineGuard&) = delete;

 private:
  ConvEngine prev_;
};

class CpuConvAlgorithmGuard {
 public:
  explicit CpuConvAlgorithmGuard(CpuConvAlgorithm a) : prev_(cpu_conv_algorithm()) { set_cpu_conv_algorithm(a); }
  ~CpuConvAlgorithmGuard() { set_cpu_conv_algorithm(prev_); }
  CpuConvAlgorithmGuard(const CpuConvAlgorithmGuard&) = delete;
  CpuConvAlgorithmGuard& operator=(const CpuConvAlgorithmGuard&) = delete;

 private:
  CpuConvAlgorithm prev_;
};

}  // namespace nash
