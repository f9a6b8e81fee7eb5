// Balanced optimizers: LREQAdam, nSGDA, Ada-nSGDA and AdaDir against hand-computed updates, their invariants
// (nSGDA's step norm is lr per group; Ada-nSGDA has Adam's step norm and the gradient's direction; AdaDir the
// reverse), the fused CPU kernel against the per-tensor loops, calibration files, state and a small game.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

using Vec = std::vector<double>;

Tensor param64(const Vec& v) { return from_vector(v, {static_cast<int64_t>(v.size())}).requires_grad_(); }
void set_grad(Tensor& p, const Vec& g) { p.set_grad(from_vector(g, p.shape()).to(p.dtype())); }
Vec values(const Tensor& t) { return t.to_vector<double>(); }

double norm(const Vec& a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}
Vec sub(const Vec& a, const Vec& b) {
  Vec r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = a[i] - b[i];
  return r;
}
double cosine(const Vec& a, const Vec& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += a[i] * b[i];
  return d / (norm(a) * norm(b));
}
Vec concat(const Vec& a, const Vec& b) {
  Vec r = a;
  r.insert(r.end(), b.begin(), b.end());
  return r;
}

// One group's Adam moments and oracle A = m̂ / (sqrt(v̂) + eps), and the two grafts, written from eq. 3.
struct GraftRef {
  double lr, b1, b2, eps;
  bool adadir;
  Vec m, v;
  int t = 0;
  void step(Vec& p, const Vec& g) {
    if (t == 0) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    Vec a(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      a[i] = (m[i] / (1 - std::pow(b1, t))) / (std::sqrt(v[i] / (1 - std::pow(b2, t))) + eps);
    }
    const double gn = norm(g), an = norm(a);
    for (std::size_t i = 0; i < p.size(); ++i)
      p[i] -= adadir ? lr * gn * a[i] / (an + eps) : lr * an * g[i] / (gn + eps);
  }
};

const Vec kP0{0.5, -1.25, 2.0, 0.1}, kQ0{0.3, -0.4, 0.9};
const Vec kG1{0.3, -0.7, 1.1, -0.05}, kG2{-0.2, 0.4, 0.9, 0.6};
const Vec kH1{-0.02, 0.05, 0.01}, kH2{0.04, 0.03, -0.06};

// A model-like list of float tensors (odd sizes, one over the CPU kernel's 16384-element chunk), random gradients.
struct Model {
  std::vector<Tensor> params;
  void randomize_grads(uint64_t seed) {
    Generator gen(seed);
    for (Tensor& p : params) p.set_grad(randn(p.shape(), p.dtype(), p.device(), &gen));
  }
};
Model make_model(DType dtype, uint64_t seed, const std::vector<int64_t>& sizes) {
  Generator gen(seed);
  Model m;
  for (int64_t n : sizes) m.params.push_back(randn({n}, dtype, Device::cpu(), &gen).requires_grad_());
  return m;
}
Model clone_model(const Model& src) {
  Model m;
  for (const Tensor& p : src.params) m.params.push_back(p.detach().clone().requires_grad_());
  return m;
}
double rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double num = 0, den = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    Vec x = values(a[k]), y = values(b[k]);
    for (std::size_t i = 0; i < x.size(); ++i) {
      num += (x[i] - y[i]) * (x[i] - y[i]);
      den += y[i] * y[i];
    }
  }
  return std::sqrt(num / den);
}

std::string temp_path(const std::string& stem) {
  return std::string(NASH_BINARY_DIR) + "/" + stem + "." +
         std::to_string(::testing::UnitTest::GetInstance()->random_seed());
}

}  // namespace

