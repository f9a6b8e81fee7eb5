// FID on Fashion-MNIST: the Fréchet distance between Gaussians fitted to feature sets (float64, stable statistics,
// symmetric eigensolver) and its feature network, a small CNN classifier trained on Fashion-MNIST.
//
// This is FID on Fashion-MNIST classifier features, NOT on Inception features: numbers are comparable within nash
// and with other runs that use the same feature network file only (see docs/FID.md).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nash/core/tensor.h"
#include "nash/nn/layers.h"
#include "nash/nn/module.h"

namespace nash {
namespace metrics {

// ---- statistics ----------------------------------------------------------------------------------------------
// Mean and unbiased (n - 1) covariance of n feature vectors of dimension dim, in float64.
struct FeatureStats {
  int64_t n = 0;
  int64_t dim = 0;
  std::vector<double> mean;  // dim
  std::vector<double> cov;   // dim x dim, row-major, symmetric
};

// Accumulates feature statistics chunk by chunk: each chunk's mean and centred co-moment are computed about the
// chunk's own mean, then merged (Chan et al.'s parallel update), so large offsets and many samples lose no accuracy.
class FeatureAccumulator {
 public:
  explicit FeatureAccumulator(int64_t dim);
  // features: (B, dim), float32 or float64, any device (copied to the host).
  void add(const Tensor& features);
  int64_t count() const { return n_; }
  // The statistics so far; needs n >= dim + 1 (fewer samples than features + 1 is an error naming both numbers,
  // since the covariance would be rank-deficient by construction).
  FeatureStats stats() const;

 private:
  int64_t dim_, n_ = 0;
  std::vector<double> mean_, m2_;  // m2_: sum of outer products of deviations from the mean
};

// The statistics of features (N, dim) in one call.
FeatureStats feature_stats(const Tensor& features);

// Fréchet distance between N(m1, C1) and N(m2, C2):
//   ||m1 - m2||² + tr(C1) + tr(C2) - 2 tr((√C1 C2 √C1)^½),
// with √C1 from a symmetric eigendecomposition of C1 and the last trace as the sum of square roots of the
// eigenvalues of the symmetric √C1 C2 √C1, each clamped at 0: always a real number. Result clamped at 0.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// Intra-FID of a class-conditional generator (Miyato & Koyama 2018): the Fréchet distance between the real and the
// generated features of each class, and their mean over the classes. labels (N) hold class indices 0 … C-1 as float
// values (any device); every class needs more samples than features on both sides (an error names the class and
// the counts otherwise).
struct IntraFid {
  double mean = 0;
  std::vector<double> per_class;
};
// The real side's per-class statistics, computed once and scored against any number of generated sets.
std::vector<FeatureStats> class_feature_stats(const Tensor& features, const Tensor& labels, int64_t num_classes);
IntraFid intra_fid(const std::vector<FeatureStats>& real_by_class, const Tensor& fake_features,
                   const Tensor& fake_labels);

// ---- linear algebra (exposed for tests) ------------------------------------------------------------------------
// Eigen-decomposition of a symmetric n x n matrix a (row-major; its exactly symmetric part is used): eigenvalues
// ascending into *values, the matching orthonormal eigenvectors as the COLUMNS of *vectors (row-major n x n).
// Through LAPACK (linalg::symmetric_eigen) when nash has it, else by cyclic Jacobi rotations; FID's 256 x 256
// covariances take ~0.3 s by Jacobi, tens of milliseconds by LAPACK.
void symmetric_eigen(const std::vector<double>& a, int64_t n, std::vector<double>* values,
                     std::vector<double>* vectors);
// The Jacobi rotations alone (the fallback; exposed for tests).
void symmetric_eigen_jacobi(const std::vector<double>& a, int64_t n, std::vector<double>* values,
                            std::vector<double>* vectors);
// The symmetric PSD square root V diag(√max(λ, 0)) Vᵀ of a symmetric matrix.
std::vector<double> symmetric_sqrt(const std::vector<double>& a, int64_t n);
// tr((√A B √A)^½) for symmetric PSD A and B: the cross term of the Fréchet distance.
double trace_sqrt_product(const std::vector<double>& a, const std::vector<double>& b, int64_t n);

// ---- the feature network ---------------------------------------------------------------------------------------
// A small CNN for 28 x 28 Fashion-MNIST images in [-1, 1]: three blocks of 3x3 conv, batch norm, ReLU and 2x2
// average pooling (32, 64, 128 channels; 28 -> 14 -> 7 -> 3), then Linear(1152, feature_dim) + ReLU, whose output is
// the FID feature vector (the penultimate layer), then Linear(feature_dim, 10) to class logits. Average rather than
// max pooling: nash has an average-pooling kernel, and on 2 CPU cores a composed max pool cost more than the convs.
// 32 x 32 inputs (Fashion-MNIST padded by 2) are centre-cropped to 28 x 28 first.
class FeatureNet : public nn::Module {
 public:
  static constexpr int64_t kClasses = 10;
  static constexpr const char* kArchitecture = "nash-fmnist-cnn-v1";

