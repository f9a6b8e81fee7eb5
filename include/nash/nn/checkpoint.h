// Training checkpoints in safetensors: modules ("G.net.0.weight"), optimizer state ("optim.G...."), the default
// generator's state and the step counter; written atomically, loaded all-or-nothing with named mismatches.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nash/nn/module.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace nn {

struct Checkpoint {
  std::vector<std::pair<std::string, Module*>> modules;               // prefix -> module, e.g. {"G", &g}
  std::vector<std::pair<std::string, optim::Optimizer*>> optimizers;  // prefix -> optimizer, e.g. {"G", &opt_g}
  int64_t step = 0;
  std::map<std::string, std::string> metadata;  // free-form extras (architecture, flags, ...)
  // load_checkpoint: restore the default generator saved with the checkpoint (resuming training exactly); false
  // leaves the caller's random stream alone (loading a model to evaluate it).
  bool restore_rng = true;
};

// Saves parameters, buffers, optimizer state, RNG state and step. Throws nash::Error naming the path on failure;
// an existing checkpoint at `path` is only replaced by a complete new one.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// Loads into ckpt's modules and optimizers, restores the default generator (unless !ckpt.restore_rng) and sets
// ckpt.step (and metadata).
// Every module tensor is checked before anything changes: a missing, extra or differently shaped tensor is an
// error naming the first one and both shapes. Parameters keep their device.
void load_checkpoint(const std::string& path, Checkpoint& ckpt);

}  // namespace nn
}  // namespace nash
