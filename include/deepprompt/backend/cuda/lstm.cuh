#pragma once
// The LSTM cell's gates on the device (the kernels of ops/lstm.hpp): one thread per (row, unit),
// the same per-element formulas as the host's loops there (gate order i, f, g, o).
#include "launch.cuh"

namespace deepprompt::cuda {

namespace lstm_detail {
template <class T>
__device__ T sigmoid(T x) {
  return T(1) / (T(1) + d_exp(-x));
}
}  // namespace lstm_detail

/// act (B, 4Hd): pre-activations in, activations out; c0 (B, Hd) -> c1 = f c0 + i g,
/// h1 = o tanh(c1).
template <class T>
void lstm_gates(T* act, const T* c0, T* c1, T* h1, index_t B, index_t Hd) {
  for_each_index(B * Hd, [=] __device__(index_t j) {
    const index_t b = j / Hd, u = j % Hd;
    T* a = act + b * 4 * Hd;
    const T i = a[u] = lstm_detail::sigmoid(a[u]);
    const T f = a[Hd + u] = lstm_detail::sigmoid(a[Hd + u]);
    const T g = a[2 * Hd + u] = d_tanh(a[2 * Hd + u]);
    const T o = a[3 * Hd + u] = lstm_detail::sigmoid(a[3 * Hd + u]);
    const T c = c1[j] = f * c0[j] + i * g;
    h1[j] = o * d_tanh(c);
  }, "cuda::lstm_gates");
}

/// The gates' backward: dh, dc (B, Hd) reaching h' and c' (nullptr: none); dc0 += the gradient
/// of c (when not nullptr); dgates (B, 4Hd) = the pre-activations' gradient (when not nullptr;
/// then c0 is read).
template <class T>
void lstm_gates_backward(const T* act, const T* c0, const T* c1, const T* dh, const T* dc, T* dc0, T* dgates,
                         index_t B, index_t Hd) {
  for_each_index(B * Hd, [=] __device__(index_t j) {
    const index_t b = j / Hd, u = j % Hd;
    const T* a = act + b * 4 * Hd;
    const T i = a[u], f = a[Hd + u], g = a[2 * Hd + u], o = a[3 * Hd + u];
    const T tc = d_tanh(c1[j]);
    const T gh = dh ? dh[j] : T(0);
    const T gc = (dc ? dc[j] : T(0)) + gh * o * (T(1) - tc * tc);
    if (dc0) dc0[j] += gc * f;
    if (dgates) {
      T* dg = dgates + b * 4 * Hd;
      dg[u] = gc * g * i * (T(1) - i);
      dg[Hd + u] = gc * c0[j] * f * (T(1) - f);
      dg[2 * Hd + u] = gc * i * (T(1) - g * g);
      dg[3 * Hd + u] = gh * tc * o * (T(1) - o);
    }
  }, "cuda::lstm_gates_backward");
}

}  // namespace deepprompt::cuda
