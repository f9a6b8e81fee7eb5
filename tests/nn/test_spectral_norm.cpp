// SpectralNorm: σ against a float64 Jacobi SVD, gradients by finite differences and by the paper's formula, two
// forwards with one backward, buffers, the model-wide fused update, errors, and a (disabled) CPU overhead timing.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "nash/nn/checkpoint.h"
#include "support.h"

using namespace nash;
using nash_test::expect_close;
using nash_test::expect_error;

namespace {

// Singular values (descending) of a row-major (rows, cols) matrix by one-sided Jacobi: column pairs are rotated
// until every pair is orthogonal; the column norms are then the singular values.
std::vector<double> singular_values(std::vector<double> a, int64_t rows, int64_t cols) {
  if (cols > rows) {  // rotate the fewer columns
    std::vector<double> t(a.size());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
    a.swap(t);
    std::swap(rows, cols);
  }
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < cols; ++p)
      for (int64_t q = p + 1; q < cols; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (int64_t i = 0; i < rows; ++i) {
          alpha += a[i * cols + p] * a[i * cols + p];
          beta += a[i * cols + q] * a[i * cols + q];
          gamma += a[i * cols + p] * a[i * cols + q];
        }
        if (gamma == 0 || alpha == 0 || beta == 0) continue;
        off = std::max(off, std::fabs(gamma) / std::sqrt(alpha * beta));
        const double zeta = (beta - alpha) / (2 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
        const double c = 1 / std::sqrt(1 + t * t), s = c * t;
        for (int64_t i = 0; i < rows; ++i) {
          const double ap = a[i * cols + p], aq = a[i * cols + q];
          a[i * cols + p] = c * ap - s * aq;
          a[i * cols + q] = s * ap + c * aq;
        }
      }
    if (off < 1e-15) break;
  }
  std::vector<double> sv(static_cast<std::size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    double n = 0;
    for (int64_t i = 0; i < rows; ++i) n += a[i * cols + j] * a[i * cols + j];
    sv[static_cast<std::size_t>(j)] = std::sqrt(n);
  }
  std::sort(sv.rbegin(), sv.rend());
  return sv;
}

// The (rows, cols) matrix of a weight built element by element: rows along dim 0, or along dim 1 for a transposed
// convolution's (in, out, kh, kw) weight (columns ordered in, kh, kw).
std::vector<double> matrix_by_hand(const Tensor& w, int64_t dim, int64_t& rows, int64_t& cols) {
  std::vector<double> x = w.to_vector<double>();
  rows = w.size(dim);
  cols = w.numel() / rows;
  if (dim == 0) return x;
  const int64_t a = w.size(0), b = w.size(1), k = w.numel() / (a * b);
  std::vector<double> m(x.size());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t o = 0; o < b; ++o)
      for (int64_t kk = 0; kk < k; ++kk) m[o * cols + i * k + kk] = x[(i * b + o) * k + kk];
  return m;
}

std::vector<double> unit(std::vector<double> x) {
  double n = 0;
  for (double e : x) n += e * e;
  n = std::sqrt(n);
  for (double& e : x) e /= n;
  return x;
}

// One power-iteration step by hand: v = unit(Wᵀu), u = unit(Wv).
void step_by_hand(const std::vector<double>& m, int64_t rows, int64_t cols, std::vector<double>& u,
                  std::vector<double>& v) {
  v.assign(static_cast<std::size_t>(cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) v[j] += m[i * cols + j] * u[i];
  v = unit(v);
  u.assign(static_cast<std::size_t>(rows), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) u[i] += m[i * cols + j] * v[j];
  u = unit(u);
}

double bilinear(const std::vector<double>& m, int64_t cols, const std::vector<double>& u,
                const std::vector<double>& v) {
  double s = 0;
  for (std::size_t i = 0; i < u.size(); ++i)
    for (int64_t j = 0; j < cols; ++j) s += u[i] * m[i * cols + j] * v[j];
  return s;
}

Tensor rnd64(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, DType::Float64, Device::cpu(), &g);
}

