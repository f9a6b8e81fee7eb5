// `nash bimodal`: the two-mode GAN of "Dissecting adaptive methods in GANs" Section 3.1, trained by SGDA, nSGDA,
// Adam or Ada-nSGDA with batch size 1; reports which modes G's neurons learn, and sweeps step sizes over seeds.
#include "apps/bimodal.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "apps/cli.h"
#include "apps/plot.h"
#include "apps/workers.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/threads.h"
#include "nash/optim/balanced.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace apps {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

using WriteError = cli::OutputError;
using cli::prepare_output_dir;
using cli::write_atomic;

std::string fmt(double v, int precision = 6) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

double dot(const double* x, const double* y, int64_t n, int64_t stride_x = 1) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i * stride_x] * y[i];
  return s;
}

double sumsq(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v * v;
  return s;
}

// The generator's neurons are the columns of V (d x m_G, row-major); D's are the rows of W (m_D x d).
struct Probe {
  std::vector<double> u1, u2, ubar;
  int64_t d = 0;

  // cos(v_j, u1), cos(v_j, u2), cos(v_j, ubar) for every column j.
  std::vector<double> g_cosines(const Tensor& V) const {
    const int64_t m = V.size(1);
    const double* p = V.data_ptr<double>();
    std::vector<double> out(static_cast<std::size_t>(3 * m));
    for (int64_t j = 0; j < m; ++j) {
      const double* col = p + j;
      const double nrm = std::sqrt(dot_self(col, m));
      const double inv = nrm > 0 ? 1.0 / nrm : 0.0;
      out[3 * j] = dot(col, u1.data(), d, m) * inv;
      out[3 * j + 1] = dot(col, u2.data(), d, m) * inv;
      out[3 * j + 2] = dot(col, ubar.data(), d, m) * inv;
    }
    return out;
  }
  double dot_self(const double* col, int64_t stride) const {
    double s = 0;
    for (int64_t i = 0; i < d; ++i) s += col[i * stride] * col[i * stride];
    return s;
  }
  double w_cos(const Tensor& W, int64_t i, const std::vector<double>& u) const {
    const double* row = W.data_ptr<double>() + i * d;
    double nrm = std::sqrt(dot_self(row, 1));
    return nrm > 0 ? dot(row, u.data(), d) / nrm : 0.0;
  }
};

std::unique_ptr<optim::Optimizer> make_optimizer(const BimodalConfig& c, std::vector<optim::ParamGroup> groups,
                                                 double lr) {
  switch (c.optimizer) {
    case BimodalOptimizer::SGDA: {
      optim::SGDOptions o;
      o.lr = lr;
      return std::make_unique<optim::SGD>(std::move(groups), o);
    }
    case BimodalOptimizer::NSGDA: {
      optim::NSGDAOptions o;
      o.lr = lr;
      return std::make_unique<optim::NSGDA>(std::move(groups), o);
    }
    case BimodalOptimizer::Adam: {
      optim::AdamOptions o;  // beta1 = 0 as the paper studies it; beta2 as nash's Ada-nSGDA default
      o.lr = lr;
      o.beta1 = 0.0;
      o.beta2 = 0.99;
      return std::make_unique<optim::Adam>(std::move(groups), o);
    }
    case BimodalOptimizer::AdaNSGDA: {
      optim::AdaGraftOptions o;
      o.lr = lr;
      return std::make_unique<optim::AdaNSGDA>(std::move(groups), o);
    }
  }
  throw std::logic_error("bimodal: unknown optimizer");
}

std::vector<double> values(const Tensor& t) { return t.contiguous().to_vector<double>(); }

// ||after - before|| where before holds the values of the player's tensors before the step.
double moved(const std::vector<Tensor>& params, const std::vector<std::vector<double>>& before) {
  double s = 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const double* p = params[k].data_ptr<double>();
    for (std::size_t i = 0; i < before[k].size(); ++i) {
      const double dv = p[i] - before[k][i];
      s += dv * dv;
    }
  }
  return std::sqrt(s);
}

std::string csv_header(int64_t m_g) {
  std::string h = "step";
  for (int64_t j = 0; j < m_g; ++j) {
    const std::string v = ",v" + std::to_string(j);
    h += v + "_u1" + v + "_u2" + v + "_ubar";
  }
  return h + ",d_u1,d_u2,a,b,speed_d,speed_g,loss_d\n";
}

void write_plots(const fs::path& dir, const BimodalResult& r);

void write_outputs(const fs::path& dir, const BimodalResult& r) {
  const BimodalConfig& c = r.config;
  std::string s = csv_header(c.m_g);
  for (const BimodalRow& row : r.rows) {
    s += std::to_string(row.step);
    for (double v : row.g_cos) s += "," + fmt(v);
    for (double v : {row.d_cos_u1, row.d_cos_u2, row.a, row.b, row.speed_d, row.speed_g, row.loss_d})
      s += "," + fmt(v);
    s += "\n";
  }
  write_atomic(dir / "trajectory.csv", s);

  std::ostringstream o;
  o << "optimizer " << bimodal_optimizer_name(c.optimizer) << "\nlr_d " << fmt(c.lr_d) << "\nlr_g " << fmt(c.lr_g)
    << "\nsteps " << c.steps << "\nseed " << c.seed << "\nd " << c.d << "\ngamma " << fmt(c.gamma) << "\nm_d "
    << c.m_d << "\nm_g " << c.m_g << "\ninit_std " << fmt(c.init_std) << "\np_two " << fmt(c.p_two)
    << "\ngrouping " << (c.global_groups ? "global" : "layer") << "\nd_neuron " << r.d_neuron << "\ndiverged "
    << (r.diverged ? "yes at step " + std::to_string(r.diverged_at) : std::string("no"))
    << "\nfirst_step_with_both_modes " << r.first_both << "\nfirst_step_with_collapse " << r.first_collapse
    << "\noutcome " << r.verdict.outcome() << "\nbest_cos_u1 " << fmt(r.verdict.best_u1) << "\nbest_cos_u2 "
    << fmt(r.verdict.best_u2) << "\nbest_cos_ubar " << fmt(r.verdict.best_avg) << "\ntrain_seconds "
    << fmt(r.train_seconds) << "\n"
    << verdict_line(r.verdict, c.threshold) << "\n";
  write_atomic(dir / "summary.txt", o.str());
  if (c.plots) write_plots(dir, r);
}

}  // namespace

