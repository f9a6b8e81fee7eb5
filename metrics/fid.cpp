// FID: chunk-merged float64 feature statistics, a cyclic Jacobi eigensolver, the Fréchet distance, and the
// Fashion-MNIST CNN whose penultimate layer supplies the features.
#include "nash/metrics/fid.h"

#include "nash/linalg/svd.h"

#include <algorithm>
#include <cmath>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/io/safetensors.h"
#include "nash/nn/checkpoint.h"

namespace nash {
namespace metrics {

// ---- statistics ----------------------------------------------------------------------------------------------
FeatureAccumulator::FeatureAccumulator(int64_t dim) : dim_(dim) {
  NASH_CHECK(dim >= 1, "FeatureAccumulator: dim must be >= 1, got ", dim);
  mean_.assign(static_cast<std::size_t>(dim), 0.0);
  m2_.assign(static_cast<std::size_t>(dim * dim), 0.0);
}

void FeatureAccumulator::add(const Tensor& features) {
  NASH_CHECK(features.defined() && features.dim() == 2 && features.size(1) == dim_,
             "FeatureAccumulator::add: expected features (B, ", dim_, "), got ",
             shape_str(features));
  const int64_t b = features.size(0), d = dim_;
  if (b == 0) return;
  std::vector<double> x = features.to(Device::cpu()).contiguous().to_vector<double>();
  for (double v : x) NASH_CHECK(std::isfinite(v), "FeatureAccumulator::add: features hold a non-finite value");
  // The chunk's own mean, then its co-moment about that mean: no large offset ever enters a sum of squares.
  std::vector<double> mc(static_cast<std::size_t>(d), 0.0);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < d; ++j) mc[j] += x[i * d + j];
  for (double& v : mc) v /= static_cast<double>(b);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < d; ++j) x[i * d + j] -= mc[j];
  std::vector<double> m2c(static_cast<std::size_t>(d * d), 0.0);
  for (int64_t i = 0; i < b; ++i) {
    const double* r = &x[i * d];
    for (int64_t j = 0; j < d; ++j) {
      const double rj = r[j];
      double* row = &m2c[j * d];
      for (int64_t k = j; k < d; ++k) row[k] += rj * r[k];  // upper triangle; mirrored in stats()
    }
  }
  // Chan et al.: merge (n, mean, M2) with (b, mc, m2c).
  const double na = static_cast<double>(n_), nb = static_cast<double>(b), nt = na + nb;
  std::vector<double> delta(static_cast<std::size_t>(d));
  for (int64_t j = 0; j < d; ++j) delta[j] = mc[j] - mean_[j];
  const double w = na * nb / nt;
  for (int64_t j = 0; j < d; ++j)
    for (int64_t k = j; k < d; ++k) m2_[j * d + k] += m2c[j * d + k] + w * delta[j] * delta[k];
  for (int64_t j = 0; j < d; ++j) mean_[j] += delta[j] * nb / nt;
  n_ += b;
}

FeatureStats FeatureAccumulator::stats() const {
  NASH_CHECK(n_ >= dim_ + 1, "FID: ", n_, " samples are too few for ", dim_, " features: the covariance needs at "
             "least features + 1 = ", dim_ + 1, " samples (use more samples or a smaller feature dimension)");
  FeatureStats s;
  s.n = n_;
  s.dim = dim_;
  s.mean = mean_;
  s.cov.assign(m2_.size(), 0.0);
  const double inv = 1.0 / static_cast<double>(n_ - 1);
  for (int64_t j = 0; j < dim_; ++j)
    for (int64_t k = j; k < dim_; ++k) s.cov[j * dim_ + k] = s.cov[k * dim_ + j] = m2_[j * dim_ + k] * inv;
  return s;
}

FeatureStats feature_stats(const Tensor& features) {
  NASH_CHECK(features.defined() && features.dim() == 2, "feature_stats: expected features (N, D), got ",
             shape_str(features));
  FeatureAccumulator acc(features.size(1));
  const int64_t chunk = 1024;
  for (int64_t i = 0; i < features.size(0); i += chunk)
    acc.add(features.narrow(0, i, std::min(chunk, features.size(0) - i)));
  return acc.stats();
}

