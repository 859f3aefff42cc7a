#pragma once
// Extractive-QA metrics exactly as the official SQuAD evaluation scripts compute them
// (evaluate-v1.1.py and evaluate-v2.0.py):
//  - normalize_answer: lower case, drop every string.punctuation character, replace the whole
//    words a/an/the (re's \b, Unicode word characters) by a space, collapse whitespace;
//  - exact match: the normalised strings are equal; token F1 over the whitespace tokens of the
//    normalised strings (multiset overlap); each the maximum over the gold answers;
//  - dataset scores: the mean over questions, in percent.
// v1.1 and v2.0 differ on empty answers: in v2.0 a question without gold answers (unanswerable)
// has the single gold answer "", and an F1 where either side has no token is 1 if both have none
// and 0 otherwise; v1.1 gives F1 0 whenever nothing overlaps.
//
//   dp::metrics::squad_v1({"Denver Broncos"}, {{"Denver Broncos", "The Denver Broncos"}});
//   // {.exact = 100, .f1 = 100, .total = 1}
#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/core/error.hpp"
#include "deepprompt/tasks/metrics/text.hpp"

namespace deepprompt::metrics {

namespace detail {

/// The whitespace tokens of normalize_answer(s), as code points.
inline std::vector<std::u32string> squad_tokens(std::string_view s) {
  std::u32string text;
  for (char32_t c : py_lower(decode(s)))
    if (!is_ascii_punctuation(c)) text += c;
  // Articles: a maximal run of word characters that is exactly a, an or the becomes a space,
  // which is what re.sub(r"\b(a|an|the)\b", " ", text) does.
  std::u32string no_articles;
  no_articles.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (!py_isword(text[i])) {
      no_articles += text[i++];
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && py_isword(text[j])) ++j;
    const std::u32string_view word(text.data() + i, j - i);
    if (word == U"a" || word == U"an" || word == U"the") no_articles += U' ';
    else no_articles += word;
    i = j;
  }
  return py_split(no_articles);
}

/// Multiset overlap of two token lists.
inline std::size_t common_tokens(const std::vector<std::u32string>& a, const std::vector<std::u32string>& b) {
  std::map<std::u32string, long> count;
  for (const auto& t : a) ++count[t];
  std::size_t same = 0;
  for (const auto& t : b) {
    auto it = count.find(t);
    if (it != count.end() && it->second > 0) --it->second, ++same;
  }
  return same;
}

inline double token_f1(std::size_t same, std::size_t n_pred, std::size_t n_gold) {
  const double p = static_cast<double>(same) / static_cast<double>(n_pred);
  const double r = static_cast<double>(same) / static_cast<double>(n_gold);
  return 2.0 * p * r / (p + r);
}

}  // namespace detail

/// SQuAD's normalize_answer(s) (UTF-8 in, UTF-8 out).
inline std::string squad_normalize(std::string_view s) {
  return detail::encode(detail::join_spaces(detail::squad_tokens(s)));
}

/// 1 if the normalised answers are equal, else 0 (exact_match_score / compute_exact).
inline double squad_exact(std::string_view prediction, std::string_view gold) {
  return detail::squad_tokens(prediction) == detail::squad_tokens(gold) ? 1.0 : 0.0;
}

/// Token F1 of v1.1's f1_score: 0 when no token is shared (so also when either side is empty).
inline double squad_f1_v1(std::string_view prediction, std::string_view gold) {
  const auto p = detail::squad_tokens(prediction), g = detail::squad_tokens(gold);
  const std::size_t same = detail::common_tokens(g, p);
  return same == 0 ? 0.0 : detail::token_f1(same, p.size(), g.size());
}

/// Token F1 of v2.0's compute_f1: if either side has no token, 1 when both have none, else 0.
inline double squad_f1_v2(std::string_view prediction, std::string_view gold) {
  const auto p = detail::squad_tokens(prediction), g = detail::squad_tokens(gold);
  if (p.empty() || g.empty()) return p.empty() && g.empty() ? 1.0 : 0.0;
  const std::size_t same = detail::common_tokens(g, p);
  return same == 0 ? 0.0 : detail::token_f1(same, p.size(), g.size());
}

