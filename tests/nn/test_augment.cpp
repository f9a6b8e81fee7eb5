// DiffAugment: each transformation's effect on images built to show it (a moved pixel, a zeroed square, the color
// formulas), determinism and the data-parallel rows, first and second derivatives, the policy text, and the trainer
// applying it to every batch D scores.
#include <cmath>
#include <set>
#include <vector>

#include "nash/nash.h"
#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

nn::DiffAugmentOptions only(bool color, bool translation, bool cutout) {
  nn::DiffAugmentOptions o;
  o.color = color;
  o.translation = translation;
  o.cutout = cutout;
  return o;
}

}  // namespace

TEST(DiffAugment, TranslationMovesEachImageByItsOwnWholePixelShift) {
  const int64_t n = 16, s = 32;
  std::vector<float> v(static_cast<std::size_t>(n * s * s), 0.0f);
  for (int64_t b = 0; b < n; ++b) v[static_cast<std::size_t>((b * s + 10) * s + 20)] = 1.0f;  // one pixel at (10, 20)
  const Tensor x = from_vector(v, {n, 1, s, s});
  Generator g(3);
  const std::vector<float> y = nn::diff_augment(x, only(false, true, false), &g).to_vector<float>();
  std::set<std::pair<int64_t, int64_t>> shifts;
  for (int64_t b = 0; b < n; ++b) {
    int64_t found = 0, fy = -1, fx = -1;
    for (int64_t i = 0; i < s; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const float p = y[static_cast<std::size_t>((b * s + i) * s + j)];
        if (p != 0.0f) {
          EXPECT_EQ(p, 1.0f);
          ++found;
          fy = i;
          fx = j;
        }
      }
    ASSERT_EQ(found, 1) << "image " << b;  // the pixel moved, nothing else appeared
    EXPECT_LE(std::abs(fy - 10), 4);      // round(32 / 8)
    EXPECT_LE(std::abs(fx - 20), 4);
    shifts.insert({fy - 10, fx - 20});
  }
  EXPECT_GT(shifts.size(), 4u) << "each image draws its own shift";
  // Shifted past the edge: zeros come in.
  const Tensor ones = full({64, 1, 8, 8}, 1.0);
  Generator g2(4);
  const std::vector<float> z = nn::diff_augment(ones, only(false, true, false), &g2).to_vector<float>();
  double total = 0;
  for (float p : z) total += p;
  EXPECT_LT(total, 64.0 * 64.0);
}

TEST(DiffAugment, CutoutZeroesOneClippedSquareAndColorFollowsItsFormulas) {
  const int64_t n = 32, s = 32;
  Generator src(7);
  const Tensor x = rand({n, 1, s, s}, DType::Float32, Device::cpu(), &src) + 0.5;  // no zeros of its own
  Generator g(8);
  const std::vector<float> xv = x.to_vector<float>(), y = nn::diff_augment(x, only(false, false, true), &g).to_vector<float>();
  for (int64_t b = 0; b < n; ++b) {
    int64_t zeros = 0, y0 = s, y1 = -1, x0 = s, x1 = -1;
    for (int64_t i = 0; i < s; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const std::size_t k = static_cast<std::size_t>((b * s + i) * s + j);
        if (y[k] == 0.0f) {
          ++zeros;
          y0 = std::min(y0, i), y1 = std::max(y1, i), x0 = std::min(x0, j), x1 = std::max(x1, j);
        } else {
          ASSERT_EQ(y[k], xv[k]);
        }
      }
    EXPECT_EQ(zeros, (y1 - y0 + 1) * (x1 - x0 + 1)) << "a rectangle";
    EXPECT_LE(y1 - y0 + 1, 16);
    EXPECT_GE(y1 - y0 + 1, 8);  // a centre on the edge keeps half the side
    EXPECT_LE(x1 - x0 + 1, 16);
    EXPECT_GE(x1 - x0 + 1, 8);
  }
  // Color on one channel: mean(out) - mean(x) = b in [-0.5, 0.5]; out - mean(out) = c (x - mean(x)), c in [0.5, 1.5].
  Generator g3(9);
  const std::vector<float> cv = nn::diff_augment(x, only(true, false, false), &g3).to_vector<float>();
  for (int64_t b = 0; b < n; ++b) {
    double mx = 0, my = 0;
    for (int64_t k = 0; k < s * s; ++k) mx += xv[b * s * s + k], my += cv[b * s * s + k];
    mx /= s * s;
    my /= s * s;
    EXPECT_LE(std::fabs(my - mx), 0.5 + 1e-5);
    const double c = (cv[b * s * s + 5] - my) / (xv[b * s * s + 5] - mx);
    EXPECT_GE(c, 0.5 - 1e-3);
    EXPECT_LE(c, 1.5 + 1e-3);
    for (int64_t k = 0; k < s * s; k += 37) EXPECT_NEAR(cv[b * s * s + k] - my, c * (xv[b * s * s + k] - mx), 1e-4);
  }
}

