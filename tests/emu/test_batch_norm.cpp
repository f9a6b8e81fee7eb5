// Batch normalization parity: the CUDA kernels of batch_norm_train (emulated always, real when a GPU answers)
// against the CPU's, forward (output and statistics) and backward (input, weight and bias gradients), on the
// DCGAN's layer shapes and odd ones (planes shorter than a warp, a channel longer than a block's stride).
#include <string>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;
using nash_test::rel_error;

namespace {

constexpr double kBound = 1e-4;  // float sums in another order than the CPU's

// Named *DeviceParity* so that tools/gpu-check's compute-sanitizer subset includes its real-GPU instances.
class BatchNormDeviceParity : public nash_test::DeviceTest {};

}  // namespace

TEST_P(BatchNormDeviceParity, ForwardAndBackwardMatchTheCpu) {
  const std::vector<Shape> shapes{{64, 128, 8, 8}, {6, 5}, {3, 7, 3, 5}, {2, 3, 37, 41}, {5, 4, 1, 1}};
  for (const Shape& s : shapes) {
    for (bool affine : {true, false}) {
      SCOPED_TRACE(shape_str(s) + (affine ? " affine" : ""));
      Generator g(17);
      const Tensor x = add(randn(s, DType::Float32, Device::cpu(), &g), 3.0).requires_grad_();
      const Tensor w = affine ? randn({s[1]}, DType::Float32, Device::cpu(), &g).requires_grad_() : Tensor();
      const Tensor b = affine ? randn({s[1]}, DType::Float32, Device::cpu(), &g).requires_grad_() : Tensor();
      const Tensor gy = randn(s, DType::Float32, Device::cpu(), &g);
      const Tensor dx = x.detach().to(device_).requires_grad_();
      const Tensor dw = affine ? w.detach().to(device_).requires_grad_() : Tensor();
      const Tensor db = affine ? b.detach().to(device_).requires_grad_() : Tensor();
      Tensor mu, v, dmu, dv;
      const Tensor y = batch_norm_train(x, w, b, 1e-5, &mu, &v);
      const Tensor dy = batch_norm_train(dx, dw, db, 1e-5, &dmu, &dv);
      EXPECT_EQ(dy.device(), device_);
      EXPECT_LE(rel_error(dy, y), kBound);
      EXPECT_LE(rel_error(dmu, mu), kBound);
      EXPECT_LE(rel_error(dv, v), kBound);
      std::vector<Tensor> in{x}, din{dx};
      if (affine) {
        in.insert(in.end(), {w, b});
        din.insert(din.end(), {dw, db});
      }
      const std::vector<Tensor> grads = autograd::grad({y}, in, {gy});
      const std::vector<Tensor> dgrads = autograd::grad({dy}, din, {gy.to(device_)});
      for (std::size_t k = 0; k < grads.size(); ++k) {
        SCOPED_TRACE(k);
        EXPECT_LE(rel_error(dgrads[k], grads[k]), kBound);
      }
    }
  }
}

// A BatchNorm2d module trained one step on the device keeps its running statistics as on the CPU.
TEST_P(BatchNormDeviceParity, BatchNorm2dRunningStatistics) {
  nn::BatchNorm2d cpu_bn(4), dev_bn(4);
  dev_bn.to(device_);
  const Tensor x = randn({8, 4, 3, 3});
  cpu_bn(x);
  dev_bn(x.to(device_));
  EXPECT_LE(rel_error(dev_bn.running_mean, cpu_bn.running_mean), kBound);
  EXPECT_LE(rel_error(dev_bn.running_var, cpu_bn.running_var), kBound);
}

// The CUDA kernels are float32-only: float64 on the device is an error that says so, and a weight on another
// device than the input is named too.
TEST_P(BatchNormDeviceParity, RejectsFloat64AndMixedDevices) {
  const Tensor x64 = randn({4, 3, 2, 2}, DType::Float64).to(device_);
  nash_test::expect_error([&] { batch_norm_train(x64, Tensor(), Tensor(), 1e-5); }, {"batch_norm_train", "float32"});
  const Tensor x = randn({4, 3, 2, 2}).to(device_);
  nash_test::expect_error([&] { batch_norm_train(x, ones({3}), Tensor(), 1e-5); },
                          {"batch_norm_train", "different devices"});
}

NASH_INSTANTIATE_DEVICE_TEST(BatchNormDeviceParity);