const char* bimodal_optimizer_name(BimodalOptimizer o) {
  switch (o) {
    case BimodalOptimizer::SGDA: return "sgda";
    case BimodalOptimizer::NSGDA: return "nsgda";
    case BimodalOptimizer::Adam: return "adam";
    case BimodalOptimizer::AdaNSGDA: return "ada-nsgda";
  }
  return "?";
}

BimodalOptimizer parse_bimodal_optimizer(const std::string& name) {
  for (BimodalOptimizer o :
       {BimodalOptimizer::SGDA, BimodalOptimizer::NSGDA, BimodalOptimizer::Adam, BimodalOptimizer::AdaNSGDA})
    if (name == bimodal_optimizer_name(o)) return o;
  NASH_CHECK(false, "bimodal: unknown optimizer '", name, "' (expected sgda, nsgda, adam or ada-nsgda)");
  return BimodalOptimizer::SGDA;
}

BimodalConfig BimodalConfig::resolve() const {
  BimodalConfig c = *this;
  NASH_CHECK(c.d >= 4, "bimodal: d must be >= 4, got ", c.d);
  const double ln_d = std::log(static_cast<double>(c.d));
  if (c.gamma <= 0) c.gamma = 1.0 / ln_d;
  if (c.m_d <= 0) c.m_d = std::max<int64_t>(1, std::llround(ln_d));
  if (c.m_g <= 0) c.m_g = 2 * c.m_d;
  if (c.init_std <= 0) c.init_std = 1.0 / (std::sqrt(static_cast<double>(c.d)) * ln_d);
  if (c.p_two < 0) c.p_two = 1.0 / static_cast<double>(c.d);
  NASH_CHECK(c.gamma < 1, "bimodal: gamma = <u1, u2> must be in (0, 1), got ", c.gamma);
  NASH_CHECK(c.m_g >= 1 && c.m_d >= 1, "bimodal: m_d and m_g must be >= 1, got ", c.m_d, " and ", c.m_g);
  NASH_CHECK(c.p_two <= 1, "bimodal: p_two must be a probability, got ", c.p_two);
  NASH_CHECK(c.p_two == 0 || c.m_g >= 2, "bimodal: p_two > 0 needs m_g >= 2");
  NASH_CHECK(std::isfinite(c.init_std), "bimodal: init_std must be finite, got ", c.init_std);
  NASH_CHECK(std::isfinite(c.lr_d) && c.lr_d > 0 && std::isfinite(c.lr_g) && c.lr_g > 0,
             "bimodal: learning rates must be finite and > 0, got lr_d ", c.lr_d, ", lr_g ", c.lr_g);
  NASH_CHECK(c.steps >= 1, "bimodal: steps must be >= 1, got ", c.steps);
  NASH_CHECK(c.threshold > 0 && c.threshold <= 1, "bimodal: threshold must be in (0, 1], got ", c.threshold);
  NASH_CHECK(c.log_every >= 0, "bimodal: log_every must be >= 0, got ", c.log_every);
  return c;
}

std::string BimodalVerdict::outcome() const {
  if (both()) return "both";
  if (average) return "average";
  if (u1 || u2) return "one";
  return "none";
}

std::string verdict_line(const BimodalVerdict& v, double threshold) {
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::ostringstream o;
  o << "modes learned: u1 " << yn(v.u1) << ", u2 " << yn(v.u2) << ", average-mode collapse " << yn(v.collapse())
    << "  (a G neuron learns a target when its cosine with it is >= " << fmt(threshold)
    << " and it is the closest of u1, u2, ubar=(u1+u2)/|u1+u2|; collapse: some neuron learns ubar and not both "
       "modes are learned; best cosines u1 "
    << fmt(v.best_u1, 3) << ", u2 " << fmt(v.best_u2, 3) << ", ubar " << fmt(v.best_avg, 3) << ")";
  return o.str();
}

BimodalVerdict classify_bimodal(const std::vector<double>& g_cos, double threshold) {
  BimodalVerdict v;
  for (std::size_t j = 0; j + 2 < g_cos.size(); j += 3) {
    const double c1 = g_cos[j], c2 = g_cos[j + 1], ca = g_cos[j + 2];
    v.best_u1 = std::max(v.best_u1, c1);
    v.best_u2 = std::max(v.best_u2, c2);
    v.best_avg = std::max(v.best_avg, ca);
    const double best = std::max({c1, c2, ca});
    if (!(best >= threshold)) continue;
    if (best == c1) v.u1 = true;
    else if (best == c2) v.u2 = true;
    else v.average = true;
  }
  return v;
}

Tensor bimodal_d_loss(const Tensor& W, const Tensor& a, const Tensor& b, const Tensor& V, const Tensor& x,
                      const Tensor& z) {
  NASH_CHECK(W.dim() == 2 && V.dim() == 2 && x.dim() == 2 && z.dim() == 2 && W.size(1) == V.size(0) &&
                 x.size(0) == V.size(0) && x.size(1) == 1 && z.size(0) == V.size(1) && z.size(1) == 1 &&
                 a.numel() == 1 && b.numel() == 1,
             "bimodal_d_loss: expected W (m_D, d), a (1), b (1), V (d, m_G), x (d, 1), z (m_G, 1), got W ",
             shape_str(W.shape()), ", a ", shape_str(a.shape()), ", b ", shape_str(b.shape()), ", V ",
             shape_str(V.shape()), ", x ", shape_str(x.shape()), ", z ", shape_str(z.shape()));
  const Tensor s = matmul(W, cat({x, matmul(V, z)}, 1));  // (m_D, 2): <w_i, X>, <w_i, G(z)>
  const double b_scale = 1.0 / std::sqrt(static_cast<double>(V.size(0)));
  const Tensor logits = a.reshape({1}) * sum(pow(s, 3.0), {0}) + b.reshape({1}) * b_scale;
  const Tensor signs = from_vector(std::vector<double>{-1.0, 1.0}, {2}).to(logits.dtype());
  return sum(softplus(logits * signs));
}