// Puts u back to a random unit vector, far from converged, so that each update visibly moves it.
void unconverge(nn::SpectralNorm& sn, uint64_t seed) {
  NoGradGuard ng;
  Tensor z = rnd64({sn.weight_u.numel()}, seed).to(sn.weight_u.dtype());
  sn.weight_u.copy_(div(z, norm(z)));
}

// Float64 wrapped layers of the three kinds (the wrapped module is converted before wrapping).
std::shared_ptr<nn::SpectralNorm> sn64(nn::ModulePtr m, int64_t n_iters = 1) {
  m->to(DType::Float64);
  return nn::spectral_norm(std::move(m), n_iters);
}

// σ after many iterations equals the SVD's largest singular value; W/σ then has spectral norm 1 and (u, v) are
// the singular pair (W v = σ u).
void check_sigma_against_svd(const std::shared_ptr<nn::SpectralNorm>& sn) {
  int64_t rows = 0, cols = 0;
  std::vector<double> m = matrix_by_hand(sn->weight(), sn->dim(), rows, cols);
  std::vector<double> sv = singular_values(m, rows, cols);
  ASSERT_GE(sv.size(), 2u);
  ASSERT_LT(sv[1] / sv[0], 0.97) << "test matrix has no usable spectral gap";
  sn->power_iterate(2000);
  const double sigma = sn->sigma().item();
  EXPECT_NEAR(sigma, sv[0], 1e-10 * sv[0]);
  std::vector<double> u = sn->weight_u.to_vector<double>(), v = sn->weight_v.to_vector<double>();
  for (int64_t i = 0; i < rows; ++i) {
    double wv = 0;
    for (int64_t j = 0; j < cols; ++j) wv += m[i * cols + j] * v[j];
    EXPECT_NEAR(wv, sigma * u[i], 1e-9 * sigma);
  }
  int64_t r2 = 0, c2 = 0;
  Tensor w_sn;
  {
    NoGradGuard ng;
    w_sn = sn->normalized_weight();
  }
  std::vector<double> m_sn = matrix_by_hand(w_sn, sn->dim(), r2, c2);
  std::vector<double> sv_sn = singular_values(m_sn, r2, c2);
  EXPECT_NEAR(sv_sn[0], 1.0, 1e-10);
  // The untouched Frobenius norm is a check on the SVD routine itself.
  double fro = 0, sum_sq = 0;
  for (double e : m) fro += e * e;
  for (double s : sv) sum_sq += s * s;
  EXPECT_NEAR(sum_sq, fro, 1e-10 * fro);
}

}  // namespace

TEST(SpectralNorm, JacobiReferenceRecoversKnownSingularValues) {
  // A = H1 diag(5, 3, 2, 0.5) H2ᵀ with Householder reflections H = I - 2hhᵀ/|h|², so its singular values are known.
  const int64_t rows = 6, cols = 4;
  const std::vector<double> s = {5, 3, 2, 0.5};
  std::vector<double> h1 = rnd64({rows}, 1).to_vector<double>(), h2 = rnd64({cols}, 2).to_vector<double>();
  auto householder = [](const std::vector<double>& h) {
    const int64_t n = static_cast<int64_t>(h.size());
    double nn = 0;
    for (double e : h) nn += e * e;
    std::vector<double> q(static_cast<std::size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) q[i * n + j] = (i == j ? 1.0 : 0.0) - 2 * h[i] * h[j] / nn;
    return q;
  };
  std::vector<double> q1 = householder(h1), q2 = householder(h2), a(rows * cols, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t k = 0; k < cols; ++k) a[i * cols + j] += q1[i * rows + k] * s[k] * q2[j * cols + k];
  std::vector<double> got = singular_values(a, rows, cols);
  for (std::size_t k = 0; k < s.size(); ++k) EXPECT_NEAR(got[k], s[k], 1e-12);
}