// ---- groups -------------------------------------------------------------------------------------------------
TEST(Balanced, GroupingHelpersMakeLayerwiseAndGlobalGroups) {
  Tensor a = param64(kP0), b = param64(kQ0);
  auto lw = optim::ParamGroup::layerwise({a, b});
  ASSERT_EQ(lw.size(), 2u);
  EXPECT_EQ(lw[1].name, "param1");
  EXPECT_TRUE(lw[1].params[0].is_same(b));
  auto named = optim::ParamGroup::layerwise({{"fc.weight", a}, {"fc.bias", b}});
  EXPECT_EQ(named[0].name, "fc.weight");
  auto gl = optim::ParamGroup::global({a, b});
  ASSERT_EQ(gl.size(), 1u);
  EXPECT_EQ(gl[0].params.size(), 2u);
  EXPECT_EQ(optim::ParamGroup::grouped({a, b}, optim::Grouping::Global).size(), 1u);
  optim::NSGDA layerwise({a, b});
  EXPECT_EQ(layerwise.param_groups().size(), 2u);  // layer-wise is the default
  expect_error([&] { optim::NSGDA({optim::ParamGroup{{a}, -1, "x", {2.0}}}); }, {"NSGDA", "only LREQAdam"});
  expect_error([&] { optim::LREQAdam({optim::ParamGroup{{a, b}, -1, "x", {2.0}}}); }, {"LREQAdam", "1 coefficients"});
}

// ---- nSGDA --------------------------------------------------------------------------------------------------
// Pins nSGDA: p -= lr * g / ||g|| per layer (two tensors, two steps), and one norm over both tensors when global.
TEST(Balanced, NsgdaStepsAreLrTimesTheUnitGradientPerGroup) {
  for (bool fused : {true, false}) {
    for (optim::Grouping grouping : {optim::Grouping::LayerWise, optim::Grouping::Global}) {
      Tensor a = param64(kP0), b = param64(kQ0);
      optim::NSGDAOptions o;
      o.lr = 0.05;
      o.grouping = grouping;
      o.fused = fused;
      optim::NSGDA opt({a, b}, o);
      Vec pa = kP0, pb = kQ0;
      for (int s = 0; s < 2; ++s) {
        const Vec& ga = s == 0 ? kG1 : kG2;
        const Vec& gb = s == 0 ? kH1 : kH2;
        set_grad(a, ga);
        set_grad(b, gb);
        opt.step();
        const double na = grouping == optim::Grouping::Global ? norm(concat(ga, gb)) : norm(ga);
        const double nb = grouping == optim::Grouping::Global ? na : norm(gb);
        for (std::size_t i = 0; i < pa.size(); ++i) pa[i] -= 0.05 * ga[i] / na;
        for (std::size_t i = 0; i < pb.size(); ++i) pb[i] -= 0.05 * gb[i] / nb;
        nash_test::expect_values(a, pa, 1e-15);
        nash_test::expect_values(b, pb, 1e-15);
      }
      EXPECT_NEAR(opt.grad_norms()[0], grouping == optim::Grouping::Global ? norm(concat(kG2, kH2)) : norm(kG2), 1e-15);
    }
  }
}

// Invariant: every group's step has norm exactly lr (its own lr), whatever the gradient's scale.
TEST(Balanced, NsgdaStepNormIsLrPerGroupLayerwiseAndGlobal) {
  for (DType dt : {DType::Float64, DType::Float32}) {
    // Float32 steps are measured as differences of float32 parameters: ulp(p) / |step| limits the check.
    const double tol = dt == DType::Float64 ? 1e-13 : 1e-5;
    for (optim::Grouping grouping : {optim::Grouping::LayerWise, optim::Grouping::Global}) {
      Model m = make_model(dt, 11, {5, 300, 17, 20000});
      std::vector<Vec> before;
      for (const Tensor& p : m.params) before.push_back(values(p));
      auto groups = optim::ParamGroup::grouped(m.params, grouping);
      for (std::size_t g = 0; g < groups.size(); ++g) groups[g].lr = 0.01 * static_cast<double>(g + 1);
      optim::NSGDA opt(groups);
      m.randomize_grads(3);
      for (std::size_t k = 0; k < m.params.size(); ++k) {  // gradients of very different scales
        NoGradGuard ng;
        m.params[k].grad().mul_(std::pow(10.0, static_cast<double>(k) - 2));
      }
      opt.step();
      if (grouping == optim::Grouping::LayerWise) {
        for (std::size_t k = 0; k < m.params.size(); ++k)
          EXPECT_NEAR(norm(sub(values(m.params[k]), before[k])), 0.01 * static_cast<double>(k + 1),
                      tol * 0.01 * (k + 1));
      } else {
        Vec all;
        for (std::size_t k = 0; k < m.params.size(); ++k) all = concat(all, sub(values(m.params[k]), before[k]));
        EXPECT_NEAR(norm(all), 0.01, tol * 0.01);
      }
    }
  }
}

