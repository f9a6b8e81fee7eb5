// Checkpoints: round trip of modules, optimizer state, RNG and step; named mismatches; bit-identical resume.
#include <filesystem>

#include "nash/io/safetensors.h"
#include "nash/nn/checkpoint.h"
#include "support.h"

using namespace nash;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("nash_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out) {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(in, hidden), std::make_shared<nn::BatchNorm1d>(hidden),
      std::make_shared<nn::LeakyReLU>(0.2), std::make_shared<nn::Linear>(hidden, out)});
}

// A tiny GAN on 2-D data: each step draws data and latents from the default generator.
struct TinyGan {
  std::shared_ptr<nn::Sequential> g = mlp(3, 16, 2), d = mlp(2, 16, 1);
  optim::Adam opt_g{g->parameters(), [] { optim::AdamOptions o; o.lr = 1e-3; o.beta1 = 0.5; return o; }()};
  optim::Adam opt_d{d->parameters(), [] { optim::AdamOptions o; o.lr = 2e-3; o.beta1 = 0.0; o.beta2 = 0.99; return o; }()};
  void step() {
    Tensor real = randn({32, 2}) * 0.5 + 1.0, z = randn({32, 3});
    Tensor fake = g->forward(z);
    Tensor ld = binary_cross_entropy_with_logits(d->forward(real), ones({32, 1})) +
                binary_cross_entropy_with_logits(d->forward(fake.detach()), zeros({32, 1}));
    opt_d.zero_grad();
    ld.backward();
    opt_d.step();
    Tensor lg = binary_cross_entropy_with_logits(d->forward(g->forward(randn({32, 3}))), ones({32, 1}));
    opt_g.zero_grad();
    lg.backward();
    opt_g.step();
  }
  nn::Checkpoint parts(int64_t step = 0) { return {{{"G", g.get()}, {"D", d.get()}}, {{"G", &opt_g}, {"D", &opt_d}}, step, {}}; }
  std::vector<std::vector<float>> values() const {
    std::vector<std::vector<float>> v;
    for (auto* m : {g.get(), d.get()}) {
      for (auto& p : m->named_parameters()) v.push_back(p.second.to_vector());
      for (auto& b : m->named_buffers()) v.push_back(b.second.to_vector());
    }
    return v;
  }
};
}  // namespace

TEST(Checkpoint, ResumeContinuesBitIdentically) {
  manual_seed(11);
  TinyGan straight;
  for (int i = 0; i < 12; ++i) straight.step();

  manual_seed(11);
  TinyGan first;
  for (int i = 0; i < 5; ++i) first.step();
  fs::path p = scratch("resume.safetensors");
  save_checkpoint(p.string(), first.parts(5));

  manual_seed(999);  // a different state, restored by the checkpoint
  TinyGan resumed;
  nn::Checkpoint c = resumed.parts();
  load_checkpoint(p.string(), c);
  EXPECT_EQ(c.step, 5);
  for (int i = 5; i < 12; ++i) resumed.step();
  EXPECT_EQ(resumed.values(), straight.values()) << "resumed run must match the uninterrupted one bit for bit";
}

TEST(Checkpoint, NamesFollowModulesAndOptimizers) {
  manual_seed(1);
  TinyGan gan;
  gan.step();
  fs::path p = scratch("names.safetensors");
  save_checkpoint(p.string(), gan.parts(1));
  io::SafetensorsFile f = io::load_safetensors(p.string());
  EXPECT_NE(f.find("G.0.weight"), nullptr);
  EXPECT_NE(f.find("D.1.running_mean"), nullptr);
  EXPECT_NE(f.find("optim.D.group0.param0.exp_avg_sq"), nullptr);
  EXPECT_EQ(f.metadata.at("step"), "1");
}

TEST(Checkpoint, MismatchedModelNamesTheTensor) {
  manual_seed(2);
  TinyGan gan;
  fs::path p = scratch("mismatch.safetensors");
  save_checkpoint(p.string(), gan.parts());
  auto other = mlp(3, 8, 2);  // hidden 8 instead of 16
  auto values_before = other->parameters()[0].to_vector();
  nn::Checkpoint c{{{"G", other.get()}}, {}, 0, {}};
  nash_test::expect_error([&] { load_checkpoint(p.string(), c); }, {"G.0.weight", "[16, 3]", "[8, 3]"});
  EXPECT_EQ(other->parameters()[0].to_vector(), values_before) << "a failed load must change nothing";
  auto bigger = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{std::make_shared<nn::Linear>(3, 16)});
  nn::Checkpoint c2{{{"G", bigger.get()}}, {}, 0, {}};
  nash_test::expect_error([&] { load_checkpoint(p.string(), c2); }, {"has tensor", "that the model lacks"});
}

// Loading a model to evaluate it can leave the caller's random stream alone; by default the saved one is restored.
TEST(Checkpoint, RestoreRngIsOptional) {
  manual_seed(3);
  TinyGan gan;
  gan.step();
  fs::path p = scratch("rng.safetensors");
  save_checkpoint(p.string(), gan.parts(1));
  const uint64_t saved_offset = default_generator().offset();
  manual_seed(99);
  randn({5});
  const uint64_t seed = default_generator().seed(), offset = default_generator().offset();
  nn::Checkpoint keep = gan.parts();
  keep.restore_rng = false;
  load_checkpoint(p.string(), keep);
  EXPECT_EQ(default_generator().seed(), seed);
  EXPECT_EQ(default_generator().offset(), offset);
  EXPECT_EQ(keep.step, 1);
  nn::Checkpoint restore = gan.parts();
  load_checkpoint(p.string(), restore);
  EXPECT_EQ(default_generator().seed(), 3u);
  EXPECT_EQ(default_generator().offset(), saved_offset);
}
