#pragma once
// Row-wise CPU kernels on raw contiguous row-major (rows, cols) arrays (no autodiff):
// softmax, log-softmax, LayerNorm and RMSNorm (T5LayerNorm), forward and backward.
//
// Conventions: T is float or double; rows, cols >= 0 (norms need cols >= 1); each row is
// reduced in T with xsimd batches (as PyTorch does on CPU); threads split the rows when
// rows * cols is large. Backward kernels ACCUMULATE into their gradient outputs, and a
// nullptr gradient output is skipped. Gradient outputs must not alias the other arrays.
// No heap allocation.
#include "deepprompt/backend/cpu/simd.hpp"
#include "deepprompt/core/device.hpp"

#include <cmath>
#include <limits>
#include <utility>

namespace deepprompt::cpu {

namespace detail {

// Sum over one row of n elements, batch by batch: f(i, k) returns the batch for the
// k <= lanes elements starting at i, with zeros in the lanes past k.
template <class T, class F>
T row_sum(index_t n, F&& f) noexcept {
  simd::batch<T> acc(T(0));
  for (index_t i = 0; i < n; i += simd::lanes<T>) acc += f(i, std::min(simd::lanes<T>, n - i));
  return xsimd::hadd(acc);
}

// Largest element of x[0, n); -inf when n == 0.
template <class T>
T row_max(const T* x, index_t n) noexcept {
  simd::batch<T> acc(-std::numeric_limits<T>::infinity());
  for (index_t i = 0; i < n; i += simd::lanes<T>) {
    const index_t k = std::min(simd::lanes<T>, n - i);
    acc = xsimd::max(acc, simd::load_n(x + i, k, -std::numeric_limits<T>::infinity()));
  }
  return simd::hmax(acc);
}

// Loads k elements with zero padding (the identity of the sums above).
template <class T>
simd::batch<T> load0(const T* p, index_t k) noexcept {
  return simd::load_n(p, k, T(0));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Softmax and log-softmax over the last dimension.

// x, y: (rows, cols); y may alias x.
// ensures: y[r] = exp(x[r] - max x[r]) / sum(...), each row sums to 1; a row that is all
// -inf (fully masked) yields zeros instead of NaN. A +inf or NaN in a row gives NaNs (a NaN in
// an otherwise all -inf row may give zeros).
template <class T>
void softmax_rows(const T* x, T* y, index_t rows, index_t cols) {
  using B = simd::batch<T>;
  simd::for_rows(rows, cols, [&](index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = detail::row_max(xr, cols);
    if (m == -std::numeric_limits<T>::infinity()) {
      std::fill_n(yr, cols, T(0));
      return;
    }
    const B vm(m);
    const T sum = detail::row_sum<T>(cols, [&](index_t i, index_t k) {
      // Padding lanes are -inf, so they add e^-inf = 0 to the sum.
      const B e = xsimd::exp(simd::load_n(xr + i, k, -std::numeric_limits<T>::infinity()) - vm);
      simd::store_n(yr + i, e, k);
      return e;
    });
    const B inv(T(1) / sum);
    simd::apply(cols, yr, [inv](B e) { return e * inv; }, yr);
  });
}

// y: the output of softmax_rows; y, dy, dx: (rows, cols).
// ensures: dx[r] += y[r] * (dy[r] - sum(dy[r] * y[r])); dx == nullptr: no-op.
template <class T>
void softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) {
  using B = simd::batch<T>;
  if (dx == nullptr) return;
  simd::for_rows(rows, cols, [&](index_t r) {
    const T* yr = y + r * cols;
    const T* gr = dy + r * cols;
    const T dot = detail::row_sum<T>(cols, [&](index_t i, index_t k) {
      return detail::load0(yr + i, k) * detail::load0(gr + i, k);
    });
    const B vdot(dot);
    simd::apply(cols, dx + r * cols, [vdot](B v, B g, B acc) { return xsimd::fma(v, g - vdot, acc); },
                yr, gr, dx + r * cols);
  });
}

// x, y: (rows, cols); y may alias x.
// ensures: y[r] = (x[r] - max x[r]) - log(sum exp(x[r] - max x[r])); a row that is all -inf
// yields -inf (the log of softmax_rows' zeros). A +inf or NaN in a row gives NaNs (as above).
template <class T>
void log_softmax_rows(const T* x, T* y, index_t rows, index_t cols) {
  using B = simd::batch<T>;
  simd::for_rows(rows, cols, [&](index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = detail::row_max(xr, cols);
    if (m == -std::numeric_limits<T>::infinity()) {
      std::fill_n(yr, cols, m);
      return;
    }
    const B vm(m);
    const T sum = detail::row_sum<T>(cols, [&](index_t i, index_t k) {
      return xsimd::exp(simd::load_n(xr + i, k, -std::numeric_limits<T>::infinity()) - vm);
    });
    const B log_sum(std::log(sum));
    simd::apply(cols, yr, [vm, log_sum](B u) { return (u - vm) - log_sum; }, xr);
  });
}

// y: the output of log_softmax_rows; y, dy, dx: (rows, cols).
// ensures: dx[r] += dy[r] - exp(y[r]) * sum(dy[r]); dx == nullptr: no-op.
template <class T>
void log_softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) {
  using B = simd::batch<T>;
  if (dx == nullptr) return;
  simd::for_rows(rows, cols, [&](index_t r) {
    const T* gr = dy + r * cols;
    const B sum(detail::row_sum<T>(cols, [&](index_t i, index_t k) { return detail::load0(gr + i, k); }));
    simd::apply(cols, dx + r * cols, [sum](B v, B g, B acc) {
      return acc + xsimd::fnma(xsimd::exp(v), sum, g);
    }, y + r * cols, gr, dx + r * cols);
  });
}

// ---------------------------------------------------------------------------------------
// LayerNorm (torch.nn.LayerNorm over the last dimension).

// x, y: (rows, cols); gamma, beta: (cols) or nullptr (no scale / no shift);
// mean, rstd: (rows) or nullptr (not saved). requires: cols >= 1, eps >= 0.
// ensures: mean[r] = mean of x[r]; rstd[r] = 1 / sqrt(biased variance of x[r] + eps) (two-pass);
//          y[r, c] = (x[r, c] - mean[r]) * rstd[r] * gamma[c] + beta[c]. y may alias x.
template <class T>
void layer_norm_rows(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                     index_t rows, index_t cols, T eps) {
  using B = simd::batch<T>;
  simd::for_rows(rows, cols, [&](index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T mu = detail::row_sum<T>(cols, [&](index_t i, index_t k) {
      return detail::load0(xr + i, k);
    }) / T(cols);
    const B vmu(mu);
    const T var = detail::row_sum<T>(cols, [&](index_t i, index_t k) {
      const B d = simd::load_n(xr + i, k, mu) - vmu;  // padding with mu adds 0
      return d * d;
    }) / T(cols);
    const T rs = T(1) / std::sqrt(var + eps);
    if (mean != nullptr) mean[r] = mu;
    if (rstd != nullptr) rstd[r] = rs;
    const B vrs(rs);
    for (index_t i = 0; i < cols; i += simd::lanes<T>) {
      const index_t k = std::min(simd::lanes<T>, cols - i);
      B v = (simd::load_n(xr + i, k) - vmu) * vrs;
      if (gamma != nullptr) v *= simd::load_n(gamma + i, k);
      if (beta != nullptr) v += simd::load_n(beta + i, k);
      simd::store_n(yr + i, v, k);
    }
  });
}

// x, dy, dx: (rows, cols); gamma: (cols) or nullptr, as in the forward, read only when
// dx != nullptr; mean, rstd: (rows) as saved by layer_norm_rows; dgamma, dbeta: (cols).
// Any of dx, dgamma, dbeta may be nullptr (x, mean and rstd are then still read unless all are).
// With xhat = (x - mean) * rstd and g = dy * gamma:
// ensures: dx[r]       += rstd[r] * (g[r] - mean(g[r]) - xhat[r] * mean(g[r] * xhat[r]));
//          dgamma[c]   += sum over r of dy[r, c] * xhat[r, c];
//          dbeta[c]    += sum over r of dy[r, c].
// The column sums run over the rows in order, threads splitting the columns: deterministic.
template <class T>
void layer_norm_rows_backward(const T* x, const T* gamma, const T* mean, const T* rstd,
                              const T* dy, T* dx, T* dgamma, T* dbeta, index_t rows, index_t cols) {
  using B = simd::batch<T>;
  if (dx != nullptr) {
    simd::for_rows(rows, cols, [&](index_t r) {
      const T* xr = x + r * cols;
      const T* gr = dy + r * cols;
      T* dxr = dx + r * cols;
      const B vmu(mean[r]), vrs(rstd[r]);
      const auto g_at = [&](index_t i, index_t k) {
        const B g = detail::load0(gr + i, k);
        return gamma != nullptr ? g * simd::load_n(gamma + i, k) : g;
      };
      const auto xhat_at = [&](index_t i, index_t k) { return (simd::load_n(xr + i, k) - vmu) * vrs; };
      const B g_mean(detail::row_sum<T>(cols, g_at) / T(cols));
      const B gx_mean(detail::row_sum<T>(cols, [&](index_t i, index_t k) {
        return g_at(i, k) * xhat_at(i, k);
      }) / T(cols));
      for (index_t i = 0; i < cols; i += simd::lanes<T>) {
        const index_t k = std::min(simd::lanes<T>, cols - i);
        const B d = xsimd::fnma(xhat_at(i, k), gx_mean, g_at(i, k) - g_mean);
        simd::store_n(dxr + i, xsimd::fma(vrs, d, simd::load_n(dxr + i, k)), k);
      }
    });
  }
  if (dgamma == nullptr && dbeta == nullptr) return;
  simd::for_column_blocks<T>(rows, cols, [&](index_t c, index_t k) {
    B acc_g(T(0)), acc_b(T(0));
    for (index_t r = 0; r < rows; ++r) {
      const B g = detail::load0(dy + r * cols + c, k);
      const B xhat = (simd::load_n(x + r * cols + c, k) - B(mean[r])) * B(rstd[r]);
      acc_g = xsimd::fma(g, xhat, acc_g);
      acc_b += g;
    }
    if (dgamma != nullptr) simd::store_n(dgamma + c, simd::load_n(dgamma + c, k) + acc_g, k);
    if (dbeta != nullptr) simd::store_n(dbeta + c, simd::load_n(dbeta + c, k) + acc_b, k);
  });
}

// ---------------------------------------------------------------------------------------
// RMSNorm (T5LayerNorm): no mean subtraction, no bias.

// x, y: (rows, cols); gamma: (cols) or nullptr (no scale); rstd: (rows) or nullptr.
// requires: cols >= 1, eps >= 0.
// ensures: rstd[r] = 1 / sqrt(mean(x[r]^2) + eps); y[r, c] = x[r, c] * rstd[r] * gamma[c].
//          y may alias x.
template <class T>
void rms_norm_rows(const T* x, const T* gamma, T* y, T* rstd, index_t rows, index_t cols, T eps) {
  using B = simd::batch<T>;
  simd::for_rows(rows, cols, [&](index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T ms = detail::row_sum<T>(cols, [&](index_t i, index_t k) {
      const B v = detail::load0(xr + i, k);
      return v * v;
    }) / T(cols);
    const T rs = T(1) / std::sqrt(ms + eps);
    if (rstd != nullptr) rstd[r] = rs;
    const B vrs(rs);
    for (index_t i = 0; i < cols; i += simd::lanes<T>) {
      const index_t k = std::min(simd::lanes<T>, cols - i);
      B v = simd::load_n(xr + i, k) * vrs;
      if (gamma != nullptr) v *= simd::load_n(gamma + i, k);
      simd::store_n(yr + i, v, k);
    }
  });
}

// x, dy, dx: (rows, cols); gamma: (cols) or nullptr, as in the forward, read only when
// dx != nullptr; rstd: (rows) as saved by rms_norm_rows; dgamma: (cols). dx and dgamma may be
// nullptr.
// With xhat = x * rstd and g = dy * gamma:
// ensures: dx[r]     += rstd[r] * (g[r] - xhat[r] * mean(g[r] * xhat[r]));
//          dgamma[c] += sum over r of dy[r, c] * xhat[r, c] (rows in order: deterministic).
template <class T>
void rms_norm_rows_backward(const T* x, const T* gamma, const T* rstd, const T* dy, T* dx,
                            T* dgamma, index_t rows, index_t cols) {
  using B = simd::batch<T>;
  if (dx != nullptr) {
    simd::for_rows(rows, cols, [&](index_t r) {
      const T* xr = x + r * cols;
      const T* gr = dy + r * cols;
      T* dxr = dx + r * cols;
      const B vrs(rstd[r]);
      const auto g_at = [&](index_t i, index_t k) {
        const B g = detail::load0(gr + i, k);
        return gamma != nullptr ? g * simd::load_n(gamma + i, k) : g;
      };
      const auto xhat_at = [&](index_t i, index_t k) { return simd::load_n(xr + i, k) * vrs; };
      const B gx_mean(detail::row_sum<T>(cols, [&](index_t i, index_t k) {
        return g_at(i, k) * xhat_at(i, k);
      }) / T(cols));
      for (index_t i = 0; i < cols; i += simd::lanes<T>) {
        const index_t k = std::min(simd::lanes<T>, cols - i);
        const B d = xsimd::fnma(xhat_at(i, k), gx_mean, g_at(i, k));
        simd::store_n(dxr + i, xsimd::fma(vrs, d, simd::load_n(dxr + i, k)), k);
      }
    });
  }
  if (dgamma == nullptr) return;
  simd::for_column_blocks<T>(rows, cols, [&](index_t c, index_t k) {
    B acc(T(0));
    for (index_t r = 0; r < rows; ++r) {
      const B xhat = simd::load_n(x + r * cols + c, k) * B(rstd[r]);
      acc = xsimd::fma(detail::load0(dy + r * cols + c, k), xhat, acc);
    }
    simd::store_n(dgamma + c, simd::load_n(dgamma + c, k) + acc, k);
  });
}

}  // namespace deepprompt::cpu

