#pragma once
// Packed variable-length sequences: the real tokens of a right-padded batch one after another,
// so that the work on padding is skipped (Bert with BertRun::unpadded; ops/attention.hpp,
// packed_attention, attends within each sequence).
//
//   auto lengths = dp::right_padded_lengths(mask);            // (B, T) 0/1 -> {n_0, ..., n_{B-1}}
//   auto offsets = dp::sequence_offsets(*lengths);            // {0, n_0, n_0 + n_1, ..., N}
//   auto packed  = dp::pack_sequences(x, *lengths);           // (B, T, C) -> (1, N, C)
//   auto back    = dp::unpack_sequences(packed, *lengths, T); // (1, N, C) -> (B, T, C), zeros at padding
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <vector>

#include "../autodiff/var.hpp"

namespace deepprompt {

/// The lengths of the rows of a 0/1 mask (B, T) whose rows are ones followed by zeros
/// (right padding), counting from column `skip` (e.g. a prefix's columns), written into
/// `lengths` (resized to B; a vector reused across steps keeps its capacity); false when a row is
/// not of that form (a zero before a one, or a value other than 0 and 1).
template <class M>
bool right_padded_lengths_into(std::vector<index_t>& lengths, const Tensor<M, 2>& mask, index_t skip = 0) {
  const index_t B = mask.extent(0), L = mask.extent(1);
  lengths.resize(static_cast<std::size_t>(B));
  for (index_t b = 0; b < B; ++b) {
    const M* row = mask.data() + b * L;
    index_t n = skip;
    while (n < L && row[n] == M(1)) ++n;
    for (index_t t = n; t < L; ++t)
      if (row[t] != M(0)) return false;
    lengths[static_cast<std::size_t>(b)] = n - skip;
  }
  return true;
}
/// right_padded_lengths_into a new vector; std::nullopt when a row is not right-padded.
template <class M>
std::optional<std::vector<index_t>> right_padded_lengths(const Tensor<M, 2>& mask, index_t skip = 0) {
  std::vector<index_t> lengths;
  if (!right_padded_lengths_into(lengths, mask, skip)) return std::nullopt;
  return lengths;
}

/// {0, n_0, n_0 + n_1, ..., N}: where each packed sequence starts, and the total at the end,
/// written into `offsets` (resized to lengths.size() + 1).
inline void sequence_offsets_into(std::vector<index_t>& offsets, std::span<const index_t> lengths) {
  offsets.assign(lengths.size() + 1, 0);
  for (std::size_t b = 0; b < lengths.size(); ++b) offsets[b + 1] = offsets[b] + lengths[b];
}
/// sequence_offsets_into a new vector.
inline std::vector<index_t> sequence_offsets(std::span<const index_t> lengths) {
  std::vector<index_t> off;
  sequence_offsets_into(off, lengths);
  return off;
}

namespace detail {

/// A copy of `v` that a tape closure can keep: a pool tensor (no heap allocation per step).
inline Tensor<index_t, 1> index_tensor(std::span<const index_t> v) {
  Tensor<index_t, 1> t({static_cast<index_t>(v.size())});
  std::copy(v.begin(), v.end(), t.data());
  return t;
}
inline std::span<const index_t> span_of(const Tensor<index_t, 1>& t) {
  return {t.data(), static_cast<std::size_t>(t.size())};
}

inline void check_lengths(std::string_view op, std::span<const index_t> lengths, index_t B, index_t T) {
  if (static_cast<index_t>(lengths.size()) != B)
    throw ShapeError(detail::cat(op, ": ", lengths.size(), " lengths for a batch of ", B, " rows"));
  for (std::size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] < 0 || lengths[b] > T)
      throw ShapeError(detail::cat(op, ": row ", b, " has length ", lengths[b], ", outside [0, ", T, "]"));
}

// For each row b: n_b vectors of C values between the padded (b * T + t) and the packed
// (off_b + t) positions. to_packed: padded -> packed, else packed -> padded; accumulate: +=.
template <bool ToPacked, bool Accumulate, class T>
void copy_sequences(const T* from, T* to, std::span<const index_t> lengths, index_t T_, index_t C) {
  index_t off = 0;
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    const index_t n = lengths[b] * C;
    const T* src = from + (ToPacked ? static_cast<index_t>(b) * T_ * C : off);
    T* dst = to + (ToPacked ? off : static_cast<index_t>(b) * T_ * C);
    if constexpr (Accumulate)
      for (index_t i = 0; i < n; ++i) dst[i] += src[i];
    else
      std::copy_n(src, n, dst);
    off += n;
  }
}

}  // namespace detail

/// x (B, T, C) -> (1, N, C): row b's first lengths[b] vectors, the rows one after another.
/// The gradient goes back to those positions (the padded ones get none).
/// Throws ShapeError unless there are B lengths, each in [0, T].
template <class T>
Var<T, 3> pack_sequences(const Var<T, 3>& x, std::span<const index_t> lengths) {
  const index_t B = x.extent(0), L = x.extent(1), C = x.extent(2);
  detail::check_lengths("pack_sequences", lengths, B, L);
  const index_t N = std::accumulate(lengths.begin(), lengths.end(), index_t{0});
  Tensor<T, 3> y({1, N, C});  // (1, N, C)
  detail::copy_sequences<true, false>(x.value().data(), y.data(), lengths, L, C);
  auto out = Var<T, 3>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [xn = x.node(), lens = detail::index_tensor(lengths), L, C](const Tensor<T, 3>& dy) {
      detail::copy_sequences<false, true>(dy.data(), xn->accumulator().data(), detail::span_of(lens), L, C);
    });
  return out;
}

/// y (1, N, C) -> (B, T, C): packed sequence b at row b's first lengths[b] positions, zeros after
/// (the inverse of pack_sequences). Throws ShapeError unless there are B lengths in [0, T]
/// summing to N.
template <class T>
Var<T, 3> unpack_sequences(const Var<T, 3>& y, std::span<const index_t> lengths, index_t max_len) {
  const index_t N = y.extent(1), C = y.extent(2), B = static_cast<index_t>(lengths.size());
  detail::check_lengths("unpack_sequences", lengths, B, max_len);
  const index_t total = std::accumulate(lengths.begin(), lengths.end(), index_t{0});
  if (y.extent(0) != 1 || total != N)
    throw ShapeError(detail::cat("unpack_sequences: packed rows ", shape_str(y.shape()), " do not hold (1, N, C) with N the ",
                                 "sum of the ", B, " lengths (", total, ")"));
  auto x = Tensor<T, 3>::zeros({B, max_len, C});  // (B, T, C)
  detail::copy_sequences<false, false>(y.value().data(), x.data(), lengths, max_len, C);
  auto out = Var<T, 3>::result(x, y.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [yn = y.node(), lens = detail::index_tensor(lengths), max_len, C](const Tensor<T, 3>& dx) {
      detail::copy_sequences<true, true>(dx.data(), yn->accumulator().data(), detail::span_of(lens), max_len, C);
    });
  return out;
}

}  // namespace deepprompt
