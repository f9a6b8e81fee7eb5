// Optimizers: SGD and Adam steps against hand-computed PyTorch updates, parameter groups, skipped parameters,
// state round trips, in-place version bumps and a small regression that must converge.
#include <cmath>
#include <memory>

#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

Tensor param64(const std::vector<double>& v) {
  return from_vector(v, {static_cast<int64_t>(v.size())}).requires_grad_();
}
void set_grad(Tensor& p, const std::vector<double>& g) { p.set_grad(from_vector(g, p.shape())); }

// torch.optim.SGD's update, written out for one element sequence of gradients.
struct SgdRef {
  double lr, mom, damp, wd;
  bool nesterov;
  std::vector<double> buf;
  bool started = false;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    if (!started) buf.assign(p.size(), 0.0);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (mom != 0) {
        buf[i] = started ? mom * buf[i] + (1 - damp) * d : d;
        d = nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
    started = true;
  }
};

// torch.optim.Adam's update (amsgrad off).
struct AdamRef {
  double lr, b1, b2, eps, wd;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    if (t == 0) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * d;
      v[i] = b2 * v[i] + (1 - b2) * d * d;
      double mhat = m[i] / (1 - std::pow(b1, t)), vhat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
};

const std::vector<double> kP0{0.5, -1.25, 2.0, 0.1}, kG1{0.3, -0.7, 1.1, -0.05}, kG2{-0.2, 0.4, 0.9, 0.6};

}  // namespace

TEST(Optim, SgdPlainStep) {
  Tensor p = param64(kP0);
  optim::SGD opt({p}, {0.1});
  set_grad(p, kG1);
  opt.step();
  std::vector<double> want = kP0;
  SgdRef{0.1, 0, 0, 0, false}.step(want, kG1);
  nash_test::expect_values(p, want, 1e-15);
  EXPECT_EQ(opt.step_count(), 1);
  EXPECT_TRUE(opt.state().count("step_count"));
  EXPECT_EQ(opt.state().size(), 1u);  // no momentum buffers without momentum
}

TEST(Optim, SgdMomentumDampeningWeightDecayTwoSteps) {
  struct Case {
    double mom, damp, wd;
    bool nesterov;
  };
  for (Case c : {Case{0.9, 0.0, 0.0, false}, Case{0.9, 0.3, 0.01, false}, Case{0.8, 0.0, 0.05, true}}) {
    Tensor p = param64(kP0);
    optim::SGDOptions o;
    o.lr = 0.05;
    o.momentum = c.mom;
    o.dampening = c.damp;
    o.weight_decay = c.wd;
    o.nesterov = c.nesterov;
    optim::SGD opt({p}, o);
    SgdRef ref{0.05, c.mom, c.damp, c.wd, c.nesterov};
    std::vector<double> want = kP0;
    for (const auto& g : {kG1, kG2}) {
      set_grad(p, g);
      opt.step();
      ref.step(want, g);
      nash_test::expect_values(p, want, 1e-14);
    }
    nash_test::expect_values(opt.state().at("group0.param0.momentum_buffer"), ref.buf, 1e-14);
  }
  expect_error([] { optim::SGD({param64(kP0)}, {0.1, 0.0, 0.0, 0.0, true}); }, {"SGD", "nesterov", "momentum > 0"});
}

TEST(Optim, AdamTwoStepsWithAndWithoutFirstMoment) {
  for (double b1 : {0.9, 0.0}) {
    for (double wd : {0.0, 0.1}) {
      Tensor p = param64(kP0);
      optim::AdamOptions o;
      o.lr = 0.01;
      o.beta1 = b1;
      o.beta2 = 0.99;
      o.eps = 1e-6;
      o.weight_decay = wd;
      optim::Adam opt({p}, o);
      AdamRef ref{0.01, b1, 0.99, 1e-6, wd};
      std::vector<double> want = kP0;
      for (const auto& g : {kG1, kG2}) {
        set_grad(p, g);
        opt.step();
        ref.step(want, g);
        nash_test::expect_values(p, want, 1e-14);
      }
      auto st = opt.state();
      nash_test::expect_values(st.at("group0.param0.exp_avg"), ref.m, 1e-15);
      nash_test::expect_values(st.at("group0.param0.exp_avg_sq"), ref.v, 1e-15);
      EXPECT_EQ(st.at("group0.param0.step").item(), 2);
      if (b1 == 0.0 && wd == 0.0) nash_test::expect_values(st.at("group0.param0.exp_avg"), kG2, 0);  // m is just g
    }
  }
}

