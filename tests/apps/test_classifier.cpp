// Tests for `nash classifier` and `nash fid`: a short run on a small learnable Fashion-MNIST lookalike, the saved
// network reloaded, FID between one image set in its three forms (IDX, safetensors, PNG folder), and exit codes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/classifier.h"
#include "apps/fid.h"
#include "nash/data/idx.h"
#include "nash/io/png.h"
#include "nash/io/safetensors.h"
#include "nash/metrics/fid.h"
#include "support.h"
#include "idx_fixture.h"

namespace fs = std::filesystem;
using nash_test::write_bytes;
using nash_test::write_split;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_classifier", name); }

int run(int (*fn)(int, const char* const*, int), std::vector<std::string> args, std::string* out, std::string* err) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = fn(static_cast<int>(argv.size()), argv.data(), 2);
  *out = testing::internal::GetCapturedStdout();
  *err = testing::internal::GetCapturedStderr();
  return rc;
}

}  // namespace

TEST(ClassifierApp, SmokeRunLearnsSavesAndServesFid) {
  fs::path d = temp_dir("smoke");
  write_split(d, "train", 320, 1);
  write_split(d, "t10k", 200, 2);
  nash::apps::ClassifierConfig cfg;
  cfg.data_dir = d.string();
  cfg.out = (d / "net" / "clf.safetensors").string();
  cfg.epochs = 2;
  cfg.batch = 32;
  cfg.max_steps = 16;
  cfg.feature_dim = 128;
  cfg.device = "cpu";
  cfg.threads = 1;  // small tensors: OpenMP teams would only spin on a busy machine
  cfg.quiet = true;
  nash::apps::ClassifierResult r = nash::apps::train_classifier(cfg);
  EXPECT_EQ(r.steps, 16);
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_GT(r.test_accuracy, 0.5) << "16 steps should learn the bands (chance is 0.1)";
  EXPECT_LT(r.epochs.back().train_loss, r.epochs.front().train_loss);

  std::map<std::string, std::string> meta;
  auto net = nash::metrics::load_feature_net(cfg.out, nash::Device::cpu(), &meta);
  EXPECT_EQ(net->feature_dim(), 128);
  nash::data::ImageDataset te = nash::data::load_fashion_mnist(nash::data::Split::Test, {d.string(), 0, 0});
  EXPECT_NEAR(nash::metrics::classifier_accuracy(*net, te.images, te.labels), r.test_accuracy, 1e-12);
  EXPECT_EQ(meta["steps"], "16");

  // One image set in three forms: IDX, safetensors (N, H, W) and a folder of PNGs.
  const fs::path idx = d / "t10k-images-idx3-ubyte";
  nash::Tensor a = nash::apps::load_image_set(idx.string());
  ASSERT_EQ(a.shape(), (nash::Shape{200, 1, 28, 28}));
  const fs::path st = d / "samples.safetensors";
  nash::io::save_safetensors(st.string(), {{"samples", a.reshape({200, 28, 28})}});
  nash::Tensor b = nash::apps::load_image_set(st.string());
  EXPECT_EQ(b.to_vector<float>(), a.to_vector<float>());
#ifdef NASH_HAVE_PNG
  fs::create_directories(d / "png");
  std::vector<float> v = a.to_vector<float>();
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> rgb;
    for (int k = 0; k < 784; ++k) {
      const auto g = static_cast<uint8_t>(std::lround((v[i * 784 + k] + 1.0f) * 127.5f));
      rgb.insert(rgb.end(), {g, g, g});
    }
    char name[32];
    std::snprintf(name, sizeof name, "img%04d.png", i);
    nash::io::write_png((d / "png" / name).string(), 28, 28, rgb);
  }
  nash::Tensor c = nash::apps::load_image_set((d / "png").string());
  nash_test::expect_close(c, a, 1.0 / 127.5 + 1e-6, 0.0);
  EXPECT_EQ(nash::apps::load_image_set((d / "png").string(), 150).size(0), 150);