TEST(SpectralNorm, SigmaMatchesSvdForLinearConvAndConvTranspose) {
  manual_seed(21);
  {
    SCOPED_TRACE("Linear");
    auto sn = sn64(std::make_shared<nn::Linear>(13, 7));
    EXPECT_EQ(sn->dim(), 0);
    check_sigma_against_svd(sn);
  }
  {
    SCOPED_TRACE("Conv2d");
    auto sn = sn64(std::make_shared<nn::Conv2d>(3, 6, 3));
    EXPECT_EQ(sn->weight_u.numel(), 6);
    EXPECT_EQ(sn->weight_v.numel(), 27);
    check_sigma_against_svd(sn);
  }
  {
    SCOPED_TRACE("ConvTranspose2d");
    auto sn = sn64(std::make_shared<nn::ConvTranspose2d>(5, 4, Int2(3, 2)));
    EXPECT_EQ(sn->dim(), 1);
    EXPECT_EQ(sn->weight_u.numel(), 4);   // the output channels are the rows
    EXPECT_EQ(sn->weight_v.numel(), 30);  // in * kh * kw
    check_sigma_against_svd(sn);
  }
}

TEST(SpectralNorm, WeightMatrixLayouts) {
  Tensor w = rnd64({5, 4, 3, 2}, 3);
  int64_t rows = 0, cols = 0;
  for (int64_t dim : {0, 1}) {
    std::vector<double> want = matrix_by_hand(w, dim, rows, cols);
    Tensor m = nn::spectral_weight_matrix(w, dim);
    EXPECT_EQ(m.shape(), (Shape{rows, cols}));
    nash_test::expect_values(m, want, 0.0);
    // The iteration view shares w's memory and iterates the same matrix.
    Tensor view = nn::spectral_iteration_view(w, dim);
    EXPECT_EQ(view.raw_data(), w.raw_data());
    Tensor u1 = rnd64({rows}, 4), v1 = zeros({cols}, DType::Float64), u2 = u1.clone(), v2 = v1.clone();
    power_iteration(m, u1, v1, 3);
    power_iteration(view, u2, v2, 3);
    expect_close(u2, u1, 1e-14, 1e-12);
    expect_close(v2, v1, 1e-14, 1e-12);
  }
}

TEST(SpectralNorm, WrapDrawsUnitVectorsAndRuns15Iterations) {
  manual_seed(4);
  auto lin = std::make_shared<nn::Linear>(9, 5);
  lin->to(DType::Float64);
  manual_seed(99);
  auto sn = nn::spectral_norm(lin);
  manual_seed(99);
  std::vector<double> u = unit(randn({5}, DType::Float64).to_vector<double>());
  std::vector<double> v = unit(randn({9}, DType::Float64).to_vector<double>());
  std::vector<double> m = lin->weight.to_vector<double>();
  for (int i = 0; i < 15; ++i) step_by_hand(m, 5, 9, u, v);
  nash_test::expect_values(sn->weight_u, u, 1e-12);
  nash_test::expect_values(sn->weight_v, v, 1e-12);
}

TEST(SpectralNorm, BuffersAndParametersAreNamedForCheckpoints) {
  manual_seed(5);
  nn::Sequential net{nn::spectral_norm(std::make_shared<nn::Conv2d>(2, 3, 3)), std::make_shared<nn::ReLU>()};
  std::vector<std::string> buffers, params;
  for (auto& b : net.named_buffers()) {
    buffers.push_back(b.first);
    EXPECT_FALSE(b.second.requires_grad());
  }
  for (auto& p : net.named_parameters()) params.push_back(p.first);
  EXPECT_EQ(buffers, (std::vector<std::string>{"0.weight_u", "0.weight_v"}));
  EXPECT_EQ(params, (std::vector<std::string>{"0.module.weight", "0.module.bias"}));
}

