// Parameter initialisers (in place, under no-grad, from nash's seeded default generator).
#pragma once
#include "nash/core/tensor.h"

namespace nash {
namespace nn {
namespace init {

void uniform_(Tensor& t, double low, double high);
void normal_(Tensor& t, double mean = 0.0, double std = 1.0);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// fan_in of a weight: (out, in) -> in; (out, in, kh, kw) -> in*kh*kw.
int64_t fan_in(const Tensor& weight);
// PyTorch's default for Linear/Conv: kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_weight_(Tensor& weight);
// Glorot & Bengio's uniform initialisation times gain: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)), fan_out =
// size(0) * the receptive field (PyTorch's xavier_uniform_ for (out, in, kh, kw) and (out, in) weights).
void xavier_uniform_(Tensor& weight, double gain = 1.0);

}  // namespace init
}  // namespace nn
}  // namespace nash