TEST(Balanced, ZeroGradientGroupDoesNotMoveAndMissingGradsAreSkipped) {
  Tensor a = param64(kP0), b = param64(kQ0), c = param64(kQ0);
  optim::NSGDA opt({a, b, c}, {0.1});
  set_grad(a, {0, 0, 0, 0});
  set_grad(b, kH1);
  opt.step();
  nash_test::expect_values(a, kP0, 0);  // not NaN: 0 / 0 is treated as no step
  nash_test::expect_values(c, kQ0, 0);  // no gradient
  EXPECT_NEAR(norm(sub(values(b), kQ0)), 0.1, 1e-15);
}

// ---- Ada-nSGDA and AdaDir ----------------------------------------------------------------------------------
// Pins Ada-nSGDA (eq. 3) and AdaDir: two steps of each against GraftRef, layer-wise and global, beta1 = 0 and not.
TEST(Balanced, AdaNsgdaAndAdaDirTwoStepsMatchTheHandComputedGrafts) {
  for (bool adadir : {false, true}) {
    for (double b1 : {0.0, 0.8}) {
      for (optim::Grouping grouping : {optim::Grouping::LayerWise, optim::Grouping::Global}) {
        for (bool fused : {true, false}) {
          Tensor a = param64(kP0), b = param64(kQ0);
          optim::AdaGraftOptions o;
          o.lr = 0.02;
          o.beta1 = b1;
          o.beta2 = 0.9;
          o.eps = 1e-3;  // large enough that its placement matters
          o.grouping = grouping;
          o.fused = fused;
          std::unique_ptr<optim::Optimizer> opt;
          if (adadir)
            opt = std::make_unique<optim::AdaDir>(std::vector<Tensor>{a, b}, o);
          else
            opt = std::make_unique<optim::AdaNSGDA>(std::vector<Tensor>{a, b}, o);
          GraftRef ra{0.02, b1, 0.9, 1e-3, adadir}, rb = ra, rall = ra;
          Vec pa = kP0, pb = kQ0;
          for (int s = 0; s < 2; ++s) {
            const Vec& ga = s == 0 ? kG1 : kG2;
            const Vec& gb = s == 0 ? kH1 : kH2;
            set_grad(a, ga);
            set_grad(b, gb);
            opt->step();
            if (grouping == optim::Grouping::LayerWise) {
              ra.step(pa, ga);
              rb.step(pb, gb);
            } else {
              Vec p = concat(pa, pb);
              rall.step(p, concat(ga, gb));
              pa.assign(p.begin(), p.begin() + 4);
              pb.assign(p.begin() + 4, p.end());
            }
            SCOPED_TRACE(std::string(adadir ? "AdaDir" : "AdaNSGDA") + " b1=" + std::to_string(b1) +
                         (grouping == optim::Grouping::Global ? " global" : " layer-wise") + (fused ? " fused" : ""));
            nash_test::expect_values(a, pa, 1e-14);
            nash_test::expect_values(b, pb, 1e-14);
          }
        }
      }
    }
  }
}

