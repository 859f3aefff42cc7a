#pragma once
// Row-wise CUDA kernels, the mirror of backend/cpu/rowwise.hpp (same names, arguments and
// contracts): softmax, log-softmax, LayerNorm and RMSNorm over the last axis of row-major
// (rows, cols) device arrays, forward and backward. One block per row; the parameter gradients
// (dgamma, dbeta) are column sums in row order, one thread per column (deterministic).
// Backward kernels ACCUMULATE; a null gradient output is skipped.
#include "launch.cuh"

namespace deepprompt::cuda {

// The maximum of row x (cols) over the block, returned to every thread (-inf for an empty row).
template <class T>
__device__ T row_max(const T* x, index_t cols) {
  T m = -T(INFINITY);
  for (index_t c = threadIdx.x; c < cols; c += blockDim.x) m = ::fmax(m, x[c]);
  return block_max(m);
}

// y[r] = softmax(x[r]); a row that is all -inf gives zeros. y may alias x.
template <class T>
void softmax_rows(const T* x, T* y, index_t rows, index_t cols) {
  for_each_row(rows, [=] __device__(index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = row_max(xr, cols);
    if (m == -T(INFINITY)) {  // the same in every thread: no thread is left in a reduction
      for (index_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = T(0);
      return;
    }
    T s = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const T e = d_exp(xr[c] - m);
      yr[c] = e;
      s += e;
    }
    const T inv = T(1) / block_sum(s);
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] *= inv;
  }, "cuda::softmax_rows");
}

// y: softmax_rows' output.  dx[r] += y[r] * (dy[r] - sum(dy[r] * y[r])).
template <class T>
void softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) {
  if (dx == nullptr) return;
  for_each_row(rows, [=] __device__(index_t r) {
    const T *yr = y + r * cols, *gr = dy + r * cols;
    T dot = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) dot += yr[c] * gr[c];
    dot = block_sum(dot);
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) dx[r * cols + c] += yr[c] * (gr[c] - dot);
  }, "cuda::softmax_rows_backward");
}

// y[r] = x[r] - max - log(sum exp(x[r] - max)); a row that is all -inf gives -inf.
template <class T>
void log_softmax_rows(const T* x, T* y, index_t rows, index_t cols) {
  for_each_row(rows, [=] __device__(index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = row_max(xr, cols);
    if (m == -T(INFINITY)) {
      for (index_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = m;
      return;
    }
    T s = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) s += d_exp(xr[c] - m);
    const T log_sum = d_log(block_sum(s));
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = (xr[c] - m) - log_sum;
  }, "cuda::log_softmax_rows");
}

// y: log_softmax_rows' output.  dx[r] += dy[r] - exp(y[r]) * sum(dy[r]).
template <class T>
void log_softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) {
  if (dx == nullptr) return;
  for_each_row(rows, [=] __device__(index_t r) {
    const T *yr = y + r * cols, *gr = dy + r * cols;
    T s = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) s += gr[c];
    s = block_sum(s);
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) dx[r * cols + c] += gr[c] - d_exp(yr[c]) * s;
  }, "cuda::log_softmax_rows_backward");
}

// LayerNorm: mean[r], rstd[r] = 1 / sqrt(biased variance + eps) (two passes), y = (x - mean) rstd
// gamma + beta; gamma, beta, mean, rstd may be nullptr. y may alias x.
template <class T>
void layer_norm_rows(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, index_t rows, index_t cols,
                     T eps) {
  for_each_row(rows, [=] __device__(index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    const T mu = block_sum(s) / T(cols);
    T v = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) v += (xr[c] - mu) * (xr[c] - mu);
    const T rs = d_rsqrt(block_sum(v) / T(cols) + eps);
    if (threadIdx.x == 0) {
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
    }
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) {
      T o = (xr[c] - mu) * rs;
      if (gamma) o *= gamma[c];
      if (beta) o += beta[c];
      yr[c] = o;
    }
  }, "cuda::layer_norm_rows");
}

