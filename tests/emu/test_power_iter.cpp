// Power-iteration parity: the CUDA kernel (emulated always, real when a GPU answers), single and fused over many
// matrices, against the CPU kernel, bound ||dev - cpu|| / ||cpu|| <= 1e-4; SpectralNorm layers on the device.
#include <string>

#include "emu/device_test.h"
#include "support.h"

using namespace nash;

namespace {

constexpr double kPowerIterBound = 1e-4;  // a reduction-class bound: float sums in another order than the CPU's
constexpr double kConvBound = 1e-3;

double rel_error(const Tensor& dev, const Tensor& cpu) {
  std::vector<double> a = dev.to(Device::cpu()).to_vector<double>(), b = cpu.to_vector<double>();
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_FALSE(std::isnan(a[i])) << "element " << i << " is NaN on the device (unwritten output?)";
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

Tensor rnd(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, DType::Float32, Device::cpu(), &g);
}

Tensor unit_rnd(int64_t n, uint64_t seed) {
  Tensor z = rnd({n}, seed);
  return div(z, norm(z)).contiguous();
}

// A matrix with its CPU state and device copies; the device v starts unwritten (NaN-poisoned on emu-cuda), since the
// first half-step overwrites it.
struct Case {
  std::string name;
  Tensor w, u, v, dw, du, dv;
};

Case make_case(const std::string& name, const Tensor& w, uint64_t seed, Device d) {
  const int64_t rows = w.size(-2), cols = w.numel() / rows;
  Case c{name, w, unit_rnd(rows, seed), zeros({cols}), Tensor(), Tensor(), Tensor()};
  // A transposed view stays one on the device.
  c.dw = w.is_contiguous() ? w.to(d) : w.t().contiguous().to(d).t();
  c.du = c.u.to(d);
  c.dv = empty({cols}, DType::Float32, d);
  return c;
}

// Odd shapes that leave partial warps and blocks, a transposed (column-major) view, and (A, rows, K) tensors: a
// transposed convolution's weight (K = 3x3, fewer than a warp's 32 lanes, and K = 1).
std::vector<Case> make_cases(Device d) {
  std::vector<Case> cs;
  cs.push_back(make_case("3x7", rnd({3, 7}, 1), 11, d));
  cs.push_back(make_case("65x130", rnd({65, 130}, 2), 12, d));
  cs.push_back(make_case("257x9", rnd({257, 9}, 3), 13, d));
  cs.push_back(make_case("40x33 transposed", rnd({33, 40}, 4).t(), 14, d));
  cs.push_back(make_case("5x7x9", rnd({5, 7, 9}, 5), 15, d));
  cs.push_back(make_case("6x4x1", rnd({6, 4, 1}, 6), 16, d));
  cs.push_back(make_case("3x33x40", rnd({3, 33, 40}, 7), 17, d));
  return cs;
}

// Named *DeviceParity* so that tools/gpu-check's compute-sanitizer subset includes its real-GPU instances.
class PowerIterDeviceParity : public nash_test::DeviceTest {};

}  // namespace

TEST_P(PowerIterDeviceParity, SingleMatrixOddShapes) {
  for (int64_t n_iters : {1, 5}) {
    for (Case& c : make_cases(device_)) {
      SCOPED_TRACE(c.name + " n_iters=" + std::to_string(n_iters));
      EXPECT_EQ(c.dw.is_contiguous(), c.w.is_contiguous());
      power_iteration(c.w, c.u, c.v, n_iters);
      power_iteration(c.dw, c.du, c.dv, n_iters);
      EXPECT_LE(rel_error(c.du, c.u), kPowerIterBound);
      EXPECT_LE(rel_error(c.dv, c.v), kPowerIterBound);
    }
  }
}