TEST(Optim, AdamFloat32MatchesFloat64Reference) {
  Tensor p = from_vector(std::vector<float>{0.5f, -1.25f, 2.0f, 0.1f}, {4}).requires_grad_();
  optim::Adam opt({p});
  AdamRef ref{1e-3, 0.9, 0.999, 1e-8, 0.0};
  std::vector<double> want = kP0;
  for (const auto& g : {kG1, kG2}) {
    p.set_grad(from_vector(g, {4}).to(DType::Float32));
    opt.step();
    ref.step(want, g);
  }
  nash_test::expect_values(p, want, 1e-6);
}

TEST(Optim, LargeParametersTakeTheParallelLoop) {
  // Above the OpenMP grain: the threaded loops must give the same elementwise result.
  const int64_t n = 100000;
  Tensor p = randn({n}, DType::Float64).requires_grad_(), q = p.detach().clone().requires_grad_();
  Tensor g = randn({n}, DType::Float64);
  optim::Adam adam({p}, {0.01});
  optim::SGD sgd({q}, {0.01, 0.9, 0.0, 1e-3, true});
  AdamRef aref{0.01, 0.9, 0.999, 1e-8, 0.0};
  SgdRef sref{0.01, 0.9, 0.0, 1e-3, true};
  std::vector<double> pw = p.to_vector<double>(), qw = q.to_vector<double>(), gv = g.to_vector<double>();
  for (int it = 0; it < 2; ++it) {
    p.set_grad(g);
    q.set_grad(g);
    adam.step();
    sgd.step();
    aref.step(pw, gv);
    sref.step(qw, gv);
  }
  nash_test::expect_values(p, pw, 1e-14);
  nash_test::expect_values(q, qw, 1e-14);
}

TEST(Optim, GroupsHavePerGroupLearningRates) {
  Tensor a = param64(kP0), b = param64(kP0);
  optim::SGD opt(std::vector<optim::ParamGroup>{{{a}, -1, "default"}, {{b}, 0.5, "fast"}}, {0.1});
  EXPECT_EQ(opt.lr(0), 0.1);
  EXPECT_EQ(opt.lr(1), 0.5);
  set_grad(a, kG1);
  set_grad(b, kG1);
  opt.step();
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(a.to_vector<double>()[i], kP0[i] - 0.1 * kG1[i], 1e-15);
    EXPECT_NEAR(b.to_vector<double>()[i], kP0[i] - 0.5 * kG1[i], 1e-15);
  }
  opt.set_lr(1, 0.25);
  EXPECT_EQ(opt.lr(1), 0.25);
  opt.set_lr(0.0);
  EXPECT_EQ(opt.lr(0), 0.0);
  EXPECT_EQ(opt.param_groups()[1].name, "fast");
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined() || b.grad().defined());
  expect_error([&] { opt.set_lr(5, 0.1); }, {"SGD.set_lr", "group 5"});
  expect_error([&] { optim::Adam({a, a}); }, {"Adam", "more than once"});
}

TEST(Optim, ParametersWithoutGradAreSkipped) {
  Tensor a = param64(kP0), b = param64(kP0);
  optim::Adam opt({a, b}, {0.1});
  set_grad(a, kG1);
  opt.step();
  nash_test::expect_values(b, kP0, 0);
  EXPECT_NE(a.to_vector<double>(), kP0);
  auto st = opt.state();
  EXPECT_TRUE(st.count("group0.param0.exp_avg"));
  EXPECT_FALSE(st.count("group0.param1.exp_avg"));
  // b's first real step is its own step 1: full bias correction, so |update| = lr for Adam's first step.
  set_grad(b, kG2);
  a.zero_grad();
  opt.step();
  EXPECT_EQ(opt.state().at("group0.param1.step").item(), 1);
  EXPECT_EQ(opt.state().at("group0.param0.step").item(), 1);
  EXPECT_NEAR(b.to_vector<double>()[0], kP0[0] + 0.1, 1e-6);
  EXPECT_EQ(opt.step_count(), 2);
}

// One step over parameters at different step counts (a and c at their second step, b between them at its first):
// each gets its own bias correction, whatever the order the step meets the counts in.
TEST(Optim, AdamBiasCorrectionFollowsEachParametersOwnStepCount) {
  Tensor a = param64(kP0), b = param64(kP0), c = param64(kP0);
  optim::AdamOptions o;
  o.lr = 0.01;
  o.beta1 = 0.9;
  o.beta2 = 0.99;
  o.eps = 1e-6;
  optim::Adam opt({a, b, c}, o);
  AdamRef ra{0.01, 0.9, 0.99, 1e-6, 0.0}, rb = ra, rc = ra;
  std::vector<double> wa = kP0, wb = kP0, wc = kP0;
  set_grad(a, kG1);
  set_grad(c, kG2);
  opt.step();  // b has no gradient yet
  ra.step(wa, kG1);
  rc.step(wc, kG2);
  set_grad(a, kG2);
  set_grad(b, kG1);
  set_grad(c, kG1);
  opt.step();
  ra.step(wa, kG2);
  rb.step(wb, kG1);
  rc.step(wc, kG1);
  nash_test::expect_values(a, wa, 1e-14);
  nash_test::expect_values(b, wb, 1e-14);
  nash_test::expect_values(c, wc, 1e-14);
  EXPECT_EQ(opt.state().at("group0.param1.step").item(), 1);
  EXPECT_EQ(opt.state().at("group0.param2.step").item(), 2);
}

