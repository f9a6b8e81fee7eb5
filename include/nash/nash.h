// nash: a C++17/CUDA deep-learning mini-framework for GANs; include this one header for the whole public API.
#pragma once
#include "nash/core/autograd.h"
#include "nash/core/cuda.h"
#include "nash/core/device.h"
#include "nash/core/error.h"
#include "nash/core/gradcheck.h"
#include "nash/core/ops.h"
#include "nash/core/random.h"
#include "nash/core/tensor.h"
