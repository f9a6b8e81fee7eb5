// CPU elementwise kernels: unary, binary, where, copy, fill, axpy over strided operands.
#include <algorithm>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/strided.h"

namespace nash {
namespace cpu {

namespace {

// Each row's body works on its own copy of the functor: parameters read through the caller's reference (a
// slope, a scalar operand) might alias the output, so GCC reloaded them after every store and would not
// vectorize the loop; with leaky_relu's select that was a scalar loop with an unpredictable branch per element.
template <class T, class F>
void unary_typed(const F& fn, const Tensor& x, const Tensor& out) {
  const T* xp = x.data_ptr<T>();
  T* op = out.data_ptr<T>();
  for_each_row<2>(out.shape(), {&out.strides(), &x.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& s) {
                    const F f = fn;
                    T* o = op + off[0];
                    const T* a = xp + off[1];
                    if (s[0] == 1 && s[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(a[i * s[1]]);
                    }
                  });
}

template <class T, class F>
void binary_typed(const F& f, const Tensor& a, const Tensor& b, const Tensor& out) {
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  T* op = out.data_ptr<T>();
  for_each_row<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& s) {
                    T* o = op + off[0];
                    const T* x = ap + off[1];
                    const T* y = bp + off[2];
                    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                    } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {
                      const T yv = *y;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                    } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
                      const T xv = *x;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(x[i * s[1]], y[i * s[2]]);
                    }
                  });
}

}  // namespace

void unary(math::Unary op, double a, double b, const Tensor& x, const Tensor& out) {
  if (out.dtype() == DType::Float32) {
    math::visit_unary<float>(op, {float(a), float(b)}, [&](auto f) { unary_typed<float>(f, x, out); });
  } else {
    math::visit_unary<double>(op, {a, b}, [&](auto f) { unary_typed<double>(f, x, out); });
  }
}

void binary(math::Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.dtype() == DType::Float32) {
    math::visit_binary<float>(op, [&](auto f) { binary_typed<float>(f, a, b, out); });
  } else {
    math::visit_binary<double>(op, [&](auto f) { binary_typed<double>(f, a, b, out); });
  }
}

namespace {
template <class T>
void where_typed(const Tensor& c, const Tensor& a, const Tensor& b, const Tensor& out) {
  const T *cp = c.data_ptr<T>(), *ap = a.data_ptr<T>(), *bp = b.data_ptr<T>();
  T* op = out.data_ptr<T>();
  for_each_row<4>(out.shape(), {&out.strides(), &c.strides(), &a.strides(), &b.strides()},
                  [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& s) {
                    for (int64_t i = 0; i < n; ++i)
                      op[off[0] + i * s[0]] =
                          cp[off[1] + i * s[1]] != T(0) ? ap[off[2] + i * s[2]] : bp[off[3] + i * s[3]];
                  });
}
template <class T>
void copy_typed(const Tensor& src, const Tensor& dst) {
  const T* sp = src.data_ptr<T>();
  T* dp = dst.data_ptr<T>();
  for_each_row<2>(dst.shape(), {&dst.strides(), &src.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& s) {
                    if (s[0] == 1 && s[1] == 1) {
                      std::copy(sp + off[1], sp + off[1] + n, dp + off[0]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) dp[off[0] + i * s[0]] = sp[off[1] + i * s[1]];
                    }
                  });
}
template <class S, class D>
void convert_typed(const Tensor& src, const Tensor& dst) {
  const S* sp = src.data_ptr<S>();
  D* dp = dst.data_ptr<D>();
  for_each_row<2>(dst.shape(), {&dst.strides(), &src.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& s) {
                    for (int64_t i = 0; i < n; ++i) dp[off[0] + i * s[0]] = static_cast<D>(sp[off[1] + i * s[1]]);
                  });
}
}  // namespace

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.dtype() == DType::Float32) where_typed<float>(cond, a, b, out);
  else where_typed<double>(cond, a, b, out);
}

void copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype()) {
    if (dst.dtype() == DType::Float32) copy_typed<float>(src, dst);
    else copy_typed<double>(src, dst);
  } else if (src.dtype() == DType::Float32) {
    convert_typed<float, double>(src, dst);
  } else {
    convert_typed<double, float>(src, dst);
  }
}

void fill(const Tensor& dst, double value) {
  auto run = [&](auto zero) {
    using T = decltype(zero);
    T* dp = dst.data_ptr<T>();
    const T v = static_cast<T>(value);
    for_each_row<1>(dst.shape(), {&dst.strides()},
                    [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& s) {
                      for (int64_t i = 0; i < n; ++i) dp[off[0] + i * s[0]] = v;
                    });
  };
  if (dst.dtype() == DType::Float32) run(0.0f);
  else run(0.0);
}

void axpy(const Tensor& src, const Tensor& dst, double alpha) {
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const T* s = src.data_ptr<T>();
    T* d = dst.data_ptr<T>();
    const T al = static_cast<T>(alpha);
    const int64_t n = dst.numel();
    if (n < kParallelGrain) {
      for (int64_t i = 0; i < n; ++i) d[i] += al * s[i];
      return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) d[i] += al * s[i];
  };
  if (dst.dtype() == DType::Float32) run(0.0f);
  else run(0.0);
}

}  // namespace cpu
}  // namespace nash