// A gradient that carries autograd history (made under create_graph) is read, never recorded through or changed.
TEST(Optim, GradientsWithHistoryAreReadDetached) {
  Tensor p = param64(kP0), q = param64(kP0);
  Tensor x = from_vector(std::vector<double>{1.0, 2.0, -1.0, 0.5}, {4}).requires_grad_();
  // p's gradient is 2x (a tensor with a grad_fn that requires grad).
  Tensor gx = autograd::grad({sum(mul(x, x))}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  ASSERT_TRUE(gx.requires_grad());
  p.set_grad(gx);
  set_grad(q, {2.0, 4.0, -2.0, 1.0});
  optim::Adam opt({p, q}, {0.05});
  opt.step();
  nash_test::expect_values(p, q.to_vector<double>(), 0);  // the same update as a plain gradient of equal values
  EXPECT_TRUE(p.grad().requires_grad());                  // the stored gradient is untouched
  nash_test::expect_values(p.grad(), {2.0, 4.0, -2.0, 1.0}, 0);
}

TEST(Optim, StateRoundTripResumesExactly) {
  Tensor a = param64(kP0), b = param64(kP0);
  optim::AdamOptions o;
  o.lr = 0.05;
  optim::Adam opt_a({a}, o);
  for (const auto& g : {kG1, kG2, kG1}) {
    set_grad(a, g);
    opt_a.step();
  }
  {
    NoGradGuard ng;
    b.copy_(a);
  }
  optim::Adam opt_b({b}, o);
  auto st = opt_a.state();
  opt_b.load_state(st);
  EXPECT_EQ(opt_b.step_count(), 3);
  set_grad(a, kG2);
  set_grad(b, kG2);
  opt_a.step();
  opt_b.step();
  nash_test::expect_values(b, a.to_vector<double>(), 0);
  // The saved state is a copy, not a view of the live state.
  EXPECT_EQ(st.at("group0.param0.step").item(), 3);

  Tensor s = param64(kP0);
  optim::SGD sgd({s}, {0.1, 0.9});
  set_grad(s, kG1);
  sgd.step();
  optim::SGD sgd2({param64(kP0)}, {0.1, 0.9});
  sgd2.load_state(sgd.state());
  nash_test::expect_values(sgd2.state().at("group0.param0.momentum_buffer"), kG1, 0);

  auto bad = st;
  bad["group0.param0.exp_avg"] = zeros({3}, DType::Float64);
  expect_error([&] { opt_b.load_state(bad); }, {"Adam.load_state", "group0.param0.exp_avg", "[3]", "[4]"});
  bad = st;
  bad["group1.param0.exp_avg"] = zeros({4}, DType::Float64);
  expect_error([&] { opt_b.load_state(bad); }, {"group1.param0.exp_avg", "group 1"});
  bad = st;
  bad.erase("group0.param0.step");
  expect_error([&] { opt_b.load_state(bad); }, {"group0.param0.step"});
  expect_error([&] { sgd2.load_state({{"group0.param0.velocity", zeros({4})}}); }, {"group0.param0.velocity"});
}

TEST(Optim, StepBumpsVersionAndChecksLayout) {
  Tensor p = param64(kP0);
  Tensor y = sum(square(p));  // saves p for backward
  set_grad(p, kG1);
  optim::SGD opt({p}, {0.1});
  opt.step();
  expect_error([&] { y.backward(); }, {"modified in place"});

  Tensor base = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor q = base.t().detach().requires_grad_();
  q.set_grad(ones({3, 2}, DType::Float64));
  optim::SGD bad({q}, {0.1});
  expect_error([&] { bad.step(); }, {"SGD.step", "contiguous"});
}

TEST(Optim, BroadcastGradientsAreReadDensely) {
  // sum's backward hands an expanded (stride-0) gradient to the leaf.
  Tensor p = param64(kP0);
  sum(p).backward();
  optim::SGD opt({p}, {0.5});
  opt.step();
  std::vector<double> want;
  for (double v : kP0) want.push_back(v - 0.5);
  nash_test::expect_values(p, want, 1e-15);
}

TEST(Optim, AdamFitsALine) {
  // y = 3x + 1 with a Linear(1, 1): the optimizer's in-place updates must be seen by forward for this to converge.
  manual_seed(5);
  nn::Linear lin(1, 1);
  Tensor x = randn({64, 1});
  Tensor y = x * 3.0 + 1.0;
  optim::AdamOptions o;
  o.lr = 0.05;
  optim::Adam opt(lin.parameters(), o);
  for (int it = 0; it < 600; ++it) {
    opt.zero_grad();
    mse_loss(lin(x), y).backward();
    opt.step();
  }
  EXPECT_NEAR(lin.weight.item(), 3.0, 1e-2);
  EXPECT_NEAR(lin.bias.item(), 1.0, 1e-2);
}

// The step norms the multi-tensor kernels record while they write the parameters equal sums of squares taken from
// snapshots, per group, for every rule, fused and per-tensor; a parameter without a gradient does not count.
TEST(Optim, StepNormsMatchSnapshotsOfTheParameters) {
  for (const char* which : {"SGD", "Adam", "NSGDA", "AdaDir"}) {
    for (bool fused : {true, false}) {
      SCOPED_TRACE(std::string(which) + (fused ? " fused" : " per-tensor"));
      Generator gen(3);
      std::vector<Tensor> ps;
      for (int64_t n : {70000, 33, 5}) ps.push_back(randn({n}, DType::Float64, Device::cpu(), &gen).requires_grad_());
      std::vector<optim::ParamGroup> groups{{{ps[0], ps[1]}, -1, "a"}, {{ps[2]}, 0.5, "b"}};
      std::unique_ptr<optim::Optimizer> opt;
      if (std::string(which) == "SGD") {
        optim::SGDOptions o{0.1, 0.9, 0.0, 0.01, true};
        o.fused = fused;
        opt = std::make_unique<optim::SGD>(groups, o);
      } else if (std::string(which) == "Adam") {
        optim::AdamOptions o;
        o.fused = fused;
        opt = std::make_unique<optim::Adam>(groups, o);
      } else if (std::string(which) == "NSGDA") {
        opt = std::make_unique<optim::NSGDA>(groups, optim::NSGDAOptions{0.05, {}, fused});
      } else {
        optim::AdaGraftOptions o;
        o.fused = fused;
        opt = std::make_unique<optim::AdaDir>(groups, o);
      }
      ASSERT_TRUE(opt->can_record_step_norms());
      EXPECT_EQ(opt->last_step_norms(), nullptr);
      opt->record_step_norms(true);
      for (int step = 0; step < 2; ++step) {
        std::vector<std::vector<double>> before;
        for (std::size_t k = 0; k < ps.size(); ++k) {
          before.push_back(ps[k].to_vector<double>());
          ps[k].set_grad(randn(ps[k].shape(), DType::Float64, Device::cpu(), &gen));
        }
        if (step == 1) ps[1].zero_grad();
        std::vector<std::vector<double>> grads;
        for (const Tensor& p : ps) grads.push_back(p.grad().defined() ? p.grad().to_vector<double>() : std::vector<double>{});
        opt->step();
        const optim::StepNorms* n = opt->last_step_norms();
        ASSERT_NE(n, nullptr);
        ASSERT_EQ(n->grad_sq.size(), 2u);
        double want[2][3] = {{0, 0, 0}, {0, 0, 0}};
        for (std::size_t k = 0; k < ps.size(); ++k) {
          if (grads[k].empty()) continue;
          const int g = k < 2 ? 0 : 1;
          std::vector<double> after = ps[k].to_vector<double>();
          for (std::size_t i = 0; i < after.size(); ++i) {
            want[g][0] += grads[k][i] * grads[k][i];
            want[g][1] += before[k][i] * before[k][i];
            want[g][2] += (after[i] - before[k][i]) * (after[i] - before[k][i]);
          }
        }
        for (int g = 0; g < 2; ++g) {
          EXPECT_NEAR(n->grad_sq[g], want[g][0], 1e-10 * want[g][0]) << "group " << g << " step " << step;
          EXPECT_NEAR(n->param_sq[g], want[g][1], 1e-10 * want[g][1]) << "group " << g << " step " << step;
          EXPECT_NEAR(n->update_sq[g], want[g][2], 1e-9 * want[g][2]) << "group " << g << " step " << step;
        }
        EXPECT_NEAR(n->update_norm(), std::sqrt(want[0][2] + want[1][2]), 1e-9 * n->update_norm());
      }
      opt->record_step_norms(false);
      ps[0].set_grad(ps[0].detach().clone());
      opt->step();
      EXPECT_EQ(opt->last_step_norms(), nullptr) << "a step that recorded nothing reports nothing";
    }
  }
}
