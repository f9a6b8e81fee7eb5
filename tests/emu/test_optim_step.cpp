// The CUDA multi-tensor optimizer step on the emulated device (always) and a GPU (when one answers) against the
// CPU per-tensor reference: SGD (plain, momentum, Nesterov), Adam, LREQAdam, nSGDA, Ada-nSGDA and AdaDir over many
// odd-sized tensors (one spanning two 4096-element blocks, one misaligned for float4), layer-wise and global, with
// the step norms each kernel records; ||dev - cpu|| / ||cpu|| <= 1e-5.
#include <cmath>
#include <cstdint>
#include <memory>

#include "step_optimizers.h"
#include "emu/device_test.h"
#include "support.h"

using namespace nash;

namespace {

constexpr double kBound = 1e-5;

double rel_error(const std::vector<Tensor>& dev, const std::vector<Tensor>& cpu) {
  double num = 0, den = 0;
  for (std::size_t k = 0; k < dev.size(); ++k) {
    std::vector<double> a = dev[k].to(Device::cpu()).to_vector<double>(), b = cpu[k].to_vector<double>();
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_FALSE(std::isnan(a[i])) << "tensor " << k << " element " << i << " is NaN on the device";
      num += (a[i] - b[i]) * (a[i] - b[i]);
      den += b[i] * b[i];
    }
  }
  return std::sqrt(num / den);
}

double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

class OptimStep : public nash_test::DeviceTest {};

// 26 tensors: odd sizes, one over a 4096-element block (two blocks), and one leaf that starts 1 float into its
// storage. Sizes stay small: every emulated CUDA thread is a fiber.
std::vector<Tensor> cpu_params(uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> ps;
  for (int k = 0; k < 24; ++k)
    ps.push_back(randn({1 + 7 * k % 23 + (k % 5) * 31}, DType::Float32, Device::cpu(), &gen));
  ps.push_back(randn({4097}, DType::Float32, Device::cpu(), &gen));
  ps.push_back(randn({1030}, DType::Float32, Device::cpu(), &gen));
  return ps;
}

}  // namespace

TEST_P(OptimStep, FusedKernelsMatchTheCpuPerTensorReference) {
  for (const char* which : {"SGD", "SGDMomentum", "SGDNesterov", "Adam", "LREQAdam", "NSGDA", "AdaNSGDA", "AdaDir"}) {
    for (optim::Grouping grouping : {optim::Grouping::LayerWise, optim::Grouping::Global}) {
      SCOPED_TRACE(std::string(which) + (grouping == optim::Grouping::Global ? " global" : " layer-wise"));
      std::vector<Tensor> ref = cpu_params(1), dev;
      for (std::size_t k = 0; k < ref.size(); ++k) {
        if (k + 1 == ref.size()) {
          // Misaligned: a leaf viewing its storage from element 1 (the scalar path of the kernels).
          Tensor storage = empty({ref[k].numel() + 1}, DType::Float32, device_);
          Tensor view = storage.narrow(0, 1, ref[k].numel());
          view.copy_(ref[k].to(device_));
          dev.push_back(view.detach().requires_grad_());
        } else {
          dev.push_back(ref[k].to(device_).detach().requires_grad_());
        }
        ref[k] = ref[k].detach().requires_grad_();
      }
      // Both kernel paths run: float4 for the fresh allocations, scalar for the offset leaf.
      EXPECT_EQ(reinterpret_cast<uintptr_t>(dev[0].raw_data()) % 16, 0u);
      EXPECT_NE(reinterpret_cast<uintptr_t>(dev.back().raw_data()) % 16, 0u);
      auto opt_ref = nash_test::make_step_optimizer(which, optim::ParamGroup::grouped(ref, grouping), false);
      auto opt_dev = nash_test::make_step_optimizer(which, optim::ParamGroup::grouped(dev, grouping), true);
      opt_ref->record_step_norms(true);
      opt_dev->record_step_norms(true);
      for (int s = 0; s < 3; ++s) {
        Generator gen(10 + s);
        for (std::size_t k = 0; k < ref.size(); ++k) {
          Tensor g = randn(ref[k].shape(), DType::Float32, Device::cpu(), &gen);
          if (s == 1 && k == 3) continue;  // a parameter skipping a step
          ref[k].set_grad(g);
          dev[k].set_grad(g.to(device_));
        }
        if (s == 1) {
          ref[3].zero_grad();
          dev[3].zero_grad();
        }
        opt_ref->step();
        opt_dev->step();
        EXPECT_LE(rel_error(dev, ref), kBound) << "step " << s;
        const optim::StepNorms *nr = opt_ref->last_step_norms(), *nd = opt_dev->last_step_norms();
        ASSERT_TRUE(nr && nd);
        EXPECT_LE(rel_error(nd->grad_sq, nr->grad_sq), kBound) << "step " << s;
        EXPECT_LE(rel_error(nd->param_sq, nr->param_sq), kBound) << "step " << s;
        EXPECT_LE(rel_error(nd->update_sq, nr->update_sq), 1e-4) << "step " << s;
      }
      auto* f = dynamic_cast<optim::FusedOptimizer*>(opt_ref.get());
      if (f && std::string(which) != "LREQAdam") {  // the norm rules' per-group statistics
        auto* fd = dynamic_cast<optim::FusedOptimizer*>(opt_dev.get());
        EXPECT_LE(rel_error(fd->grad_norms(), f->grad_norms()), 1e-5);
        if (std::string(which) != "NSGDA") EXPECT_LE(rel_error(fd->oracle_norms(), f->oracle_norms()), 1e-5);
      }
      const auto dev_state = opt_dev->state();
      for (const auto& kv : opt_ref->state()) {
        if (kv.second.numel() < 2) continue;
        ASSERT_TRUE(dev_state.count(kv.first)) << kv.first;
        EXPECT_LE(rel_error({dev_state.at(kv.first)}, {kv.second}), kBound) << kv.first;
      }
    }
  }
}

