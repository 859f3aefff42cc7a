#pragma once
// The fused attention's arguments and gradient outputs, shared by the CPU kernels
// (backend/cpu/attention_kernels.hpp: every field) and the CUDA ones (backend/cuda/attention.cuh:
// the padded layout; offsets, q_offsets and keep_bits must be null there). Plain data: raw
// pointers into the caller's tensors, the contract of each field beside it.
#include <cstddef>
#include <cstdint>

#include "../core/device.hpp"  // DEEPPROMPT_HOST_DEVICE

namespace deepprompt {

using index_t = std::ptrdiff_t;

template <class T>
struct AttentionArgs {
  index_t batch = 0, heads = 0, q_len = 0, kv_len = 0, prefix_len = 0, head_dim = 0;
  const T* q = nullptr;         // (B, H, Tq, D)
  const T* k = nullptr;         // (B, H, Tk, D)
  const T* v = nullptr;         // (B, H, Tk, D)
  const T* prefix_k = nullptr;  // (H, P, D) or (B, H, P, D); nullptr iff P == 0
  const T* prefix_v = nullptr;
  bool prefix_per_example = false;  // (B, H, P, D) rather than (H, P, D)
  const T* mask = nullptr;          // additive (B, mask_cols) or nullptr
  index_t mask_cols = 0;            // Tk or P + Tk
  const T* bias = nullptr;          // additive (1 or B, H, Tq, bias_cols) or nullptr
  bool bias_per_example = false;    // batch extent B rather than 1
  index_t bias_cols = 0;            // Tk or P + Tk
  bool causal = false;
  const index_t* offsets = nullptr;  // packed layout: B + 1 row offsets, offsets[0] == 0
  // packed layout, queries other than the keys' rows: sequence b's queries are rows
  // [q_offsets[b], q_offsets[b + 1]) of q and out (e.g. only each sequence's first token);
  // nullptr: the same rows as the keys
  const index_t* q_offsets = nullptr;
  T scale = T(1);
  T dropout = T(0);  // probability of dropping; 0: none. requires: 0 <= dropout <= 1
  std::uint64_t seed = 0, first_word = 0;  // of the dropout words (unused when dropout is 0 or 1)
  // (B, H, Tq, keep_words_per_row()) or nullptr: written by the forward pass, read by the backward
  std::uint64_t* keep_bits = nullptr;

  DEEPPROMPT_HOST_DEVICE index_t keys() const { return prefix_len + kv_len; }
  DEEPPROMPT_HOST_DEVICE index_t keep_words_per_row() const { return (keys() + 63) / 64; }
  // The words of keep_bits; 0 when dropout draws nothing (0 or 1).
  // Query rows: B * Tq padded, N packed.
  DEEPPROMPT_HOST_DEVICE index_t query_rows() const { return q_offsets ? q_offsets[batch] : offsets ? offsets[batch] : batch * q_len; }
  DEEPPROMPT_HOST_DEVICE index_t keep_words() const {
    return dropout > T(0) && dropout < T(1) ? query_rows() * heads * keep_words_per_row() : 0;
  }
};

// Gradient outputs of attention_backward; each ACCUMULATES (+=) and nullptr skips it.
template <class T>
struct AttentionGrads {
  T* q = nullptr;         // (B, H, Tq, D), or (N, H, D) packed
  T* k = nullptr;         // (B, H, Tk, D), or (N, H, D) packed
  T* v = nullptr;         // as k
  T* prefix_k = nullptr;  // as args.prefix_k (summed over the batch in the shared form)
  T* prefix_v = nullptr;
  T* bias = nullptr;      // as args.bias (summed over the batch when its batch extent is 1)
};

}  // namespace deepprompt