// Invariants against nash's own Adam on the same gradients: Ada-nSGDA's step has Adam's step norm and the
// gradient's direction (cosine 1); AdaDir's has norm lr * ||g|| and Adam's direction.
TEST(Balanced, GraftsHaveAdamsNormOrDirectionPerGroup) {
  for (optim::Grouping grouping : {optim::Grouping::LayerWise, optim::Grouping::Global}) {
    Model base = make_model(DType::Float64, 21, {7, 129, 40});
    Model ada = clone_model(base), dir = clone_model(base), adam = clone_model(base);
    optim::AdaGraftOptions go;
    go.lr = 0.01;
    go.beta1 = 0.5;
    go.beta2 = 0.99;
    go.eps = 1e-12;  // the invariants hold up to eps / ||.||
    go.grouping = grouping;
    optim::AdaNSGDA opt_ada(ada.params, go);
    optim::AdaDir opt_dir(dir.params, go);
    optim::AdamOptions ao;
    ao.lr = 0.01;
    ao.beta1 = 0.5;
    ao.beta2 = 0.99;
    ao.eps = 1e-12;
    optim::Adam opt_adam(adam.params, ao);
    for (int s = 0; s < 3; ++s) {
      std::vector<Vec> before_ada, before_dir, before_adam, grads;
      base.randomize_grads(100 + s);
      for (std::size_t k = 0; k < base.params.size(); ++k) {
        grads.push_back(values(base.params[k].grad()));
        for (Model* m : {&ada, &dir, &adam}) m->params[k].set_grad(base.params[k].grad().detach().clone());
        before_ada.push_back(values(ada.params[k]));
        before_dir.push_back(values(dir.params[k]));
        before_adam.push_back(values(adam.params[k]));
      }
      opt_ada.step();
      opt_dir.step();
      opt_adam.step();
      // Per group: concatenate the group's tensors (all of them when global).
      std::vector<std::vector<std::size_t>> groups;
      if (grouping == optim::Grouping::Global)
        groups.push_back({0, 1, 2});
      else
        groups = {{0}, {1}, {2}};
      for (const auto& grp : groups) {
        Vec d_ada, d_dir, d_adam, g;
        for (std::size_t k : grp) {
          d_ada = concat(d_ada, sub(values(ada.params[k]), before_ada[k]));
          d_dir = concat(d_dir, sub(values(dir.params[k]), before_dir[k]));
          d_adam = concat(d_adam, sub(values(adam.params[k]), before_adam[k]));
          g = concat(g, grads[k]);
        }
        EXPECT_NEAR(norm(d_ada) / norm(d_adam), 1.0, 1e-12);
        EXPECT_NEAR(cosine(d_ada, g), -1.0, 1e-12);  // minimising: the step is along -g
        EXPECT_NEAR(norm(d_dir) / (0.01 * norm(g)), 1.0, 1e-12);
        // The three see the same gradients, so the same moments: AdaDir steps along Adam's step at every step.
        EXPECT_NEAR(cosine(d_dir, d_adam), 1.0, 1e-12);
        EXPECT_LT(cosine(d_ada, d_adam), 1.0 - 1e-6);  // and the two grafts really differ from Adam
      }
    }
    Vec on = opt_ada.oracle_norms();
    EXPECT_EQ(on.size(), grouping == optim::Grouping::Global ? 1u : 3u);
    EXPECT_GT(on[0], 0.0);
  }
}

// ---- LREQAdam -----------------------------------------------------------------------------------------------
// Pins LREQAdam: v = b2 v + (1-b2) g², p -= lr * c * sqrt(1 - b2^t) * g / (sqrt(v) + eps), per-parameter c.
TEST(Balanced, LreqAdamTwoStepsOnlyVCorrectedAndScaledByTheCoefficient) {
  for (bool fused : {true, false}) {
    for (double wd : {0.0, 0.1}) {
      Tensor a = param64(kP0), b = param64(kQ0);
      optim::LREQAdamOptions o;
      o.lr = 0.01;
      o.beta2 = 0.99;
      o.eps = 1e-2;  // comparable to sqrt(v): a misplaced eps would show
      o.weight_decay = wd;
      o.fused = fused;
      optim::LREQAdam opt({optim::ParamGroup{{a, b}, -1, "g", {1.0, 0.25}}}, o);
      Vec pa = kP0, pb = kQ0, va(4, 0.0), vb(3, 0.0);
      Vec wrong = kP0, vw(4, 0.0);  // eps on the corrected sqrt(v̂): must differ
      for (int t = 1; t <= 2; ++t) {
        const Vec& ga = t == 1 ? kG1 : kG2;
        const Vec& gb = t == 1 ? kH1 : kH2;
        set_grad(a, ga);
        set_grad(b, gb);
        opt.step();
        const double bc2 = 1 - std::pow(0.99, t);
        auto ref = [&](Vec& p, Vec& v, const Vec& g, double c) {
          for (std::size_t i = 0; i < p.size(); ++i) {
            double d = g[i] + wd * p[i];
            v[i] = 0.99 * v[i] + 0.01 * d * d;
            p[i] -= 0.01 * c * std::sqrt(bc2) * d / (std::sqrt(v[i]) + 1e-2);
          }
        };
        ref(pa, va, ga, 1.0);
        ref(pb, vb, gb, 0.25);
        for (std::size_t i = 0; i < 4; ++i) {
          double d = ga[i] + wd * wrong[i];
          vw[i] = 0.99 * vw[i] + 0.01 * d * d;
          wrong[i] -= 0.01 * d / (std::sqrt(vw[i] / bc2) + 1e-2);
        }
        nash_test::expect_values(a, pa, 1e-15);
        nash_test::expect_values(b, pb, 1e-15);
      }
      EXPECT_GT(norm(sub(values(a), wrong)), 1e-4);
      auto st = opt.state();
      EXPECT_FALSE(st.count("group0.param0.exp_avg"));  // no first moment
      nash_test::expect_values(st.at("group0.param0.exp_avg_sq"), va, 1e-16);
    }
  }
  // The coefficient scales the whole step: same gradient, c = 0.25 moves a quarter as far.
  Tensor x = param64(kP0), y = param64(kP0);
  optim::LREQAdam opt({optim::ParamGroup{{x, y}, -1, "", {1.0, 0.25}}});
  set_grad(x, kG1);
  set_grad(y, kG1);
  opt.step();
  Vec dx = sub(values(x), kP0), dy = sub(values(y), kP0);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(dy[i], 0.25 * dx[i], 1e-15);
  optim::LREQAdamOptions bad;
  bad.beta1 = 0.9;
  expect_error([&] { optim::LREQAdam({x}, bad); }, {"LREQAdam", "beta1 must be 0", "0.9"});
  expect_error([&] { optim::LREQAdam({optim::ParamGroup{{x}, -1, "", {-1.0}}}); }, {"LREQAdam", "coefficient 0"});
}

