// Class-conditional G (conditional batch norm) and the projection discriminator.
#include "nash/nn/conditional.h"

#include <string>
#include <utility>

#include "nash/core/ops.h"
#include "nash/nn/init.h"
#include "nash/nn/spectral_norm.h"

namespace nash {
namespace nn {

Tensor class_one_hot(const Tensor& labels, int64_t num_classes, const Tensor& like) {
  NASH_CHECK(labels.defined() && labels.dim() == 1, "class_one_hot: labels must be a 1-D tensor (N) of class "
             "indices, got ", shape_str(labels));
  NASH_CHECK(like.defined(), "class_one_hot: `like` is undefined");
  return one_hot(labels.detach(), num_classes).to(like.dtype()).to(like.device());
}

ConditionalModule::ConditionalModule(std::string name, int64_t num_classes)
    : Module(std::move(name)), num_classes_(num_classes) {
  NASH_CHECK(num_classes >= 1, type_name(), ": num_classes must be >= 1, got ", num_classes);
}

Tensor ConditionalModule::forward(const Tensor&) {
  detail::fail(type_name(), ".forward: a class-conditional network needs the labels: call forward(x, labels)");
}

Tensor ConditionalModule::one_hot_for(const Tensor& x, const Tensor& labels, const Tensor& like) const {
  NASH_CHECK(x.defined() && x.dim() >= 1, type_name(), ".forward: the input is undefined or 0-d");
  NASH_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == x.size(0), type_name(),
             ".forward: labels must be (N) = (", x.size(0), ") for an input ", shape_str(x.shape()), ", got ",
             shape_str(labels));
  return class_one_hot(labels, num_classes_, like);
}

ConditionalBatchNorm2d::ConditionalBatchNorm2d(int64_t channels, int64_t num_classes, double eps, double momentum)
    : Module("ConditionalBatchNorm2d") {
  NASH_CHECK(channels >= 1 && num_classes >= 1, "ConditionalBatchNorm2d: channels and num_classes must be >= 1, got ",
             channels, " and ", num_classes);
  bn = register_module("bn", std::make_shared<BatchNorm2d>(channels, eps, momentum, /*affine=*/false));
  gain = register_module("gain", std::make_shared<Linear>(num_classes, channels, false));
  bias = register_module("bias", std::make_shared<Linear>(num_classes, channels, false));
  init::ones_(gain->weight);
  init::zeros_(bias->weight);
}

Tensor ConditionalBatchNorm2d::forward(const Tensor&) {
  detail::fail("ConditionalBatchNorm2d.forward: needs the one-hot class rows: call forward(x, onehot)");
}

Tensor ConditionalBatchNorm2d::forward(const Tensor& x, const Tensor& onehot) {
  const int64_t c = bn->running_mean.size(0), k = gain->weight.size(1);
  NASH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == c, "ConditionalBatchNorm2d: expected x (N, ", c,
             ", H, W), got ", shape_str(x));
  NASH_CHECK(onehot.defined() && onehot.dim() == 2 && onehot.size(0) == x.size(0) && onehot.size(1) == k,
             "ConditionalBatchNorm2d: expected one-hot rows (", x.size(0), ", ", k, "), got ",
             shape_str(onehot));
  const Shape per_channel = {x.size(0), c, 1, 1};
  return add(mul(bn->forward(x), gain->forward(onehot).reshape(per_channel)),
             bias->forward(onehot).reshape(per_channel));
}

ConditionalChain::ConditionalChain(std::string name, int64_t num_classes, int64_t z_dim)
    : ConditionalModule(std::move(name), num_classes), z_dim_(z_dim) {
  NASH_CHECK(z_dim > 0, type_name(), ": z_dim must be > 0, got ", z_dim);
}

void ConditionalChain::add_layer(ModulePtr m) {
  layers_.push_back(register_module(std::to_string(layers_.size()), std::move(m)));
}

Tensor ConditionalChain::forward(const Tensor& z, const Tensor& labels) {
  NASH_CHECK(z.defined() && (z.dim() == 2 || z.dim() == 4) && z.numel() == z.size(0) * z_dim_, type_name(),
             ": expected z (N, ", z_dim_, ") or (N, ", z_dim_, ", 1, 1), got ", shape_str(z));
  const Tensor oh = one_hot_for(z, labels, parameters().front());
  Tensor x = cat({z.reshape({z.size(0), z_dim_}), oh}, 1);
  for (const ModulePtr& m : layers_) {
    auto* c = dynamic_cast<ClassInput*>(m.get());
    x = c && c->takes_classes() ? c->forward_with_classes(x, oh) : m->forward(x);
  }
  return x;
}