BimodalResult train_bimodal(const BimodalConfig& cfg_in) {
  BimodalResult r;
  r.config = cfg_in.resolve();
  const BimodalConfig& c = r.config;
  const bool write = !c.out_dir.empty();
  if (write) prepare_output_dir(c.out_dir);
  NumThreadsGuard threads(1);  // tensors of a few hundred numbers: threads only add overhead
  const int64_t d = c.d, m_d = c.m_d, m_g = c.m_g;
  const DType f64 = DType::Float64;
  const Device cpu = Device::cpu();

  // Modes: a random orthonormal pair (e1, e2), u1 = e1, u2 = gamma e1 + sqrt(1 - gamma^2) e2.
  Generator gen(c.seed);
  Probe probe;
  probe.d = d;
  {
    std::vector<double> g1 = values(randn({d}, f64, cpu, &gen)), g2 = values(randn({d}, f64, cpu, &gen));
    const double n1 = std::sqrt(sumsq(g1));
    for (double& v : g1) v /= n1;
    const double p = dot(g1.data(), g2.data(), d);
    for (int64_t i = 0; i < d; ++i) g2[i] -= p * g1[i];
    const double n2 = std::sqrt(sumsq(g2));
    probe.u1 = g1;
    probe.u2.resize(d);
    probe.ubar.resize(d);
    const double s = std::sqrt(1 - c.gamma * c.gamma), nbar = std::sqrt(2 + 2 * c.gamma);
    for (int64_t i = 0; i < d; ++i) {
      probe.u2[i] = c.gamma * g1[i] + s * g2[i] / n2;
      probe.ubar[i] = (probe.u1[i] + probe.u2[i]) / nbar;
    }
  }
  const Tensor x1 = from_vector(probe.u1, {d, 1}), x2 = from_vector(probe.u2, {d, 1});

  // Parametrization 3.1: small Gaussian W, V, a; b = 0.
  Tensor W = (randn({m_d, d}, f64, cpu, &gen) * c.init_std).requires_grad_();
  Tensor a = (randn({1}, f64, cpu, &gen) * c.init_std).requires_grad_();
  Tensor b = zeros({1}, f64).requires_grad_();
  Tensor V = (randn({d, m_g}, f64, cpu, &gen) * c.init_std).requires_grad_();
  const std::vector<Tensor> d_params{W, a, b}, g_params{V};
  const bool per_tensor = !c.global_groups && (c.optimizer == BimodalOptimizer::NSGDA ||
                                               c.optimizer == BimodalOptimizer::AdaNSGDA);
  auto opt_d = make_optimizer(c, per_tensor ? optim::ParamGroup::layerwise({{"W", W}, {"a", a}, {"b", b}})
                                            : optim::ParamGroup::global({{"W", W}, {"a", a}, {"b", b}}, "D"),
                              c.lr_d);
  auto opt_g = make_optimizer(c, optim::ParamGroup::global({{"V", V}}, "G"), c.lr_g);

  for (int64_t i = 0; i < m_d; ++i)
    if (std::abs(probe.w_cos(W, i, probe.u2)) > std::abs(probe.w_cos(W, r.d_neuron, probe.u2))) r.d_neuron = i;

  // D minimises loss_d = -L (it ascends L); G minimises L, so its gradient is loss_d's negated.
  std::vector<double> zbuf(static_cast<std::size_t>(m_g));

  auto record = [&](int64_t step, double speed_d, double speed_g, double loss) {
    BimodalRow row;
    row.step = step;
    row.g_cos = probe.g_cosines(V);
    row.a = a.item();
    const double orient = row.a < 0 ? -1.0 : 1.0;  // D depends on (a, w_i) through sign(a) w_i |a|^(1/3)
    row.d_cos_u1 = orient * probe.w_cos(W, r.d_neuron, probe.u1);
    row.d_cos_u2 = orient * probe.w_cos(W, r.d_neuron, probe.u2);
    row.b = b.item();
    row.speed_d = speed_d;
    row.speed_g = speed_g;
    row.loss_d = loss;
    r.rows.push_back(std::move(row));
  };
  if (c.log_every > 0) record(0, 0, 0, NAN);

  std::vector<std::vector<double>> before_d(3), before_g(1);
  std::vector<double> last_good_cos = probe.g_cosines(V);
  const Clock::time_point t0 = Clock::now();
  for (int64_t step = 1; step <= c.steps; ++step) {
    // Batch size 1: one data point and one latent per step; both players step from the same state (simultaneous).
    const Tensor& real = gen.next_uniform() < 0.5 ? x1 : x2;
    std::fill(zbuf.begin(), zbuf.end(), 0.0);
    const int64_t j = std::min<int64_t>(m_g - 1, static_cast<int64_t>(gen.next_uniform() * m_g));
    zbuf[j] = 1;
    if (c.p_two > 0 && gen.next_uniform() < c.p_two) {
      const int64_t k = std::min<int64_t>(m_g - 2, static_cast<int64_t>(gen.next_uniform() * (m_g - 1)));
      zbuf[k >= j ? k + 1 : k] = 1;
    }
    const Tensor z = from_vector(zbuf, {m_g, 1});

    const Tensor loss_d = bimodal_d_loss(W, a, b, V, real, z);
    opt_d->zero_grad();
    opt_g->zero_grad();
    loss_d.backward();
    V.grad().mul_(-1.0);

    for (std::size_t k = 0; k < 3; ++k) before_d[k] = values(d_params[k]);
    before_g[0] = values(V);
    opt_d->step();
    opt_g->step();

    const double loss = loss_d.item();
    const double norm_d = std::sqrt(sumsq(before_d[0]) + sumsq(before_d[1]) + sumsq(before_d[2]));
    const double norm_g = std::sqrt(sumsq(before_g[0]));
    const double speed_d = moved(d_params, before_d) / norm_d, speed_g = moved(g_params, before_g) / norm_g;
    if (!std::isfinite(loss) || !std::isfinite(speed_d) || !std::isfinite(speed_g)) {
      r.diverged = true;
      r.diverged_at = step;
      break;
    }
    last_good_cos = probe.g_cosines(V);
    const BimodalVerdict now = classify_bimodal(last_good_cos, c.threshold);
    if (r.first_both == 0 && now.both()) r.first_both = step;
    if (r.first_collapse == 0 && now.collapse()) r.first_collapse = step;
    if (c.log_every > 0 && (step % c.log_every == 0 || step == c.steps)) record(step, speed_d, speed_g, loss);
  }
  r.train_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.verdict = classify_bimodal(last_good_cos, c.threshold);
  if (write) write_outputs(c.out_dir, r);
  return r;
}

