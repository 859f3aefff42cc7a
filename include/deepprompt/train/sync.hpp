#pragma once
// Data-parallel training without a dependency: what train::Trainer needs of a communicator.
//
// GradientSync represents the processes (ranks) that train one model together. Each rank holds
// the same parameters, takes its shard of every global batch, and after the backward pass the
// ranks sum their gradients (each already weighted by its share of the batch), so that every
// rank applies the same update. train/mpi.hpp implements it over MPI; the core headers never
// need MPI. Requires of an implementation: every call is collective (all ranks call it in the
// same order) and either completes or throws / aborts with a message naming the rank and the
// operation when a peer makes no progress.
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "param_ref.hpp"

namespace deepprompt::train {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// In place, buf[i] = the sum over ranks of buf[i].
  virtual void allreduce_sum(float* buf, std::size_t n) = 0;
  /// In place, buf[i] = the maximum over ranks of buf[i].
  virtual void allreduce_max(double* buf, std::size_t n) = 0;
  /// buf of `root` copied to every rank.
  virtual void broadcast(double* buf, std::size_t n, int root) = 0;
  /// out[r] = v of rank r (out: size() values).
  virtual void allgather(std::uint64_t v, std::uint64_t* out) = 0;
};

/// Rank `rank`'s part of a global batch: contiguous, sizes differing by at most one (the first
/// ranks take the extra examples); empty when the batch has fewer examples than ranks.
template <class I>
std::span<const I> shard(std::span<const I> batch, int rank, int size) {
  const std::size_t n = batch.size(), r = static_cast<std::size_t>(rank), p = static_cast<std::size_t>(size);
  const std::size_t begin = r * (n / p) + std::min(r, n % p);
  const std::size_t len = n / p + (r < n % p ? 1 : 0);
  return batch.subspan(begin, len);
}

/// Sums the gradients of `params` and the values `extra` over the ranks, through one fused
/// buffer (one collective per step); `buffer` is reused between calls.
inline void sync_gradients(GradientSync& sync, std::span<const ParamRef<float>> params, std::span<float> extra,
                           std::vector<float>& buffer) {
  std::size_t n = extra.size();
  for (const auto& p : params)
    if (p.grad) n += static_cast<std::size_t>(p.size);
  buffer.resize(n);
  float* at = buffer.data();
  for (const auto& p : params)
    if (p.grad) at = std::copy_n(p.grad, p.size, at);
  std::copy(extra.begin(), extra.end(), at);
  sync.allreduce_sum(buffer.data(), n);
  at = buffer.data();
  for (const auto& p : params)
    if (p.grad) std::copy_n(at, p.size, p.grad), at += p.size;
  std::copy_n(at, extra.size(), extra.begin());
}

/// Throws Error naming the step when the ranks' parameters differ (a checksum: the sum and the
/// sum of squares of every value, compared through their maximum and the maximum of their
/// negation).
inline void check_in_sync(GradientSync& sync, std::span<const ParamRef<float>> params, std::int64_t step) {
  double s = 0, q = 0;
  for (const auto& p : params)
    for (index_t i = 0; i < p.size; ++i) s += p.value[i], q += double(p.value[i]) * p.value[i];
  double v[4] = {s, -s, q, -q};
  sync.allreduce_max(v, 4);
  if (v[0] != -v[1] || v[2] != -v[3])
    throw Error(detail::cat("data-parallel training: the ranks' parameters diverged at step ", step,
                            " (checksums range over [", -v[1], ", ", v[0], "]); a rank computed something else"));
}

}  // namespace deepprompt::train
