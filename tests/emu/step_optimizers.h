// The optimizers the multi-tensor step tests compare (fused kernel on the device against the per-tensor reference
// loops on the CPU), by name: SGD, SGDMomentum, SGDNesterov, Adam, LREQAdam, NSGDA, AdaNSGDA, AdaDir.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nash/nash.h"

namespace nash_test {

inline std::unique_ptr<nash::optim::Optimizer> make_step_optimizer(const std::string& which,
                                                                   std::vector<nash::optim::ParamGroup> groups,
                                                                   bool fused) {
  if (which.rfind("SGD", 0) == 0) {
    nash::optim::SGDOptions o;
    o.lr = 0.02;
    o.weight_decay = 0.01;
    o.fused = fused;
    if (which != "SGD") o.momentum = 0.9;
    if (which == "SGDMomentum") o.dampening = 0.1;
    o.nesterov = which == "SGDNesterov";
    return std::make_unique<nash::optim::SGD>(groups, o);
  }
  if (which == "Adam") {
    nash::optim::AdamOptions o;
    o.lr = 0.01;
    o.beta1 = 0.5;
    o.weight_decay = 0.01;
    o.fused = fused;
    return std::make_unique<nash::optim::Adam>(groups, o);
  }
  if (which == "LREQAdam") {
    for (auto& g : groups) {
      g.coefficients.clear();
      for (std::size_t i = 0; i < g.params.size(); ++i) g.coefficients.push_back(0.25 + 0.1 * static_cast<double>(i));
    }
    nash::optim::LREQAdamOptions o;
    o.fused = fused;
    return std::make_unique<nash::optim::LREQAdam>(groups, o);
  }
  if (which == "NSGDA") return std::make_unique<nash::optim::NSGDA>(groups, nash::optim::NSGDAOptions{0.05, {}, fused});
  nash::optim::AdaGraftOptions o;
  o.lr = 0.01;
  o.beta1 = 0.5;
  o.fused = fused;
  if (which == "AdaNSGDA") return std::make_unique<nash::optim::AdaNSGDA>(groups, o);
  return std::make_unique<nash::optim::AdaDir>(groups, o);
}

}  // namespace nash_test