TEST(Balanced, LreqAdamTakesTheEqualizedLayersCoefficients) {
  manual_seed(4);
  nn::EqualizedLinear lin(8, 3);
  auto params = lin.parameters();
  optim::LREQAdam opt({optim::ParamGroup{params, -1, "lin", nn::equalization_coefficients(params)}});
  EXPECT_NEAR(opt.param_groups()[0].coefficients[0], lin.equalization_coefficient(), 1e-15);
  Tensor x = randn({4, 8});
  Tensor before = lin.weight.detach().clone();
  sum(square(lin(x))).backward();
  opt.step();
  // First step with eps small: |step| = lr * c * sqrt(1 - b2) * |g| / (sqrt(1 - b2) |g|) = lr * c per element.
  Vec d = sub(values(lin.weight), values(before));
  for (double x_i : d) EXPECT_NEAR(std::fabs(x_i), 0.002 * lin.equalization_coefficient(), 1e-6);
}

// ---- fused kernel vs the per-tensor reference (CPU) ---------------------------------------------------------
// Many odd-sized tensors, one spanning two 16384-element chunks; float32 and float64; three steps. The models stay
// under the OpenMP grain (so the check stays fast on a loaded machine) except one large float32 case for the threads.
TEST(Balanced, FusedCpuKernelMatchesThePerTensorLoops) {
  const std::vector<int64_t> small{1, 3, 17, 255, 5, 16385, 2, 1000, 7, 33, 4096, 11};
  const std::vector<int64_t> large{1, 70001, 3, 40000, 16385};
  struct Case {
    DType dt;
    const std::vector<int64_t>* sizes;
    std::vector<const char*> rules;
  };
  const std::vector<const char*> all{"Adam", "NSGDA", "AdaNSGDA", "AdaDir", "LREQAdam"};
  for (const Case& cs : {Case{DType::Float64, &small, all}, Case{DType::Float32, &small, all},
                         Case{DType::Float32, &large, {"AdaNSGDA"}}}) {
    const DType dt = cs.dt;
    const std::vector<int64_t>& sizes = *cs.sizes;
    const double bound = dt == DType::Float64 ? 1e-13 : 1e-6;
    for (const char* which : cs.rules) {
      for (optim::Grouping grouping : {optim::Grouping::LayerWise, optim::Grouping::Global}) {
        SCOPED_TRACE(std::string(which) + " " + dtype_name(dt) +
                     (grouping == optim::Grouping::Global ? " global" : " layer-wise"));
        Model ref = make_model(dt, 5, sizes), fus = clone_model(ref);
        auto make = [&](Model& m, bool fused) -> std::unique_ptr<optim::Optimizer> {
          std::string w = which;
          auto groups = optim::ParamGroup::grouped(m.params, grouping);
          if (w == "Adam") {
            optim::AdamOptions o;
            o.lr = 0.01;
            o.beta1 = 0.5;
            o.weight_decay = 0.01;
            o.fused = fused;
            return std::make_unique<optim::Adam>(groups, o);
          }
          if (w == "NSGDA") return std::make_unique<optim::NSGDA>(groups, optim::NSGDAOptions{0.05, grouping, fused});
          if (w == "LREQAdam") {
            for (auto& g : groups) g.coefficients.assign(g.params.size(), 0.5);
            optim::LREQAdamOptions o;
            o.weight_decay = 0.01;
            o.fused = fused;
            return std::make_unique<optim::LREQAdam>(groups, o);
          }
          optim::AdaGraftOptions o;
          o.lr = 0.01;
          o.beta1 = 0.5;
          o.fused = fused;
          if (w == "AdaNSGDA") return std::make_unique<optim::AdaNSGDA>(groups, o);
          return std::make_unique<optim::AdaDir>(groups, o);
        };
        auto opt_ref = make(ref, false), opt_fus = make(fus, true);
        for (int s = 0; s < 3; ++s) {
          ref.randomize_grads(50 + s);
          fus.randomize_grads(50 + s);
          if (s == 1) {  // a parameter without a gradient takes no step (its own step count lags)
            ref.params[2].zero_grad();
            fus.params[2].zero_grad();
          }
          opt_ref->step();
          opt_fus->step();
          EXPECT_LE(rel_diff(fus.params, ref.params), bound) << "step " << s;
        }
        auto sr = opt_ref->state(), sf = opt_fus->state();
        ASSERT_EQ(sr.size(), sf.size());
        for (const auto& kv : sr) {
          if (kv.first == "group_stats") {
            EXPECT_LE(rel_diff({sf.at(kv.first)}, {kv.second}), 1e-12);
            continue;
          }
          EXPECT_LE(rel_diff({sf.at(kv.first)}, {kv.second}), bound) << kv.first;
        }
      }
    }
  }
}

