// matmul/linear against a naive triple loop, transposed operands, batched forms, gradients and double backward.
#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;
using nash_test::leaf64;

namespace {
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  std::vector<double> A = a.contiguous().to_vector<double>(), B = b.contiguous().to_vector<double>(), C(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += A[i * K + k] * B[k * N + j];
      C[i * N + j] = s;
    }
  return from_vector(C, {M, N});
}
}  // namespace

TEST(Linalg, MatmulMatchesNaiveForAllLayouts) {
  Generator g(1);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = randn({7, 5}, dt, Device::cpu(), &g), b = randn({5, 9}, dt, Device::cpu(), &g);
    Tensor at = randn({5, 7}, dt, Device::cpu(), &g), bt = randn({9, 5}, dt, Device::cpu(), &g);
    double tol = dt == DType::Float32 ? 1e-4 : 1e-12;
    expect_close(matmul(a, b).to(DType::Float64), naive_matmul(a, b), tol, tol);
    expect_close(matmul(at.t(), b).to(DType::Float64), naive_matmul(at.t(), b), tol, tol);
    expect_close(matmul(a, bt.t()).to(DType::Float64), naive_matmul(a, bt.t()), tol, tol);
    expect_close(matmul(at.t(), bt.t()).to(DType::Float64), naive_matmul(at.t(), bt.t()), tol, tol);
    // a strided (narrowed) operand
    Tensor wide = randn({7, 12}, dt, Device::cpu(), &g);
    expect_close(matmul(wide.narrow(1, 3, 5), b).to(DType::Float64), naive_matmul(wide.narrow(1, 3, 5), b), tol, tol);
  }
}

TEST(Linalg, BatchedMatmul) {
  Generator g(2);
  Tensor a = randn({3, 4, 5}, DType::Float64, Device::cpu(), &g), b = randn({3, 5, 2}, DType::Float64, Device::cpu(), &g);
  Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{3, 4, 2}));
  for (int64_t i = 0; i < 3; ++i) expect_close(c.select(0, i), naive_matmul(a.select(0, i), b.select(0, i)), 1e-12, 1e-12);
  Tensor w = randn({5, 6}, DType::Float64, Device::cpu(), &g);
  expect_close(matmul(a, w).select(0, 1), naive_matmul(a.select(0, 1), w), 1e-12, 1e-12);
}

// Batches of small products run one product per thread, large ones each product split across the threads: both
// against the products taken one by one, with transposed batch views on both sides.
TEST(Linalg, BatchedMatmulOfSmallAndLargeProducts) {
  Generator g(3);
  const Tensor a = randn({9, 4, 5}, DType::Float64, Device::cpu(), &g).transpose(1, 2);  // (9, 5, 4)
  const Tensor b = randn({9, 3, 4}, DType::Float64, Device::cpu(), &g).transpose(1, 2);  // (9, 4, 3)
  const Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{9, 5, 3}));
  for (int64_t i = 0; i < 9; ++i) expect_close(c.select(0, i), naive_matmul(a.select(0, i), b.select(0, i)), 1e-12, 1e-12);
  const Tensor la = randn({2, 256, 256}, DType::Float32, Device::cpu(), &g);
  const Tensor lb = randn({2, 256, 256}, DType::Float32, Device::cpu(), &g).transpose(1, 2);
  const Tensor lc = matmul(la, lb);
  for (int64_t i = 0; i < 2; ++i) expect_close(lc.select(0, i), matmul(la.select(0, i), lb.select(0, i)), 1e-4, 1e-5);
}

TEST(Linalg, ShapeErrorsNameTheShapes) {
  expect_error([] { matmul(ones({2, 3}), ones({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]"});
  expect_error([] { matmul(ones({2}), ones({2, 2})); }, {"matmul"});
  expect_error([] { linear(ones({2, 3}), ones({4, 5})); }, {"linear", "[2, 3]", "[4, 5]"});
  expect_error([] { linear(ones({2, 3}), ones({4, 3}), ones({5})); }, {"linear", "bias"});
}

TEST(Linalg, GradcheckAndDoubleBackward) {
  Tensor a = leaf64({3, 4}, 3), b = leaf64({4, 2}, 4);
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  EXPECT_GRADCHECK(mm, (std::vector<Tensor>{a, b}));
  EXPECT_GRADGRADCHECK(mm, (std::vector<Tensor>{a, b}));
  Tensor ba = leaf64({2, 3, 4}, 5), bb = leaf64({2, 4, 2}, 6), w = leaf64({4, 3}, 7);
  EXPECT_GRADCHECK(mm, (std::vector<Tensor>{ba, bb}));
  EXPECT_GRADCHECK(mm, (std::vector<Tensor>{ba, w}));
  Tensor x = leaf64({5, 3}, 8), lw = leaf64({2, 3}, 9), lb = leaf64({2}, 10);
  auto lin = [](const std::vector<Tensor>& in) { return tanh(linear(in[0], in[1], in[2])); };
  EXPECT_GRADCHECK(lin, (std::vector<Tensor>{x, lw, lb}));
  EXPECT_GRADGRADCHECK(lin, (std::vector<Tensor>{x, lw, lb}));
}
