#pragma once
// Fused scaled-dot-product attention on the device, padded layout, with a key/value prefix: the
// semantics of backend/cpu/attention_kernels.hpp (AttentionArgs) for q (B, H, Tq, D), k and v
// (B, H, Tk, D), a prefix (H, P, D) shared by the batch or (B, H, P, D) per example put in front
// of the keys, an additive mask (B, Tk) or (B, P + Tk), an additive bias (1 or B, H, Tq, Tk or
// P + Tk), causal masking of the real keys, and dropout whose words are the CPU's (element (b, h,
// i, c) of the (B, H, Tq, P + Tk) probabilities uses word first_word + ((b H + h) Tq + i)(P + Tk)
// + c of the Philox stream `seed`). The forward pass saves per query row the max m of its scores
// and 1 / sum(exp(s - m)) (a fully masked row: {+inf, 0} and zero output), as the CPU does.
//
// One warp per query row, 4 rows per block; no score row is ever stored: the forward pass makes
// two passes over the keys (max and sum online, then the weighted sum of values), the backward
// two (sum(P dP), then dS and the gradients). dq is summed in registers; dk, dv, the prefix's
// and the bias's gradients are accumulated with atomicAdd (their summation order varies: results
// equal the CPU's to rounding, not bit for bit). Simple before fast: keys and values are read
// from global memory (L2) per row, no shared-memory tiling.
// requires: head_dim <= 128 (kMaxHeadDim; checked, Error otherwise).
#include <cstdint>

#include "../../core/rng.hpp"
#include "../attention_args.hpp"
#include "launch.cuh"