std::vector<FeatureStats> class_feature_stats(const Tensor& features, const Tensor& labels, int64_t num_classes) {
  NASH_CHECK(features.defined() && features.dim() == 2, "class_feature_stats: expected features (N, D), got ",
             shape_str(features));
  NASH_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == features.size(0),
             "class_feature_stats: expected labels (", features.size(0), "), got ",
             shape_str(labels));
  NASH_CHECK(num_classes >= 1, "class_feature_stats: num_classes must be >= 1, got ", num_classes);
  const std::vector<double> y = labels.to_vector<double>();
  std::vector<std::vector<float>> rows(static_cast<std::size_t>(num_classes));
  const Tensor f = features.detach().to(Device::cpu()).to(DType::Float32).contiguous();
  const float* p = f.data_ptr<float>();
  const int64_t d = features.size(1);
  for (std::size_t i = 0; i < y.size(); ++i) {
    NASH_CHECK(std::floor(y[i]) == y[i] && y[i] >= 0 && y[i] < static_cast<double>(num_classes),
               "class_feature_stats: label ", i, " is ", y[i], ", expected an integer in [0, ", num_classes, ")");
    std::vector<float>& r = rows[static_cast<std::size_t>(y[i])];
    r.insert(r.end(), p + static_cast<int64_t>(i) * d, p + static_cast<int64_t>(i + 1) * d);
  }
  std::vector<FeatureStats> out;
  for (int64_t c = 0; c < num_classes; ++c) {
    const std::vector<float>& r = rows[static_cast<std::size_t>(c)];
    const int64_t n = static_cast<int64_t>(r.size()) / d;
    NASH_CHECK(n > d, "class_feature_stats: class ", c, " has ", n, " samples, its covariance needs more than the ",
               d, " features");
    out.push_back(feature_stats(from_vector(r, {n, d})));
  }
  return out;
}

IntraFid intra_fid(const std::vector<FeatureStats>& real_by_class, const Tensor& fake_features,
                   const Tensor& fake_labels) {
  NASH_CHECK(!real_by_class.empty(), "intra_fid: no real class statistics");
  const std::vector<FeatureStats> fake =
      class_feature_stats(fake_features, fake_labels, static_cast<int64_t>(real_by_class.size()));
  IntraFid r;
  for (std::size_t c = 0; c < fake.size(); ++c) {
    r.per_class.push_back(frechet_distance(real_by_class[c], fake[c]));
    r.mean += r.per_class.back();
  }
  r.mean /= static_cast<double>(r.per_class.size());
  return r;
}

// ---- linear algebra ------------------------------------------------------------------------------------------
namespace {
using Mat = std::vector<double>;

void check_square(const char* op, const Mat& a, int64_t n) {
  NASH_CHECK(n >= 1 && a.size() == static_cast<std::size_t>(n * n), op, ": expected a ", n, " x ", n,
             " matrix (", n * n, " values), got ", a.size(), " values");
  for (double v : a) NASH_CHECK(std::isfinite(v), op, ": the matrix holds a non-finite value");
}

Mat matmul_nn(const Mat& a, const Mat& b, int64_t n) {
  Mat c(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k) {
      const double aik = a[i * n + k];
      const double* bk = &b[k * n];
      double* ci = &c[i * n];
      for (int64_t j = 0; j < n; ++j) ci[j] += aik * bk[j];
    }
  return c;
}
}  // namespace