namespace {

// Fig. 3 of the paper from the trajectory: (a) relative speeds, (b) the tracked D neuron, (c/d) G's neurons.
void write_plots(const fs::path& dir, const BimodalResult& r) {
  if (r.rows.size() < 2) return;
  const BimodalConfig& c = r.config;
  const std::string run = std::string(bimodal_optimizer_name(c.optimizer)) + ", lr_D " + fmt(c.lr_d, 3) + ", lr_G " +
                          fmt(c.lr_g, 3) + ", seed " + std::to_string(c.seed);
  std::vector<double> steps;
  for (const BimodalRow& row : r.rows) steps.push_back(static_cast<double>(row.step));
  auto series = [&](const std::string& label, double BimodalRow::*field) {
    plot::Series s{label, steps, {}};
    for (const BimodalRow& row : r.rows) s.y.push_back(row.*field);
    return s;
  };
  try {
    plot::Figure a{"relative update speed ||Y(t+1) - Y(t)|| / ||Y(t)|| (" + run + ")", "step", "relative speed"};
    a.log_y = true;
    a.series = {series("D (W, a, b)", &BimodalRow::speed_d), series("G (V)", &BimodalRow::speed_g)};
    plot::save_png(a, (dir / "speeds.png").string());

    plot::Figure b{"D neuron " + std::to_string(r.d_neuron) + " (largest |initial cosine| with u2), oriented by "
                   "sign(a) (" + run + ")", "step", "cos(sign(a) w_i, u_l)"};
    b.ymin = -1;
    b.ymax = 1;
    b.series = {series("u1", &BimodalRow::d_cos_u1), series("u2", &BimodalRow::d_cos_u2)};
    plot::save_png(b, (dir / "d_neuron.png").string());

    std::vector<plot::Figure> panels;
    const char* target[3] = {"u1", "u2", "ubar = (u1+u2)/|u1+u2|"};
    for (int k = 0; k < 3; ++k) {
      plot::Figure f{std::string("G neurons vs ") + target[k] + " (" + run + ")", "step",
                     std::string("cos(v_j, ") + (k == 2 ? "ubar" : target[k]) + ")"};
      f.ymin = -1;
      f.ymax = 1;
      for (int64_t j = 0; j < c.m_g; ++j) {
        plot::Series s{"v" + std::to_string(j), steps, {}};
        for (const BimodalRow& row : r.rows) s.y.push_back(row.g_cos[static_cast<std::size_t>(3 * j + k)]);
        f.series.push_back(std::move(s));
      }
      plot::Series th{"threshold", {steps.front(), steps.back()}, {c.threshold, c.threshold}};
      th.rgb = 0x808080;
      f.series.push_back(th);
      panels.push_back(std::move(f));
    }
    plot::save_png(panels, (dir / "g_neurons.png").string());
  } catch (const Error& e) {
    throw WriteError(std::string("cannot write the plots: ") + e.what());
  }
}

}  // namespace

namespace {

// What a worker writes to its pipe per run (plain bytes: parent and child are the same binary).
struct Wire {
  int32_t flags;  // bit 0 u1, 1 u2, 2 average, 3 diverged, 4 failed
  int64_t diverged_at, first_both, first_collapse;
  double best_u1, best_u2, best_avg, seconds;
};

Wire run_one(const BimodalConfig& c, int64_t index) {
  Wire w{};
  try {
    BimodalResult r = train_bimodal(c);
    const BimodalVerdict& v = r.verdict;
    w.flags = (v.u1 ? 1 : 0) | (v.u2 ? 2 : 0) | (v.average ? 4 : 0) | (r.diverged ? 8 : 0);
    w.diverged_at = r.diverged_at;
    w.first_both = r.first_both;
    w.first_collapse = r.first_collapse;
    w.best_u1 = v.best_u1;
    w.best_u2 = v.best_u2;
    w.best_avg = v.best_avg;
    w.seconds = r.train_seconds;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nash bimodal: run %lld (seed %llu) failed: %s\n", static_cast<long long>(index),
                 static_cast<unsigned long long>(c.seed), e.what());
    w.flags = 16;
  }
  return w;
}

BimodalRunRecord to_record(const Wire& w) {
  BimodalRunRecord r;
  r.verdict.u1 = w.flags & 1;
  r.verdict.u2 = w.flags & 2;
  r.verdict.average = w.flags & 4;
  r.diverged = w.flags & 8;
  r.diverged_at = w.diverged_at;
  r.first_both = w.first_both;
  r.first_collapse = w.first_collapse;
  r.verdict.best_u1 = w.best_u1;
  r.verdict.best_u2 = w.best_u2;
  r.verdict.best_avg = w.best_avg;
  r.seconds = w.seconds;
  return r;
}


}  // namespace

