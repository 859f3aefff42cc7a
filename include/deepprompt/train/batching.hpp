#pragma once
// The order in which a trainer visits its examples: one epoch's batches of example indices.
//
// epoch_batches(n, batch, seed, epoch, lengths, bucket) represents the batches of one epoch as
// a pure function of its arguments, so that a resumed run recomputes the same epoch and skips
// the batches it had already taken (the trainer's bit-identical resume rests on this):
//   - the indices 0..n-1 are shuffled with a Fisher-Yates shuffle driven by the Philox stream
//     Generator(seed ^ mix(epoch)) (no std:: distribution, whose output differs by library);
//   - without bucketing, consecutive runs of `batch` indices form the batches (the last may be
//     shorter);
//   - with bucketing (Hugging Face's group_by_length, LengthGroupedSampler): the shuffled order
//     is cut into mega-batches of 50 batches, each sorted by decreasing length (stable), then cut
//     into batches, so that a batch pads to a similar length; the batch holding the longest
//     example comes first (an out-of-memory shows at once), the others keep their order.
// requires: batch >= 1; lengths empty or of size n.
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace deepprompt::train {

using index_t = std::ptrdiff_t;

/// Indices 0..n-1 in the shuffled order of (seed, epoch).
inline std::vector<index_t> shuffled_indices(index_t n, std::uint64_t seed, std::uint64_t epoch) {
  std::vector<index_t> idx(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) idx[i] = i;
  Generator gen(seed ^ (0x9E3779B97F4A7C15ull * (epoch + 1)));
  for (index_t i = n - 1; i > 0; --i) {
    // j uniform in [0, i] from 64 random bits (bias below 2^-40 for any realistic n)
    const std::uint64_t first = gen.advance(2);
    const std::uint64_t r = (std::uint64_t{gen.word_at(first)} << 32) | gen.word_at(first + 1);
    const auto j = static_cast<index_t>(r % static_cast<std::uint64_t>(i + 1));
    std::swap(idx[i], idx[j]);
  }
  return idx;
}

/// The batches of one epoch (see the top of this header).
inline std::vector<std::vector<index_t>> epoch_batches(index_t n, index_t batch, std::uint64_t seed, std::uint64_t epoch,
                                                       std::span<const index_t> lengths = {}, bool bucket = false,
                                                       bool shuffle = true) {
  if (batch < 1) throw Error(detail::cat("epoch_batches: the batch size must be positive, got ", batch));
  if (!lengths.empty() && static_cast<index_t>(lengths.size()) != n)
    throw Error(detail::cat("epoch_batches: ", lengths.size(), " lengths for ", n, " examples"));
  if (bucket && lengths.empty()) throw Error("epoch_batches: length bucketing needs the examples' lengths");
  std::vector<index_t> order;
  if (shuffle) {
    order = shuffled_indices(n, seed, epoch);
  } else {
    order.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) order[i] = i;
  }
  if (bucket) {
    const index_t mega = 50 * batch;
    for (index_t b = 0; b < n; b += mega) {
      const auto first = order.begin() + b, last = order.begin() + std::min(n, b + mega);
      std::stable_sort(first, last, [&](index_t x, index_t y) { return lengths[x] > lengths[y]; });
    }
  }
  std::vector<std::vector<index_t>> batches;
  for (index_t b = 0; b < n; b += batch)
    batches.emplace_back(order.begin() + b, order.begin() + std::min(n, b + batch));
  if (bucket && batches.size() > 1) {
    std::size_t longest = 0;
    index_t best = -1;
    for (std::size_t k = 0; k < batches.size(); ++k)
      for (index_t i : batches[k])
        if (lengths[i] > best) best = lengths[i], longest = k;
    std::rotate(batches.begin(), batches.begin() + static_cast<std::ptrdiff_t>(longest),
                batches.begin() + static_cast<std::ptrdiff_t>(longest) + 1);
  }
  return batches;
}

}  // namespace deepprompt::train