// The invariants on the device: an nSGDA step has norm lr in every group; an Ada-nSGDA step has Adam's norm.
TEST_P(OptimStep, NormInvariantsHoldOnTheDevice) {
  std::vector<Tensor> cpu = cpu_params(2), ps, adam_ps;
  // Parameters near 0: the steps are measured as float32 differences, whose rounding scales with ulp(p).
  for (Tensor& p : cpu) p = p * 1e-3;
  for (const Tensor& p : cpu) {
    ps.push_back(p.to(device_).detach().requires_grad_());
    adam_ps.push_back(p.to(device_).detach().requires_grad_());
  }
  optim::NSGDA nsgda(ps, {0.03});
  optim::AdaGraftOptions go;
  go.eps = 1e-12;
  optim::AdaNSGDA ada(adam_ps, go);
  optim::AdamOptions ao;
  ao.beta1 = 0.0;
  ao.beta2 = 0.99;
  ao.eps = 1e-12;
  std::vector<Tensor> adam_cpu;
  for (const Tensor& p : cpu) adam_cpu.push_back(p.detach().clone().requires_grad_());
  optim::Adam adam(adam_cpu, ao);
  Generator gen(5);
  for (std::size_t k = 0; k < cpu.size(); ++k) {
    Tensor g = randn(cpu[k].shape(), DType::Float32, Device::cpu(), &gen) * std::pow(3.0, static_cast<double>(k % 7));
    ps[k].set_grad(g.to(device_));
    adam_ps[k].set_grad(g.to(device_));
    adam_cpu[k].set_grad(g);
  }
  nsgda.step();
  ada.step();
  adam.step();
  for (std::size_t k = 0; k < cpu.size(); ++k) {
    std::vector<double> before = cpu[k].to_vector<double>(), after = ps[k].to(Device::cpu()).to_vector<double>();
    std::vector<double> a_after = adam_ps[k].to(Device::cpu()).to_vector<double>(), r = adam_cpu[k].to_vector<double>();
    double n = 0, na = 0, nr = 0;
    for (std::size_t i = 0; i < before.size(); ++i) {
      n += (after[i] - before[i]) * (after[i] - before[i]);
      na += (a_after[i] - before[i]) * (a_after[i] - before[i]);
      nr += (r[i] - before[i]) * (r[i] - before[i]);
    }
    EXPECT_NEAR(std::sqrt(n), 0.03, 0.03 * 1e-5) << "tensor " << k;
    EXPECT_NEAR(std::sqrt(na) / std::sqrt(nr), 1.0, 1e-5) << "tensor " << k;
  }
}

NASH_INSTANTIATE_DEVICE_TEST(OptimStep);
