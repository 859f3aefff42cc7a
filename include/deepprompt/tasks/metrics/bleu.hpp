#pragma once
// Corpus BLEU exactly as sacreBLEU 2.x's corpus_bleu computes it by default:
//  - each segment is right-stripped and tokenised with mteval-v13a's rules ("13a");
//  - n-grams of orders 1..4; a hypothesis n-gram's count is clipped by its largest count in any
//    one reference of the segment; matches and totals are summed over the corpus;
//  - the reference length of a segment is that of the reference closest in length to the
//    hypothesis (the shorter on a tie), summed over the corpus as r; c is the hypothesis length;
//    brevity penalty exp(1 - r/c) when c < r (0 when c = 0), else 1;
//  - "exp" smoothing (mteval's): the k-th order with no match gets precision 1 / (2^k * total);
//    an order with no n-gram at all stops the loop (its precision stays 0), and a corpus with
//    no match at any order scores 0;
//  - score = BP * exp(mean of log precision), precisions in percent, so the score is in 0..100.
// Segments are laid out per hypothesis: references[i] holds the references of hypotheses[i]
// (sacreBLEU's is one stream per reference). Empty references are skipped, as sacreBLEU skips
// "" to allow a variable number of references.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "deepprompt/core/error.hpp"
#include "deepprompt/tasks/metrics/text.hpp"

