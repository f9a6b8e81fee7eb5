// nn::WeightEma: an exponential moving average of a model's weights kept in a second model of the same
// architecture (the generator average ProGAN and its successors evaluate and publish: it smooths the oscillation of
// the players' simultaneous updates without changing training at all).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nash/nn/module.h"

namespace nash {
namespace nn {

// What happens to the buffers (batch norm's running statistics, spectral norm's power-iteration vectors).
enum class EmaBuffers {
  Copy,     // the average takes the model's buffers as they are after each update
  Average,  // buffers are averaged like the parameters
};

struct EmaOptions {
  double decay = 0.999;  // the average's weight on its previous value, in [0, 1)
  // decay_t = min(decay, (1 + t) / (10 + t)) at the t-th update (t = 0, 1, ...): early averages follow the model
  // closely instead of keeping the initial weights for ~1/(1 - decay) updates. Short runs want it.
  bool warmup = true;
  EmaBuffers buffers = EmaBuffers::Copy;
};

class WeightEma {
 public:
  // `average` must have the model's parameters and buffers: the same names, shapes, dtypes and devices (build it
  // with the model's constructor). Its contents are replaced by the model's at once; its parameters stop requiring
  // gradients (nothing trains them). Throws nash::Error naming the first mismatch.
  WeightEma(std::shared_ptr<Module> model, std::shared_ptr<Module> average, EmaOptions options = {});

  // One update: average = decay_t * average + (1 - decay_t) * model for every parameter (and buffer under
  // EmaBuffers::Average); buffers copied under EmaBuffers::Copy. Call it after each optimizer step of the model.
  // The model may have been moved (Module::to) since construction as long as the average was moved alike.
  void update();
  // Replaces the average by the model's current weights (decay 0 for one update); the update count is kept.
  void reset();

  // decay_t of the t-th update (counting from 0).
  double decay_at(int64_t t) const;
  int64_t updates() const { return updates_; }
  // For resuming from a checkpoint that saved the average module and updates().
  void set_updates(int64_t n);
  const EmaOptions& options() const { return options_; }
  Module& average() const { return *average_; }

 private:
  struct Pair {
    Tensor model, average;
    bool blend;  // parameters always; buffers under EmaBuffers::Average
  };
  // The current tensors of both modules, checked to match (names, shapes, dtypes, devices).
  std::vector<Pair> pairs(const char* where) const;

  std::shared_ptr<Module> model_, average_;
  EmaOptions options_;
  int64_t updates_ = 0;
};

}  // namespace nn
}  // namespace nash