/// Dataset scores of evaluate-v1.1.py, in percent.
struct SquadScores {
  double exact = 0.0, f1 = 0.0;
  std::size_t total = 0;
};

/// Dataset scores of evaluate-v2.0.py (na_prob_thresh 1, no na_probs), in percent; has_ans
/// covers the questions with at least one gold answer, no_ans the others (each 0 with total 0
/// where the script leaves the key out).
struct SquadV2Scores {
  SquadScores all, has_ans, no_ans;
};

/// evaluate-v1.1.py: question i's prediction against golds[i], exact match and F1 each the
/// maximum over its gold answers, averaged over the questions, times 100.
/// Requires: as many predictions as questions, at least one question, at least one gold answer
/// per question (the script fails otherwise) (else Error).
inline SquadScores squad_v1(const std::vector<std::string>& predictions,
                            const std::vector<std::vector<std::string>>& golds) {
  if (predictions.size() != golds.size())
    throw Error(deepprompt::detail::cat("metrics::squad_v1: ", predictions.size(), " predictions for ",
                                        golds.size(), " questions"));
  if (golds.empty()) throw Error("metrics::squad_v1: no questions");
  double em = 0.0, f1 = 0.0;
  for (std::size_t i = 0; i < golds.size(); ++i) {
    if (golds[i].empty())
      throw Error(deepprompt::detail::cat("metrics::squad_v1: question ", i,
                                          " has no gold answer (SQuAD v1.1 needs one; use squad_v2)"));
    double best_em = 0.0, best_f1 = 0.0;
    for (const auto& g : golds[i]) {
      best_em = std::max(best_em, squad_exact(predictions[i], g));
      best_f1 = std::max(best_f1, squad_f1_v1(predictions[i], g));
    }
    em += best_em;
    f1 += best_f1;
  }
  const auto n = static_cast<double>(golds.size());
  return {100.0 * em / n, 100.0 * f1 / n, golds.size()};
}

/// evaluate-v2.0.py: gold answers that normalise to "" are dropped, and a question left with
/// none is scored against "" (so an empty prediction scores 1 on an unanswerable question).
/// Requires: as many predictions as questions, at least one question (else Error).
inline SquadV2Scores squad_v2(const std::vector<std::string>& predictions,
                              const std::vector<std::vector<std::string>>& golds) {
  if (predictions.size() != golds.size())
    throw Error(deepprompt::detail::cat("metrics::squad_v2: ", predictions.size(), " predictions for ",
                                        golds.size(), " questions"));
  if (golds.empty()) throw Error("metrics::squad_v2: no questions");
  SquadV2Scores out;
  for (std::size_t i = 0; i < golds.size(); ++i) {
    std::vector<std::string> kept;
    for (const auto& g : golds[i])
      if (!detail::squad_tokens(g).empty()) kept.push_back(g);
    if (kept.empty()) kept.emplace_back();
    double best_em = 0.0, best_f1 = 0.0;
    for (const auto& g : kept) {
      best_em = std::max(best_em, squad_exact(predictions[i], g));
      best_f1 = std::max(best_f1, squad_f1_v2(predictions[i], g));
    }
    for (SquadScores* s : {&out.all, golds[i].empty() ? &out.no_ans : &out.has_ans}) {
      s->exact += best_em;
      s->f1 += best_f1;
      ++s->total;
    }
  }
  for (SquadScores* s : {&out.all, &out.has_ans, &out.no_ans}) {
    if (s->total == 0) continue;
    s->exact = 100.0 * s->exact / static_cast<double>(s->total);
    s->f1 = 100.0 * s->f1 / static_cast<double>(s->total);
  }
  return out;
}

}  // namespace deepprompt::metrics
