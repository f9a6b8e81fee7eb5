// `nash classifier`: trains the FID feature network (a small CNN) on Fashion-MNIST, reports test accuracy, saves it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nash {
namespace apps {

struct ClassifierConfig {
  std::string data_dir;                                  // empty: /usr/share/datasets/fashion-mnist
  std::string out = "out/fmnist-classifier.safetensors"; // empty: do not save
  int64_t epochs = 3;
  int64_t batch = 128;
  double lr = 2e-3;            // Adam's peak learning rate, decayed to 0 along a cosine over the run
  uint64_t seed = 0;
  int64_t feature_dim = 256;   // width of the penultimate layer (the FID features)
  int64_t limit = 0;           // > 0: train on the first `limit` training images only (smoke runs)
  int64_t test_limit = 0;      // > 0: evaluate on the first `test_limit` test images only
  int64_t max_steps = 0;       // > 0: stop after this many steps (smoke runs)
  std::string device = "auto"; // cpu, cuda, cuda:N or auto (cuda when a GPU answers)
  int threads = 0;             // CPU threads for kernels and BLAS (0: leave the process default)
  bool quiet = false;
};

struct ClassifierEpoch {
  int64_t epoch = 0;
  double train_loss = 0;     // mean over the epoch's batches
  double test_accuracy = 0;
  double seconds = 0;        // the epoch's training time (evaluation excluded)
};

struct ClassifierResult {
  std::vector<ClassifierEpoch> epochs;
  double test_accuracy = 0;  // after the last step
  double train_seconds = 0;  // training steps only
  double wall_seconds = 0;
  int64_t steps = 0;
  int64_t parameters = 0;
  std::string device;
};

// Trains and evaluates (throws nash::Error on bad config, missing data or a non-finite loss); saves the network to
// cfg.out when set, with the test accuracy, epochs and seed as metadata.
ClassifierResult train_classifier(const ClassifierConfig& cfg);

// The subcommand: exit 0 ok, 1 runtime failure, 2 bad flags or an unwritable output path.
int run_classifier(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
