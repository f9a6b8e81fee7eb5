// foreach_lerp_: many in-place lerps in one pass of the backends' multi-tensor step kernel (nash/core/ops.h).
#include <cmath>

#include "core/ops/common.h"
#include "kernels/optim_step.h"

namespace nash {

void foreach_lerp_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src, double weight) {
  const char* op = "foreach_lerp_";
  NASH_CHECK(dst.size() == src.size(), op, ": ", dst.size(), " destinations but ", src.size(), " sources");
  NASH_CHECK(std::isfinite(weight), op, ": weight must be finite, got ", weight);
  if (dst.empty()) return;
  for (std::size_t i = 0; i < dst.size(); ++i) {
    NASH_CHECK(dst[i].defined() && src[i].defined(), op, ": pair ", i, " has an undefined tensor");
    NASH_CHECK(dst[i].shape() == src[i].shape(), op, ": pair ", i, ": destination ", shape_str(dst[i]),
               " and source ", shape_str(src[i]), " differ in shape");
    detail::require_same_device_dtype(op, {&dst[0], &dst[i], &src[i]});
    NASH_CHECK(dst[i].dtype() == DType::Float32 || dst[i].dtype() == DType::Float64, op, ": pair ", i, " is ",
               dtype_name(dst[i].dtype()), "; lerp takes float32 or float64");
    NASH_CHECK(dst[i].is_contiguous(), op, ": destination ", i, " must be contiguous");
    NASH_CHECK(!dst[i].requires_grad(), op, ": destination ", i, " requires grad; it is state written in place");
    NASH_CHECK(!detail::same_storage(dst[i], src[i]), op, ": pair ", i, ": destination and source share memory");
  }
  // Each destination is written once: two sharing memory would be written twice (concurrently, on CUDA).
  for (std::size_t i = 0; i < dst.size(); ++i)
    for (std::size_t j = i + 1; j < dst.size(); ++j)
      NASH_CHECK(dst[i].numel() == 0 || dst[j].numel() == 0 || !detail::same_storage(dst[i], dst[j]), op, ": destinations ",
                 i, " and ", j, " share memory");
  // SGD's elementwise rule without momentum is p -= step_size * (g + weight_decay * p); with g = src,
  // weight_decay = -1 and step_size = -weight it is p += weight * (src - p), one pass over every pair.
  detail::MultiTensorStep s;
  s.rule = detail::StepRule::SGD;
  s.device = dst[0].device();
  s.dtype = dst[0].dtype();
  s.weight_decay = -1.0;
  s.group_lr = {0.0};
  std::vector<Tensor> sources;  // contiguous, alive until the step has run
  sources.reserve(src.size());
  for (std::size_t i = 0; i < dst.size(); ++i) {
    if (dst[i].numel() == 0) continue;
    sources.push_back(src[i].detach().contiguous());
    detail::StepTensor t;
    t.param = dst[i].raw_data();
    t.grad = sources.back().raw_data();
    t.numel = dst[i].numel();
    t.step_size = -weight;
    s.tensors.push_back(t);
  }
  if (!s.tensors.empty()) detail::call(op, s.device, &detail::Backend::multi_tensor_step, s);
  for (const Tensor& d : dst) d.impl()->storage->bump_version();
}

}  // namespace nash