std::vector<BimodalRunRecord> run_bimodal_batch(const std::vector<BimodalConfig>& runs, int jobs) {
  for (const BimodalConfig& c : runs) c.resolve();  // bad configs fail here, not inside a worker
  const int n = static_cast<int>(runs.size());
  jobs = std::max(1, std::min(jobs, n));
  std::vector<Wire> wires(runs.size());
  std::vector<std::string> lost(runs.size());
  run_forked<Wire>(
      "bimodal", runs.size(), jobs, [&](std::size_t i) { return run_one(runs[i], static_cast<int64_t>(i)); },
      [&](std::size_t i, const Wire* w, const std::string& failure) {
        if (w)
          wires[i] = *w;
        else
          lost[i] = failure;
      });
  for (int i = 0; i < n; ++i)
    NASH_CHECK(lost[i].empty(), "bimodal: run ", i, " (seed ", runs[i].seed, "): ", lost[i]);
  std::vector<BimodalRunRecord> out;
  for (int i = 0; i < n; ++i) {
    NASH_CHECK(!(wires[i].flags & 16), "bimodal: run ", i, " (seed ", runs[i].seed, ") failed (see above)");
    out.push_back(to_record(wires[i]));
  }
  return out;
}

std::vector<BimodalCellSummary> sweep_bimodal(const std::vector<BimodalConfig>& cells, uint64_t first_seed,
                                              int64_t seeds, int jobs) {
  NASH_CHECK(seeds >= 1, "bimodal: seeds must be >= 1, got ", seeds);
  std::vector<BimodalConfig> runs;
  for (const BimodalConfig& c : cells)
    for (int64_t s = 0; s < seeds; ++s) {
      BimodalConfig r = c;
      r.seed = first_seed + static_cast<uint64_t>(s);
      r.out_dir.clear();
      r.log_every = 0;
      r.quiet = true;
      runs.push_back(r);
    }
  std::vector<BimodalRunRecord> rec = run_bimodal_batch(runs, jobs);
  std::vector<BimodalCellSummary> out;
  for (std::size_t ci = 0; ci < cells.size(); ++ci) {
    BimodalCellSummary s;
    s.optimizer = cells[ci].optimizer;
    s.lr_d = cells[ci].lr_d;
    s.lr_g = cells[ci].lr_g;
    s.steps = cells[ci].steps;
    for (int64_t k = 0; k < seeds; ++k) {
      const BimodalRunRecord& r = rec[ci * static_cast<std::size_t>(seeds) + static_cast<std::size_t>(k)];
      ++s.runs;
      s.seconds += r.seconds;
      if (r.diverged) ++s.diverged;
      if (r.first_both > 0) ++s.ever_both;
      if (r.first_both > 0 && r.diverged) s.both_to_diverge = std::max(s.both_to_diverge, r.diverged_at - r.first_both);
      if (r.first_collapse > 0) ++s.ever_collapse;
      const std::string o = r.verdict.outcome();
      if (o == "both") ++s.both, s.both_kept += !r.diverged;
      else if (o == "average") ++s.average;
      else if (o == "one") ++s.one;
      else ++s.none;
    }
    out.push_back(s);
  }
  return out;
}

namespace {

// Defaults per optimizer, so that each player's step has a comparable norm: nSGDA moves a group by exactly lr;
// Adam and Ada-nSGDA (beta1 = 0) move each entry by about lr, a group of n entries by about lr * sqrt(n).
void default_lrs(BimodalOptimizer o, double& lr_d, double& lr_g) {
  switch (o) {
    case BimodalOptimizer::SGDA: lr_d = 1; lr_g = 1; return;
    case BimodalOptimizer::NSGDA: lr_d = 0.01; lr_g = 0.008; return;
    case BimodalOptimizer::Adam:
    case BimodalOptimizer::AdaNSGDA: lr_d = 2.5e-4; lr_g = 2e-4; return;
  }
}

std::string join_args(int argc, const char* const* argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i == 0) a = "nash";
    s += (i ? " " : "") + a;
  }
  return s;
}

std::string shell_line(const char* cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd, "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string machine_line() {
  std::string model = "unknown CPU";
  std::ifstream f("/proc/cpuinfo");
  for (std::string l; std::getline(f, l);)
    if (l.rfind("model name", 0) == 0) {
      std::size_t k = l.find(':');
      if (k != std::string::npos) model = l.substr(k + 2);
      break;
    }
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores";
}

// The grid of the sweep, fixed in code so that the table is reproducible from its command line. SGDA: step sizes
// over four magnitudes and lr_D/lr_G in {0.1, 1, 10}, each run for sgda_steps (most end earlier by diverging).
// nSGDA: T1 = 30 / min(lr) steps (Parametrization 3.1: T1 = Theta(1/lr_D)), the paper's lr_D slightly above lr_G,
// then other ratios, a smaller magnitude and global norms. Adam and Ada-nSGDA at their defaults. Last, both main
// algorithms again with the standard (not small) initialisation 1/sqrt(d).
struct SweepCell {
  BimodalConfig config;
  std::string variant;
};

std::vector<SweepCell> sweep_cells(const BimodalConfig& base, int64_t sgda_steps) {
  std::vector<SweepCell> cells;
  auto add = [&](BimodalOptimizer o, double lr_d, double lr_g, int64_t steps, const std::string& variant = "") {
    SweepCell c{base, variant};
    c.config.optimizer = o;
    c.config.lr_d = lr_d;
    c.config.lr_g = lr_g;
    c.config.steps = steps;
    cells.push_back(c);
    return &cells.back().config;
  };
  auto t1 = [](double lr_d, double lr_g) { return static_cast<int64_t>(std::ceil(30.0 / std::min(lr_d, lr_g))); };
  for (double lr_g : {0.1, 1.0, 10.0, 100.0})
    for (double ratio : {0.1, 1.0, 10.0}) add(BimodalOptimizer::SGDA, lr_g * ratio, lr_g, sgda_steps);
  for (auto lr : std::vector<std::pair<double, double>>{{0.01, 0.008}, {0.01, 0.01}, {0.01, 0.001}, {0.01, 0.1},
                                                        {0.001, 0.0008}})
    add(BimodalOptimizer::NSGDA, lr.first, lr.second, t1(lr.first, lr.second));
  add(BimodalOptimizer::NSGDA, 0.01, 0.008, t1(0.01, 0.008), "global norms")->global_groups = true;
  double lr_d, lr_g;
  default_lrs(BimodalOptimizer::Adam, lr_d, lr_g);
  add(BimodalOptimizer::Adam, lr_d, lr_g, 3000);
  default_lrs(BimodalOptimizer::AdaNSGDA, lr_d, lr_g);
  add(BimodalOptimizer::AdaNSGDA, lr_d, lr_g, 3000);
  const double std_init = 1.0 / std::sqrt(static_cast<double>(base.d));
  add(BimodalOptimizer::NSGDA, 0.01, 0.008, t1(0.01, 0.008), "init std 1/sqrt(d)")->init_std = std_init;
  add(BimodalOptimizer::SGDA, 1.0, 1.0, sgda_steps, "init std 1/sqrt(d)")->init_std = std_init;
  return cells;
}

