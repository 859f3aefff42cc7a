#pragma once
// Elementwise CUDA kernels on device arrays, the mirror of backend/cpu/elementwise.hpp: the same
// names, arguments and contracts (arrays of the stated shape, row-major; an output may alias an
// input of its shape; backward kernels ACCUMULATE, dx += ..., and a null gradient output makes
// them a no-op). Asynchronous on the default stream; launch errors throw deepprompt::Error.
#include "launch.cuh"
#include "../math_constants.hpp"

namespace deepprompt::cuda {

// ---------------------------------------------------------------------------------------
// Binary and scalar arithmetic. a, b, x, y: (n).

template <class T>
void add(const T* a, const T* b, T* y, index_t n) {  // y = a + b
  for_each_index(n, [=] __device__(index_t i) { y[i] = a[i] + b[i]; }, "cuda::add");
}
template <class T>
void sub(const T* a, const T* b, T* y, index_t n) {  // y = a - b
  for_each_index(n, [=] __device__(index_t i) { y[i] = a[i] - b[i]; }, "cuda::sub");
}
template <class T>
void mul(const T* a, const T* b, T* y, index_t n) {  // y = a * b
  for_each_index(n, [=] __device__(index_t i) { y[i] = a[i] * b[i]; }, "cuda::mul");
}
template <class T>
void div(const T* a, const T* b, T* y, index_t n) {  // y = a / b
  for_each_index(n, [=] __device__(index_t i) { y[i] = a[i] / b[i]; }, "cuda::div");
}
template <class T>
void scale(const T* a, T s, T* y, index_t n) {  // y = s a
  for_each_index(n, [=] __device__(index_t i) { y[i] = s * a[i]; }, "cuda::scale");
}
template <class T>
void add_scalar(const T* a, T s, T* y, index_t n) {  // y = a + s
  for_each_index(n, [=] __device__(index_t i) { y[i] = a[i] + s; }, "cuda::add_scalar");
}
template <class T>
void axpy(T alpha, const T* x, T* y, index_t n) {  // y += alpha x
  for_each_index(n, [=] __device__(index_t i) { y[i] = fma(alpha, x[i], y[i]); }, "cuda::axpy");
}
template <class T>
void fill(T* y, T value, index_t n) {  // y = value
  for_each_index(n, [=] __device__(index_t i) { y[i] = value; }, "cuda::fill");
}

// ---------------------------------------------------------------------------------------
// Bias broadcast over rows and its reduction.

// x, y: (rows, cols); bias: (cols).  y[r, c] = x[r, c] + bias[c].
template <class T>
void add_rows(const T* x, const T* bias, T* y, index_t rows, index_t cols) {
  for_each_index(rows * cols, [=] __device__(index_t i) { y[i] = x[i] + bias[i % cols]; }, "cuda::add_rows");
}

// dy: (rows, cols); dbias: (cols).  dbias[c] += sum over r of dy[r, c], in row order (one thread
// per column: deterministic, the CPU's order).
template <class T>
void sum_rows_accumulate(const T* dy, T* dbias, index_t rows, index_t cols) {
  for_each_index(cols, [=] __device__(index_t c) {
    T acc = 0;
    for (index_t r = 0; r < rows; ++r) acc += dy[r * cols + c];
    dbias[c] += acc;
  }, "cuda::sum_rows_accumulate");
}

// ---------------------------------------------------------------------------------------
// Activations. x, y: (n); y may alias x.

template <class T>
void exp(const T* x, T* y, index_t n) {
  for_each_index(n, [=] __device__(index_t i) { y[i] = d_exp(x[i]); }, "cuda::exp");
}
template <class T>
void tanh(const T* x, T* y, index_t n) {
  for_each_index(n, [=] __device__(index_t i) { y[i] = d_tanh(x[i]); }, "cuda::tanh");
}
template <class T>
void sigmoid(const T* x, T* y, index_t n) {
  for_each_index(n, [=] __device__(index_t i) { y[i] = T(1) / (T(1) + d_exp(-x[i])); }, "cuda::sigmoid");
}
template <class T>
void relu(const T* x, T* y, index_t n) {  // NaN stays NaN, as torch.relu
  for_each_index(n, [=] __device__(index_t i) { y[i] = x[i] < T(0) ? T(0) : x[i]; }, "cuda::relu");
}

namespace detail {
using math::gelu_cubic;  // backend/math_constants.hpp
using math::inv_sqrt2;
using math::inv_sqrt_2pi;
using math::sqrt_2_over_pi;
}  // namespace detail

// y = 0.5 x (1 + erf(x / sqrt 2)) (BERT's "gelu").
template <class T>
void gelu_erf(const T* x, T* y, index_t n) {
  for_each_index(n, [=] __device__(index_t i) {
    const T u = x[i];
    y[i] = T(0.5) * u * (T(1) + d_erf(u * detail::inv_sqrt2<T>));
  }, "cuda::gelu_erf");
}
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (T5 v1.1's "gelu_new").
template <class T>
void gelu_tanh(const T* x, T* y, index_t n) {
  for_each_index(n, [=] __device__(index_t i) {
    const T u = x[i];
    y[i] = T(0.5) * u * (T(1) + d_tanh(detail::sqrt_2_over_pi<T> * (u + detail::gelu_cubic<T> * u * u * u)));
  }, "cuda::gelu_tanh");
}

// ---------------------------------------------------------------------------------------
// Activations, backward: dx += dy * f'(.). dx == nullptr: no-op.

template <class T>
void exp_backward(const T* y, const T* dy, T* dx, index_t n) {  // y: exp's output
  if (dx == nullptr) return;
  for_each_index(n, [=] __device__(index_t i) { dx[i] += dy[i] * y[i]; }, "cuda::exp_backward");
}
template <class T>
void tanh_backward(const T* y, const T* dy, T* dx, index_t n) {  // y: tanh's output
  if (dx == nullptr) return;
  for_each_index(n, [=] __device__(index_t i) { dx[i] += dy[i] * (T(1) - y[i] * y[i]); }, "cuda::tanh_backward");
}
template <class T>
void sigmoid_backward(const T* y, const T* dy, T* dx, index_t n) {  // y: sigmoid's output
  if (dx == nullptr) return;
  for_each_index(n, [=] __device__(index_t i) { dx[i] += dy[i] * y[i] * (T(1) - y[i]); }, "cuda::sigmoid_backward");
}
template <class T>
void relu_backward(const T* x, const T* dy, T* dx, index_t n) {  // gradient 0 at x == 0
  if (dx == nullptr) return;
  for_each_index(n, [=] __device__(index_t i) { dx[i] += x[i] > T(0) ? dy[i] : T(0); }, "cuda::relu_backward");
}
template <class T>
void gelu_erf_backward(const T* x, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  for_each_index(n, [=] __device__(index_t i) {
    const T u = x[i];
    const T pdf = detail::inv_sqrt_2pi<T> * d_exp(T(-0.5) * u * u);
    dx[i] += dy[i] * (T(0.5) * (T(1) + d_erf(u * detail::inv_sqrt2<T>)) + u * pdf);
  }, "cuda::gelu_erf_backward");
}
// As the CPU: x clamped to [-10, 10]; s = 0.5 (1 + tanh(u)), dx += dy (s + 2 x s (1 - s) du/dx).
template <class T>
void gelu_tanh_backward(const T* x, const T* dy, T* dx, index_t n) {
  if (dx == nullptr) return;
  for_each_index(n, [=] __device__(index_t i) {
    T u = x[i];
    u = u > T(10) ? T(10) : (u < T(-10) ? T(-10) : u);
    const T s = T(0.5) * (T(1) + d_tanh(detail::sqrt_2_over_pi<T> * (u + detail::gelu_cubic<T> * u * u * u)));
    const T dudx = detail::sqrt_2_over_pi<T> * (T(1) + T(3) * detail::gelu_cubic<T> * u * u);
    dx[i] += dy[i] * (s + T(2) * u * s * (T(1) - s) * dudx);
  }, "cuda::gelu_tanh_backward");
}

}  // namespace deepprompt::cuda
