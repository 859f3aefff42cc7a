#pragma once
// The CUDA backend behind the device-dispatched front end (backend/dispatch.hpp): the Cuda
// overloads of the functions the CPU backend offers, and every kernel header of backend/cuda
// (namespace deepprompt::cuda mirrors deepprompt::cpu: elementwise, rowwise, dropout, lookup,
// gemm, attention). Compiled by nvcc only (DEEPPROMPT_CUDA=ON), with --extended-lambda.
#include "../../core/blas_types.hpp"
#include "../../core/device.hpp"
#include "attention.cuh"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "gemm.cuh"
#include "lookup.cuh"
#include "lstm.cuh"
#include "memory.cuh"
#include "optimizer.cuh"
#include "permute.cuh"
#include "reduce.cuh"
#include "rowwise.cuh"

#include <utility>

namespace deepprompt {

// f(Cuda{}, args...) forwards to cuda::f(args...), the mirror of f(Cpu{}, args...) -> cpu::f(args...)
// (the same arguments; attention_forward / _backward take no workspace here).
template <class... A>
void fill(Cuda, A&&... a) {
  cuda::fill(std::forward<A>(a)...);
}
template <class... A>
void add(Cuda, A&&... a) {
  cuda::add(std::forward<A>(a)...);
}
template <class... A>
void sub(Cuda, A&&... a) {
  cuda::sub(std::forward<A>(a)...);
}
template <class... A>
void mul(Cuda, A&&... a) {
  cuda::mul(std::forward<A>(a)...);
}
template <class... A>
void div(Cuda, A&&... a) {
  cuda::div(std::forward<A>(a)...);
}
template <class... A>
void scale(Cuda, A&&... a) {
  cuda::scale(std::forward<A>(a)...);
}
template <class... A>
void add_scalar(Cuda, A&&... a) {
  cuda::add_scalar(std::forward<A>(a)...);
}
template <class... A>
void axpy(Cuda, A&&... a) {
  cuda::axpy(std::forward<A>(a)...);
}
template <class... A>
void add_rows(Cuda, A&&... a) {
  cuda::add_rows(std::forward<A>(a)...);
}
template <class... A>
void sum_rows_accumulate(Cuda, A&&... a) {
  cuda::sum_rows_accumulate(std::forward<A>(a)...);
}
template <class... A>
void exp(Cuda, A&&... a) {
  cuda::exp(std::forward<A>(a)...);
}
template <class... A>
void tanh(Cuda, A&&... a) {
  cuda::tanh(std::forward<A>(a)...);
}
template <class... A>
void sigmoid(Cuda, A&&... a) {
  cuda::sigmoid(std::forward<A>(a)...);
}
template <class... A>
void relu(Cuda, A&&... a) {
  cuda::relu(std::forward<A>(a)...);
}
template <class... A>
void gelu_erf(Cuda, A&&... a) {
  cuda::gelu_erf(std::forward<A>(a)...);
}
template <class... A>
void gelu_tanh(Cuda, A&&... a) {
  cuda::gelu_tanh(std::forward<A>(a)...);
}
template <class... A>
void exp_backward(Cuda, A&&... a) {
  cuda::exp_backward(std::forward<A>(a)...);
}
template <class... A>
void tanh_backward(Cuda, A&&... a) {
  cuda::tanh_backward(std::forward<A>(a)...);
}
template <class... A>
void sigmoid_backward(Cuda, A&&... a) {
  cuda::sigmoid_backward(std::forward<A>(a)...);
}
template <class... A>
void relu_backward(Cuda, A&&... a) {
  cuda::relu_backward(std::forward<A>(a)...);
}
template <class... A>
void gelu_erf_backward(Cuda, A&&... a) {
  cuda::gelu_erf_backward(std::forward<A>(a)...);
}
template <class... A>
void gelu_tanh_backward(Cuda, A&&... a) {
  cuda::gelu_tanh_backward(std::forward<A>(a)...);
}
template <class... A>
void softmax_rows(Cuda, A&&... a) {
  cuda::softmax_rows(std::forward<A>(a)...);
}
template <class... A>
void softmax_rows_backward(Cuda, A&&... a) {
  cuda::softmax_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void log_softmax_rows(Cuda, A&&... a) {
  cuda::log_softmax_rows(std::forward<A>(a)...);
}
template <class... A>
void log_softmax_rows_backward(Cuda, A&&... a) {
  cuda::log_softmax_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void layer_norm_rows(Cuda, A&&... a) {
  cuda::layer_norm_rows(std::forward<A>(a)...);
}
template <class... A>
void layer_norm_rows_backward(Cuda, A&&... a) {
  cuda::layer_norm_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void rms_norm_rows(Cuda, A&&... a) {
  cuda::rms_norm_rows(std::forward<A>(a)...);
}
template <class... A>
void rms_norm_rows_backward(Cuda, A&&... a) {
  cuda::rms_norm_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void dropout_forward(Cuda, A&&... a) {
  cuda::dropout_forward(std::forward<A>(a)...);
}
template <class... A>
void dropout_backward(Cuda, A&&... a) {
  cuda::dropout_backward(std::forward<A>(a)...);
}
template <class... A>
void embedding_forward(Cuda, A&&... a) {
  cuda::embedding_forward(std::forward<A>(a)...);
}
template <class... A>
void embedding_backward(Cuda, A&&... a) {
  cuda::embedding_backward(std::forward<A>(a)...);
}
template <class... A>
void cross_entropy_forward(Cuda, A&&... a) {
  cuda::cross_entropy_forward(std::forward<A>(a)...);
}
template <class... A>
void cross_entropy_backward(Cuda, A&&... a) {
  cuda::cross_entropy_backward(std::forward<A>(a)...);
}
template <class... A>
void attention_forward(Cuda, A&&... a) {
  cuda::attention_forward(std::forward<A>(a)...);
}
template <class... A>
void attention_backward(Cuda, A&&... a) {
  cuda::attention_backward(std::forward<A>(a)...);
}
template <class... A>
void gemm(Cuda, A&&... a) {
  cuda::gemm(std::forward<A>(a)...);
}
template <class... A>
void permute_copy(Cuda, A&&... a) {
  cuda::permute_copy(std::forward<A>(a)...);
}
/// The strided batched GEMM, as gemm_batched(Cpu{}, ...) (the same arguments).
template <class... A>
void gemm_batched(Cuda, A&&... a) {
  cuda::gemm_strided_batched(std::forward<A>(a)...);
}

template <class... A>
void adam_update(Cuda, A&&... a) {
  cuda::adam_update(std::forward<A>(a)...);
}
template <class... A>
void sgd_update(Cuda, A&&... a) {
  cuda::sgd_update(std::forward<A>(a)...);
}
template <class... A>
double grad_norm_partial(Cuda, A&&... a) {
  return cuda::grad_norm_partial(std::forward<A>(a)...);
}

template <class... A>
void sum_axis(Cuda, A&&... a) {
  cuda::sum_axis(std::forward<A>(a)...);
}
template <class... A>
void sum_axis_backward(Cuda, A&&... a) {
  cuda::sum_axis_backward(std::forward<A>(a)...);
}

template <class... A>
void lstm_gates(Cuda, A&&... a) {
  cuda::lstm_gates(std::forward<A>(a)...);
}
template <class... A>
void lstm_gates_backward(Cuda, A&&... a) {
  cuda::lstm_gates_backward(std::forward<A>(a)...);
}

}  // namespace deepprompt
