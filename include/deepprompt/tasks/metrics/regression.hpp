#pragma once
// Correlation metrics of the regression task (STS-B), as scipy.stats 1.10 computes them:
// pearsonr's statistic (mean-centred, normalised dot product, clipped to [-1, 1]) and
// spearmanr's (Pearson on the ranks, ties given their average rank).
//
// A constant input has no correlation: like scipy, both return NaN then (scipy also warns); a NaN
// in the input gives NaN too (scipy's nan_policy="propagate").
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "deepprompt/core/error.hpp"

namespace deepprompt::metrics {

namespace detail {

inline void check_xy(std::size_t nx, std::size_t ny, std::string_view what) {
  if (nx != ny)
    throw Error(deepprompt::detail::cat("metrics::", what, ": x has ", nx, " values but y has ", ny));
  if (nx < 2) throw Error(deepprompt::detail::cat("metrics::", what, ": needs at least 2 values, got ", nx));
}

inline bool has_nan(std::span<const double> v) {
  return std::any_of(v.begin(), v.end(), [](double e) { return std::isnan(e); });
}

/// Euclidean norm without overflow or underflow (scale by the largest magnitude, as BLAS nrm2).
inline double norm2(std::span<const double> v) {
  double scale = 0.0;
  for (double x : v) scale = std::max(scale, std::abs(x));
  if (scale == 0.0 || !std::isfinite(scale)) return scale;
  double ss = 0.0;
  for (double x : v) ss += (x / scale) * (x / scale);
  return scale * std::sqrt(ss);
}

}  // namespace detail

/// Pearson's correlation coefficient of x and y (scipy.stats.pearsonr(x, y).statistic).
/// Requires: equal lengths >= 2 (else Error). Ensures: in [-1, 1], or NaN if x or y is constant.
inline double pearson(std::span<const double> x, std::span<const double> y) {
  detail::check_xy(x.size(), y.size(), "pearson");
  if (detail::has_nan(x) || detail::has_nan(y)) return std::numeric_limits<double>::quiet_NaN();
  const std::size_t n = x.size();
  const auto constant = [](std::span<const double> v) {
    return std::all_of(v.begin(), v.end(), [&](double e) { return e == v[0]; });
  };
  if (constant(x) || constant(y)) return std::numeric_limits<double>::quiet_NaN();
  const auto sign = [](double d) { return static_cast<double>((d > 0.0) - (d < 0.0)); };
  if (n == 2) return sign(x[1] - x[0]) * sign(y[1] - y[0]);
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
  std::vector<double> xm(n), ym(n);
  for (std::size_t i = 0; i < n; ++i) xm[i] = x[i] - mx, ym[i] = y[i] - my;
  const double nx = detail::norm2(xm), ny = detail::norm2(ym);
  double r = 0.0;
  for (std::size_t i = 0; i < n; ++i) r += (xm[i] / nx) * (ym[i] / ny);
  return std::clamp(r, -1.0, 1.0);
}

/// 1-based ranks of v, ties sharing the mean of the ranks they span (scipy.stats.rankdata's
/// method="average"). Requires: no NaN in v.
inline std::vector<double> average_ranks(std::span<const double> v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i + 1;
    while (j < order.size() && v[order[j]] == v[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of i+1 .. j
    for (std::size_t k = i; k < j; ++k) ranks[order[k]] = rank;
    i = j;
  }
  return ranks;
}

/// Spearman's rank correlation of x and y (scipy.stats.spearmanr(x, y).statistic).
/// Requires: equal lengths >= 2 (else Error). Ensures: in [-1, 1], or NaN if x or y is constant.
inline double spearman(std::span<const double> x, std::span<const double> y) {
  detail::check_xy(x.size(), y.size(), "spearman");
  if (detail::has_nan(x) || detail::has_nan(y)) return std::numeric_limits<double>::quiet_NaN();
  const auto rx = average_ranks(x), ry = average_ranks(y);
  return pearson(rx, ry);
}

}  // namespace deepprompt::metrics
