// The cuDNN convolution engine's entry points (kernels/cuda/cudnn_conv.cpp), called by kernels/cuda/conv.cu when
// conv_engine() is ConvEngine::CuDNN. Same contract as the nash kernels: float32, NCHW, contiguous, outputs
// preallocated and overwritten. Defined in every real CUDA build; without cuDNN (no NASH_WITH_CUDNN) they throw
// nash::Error saying the engine is missing, rather than falling back silently.
#pragma once
#include <cuda_runtime_api.h>

#include "nash/core/ops.h"
#include "nash/core/tensor.h"

namespace nash {
namespace cuda_impl {

void cudnn_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Int2 stride, Int2 padding, Int2 dilation,
                  const Tensor& out, cudaStream_t stream);
void cudnn_conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                             const Tensor& grad_in, cudaStream_t stream);
void cudnn_conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 stride, Int2 padding, Int2 dilation,
                              const Tensor& grad_w, cudaStream_t stream);

}  // namespace cuda_impl
}  // namespace nash
