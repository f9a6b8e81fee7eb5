// Checkpoints: module tensors under "<prefix>.<name>", optimizer state under "optim.<prefix>.<key>", RNG and step
// in the safetensors metadata.
#include "nash/nn/checkpoint.h"

#include <set>

#include "nash/core/autograd.h"
#include "nash/core/random.h"
#include "nash/io/safetensors.h"

namespace nash {
namespace nn {

namespace {
const char* kFormat = "nash.checkpoint.v1";

std::vector<std::pair<std::string, Tensor>> module_tensors(const std::string& prefix, const Module& m) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& p : m.named_parameters()) out.emplace_back(prefix + "." + p.first, p.second);
  for (auto& b : m.named_buffers()) out.emplace_back(prefix + "." + b.first, b.second);
  return out;
}

uint64_t parse_u64(const std::string& path, const std::string& key, const std::string& v) {
  NASH_CHECK(!v.empty() && v.find_first_not_of("0123456789") == std::string::npos, "checkpoint ", path,
             ": metadata '", key, "' = '", v, "' is not a non-negative integer");
  return std::stoull(v);
}
}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [prefix, m] : ckpt.modules) {
    NASH_CHECK(m != nullptr, "save_checkpoint: module '", prefix, "' is null");
    for (auto& t : module_tensors(prefix, *m)) tensors.push_back(t);
  }
  for (const auto& [prefix, opt] : ckpt.optimizers) {
    NASH_CHECK(opt != nullptr, "save_checkpoint: optimizer '", prefix, "' is null");
    for (auto& kv : opt->state()) tensors.emplace_back("optim." + prefix + "." + kv.first, kv.second);
  }
  std::map<std::string, std::string> meta = ckpt.metadata;
  meta["format"] = kFormat;
  meta["step"] = std::to_string(ckpt.step);
  meta["rng.seed"] = std::to_string(default_generator().seed());
  meta["rng.offset"] = std::to_string(default_generator().offset());
  io::save_safetensors(path, tensors, meta);
}

void load_checkpoint(const std::string& path, Checkpoint& ckpt) {
  io::SafetensorsFile f = io::load_safetensors(path);
  auto fmt = f.metadata.find("format");
  NASH_CHECK(fmt != f.metadata.end() && fmt->second == kFormat, "checkpoint ", path, " is not a nash checkpoint (",
             fmt == f.metadata.end() ? std::string("no format metadata") : "format " + fmt->second, ")");
  std::map<std::string, const Tensor*> by_name;
  for (auto& kv : f.tensors) by_name[kv.first] = &kv.second;

  // 1. Check every module tensor before touching anything.
  std::vector<std::pair<Tensor, const Tensor*>> assign;
  std::set<std::string> used;
  for (const auto& [prefix, m] : ckpt.modules) {
    NASH_CHECK(m != nullptr, "load_checkpoint: module '", prefix, "' is null");
    for (auto& [name, t] : module_tensors(prefix, *m)) {
      auto it = by_name.find(name);
      NASH_CHECK(it != by_name.end(), "checkpoint ", path, " lacks tensor '", name, "' (", shape_str(t.shape()),
                 ") that the model has");
      NASH_CHECK(it->second->shape() == t.shape(), "checkpoint ", path, ": tensor '", name, "' has shape ",
                 shape_str(it->second->shape()), " but the model expects ", shape_str(t.shape()));
      NASH_CHECK(it->second->dtype() == t.dtype(), "checkpoint ", path, ": tensor '", name, "' is ",
                 dtype_name(it->second->dtype()), " but the model's is ", dtype_name(t.dtype()));
      assign.emplace_back(t, it->second);
      used.insert(name);
    }
    for (auto& kv : f.tensors)
      NASH_CHECK(kv.first.rfind(prefix + ".", 0) != 0 || used.count(kv.first), "checkpoint ", path, " has tensor '",
                 kv.first, "' (", shape_str(kv.second.shape()), ") that the model lacks");
  }
  // The metadata too: a file that fails here must leave the model and optimizers as they were.
  auto meta = [&](const char* key) {
    auto it = f.metadata.find(key);
    NASH_CHECK(it != f.metadata.end(), "checkpoint ", path, " lacks metadata '", key, "'");
    return parse_u64(path, key, it->second);
  };
  const uint64_t seed = meta("rng.seed"), offset = meta("rng.offset");
  const int64_t step = static_cast<int64_t>(meta("step"));
  // 2. Optimizer state; each optimizer validates its own keys. On failure, earlier ones are rolled back.
  std::vector<std::pair<optim::Optimizer*, std::map<std::string, Tensor>>> previous;
  try {
    for (const auto& [prefix, opt] : ckpt.optimizers) {
      NASH_CHECK(opt != nullptr, "load_checkpoint: optimizer '", prefix, "' is null");
      std::map<std::string, Tensor> state;
      const std::string p = "optim." + prefix + ".";
      for (auto& kv : f.tensors)
        if (kv.first.rfind(p, 0) == 0) state[kv.first.substr(p.size())] = kv.second;
      previous.emplace_back(opt, opt->state());
      opt->load_state(state);
    }
  } catch (const Error& e) {
    for (auto& pr : previous) pr.first->load_state(pr.second);
    detail::fail("checkpoint ", path, ": ", e.what());
  }
  // 3. Commit: tensors, RNG, step.
  {
    NoGradGuard ng;
    for (auto& [dst, src] : assign) dst.copy_(*src);
  }
  if (ckpt.restore_rng) {
    default_generator().set_seed(seed);
    default_generator().set_offset(offset);
  }
  ckpt.step = step;
  ckpt.metadata = f.metadata;
}

}  // namespace nn
}  // namespace nash