// With xhat = (x - mean) rstd and g = dy gamma: dx[r] += rstd (g - mean(g) - xhat mean(g xhat));
// dgamma[c] += sum_r dy xhat; dbeta[c] += sum_r dy. Any gradient output may be nullptr.
template <class T>
void layer_norm_rows_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx,
                              T* dgamma, T* dbeta, index_t rows, index_t cols) {
  if (dx)
    for_each_row(rows, [=] __device__(index_t r) {
      const T *xr = x + r * cols, *gr = dy + r * cols;
      const T mu = mean[r], rs = rstd[r];
      T sg = 0, sgx = 0;
      for (index_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const T g = gamma ? gr[c] * gamma[c] : gr[c];
        sg += g;
        sgx += g * (xr[c] - mu) * rs;
      }
      const T g_mean = block_sum(sg) / T(cols), gx_mean = block_sum(sgx) / T(cols);
      for (index_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const T g = gamma ? gr[c] * gamma[c] : gr[c];
        dx[r * cols + c] += rs * (g - g_mean - (xr[c] - mu) * rs * gx_mean);
      }
    }, "cuda::layer_norm_rows_backward (dx)");
  if (!dgamma && !dbeta) return;
  for_each_index(cols, [=] __device__(index_t c) {
    T acc_g = 0, acc_b = 0;
    for (index_t r = 0; r < rows; ++r) {
      const T g = dy[r * cols + c];
      acc_g += g * (x[r * cols + c] - mean[r]) * rstd[r];
      acc_b += g;
    }
    if (dgamma) dgamma[c] += acc_g;
    if (dbeta) dbeta[c] += acc_b;
  }, "cuda::layer_norm_rows_backward (dgamma, dbeta)");
}

// RMSNorm (T5LayerNorm): rstd[r] = 1 / sqrt(mean(x[r]^2) + eps); y = x rstd gamma.
template <class T>
void rms_norm_rows(const T* x, const T* gamma, T* y, T* rstd, index_t rows, index_t cols, T eps) {
  for_each_row(rows, [=] __device__(index_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c] * xr[c];
    const T rs = d_rsqrt(block_sum(s) / T(cols) + eps);
    if (threadIdx.x == 0 && rstd) rstd[r] = rs;
    for (index_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = gamma ? xr[c] * rs * gamma[c] : xr[c] * rs;
  }, "cuda::rms_norm_rows");
}

// With xhat = x rstd and g = dy gamma: dx[r] += rstd (g - xhat mean(g xhat)); dgamma[c] += sum_r dy xhat.
template <class T>
void rms_norm_rows_backward(const T* x, const T* gamma, const T* rstd, const T* dy, T* dx, T* dgamma, index_t rows,
                            index_t cols) {
  if (dx)
    for_each_row(rows, [=] __device__(index_t r) {
      const T *xr = x + r * cols, *gr = dy + r * cols;
      const T rs = rstd[r];
      T sgx = 0;
      for (index_t c = threadIdx.x; c < cols; c += blockDim.x) sgx += (gamma ? gr[c] * gamma[c] : gr[c]) * xr[c] * rs;
      const T gx_mean = block_sum(sgx) / T(cols);
      for (index_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const T g = gamma ? gr[c] * gamma[c] : gr[c];
        dx[r * cols + c] += rs * (g - xr[c] * rs * gx_mean);
      }
    }, "cuda::rms_norm_rows_backward (dx)");
  if (!dgamma) return;
  for_each_index(cols, [=] __device__(index_t c) {
    T acc = 0;
    for (index_t r = 0; r < rows; ++r) acc += dy[r * cols + c] * x[r * cols + c] * rstd[r];
    dgamma[c] += acc;
  }, "cuda::rms_norm_rows_backward (dgamma)");
}

}  // namespace deepprompt::cuda