TEST(SpectralNorm, CheckpointRoundTripRestoresUAndV) {
  auto make = [](uint64_t seed) {
    manual_seed(seed);
    return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        nn::spectral_norm(std::make_shared<nn::Conv2d>(2, 3, 3)), std::make_shared<nn::Flatten>(),
        nn::spectral_norm(std::make_shared<nn::Linear>(12, 2))});
  };
  auto saved = make(50), loaded = make(51);
  Tensor x = randn({2, 2, 4, 4});
  saved->forward(x);  // move u, v away from their wrap-time values
  const std::string path = ::testing::TempDir() + "nash_spectral_norm_ckpt.safetensors";
  nn::Checkpoint out;
  out.modules = {{"D", saved.get()}};
  nn::save_checkpoint(path, out);
  nn::Checkpoint in;
  in.modules = {{"D", loaded.get()}};
  nn::load_checkpoint(path, in);
  std::remove(path.c_str());
  auto sb = saved->named_buffers(), lb = loaded->named_buffers();
  ASSERT_EQ(sb.size(), 4u);
  for (std::size_t k = 0; k < sb.size(); ++k) {
    EXPECT_EQ(lb[k].first, sb[k].first);
    expect_close(lb[k].second, sb[k].second, 0.0, 0.0);
  }
  saved->eval();
  loaded->eval();
  expect_close(loaded->forward(x), saved->forward(x), 0.0, 0.0);
}

TEST(SpectralNorm, TrainingForwardUpdatesOnceEvalForwardDoesNot) {
  manual_seed(6);
  auto sn = sn64(std::make_shared<nn::Linear>(6, 4));
  Tensor x = rnd64({3, 6}, 7);
  std::vector<double> m = sn->weight().to_vector<double>(), b = sn->module()->named_parameters()[1].second
                                                                      .to_vector<double>();
  std::vector<double> u = sn->weight_u.to_vector<double>(), v;
  step_by_hand(m, 4, 6, u, v);
  Tensor y = sn->forward(x);
  nash_test::expect_values(sn->weight_u, u, 1e-12);
  nash_test::expect_values(sn->weight_v, v, 1e-12);
  // y = x (W/σ)ᵀ + b with σ from the updated vectors.
  const double sigma = bilinear(m, 6, u, v);
  std::vector<double> xv = x.to_vector<double>(), want(12);
  for (int n = 0; n < 3; ++n)
    for (int o = 0; o < 4; ++o) {
      double acc = b[o];
      for (int i = 0; i < 6; ++i) acc += xv[n * 6 + i] * m[o * 6 + i] / sigma;
      want[n * 4 + o] = acc;
    }
  nash_test::expect_values(y, want, 1e-12);

  sn->eval();
  Tensor u1 = sn->weight_u.clone(), v1 = sn->weight_v.clone();
  Tensor y2 = sn->forward(x);
  expect_close(sn->weight_u, u1, 0.0, 0.0);
  expect_close(sn->weight_v, v1, 0.0, 0.0);
  expect_close(y2, y, 0.0, 0.0);
}

TEST(SpectralNorm, GradientMatchesThePaperFormula) {
  // L = <W_sn, R>: dL/dW = (R - <R, W_sn> u vᵀ) / σ.
  manual_seed(8);
  auto sn = sn64(std::make_shared<nn::Linear>(5, 3));
  sn->eval();
  Tensor r = rnd64({3, 5}, 9);
  sum(mul(sn->normalized_weight(), r)).backward();
  std::vector<double> m = sn->weight().to_vector<double>(), rv = r.to_vector<double>();
  std::vector<double> u = sn->weight_u.to_vector<double>(), v = sn->weight_v.to_vector<double>();
  const double sigma = bilinear(m, 5, u, v);
  double inner = 0;
  for (int k = 0; k < 15; ++k) inner += rv[k] * m[k] / sigma;
  std::vector<double> want(15);
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 5; ++i) want[o * 5 + i] = (rv[o * 5 + i] - inner * u[o] * v[i]) / sigma;
  nash_test::expect_values(sn->weight().grad(), want, 1e-12);
}