namespace deepprompt::cuda {

// The arguments and gradient outputs (backend/attention_args.hpp, shared with the CPU kernels);
// the packed layout (offsets, q_offsets) and saved keep bits are CPU-only.
using deepprompt::AttentionArgs;
using deepprompt::AttentionGrads;

inline constexpr index_t kMaxHeadDim = 128;

namespace attn {

inline constexpr int kRowsPerBlock = 4;
inline constexpr int kPerLane = kMaxHeadDim / 32;

// What one query row needs: where its data is and what it sees.
template <class T>
struct Row {
  index_t b, h, i, row, n, kvis;  // row = (b H + h) Tq + i; n = P + kvis columns seen
  const T *q, *k, *v, *pk, *pv, *mask, *bias;
};

template <class T>
__device__ Row<T> row_of(const AttentionArgs<T>& a, index_t row) {
  Row<T> r;
  r.row = row;
  r.i = row % a.q_len;
  const index_t bh = row / a.q_len;
  r.b = bh / a.heads, r.h = bh % a.heads;
  const index_t P = a.prefix_len, D = a.head_dim;
  r.kvis = a.causal ? max(index_t(0), min(a.kv_len, r.i + a.kv_len - a.q_len + 1)) : a.kv_len;
  r.n = P + r.kvis;
  r.q = a.q + row * D;
  r.k = a.k + bh * a.kv_len * D;
  r.v = a.v + bh * a.kv_len * D;
  const index_t pre = ((a.prefix_per_example ? r.b * a.heads : 0) + r.h) * P * D;
  r.pk = a.prefix_k ? a.prefix_k + pre : nullptr;
  r.pv = a.prefix_v ? a.prefix_v + pre : nullptr;
  r.mask = a.mask ? a.mask + r.b * a.mask_cols : nullptr;
  r.bias = a.bias ? a.bias + (((a.bias_per_example ? r.b * a.heads : 0) + r.h) * a.q_len + r.i) * a.bias_cols : nullptr;
  return r;
}

// Key / value vector of column c (prefix first).
template <class T>
__device__ const T* key_of(const AttentionArgs<T>& a, const Row<T>& r, index_t c) {
  return c < a.prefix_len ? r.pk + c * a.head_dim : r.k + (c - a.prefix_len) * a.head_dim;
}
template <class T>
__device__ const T* value_of(const AttentionArgs<T>& a, const Row<T>& r, index_t c) {
  return c < a.prefix_len ? r.pv + c * a.head_dim : r.v + (c - a.prefix_len) * a.head_dim;
}

// sum over the warp, returned to every lane
template <class T>
__device__ T warp_sum(T x) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// dot(x, y) of D-vectors held as lane-strided registers (x) and memory (y)
template <class T>
__device__ T dot(const T (&x)[kPerLane], const T* y, index_t D) {
  T s = 0;
  for (int t = 0; t < kPerLane; ++t) {
    const index_t d = threadIdx.x % 32 + 32 * t;
    if (d < D) s += x[t] * y[d];
  }
  return warp_sum(s);
}

// The scaled, masked, biased score of column c.
template <class T>
__device__ T score(const AttentionArgs<T>& a, const Row<T>& r, const T (&q)[kPerLane], index_t c) {
  T s = a.scale * dot(q, key_of(a, r, c), a.head_dim);
  const index_t P = a.prefix_len;
  if (r.mask) {
    if (a.mask_cols == a.keys()) s += r.mask[c];
    else if (c >= P) s += r.mask[c - P];
  }
  if (r.bias) {
    if (a.bias_cols == a.keys()) s += r.bias[c];
    else if (c >= P) s += r.bias[c - P];
  }
  return s;
}

// The dropout factor of column c: 0 or 1 / (1 - p) (1 without dropout).
template <class T>
__device__ T keep_factor(const AttentionArgs<T>& a, const Row<T>& r, index_t c, std::uint64_t threshold, T scale) {
  if (a.dropout <= T(0)) return T(1);
  if (a.dropout >= T(1)) return T(0);
  const std::uint64_t word = a.first_word + static_cast<std::uint64_t>(r.row * a.keys() + c);
  return philox_word(a.seed, word) >= threshold ? scale : T(0);
}

template <class T>
__device__ void load_row(const T* x, T (&reg)[kPerLane], index_t D) {
  for (int t = 0; t < kPerLane; ++t) {
    const index_t d = threadIdx.x % 32 + 32 * t;
    reg[t] = d < D ? x[d] : T(0);
  }
}

template <class T>
__global__ void forward_kernel(AttentionArgs<T> a, T* out, T* stats, std::uint64_t threshold, T drop_scale) {
  const index_t row = blockIdx.x * static_cast<index_t>(kRowsPerBlock) + threadIdx.x / 32;
  if (row >= a.batch * a.heads * a.q_len) return;  // the whole warp leaves together
  const Row<T> r = row_of(a, row);
  const index_t D = a.head_dim;
  T q[kPerLane], o[kPerLane] = {};
  load_row(r.q, q, D);
  // pass 1: max and sum, online
  T m = -T(INFINITY), l = 0;
  for (index_t c = 0; c < r.n; ++c) {
    const T s = score(a, r, q, c);
    if (s == -T(INFINITY)) continue;
    const T m_new = ::fmax(m, s);
    l = l * d_exp(m - m_new) + d_exp(s - m_new);
    m = m_new;
  }
  const bool empty = m == -T(INFINITY);
  const T inv = empty ? T(0) : T(1) / l;
  if (stats && threadIdx.x % 32 == 0) stats[2 * row] = empty ? T(INFINITY) : m, stats[2 * row + 1] = inv;
  // pass 2: out = sum_c dropout(p_c) v_c
  if (!empty)
    for (index_t c = 0; c < r.n; ++c) {
      const T p = d_exp(score(a, r, q, c) - m) * inv * keep_factor(a, r, c, threshold, drop_scale);
      if (p == T(0)) continue;
      const T* vc = value_of(a, r, c);
      for (int t = 0; t < kPerLane; ++t) {
        const index_t d = threadIdx.x % 32 + 32 * t;
        if (d < D) o[t] += p * vc[d];
      }
    }
  for (int t = 0; t < kPerLane; ++t) {
    const index_t d = threadIdx.x % 32 + 32 * t;
    if (d < D) out[row * D + d] = o[t];
  }
}

template <class T>
__global__ void backward_kernel(AttentionArgs<T> a, const T* dout, const T* stats, AttentionGrads<T> g,
                                std::uint64_t threshold, T drop_scale) {
  const index_t row = blockIdx.x * static_cast<index_t>(kRowsPerBlock) + threadIdx.x / 32;
  if (row >= a.batch * a.heads * a.q_len) return;
  const Row<T> r = row_of(a, row);
  const index_t D = a.head_dim, P = a.prefix_len;
  const T m = stats[2 * row], inv = stats[2 * row + 1];
  if (inv == T(0)) return;  // a fully masked row: zero probabilities, zero gradients
  T q[kPerLane], dO[kPerLane], dq[kPerLane] = {};
  load_row(r.q, q, D);
  load_row(dout + row * D, dO, D);
  // pass 1: dsum = sum_c P_c dP_c, dP_c = z_c (dO . v_c)
  T dsum = 0;
  for (index_t c = 0; c < r.n; ++c) {
    const T p = d_exp(score(a, r, q, c) - m) * inv;
    const T z = keep_factor(a, r, c, threshold, drop_scale);
    const T dp = z == T(0) ? T(0) : z * dot(dO, value_of(a, r, c), D);
    dsum += p * dp;
  }
  // pass 2: dS_c = P_c (dP_c - dsum); dq += scale dS_c k_c; dk_c += scale dS_c q; dv_c += P_c z_c dO
  const bool bias_shared = a.bias && !a.bias_per_example && a.batch > 1;
  for (index_t c = 0; c < r.n; ++c) {
    const T p = d_exp(score(a, r, q, c) - m) * inv;
    const T z = keep_factor(a, r, c, threshold, drop_scale);
    const T dp = z == T(0) ? T(0) : z * dot(dO, value_of(a, r, c), D);
    const T ds = p * (dp - dsum);
    const bool prefix = c < P;
    T* dkc = prefix ? (g.prefix_k ? g.prefix_k + (r.pk - a.prefix_k) + c * D : nullptr)
                    : (g.k ? g.k + (r.k - a.k) + (c - P) * D : nullptr);
    T* dvc = prefix ? (g.prefix_v ? g.prefix_v + (r.pv - a.prefix_v) + c * D : nullptr)
                    : (g.v ? g.v + (r.v - a.v) + (c - P) * D : nullptr);
    const T* kc = key_of(a, r, c);
    for (int t = 0; t < kPerLane; ++t) {
      const index_t d = threadIdx.x % 32 + 32 * t;
      if (d >= D) continue;
      dq[t] += a.scale * ds * kc[d];
      if (dkc) atomicAdd(dkc + d, a.scale * ds * q[t]);
      if (dvc && p * z != T(0)) atomicAdd(dvc + d, p * z * dO[t]);
    }
    if (g.bias && threadIdx.x % 32 == 0 && (a.bias_cols == a.keys() || !prefix)) {
      T* db = g.bias + (((a.bias_per_example ? r.b * a.heads : 0) + r.h) * a.q_len + r.i) * a.bias_cols +
              (a.bias_cols == a.keys() ? c : c - P);
      if (bias_shared) atomicAdd(db, ds);
      else *db += ds;
    }
  }
  if (g.q)
    for (int t = 0; t < kPerLane; ++t) {
      const index_t d = threadIdx.x % 32 + 32 * t;
      if (d < D) g.q[row * D + d] += dq[t];
    }
}

template <class T>
void check_args(const AttentionArgs<T>& a, const char* what) {
  if (a.offsets || a.q_offsets || a.keep_bits)
    throw Error(std::string(what) + ": the packed layout and saved keep bits are not supported on the GPU yet");
  if (a.head_dim > kMaxHeadDim)
    throw Error(std::string(what) + ": head_dim " + std::to_string(a.head_dim) + " is above the CUDA kernel's " +
                std::to_string(kMaxHeadDim));
}

template <class T>
void dropout_constants(const AttentionArgs<T>& a, std::uint64_t& threshold, T& scale) {
  threshold = 0, scale = T(1);
  if (a.dropout > T(0) && a.dropout < T(1)) {
    threshold = static_cast<std::uint64_t>(std::ceil(static_cast<long double>(a.dropout) * 4294967296.0L));
    scale = T(1) / (T(1) - a.dropout);
  }
}

}  // namespace attn

namespace attn {
// Checks `a`, then launch(blocks, threads, threshold, drop_scale) for one warp per query row
// (nothing for an empty problem), and checks the launch.
template <class T, class Launch>
void launch_rows(const AttentionArgs<T>& a, const char* what, Launch&& launch) {
  check_args(a, what);
  const index_t rows = a.batch * a.heads * a.q_len;
  if (rows == 0 || a.head_dim == 0) return;
  std::uint64_t threshold;
  T scale;
  dropout_constants(a, threshold, scale);
  launch(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), 32u * kRowsPerBlock, threshold, scale);
  check(cudaGetLastError(), what);
}
}  // namespace attn

/// out: (B, H, Tq, D), overwritten; stats: (B, H, Tq, 2) or nullptr (the backward pass needs it).
template <class T>
void attention_forward(const AttentionArgs<T>& a, T* out, T* stats) {
  attn::launch_rows(a, "cuda::attention_forward", [&](unsigned blocks, unsigned threads, std::uint64_t thr, T scale) {
    attn::forward_kernel<<<blocks, threads, 0, current_stream()>>>(a, out, stats, thr, scale);
  });
}

/// dout: as out; stats: as saved by attention_forward. Accumulates into the non-null outputs of g.
template <class T>
void attention_backward(const AttentionArgs<T>& a, const T* dout, const T* stats, const AttentionGrads<T>& g) {
  attn::launch_rows(a, "cuda::attention_backward", [&](unsigned blocks, unsigned threads, std::uint64_t thr, T scale) {
    attn::backward_kernel<<<blocks, threads, 0, current_stream()>>>(a, dout, stats, g, thr, scale);
  });
}

}  // namespace deepprompt::cuda