TEST_P(PowerIterDeviceParity, FusedManyMatchesCpuPerMatrix) {
  std::vector<Case> cs = make_cases(device_);
  std::vector<PowerIterationItem> cpu_items, dev_items;
  std::vector<Tensor> u0;
  for (Case& c : cs) {
    cpu_items.push_back({c.w, c.u, c.v});
    dev_items.push_back({c.dw, c.du, c.dv});
    u0.push_back(c.u.clone());
  }
  power_iteration_many(cpu_items, 3);
  power_iteration_many(dev_items, 3);
  for (std::size_t k = 0; k < cs.size(); ++k) {
    const Case& c = cs[k];
    SCOPED_TRACE(c.name);
    EXPECT_LE(rel_error(c.du, c.u), kPowerIterBound);
    EXPECT_LE(rel_error(c.dv, c.v), kPowerIterBound);
    // The fused CPU path is the single kernel in a loop: a matrix alone gives the same numbers.
    Tensor v = zeros({c.v.numel()});
    power_iteration(c.w, u0[k], v, 3);
    nash_test::expect_close(u0[k], c.u, 0.0, 0.0);
  }
}

TEST_P(PowerIterDeviceParity, MoreMatricesThanOneLaunchHolds) {
  // 70 matrices: more than the 48 descriptors one launch carries, so a second launch is exercised.
  std::vector<Case> cs;
  for (int k = 0; k < 70; ++k)
    cs.push_back(make_case("m" + std::to_string(k), rnd({2 + k % 5, 3 + k % 7}, 100 + k), 200 + k, device_));
  std::vector<PowerIterationItem> cpu_items, dev_items;
  for (Case& c : cs) {
    cpu_items.push_back({c.w, c.u, c.v});
    dev_items.push_back({c.dw, c.du, c.dv});
  }
  power_iteration_many(cpu_items, 2);
  power_iteration_many(dev_items, 2);
  for (Case& c : cs) {
    SCOPED_TRACE(c.name);
    EXPECT_LE(rel_error(c.du, c.u), kPowerIterBound);
    EXPECT_LE(rel_error(c.dv, c.v), kPowerIterBound);
  }
}

TEST_P(PowerIterDeviceParity, SpectralNormLayersOnTheDevice) {
  manual_seed(31);
  auto make = [] {
    return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        nn::spectral_norm(std::make_shared<nn::ConvTranspose2d>(3, 4, 3, 1, 1)),
        std::make_shared<nn::LeakyReLU>(0.2), nn::spectral_norm(std::make_shared<nn::Conv2d>(4, 5, 3, 2, 1)),
        std::make_shared<nn::Flatten>(), nn::spectral_norm(std::make_shared<nn::Linear>(20, 2))});
  };
  manual_seed(32);
  auto cpu_net = make();
  manual_seed(32);
  auto dev_net = make();
  dev_net->to(device_);
  Tensor x = rnd({2, 3, 4, 4}, 33);
  // Per-forward updates, then the fused update of the whole model.
  EXPECT_LE(rel_error(dev_net->forward(x.to(device_)), cpu_net->forward(x)), kConvBound);
  EXPECT_EQ(nn::spectral_norm_update_all(*dev_net), 3);
  EXPECT_EQ(nn::spectral_norm_update_all(*cpu_net), 3);
  std::vector<nn::SpectralNorm*> dl = nn::spectral_norm_layers(*dev_net), cl = nn::spectral_norm_layers(*cpu_net);
  for (std::size_t k = 0; k < cl.size(); ++k) {
    SCOPED_TRACE("layer " + std::to_string(k));
    EXPECT_EQ(dl[k]->weight_u.device(), device_);
    EXPECT_LE(rel_error(dl[k]->weight_u, cl[k]->weight_u), kPowerIterBound);
    EXPECT_LE(rel_error(dl[k]->weight_v, cl[k]->weight_v), kPowerIterBound);
    EXPECT_LE(rel_error(dl[k]->sigma(), cl[k]->sigma()), kPowerIterBound);
  }
  EXPECT_LE(rel_error(dev_net->forward(x.to(device_)), cpu_net->forward(x)), kConvBound);
}

NASH_INSTANTIATE_DEVICE_TEST(PowerIterDeviceParity);