TEST(SpectralNorm, GradcheckThroughEachWrappedKind) {
  manual_seed(10);
  struct Case {
    const char* name;
    std::shared_ptr<nn::SpectralNorm> sn;
    Tensor x;
  };
  std::vector<Case> cases = {
      {"Linear", sn64(std::make_shared<nn::Linear>(4, 3)), nash_test::leaf64({2, 4}, 11)},
      {"Conv2d", sn64(std::make_shared<nn::Conv2d>(2, 3, 3, 2, 1)), nash_test::leaf64({2, 2, 5, 5}, 12)},
      {"ConvTranspose2d", sn64(std::make_shared<nn::ConvTranspose2d>(3, 2, 3, 2, 1, 1)),
       nash_test::leaf64({1, 3, 3, 3}, 13)},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    c.sn->eval();  // u, v fixed: σ = uᵀWv exactly, so finite differences see the same function
    std::vector<Tensor> inputs{c.x};
    for (auto& p : c.sn->parameters()) inputs.push_back(p);
    auto sn = c.sn;
    const std::vector<double> u_before = sn->weight_u.to_vector<double>();
    EXPECT_GRADCHECK([sn](const std::vector<Tensor>& in) { return sn->forward(in[0]); }, inputs);
    nash_test::expect_values(sn->weight_u, u_before, 0.0);
  }
  // Double backward (gradient penalties through an SN discriminator).
  auto lin = cases[0].sn;
  EXPECT_GRADGRADCHECK([lin](const std::vector<Tensor>& in) { return tanh(lin->forward(in[0])); },
                       (std::vector<Tensor>{cases[0].x, lin->weight()}));
}

TEST(SpectralNorm, TwoForwardsThenOneBackwardMatchesHandComputedGradient) {
  // A D step: real and fake batches through one layer in training mode, losses added, one backward. The second
  // forward updates u, v in place; the first graph must still use the u, v it was built with.
  manual_seed(12);
  const int64_t N = 3, in = 5, out = 4;
  auto sn = sn64(std::make_shared<nn::Linear>(in, out));
  unconverge(*sn, 40);
  Tensor x1 = rnd64({N, in}, 13), x2 = rnd64({N, in}, 14), a = rnd64({N, out}, 15), b = rnd64({N, out}, 16);
  std::vector<double> m = sn->weight().to_vector<double>();
  std::vector<std::vector<double>> us(3), vs(3);
  us[0] = sn->weight_u.to_vector<double>();
  Tensor y1 = sn->forward(x1);
  us[1] = sn->weight_u.to_vector<double>();
  vs[1] = sn->weight_v.to_vector<double>();
  Tensor y2 = sn->forward(x2);
  us[2] = sn->weight_u.to_vector<double>();
  vs[2] = sn->weight_v.to_vector<double>();
  (sum(mul(y1, a)) + sum(mul(y2, b))).backward();

  std::vector<double> u = us[0], v;
  for (int k = 1; k <= 2; ++k) {
    step_by_hand(m, out, in, u, v);
    for (std::size_t i = 0; i < u.size(); ++i) ASSERT_NEAR(us[k][i], u[i], 1e-12);
  }
  double moved = 0;
  for (std::size_t i = 0; i < u.size(); ++i) moved += std::fabs(us[2][i] - us[1][i]);
  ASSERT_GT(moved, 1e-3) << "the second forward must have changed u for this test to mean anything";

  // dL/dW = sum over the two forwards of (G_k - <G_k, W/σ_k> u_k v_kᵀ) / σ_k, with G_k = A_kᵀ X_k.
  std::vector<double> want(out * in, 0.0);
  const Tensor* xs[2] = {&x1, &x2};
  const Tensor* gs[2] = {&a, &b};
  for (int k = 0; k < 2; ++k) {
    std::vector<double> xv = xs[k]->to_vector<double>(), gv = gs[k]->to_vector<double>(), g(out * in, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) g[o * in + i] += gv[n * out + o] * xv[n * in + i];
    const std::vector<double>& uk = us[k + 1];
    const std::vector<double>& vk = vs[k + 1];
    const double sigma = bilinear(m, in, uk, vk);
    double inner = 0;
    for (int64_t e = 0; e < out * in; ++e) inner += g[e] * m[e] / sigma;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) want[o * in + i] += (g[o * in + i] - inner * uk[o] * vk[i]) / sigma;
  }
  nash_test::expect_values(sn->weight().grad(), want, 1e-12);
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), bias_want(out, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) bias_want[o] += av[n * out + o] + bv[n * out + o];
  nash_test::expect_values(sn->module()->parameters()[1].grad(), bias_want, 1e-12);
}

