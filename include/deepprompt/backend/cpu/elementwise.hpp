#pragma once
// Elementwise CPU kernels on raw contiguous arrays (no autodiff): binary and scalar
// arithmetic, the bias broadcast and its reduction, activations and their backward passes.
//
// Conventions (all kernels): T is float or double; n, rows, cols >= 0; pointers address
// arrays of the stated shape (row-major); an output may alias an input of the same shape
// unless said otherwise. Backward kernels ACCUMULATE into their gradient output (dx += ...),
// and a nullptr gradient output makes them a no-op. Vectorised with xsimd, threaded with
// OpenMP above simd::parallel_threshold elements; no heap allocation.
#include "deepprompt/backend/cpu/simd.hpp"
#include "deepprompt/core/device.hpp"
#include "deepprompt/backend/math_constants.hpp"

#include <utility>

namespace deepprompt::cpu {

// ---------------------------------------------------------------------------------------
// Binary and scalar arithmetic.

// a, b, y: (n).  ensures: y = a + b.
template <class T>
void add(const T* a, const T* b, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u, simd::batch<T> v) { return u + v; }, a, b);
}

// a, b, y: (n).  ensures: y = a - b.
template <class T>
void sub(const T* a, const T* b, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u, simd::batch<T> v) { return u - v; }, a, b);
}

// a, b, y: (n).  ensures: y = a * b.
template <class T>
void mul(const T* a, const T* b, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u, simd::batch<T> v) { return u * v; }, a, b);
}

// a, b, y: (n).  ensures: y = a / b (IEEE: x/0 is +-inf or NaN).
template <class T>
void div(const T* a, const T* b, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u, simd::batch<T> v) { return u / v; }, a, b);
}

// a, y: (n).  ensures: y = s * a.
template <class T>
void scale(const T* a, T s, T* y, index_t n) {
  const simd::batch<T> vs(s);
  simd::map(n, y, [vs](simd::batch<T> u) { return u * vs; }, a);
}

// a, y: (n).  ensures: y = a + s.
template <class T>
void add_scalar(const T* a, T s, T* y, index_t n) {
  const simd::batch<T> vs(s);
  simd::map(n, y, [vs](simd::batch<T> u) { return u + vs; }, a);
}

// x, y: (n).  ensures: y += alpha * x (one fused multiply-add per element).
template <class T>
void axpy(T alpha, const T* x, T* y, index_t n) {
  const simd::batch<T> va(alpha);
  simd::map(n, y, [va](simd::batch<T> u, simd::batch<T> acc) { return xsimd::fma(va, u, acc); },
            x, y);
}

// y: (n).  ensures: every y[i] == value.
template <class T>
void fill(T* y, T value, index_t n) {
  const simd::batch<T> v(value);
  simd::map(n, y, [v]() { return v; });
}

// ---------------------------------------------------------------------------------------
// Bias broadcast over rows and its backward reduction.

// x, y: (rows, cols); bias: (cols).  ensures: y[r, c] = x[r, c] + bias[c].
template <class T>
void add_rows(const T* x, const T* bias, T* y, index_t rows, index_t cols) {
  const auto plus = [](simd::batch<T> u, simd::batch<T> b) { return u + b; };
  simd::for_rows(rows, cols, [&](index_t r) {
    simd::apply(cols, y + r * cols, plus, x + r * cols, bias);
  });
}

// dy: (rows, cols); dbias: (cols), must not alias dy.
// ensures: dbias[c] += sum over r of dy[r, c], summed in row order (deterministic at any
// thread count; threads split the columns).
template <class T>
void sum_rows_accumulate(const T* dy, T* dbias, index_t rows, index_t cols) {
  simd::for_column_blocks<T>(rows, cols, [&](index_t c, index_t k) {
    simd::batch<T> acc(T(0));
    for (index_t r = 0; r < rows; ++r) acc += simd::load_n(dy + r * cols + c, k);
    simd::store_n(dbias + c, simd::load_n(dbias + c, k) + acc, k);
  });
}

// ---------------------------------------------------------------------------------------
// Activations, forward. x, y: (n); y may alias x.

// ensures: y = e^x, finite wherever the true value is (see simd::exp_full_range).
template <class T>
void exp(const T* x, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u) { return simd::exp_full_range(u); }, x);
}

// ensures: y = tanh(x); +-1 for large |x|.
template <class T>
void tanh(const T* x, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u) { return xsimd::tanh(u); }, x);
}

// ensures: y = 1 / (1 + e^-x); exactly 0 or 1 far out, never NaN for finite x.
template <class T>
void sigmoid(const T* x, T* y, index_t n) {
  const simd::batch<T> one(T(1));
  simd::map(n, y, [one](simd::batch<T> u) { return one / (one + xsimd::exp(-u)); }, x);
}