namespace deepprompt::metrics {

/// sacreBLEU's smooth_method.
enum class BleuSmoothing { exp, none, floor, add_k };

/// sacreBLEU's BLEU(...) arguments that change the score.
struct BleuOptions {
  bool lowercase = false;                       // lowercase=True
  bool tokenize_13a = true;                     // tokenize="13a"; false: "none" (str.split())
  BleuSmoothing smoothing = BleuSmoothing::exp;
  double smooth_value = -1.0;                   // floor / add-k value; < 0: sacreBLEU's default
                                                // (0.1 for floor, 1 for add-k)
};

/// sacreBLEU's BLEUScore.
struct BleuScore {
  double score = 0.0;                  // 0..100
  std::array<double, 4> precisions{};  // percent, after smoothing
  std::array<double, 4> counts{};      // matched n-grams per order (add-k adds to them)
  std::array<double, 4> totals{};      // hypothesis n-grams per order
  double bp = 0.0;                     // brevity penalty
  std::size_t sys_len = 0, ref_len = 0;
};

/// mteval-v13a's tokenisation as sacreBLEU's Tokenizer13a applies it (after its rstrip): drop
/// "<skipped>", join "-\n", newlines to spaces, unescape &quot; &amp; &lt; &gt;, then the four
/// regexes of mteval (split off the ASCII punctuation but for ' - . and ,; split . and , unless
/// preceded by a digit; unless followed by a digit; split - after a digit), and single spaces.
inline std::string tokenize_13a(std::string_view line) {
  using detail::is_ascii_digit;
  std::u32string s(detail::py_rstrip(detail::decode(line)));
  s = detail::py_replace(s, U"<skipped>", U"");
  s = detail::py_replace(s, U"-\n", U"");
  s = detail::py_replace(s, U"\n", U" ");
  s = detail::py_replace(s, U"&quot;", U"\"");
  s = detail::py_replace(s, U"&amp;", U"&");
  s = detail::py_replace(s, U"&lt;", U"<");
  s = detail::py_replace(s, U"&gt;", U">");
  std::u32string a = U" ";
  for (char32_t c : s) {  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
    const bool punct = (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
                       (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
    if (punct) a += U' ', a += c, a += U' ';
    else a += c;
  }
  a += U' ';
  // Each regex below matches two characters; like re.sub, scan left to right and resume after
  // a match.
  const auto pairwise = [](const std::u32string& in, auto&& match, auto&& emit) {
    std::u32string out;
    out.reserve(in.size() + in.size() / 2);
    std::size_t i = 0;
    while (i < in.size()) {
      if (i + 1 < in.size() && match(in[i], in[i + 1])) {
        emit(out, in[i], in[i + 1]);
        i += 2;
      } else {
        out += in[i++];
      }
    }
    return out;
  };
  const auto is_pc = [](char32_t c) { return c == '.' || c == ','; };
  a = pairwise(a, [&](char32_t x, char32_t y) { return !is_ascii_digit(x) && is_pc(y); },  // ([^0-9])([\.,])
               [](std::u32string& o, char32_t x, char32_t y) { o += x, o += U' ', o += y, o += U' '; });
  a = pairwise(a, [&](char32_t x, char32_t y) { return is_pc(x) && !is_ascii_digit(y); },  // ([\.,])([^0-9])
               [](std::u32string& o, char32_t x, char32_t y) { o += U' ', o += x, o += U' ', o += y; });
  a = pairwise(a, [&](char32_t x, char32_t y) { return is_ascii_digit(x) && y == '-'; },   // ([0-9])(-)
               [](std::u32string& o, char32_t x, char32_t y) { o += x, o += U' ', o += y, o += U' '; });
  return detail::encode(detail::join_spaces(detail::py_split(a)));
}

namespace detail {

/// Tokens of one segment: sacreBLEU's _preprocess_segment, then str.split().
inline std::vector<std::string> bleu_tokens(std::string_view segment, const BleuOptions& opt) {
  std::u32string s = decode(segment);
  if (opt.lowercase) s = py_lower(s);
  if (opt.tokenize_13a) s = decode(tokenize_13a(encode(s)));
  std::vector<std::string> out;
  for (const auto& t : py_split(s)) out.push_back(encode(t));
  return out;
}

/// n-gram counts of orders 1..4, keyed by the tokens joined with ' ' (tokens hold no space).
using NgramCounts = std::array<std::unordered_map<std::string, double>, 4>;

inline NgramCounts ngram_counts(const std::vector<std::string>& tokens) {
  NgramCounts out;
  for (std::size_t n = 1; n <= 4; ++n) {
    for (std::size_t i = 0; i + n <= tokens.size(); ++i) {
      std::string key = tokens[i];
      for (std::size_t k = 1; k < n; ++k) key += ' ', key += tokens[i + k];
      out[n - 1][key] += 1.0;
    }
  }
  return out;
}

}  // namespace detail

/// BLEU of `hypotheses` against `references` (references[i]: the references of hypotheses[i]).
/// Requires: as many reference lists as hypotheses, at least one hypothesis, and at least one
/// non-empty reference per hypothesis (sacreBLEU raises there) (else Error).
inline BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                             const std::vector<std::vector<std::string>>& references,
                             const BleuOptions& opt = {}) {
  if (hypotheses.size() != references.size())
    throw Error(deepprompt::detail::cat("metrics::corpus_bleu: ", hypotheses.size(), " hypotheses but ",
                                        references.size(), " reference lists"));
  if (hypotheses.empty()) throw Error("metrics::corpus_bleu: no hypotheses");
  std::array<double, 4> correct{}, total{};
  std::size_t sys_len = 0, ref_len = 0;
  for (std::size_t i = 0; i < hypotheses.size(); ++i) {
    detail::NgramCounts ref_max;
    std::vector<std::size_t> ref_lens;
    for (const auto& ref : references[i]) {
      if (ref.empty()) continue;
      const auto tokens = detail::bleu_tokens(ref, opt);
      ref_lens.push_back(tokens.size());
      const auto counts = detail::ngram_counts(tokens);
      for (std::size_t n = 0; n < 4; ++n)
        for (const auto& [g, c] : counts[n]) ref_max[n][g] = std::max(ref_max[n][g], c);
    }
    if (ref_lens.empty())
      throw Error(deepprompt::detail::cat("metrics::corpus_bleu: hypothesis ", i, " has no non-empty reference"));
    const auto hyp = detail::bleu_tokens(hypotheses[i], opt);
    std::size_t closest = ref_lens[0];
    for (const std::size_t r : ref_lens) {
      const auto diff = [&](std::size_t x) { return x > hyp.size() ? x - hyp.size() : hyp.size() - x; };
      if (diff(r) < diff(closest) || (diff(r) == diff(closest) && r < closest)) closest = r;
    }
    sys_len += hyp.size();
    ref_len += closest;
    const auto counts = detail::ngram_counts(hyp);
    for (std::size_t n = 0; n < 4; ++n) {
      for (const auto& [g, c] : counts[n]) {
        total[n] += c;
        if (const auto it = ref_max[n].find(g); it != ref_max[n].end()) correct[n] += std::min(c, it->second);
      }
    }
  }

  BleuScore out;
  out.sys_len = sys_len;
  out.ref_len = ref_len;
  if (sys_len < ref_len)
    out.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len)) : 0.0;
  else
    out.bp = 1.0;
  const bool any_match = std::any_of(correct.begin(), correct.end(), [](double c) { return c != 0.0; });
  double value = opt.smooth_value;
  if (value < 0.0) value = opt.smoothing == BleuSmoothing::floor ? 0.1 : 1.0;
  if (any_match) {
    double smooth_mteval = 1.0;
    for (std::size_t n = 0; n < 4; ++n) {
      if (opt.smoothing == BleuSmoothing::add_k && n > 0) correct[n] += value, total[n] += value;
      if (total[n] == 0.0) break;
      if (correct[n] == 0.0) {
        if (opt.smoothing == BleuSmoothing::exp) {
          smooth_mteval *= 2.0;
          out.precisions[n] = 100.0 / (smooth_mteval * total[n]);
        } else if (opt.smoothing == BleuSmoothing::floor) {
          out.precisions[n] = 100.0 * value / total[n];
        }
      } else {
        out.precisions[n] = 100.0 * correct[n] / total[n];
      }
    }
    double log_sum = 0.0;  // sacreBLEU's my_log: log(0) is floored to -9999999999
    for (const double p : out.precisions) log_sum += p == 0.0 ? -9999999999.0 : std::log(p);
    out.score = out.bp * std::exp(log_sum / 4.0);
  }
  out.counts = correct;
  out.totals = total;
  return out;
}

}  // namespace deepprompt::metrics