TEST(SpectralNorm, TwoForwardsThroughConvTransposeMatchFunctionalReference) {
  manual_seed(17);
  auto sn = sn64(std::make_shared<nn::ConvTranspose2d>(3, 2, 3, 2, 1, 1));
  unconverge(*sn, 41);
  Tensor x1 = rnd64({2, 3, 3, 3}, 18), x2 = rnd64({2, 3, 3, 3}, 19);
  Tensor y1 = sn->forward(x1);
  Tensor u1 = sn->weight_u.clone(), v1 = sn->weight_v.clone();
  Tensor y2 = sn->forward(x2);
  Tensor u2 = sn->weight_u.clone(), v2 = sn->weight_v.clone();
  ASSERT_GT(max(abs(u2 - u1)).item(), 1e-5);  // far above the tolerances below
  Tensor g2 = rnd64(y2.shape(), 20);
  (sum(square(y1)) + sum(mul(tanh(y2), g2))).backward();

  const auto& ct = static_cast<const nn::ConvTranspose2d&>(*sn->module());
  Tensor w = sn->weight().detach().clone().requires_grad_(), bias = ct.bias.detach().clone().requires_grad_();
  auto fwd = [&](const Tensor& x, const Tensor& u, const Tensor& v) {
    return conv_transpose2d(x, nn::spectral_normalized_weight(w, u, v, 1), bias, ct.stride, ct.padding,
                            ct.output_padding, ct.dilation);
  };
  (sum(square(fwd(x1, u1, v1))) + sum(mul(tanh(fwd(x2, u2, v2)), g2))).backward();
  expect_close(sn->weight().grad(), w.grad(), 1e-12, 1e-10);
  expect_close(ct.bias.grad(), bias.grad(), 1e-12, 1e-10);
}

TEST(SpectralNorm, UpdateAllRunsEveryTrainingLayerOnceAndForwardsThenSkip) {
  manual_seed(22);
  auto ct = nn::spectral_norm(std::make_shared<nn::ConvTranspose2d>(3, 5, 3, 1, 1));
  auto conv = nn::spectral_norm(std::make_shared<nn::Conv2d>(5, 6, 3, 2, 1), /*n_power_iterations=*/2);
  auto lin = nn::spectral_norm(std::make_shared<nn::Linear>(24, 1));
  nn::Sequential net{ct, std::make_shared<nn::LeakyReLU>(0.2), conv, std::make_shared<nn::Flatten>(), lin};
  EXPECT_EQ(nn::spectral_norm_layers(net).size(), 3u);

  std::vector<nn::SpectralNorm*> layers = nn::spectral_norm_layers(net);
  std::vector<Tensor> want_u, want_v;
  for (std::size_t k = 0; k < layers.size(); ++k) {
    nn::SpectralNorm* l = layers[k];
    unconverge(*l, 60 + k);  // so that a missing or extra iteration changes u
    Tensor u = l->weight_u.clone(), v = l->weight_v.clone();
    power_iteration(nn::spectral_iteration_view(l->weight(), l->dim()), u, v, l->n_power_iterations, l->eps);
    want_u.push_back(u);
    want_v.push_back(v);
  }
  EXPECT_EQ(nn::spectral_norm_update_all(net), 3);
  for (std::size_t k = 0; k < layers.size(); ++k) {
    EXPECT_TRUE(layers[k]->external_update);
    expect_close(layers[k]->weight_u, want_u[k], 0.0, 0.0);
    expect_close(layers[k]->weight_v, want_v[k], 0.0, 0.0);
  }
  // Real and fake forwards of the step now share u, v.
  Tensor x = randn({2, 3, 4, 4});
  net.forward(x);
  net.forward(x + 1.0);
  for (std::size_t k = 0; k < layers.size(); ++k) expect_close(layers[k]->weight_u, want_u[k], 0.0, 0.0);

  // Layers in eval mode keep their state.
  lin->eval();
  Tensor lin_u = lin->weight_u.clone();
  EXPECT_EQ(nn::spectral_norm_update_all(net), 2);
  expect_close(lin->weight_u, lin_u, 0.0, 0.0);
}