// ensures: y = max(x, 0); NaN stays NaN.
template <class T>
void relu(const T* x, T* y, index_t n) {
  const simd::batch<T> zero(T(0));
  simd::map(n, y, [zero](simd::batch<T> u) { return xsimd::select(u < zero, zero, u); }, x);
}

namespace detail {
using math::gelu_cubic;  // backend/math_constants.hpp
using math::inv_sqrt2;
using math::inv_sqrt_2pi;
using math::sqrt_2_over_pi;

// 1 + erf(x / sqrt 2), computed as erfc(-x / sqrt 2): no cancellation for negative x.
template <class T>
simd::batch<T> one_plus_erf(simd::batch<T> x) noexcept {
  return xsimd::erfc(x * simd::batch<T>(-inv_sqrt2<T>));
}
// 0.5 (1 + tanh(u)) = sigmoid(2u) for u = sqrt(2/pi) (x + 0.044715 x^3).
template <class T>
simd::batch<T> gelu_tanh_gate(simd::batch<T> x) noexcept {
  using B = simd::batch<T>;
  const B one(T(1)), c(gelu_cubic<T>), minus_2k(-2 * sqrt_2_over_pi<T>);
  return one / (one + xsimd::exp(minus_2k * xsimd::fma(c * x * x, x, x)));
}
}  // namespace detail

// ensures: y = 0.5 x (1 + erf(x / sqrt 2)), PyTorch's exact GELU (torch.nn.GELU()).
// Evaluated as 0.5 x erfc(-x / sqrt 2): no cancellation for x << 0. Accuracy: float within
// ~32 ulp; double within ~4e-12 relative for x < -3.1, where xsimd 8.1's double erfc is weak.
template <class T>
void gelu_erf(const T* x, T* y, index_t n) {
  const simd::batch<T> half(T(0.5));
  simd::map(n, y, [half](simd::batch<T> u) { return half * u * detail::one_plus_erf(u); }, x);
}

// ensures: y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's
// GELU(approximate='tanh') and Hugging Face's "gelu_new". Evaluated as x * sigmoid(2u),
// u = sqrt(2/pi) (x + 0.044715 x^3): equal in exact arithmetic, and no cancellation in
// 1 + tanh(u) for x << 0.
template <class T>
void gelu_tanh(const T* x, T* y, index_t n) {
  simd::map(n, y, [](simd::batch<T> u) { return u * detail::gelu_tanh_gate(u); }, x);
}

// ---------------------------------------------------------------------------------------
// Activations, backward. dy, dx: (n) and the saved forward input x or output y: (n).
// requires: dx does not alias the other arrays.  ensures: dx += dy * f'(.); dx == nullptr:
// no-op.

// y: the output of exp.  ensures: dx += dy * y.
template <class T>
void exp_backward(const T* y, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  simd::map(n, dx, [](simd::batch<T> v, simd::batch<T> g, simd::batch<T> acc) {
    return xsimd::fma(g, v, acc);
  }, y, dy, dx);
}

// y: the output of tanh.  ensures: dx += dy * (1 - y^2).
template <class T>
void tanh_backward(const T* y, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  const simd::batch<T> one(T(1));
  simd::map(n, dx, [one](simd::batch<T> v, simd::batch<T> g, simd::batch<T> acc) {
    return xsimd::fma(g, xsimd::fnma(v, v, one), acc);
  }, y, dy, dx);
}

// y: the output of sigmoid.  ensures: dx += dy * y * (1 - y).
template <class T>
void sigmoid_backward(const T* y, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  const simd::batch<T> one(T(1));
  simd::map(n, dx, [one](simd::batch<T> v, simd::batch<T> g, simd::batch<T> acc) {
    return xsimd::fma(g * v, one - v, acc);
  }, y, dy, dx);
}

// x: the input of relu, or its output (positive exactly where the input is).
// ensures: dx += (x > 0 ? dy : 0), as PyTorch (gradient 0 at x == 0).
template <class T>
void relu_backward(const T* x, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  const simd::batch<T> zero(T(0));
  simd::map(n, dx, [zero](simd::batch<T> u, simd::batch<T> g, simd::batch<T> acc) {
    return acc + xsimd::select(u > zero, g, zero);
  }, x, dy, dx);
}

// x: the input of gelu_erf.
// ensures: dx += dy * (0.5 (1 + erf(x / sqrt 2)) + x * phi(x)), phi the standard normal pdf.
template <class T>
void gelu_erf_backward(const T* x, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  using B = simd::batch<T>;
  const B half(T(0.5)), minus_half(T(-0.5)), inv_sqrt_2pi(detail::inv_sqrt_2pi<T>);
  simd::map(n, dx, [=](B u, B g, B acc) {
    const B pdf = inv_sqrt_2pi * xsimd::exp(minus_half * u * u);
    return xsimd::fma(g, xsimd::fma(half, detail::one_plus_erf(u), u * pdf), acc);
  }, x, dy, dx);
}

