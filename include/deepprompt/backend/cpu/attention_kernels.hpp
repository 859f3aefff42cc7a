#pragma once
// Fused scaled-dot-product attention on the CPU, forward and backward (raw pointers, no
// autodiff), with an optional key/value prefix (P-Tuning v2), additive mask, additive bias
// (T5's relative positions), causal masking and attention dropout.
//
// Layout (row-major, contiguous), padded:
//   q: (B, H, Tq, D)   k, v: (B, H, Tk, D)   out: (B, H, Tq, D)   stats: (B, H, Tq, 2)
// or packed (variable-length sequences, no padding; `offsets` set): the N = offsets[B] tokens of
// the batch one after the other, sequence b being rows [offsets[b], offsets[b + 1]), heads side
// by side in a row, as a Linear writes them (no head split or merge needed):
//   q, k, v, out: (N, H, D)   stats: (N, H, 2); sequence b attends to its own tokens only,
//   Tq = Tk = its length (no mask, bias or causal masking; q_len and kv_len are the longest).
//   prefix_k, prefix_v: (H, P, D) shared by the batch, or (B, H, P, D) per example
//   mask: additive (B, Tk) or (B, P + Tk)    bias: additive (1 or B, H, Tq, Tk or P + Tk)
// The keys seen by a query are the P prefix keys followed by the Tk real keys (Tk' = P + Tk).
// A mask or bias with Tk columns applies to the real keys only (the prefix gets 0); with P + Tk
// columns it covers the prefix too. `causal`: query i sees the real keys j <= i + (Tk - Tq)
// (aligned at the bottom right, as Hugging Face with a KV cache and flash-attention do; with
// Tq == Tk this is j <= i) and always the whole prefix.
//
// Memory (flash-attention style): the forward pass keeps only two numbers per query row, the
// maximum m of its scores and 1 / sum(exp(s - m)); the backward pass recomputes the probabilities
// block by block from q, k and them, with the forward's own formula exp(s - m) * (1 / sum), so
// they are the same bits. (One log-sum-exp m + log(sum) is not enough: for a row masked with the
// lowest finite value, m ~ -3.4e38 absorbs log(sum) and exp(s - lse) would give 1, not 1/T.) Neither
// pass materialises a (B, H, Tq, Tk') tensor: each thread works on a (block of 64 queries) x Tk'
// slab of a caller-provided workspace. Dropout masks are not stored either: element
// (b, h, i, j) of the (B, H, Tq, Tk') probability tensor is kept iff word
// first_word + ((b*H + h)*Tq + i)*Tk' + j of the Philox stream `seed` is >= ceil(p * 2^32) (the
// rule of ops/dropout.hpp), and kept values are scaled by 1 / (1 - p). With `keep_bits` the
// forward pass also writes the kept/dropped bits (Tk' bits a row, rounded up to 64-bit words)
// and the backward pass reads them; without, it redraws the words (vectorised Philox, about
// 1.3 ns a word; the bits cost Tk'/8 bytes a query row). p == 1 drops everything without drawing.
//
// Scores of fully masked rows: a row whose scores are all -inf (an additive -inf mask, a bias
// holding -inf, or a causal row that sees no key at all) gives probability zeros and a zero
// output, never NaN. A row masked with the lowest finite value (Hugging Face's
// (1 - mask) * finfo.min) gives what PyTorch gives: uniform weights over its keys.
//
// Threads: OpenMP over (b, h) pairs (or over heads, the batch in order inside, when the
// backward pass sums a gradient over the batch: the shared prefix or a batch-1 bias), GEMMs
// single-threaded inside (cpu::gemm runs on one thread inside an active parallel region).
// Results do not depend on the thread count: every sum runs in a fixed order. (So the backward
// pass of a shared prefix uses at most H threads: enough for 12 heads on 2 to 12 cores.)

// simd.hpp first: it silences GCC 12's false -Wuninitialized in the AVX-512 intrinsics, which
// must be in force where <immintrin.h> is first parsed (Eigen would include it otherwise).
#include "deepprompt/backend/cpu/simd.hpp"
#include "deepprompt/backend/cpu/attention_rows.hpp"
#include "deepprompt/backend/cpu/gemm.hpp"
#include "deepprompt/backend/cpu/philox.hpp"
#include "deepprompt/backend/cpu/threads.hpp"
#include "deepprompt/backend/attention_args.hpp"
#include "deepprompt/core/rng.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>