TEST(SpectralNorm, DeviceAndDtypeMovesCarryTheBuffers) {
  manual_seed(23);
  auto sn = nn::spectral_norm(std::make_shared<nn::Conv2d>(2, 3, 3));
  Tensor u = sn->weight_u;
  sn->to(DType::Float64);
  EXPECT_EQ(sn->weight_u.dtype(), DType::Float64);
  EXPECT_TRUE(sn->weight_u.is_same(u));  // moved in place: registered entry and member stay one tensor
  EXPECT_EQ(sn->named_buffers()[0].second.dtype(), DType::Float64);
  Tensor y = sn->forward(rnd64({1, 2, 4, 4}, 24));
  EXPECT_EQ(y.dtype(), DType::Float64);
}

TEST(SpectralNorm, ZeroWeightGivesFiniteOutput) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  {
    NoGradGuard ng;
    lin->weight.zero_();
  }
  auto sn = nn::spectral_norm(lin);
  Tensor y = sn->forward(randn({4, 3}));
  for (float e : y.to_vector<float>()) EXPECT_TRUE(std::isfinite(e));
  expect_close(y, lin->bias.detach().reshape({1, 2}).expand({4, 2}).contiguous(), 0.0, 0.0);
}

TEST(SpectralNorm, ErrorsNameTheProblem) {
  expect_error([] { nn::spectral_norm(std::make_shared<nn::BatchNorm2d>(3)); }, {"SpectralNorm", "BatchNorm2d"});
  expect_error([] { nn::spectral_norm(nullptr); }, {"SpectralNorm", "null"});
  auto sn = nn::spectral_norm(std::make_shared<nn::Linear>(4, 3));
  expect_error([&] { sn->forward(randn({2, 5})); }, {"SpectralNorm(Linear)", "(N, 4)", "[2, 5]"});
  Tensor w = randn({3, 4});
  expect_error([&] { power_iteration(w, zeros({4}), zeros({4})); }, {"power_iteration", "[3, 4]", "u (3)"});
  expect_error([&] { power_iteration(w, zeros({3}).requires_grad_(), zeros({4})); },
               {"power_iteration", "must not require grad"});
  expect_error([&] { power_iteration(w, zeros({3}), zeros({4}), -1); }, {"power_iteration", "n_iters"});
  Tensor u = zeros({3}), v = zeros({4});
  expect_error([&] { power_iteration_many({{w, u, v}, {w.clone(), u, zeros({4})}}); },
               {"power_iteration_many", "share"});
  expect_error([&] { power_iteration_many({{w, zeros({3}), zeros({4})}, {w.to(DType::Float64), zeros({3}), v}}); },
               {"power_iteration_many"});
  expect_error([&] { nn::spectral_normalized_weight(w, zeros({4}), zeros({3})); },
               {"spectral_normalized_weight", "u (3)"});
}