// x: the input of gelu_tanh.  With u = sqrt(2/pi) (x + 0.044715 x^3) and
// s = 0.5 (1 + tanh(u)) = sigmoid(2u), so that 0.5 (1 - tanh(u)^2) = 2 s (1 - s):
// ensures: dx += dy * (s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2)).
// x is clamped to [-10, 10] first (NaN stays NaN): beyond it s is 0 or 1 to within 1e-36,
// and huge x cannot make 0 * inf = NaN.
template <class T>
void gelu_tanh_backward(const T* x, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  using B = simd::batch<T>;
  const B one(T(1)), two(T(2)), lo(T(-10)), hi(T(10));
  const B k(detail::sqrt_2_over_pi<T>), c3(3 * detail::gelu_cubic<T>);
  simd::map(n, dx, [=](B u, B g, B acc) {
    u = xsimd::select(u > hi, hi, xsimd::select(u < lo, lo, u));
    const B s = detail::gelu_tanh_gate(u);
    const B dudx = k * xsimd::fma(c3, u * u, one);
    const B d = xsimd::fma(two * u * s * (one - s), dudx, s);
    return xsimd::fma(g, d, acc);
  }, x, dy, dx);
}

}  // namespace deepprompt::cpu

// --- the same kernels under the device tag: f(Cpu{}, args...) forwards to cpu::f(args...), so
// that ops written for any device reach them by argument-dependent lookup (backend/dispatch.hpp).
namespace deepprompt {

template <class... A>
void fill(Cpu, A&&... a) {
  cpu::fill(std::forward<A>(a)...);
}
template <class... A>
void add(Cpu, A&&... a) {
  cpu::add(std::forward<A>(a)...);
}
template <class... A>
void sub(Cpu, A&&... a) {
  cpu::sub(std::forward<A>(a)...);
}
template <class... A>
void mul(Cpu, A&&... a) {
  cpu::mul(std::forward<A>(a)...);
}
template <class... A>
void div(Cpu, A&&... a) {
  cpu::div(std::forward<A>(a)...);
}
template <class... A>
void scale(Cpu, A&&... a) {
  cpu::scale(std::forward<A>(a)...);
}
template <class... A>
void add_scalar(Cpu, A&&... a) {
  cpu::add_scalar(std::forward<A>(a)...);
}
template <class... A>
void axpy(Cpu, A&&... a) {
  cpu::axpy(std::forward<A>(a)...);
}
template <class... A>
void add_rows(Cpu, A&&... a) {
  cpu::add_rows(std::forward<A>(a)...);
}
template <class... A>
void sum_rows_accumulate(Cpu, A&&... a) {
  cpu::sum_rows_accumulate(std::forward<A>(a)...);
}
template <class... A>
void exp(Cpu, A&&... a) {
  cpu::exp(std::forward<A>(a)...);
}
template <class... A>
void tanh(Cpu, A&&... a) {
  cpu::tanh(std::forward<A>(a)...);
}
template <class... A>
void sigmoid(Cpu, A&&... a) {
  cpu::sigmoid(std::forward<A>(a)...);
}
template <class... A>
void relu(Cpu, A&&... a) {
  cpu::relu(std::forward<A>(a)...);
}
template <class... A>
void gelu_erf(Cpu, A&&... a) {
  cpu::gelu_erf(std::forward<A>(a)...);
}
template <class... A>
void gelu_tanh(Cpu, A&&... a) {
  cpu::gelu_tanh(std::forward<A>(a)...);
}
template <class... A>
void exp_backward(Cpu, A&&... a) {
  cpu::exp_backward(std::forward<A>(a)...);
}
template <class... A>
void tanh_backward(Cpu, A&&... a) {
  cpu::tanh_backward(std::forward<A>(a)...);
}
template <class... A>
void sigmoid_backward(Cpu, A&&... a) {
  cpu::sigmoid_backward(std::forward<A>(a)...);
}
template <class... A>
void relu_backward(Cpu, A&&... a) {
  cpu::relu_backward(std::forward<A>(a)...);
}
template <class... A>
void gelu_erf_backward(Cpu, A&&... a) {
  cpu::gelu_erf_backward(std::forward<A>(a)...);
}
template <class... A>
void gelu_tanh_backward(Cpu, A&&... a) {
  cpu::gelu_tanh_backward(std::forward<A>(a)...);
}

}  // namespace deepprompt