std::string pct(int64_t k, int64_t n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld/%lld (%.0f%%)", static_cast<long long>(k), static_cast<long long>(n),
                n ? 100.0 * static_cast<double>(k) / static_cast<double>(n) : 0.0);
  return buf;
}

std::string sweep_table(const std::vector<BimodalCellSummary>& cells) {
  std::string t =
      "| optimizer | variant | η_D | η_G | η_D/η_G | steps | both modes, not diverged | both modes | average-mode "
      "collapse | one mode only | none | diverged | both modes at some step | collapse at some step | most steps from "
      "both modes to divergence | s/run |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const BimodalCellSummary& c : cells) {
    t += "| " + std::string(bimodal_optimizer_name(c.optimizer)) + " | " + (c.variant.empty() ? "" : c.variant) +
         " | " + fmt(c.lr_d, 4) + " | " + fmt(c.lr_g, 4) + " | " + fmt(c.lr_d / c.lr_g, 4) + " | " +
         std::to_string(c.steps) + " | **" + pct(c.both_kept, c.runs) + "** | " + pct(c.both, c.runs) + " | " +
         pct(c.average, c.runs) + " | " + pct(c.one, c.runs) + " | " + pct(c.none, c.runs) + " | " +
         pct(c.diverged, c.runs) + " | " + pct(c.ever_both, c.runs) + " | " + pct(c.ever_collapse, c.runs) + " | " +
         (c.both_to_diverge < 0 ? std::string("–") : std::to_string(c.both_to_diverge)) + " | " +
         fmt(c.runs ? c.seconds / static_cast<double>(c.runs) : 0.0, 3) + " |\n";
  }
  return t;
}

const char* kBegin = "<!-- nash bimodal --sweep: begin (generated; edit outside these markers) -->\n";
const char* kEnd = "<!-- nash bimodal --sweep: end -->\n";

}  // namespace

// A section without the markers gets them (and the table) at its end.
void write_markdown_section(const std::string& path_s, const std::string& title, const std::string& generated) {
  const fs::path path(path_s);
  std::string text;
  {
    std::ifstream f(path, std::ios::binary);
    if (f) text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  const std::string block = std::string(kBegin) + generated + kEnd;
  const std::string heading = "## " + title;
  std::size_t start = std::string::npos;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    if (line == heading) {
      start = pos;
      break;
    }
    if (eol == std::string::npos) break;
    pos = eol + 1;
  }
  if (start == std::string::npos) {
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += (text.empty() ? "" : "\n") + heading + "\n\n" + block;
  } else {
    std::size_t end = text.size();  // the next "## " heading, or the end of the file
    for (std::size_t pos = text.find('\n', start); pos != std::string::npos && pos + 1 < text.size();
         pos = text.find('\n', pos + 1))
      if (text.compare(pos + 1, 3, "## ") == 0) {
        end = pos + 1;
        break;
      }
    const std::size_t b = text.find(kBegin, start);
    const std::size_t e = b == std::string::npos ? std::string::npos : text.find(kEnd, b);
    if (b != std::string::npos && e != std::string::npos && e < end) {
      text = text.substr(0, b) + block + text.substr(e + std::strlen(kEnd));
    } else {
      std::string body = text.substr(start, end - start);
      while (body.size() >= 2 && body.compare(body.size() - 2, 2, "\n\n") == 0) body.pop_back();
      if (body.back() != '\n') body += '\n';
      text = text.substr(0, start) + body + "\n" + block + (end < text.size() ? "\n" : "") + text.substr(end);
    }
  }
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
  }
  write_atomic(path, text);
}

