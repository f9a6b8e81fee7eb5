// Class-conditional GANs: networks that take class labels beside their input. G: DCGAN's generator with the class
// appended to its latent and class-conditional batch norm (each class its own gain and bias after a shared
// normalization, as in the conditional generators of Miyato & Koyama 2018 and BigGAN). D: a projection
// discriminator (Miyato & Koyama 2018, "cGANs with projection discriminator"): D(x, y) = ψ(φ(x)) + ⟨E y, Σ_hw φ(x)⟩,
// the inner product of a class embedding with D's pooled last features added to the unconditional score.
//
// Labels are (N) class indices stored as float values 0 … C-1 (as data::Batch and randint give them), on any
// device. Class embeddings are bias-free Linear layers applied to one-hot rows, so spectral normalization, the
// optimizers, checkpoints and every backend treat them like any other weight.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nash/nn/layers.h"
#include "nash/nn/models.h"

namespace nash {
namespace nn {

// (N) labels -> (N, num_classes) one-hot rows with like's dtype and device (no history). Errors name a label that is
// not an integer in [0, num_classes).
Tensor class_one_hot(const Tensor& labels, int64_t num_classes, const Tensor& like);

// A network of (input, labels). forward(x) alone is an error naming the module (it needs labels).
class ConditionalModule : public Module {
 public:
  ConditionalModule(std::string name, int64_t num_classes);
  Tensor forward(const Tensor& x) override;
  virtual Tensor forward(const Tensor& x, const Tensor& labels) = 0;
  int64_t num_classes() const { return num_classes_; }

 protected:
  // x's batch size against the labels' shape and values; the one-hot rows for them.
  Tensor one_hot_for(const Tensor& x, const Tensor& labels, const Tensor& like) const;

 private:
  int64_t num_classes_;
};

// A layer that can take the one-hot class rows beside its input (a conditional batch norm, a conditional residual
// block). ConditionalChain hands them the rows when takes_classes() says so.
class ClassInput {
 public:
  virtual ~ClassInput() = default;
  virtual bool takes_classes() const { return true; }
  // onehot: (N, num_classes) rows of class_one_hot for x's N samples.
  virtual Tensor forward_with_classes(const Tensor& x, const Tensor& onehot) = 0;
};

// A generator built as a chain of layers (children "0", "1", ...) told the class twice: its one-hot row is appended
// to z before the first layer, and every layer that takes classes (ClassInput) gets the rows.
// forward(z, labels): z (N, z_dim) or (N, z_dim, 1, 1), labels (N) class indices.
class ConditionalChain : public ConditionalModule {
 public:
  using ConditionalModule::forward;
  Tensor forward(const Tensor& z, const Tensor& labels) override;
  int64_t z_dim() const { return z_dim_; }

 protected:
  ConditionalChain(std::string name, int64_t num_classes, int64_t z_dim);
  void add_layer(ModulePtr m);  // registers m as the next child

 private:
  std::vector<ModulePtr> layers_;
  int64_t z_dim_ = 0;
};

// Batch norm without its own affine, then per-class gain and bias: y = BN(x) * (onehot Gᵀ) + onehot Bᵀ per channel.
// Children "bn" (BatchNorm2d, affine off; its running statistics are shared by all classes), "gain" and "bias"
// (Linear num_classes -> channels, no bias; gains start at 1, biases at 0).
class ConditionalBatchNorm2d : public Module, public ClassInput {
 public:
  ConditionalBatchNorm2d(int64_t channels, int64_t num_classes, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;  // an error: needs the one-hot rows
  // onehot: (N, num_classes) rows of class_one_hot, x: (N, channels, H, W).
  Tensor forward(const Tensor& x, const Tensor& onehot);
  Tensor forward_with_classes(const Tensor& x, const Tensor& onehot) override { return forward(x, onehot); }
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Linear> gain, bias;
};

// DCGAN's generator (nn::dcgan_generator: the same layers, names and initialisation) told the class twice: its
// one-hot row is appended to z (the first transposed conv takes z_dim + num_classes inputs, as in conditional
// DCGANs), and every batch norm is class-conditional (each class's gains start as DCGAN initialises a batch norm's
// weight, N(1, 0.02)). On Fashion-MNIST-like data the input path makes G follow the class within a few hundred steps;
// through the batch norms alone it took thousands.
// forward(z, labels): z (N, z_dim) or (N, z_dim, 1, 1) -> (N, channels, size, size) in [-1, 1].
// Children "0", "1", ... as in dcgan_generator.
class ConditionalGenerator : public ConditionalChain {
 public:
  ConditionalGenerator(const DcganOptions& o, int64_t num_classes);
};

// The projection discriminator around an unconditional D of one of two shapes:
// - DCGAN's: D ends in its output conv (Conv2d, or one wrapped in spectral or weight norm, one output channel) and a
//   Flatten, as every nn D of DCGAN's shape ends. φ(x) is the output conv's input, pooled by its sum over positions
//   for the projection; the embedding starts N(0, 0.02), as DCGAN initialises D's weights.
// - A pooled critic's (nn::resnet_discriminator): D ends in a linear layer (Linear, or wrapped; one output) on a
//   (N, F) feature vector, as SN-GAN's conditional ResNet D; φ(x) is that vector; the embedding starts
//   Glorot-uniform, as the critic's linear layer.
// Children: "body" (the layers before the output layer: φ), "head" (the output layer: ψ) and "embed" (Linear
// num_classes -> φ's features, no bias; spectral-normalized when `spectral`, as SN-GAN's projection D normalizes its
// embedding). forward(x, labels) -> (N, 1) scores.
class ProjectionDiscriminator : public ConditionalModule {
 public:
  ProjectionDiscriminator(const std::shared_ptr<Sequential>& d, int64_t num_classes, bool spectral);
  using ConditionalModule::forward;
  Tensor forward(const Tensor& x, const Tensor& labels) override;
  int64_t features() const { return features_; }
  bool pooled() const { return pooled_; }  // D's shape: a linear layer on pooled features (else DCGAN's conv head)

 private:
  std::shared_ptr<Sequential> body_;
  ModulePtr head_, embed_;
  int64_t features_ = 0;
  bool pooled_ = false;
};

}  // namespace nn
}  // namespace nash
