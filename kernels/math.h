// Elementwise arithmetic written once as __host__ __device__ functors, instantiated by the CPU and CUDA backends.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define NASH_HD __host__ __device__ __forceinline__
#else
#define NASH_HD inline
#endif

namespace nash {
namespace math {

// Which elementwise op a backend runs; the same enum is used by every backend.
enum class Unary {
  Neg, Sqrt, Exp, Log, Abs, Square, Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Clamp,
  PowScalar, AddScalar, MulScalar, RSubScalar, RDivScalar, Sign, Gt, Ge, Lt, Le, LeakyReluSlope
};
enum class Binary { Add, Sub, Mul, Div, Pow, Eq };
enum class Reduce { Sum, Max, Min };

// Parameters of a unary op (slope, bounds, exponent, scalar operand).
template <class T>
struct UnaryParams {
  T a = 0, b = 0;
};

template <class T> NASH_HD T sigmoid_of(T x) {
  // Stable on both sides: never exponentiates a large positive number.
  if (x >= T(0)) { T z = std::exp(-x); return T(1) / (T(1) + z); }
  T z = std::exp(x);
  return z / (T(1) + z);
}
template <class T> NASH_HD T softplus_of(T x) {
  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
  return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
}

template <Unary op, class T>
struct UnaryF {
  UnaryParams<T> p;
  NASH_HD T operator()(T x) const {
    if constexpr (op == Unary::Neg) return -x;
    else if constexpr (op == Unary::Sqrt) return std::sqrt(x);
    else if constexpr (op == Unary::Exp) return std::exp(x);
    else if constexpr (op == Unary::Log) return std::log(x);
    else if constexpr (op == Unary::Abs) return std::fabs(x);
    else if constexpr (op == Unary::Square) return x * x;
    else if constexpr (op == Unary::Relu) return x <= T(0) ? T(0) : x;  // NaN stays NaN
    else if constexpr (op == Unary::LeakyRelu) return x > T(0) ? x : p.a * x;
    else if constexpr (op == Unary::LeakyReluSlope) return x > T(0) ? T(1) : p.a;  // d leaky_relu / dx
    else if constexpr (op == Unary::Sigmoid) return sigmoid_of(x);
    else if constexpr (op == Unary::Tanh) return std::tanh(x);
    else if constexpr (op == Unary::Softplus) return softplus_of(x);
    else if constexpr (op == Unary::Clamp) return x < p.a ? p.a : (x > p.b ? p.b : x);
    else if constexpr (op == Unary::PowScalar) return std::pow(x, p.a);
    else if constexpr (op == Unary::AddScalar) return x + p.a;
    else if constexpr (op == Unary::MulScalar) return x * p.a;
    else if constexpr (op == Unary::RSubScalar) return p.a - x;
    else if constexpr (op == Unary::RDivScalar) return p.a / x;
    else if constexpr (op == Unary::Sign) return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    else if constexpr (op == Unary::Gt) return x > p.a ? T(1) : T(0);
    else if constexpr (op == Unary::Ge) return x >= p.a ? T(1) : T(0);
    else if constexpr (op == Unary::Lt) return x < p.a ? T(1) : T(0);
    else return x <= p.a ? T(1) : T(0);  // Le
  }
};

template <Binary op, class T>
struct BinaryF {
  NASH_HD T operator()(T a, T b) const {
    if constexpr (op == Binary::Add) return a + b;
    else if constexpr (op == Binary::Sub) return a - b;
    else if constexpr (op == Binary::Mul) return a * b;
    else if constexpr (op == Binary::Div) return a / b;
    else if constexpr (op == Binary::Pow) return std::pow(a, b);
    else return a == b ? T(1) : T(0);  // Eq
  }
};

// Calls f(UnaryF<op, T>{params}) for the runtime op, so a backend writes one loop per functor.
template <class T, class F>
void visit_unary(Unary op, UnaryParams<T> p, F&& f) {
  switch (op) {
#define NASH_UNARY_CASE(name) case Unary::name: f(UnaryF<Unary::name, T>{p}); break;
    NASH_UNARY_CASE(Neg) NASH_UNARY_CASE(Sqrt) NASH_UNARY_CASE(Exp) NASH_UNARY_CASE(Log) NASH_UNARY_CASE(Abs)
    NASH_UNARY_CASE(Square) NASH_UNARY_CASE(Relu) NASH_UNARY_CASE(LeakyRelu) NASH_UNARY_CASE(Sigmoid)
    NASH_UNARY_CASE(Tanh) NASH_UNARY_CASE(Softplus) NASH_UNARY_CASE(Clamp) NASH_UNARY_CASE(PowScalar)
    NASH_UNARY_CASE(AddScalar) NASH_UNARY_CASE(MulScalar) NASH_UNARY_CASE(RSubScalar) NASH_UNARY_CASE(RDivScalar)
    NASH_UNARY_CASE(Sign) NASH_UNARY_CASE(Gt) NASH_UNARY_CASE(Ge) NASH_UNARY_CASE(Lt) NASH_UNARY_CASE(Le)
    NASH_UNARY_CASE(LeakyReluSlope)
#undef NASH_UNARY_CASE
  }
}

template <class T, class F>
void visit_binary(Binary op, F&& f) {
  switch (op) {
    case Binary::Add: f(BinaryF<Binary::Add, T>{}); break;
    case Binary::Sub: f(BinaryF<Binary::Sub, T>{}); break;
    case Binary::Mul: f(BinaryF<Binary::Mul, T>{}); break;
    case Binary::Div: f(BinaryF<Binary::Div, T>{}); break;
    case Binary::Pow: f(BinaryF<Binary::Pow, T>{}); break;
    case Binary::Eq: f(BinaryF<Binary::Eq, T>{}); break;
  }
}

}  // namespace math
}  // namespace nash