void symmetric_eigen(const std::vector<double>& input, int64_t n, std::vector<double>* values,
                     std::vector<double>* vectors) {
  check_square("symmetric_eigen", input, n);
  NASH_CHECK(values && vectors, "symmetric_eigen: null output");
  if (!linalg::lapack_available()) return symmetric_eigen_jacobi(input, n, values, vectors);
  Mat a(input.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[i * n + j] = 0.5 * (input[i * n + j] + input[j * n + i]);
  linalg::symmetric_eigen(a, n, values, vectors);
}

void symmetric_eigen_jacobi(const std::vector<double>& input, int64_t n, std::vector<double>* values,
                            std::vector<double>* vectors) {
  check_square("symmetric_eigen", input, n);
  NASH_CHECK(values && vectors, "symmetric_eigen: null output");
  // Work on the exactly symmetric part so rounding asymmetry in the input cannot bias the result.
  Mat a(input.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[i * n + j] = 0.5 * (input[i * n + j] + input[j * n + i]);
  Mat vt(static_cast<std::size_t>(n * n), 0.0);  // rows are the eigenvectors, so rotations touch contiguous rows
  for (int64_t i = 0; i < n; ++i) vt[i * n + i] = 1.0;

  double frob = 0;
  for (double v : a) frob += v * v;
  const int kMaxSweeps = 100;
  int sweep = 0;
  double last_off = 0;
  for (; sweep < kMaxSweeps; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * frob || off == 0) break;
    // Jacobi converges quadratically; once a sweep stops shrinking what is left, that is rounding noise.
    if (sweep >= 8 && off <= 1e-20 * frob && off > 0.25 * last_off) break;
    last_off = off;
    for (int64_t p = 0; p < n - 1; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        const double app = a[p * n + p], aqq = a[q * n + q];
        // Past the first sweeps, an element far below both diagonal entries is already zero in working precision.
        if (std::fabs(apq) <= 1e-18 * std::sqrt(std::fabs(app * aqq)) || apq == 0.0) {
          a[p * n + q] = a[q * n + p] = 0.0;
          continue;
        }
        // The rotation angle that zeroes a_pq, by its tangent's smaller root (stable for all angles).
        const double tau = (aqq - app) / (2.0 * apq);
        const double t = (tau >= 0 ? 1.0 : -1.0) / (std::fabs(tau) + std::sqrt(1.0 + tau * tau));
        const double c = 1.0 / std::sqrt(1.0 + t * t), s = t * c;
        double* rp = &a[p * n];
        double* rq = &a[q * n];
        for (int64_t k = 0; k < n; ++k) {
          if (k == p || k == q) continue;
          const double x = rp[k], y = rq[k];
          rp[k] = c * x - s * y;
          rq[k] = s * x + c * y;
          a[k * n + p] = rp[k];
          a[k * n + q] = rq[k];
        }
        rp[p] = app - t * apq;
        rq[q] = aqq + t * apq;
        rp[q] = rq[p] = 0.0;
        double* vp = &vt[p * n];
        double* vq = &vt[q * n];
        for (int64_t k = 0; k < n; ++k) {
          const double x = vp[k], y = vq[k];
          vp[k] = c * x - s * y;
          vq[k] = s * x + c * y;
        }
      }
  }
  NASH_CHECK(sweep < kMaxSweeps, "symmetric_eigen: Jacobi did not converge in ", kMaxSweeps, " sweeps (n = ", n, ")");

  std::vector<int64_t> order(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return a[x * n + x] < a[y * n + y]; });
  values->resize(static_cast<std::size_t>(n));
  vectors->assign(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t src = order[j];
    (*values)[j] = a[src * n + src];
    for (int64_t i = 0; i < n; ++i) (*vectors)[i * n + j] = vt[src * n + i];
  }
}

std::vector<double> symmetric_sqrt(const std::vector<double>& a, int64_t n) {
  std::vector<double> lam, v;
  symmetric_eigen(a, n, &lam, &v);
  Mat out(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t k = 0; k < n; ++k) {
    const double r = std::sqrt(std::max(lam[k], 0.0));
    if (r == 0.0) continue;
    for (int64_t i = 0; i < n; ++i) {
      const double vik = v[i * n + k] * r;
      for (int64_t j = 0; j < n; ++j) out[i * n + j] += vik * v[j * n + k];
    }
  }
  return out;
}