TEST(DiffAugment, SeededRowsMatchAcrossShardsAndDerivativesFlow) {
  Generator src(1);
  const Tensor x = randn({8, 2, 16, 16}, DType::Float32, Device::cpu(), &src);
  Generator a(5), b(5), c(5);
  const Tensor whole = nn::diff_augment(x, {}, &a);
  EXPECT_EQ(whole.to_vector<float>(), nn::diff_augment(x, {}, &b).to_vector<float>());
  // Rank 1 of 2 holds rows 1, 3, 5, 7 of the global batch and draws what one process drew for them.
  std::vector<Tensor> rows;
  for (int64_t r = 1; r < 8; r += 2) rows.push_back(x.narrow(0, r, 1));
  const Tensor mine = nn::diff_augment(cat(rows, 0), {}, &c, 1, 2);
  for (int64_t k = 0; k < 4; ++k)
    EXPECT_EQ(mine.narrow(0, k, 1).contiguous().to_vector<float>(),
              whole.narrow(0, 2 * k + 1, 1).contiguous().to_vector<float>());
  // Gradients, and gradients of gradients (a penalty through augmented D): the draws fixed by a fresh generator.
  const Tensor xs = nash_test::leaf64({2, 2, 8, 8}, 3);
  auto f = [](const std::vector<Tensor>& in) {
    Generator g(11);
    return tanh(nn::diff_augment(in[0], {}, &g));
  };
  EXPECT_GRADCHECK(f, std::vector<Tensor>{xs});
  EXPECT_GRADGRADCHECK(f, std::vector<Tensor>{xs});
}

TEST(DiffAugment, PolicyTextAndBadInput) {
  const nn::DiffAugmentOptions o = nn::parse_diff_augment_policy("cutout,color");
  EXPECT_TRUE(o.color && o.cutout && !o.translation);
  EXPECT_EQ(nn::diff_augment_policy_name(o), "color,cutout");
  EXPECT_EQ(nn::diff_augment_policy_name(nn::parse_diff_augment_policy("color,translation,cutout")),
            "color,translation,cutout");
  expect_error([] { nn::parse_diff_augment_policy("color,flip"); }, {"flip", "color, translation, cutout"});
  expect_error([] { nn::parse_diff_augment_policy(""); }, {"empty"});
  expect_error([] { nn::diff_augment(zeros({2, 8, 8})); }, {"(N, C, H, W)", "[2, 8, 8]"});
  expect_error([] { nn::diff_augment(zeros({2, 1, 8, 8}), {}, nullptr, 2, 2); }, {"shard 2 of 2"});
}

TEST(DiffAugment, TheTrainerAugmentsEveryBatchDScores) {
  manual_seed(2);
  nn::DcganOptions o;
  o.z_dim = 4;
  o.width = 2;
  o.d_batch_norm = false;
  auto g = nn::dcgan_generator(o);
  auto d = nn::dcgan_discriminator(o);
  optim::Adam og(g->parameters()), od(d->parameters());
  optim::GanTrainerOptions to;
  to.gp_lambda = 1.0;
  to.r1_gamma = 1.0;
  int calls = 0;
  to.augment = [&](const Tensor& x) {
    ++calls;
    return nn::diff_augment(x);
  };
  optim::GanTrainer t(g, d, og, od, to);
  const optim::StepStats s = t.step([] { return rand({4, 1, 32, 32}) * 2.0 - 1.0; }, [] { return randn({4, 4}); });
  EXPECT_EQ(calls, 5);  // D update: fakes, reals, the penalty's interpolates, R1's reals; G update: fakes
  EXPECT_TRUE(std::isfinite(s.d_loss) && std::isfinite(s.g_loss));
  EXPECT_GT(s.update_norm_g, 0);
}
