// CUDA elementwise kernels: the math functors of kernels/math.h over dense (16-byte vectorised) or strided operands.
#include "kernels/cuda/backend.h"
#include "kernels/cuda/meta.h"
#include "kernels/math.h"

namespace nash {
namespace NASH_CUDA_NS {

namespace {
constexpr unsigned kThreads = 256;

// Dense path: four elements per thread through float4 when the pointers are 16-byte aligned.
template <class F>
__global__ void unary_dense(const float* __restrict__ x, float* __restrict__ y, int64_t n, F f, bool vec) {
  int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * 4;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x * 4;
  for (; i < n; i += step) {
    if (vec && i + 4 <= n) {
      float4 v = *reinterpret_cast<const float4*>(x + i);
      v.x = f(v.x);
      v.y = f(v.y);
      v.z = f(v.z);
      v.w = f(v.w);
      *reinterpret_cast<float4*>(y + i) = v;
    } else {
      for (int64_t j = i; j < n && j < i + 4; ++j) y[j] = f(x[j]);
    }
  }
}

template <class F>
__global__ void unary_strided(const float* __restrict__ x, float* __restrict__ y, int64_t n, Strided<2> m, F f) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[2];
    m.offsets(i, off);
    y[off[0]] = f(x[off[1]]);
  }
}

template <class F>
__global__ void binary_dense(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, int64_t n,
                             F f, bool vec) {
  int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * 4;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x * 4;
  for (; i < n; i += step) {
    if (vec && i + 4 <= n) {
      float4 u = *reinterpret_cast<const float4*>(a + i);
      float4 v = *reinterpret_cast<const float4*>(b + i);
      float4 r;
      r.x = f(u.x, v.x);
      r.y = f(u.y, v.y);
      r.z = f(u.z, v.z);
      r.w = f(u.w, v.w);
      *reinterpret_cast<float4*>(y + i) = r;
    } else {
      for (int64_t j = i; j < n && j < i + 4; ++j) y[j] = f(a[j], b[j]);
    }
  }
}

template <class F>
__global__ void binary_strided(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y,
                               int64_t n, Strided<3> m, F f) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[3];
    m.offsets(i, off);
    y[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

__global__ void where_strided(const float* __restrict__ c, const float* __restrict__ a, const float* __restrict__ b,
                              float* __restrict__ y, int64_t n, Strided<4> m) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[4];
    m.offsets(i, off);
    y[off[0]] = c[off[1]] != 0.f ? a[off[2]] : b[off[3]];
  }
}

__global__ void fill_strided(float* __restrict__ y, int64_t n, Strided<1> m, float v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[1];
    m.offsets(i, off);
    y[off[0]] = v;
  }
}

__global__ void axpy_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += alpha * x[i];
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

void unary(math::Unary op, double a, double b, const Tensor& x, const Tensor& out) {
  require_float32("unary", out);
  const int64_t n = out.numel();
  const float* xp = x.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  math::visit_unary<float>(op, {static_cast<float>(a), static_cast<float>(b)}, [&](auto f) {
    if (dense(x, out.shape()) && out.is_contiguous()) {
      bool vec = aligned16(xp) && aligned16(yp);
      launch("unary_dense", unary_dense<decltype(f)>, dim3(blocks_for((n + 3) / 4, kThreads)), dim3(kThreads), 0,
             current_stream(), xp, yp, n, f, vec);
    } else {
      const Tensor* ops[2] = {&out, &x};
      launch("unary_strided", unary_strided<decltype(f)>, dim3(blocks_for(n, kThreads)), dim3(kThreads), 0,
             current_stream(), xp, yp, n, make_strided<2>(out.shape(), ops), f);
    }
  });
}

void binary(math::Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  require_float32("binary", out);
  const int64_t n = out.numel();
  const float *ap = a.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  math::visit_binary<float>(op, [&](auto f) {
    if (dense(a, out.shape()) && dense(b, out.shape()) && out.is_contiguous()) {
      bool vec = aligned16(ap) && aligned16(bp) && aligned16(yp);
      launch("binary_dense", binary_dense<decltype(f)>, dim3(blocks_for((n + 3) / 4, kThreads)), dim3(kThreads), 0,
             current_stream(), ap, bp, yp, n, f, vec);
    } else {
      const Tensor* ops[3] = {&out, &a, &b};
      launch("binary_strided", binary_strided<decltype(f)>, dim3(blocks_for(n, kThreads)), dim3(kThreads), 0,
             current_stream(), ap, bp, yp, n, make_strided<3>(out.shape(), ops), f);
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  require_float32("where", out);
  const int64_t n = out.numel();
  const Tensor* ops[4] = {&out, &cond, &a, &b};
  launch("where", where_strided, dim3(blocks_for(n, kThreads)), dim3(kThreads), 0, current_stream(),
         cond.data_ptr<float>(), a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), n,
         make_strided<4>(out.shape(), ops));
}

void copy(const Tensor& src, const Tensor& dst) {
  require_float32("copy", dst);
  NASH_CHECK(src.dtype() == dst.dtype(), "copy: CUDA copies do not convert dtypes (", dtype_name(src.dtype()), " to ",
             dtype_name(dst.dtype()), ")");
  unary(math::Unary::MulScalar, 1.0, 0.0, src, dst);
}

void fill(const Tensor& dst, double value) {
  require_float32("fill", dst);
  if (dst.is_contiguous()) {
    fill_raw(dst.data_ptr<float>(), dst.numel(), DType::Float32, value, current_stream());
    return;
  }
  const Tensor* ops[1] = {&dst};
  const int64_t n = dst.numel();
  launch("fill_strided", fill_strided, dim3(blocks_for(n, kThreads)), dim3(kThreads), 0, current_stream(),
         dst.data_ptr<float>(), n, make_strided<1>(dst.shape(), ops), static_cast<float>(value));
}

void axpy(const Tensor& src, const Tensor& dst, double alpha) {
  require_float32("axpy", dst);
  const int64_t n = dst.numel();
  launch("axpy", axpy_kernel, dim3(blocks_for(n, kThreads)), dim3(kThreads), 0, current_stream(), src.data_ptr<float>(),
         dst.data_ptr<float>(), n, static_cast<float>(alpha));
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