// ---- calibration --------------------------------------------------------------------------------------------
// The Fig. 5 procedure: Ada-nSGDA records each group's mean ||A||; saved, loaded and applied, it is nSGDA's
// per-group step size, so nSGDA's step in each group has that norm.
TEST(Balanced, CalibrationRoundTripGivesNsgdaPerLayerStepSizes) {
  Model m = make_model(DType::Float64, 8, {6, 50, 9});
  std::vector<std::pair<std::string, Tensor>> named{{"D.w1", m.params[0]}, {"D.w2", m.params[1]}, {"D.b", m.params[2]}};
  optim::AdaGraftOptions o;
  o.lr = 0.01;
  optim::AdaNSGDA ada(optim::ParamGroup::layerwise(named), o);
  Vec sums(3, 0.0);
  for (int s = 0; s < 4; ++s) {
    m.randomize_grads(70 + s);
    if (s == 3) m.params[2].zero_grad();  // group D.b skips a step: its mean is over its own 3 steps
    ada.step();
    Vec on = ada.oracle_norms();
    for (int g = 0; g < 3; ++g)
      if (s < 3 || g < 2) sums[g] += on[g];
  }
  optim::Calibration c = ada.calibration();
  EXPECT_EQ(c.steps, 4);
  ASSERT_EQ(c.names, (std::vector<std::string>{"D.w1", "D.w2", "D.b"}));
  EXPECT_NEAR(c.values[0], sums[0] / 4, 1e-15);
  EXPECT_NEAR(c.values[2], sums[2] / 3, 1e-15);
  // beta1 = 0 at step 1: A = g / (|g| + eps) elementwise, so ||A|| is about sqrt(numel).
  const std::string path = temp_path("calibration.txt");
  ada.save_calibration(path);
  optim::Calibration back = optim::load_calibration(path);
  EXPECT_EQ(back.names, c.names);
  EXPECT_EQ(back.values, c.values);  // written with 17 significant digits: exact
  EXPECT_EQ(back.steps, 4);

  Model n = clone_model(m);
  optim::NSGDA nsgda(optim::ParamGroup::layerwise(
      std::vector<std::pair<std::string, Tensor>>{{"D.w1", n.params[0]}, {"D.w2", n.params[1]}, {"D.b", n.params[2]}}));
  nsgda.load_calibration(path, 0.5);
  for (int g = 0; g < 3; ++g) EXPECT_EQ(nsgda.lr(g), 0.5 * c.values[g]);
  std::vector<Vec> before;
  for (const Tensor& p : n.params) before.push_back(values(p));
  n.randomize_grads(99);
  nsgda.step();
  for (int g = 0; g < 3; ++g) EXPECT_NEAR(norm(sub(values(n.params[g]), before[g])), 0.5 * c.values[g], 1e-13);
  std::remove(path.c_str());
}

