// nn::WeightEma: the average lives in a second module; an update is one foreach_lerp_ over all its blended tensors
// (one launch of the multi-tensor step kernel on CUDA, one parallel pass on the CPU, per device and dtype).
#include "nash/nn/ema.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "nash/core/autograd.h"
#include "nash/core/error.h"
#include "nash/core/ops.h"

namespace nash {
namespace nn {

WeightEma::WeightEma(std::shared_ptr<Module> model, std::shared_ptr<Module> average, EmaOptions options)
    : model_(std::move(model)), average_(std::move(average)), options_(options) {
  NASH_CHECK(model_ != nullptr && average_ != nullptr, "WeightEma: the model and the average must not be null");
  NASH_CHECK(model_ != average_, "WeightEma: the average must be a second module, not the model itself");
  NASH_CHECK(std::isfinite(options_.decay) && options_.decay >= 0 && options_.decay < 1,
             "WeightEma: decay must be in [0, 1), got ", options_.decay);
  for (auto& p : average_->parameters()) p.requires_grad_(false);
  reset();
}

std::vector<WeightEma::Pair> WeightEma::pairs(const char* where) const {
  std::vector<Pair> out;
  auto match = [&](const std::vector<std::pair<std::string, Tensor>>& m,
                   const std::vector<std::pair<std::string, Tensor>>& a, const char* kind, bool blend) {
    NASH_CHECK(m.size() == a.size(), "WeightEma::", where, ": the model has ", m.size(), " ", kind, "s, the average ",
               a.size(), " (build the average with the model's constructor)");
    for (std::size_t i = 0; i < m.size(); ++i) {
      const std::string& name = m[i].first;
      const Tensor &x = m[i].second, &y = a[i].second;
      NASH_CHECK(a[i].first == name, "WeightEma::", where, ": the model's ", kind, " ", i, " is '", name,
                 "', the average's is '", a[i].first, "'");
      NASH_CHECK(x.shape() == y.shape(), "WeightEma::", where, ": ", kind, " '", name, "' has shape ",
                 shape_str(x.shape()), " in the model and ", shape_str(y.shape()), " in the average");
      NASH_CHECK(x.dtype() == y.dtype(), "WeightEma::", where, ": ", kind, " '", name, "' is ", dtype_name(x.dtype()),
                 " in the model and ", dtype_name(y.dtype()), " in the average");
      NASH_CHECK(x.device() == y.device(), "WeightEma::", where, ": ", kind, " '", name, "' is on ",
                 x.device().str(), " in the model and on ", y.device().str(), " in the average (move both alike)");
      NASH_CHECK(x.numel() == 0 || x.raw_data() != y.raw_data(), "WeightEma::", where, ": ", kind, " '", name,
                 "' is the same memory in the model and the average");
      out.push_back({x, y, blend});
    }
  };
  match(model_->named_parameters(), average_->named_parameters(), "parameter", true);
  match(model_->named_buffers(), average_->named_buffers(), "buffer", options_.buffers == EmaBuffers::Average);
  return out;
}

double WeightEma::decay_at(int64_t t) const {
  if (!options_.warmup) return options_.decay;
  const double tt = static_cast<double>(std::max<int64_t>(t, 0));
  return std::min(options_.decay, (1.0 + tt) / (10.0 + tt));
}

void WeightEma::update() {
  const double d = decay_at(updates_);
  std::vector<Pair> ps = pairs("update");
  NoGradGuard ng;
  // The blended tensors, grouped by device and dtype (a module normally has one of each).
  std::vector<std::vector<Tensor>> averages, models;
  std::vector<std::pair<Device, DType>> keys;
  for (Pair& p : ps) {
    if (!p.blend) {
      p.average.copy_(p.model);
      continue;
    }
    const std::pair<Device, DType> key{p.average.device(), p.average.dtype()};
    std::size_t k = 0;
    while (k < keys.size() && !(keys[k].first == key.first && keys[k].second == key.second)) ++k;
    if (k == keys.size()) {
      keys.push_back(key);
      averages.emplace_back();
      models.emplace_back();
    }
    averages[k].push_back(p.average);
    models[k].push_back(p.model);
  }
  for (std::size_t k = 0; k < keys.size(); ++k) foreach_lerp_(averages[k], models[k], 1.0 - d);
  ++updates_;
}

void WeightEma::reset() {
  std::vector<Pair> ps = pairs("reset");
  NoGradGuard ng;
  for (Pair& p : ps) p.average.copy_(p.model);
}

void WeightEma::set_updates(int64_t n) {
  NASH_CHECK(n >= 0, "WeightEma::set_updates: the update count must be >= 0, got ", n);
  updates_ = n;
}

}  // namespace nn
}  // namespace nash