double trace_sqrt_product(const std::vector<double>& a, const std::vector<double>& b, int64_t n) {
  check_square("trace_sqrt_product", a, n);
  check_square("trace_sqrt_product", b, n);
  // √A B √A is symmetric PSD and similar to A B, so its eigenvalues are those of A B, all real and >= 0;
  // rounding can push tiny ones below 0, which the clamp removes.
  Mat s = symmetric_sqrt(a, n);
  Mat m = matmul_nn(matmul_nn(s, b, n), s, n);
  std::vector<double> lam, v;
  symmetric_eigen(m, n, &lam, &v);
  double tr = 0;
  for (double l : lam) tr += std::sqrt(std::max(l, 0.0));
  return tr;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  NASH_CHECK(a.dim == b.dim && a.dim >= 1, "frechet_distance: feature dimensions differ (", a.dim, " vs ", b.dim, ")");
  const int64_t d = a.dim;
  NASH_CHECK(a.mean.size() == static_cast<std::size_t>(d) && b.mean.size() == static_cast<std::size_t>(d) &&
                 a.cov.size() == static_cast<std::size_t>(d * d) && b.cov.size() == static_cast<std::size_t>(d * d),
             "frechet_distance: statistics of dimension ", d, " need means of ", d, " and covariances of ", d * d,
             " values");
  double dm = 0, tr = 0;
  for (int64_t i = 0; i < d; ++i) {
    dm += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);
    tr += a.cov[i * d + i] + b.cov[i * d + i];
  }
  const double fd = dm + tr - 2.0 * trace_sqrt_product(a.cov, b.cov, d);
  return std::max(fd, 0.0);
}

// ---- the feature network -------------------------------------------------------------------------------------
FeatureNet::FeatureNet(int64_t feature_dim) : Module("FeatureNet"), feature_dim_(feature_dim) {
  NASH_CHECK(feature_dim >= 1, "FeatureNet: feature_dim must be >= 1, got ", feature_dim);
  // Convolutions feed batch norm, whose shift makes a conv bias redundant.
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(1, 32, 3, 1, 1, false));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(32));
  conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(32, 64, 3, 1, 1, false));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(64));
  conv3_ = register_module("conv3", std::make_shared<nn::Conv2d>(64, 128, 3, 1, 1, false));
  bn3_ = register_module("bn3", std::make_shared<nn::BatchNorm2d>(128));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(128 * 3 * 3, feature_dim));
  head_ = register_module("head", std::make_shared<nn::Linear>(feature_dim, kClasses));
}

Tensor FeatureNet::trunk(const Tensor& x) {
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 1 &&
                 ((x.size(2) == 28 && x.size(3) == 28) || (x.size(2) == 32 && x.size(3) == 32)),
             "FeatureNet: expected images (N, 1, 28, 28) or (N, 1, 32, 32), got ",
             shape_str(x));
  Tensor h = x.size(2) == 32 ? x.narrow(2, 2, 28).narrow(3, 2, 28) : x;
  h = avg_pool2d(relu(bn1_->forward(conv1_->forward(h))), 2);  // 14 x 14
  h = avg_pool2d(relu(bn2_->forward(conv2_->forward(h))), 2);  // 7 x 7
  h = avg_pool2d(relu(bn3_->forward(conv3_->forward(h))), 2);  // 3 x 3 (the last row and column are dropped)
  return relu(fc_->forward(h.flatten(1)));
}

Tensor FeatureNet::features(const Tensor& x) { return trunk(x); }
Tensor FeatureNet::forward(const Tensor& x) { return head_->forward(trunk(x)); }
Tensor FeatureNet::logits_from_features(const Tensor& f) { return head_->forward(f); }

ClassifierScoreAccumulator::ClassifierScoreAccumulator(int64_t classes)
    : classes_(classes), sum_p_(static_cast<std::size_t>(classes), 0.0) {
  NASH_CHECK(classes >= 2, "ClassifierScoreAccumulator: needs >= 2 classes, got ", classes);
}