TEST(Balanced, CalibrationErrorsNameTheFirstMismatch) {
  Tensor a = param64(kP0), b = param64(kQ0);
  optim::Calibration c{{"G.w", "G.b"}, {0.5, 0.25}, 10};
  optim::NSGDA renamed(
      optim::ParamGroup::layerwise(std::vector<std::pair<std::string, Tensor>>{{"G.w", a}, {"D.b", b}}));
  expect_error([&] { renamed.apply_calibration(c); }, {"NSGDA.apply_calibration", "group 1", "'D.b'", "'G.b'"});
  optim::NSGDA fewer(optim::ParamGroup::layerwise(std::vector<std::pair<std::string, Tensor>>{{"G.w", a}}));
  expect_error([&] { fewer.apply_calibration(c); }, {"2 groups", "has 1", "calibration group 'G.b'"});
  optim::NSGDA more({a, b, param64(kQ0)});
  expect_error(
      [&] {
        more.apply_calibration(optim::Calibration{{"param0", "param1"}, {1, 1}, 1});
      },
      {"2 groups", "has 3", "optimizer group 'param2'"});
  optim::NSGDA unnamed({a, b});
  unnamed.apply_calibration(optim::Calibration{{"param0", "param1"}, {0.5, 0.25}, 1});
  EXPECT_EQ(unnamed.lr(1), 0.25);

  const std::string path = temp_path("calibration-bad.txt");
  expect_error([&] { optim::save_calibration(path, optim::Calibration{{"a\nb"}, {1.0}, 1}); }, {"single-line"});
  expect_error([&] { optim::save_calibration(path, optim::Calibration{{"a"}, {NAN}, 1}); }, {"finite"});
  expect_error([&] { optim::load_calibration(path + ".missing"); }, {"load_calibration", "cannot open"});
  for (const std::string& body : {std::string("not a calibration\n"), std::string("nash-calibration 1\nsteps 3\n"),
                                  std::string("nash-calibration 1\nsteps 3\ngroups 2\n0.5 a\n"),
                                  std::string("nash-calibration 1\nsteps 3\ngroups 1\nabc a\n"),
                                  std::string("nash-calibration 1\nsteps 3\ngroups 1\n-1 a\n"),
                                  std::string("nash-calibration 1\nsteps 3\ngroups 1\n1 a\nextra\n")}) {
    std::ofstream(path) << body;
    expect_error([&] { optim::load_calibration(path); }, {"load_calibration", path.c_str()});
  }
  std::remove(path.c_str());
  // A group that never had a gradient has no mean.
  optim::AdaNSGDA ada({a, b});
  set_grad(a, kG1);
  ada.step();
  expect_error([&] { ada.calibration(); }, {"AdaNSGDA.calibration", "'param1'", "has not taken a step"});
}

// ---- state --------------------------------------------------------------------------------------------------
TEST(Balanced, StateRoundTripResumesExactly) {
  Model m = make_model(DType::Float64, 2, {5, 9});
  Model copy = clone_model(m);
  optim::AdaNSGDA a(m.params), b(copy.params);
  for (int s = 0; s < 3; ++s) {
    m.randomize_grads(s);
    a.step();
  }
  for (std::size_t k = 0; k < m.params.size(); ++k) {
    NoGradGuard ng;
    copy.params[k].copy_(m.params[k]);
  }
  b.load_state(a.state());
  EXPECT_EQ(b.step_count(), 3);
  m.randomize_grads(9);
  copy.randomize_grads(9);
  a.step();
  b.step();
  for (std::size_t k = 0; k < m.params.size(); ++k) nash_test::expect_values(copy.params[k], values(m.params[k]), 0);
  EXPECT_EQ(a.calibration().values, b.calibration().values);
  auto bad = a.state();
  bad.erase("group1.param0.exp_avg");
  expect_error([&] { b.load_state(bad); }, {"AdaNSGDA.load_state", "group1.param0.exp_avg"});
  optim::NSGDA n(m.params);
  expect_error([&] { n.load_state(a.state()); }, {"NSGDA.load_state", "unknown state", "no per-parameter state"});
}

