// gradcheck / gradgradcheck: analytic gradients against central finite differences.
#include "nash/core/gradcheck.h"

#include <cmath>
#include <sstream>

#include "nash/core/autograd.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"

namespace nash {
namespace autograd {

namespace {
// Scalar objective sum(f(x) * v) with a projection v fixed per call.
double eval_scalar(const TensorFn& f, const std::vector<Tensor>& in, Tensor& v, Generator& gen) {
  NoGradGuard ng;
  Tensor out = f(in);
  if (!v.defined()) v = randn(out.shape(), out.dtype(), out.device(), &gen);
  return sum(mul(out, v)).item();
}
}  // namespace

GradcheckResult gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, double eps, double atol,
                          double rtol) {
  GradcheckResult res;
  Generator gen(1234);
  Tensor v;
  eval_scalar(f, inputs, v, gen);  // fixes v's shape and values

  std::vector<Tensor> diff_inputs;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) diff_inputs.push_back(t);
  NASH_CHECK(!diff_inputs.empty(), "gradcheck: no input requires grad");

  Tensor out = f(inputs);
  Tensor obj = sum(mul(out, v));
  std::vector<Tensor> analytic(diff_inputs.size());
  if (obj.requires_grad())
    analytic = grad({obj}, diff_inputs, {}, false, false, /*allow_unused=*/true);

  for (std::size_t k = 0; k < diff_inputs.size(); ++k) {
    const Tensor& x = diff_inputs[k];
    NASH_CHECK(x.is_contiguous() && x.device().is_cpu(), "gradcheck: inputs must be contiguous CPU tensors");
    std::vector<double> an = analytic[k].defined() ? analytic[k].to_vector<double>()
                                                   : std::vector<double>(static_cast<std::size_t>(x.numel()), 0.0);
    for (int64_t i = 0; i < x.numel(); ++i) {
      auto poke = [&](double delta) {
        NoGradGuard ng;
        if (x.dtype() == DType::Float64) x.data_ptr<double>()[i] += delta;
        else x.data_ptr<float>()[i] += static_cast<float>(delta);
      };
      double orig = x.dtype() == DType::Float64 ? x.data_ptr<double>()[i] : x.data_ptr<float>()[i];
      poke(eps);
      double fp = eval_scalar(f, inputs, v, gen);
      poke(-2 * eps);
      double fm = eval_scalar(f, inputs, v, gen);
      if (x.dtype() == DType::Float64) x.data_ptr<double>()[i] = orig;
      else x.data_ptr<float>()[i] = static_cast<float>(orig);
      double num = (fp - fm) / (2 * eps);
      double err = std::fabs(an[i] - num);
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (!(err <= atol + rtol * std::fabs(num)) && res.ok) {
        res.ok = false;
        std::ostringstream os;
        os << "input " << k << " " << x.str() << " element " << i << ": analytic " << an[i] << " vs numeric " << num
           << " (|diff| " << err << ")";
        res.message = os.str();
      }
    }
  }
  return res;
}

GradcheckResult gradgradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, double eps, double atol,
                              double rtol) {
  Generator gen(4321);
  Tensor v;
  std::vector<Tensor> w;
  auto first_grads = [&](const std::vector<Tensor>& in) -> Tensor {
    std::vector<Tensor> diff;
    for (const Tensor& t : in)
      if (t.requires_grad()) diff.push_back(t);
    EnableGradGuard on(true);
    Tensor out = f(in);
    if (!v.defined()) v = randn(out.shape(), out.dtype(), out.device(), &gen);
    std::vector<Tensor> gs = grad({sum(mul(out, v))}, diff, {}, true, true, true);
    if (w.empty())
      for (const Tensor& d : diff) w.push_back(randn(d.shape(), d.dtype(), d.device(), &gen));
    Tensor total = zeros({}, diff[0].dtype(), diff[0].device());
    for (std::size_t j = 0; j < gs.size(); ++j)
      if (gs[j].defined()) total = add(total, sum(mul(gs[j], w[j])));
    return total;
  };
  return gradcheck(first_grads, inputs, eps, atol, rtol);
}

}  // namespace autograd
}  // namespace nash