// --- the same kernels under the device tag: f(Cpu{}, args...) forwards to cpu::f(args...), so
// that ops written for any device reach them by argument-dependent lookup (backend/dispatch.hpp).
namespace deepprompt {

template <class... A>
void softmax_rows(Cpu, A&&... a) {
  cpu::softmax_rows(std::forward<A>(a)...);
}
template <class... A>
void softmax_rows_backward(Cpu, A&&... a) {
  cpu::softmax_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void log_softmax_rows(Cpu, A&&... a) {
  cpu::log_softmax_rows(std::forward<A>(a)...);
}
template <class... A>
void log_softmax_rows_backward(Cpu, A&&... a) {
  cpu::log_softmax_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void layer_norm_rows(Cpu, A&&... a) {
  cpu::layer_norm_rows(std::forward<A>(a)...);
}
template <class... A>
void layer_norm_rows_backward(Cpu, A&&... a) {
  cpu::layer_norm_rows_backward(std::forward<A>(a)...);
}
template <class... A>
void rms_norm_rows(Cpu, A&&... a) {
  cpu::rms_norm_rows(std::forward<A>(a)...);
}
template <class... A>
void rms_norm_rows_backward(Cpu, A&&... a) {
  cpu::rms_norm_rows_backward(std::forward<A>(a)...);
}

}  // namespace deepprompt