TEST(Balanced, StepChecksDevicesAndDtypes) {
  Tensor a = param64(kP0);
  Tensor f = from_vector(std::vector<float>{1, 2}, {2}).requires_grad_();
  optim::NSGDA opt({a, f});
  set_grad(a, kG1);
  f.set_grad(ones({2}));
  expect_error([&] { opt.step(); }, {"NSGDA.step", "one device and dtype"});
}

// ---- a small game -------------------------------------------------------------------------------------------
// Two players, each minimising its own loss: f1 = ||x||²/2 + x·By, f2 = ||y||²/2 - x·By (a strongly monotone game,
// equilibrium at 0). nSGDA with a linearly decaying step reaches it; the players' distance shrinks.
TEST(Balanced, NsgdaPlayersReachTheEquilibriumOfAQuadraticGame) {
  manual_seed(12);
  Tensor x = randn({4}, DType::Float64).requires_grad_(), y = randn({4}, DType::Float64).requires_grad_();
  Tensor B = randn({4, 4}, DType::Float64);
  optim::NSGDA ox({x}, {0.05}), oy({y}, {0.05});
  optim::LinearDecayLR sx(400), sy(400);
  const double d0 = std::sqrt(sum(square(x)).item() + sum(square(y)).item());
  for (int it = 0; it < 400; ++it) {
    ox.zero_grad();
    oy.zero_grad();
    Tensor bilinear = sum(x * matmul(B, y.unsqueeze(1)).squeeze(1));
    Tensor fx = sum(square(x)) * 0.5 + bilinear;
    Tensor fy = sum(square(y)) * 0.5 - bilinear;
    // Each player differentiates only its own loss with respect to its own parameters.
    x.set_grad(autograd::grad({fx}, {x}, {}, /*retain_graph=*/true)[0]);
    y.set_grad(autograd::grad({fy}, {y})[0]);
    sx.step(ox);
    sy.step(oy);
    ox.step();
    oy.step();
  }
  const double d = std::sqrt(sum(square(x)).item() + sum(square(y)).item());
  EXPECT_LT(d, 0.05 * d0) << "start " << d0 << " end " << d;
}

// ---- timing (run with --gtest_also_run_disabled_tests) -----------------------------------------------------
// DCGAN's 64x64 generator (nz 100, ngf 64): 5 transposed-conv weights and 8 batch-norm vectors, 3.58M floats.
TEST(Balanced, DISABLED_TimeFusedAgainstPerTensorOnDcganSizes) {
  const std::vector<int64_t> sizes{100 * 512 * 16, 512, 512, 512 * 256 * 16, 256, 256, 256 * 128 * 16, 128, 128,
                                   128 * 64 * 16,  64,  64,  64 * 3 * 16};
  for (const char* which : {"Adam", "NSGDA", "AdaNSGDA"}) {
    for (bool fused : {false, true}) {
      Model m = make_model(DType::Float32, 1, sizes);
      m.randomize_grads(2);
      std::unique_ptr<optim::Optimizer> opt;
      std::string w = which;
      if (w == "Adam") {
        optim::AdamOptions o;
        o.fused = fused;
        opt = std::make_unique<optim::Adam>(m.params, o);
      } else if (w == "NSGDA") {
        opt = std::make_unique<optim::NSGDA>(m.params, optim::NSGDAOptions{0.01, optim::Grouping::LayerWise, fused});
      } else {
        optim::AdaGraftOptions o;
        o.fused = fused;
        opt = std::make_unique<optim::AdaNSGDA>(m.params, o);
      }
      for (int i = 0; i < 3; ++i) opt->step();  // warm-up: state allocation, page faults
      std::vector<double> ms;
      for (int i = 0; i < 30; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        opt->step();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      std::printf("%-9s %-10s median %.2f ms  min %.2f ms  (13 tensors, 3.58M float32)\n", which,
                  fused ? "fused" : "per-tensor", ms[ms.size() / 2], ms[0]);
    }
  }
}