// CPU cost of spectral normalization in a DCGAN-sized discriminator (32x32 inputs, batch 64, 4x4 convs
// 3→64→128→256→1). Timing only: run with --gtest_also_run_disabled_tests. Plain and SN runs alternate and the
// minimum of each is reported, so load from other processes affects both alike; the SN-only work is also timed
// alone (it does not depend on the batch).
TEST(SpectralNorm, DISABLED_CpuOverheadDcganDiscriminator) {
  manual_seed(30);
  auto c1 = std::make_shared<nn::Conv2d>(3, 64, 4, 2, 1), c2 = std::make_shared<nn::Conv2d>(64, 128, 4, 2, 1);
  auto c3 = std::make_shared<nn::Conv2d>(128, 256, 4, 2, 1), c4 = std::make_shared<nn::Conv2d>(256, 1, 4, 1, 0);
  auto act = [] { return std::make_shared<nn::LeakyReLU>(0.2); };
  nn::Sequential plain{c1, act(), c2, act(), c3, act(), c4, std::make_shared<nn::Flatten>()};
  nn::Sequential sn{nn::spectral_norm(c1), act(), nn::spectral_norm(c2), act(), nn::spectral_norm(c3), act(),
                    nn::spectral_norm(c4), std::make_shared<nn::Flatten>()};
  std::vector<nn::SpectralNorm*> layers = nn::spectral_norm_layers(sn);
  Tensor x = randn({64, 3, 32, 32});
  auto ms = [](const std::function<void()>& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  // Minimum over reps of each function, the functions alternating within a rep.
  auto race = [&](const std::vector<std::function<void()>>& fs, int reps) {
    std::vector<double> best(fs.size(), 1e300);
    for (int r = 0; r < reps + 2; ++r)
      for (std::size_t k = 0; k < fs.size(); ++k) {
        double t = ms(fs[k]);
        if (r >= 2) best[k] = std::min(best[k], t);
      }
    return best;
  };
  auto fwd = [&](nn::Module& m) { return [&] { NoGradGuard ng; m.forward(x); }; };
  auto step = [&](nn::Module& m) { return [&] { m.zero_grad(); m.forward(x).sum().backward(); }; };
  std::vector<double> f = race({fwd(plain), fwd(sn)}, 10), s = race({step(plain), step(sn)}, 10);
  // The SN-only work of one training forward (power iteration + W/σ) and of its backward, for all four layers.
  std::vector<Tensor> gs;
  for (nn::SpectralNorm* l : layers) gs.push_back(randn(l->weight().shape()));
  std::vector<double> iso = race({[&] {
                                    NoGradGuard ng;
                                    for (nn::SpectralNorm* l : layers) {
                                      l->power_iterate(1);
                                      l->normalized_weight();
                                    }
                                  },
                                  [&] {
                                    for (std::size_t k = 0; k < layers.size(); ++k)
                                      sum(mul(layers[k]->normalized_weight(), gs[k])).backward();
                                  },
                                  [&] {
                                    for (nn::SpectralNorm* l : layers) l->power_iterate(1);
                                  },
                                  [&] { nn::spectral_norm_update_all(sn); }},
                                 30);
  std::printf("forward (no grad): plain %.2f ms, SN %.2f ms (+%.2f ms, %.1f%%)\n", f[0], f[1], f[1] - f[0],
              100 * (f[1] - f[0]) / f[0]);
  std::printf("forward+backward: plain %.2f ms, SN %.2f ms (+%.2f ms, %.1f%%)\n", s[0], s[1], s[1] - s[0],
              100 * (s[1] - s[0]) / s[0]);
  std::printf("SN work alone, 4 layers: forward %.3f ms (power iteration + W/sigma), W/sigma with its backward "
              "%.3f ms, power iterations %.3f ms, update_all %.3f ms\n",
              iso[0], iso[1], iso[2], iso[3]);
  std::printf("SN work as a share of the plain model: forward %.2f%%, training step %.2f%%\n", 100 * iso[0] / f[0],
              100 * (iso[0] + iso[1]) / s[0]);
}
