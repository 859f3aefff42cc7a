#pragma once
// Sequence-classification metrics with scikit-learn's semantics (sklearn.metrics 1.2):
// accuracy_score, f1_score (average="macro" and the binary F1 of one positive label) and
// matthews_corrcoef. Labels are any totally ordered, equality-comparable values (class indices,
// strings); y_true and y_pred are two ranges of the same label type and length.
//
//   std::vector<int> gold{0, 1, 2, 0, 1, 2}, pred{0, 2, 1, 0, 0, 1};
//   dp::metrics::macro_f1(gold, pred);   // 0.2666..., sklearn's f1_score(average="macro")
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <ranges>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/core/error.hpp"

namespace deepprompt::metrics {

/// A sized random-access range of labels (std::vector<int>, std::span<const std::string>, ...).
template <class R>
concept LabelRange = std::ranges::random_access_range<R> && std::ranges::sized_range<R> &&
                     std::totally_ordered<std::ranges::range_value_t<R>>;

/// Per-label counts of one class of a confusion matrix.
struct ClassCounts {
  std::size_t tp = 0, fp = 0, fn = 0;
  /// tp / (tp + fp), 0 when nothing was predicted as this class (sklearn's zero_division=0).
  double precision() const { return tp + fp == 0 ? 0.0 : static_cast<double>(tp) / static_cast<double>(tp + fp); }
  /// tp / (tp + fn), 0 when the class never occurs in y_true.
  double recall() const { return tp + fn == 0 ? 0.0 : static_cast<double>(tp) / static_cast<double>(tp + fn); }
  /// 2PR / (P + R), 0 when P + R = 0.
  double f1() const {
    const double p = precision(), r = recall();
    return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r);
  }
};

namespace detail {

/// Throws unless y_true and y_pred have the same, non-zero length.
inline void check_pair(std::size_t n_true, std::size_t n_pred, std::string_view what) {
  if (n_true != n_pred)
    throw Error(deepprompt::detail::cat("metrics::", what, ": y_true has ", n_true, " labels but y_pred has ",
                                        n_pred));
  if (n_true == 0) throw Error(deepprompt::detail::cat("metrics::", what, ": empty input (no samples)"));
}

/// The sorted union of the labels of both ranges (sklearn's unique_labels).
template <LabelRange A, LabelRange B>
auto sorted_labels(const A& y_true, const B& y_pred) {
  std::vector<std::ranges::range_value_t<A>> labels(std::ranges::begin(y_true), std::ranges::end(y_true));
  labels.insert(labels.end(), std::ranges::begin(y_pred), std::ranges::end(y_pred));
  std::ranges::sort(labels);
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  return labels;
}

template <class Labels, class Value>
std::size_t label_index(const Labels& labels, const Value& v) {
  return static_cast<std::size_t>(std::ranges::lower_bound(labels, v) - labels.begin());
}

}  // namespace detail

/// Fraction of positions where y_pred equals y_true (sklearn accuracy_score, normalize=True).
/// Requires: same non-zero length (else Error). Ensures: result in [0, 1].
template <LabelRange A, LabelRange B>
double accuracy(const A& y_true, const B& y_pred) {
  const auto n = std::ranges::size(y_true);
  detail::check_pair(n, std::ranges::size(y_pred), "accuracy");
  std::size_t correct = 0;
  auto it = std::ranges::begin(y_pred);
  for (const auto& t : y_true) correct += (t == *it++) ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// Per-class counts over the sorted union of the labels of y_true and y_pred; `labels_out`, when
/// given, receives that union in the same order.
/// Requires: same non-zero length (else Error).
template <LabelRange A, LabelRange B>
std::vector<ClassCounts> class_counts(const A& y_true, const B& y_pred,
                                      std::vector<std::ranges::range_value_t<A>>* labels_out = nullptr) {
  detail::check_pair(std::ranges::size(y_true), std::ranges::size(y_pred), "class_counts");
  const auto labels = detail::sorted_labels(y_true, y_pred);
  std::vector<ClassCounts> counts(labels.size());
  auto it = std::ranges::begin(y_pred);
  for (const auto& t : y_true) {
    const auto& p = *it++;
    const std::size_t ti = detail::label_index(labels, t), pi = detail::label_index(labels, p);
    if (ti == pi) {
      ++counts[ti].tp;
    } else {
      ++counts[ti].fn;
      ++counts[pi].fp;
    }
  }
  if (labels_out) *labels_out = labels;
  return counts;
}

/// Macro-averaged F1: the unweighted mean of the per-class F1 over every label present in y_true
/// or y_pred, a class's F1 being 0 when its precision and recall are both 0 (sklearn f1_score,
/// average="macro", zero_division=0 or "warn").
/// Requires: same non-zero length (else Error). Ensures: result in [0, 1].
template <LabelRange A, LabelRange B>
double macro_f1(const A& y_true, const B& y_pred) {
  const auto counts = class_counts(y_true, y_pred);
  double sum = 0.0;
  for (const auto& c : counts) sum += c.f1();
  return sum / static_cast<double>(counts.size());
}

/// F1 of the class `positive` alone, every other label counting as negative (sklearn f1_score,
/// average="binary", pos_label=positive); 0 when there are no true positives.
/// Requires: same non-zero length (else Error).
template <LabelRange A, LabelRange B>
double binary_f1(const A& y_true, const B& y_pred, const std::ranges::range_value_t<A>& positive) {
  detail::check_pair(std::ranges::size(y_true), std::ranges::size(y_pred), "binary_f1");
  ClassCounts c;
  auto it = std::ranges::begin(y_pred);
  for (const auto& t : y_true) {
    const bool pt = t == positive, pp = *it++ == positive;
    c.tp += pt && pp ? 1 : 0;
    c.fn += pt && !pp ? 1 : 0;
    c.fp += !pt && pp ? 1 : 0;
  }
  return c.f1();
}

/// Matthews correlation coefficient, multi-class form (Gorodkin's R_K) exactly as sklearn's
/// matthews_corrcoef computes it: with C the confusion matrix, t = row sums, p = column sums,
/// c = trace and s = n, (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)); 0 when that denominator is 0
/// (a constant y_true or y_pred).
/// Requires: same non-zero length (else Error). Ensures: result in [-1, 1].
template <LabelRange A, LabelRange B>
double matthews_corrcoef(const A& y_true, const B& y_pred) {
  detail::check_pair(std::ranges::size(y_true), std::ranges::size(y_pred), "matthews_corrcoef");
  const auto labels = detail::sorted_labels(y_true, y_pred);
  std::vector<double> t_sum(labels.size(), 0.0), p_sum(labels.size(), 0.0);
  double n_correct = 0.0;
  auto it = std::ranges::begin(y_pred);
  for (const auto& t : y_true) {
    const std::size_t ti = detail::label_index(labels, t), pi = detail::label_index(labels, *it++);
    t_sum[ti] += 1.0;
    p_sum[pi] += 1.0;
    n_correct += ti == pi ? 1.0 : 0.0;
  }
  const double n = static_cast<double>(std::ranges::size(y_true));
  double tp = 0.0, pp = 0.0, tt = 0.0;
  for (std::size_t k = 0; k < labels.size(); ++k) {
    tp += t_sum[k] * p_sum[k];
    pp += p_sum[k] * p_sum[k];
    tt += t_sum[k] * t_sum[k];
  }
  const double cov_ytyp = n_correct * n - tp, cov_ypyp = n * n - pp, cov_ytyt = n * n - tt;
  if (cov_ypyp * cov_ytyt == 0.0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

}  // namespace deepprompt::metrics