void ClassifierScoreAccumulator::add(const Tensor& logits) {
  NASH_CHECK(logits.defined() && logits.dim() == 2 && logits.size(1) == classes_,
             "ClassifierScoreAccumulator: expected logits (B, ", classes_, "), got ",
             shape_str(logits));
  const std::vector<double> z = logits.detach().to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>();
  const int64_t b = logits.size(0);
  std::vector<double> p(static_cast<std::size_t>(classes_));
  for (int64_t i = 0; i < b; ++i) {
    const double* row = z.data() + i * classes_;
    double mx = row[0];
    for (int64_t c = 1; c < classes_; ++c) mx = std::max(mx, row[c]);
    double s = 0;
    for (int64_t c = 0; c < classes_; ++c) s += (p[c] = std::exp(row[c] - mx));
    NASH_CHECK(std::isfinite(s), "ClassifierScoreAccumulator: non-finite logits in row ", n_ + i);
    for (int64_t c = 0; c < classes_; ++c) {
      p[c] /= s;
      sum_p_[c] += p[c];
      if (p[c] > 0) sum_plogp_ += p[c] * std::log(p[c]);
    }
  }
  n_ += b;
}

double ClassifierScoreAccumulator::score() const {
  NASH_CHECK(n_ >= 1, "ClassifierScoreAccumulator: no samples");
  const double n = static_cast<double>(n_);
  double marginal = 0;  // Σ_y p̄ log p̄
  for (double sp : sum_p_) {
    const double pb = sp / n;
    if (pb > 0) marginal += pb * std::log(pb);
  }
  return std::exp(std::max(0.0, sum_plogp_ / n - marginal));
}

double classifier_score(FeatureNet& net, const Tensor& images, int64_t batch) {
  NASH_CHECK(images.defined() && images.dim() == 4 && images.size(0) >= 1, "classifier_score: expected images "
             "(N, 1, H, W), got ", shape_str(images));
  NASH_CHECK(batch >= 1, "classifier_score: batch must be >= 1, got ", batch);
  NoGradGuard ng;
  const bool was_training = net.is_training();
  net.eval();
  ClassifierScoreAccumulator acc;
  for (int64_t i = 0; i < images.size(0); i += batch)
    acc.add(net.forward(images.narrow(0, i, std::min(batch, images.size(0) - i))));
  net.train(was_training);
  return acc.score();
}

void save_feature_net(const std::string& path, FeatureNet& net, const std::map<std::string, std::string>& extra) {
  nn::Checkpoint ck;
  ck.modules = {{"net", &net}};
  ck.metadata = extra;
  ck.metadata["architecture"] = FeatureNet::kArchitecture;
  ck.metadata["feature_dim"] = std::to_string(net.feature_dim());
  nn::save_checkpoint(path, ck);
}

std::shared_ptr<FeatureNet> load_feature_net(const std::string& path, Device device,
                                             std::map<std::string, std::string>* metadata) {
  io::SafetensorsFile f = io::load_safetensors(path);
  auto arch = f.metadata.find("architecture");
  NASH_CHECK(arch != f.metadata.end() && arch->second == FeatureNet::kArchitecture, "FID feature network '", path,
             "': expected architecture ", FeatureNet::kArchitecture, ", found ",
             arch == f.metadata.end() ? std::string("none (not saved by `nash classifier`?)") : arch->second);
  auto fd = f.metadata.find("feature_dim");
  NASH_CHECK(fd != f.metadata.end() && !fd->second.empty() &&
                 fd->second.find_first_not_of("0123456789") == std::string::npos && fd->second.size() < 7,
             "FID feature network '", path, "': missing or bad feature_dim metadata");
  // Building the network draws its initial weights from the default generator; loading a metric's network must not
  // disturb the random stream of the run that evaluates it, so the draw is undone and the checkpoint's generator
  // state is not restored.
  Generator& g = default_generator();
  const uint64_t seed = g.seed(), offset = g.offset();
  auto net = std::make_shared<FeatureNet>(std::stoll(fd->second));
  g.set_seed(seed);
  g.set_offset(offset);
  nn::Checkpoint ck;
  ck.modules = {{"net", net.get()}};
  ck.restore_rng = false;
  nn::load_checkpoint(path, ck);
  net->to(device);
  net->eval();
  if (metadata) *metadata = ck.metadata;
  return net;
}