int run_bimodal(int argc, const char* const* argv, int first) {
  const char* name = "nash bimodal";
  const BimodalConfig def;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cli::Parser p(name,
                "The two-mode GAN of \"Dissecting adaptive methods in GANs\" (Section 3.1): modes u1, u2 in R^d\n"
                "with <u1,u2> = gamma, X = u1 or u2 with probability 1/2, a one-hot latent z (two entries with\n"
                "probability p-two), G(z) = Vz, D(X) = sigmoid(a sum_i <w_i,X>^3 + b/sqrt(d)), loss\n"
                "L = log D(X) + log(1 - D(G(z))) (D ascends, G descends), batch size 1, simultaneous updates,\n"
                "float64.\n"
                "Verdict on G's final neurons: a neuron learns the target (u1, u2 or ubar = (u1+u2)/|u1+u2|) closest\n"
                "to it when that cosine is >= --threshold; \"average-mode collapse\": a neuron learns ubar and not\n"
                "both modes are learned.\n"
                "Writes DIR/trajectory.csv (per step: each G neuron's cosines with u1, u2, ubar; D's neuron with the\n"
                "largest |initial cosine| to u2, oriented by sign(a); a, b; each player's relative speed\n"
                "||dY||/||Y||; -L), DIR/summary.txt and DIR/{speeds,d_neuron,g_neurons}.png; with --seeds N > 1,\n"
                "one DIR/seed<k>/ per seed.\n"
                "A run ends early when a value becomes non-finite (SGDA does; reported, and the verdict is then of\n"
                "the last finite state).\n"
                "--sweep runs SGDA over lr_G in {0.1, 1, 10, 100} x lr_D/lr_G in {0.1, 1, 10}, nSGDA at several\n"
                "ratios, Adam and Ada-nSGDA, each over --seeds seeds (default 20) on --jobs processes, and writes\n"
                "the table between markers in the \"## Bimodal game\" section of --results.\n"
                "Exit codes: 0 ok, 1 a run failed, 2 bad flags or an unwritable output.");
  p.add_string("optimizer", "nsgda", "sgda, nsgda, adam or ada-nsgda")
      .add_double("lr-d", 0.01, "D step size (shown: nsgda's default; sgda 1, adam/ada-nsgda 2.5e-4)",
                  0.0, 1e6, true)
      .add_double("lr-g", 0.008, "G step size (shown: nsgda's default; sgda 1, adam/ada-nsgda 2e-4)",
                  0.0, 1e6, true)
      .add_int("steps", def.steps, "training steps, one sample X and one latent z each (sgda's default: 40000)", 1,
               100000000)
      .add_int("sgda-steps", 40000, "--sweep: steps of the SGDA runs (a run also ends when it diverges)", 1,
               100000000)
      .add_int("seed", static_cast<int64_t>(def.seed), "random seed (modes, initialisation, samples)", 0)
      .add_int("seeds", 1, "run seeds seed..seed+N-1 and summarise (--sweep: default 20)", 1, 100000)
      .add_int("d", def.d, "dimension of the data", 4, 1 << 20)
      .add_double("gamma", 0, "<u1, u2> (0: 1/ln d)", 0.0, 1.0)
      .add_int("m-d", 0, "D neurons (0: round(ln d))", 0, 100000)
      .add_int("m-g", 0, "G neurons (0: 2 m_D)", 0, 100000)
      .add_double("init-std", 0, "per-entry std of W, V, a at initialisation (0: 1/(sqrt(d) ln d))", 0.0, 1e3)
      .add_double("p-two", -1, "probability of a latent with two non-zero entries (-1: 1/d)", -1.0, 1.0)
      .add_string("grouping", "layer", "nsgda/ada-nsgda norms: layer (W, a, b, V each) or global (one per player)")
      .add_double("threshold", def.threshold, "cosine at which a G neuron has learned a target", 0.0, 1.0, true)
      .add_int("log-every", def.log_every, "steps per trajectory row", 1, 100000000)
      .add_string("out", "./out/bimodal", "output directory DIR (created if needed; empty: no files)", true)
      .add_bool("plots", true, "write the PNG plots")
      .add_bool("sweep", false, "run the step-size sweep and write its table (see above)")
      .add_int("jobs", cores, "worker processes for --seeds and --sweep", 1, 1024)
      .add_string("results", "docs/RESULTS.md",
                  "Markdown file whose \"## Bimodal game\" section --sweep fills (empty: none)", true)
      .add_bool("quiet", false, "print only the verdict lines / table");
  try {
    p.parse(argc, argv, first);
  } catch (const cli::UsageError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  if (p.help_requested()) {
    std::cout << p.help();
    return 0;
  }
  BimodalConfig c;
  const std::string grouping = p.get_string("grouping");
  try {
    c.optimizer = parse_bimodal_optimizer(p.get_string("optimizer"));
    NASH_CHECK(grouping == "layer" || grouping == "global", "bimodal: --grouping must be layer or global, got '",
               grouping, "'");
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  default_lrs(c.optimizer, c.lr_d, c.lr_g);
  if (p.is_set("lr-d")) c.lr_d = p.get_double("lr-d");
  if (p.is_set("lr-g")) c.lr_g = p.get_double("lr-g");
  c.steps = p.is_set("steps") || c.optimizer != BimodalOptimizer::SGDA ? p.get_int("steps") : 40000;
  c.seed = static_cast<uint64_t>(p.get_int("seed"));
  c.d = p.get_int("d");
  c.gamma = p.get_double("gamma");
  c.m_d = p.get_int("m-d");
  c.m_g = p.get_int("m-g");
  c.init_std = p.get_double("init-std");
  c.p_two = p.get_double("p-two");
  c.global_groups = grouping == "global";
  c.threshold = p.get_double("threshold");
  c.log_every = p.get_int("log-every");
  c.plots = p.get_bool("plots");
  c.quiet = p.get_bool("quiet");
  const bool sweep = p.get_bool("sweep");
  const int jobs = static_cast<int>(p.get_int("jobs"));
  const int64_t seeds = sweep && !p.is_set("seeds") ? 20 : p.get_int("seeds");
  const std::string out = p.get_string("out");
  BimodalConfig resolved;
  try {
    resolved = c.resolve();
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  try {
    if (sweep) {
      const std::string results = p.get_string("results");
      if (!results.empty()) {  // fail on an unwritable results file before the minutes of runs
        fs::path rp(results);
        std::error_code ec;
        if (rp.has_parent_path()) fs::create_directories(rp.parent_path(), ec);
        std::ofstream probe(rp, std::ios::app);
        if (!probe) throw WriteError("cannot write results file '" + results + "'");
      }
      const std::vector<SweepCell> grid = sweep_cells(c, p.get_int("sgda-steps"));
      std::vector<BimodalConfig> cells;
      for (const SweepCell& g : grid) cells.push_back(g.config);
      const Clock::time_point t0 = Clock::now();
      std::vector<BimodalCellSummary> sum = sweep_bimodal(cells, c.seed, seeds, jobs);
      for (std::size_t k = 0; k < sum.size(); ++k) sum[k].variant = grid[k].variant;
      const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
      const std::string table = sweep_table(sum);
      std::cout << table;
      std::printf("wall %.1f s for %zu runs on %d worker processes\n", wall, cells.size() * seeds, jobs);
      if (!results.empty()) {
        std::string commit = shell_line("git rev-parse --short HEAD 2>/dev/null");
        if (commit.empty()) commit = "unknown";
        else if (!shell_line("git status --porcelain -- apps/bimodal.cpp apps/bimodal.h 2>/dev/null").empty())
          commit += " plus uncommitted changes to apps/bimodal.*";
        std::ostringstream g;
        g << "Command: `" << join_args(argc, argv) << "` (commit " << commit << "; " << machine_line() << "; wall "
          << fmt(wall, 4) << " s on " << jobs << " worker processes).\n\n"
          << "Setting: d = " << resolved.d << ", γ = <u1,u2> = " << fmt(resolved.gamma, 4)
          << ", m_D = " << resolved.m_d << ", m_G = " << resolved.m_g << ", init std " << fmt(resolved.init_std, 4)
          << " per entry for W, V, a (b = 0) unless the variant says otherwise, P[two latent entries] = "
          << fmt(resolved.p_two, 4) << ", batch size 1, simultaneous updates, float64, nSGDA/Ada-nSGDA norms "
          << (resolved.global_groups ? "global (one per player)" : "per tensor (W, a, b; V)")
          << " unless the variant says otherwise, seeds " << c.seed << ".." << c.seed + static_cast<uint64_t>(seeds) - 1
          << " for every row, the steps of each row (SGDA: a run also ends at its first non-finite value).\n\n"
          << "Verdict on G's neurons at the end: a neuron learns the closest of u1, u2, ubar = (u1+u2)/|u1+u2| when "
          << "its cosine with it is >= " << fmt(resolved.threshold) << "; \"both modes\": neurons learn u1 and u2; "
          << "\"average-mode collapse\": a neuron learns ubar and not both modes are learned; \"one mode only\": one "
          << "of u1, u2 and no ubar; \"none\": no neuron reaches the threshold. A diverged run is judged on its last "
          << "finite state and also counted under \"diverged\". \"At some step\": after any step of the run.\n\n"
          << table;
        write_markdown_section(results, "Bimodal game", g.str());
        std::printf("wrote the table into %s (## Bimodal game)\n", results.c_str());
      }
      return 0;
    }
    if (seeds > 1) {
      std::vector<BimodalConfig> runs;
      for (int64_t k = 0; k < seeds; ++k) {
        BimodalConfig r = c;
        r.seed = c.seed + static_cast<uint64_t>(k);
        r.out_dir = out.empty() ? "" : (fs::path(out) / ("seed" + std::to_string(r.seed))).string();
        if (!r.out_dir.empty()) prepare_output_dir(r.out_dir);
        runs.push_back(r);
      }
      const Clock::time_point t0 = Clock::now();
      std::vector<BimodalRunRecord> rec = run_bimodal_batch(runs, jobs);
      const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
      BimodalCellSummary s;
      s.optimizer = c.optimizer;
      s.lr_d = c.lr_d;
      s.lr_g = c.lr_g;
      for (std::size_t k = 0; k < rec.size(); ++k) {
        const BimodalRunRecord& r = rec[k];
        std::string extra = r.first_both ? " [both modes first at step " + std::to_string(r.first_both) + "]" : "";
        if (r.first_collapse) extra += " [collapse first at step " + std::to_string(r.first_collapse) + "]";
        if (r.diverged) extra += " [diverged at step " + std::to_string(r.diverged_at) + "]";
        std::printf("seed %llu: %s%s\n", static_cast<unsigned long long>(runs[k].seed),
                    verdict_line(r.verdict, resolved.threshold).c_str(), extra.c_str());
        ++s.runs;
        s.seconds += r.seconds;
        s.diverged += r.diverged;
        s.ever_both += r.first_both > 0;
        s.ever_collapse += r.first_collapse > 0;
        const std::string o = r.verdict.outcome();
        (o == "both" ? s.both : o == "average" ? s.average : o == "one" ? s.one : s.none) += 1;
        s.both_kept += o == "both" && !r.diverged;
      }
      std::printf("%s lr_d %s lr_g %s over seeds %llu..%llu: both modes %s, average-mode collapse %s, one mode only "
                  "%s, none %s, diverged %s; at some step: both modes %s, collapse %s; %.2f s/run, wall %.1f s\n",
                  bimodal_optimizer_name(c.optimizer), fmt(c.lr_d).c_str(), fmt(c.lr_g).c_str(),
                  static_cast<unsigned long long>(c.seed), static_cast<unsigned long long>(c.seed + seeds - 1),
                  pct(s.both, s.runs).c_str(), pct(s.average, s.runs).c_str(), pct(s.one, s.runs).c_str(),
                  pct(s.none, s.runs).c_str(), pct(s.diverged, s.runs).c_str(), pct(s.ever_both, s.runs).c_str(),
                  pct(s.ever_collapse, s.runs).c_str(), s.seconds / s.runs, wall);
      if (!out.empty()) std::printf("wrote %s/seed<k>/{trajectory.csv,summary.txt,*.png}\n", out.c_str());
      return 0;
    }
    c.out_dir = out;
    BimodalResult r = train_bimodal(c);
    std::printf("%s\n", verdict_line(r.verdict, resolved.threshold).c_str());
    if (!c.quiet) {
      const int64_t done = r.diverged ? r.diverged_at : c.steps;
      std::printf("%s lr_d %s lr_g %s seed %llu: %lld of %lld steps in %.2f s (%.0f steps/s)\n",
                  bimodal_optimizer_name(c.optimizer), fmt(c.lr_d).c_str(), fmt(c.lr_g).c_str(),
                  static_cast<unsigned long long>(c.seed), static_cast<long long>(done),
                  static_cast<long long>(c.steps), r.train_seconds, static_cast<double>(done) / r.train_seconds);
      if (!out.empty()) std::printf("wrote %s/{trajectory.csv,summary.txt%s}\n", out.c_str(),
                                    c.plots ? ",speeds.png,d_neuron.png,g_neurons.png" : "");
    }
    if (r.diverged)
      std::printf("diverged: a non-finite value at step %lld; the verdict is of the last finite state\n",
                  static_cast<long long>(r.diverged_at));
    if (r.first_both || r.first_collapse)
      std::printf("first step with both modes learned: %lld, with average-mode collapse: %lld (0: never)\n",
                  static_cast<long long>(r.first_both), static_cast<long long>(r.first_collapse));
    return 0;
  } catch (const WriteError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
