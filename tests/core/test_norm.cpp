// batch_norm_train: the fused kernels against the composite formula (values, statistics, gradients), gradcheck and
// double backward through the create_graph path, layouts (N, C), (N, C, L), (N, C, H, W) with odd plane sizes, a
// strided input, and the argument errors.
#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {

std::vector<int64_t> stat_dims(const Tensor& x) {
  std::vector<int64_t> d;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i != 1) d.push_back(i);
  return d;
}

Shape channel_shape(const Tensor& x) {
  Shape s(static_cast<std::size_t>(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

// The composite formula nash::BatchNorm used before the fused kernels.
Tensor reference(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const std::vector<int64_t> dims = stat_dims(x);
  Tensor y = mul(sub(x, mean(x, dims, true)), pow(add(var(x, dims, false, true), eps), -0.5));
  if (w.defined()) y = mul(y, w.reshape(channel_shape(x)));
  if (b.defined()) y = add(y, b.reshape(channel_shape(x)));
  return y;
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s{{5, 3}, {4, 3, 7}, {2, 4, 3, 5}, {3, 2, 1, 1}, {2, 3, 4, 4}, {1, 2, 9, 11}};
  return s;
}

}  // namespace

TEST(BatchNormTrain, MatchesTheCompositeFormulaAndReturnsTheStatistics) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Shape& s : shapes()) {
      for (bool affine : {true, false}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_str(s) + (affine ? " affine" : ""));
        Generator g(5);
        // An offset mean: the two-pass variance must not cancel.
        const Tensor x = add(randn(s, dt, Device::cpu(), &g), 100.0);
        const Tensor w = affine ? randn({s[1]}, dt, Device::cpu(), &g) : Tensor();
        const Tensor b = affine ? randn({s[1]}, dt, Device::cpu(), &g) : Tensor();
        Tensor mu, v;
        const Tensor y = batch_norm_train(x, w, b, 1e-5, &mu, &v);
        const double tol = dt == DType::Float32 ? 2e-4 : 1e-10;
        expect_close(y, reference(x.to(DType::Float64), w.defined() ? w.to(DType::Float64) : w,
                                  b.defined() ? b.to(DType::Float64) : b, 1e-5),
                     tol, tol);
        expect_close(mu, mean(x.to(DType::Float64), stat_dims(x)), tol * 100, tol);
        expect_close(v, var(x.to(DType::Float64), stat_dims(x), false), tol, tol * 10);
        EXPECT_FALSE(mu.requires_grad());
      }
    }
  }
}

// The fused backward (no create_graph) and the composite one (create_graph, its results carrying history) give
// the same gradients, and both match the composite formula's autograd.
TEST(BatchNormTrain, FusedBackwardMatchesCompositeGradients) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Shape& s : shapes()) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_str(s));
      Generator g(9);
      const Tensor x = randn(s, dt, Device::cpu(), &g).requires_grad_();
      const Tensor w = randn({s[1]}, dt, Device::cpu(), &g).requires_grad_();
      const Tensor b = randn({s[1]}, dt, Device::cpu(), &g).requires_grad_();
      const Tensor gy = randn(s, dt, Device::cpu(), &g);
      const std::vector<Tensor> fused = autograd::grad({batch_norm_train(x, w, b, 1e-3)}, {x, w, b}, {gy});
      const std::vector<Tensor> graph =
          autograd::grad({batch_norm_train(x, w, b, 1e-3)}, {x, w, b}, {gy}, false, true);
      const std::vector<Tensor> ref = autograd::grad({reference(x, w, b, 1e-3)}, {x, w, b}, {gy});
      const double tol = dt == DType::Float32 ? 1e-4 : 1e-10;
      for (int k = 0; k < 3; ++k) {
        SCOPED_TRACE(k);
        // The input and weight gradients depend on x; the bias gradient, sum(gy), on nothing that requires grad.
        EXPECT_EQ(graph[k].requires_grad(), k < 2);
        EXPECT_FALSE(fused[k].requires_grad());
        expect_close(fused[k], ref[k], tol, tol);
        expect_close(graph[k], ref[k], tol, tol);
      }
    }
  }
}

