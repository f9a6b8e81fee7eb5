// The tiny `nash fmnist` configuration the app, reliability and data-parallel tests share: width 4, batch 8, z 8,
// CPU, one thread, no FID, a metrics row per step; samples and checkpoints only at the end unless a test asks.
#pragma once
#include <cstdint>
#include <string>

#include "apps/fmnist.h"

namespace nash_test {

inline nash::apps::FmnistConfig tiny_fmnist_config(nash::apps::FmnistArch arch, const std::string& data_dir,
                                                   const std::string& out_dir, int64_t steps) {
  nash::apps::FmnistConfig c;
  c.arch = arch;
  c.width = 4;
  c.batch = 8;
  c.z_dim = 8;
  c.steps = steps;
  c.device = "cpu";
  c.data_dir = data_dir;
  c.out_dir = out_dir;
  c.fid_net = "";
  c.quiet = true;
  c.log_every = 1;
  c.sample_every = 1000;
  c.checkpoint_every = 1000;
  c.threads = 1;
  return c;
}

}  // namespace nash_test