namespace {
Device net_device(FeatureNet& net) {
  std::vector<Tensor> p = net.parameters();
  return p.empty() ? Device::cpu() : p.front().device();
}

// Runs fn(batch_images, start) over images in batches, in eval mode without history, restoring the mode after.
template <class F>
void for_batches(FeatureNet& net, const Tensor& images, int64_t batch, const char* op, F fn) {
  NASH_CHECK(images.defined() && images.dim() == 4, op, ": expected images (N, 1, H, W), got ",
             shape_str(images));
  NASH_CHECK(batch >= 1, op, ": batch must be >= 1, got ", batch);
  const bool was_training = net.is_training();
  net.eval();
  NoGradGuard ng;
  const Device dev = net_device(net);
  try {
    for (int64_t i = 0; i < images.size(0); i += batch) {
      Tensor x = images.narrow(0, i, std::min(batch, images.size(0) - i));
      if (x.dtype() != DType::Float32) x = x.to(DType::Float32);
      if (x.device() != dev) x = x.to(dev);
      fn(x, i);
    }
  } catch (...) {
    net.train(was_training);
    throw;
  }
  net.train(was_training);
}
}  // namespace

FeatureStats image_feature_stats(FeatureNet& net, const Tensor& images, int64_t batch) {
  FeatureAccumulator acc(net.feature_dim());
  for_batches(net, images, batch, "image_feature_stats", [&](const Tensor& x, int64_t) { acc.add(net.features(x)); });
  return acc.stats();
}

FeatureStats image_feature_stats(FeatureNet& net, const Tensor& images, double* score, int64_t batch) {
  NASH_CHECK(score != nullptr, "image_feature_stats: score is null");
  FeatureAccumulator acc(net.feature_dim());
  ClassifierScoreAccumulator cs;
  for_batches(net, images, batch, "image_feature_stats", [&](const Tensor& x, int64_t) {
    const Tensor f = net.features(x);
    acc.add(f);
    cs.add(net.logits_from_features(f));
  });
  *score = cs.score();
  return acc.stats();
}

Tensor image_features(FeatureNet& net, const Tensor& images, int64_t batch) {
  std::vector<Tensor> parts;
  for_batches(net, images, batch, "image_features", [&](const Tensor& x, int64_t) { parts.push_back(net.features(x)); });
  NASH_CHECK(!parts.empty(), "image_features: no images");
  return parts.size() == 1 ? parts[0] : cat(parts, 0);
}

double fid(FeatureNet& net, const Tensor& images_a, const Tensor& images_b, int64_t batch) {
  return frechet_distance(image_feature_stats(net, images_a, batch), image_feature_stats(net, images_b, batch));
}

double classifier_accuracy(FeatureNet& net, const Tensor& images, const Tensor& labels, int64_t batch) {
  NASH_CHECK(labels.defined() && labels.dim() == 1 && images.defined() && labels.size(0) == images.size(0),
             "classifier_accuracy: expected labels (N) for images (N, ...)");
  std::vector<float> y = labels.to(Device::cpu()).contiguous().to_vector<float>();
  int64_t correct = 0;
  for_batches(net, images, batch, "classifier_accuracy", [&](const Tensor& x, int64_t start) {
    std::vector<float> pred = argmax(net.forward(x), 1).to(Device::cpu()).contiguous().to_vector<float>();
    for (std::size_t k = 0; k < pred.size(); ++k) correct += pred[k] == y[static_cast<std::size_t>(start) + k];
  });
  return images.size(0) ? static_cast<double>(correct) / static_cast<double>(images.size(0)) : 0.0;
}

}  // namespace metrics
}  // namespace nash