ConditionalGenerator::ConditionalGenerator(const DcganOptions& o, int64_t num_classes)
    : ConditionalChain("ConditionalGenerator", num_classes, o.z_dim) {
  DcganOptions wide = o;
  wide.z_dim = o.z_dim + num_classes;
  std::shared_ptr<Sequential> base = dcgan_generator(wide);
  for (std::size_t i = 0; i < base->size(); ++i) {
    ModulePtr m = (*base)[i];
    if (auto* b = dynamic_cast<BatchNorm2d*>(m.get())) {
      auto cbn = std::make_shared<ConditionalBatchNorm2d>(b->running_mean.size(0), num_classes, b->eps, b->momentum);
      init::normal_(cbn->gain->weight, 1.0, 0.02);  // DCGAN's batch-norm weight, per class
      m = cbn;
    }
    add_layer(m);
  }
}

ProjectionDiscriminator::ProjectionDiscriminator(const std::shared_ptr<Sequential>& d, int64_t num_classes,
                                                 bool spectral)
    : ConditionalModule("ProjectionDiscriminator", num_classes) {
  NASH_CHECK(d != nullptr && d->size() >= 2, "ProjectionDiscriminator: D must have at least 2 layers (body, output "
             "layer), got ", d ? d->size() : 0);
  const std::size_t n = d->size();
  pooled_ = dynamic_cast<Flatten*>((*d)[n - 1].get()) == nullptr;
  NASH_CHECK(pooled_ || n >= 3, "ProjectionDiscriminator: D must have at least 3 layers (body, output conv, "
             "Flatten), got ", n);
  head_ = (*d)[pooled_ ? n - 1 : n - 2];
  const int64_t weight_dim = pooled_ ? 2 : 4;
  // The layer's own weight ("weight", or "module.weight" under spectral or weight norm; not weight norm's gain).
  for (const auto& [name, p] : head_->named_parameters())
    if (p.dim() == weight_dim && (name == "weight" || name == "module.weight")) {
      NASH_CHECK(p.size(0) == 1, "ProjectionDiscriminator: D's output ", pooled_ ? "linear layer" : "conv",
                 " must have 1 output, its weight is ", shape_str(p));
      features_ = p.size(1);
      break;
    }
  NASH_CHECK(features_ > 0, "ProjectionDiscriminator: D must end in an output conv and a Flatten (DCGAN's shape) or "
             "in a linear layer on pooled features; its ", pooled_ ? "last" : "second-to-last", " layer (",
             head_->type_name(), ") has no ", weight_dim, "-D weight");
  body_ = std::make_shared<Sequential>();
  for (std::size_t i = 0; i + (pooled_ ? 1 : 2) < n; ++i) body_->push_back((*d)[i]);
  register_module("body", body_);
  register_module("head", head_);
  auto lin = std::make_shared<Linear>(num_classes, features_, false);
  if (pooled_)
    init::xavier_uniform_(lin->weight, 1.0);
  else
    init::normal_(lin->weight, 0.0, 0.02);
  embed_ = spectral ? ModulePtr(spectral_norm(lin)) : ModulePtr(lin);
  register_module("embed", embed_);
}

Tensor ProjectionDiscriminator::forward(const Tensor& x, const Tensor& labels) {
  const Tensor h = body_->forward(x);
  if (pooled_) {
    NASH_CHECK(h.dim() == 2 && h.size(1) == features_, "ProjectionDiscriminator: D's body gave ", shape_str(h),
               ", expected (N, ", features_, ")");
  } else {
    NASH_CHECK(h.dim() == 4 && h.size(1) == features_, "ProjectionDiscriminator: D's body gave ", shape_str(h),
               ", expected (N, ", features_, ", H, W)");
  }
  const Tensor score = pooled_ ? head_->forward(h) : head_->forward(h).flatten(1);  // (N, 1)
  const Tensor e = embed_->forward(one_hot_for(x, labels, h));
  return add(score, sum(mul(e, pooled_ ? h : sum(h, {2, 3})), {1}, /*keepdim=*/true));
}

}  // namespace nn
}  // namespace nash