namespace deepprompt::cpu {

// The arguments and gradient outputs (backend/attention_args.hpp, shared with the CUDA kernels).
using deepprompt::AttentionArgs;
using deepprompt::AttentionGrads;

namespace attn_detail {

// Queries per block: a (64 x Tk') slab of scores stays in L2 for Tk' up to a few thousand.
inline constexpr index_t kQueryBlock = 64;

// One (b, h) pair: its lengths, where its rows are, and its pointers.
template <class T>
struct Pair {
  index_t b, h, bh;
  index_t tq, tk, w;         // queries, real keys, P + tk
  index_t ld;                // row stride of q, k, v, out and their gradients: D padded, H * D packed
  index_t q0, k0;            // element offset of its first query / key row in q, out / k, v
  index_t n0 = 0;            // packed: the sequence's first query row
  index_t row0, row_step;    // query i's row in stats, keep bits and dropout words: row0 + i * row_step
  const T *q, *k, *v, *pk, *pv, *mask, *bias;
  // Prefix panels (packed layout, shared prefix; PrefixPanels): this pair's rows of its head's
  // (N, P) score / probability panel and gradient panel, or nullptr (the prefix part is computed
  // block by block instead).
  T *sp = nullptr, *gp = nullptr;
  index_t row(index_t i) const { return row0 + i * row_step; }
};

// The number of real keys query i of pair p sees.
template <class T>
index_t visible_keys(const AttentionArgs<T>& a, const Pair<T>& p, index_t i) {
  if (!a.causal) return p.tk;
  return std::clamp<index_t>(i + p.tk - p.tq + 1, 0, p.tk);
}

template <class T>
Pair<T> pair_of(const AttentionArgs<T>& a, index_t b, index_t h) {
  const index_t bh = b * a.heads + h, P = a.prefix_len, D = a.head_dim;
  const index_t pre = ((a.prefix_per_example ? b * a.heads : 0) + h) * P * D;
  Pair<T> p{};
  p.b = b, p.h = h, p.bh = bh;
  if (a.offsets) {
    const index_t n0 = a.offsets[b], q0 = a.q_offsets ? a.q_offsets[b] : n0;
    p.tk = a.offsets[b + 1] - n0;
    p.tq = a.q_offsets ? a.q_offsets[b + 1] - q0 : p.tk;
    p.ld = a.heads * D;
    p.q0 = q0 * p.ld + h * D, p.k0 = n0 * p.ld + h * D;
    p.row0 = q0 * a.heads + h, p.row_step = a.heads;
    p.n0 = q0;
  } else {
    p.tq = a.q_len, p.tk = a.kv_len, p.ld = D;
    p.q0 = bh * a.q_len * D, p.k0 = bh * a.kv_len * D;
    p.row0 = bh * a.q_len, p.row_step = 1;
  }
  p.w = P + p.tk;
  p.q = a.q + p.q0, p.k = a.k + p.k0, p.v = a.v + p.k0;
  p.pk = a.prefix_k ? a.prefix_k + pre : nullptr;
  p.pv = a.prefix_v ? a.prefix_v + pre : nullptr;
  p.mask = a.mask ? a.mask + b * a.mask_cols : nullptr;
  p.bias = a.bias ? a.bias + ((a.bias_per_example ? b * a.heads : 0) + h) * a.q_len * a.bias_cols : nullptr;
  return p;
}

// Rows [i0, i0 + rows) of this pair's scaled scores q K'^T into S (ld p.w), columns
// [0, P + kv) where kv is the number of real keys the block's last query sees.
template <class T>
index_t block_scores(const AttentionArgs<T>& a, const Pair<T>& p, index_t i0, index_t rows, T* S) {
  const index_t P = a.prefix_len, D = a.head_dim, W = p.w;
  const index_t kv = visible_keys(a, p, i0 + rows - 1);
  const T* qb = p.q + i0 * p.ld;
  if (p.sp)
    for (index_t r = 0; r < rows; ++r) std::copy_n(p.sp + (i0 + r) * P, P, S + r * W);
  else if (P > 0)
    gemm(Trans::No, Trans::Yes, rows, P, D, a.scale, qb, p.ld, p.pk, D, T(0), S, W);
  if (kv > 0) gemm(Trans::No, Trans::Yes, rows, kv, D, a.scale, qb, p.ld, p.k, p.ld, T(0), S + P, W);
  return kv;
}

// Adds the bias and mask of query i to its score row s; returns the number of columns it sees.
template <class T>
index_t mask_row(const AttentionArgs<T>& a, const Pair<T>& p, index_t i, T* s) {
  const index_t P = a.prefix_len, kvis = visible_keys(a, p, i), n = P + kvis;
  if (p.bias) {
    const T* br = p.bias + i * a.bias_cols;
    if (a.bias_cols == a.keys()) add_row(s, br, n);
    else add_row(s + P, br, kvis);
  }
  if (p.mask) {
    if (a.mask_cols == a.keys()) add_row(s, p.mask, n);
    else add_row(s + P, p.mask, kvis);
  }
  return n;
}

template <class T>
std::uint64_t dropout_word(const AttentionArgs<T>& a, const Pair<T>& p, index_t i) {
  return a.first_word + static_cast<std::uint64_t>(p.row(i) * a.keys());
}

// Per-thread workspace (elements of T): the score slab, and for the backward pass the gradient
// slab and one row of dropout factors; then the Philox words (4-byte, so they fit).
template <class T>
index_t slot_size(index_t W, bool backward) {
  return (backward ? 2 * kQueryBlock * W + W : kQueryBlock * W) + philox_capacity(W);
}

template <class T>
void forward_pair(const AttentionArgs<T>& a, const Pair<T>& p, T* out, T* stats, T* S) {
  const index_t P = a.prefix_len, D = a.head_dim, W = p.w;
  const Dropout<T> drop(a.dropout);
  auto* words = reinterpret_cast<std::uint32_t*>(S + kQueryBlock * a.keys());
  for (index_t i0 = 0; i0 < p.tq; i0 += kQueryBlock) {
    const index_t rows = std::min(kQueryBlock, p.tq - i0);
    const index_t kv = block_scores(a, p, i0, rows, S);
    for (index_t r = 0; r < rows; ++r) {
      T* s = S + r * W;
      const index_t n = mask_row(a, p, i0 + r, s);
      softmax_row(s, n, stats ? stats + 2 * p.row(i0 + r) : nullptr);
      std::fill(s + n, s + P + kv, T(0));
      if (drop.on)
        drop.apply(a.seed, dropout_word(a, p, i0 + r), s, n, words,
                   a.keep_bits ? a.keep_bits + p.row(i0 + r) * a.keep_words_per_row() : nullptr);
    }
    T* o = out + p.q0 + i0 * p.ld;
    if (p.sp) {  // the prefix's share of the output comes later, one GEMM per head
      for (index_t r = 0; r < rows; ++r) std::copy_n(S + r * W, P, p.sp + (i0 + r) * P);
      gemm(Trans::No, Trans::No, rows, D, kv, T(1), S + P, W, p.v, p.ld, T(0), o, p.ld);  // kv == 0: o = 0
    } else {
      gemm(Trans::No, Trans::No, rows, D, P, T(1), S, W, p.pv, D, T(0), o, p.ld);  // P == 0: o = 0
      if (kv > 0) gemm(Trans::No, Trans::No, rows, D, kv, T(1), S + P, W, p.v, p.ld, T(1), o, p.ld);
    }
  }
}

// ws: slot_size<T>(Tk', true) elements.
template <class T>
void backward_pair(const AttentionArgs<T>& a, const Pair<T>& p, const T* dout, const T* stats,
                   const AttentionGrads<T>& g, T* ws) {
  const index_t P = a.prefix_len, D = a.head_dim, W = p.w, Wmax = a.keys(), ld = p.ld;
  const Dropout<T> drop(a.dropout);
  const bool drop_on = drop.on;
  T* S = ws;                             // probabilities, then dropped probabilities
  T* G = ws + kQueryBlock * Wmax;        // dO V'^T, then dS
  T* Z = ws + 2 * kQueryBlock * Wmax;    // one row of dropout factors
  auto* words = reinterpret_cast<std::uint32_t*>(Z + Wmax);
  const index_t pre = ((a.prefix_per_example ? p.b * a.heads : 0) + p.h) * P * D;
  T* dpk = g.prefix_k ? g.prefix_k + pre : nullptr;
  T* dpv = g.prefix_v ? g.prefix_v + pre : nullptr;
  T* dk = g.k ? g.k + p.k0 : nullptr;
  T* dv = g.v ? g.v + p.k0 : nullptr;
  T* dbias = g.bias ? g.bias + ((a.bias_per_example ? p.b * a.heads : 0) + p.h) * a.q_len * a.bias_cols : nullptr;
  const bool want_v = dv || dpv;
  const bool want_s = g.q || dk || dpk || dbias;

  for (index_t i0 = 0; i0 < p.tq; i0 += kQueryBlock) {
    const index_t rows = std::min(kQueryBlock, p.tq - i0);
    const T* dob = dout + p.q0 + i0 * ld;
    const T* qb = p.q + i0 * ld;
    const index_t kv = block_scores(a, p, i0, rows, S);
    if (want_s) {
      if (p.gp)
        for (index_t r = 0; r < rows; ++r) std::copy_n(p.gp + (i0 + r) * P, P, G + r * W);
      else if (P > 0)
        gemm(Trans::No, Trans::Yes, rows, P, D, T(1), dob, ld, p.pv, D, T(0), G, W);
      if (kv > 0) gemm(Trans::No, Trans::Yes, rows, kv, D, T(1), dob, ld, p.v, ld, T(0), G + P, W);
    }
    for (index_t r = 0; r < rows; ++r) {
      const index_t i = i0 + r;
      T* s = S + r * W;
      T* gr = G + r * W;
      const index_t n = mask_row(a, p, i, s);
      probabilities_row(s, n, stats + 2 * p.row(i));
      std::fill(s + n, s + P + kv, T(0));
      if (drop_on) {
        if (a.keep_bits) {
          drop.factors(a.keep_bits + p.row(i) * a.keep_words_per_row(), Z, n);
        } else {
          std::fill_n(Z, n, T(1));
          drop.apply(a.seed, dropout_word(a, p, i), Z, n, words);
        }
      }
      if (want_s) {
        // dP = dropout(dO V'^T); dS = P * (dP - sum(P * dP))
        if (drop_on) simd::apply(n, gr, [](simd::batch<T> x, simd::batch<T> z) { return x * z; }, gr, Z);
        const simd::batch<T> dsum(dot_row(s, gr, n));
        simd::apply(n, gr, [dsum](simd::batch<T> pp, simd::batch<T> x) { return pp * (x - dsum); }, s, gr);
        std::fill(gr + n, gr + P + kv, T(0));
        if (dbias) {
          T* dbr = dbias + i * a.bias_cols;
          if (a.bias_cols == W) add_row(dbr, gr, n);
          else add_row(dbr, gr + P, n - P);
        }
      }
      if (want_v && drop_on) simd::apply(n, s, [](simd::batch<T> x, simd::batch<T> z) { return x * z; }, s, Z);
    }
    if (p.sp) {  // the prefix's gradients and its share of dq come later, one GEMM per head
      for (index_t r = 0; r < rows; ++r) {
        std::copy_n(S + r * W, P, p.sp + (i0 + r) * P);
        if (want_s) std::copy_n(G + r * W, P, p.gp + (i0 + r) * P);
      }
    }
    const bool blockwise = !p.sp;
    if (blockwise && dpv && P > 0) gemm(Trans::Yes, Trans::No, P, D, rows, T(1), S, W, dob, ld, T(1), dpv, D);
    if (dv && kv > 0) gemm(Trans::Yes, Trans::No, kv, D, rows, T(1), S + P, W, dob, ld, T(1), dv, ld);
    if (g.q) {
      T* dqb = g.q + p.q0 + i0 * ld;
      if (blockwise && P > 0) gemm(Trans::No, Trans::No, rows, D, P, a.scale, G, W, p.pk, D, T(1), dqb, ld);
      if (kv > 0) gemm(Trans::No, Trans::No, rows, D, kv, a.scale, G + P, W, p.k, ld, T(1), dqb, ld);
    }
    if (blockwise && dpk && P > 0) gemm(Trans::Yes, Trans::No, P, D, rows, a.scale, G, W, qb, ld, T(1), dpk, D);
    if (dk && kv > 0) gemm(Trans::Yes, Trans::No, kv, D, rows, a.scale, G + P, W, qb, ld, T(1), dk, ld);
  }
}

inline int team_size(index_t items) {
  return static_cast<int>(std::clamp<index_t>(items, 1, num_threads()));
}

// Packed layout with a prefix shared by the batch: the prefix's part of the attention goes
// through per-head panels of all N queries, (H, N, P) scores / probabilities (and gradients),
// so that it is a few GEMMs per head over N rows (N x P x D) instead of small ones per block
// of 64 queries; the blocks copy their rows in and out of the panels.
template <class T>
bool uses_panels(const AttentionArgs<T>& a) {
  return a.offsets && a.prefix_len > 0 && !a.prefix_per_example;
}
template <class T>
index_t panel_size(const AttentionArgs<T>& a) {
  return uses_panels(a) ? a.heads * a.query_rows() * a.prefix_len : 0;
}

// The pair (b, h) with its rows of the panels sp, gp (when the panels are used).
template <class T>
Pair<T> pair_with_panels(const AttentionArgs<T>& a, index_t b, index_t h, T* sp, T* gp) {
  Pair<T> p = pair_of(a, b, h);
  if (uses_panels(a)) {
    const index_t at = (h * a.query_rows() + p.n0) * a.prefix_len;
    p.sp = sp + at;
    p.gp = gp ? gp + at : nullptr;
  }
  return p;
}

// f(bh, thread) for every (batch, head) pair bh in [0, B * H). Packed sequences differ in length:
// their pairs are handed out one at a time from an atomic counter (long ones first take a thread
// while others share the rest). Padded pairs are all alike and split statically, so that which
// thread runs which pair does not depend on timing. With the counter, a worker that got no pair
// during the warm-up steps would allocate its GEMM packing buffers at its first pair later, so
// every thread of that region reserves them first: a warmed-up step allocates nothing
// (tests/unit/test_training_step.cpp).
template <class T, class F>
void for_each_pair(const AttentionArgs<T>& a, F&& f) {
  const index_t n = a.batch * a.heads;
  if (!a.offsets) {
#pragma omp parallel for schedule(static) num_threads(team_size(n))
    for (index_t i = 0; i < n; ++i) f(i, omp_get_thread_num());
    return;
  }
  std::atomic<index_t> next{0};
#pragma omp parallel num_threads(team_size(n))
  {
    detail::reserve_thread_scratch<T>();  // a thread that gets no pair now may get its first one later
    const int t = omp_get_thread_num();
    for (index_t i = next.fetch_add(1, std::memory_order_relaxed); i < n; i = next.fetch_add(1, std::memory_order_relaxed))
      f(i, t);
  }
}

// f(h, q_h, ...) for every head in parallel (one thread a head, GEMMs single-threaded inside).
template <class T, class F>
void for_each_head(const AttentionArgs<T>& a, F&& f) {
#pragma omp parallel for schedule(static) num_threads(team_size(a.heads))
  for (index_t h = 0; h < a.heads; ++h) f(h);
}

}  // namespace attn_detail

// Elements of the workspace attention_forward / attention_backward need.
template <class T>
index_t attention_workspace_size(const AttentionArgs<T>& a, bool backward) {
  return attn_detail::slot_size<T>(a.keys(), backward) * num_threads() +
         (backward ? 2 : 1) * attn_detail::panel_size(a);
}

// out: (B, H, Tq, D) or (N, H, D) packed is overwritten; stats: (B, H, Tq, 2) / (N, H, 2) or
// nullptr (the backward pass needs it). workspace: attention_workspace_size(a, false) elements.
// requires: the shapes in `a` are consistent (the op checks them); dropout in [0, 1].
template <class T>
void attention_forward(const AttentionArgs<T>& a, T* out, T* stats, T* workspace) {
  const index_t pairs = a.batch * a.heads;
  if (pairs == 0 || a.q_len == 0 || a.head_dim == 0) return;
  const index_t slot = attn_detail::slot_size<T>(a.keys(), false);
  const index_t N = a.query_rows(), P = a.prefix_len, D = a.head_dim, HD = a.heads * D;
  T* sp = workspace + slot * num_threads();  // (H, N, P) when the panels are used
  const bool panels = attn_detail::uses_panels(a);
  if (panels)  // the prefix scores of all queries, per head
    attn_detail::for_each_head(a, [&](index_t h) {
      gemm(Trans::No, Trans::Yes, N, P, D, a.scale, a.q + h * D, HD, a.prefix_k + h * P * D, D, T(0), sp + h * N * P, P);
    });
  attn_detail::for_each_pair(a, [&](index_t bh, int t) {
    attn_detail::forward_pair(a, attn_detail::pair_with_panels(a, bh / a.heads, bh % a.heads, sp, static_cast<T*>(nullptr)),
                              out, stats, workspace + t * slot);
  });
  if (panels)  // the prefix's share of the outputs: probabilities x prefix values
    attn_detail::for_each_head(a, [&](index_t h) {
      gemm(Trans::No, Trans::No, N, D, P, T(1), sp + h * N * P, P, a.prefix_v + h * P * D, D, T(1), out + h * D, HD);
    });
}

// dout: as out; stats: as saved by attention_forward. Accumulates into the non-null
// outputs of g. workspace: attention_workspace_size(a, true) elements.
template <class T>
void attention_backward(const AttentionArgs<T>& a, const T* dout, const T* stats, const AttentionGrads<T>& g,
                        T* workspace) {
  const index_t pairs = a.batch * a.heads;
  if (pairs == 0 || a.q_len == 0 || a.head_dim == 0) return;
  const index_t slot = attn_detail::slot_size<T>(a.keys(), true);
  const index_t N = a.query_rows(), P = a.prefix_len, D = a.head_dim, HD = a.heads * D;
  const bool panels = attn_detail::uses_panels(a);
  T* sp = workspace + slot * num_threads();  // (H, N, P) each, when the panels are used
  T* gp = sp + attn_detail::panel_size(a);
  const bool want_s = g.q || g.k || g.prefix_k || g.bias;
  if (panels)  // the prefix scores again, and dO x prefix values^T
    attn_detail::for_each_head(a, [&](index_t h) {
      gemm(Trans::No, Trans::Yes, N, P, D, a.scale, a.q + h * D, HD, a.prefix_k + h * P * D, D, T(0), sp + h * N * P, P);
      if (want_s)
        gemm(Trans::No, Trans::Yes, N, P, D, T(1), dout + h * D, HD, a.prefix_v + h * P * D, D, T(0), gp + h * N * P, P);
    });
  // Gradients summed over the batch block by block: one thread per head, the batch in order
  // inside (the panels sum them in one GEMM per head instead, after the pairs).
  const bool over_batch = !panels && a.batch > 1 &&
                          (((g.prefix_k || g.prefix_v) && !a.prefix_per_example) || (g.bias && !a.bias_per_example));
  if (over_batch) {
#pragma omp parallel for schedule(static) num_threads(attn_detail::team_size(a.heads))
    for (index_t h = 0; h < a.heads; ++h)
      for (index_t b = 0; b < a.batch; ++b)
        attn_detail::backward_pair(a, attn_detail::pair_of(a, b, h), dout, stats, g,
                                   workspace + omp_get_thread_num() * slot);
  } else {
    attn_detail::for_each_pair(a, [&](index_t bh, int t) {
      attn_detail::backward_pair(a, attn_detail::pair_with_panels(a, bh / a.heads, bh % a.heads, sp, gp), dout, stats,
                                 g, workspace + t * slot);
    });
  }
  if (panels)  // sp: the dropped probabilities; gp: dS of the prefix columns
    attn_detail::for_each_head(a, [&](index_t h) {
      const T* sph = sp + h * N * P;
      const T* gph = gp + h * N * P;
      if (g.prefix_v) gemm(Trans::Yes, Trans::No, P, D, N, T(1), sph, P, dout + h * D, HD, T(1), g.prefix_v + h * P * D, D);
      if (g.q) gemm(Trans::No, Trans::No, N, D, P, a.scale, gph, P, a.prefix_k + h * P * D, D, T(1), g.q + h * D, HD);
      if (g.prefix_k)
        gemm(Trans::Yes, Trans::No, P, D, N, a.scale, gph, P, a.q + h * D, HD, T(1), g.prefix_k + h * P * D, D);
    });
}

}  // namespace deepprompt::cpu
