// The equalized-learning-rate conv in one implicit-GEMM launch: the weight scale, the bias (times its own scale) and
// a gained leaky ReLU are applied in the store, so no scaled weight and no pre-activation tensor is written.
#include "kernels/cuda/backend.h"
#include "kernels/cuda/conv_gather.h"
#include "kernels/cuda/igemm.h"
#include "kernels/math.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {

// out[n, m, oh, ow] = gain * leaky_relu(v * scale + bias[m] * bias_scale, slope)
struct ScaledBiasActStore {
  float* out;
  const float* bias;
  float scale, bias_scale, gain;
  math::UnaryF<math::Unary::LeakyRelu, float> act;
  ConvGeom g;
  __host__ __device__ __forceinline__ void operator()(unsigned, int64_t m, int64_t col, float v) const {
    const int64_t sp = col % (g.oh * g.ow), n = col / (g.oh * g.ow);
    const float b = bias ? bias[m] * bias_scale : 0.f;
    out[(n * g.o + m) * g.oh * g.ow + sp] = act(v * scale + b) * gain;
  }
};

}  // namespace

void conv2d_scaled_bias_act(const Tensor& x, const Tensor& w, double scale, const Tensor& bias, double bias_scale,
                            double act_slope, double act_gain, Int2 stride, Int2 padding, Int2 dilation,
                            const Tensor& out) {
  require_float32("conv2d_scaled_bias_act", x);
  // Always the nash GEMM (also when cuDNN is the conv engine): the point is the single launch with this epilogue.
  ConvGeom g = geom(x, out, w.size(0), w.size(1), w.size(2), w.size(3), stride, padding, dilation, true);
  const int64_t K = g.c * g.kh * g.kw;
  ScaledBiasActStore st{out.data_ptr<float>(),
                        bias.defined() ? bias.data_ptr<float>() : nullptr,
                        static_cast<float>(scale),
                        static_cast<float>(bias_scale),
                        static_cast<float>(act_gain),
                        {{static_cast<float>(act_slope), 0.f}},
                        g};
  // No K-split: the activation must see the whole sum.
  if (fits_int32(g))
    igemm("conv2d_scaled_bias_act", g.o, g.n * g.oh * g.ow, K, FwdA{w.data_ptr<float>(), K},
          FwdBT<int>(x.data_ptr<float>(), narrow<int>(g)), st, false, x.device());
  else
    igemm("conv2d_scaled_bias_act", g.o, g.n * g.oh * g.ow, K, FwdA{w.data_ptr<float>(), K},
          FwdB(x.data_ptr<float>(), g), st, false, x.device());
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