TEST(BatchNormTrain, GradcheckAndDoubleBackward) {
  for (bool affine : {true, false}) {
    SCOPED_TRACE(affine ? "affine" : "no affine");
    Tensor x = leaf64({3, 2, 2, 3}, 21), w = leaf64({2}, 22, 1.0), b = leaf64({2}, 23);
    auto f = [&](const std::vector<Tensor>& in) {
      return batch_norm_train(in[0], affine ? in[1] : Tensor(), affine ? in[2] : Tensor(), 1e-3);
    };
    EXPECT_GRADCHECK(f, (std::vector<Tensor>{x, w, b}));
    EXPECT_GRADGRADCHECK(f, (std::vector<Tensor>{x, w, b}));
  }
}

TEST(BatchNormTrain, StridedInputAndOnlyParameterGradients) {
  Generator g(3);
  const Tensor base = randn({4, 6, 5}, DType::Float64, Device::cpu(), &g);
  const Tensor x = base.transpose(1, 2);  // (4, 5, 6), not contiguous: channels are the middle dim
  ASSERT_FALSE(x.is_contiguous());
  const Tensor w = randn({5}, DType::Float64, Device::cpu(), &g).requires_grad_();
  const Tensor b = zeros({5}, DType::Float64).requires_grad_();
  expect_close(batch_norm_train(x, w, b, 1e-5), reference(x, w, b, 1e-5), 1e-10, 1e-10);
  // x does not require grad: the backward computes the parameters' gradients only.
  const Tensor gy = randn({4, 5, 6}, DType::Float64, Device::cpu(), &g);
  const std::vector<Tensor> got = autograd::grad({batch_norm_train(x, w, b, 1e-5)}, {w, b}, {gy});
  const std::vector<Tensor> want = autograd::grad({reference(x, w, b, 1e-5)}, {w, b}, {gy});
  expect_close(got[0], want[0], 1e-10, 1e-10);
  expect_close(got[1], want[1], 1e-10, 1e-10);
}

TEST(BatchNormTrain, NaNStaysInItsChannel) {
  std::vector<float> v(2 * 3 * 4);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7) - 3.f;
  v[1 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();  // image 0, channel 1
  const std::vector<float> y = batch_norm_train(from_vector(v, {2, 3, 4}), Tensor(), Tensor(), 1e-5).to_vector();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 4; ++i)
        EXPECT_EQ(std::isnan(y[(n * 3 + c) * 4 + i]), c == 1) << n << " " << c << " " << i;
}

TEST(BatchNormTrain, RejectsBadArguments) {
  const Tensor x = randn({4, 3, 2, 2});
  expect_error([&] { batch_norm_train(Tensor(), Tensor(), Tensor(), 1e-5); }, {"batch_norm_train", "undefined"});
  expect_error([&] { batch_norm_train(randn({4}), Tensor(), Tensor(), 1e-5); }, {"batch_norm_train", "(N, C, ...)"});
  expect_error([&] { batch_norm_train(randn({1, 3}), Tensor(), Tensor(), 1e-5); },
               {"batch_norm_train", "more than 1 value per channel", "[1, 3]"});
  expect_error([&] { batch_norm_train(x, ones({4}), Tensor(), 1e-5); }, {"batch_norm_train", "weight", "[4]", "(3)"});
  expect_error([&] { batch_norm_train(x, Tensor(), ones({3, 1}), 1e-5); }, {"batch_norm_train", "bias", "(3)"});
  expect_error([&] { batch_norm_train(x, Tensor(), Tensor(), 0.0); }, {"batch_norm_train", "eps", "positive"});
  expect_error([&] { batch_norm_train(x, Tensor(), Tensor(), std::nan("")); }, {"batch_norm_train", "eps"});
  expect_error([&] { batch_norm_train(x, ones({3}, DType::Float64), Tensor(), 1e-5); }, {"batch_norm_train"});
}
