#pragma once
// ROUGE-L as Google's rouge_score computes it (RougeScorer(["rougeL"]), use_stemmer=False):
//  - tokens: the text lower-cased (str.lower()), every run of characters other than [a-z0-9]
//    replaced by a space, then split; so only ASCII letters and digits survive;
//  - with L the length of the longest common subsequence of the target and prediction tokens,
//    precision = L / |prediction|, recall = L / |target|, F = 2PR / (P + R) (0 if P + R = 0);
//    all three 0 when either side has no token;
//  - several targets: the score of the target with the highest F (the first on a tie), as
//    score_multi does.
// The Porter stemmer (use_stemmer=True) is not provided.
#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/core/error.hpp"
#include "deepprompt/tasks/metrics/text.hpp"

namespace deepprompt::metrics {

/// rouge_score's Score.
struct RougeScore {
  double precision = 0.0, recall = 0.0, fmeasure = 0.0;
};

/// rouge_score's default tokenizer without stemming (tokenize.tokenize(text, None)).
inline std::vector<std::string> rouge_tokenize(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (char32_t c : detail::py_lower(detail::decode(text))) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur += static_cast<char>(c);
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

/// Length of the longest common subsequence of two token lists (O(|a| |b|) time, O(|b|) memory).
inline std::size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::size_t> row(b.size() + 1, 0);
  for (const auto& x : a) {
    std::size_t diag = 0;  // row[j - 1] of the previous line
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = x == b[j - 1] ? diag + 1 : std::max(row[j], row[j - 1]);
      diag = up;
    }
  }
  return row[b.size()];
}

/// ROUGE-L of `prediction` against one `target` (RougeScorer(["rougeL"]).score(target, prediction)).
inline RougeScore rouge_l(std::string_view target, std::string_view prediction) {
  const auto t = rouge_tokenize(target), p = rouge_tokenize(prediction);
  if (t.empty() || p.empty()) return {};
  const auto l = static_cast<double>(lcs_length(t, p));
  RougeScore s;
  s.precision = l / static_cast<double>(p.size());
  s.recall = l / static_cast<double>(t.size());
  s.fmeasure = s.precision + s.recall > 0.0 ? 2.0 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

/// ROUGE-L against several targets: the score of the target with the highest F-measure
/// (score_multi). Requires: at least one target (else Error).
inline RougeScore rouge_l(const std::vector<std::string>& targets, std::string_view prediction) {
  if (targets.empty()) throw Error("metrics::rouge_l: no target for the prediction");
  RougeScore best = rouge_l(targets[0], prediction);
  for (std::size_t i = 1; i < targets.size(); ++i) {
    const RougeScore s = rouge_l(targets[i], prediction);
    if (s.fmeasure > best.fmeasure) best = s;
  }
  return best;
}

/// Mean ROUGE-L (precision, recall and F-measure each averaged) of predictions[i] against
/// targets[i] (the best of them). The plain mean: rouge_score's BootstrapAggregator reports a
/// resampled estimate of it instead.
/// Requires: as many target lists as predictions, at least one prediction, at least one target
/// each (else Error).
inline RougeScore mean_rouge_l(const std::vector<std::string>& predictions,
                               const std::vector<std::vector<std::string>>& targets) {
  if (predictions.size() != targets.size())
    throw Error(deepprompt::detail::cat("metrics::mean_rouge_l: ", predictions.size(), " predictions but ",
                                        targets.size(), " target lists"));
  if (predictions.empty()) throw Error("metrics::mean_rouge_l: no predictions");
  RougeScore sum;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    const RougeScore s = rouge_l(targets[i], predictions[i]);
    sum.precision += s.precision;
    sum.recall += s.recall;
    sum.fmeasure += s.fmeasure;
  }
  const auto n = static_cast<double>(predictions.size());
  return {sum.precision / n, sum.recall / n, sum.fmeasure / n};
}

}  // namespace deepprompt::metrics
