// CPU kernels for equalized learning rate: the scaled weight copy and the unfused conv + scale/bias/activation.
#include "kernels/cpu/cpu.h"

namespace nash {
namespace cpu {

namespace {

template <class T>
void scale_typed(const Tensor& x, T c, const Tensor& out) {
  const T* xp = x.data_ptr<T>();
  T* op = out.data_ptr<T>();
  const math::UnaryF<math::Unary::MulScalar, T> f{{c, T(0)}};
  const int64_t n = out.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) op[i] = f(xp[i]);
}

// out (N, O, H, W) holds conv(x, w); the epilogue the CUDA kernel applies in its store, per output channel.
template <class T>
void epilogue_typed(const Tensor& out, const Tensor& bias, T scale, T bias_scale, T slope, T gain) {
  const int64_t n = out.size(0), o = out.size(1), hw = out.size(2) * out.size(3);
  const T* bp = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* yp = out.data_ptr<T>();
  const math::UnaryF<math::Unary::LeakyRelu, T> act{{slope, T(0)}};
#pragma omp parallel for if (n * o * hw > (1 << 16))
  for (int64_t r = 0; r < n * o; ++r) {
    const T b = bp ? bp[r % o] * bias_scale : T(0);
    T* y = yp + r * hw;
    for (int64_t i = 0; i < hw; ++i) y[i] = act(y[i] * scale + b) * gain;
  }
}

}  // namespace

void scale(const Tensor& x, double c, const Tensor& out) {
  NASH_CHECK(x.is_contiguous() && out.is_contiguous() && x.numel() == out.numel() && x.dtype() == out.dtype(),
             "scale: expects contiguous x and out of one dtype and size, got ", x.str(), " and ", out.str());
  if (out.dtype() == DType::Float32)
    scale_typed<float>(x, static_cast<float>(c), out);
  else
    scale_typed<double>(x, c, out);
}

// The unfused composition: the reference conv kernel, then one pass over its output.
void conv2d_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& bias, double bias_scale,
                            double act_slope, double act_gain, Int2 stride, Int2 padding, Int2 dilation,
                            const Tensor& out) {
  conv2d(x, w, Tensor(), stride, padding, dilation, out);
  if (out.dtype() == DType::Float32)
    epilogue_typed<float>(out, bias, static_cast<float>(scale), static_cast<float>(bias_scale),
                          static_cast<float>(act_slope), static_cast<float>(act_gain));
  else
    epilogue_typed<double>(out, bias, scale, bias_scale, act_slope, act_gain);
}

}  // namespace cpu
}  // namespace nash
