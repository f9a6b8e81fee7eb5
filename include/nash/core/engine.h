// Which implementation runs matmul and convolution on CUDA: nash's own kernels or the vendor libraries.
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

class ConvEngineGuard {
 public:
  explicit ConvEngineGuard(ConvEngine e) : prev_(conv_engine()) { set_conv_engine(e); }
  ~ConvEngineGuard() { set_conv_engine(prev_); }
  ConvEngineGuard(const ConvEngineGuard&) = delete;
  ConvEngineGuard& operator=(const ConvEngineGuard&) = delete;

 private:
  ConvEngine prev_;
};

}  // namespace nash