#endif

  std::string out, err;
  int rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", st.string(), "--classifier",
                                     cfg.out, "--device", "cpu", "--threads", "1", "--quiet"}, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NEAR(std::stod(out), 0.0, 1e-6);
  const std::string train_idx = (d / "train-images-idx3-ubyte").string();
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", train_idx,
                                 "--classifier", cfg.out, "--limit", "150", "--threads", "1"}, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("FID "), std::string::npos) << out;
  EXPECT_NE(out.find("not Inception"), std::string::npos) << out;
  EXPECT_NE(out.find("precision "), std::string::npos) << out;
  EXPECT_NE(out.find("(k = 3)"), std::string::npos) << out;
  EXPECT_NE(out.find("KID "), std::string::npos) << out;
  EXPECT_NE(out.find("(100 subsets of 150)"), std::string::npos) << out;  // capped at the sets' size
  // The same images on both sides: every sample lies in the other set's manifold.
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", st.string(), "--classifier",
                                 cfg.out, "--threads", "1", "--k", "5"}, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("precision 1.0000  recall 1.0000"), std::string::npos) << out;
  EXPECT_NE(out.find("coverage 1.0000  (k = 5)"), std::string::npos) << out;
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", st.string(), "--classifier",
                                 cfg.out, "--threads", "1", "--k", "0"}, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(out.find("precision"), std::string::npos) << out;
  EXPECT_NE(out.find("KID "), std::string::npos) << out;
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", st.string(), "--classifier",
                                 cfg.out, "--threads", "1", "--k", "0", "--kid-subsets", "0"}, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(out.find("KID"), std::string::npos) << out;

  // Labels for intra-FID: an IDX labels file or a safetensors "labels" tensor; both or neither.
  const fs::path idx_labels = d / "t10k-labels-idx1-ubyte";
  const nash::Tensor labels = nash::apps::load_label_set(idx_labels.string());
  ASSERT_EQ(labels.shape(), (nash::Shape{200}));
  EXPECT_EQ(labels.to_vector<float>(), te.labels.to_vector<float>());
  EXPECT_EQ(nash::apps::load_label_set(idx_labels.string(), 30).size(0), 30);
  nash::io::save_safetensors((d / "l.safetensors").string(), {{"samples", a}, {"labels", labels}});
  EXPECT_EQ(nash::apps::load_label_set((d / "l.safetensors").string()).to_vector<float>(), labels.to_vector<float>());
  nash_test::expect_error([&] { nash::apps::load_label_set(st.string()); }, {"samples.safetensors", "'labels'"});
  nash_test::expect_error([&] { nash::apps::load_label_set((d / "nope").string()); }, {"nope", "does not exist"});
  EXPECT_EQ(run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", st.string(), "--real-labels",
                                      idx_labels.string()}, &out, &err), 2);
  EXPECT_NE(err.find("both --real-labels and --fake-labels"), std::string::npos) << err;
  // 20 images per class cannot give a class covariance of 128 features: named, exit 1.
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", (d / "l.safetensors").string(),
                                 "--real-labels", idx_labels.string(), "--fake-labels", (d / "l.safetensors").string(),
                                 "--classifier", cfg.out, "--threads", "1"}, &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("class 0 has 20 samples"), std::string::npos) << err;

  // Too few images for the feature dimension, values outside [-1, 1], missing sets and flags.
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string(), "--fake", idx.string(), "--classifier",
                                 cfg.out, "--limit", "100"}, &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("100 samples are too few for 128 features"), std::string::npos) << err;
  nash::io::save_safetensors((d / "bad.safetensors").string(), {{"x", a * 127.5 + 127.5}});
  nash_test::expect_error([&] { nash::apps::load_image_set((d / "bad.safetensors").string()); },
                          {"bad.safetensors", "[-1, 1]"});
  rc = run(nash::apps::run_fid, {"nash", "fid", "--real", (d / "none").string(), "--fake", idx.string(),
                                 "--classifier", cfg.out}, &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
  EXPECT_EQ(run(nash::apps::run_fid, {"nash", "fid", "--real", idx.string()}, &out, &err), 2);
  fs::remove_all(d);
}

TEST(ClassifierApp, ExitCodes) {
  fs::path d = temp_dir("codes");
  std::string out, err;
  EXPECT_EQ(run(nash::apps::run_classifier, {"nash", "classifier", "--epochs", "0"}, &out, &err), 2);
  EXPECT_EQ(run(nash::apps::run_classifier, {"nash", "classifier", "--features", "64"}, &out, &err), 2);
  EXPECT_EQ(run(nash::apps::run_classifier, {"nash", "classifier", "--device", "tpu"}, &out, &err), 2);
  EXPECT_EQ(run(nash::apps::run_classifier, {"nash", "classifier", "--help"}, &out, &err), 0);
  EXPECT_NE(out.find("--data"), std::string::npos);
  // Missing data: a runtime failure whose message names the file and --data.
  EXPECT_EQ(run(nash::apps::run_classifier, {"nash", "classifier", "--data", (d / "empty").string(), "--out", "",
                                             "--device", "cpu"}, &out, &err), 1);
  EXPECT_NE(err.find("train-images-idx3-ubyte"), std::string::npos) << err;
  EXPECT_NE(err.find("--data"), std::string::npos) << err;
  // An output path that cannot be written is found before training starts.
  write_bytes(d / "file", {1});
  EXPECT_EQ(run(nash::apps::run_classifier, {"nash", "classifier", "--out", (d / "file" / "x.safetensors").string(),
                                             "--device", "cpu"}, &out, &err), 2);
  fs::remove_all(d);
}