  explicit FeatureNet(int64_t feature_dim = 256);
  Tensor forward(const Tensor& x) override;  // class logits (N, 10)
  Tensor features(const Tensor& x);          // (N, feature_dim)
  Tensor logits_from_features(const Tensor& f);  // the class logits of features(x): forward(x) without the trunk
  int64_t feature_dim() const { return feature_dim_; }

 private:
  Tensor trunk(const Tensor& x);  // the features, before the classifier head
  int64_t feature_dim_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<nn::Linear> fc_, head_;
};

// Saves the network (architecture, feature_dim and `extra` as metadata) as a nash safetensors checkpoint.
void save_feature_net(const std::string& path, FeatureNet& net, const std::map<std::string, std::string>& extra = {});
// Loads a network saved by save_feature_net, in eval mode, on `device`. Leaves nash's default generator as it was.
// Errors name the file: not a checkpoint, another architecture, missing or misshapen tensors.
std::shared_ptr<FeatureNet> load_feature_net(const std::string& path, Device device = Device::cpu(),
                                             std::map<std::string, std::string>* metadata = nullptr);

// Feature statistics of images (N, 1, 28|32, 28|32) in [-1, 1] (any device) through net in eval mode, batch by
// batch without recording gradients. Restores net's train/eval mode afterwards.
FeatureStats image_feature_stats(FeatureNet& net, const Tensor& images, int64_t batch = 500);
// The same, and the classifier score of the images (see below) into *score, from one pass of the network.
FeatureStats image_feature_stats(FeatureNet& net, const Tensor& images, double* score, int64_t batch = 500);
// The features (N, feature_dim) of images (N, 1, 28|32, 28|32) through net in eval mode, on net's device (for
// metrics::manifold_scores). Restores net's train/eval mode afterwards.
Tensor image_features(FeatureNet& net, const Tensor& images, int64_t batch = 500);
// FID between two image sets under net.
double fid(FeatureNet& net, const Tensor& images_a, const Tensor& images_b, int64_t batch = 500);

// The Inception-score formula exp(E_x KL(p(y|x) || p(y))) on the Fashion-MNIST classifier's class probabilities
// (p(y) the mean of p(y|x) over the set): between 1 and 10, higher when samples are confidently classified and
// spread over the classes. NOT an Inception score: comparable within nash and with the same classifier file only.
// Accumulated in float64 batch by batch from logits (B, classes) on any device.
class ClassifierScoreAccumulator {
 public:
  explicit ClassifierScoreAccumulator(int64_t classes = FeatureNet::kClasses);
  void add(const Tensor& logits);
  int64_t count() const { return n_; }
  double score() const;  // needs at least one sample

 private:
  int64_t classes_, n_ = 0;
  double sum_plogp_ = 0;      // Σ_x Σ_y p log p
  std::vector<double> sum_p_; // Σ_x p(y|x), per class
};

// The classifier score of images (N, 1, 28|32, 28|32) in [-1, 1] under net (eval mode, no gradients).
double classifier_score(FeatureNet& net, const Tensor& images, int64_t batch = 500);

// Top-1 accuracy of net's logits on images/labels (in eval mode).
double classifier_accuracy(FeatureNet& net, const Tensor& images, const Tensor& labels, int64_t batch = 500);

}  // namespace metrics
}  // namespace nash
