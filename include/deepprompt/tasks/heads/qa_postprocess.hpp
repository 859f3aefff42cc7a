#pragma once
// Extractive QA around the model: windows over long contexts (features) and span decoding back to
// the context text, as Hugging Face's run_qa.py (prepare_train_features /
// prepare_validation_features, utils_qa.postprocess_qa_predictions).
//
//   auto feats = tasks::make_qa_features(tok, examples, {.max_length = 384, .doc_stride = 128});
//   for (batches of feats) { auto l = model.forward(tasks::make_qa_batch(batch, pad_id));
//                            tasks::append_logit_rows(starts, l.start.value());
//                            tasks::append_logit_rows(ends, l.end.value()); }
//   auto preds = tasks::decode_qa_predictions(examples, feats, starts, ends, {.n_best = 20});
//
// Features (HF's tokenizer(question, context, truncation="only_second", stride=doc_stride,
// return_overflowing_tokens=True, return_offsets_mapping=True)): the question (left-stripped) is
// kept whole; the context's tokens are cut into windows of W = max_length - |question| - specials
// tokens starting every W - doc_stride tokens (consecutive windows share doc_stride tokens), the
// last one ending at the context's end; each window is the tokenizer's pair template
// ([CLS] question [SEP] window [SEP] for BERT). Context tokens keep sequence_id 1 and their
// offsets into the context (bytes; char_offsets in code points).
// Training positions: the first and last context token of the answer when the window holds
// all of it, else cls_index (the [CLS] token's position, 0), also for unanswerable examples.
// (HF's loop can walk past the window's last context token onto the final [SEP], whose offsets
// are (0, 0), when the answer starts in that token; here the walk stays within the context.)
// Decoding: per window, the n_best highest start and end logits (over all positions), pairs with
// both tokens in the context, end >= start and end - start + 1 <= max_answer_length, scored
// start + end logit; the n_best best over all windows of the example. SQuAD v2: the null score is
// the smallest start[0] + end[0] over the example's windows; the answer is "" when
// null - (best non-null start + end logit) > null_score_diff_threshold.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../../io/unicode.hpp"
#include "question_answering.hpp"

namespace deepprompt::tasks {

/// A gold answer: its text and its start as a code-point index into the context (SQuAD's answer_start).
struct QaAnswer {
  std::string text;
  std::size_t answer_start = 0;
};

/// A question about a context; no answers: unanswerable (SQuAD v2). Training uses answers[0].
struct QaExample {
  std::string id, question, context;
  std::vector<QaAnswer> answers;
};

/// QaExamples from records with id, question, context, answers (each with text and answer_start,
/// a code-point index, plain or std::optional) and optionally is_impossible (then no answers),
/// e.g. data::SquadExample. Answers without a usable answer_start are left out.
template <class Range>
std::vector<QaExample> to_qa_examples(const Range& records) {
  std::vector<QaExample> out;
  for (const auto& r : records) {
    QaExample e{r.id, r.question, r.context, {}};
    bool impossible = false;
    if constexpr (requires { r.is_impossible; }) impossible = r.is_impossible;
    for (const auto& a : r.answers) {
      if (impossible) break;
      if constexpr (requires { a.answer_start.has_value(); }) {
        if (a.answer_start && std::cmp_greater_equal(*a.answer_start, 0))
          e.answers.push_back({a.text, static_cast<std::size_t>(*a.answer_start)});
      } else if (std::cmp_greater_equal(a.answer_start, 0)) {
        e.answers.push_back({a.text, static_cast<std::size_t>(a.answer_start)});
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

struct QaWindowOptions {
  std::size_t max_length = 384;  // tokens per window, special tokens included
  std::size_t doc_stride = 128;  // tokens shared by consecutive windows
  bool pad_to_max_length = false;
};

/// One window of one example.
struct QaFeature {
  std::size_t example = 0;  // index into the examples
  Encoding encoding;        // the pair template over (question, window); see the top
  std::int64_t cls_index = 0;
  std::int64_t start_position = 0, end_position = 0;  // training targets (cls_index: not inside)
};

namespace qa_detail {

inline void push_token(Encoding& e, std::int32_t id, std::string token, std::int32_t type, Offset bytes, Offset cps,
                       std::int32_t seq, std::int32_t word) {
  e.ids.push_back(id);
  e.type_ids.push_back(type);
  e.tokens.push_back(std::move(token));
  e.offsets.push_back(bytes);
  e.char_offsets.push_back(cps);
  e.sequence_ids.push_back(seq);
  e.word_ids.push_back(word);
  e.special_tokens_mask.push_back(seq < 0 ? 1 : 0);
  e.attention_mask.push_back(1);
}

/// Sets the feature's training positions (see the top); chars: code-point offsets into the context.
inline void answer_positions(QaFeature& f, const QaExample& ex) {
  f.start_position = f.end_position = f.cls_index;
  if (ex.answers.empty()) return;
  const auto& e = f.encoding;
  std::size_t first = e.size(), last = e.size();
  for (std::size_t t = 0; t < e.size(); ++t)
    if (e.sequence_ids[t] == 1) {
      if (first == e.size()) first = t;
      last = t;
    }
  if (first == e.size()) return;  // no context in this window
  const std::size_t start_char = ex.answers[0].answer_start;
  const std::size_t end_char = start_char + unicode::decode_utf8(ex.answers[0].text).size();
  if (!(e.char_offsets[first].begin <= start_char && e.char_offsets[last].end >= end_char)) return;
  std::size_t s = first;
  while (s + 1 <= last && e.char_offsets[s + 1].begin <= start_char) ++s;
  std::size_t t = last;
  while (t > first && e.char_offsets[t - 1].end >= end_char) --t;
  f.start_position = static_cast<std::int64_t>(s);
  f.end_position = static_cast<std::int64_t>(t);
}

}  // namespace qa_detail

/// The windows of every example (see the top). Throws Error naming the example when max_length
/// leaves no more than doc_stride context tokens per window after the question.
inline std::vector<QaFeature> make_qa_features(const Tokenizer& tok, std::span<const QaExample> examples,
                                               const QaWindowOptions& opt = {}) {
  const auto& tmpl = tok.post_processor().pair;
  const std::size_t specials = tok.post_processor().added(true);
  const auto cls_id = tok.token_to_id("[CLS]");
  const std::int64_t pad_id = pad_id_of(tok);
  const std::string pad_token = tok.id_to_token(static_cast<std::int32_t>(pad_id));
  EncodeOptions plain;
  plain.add_special_tokens = false;
  std::vector<QaFeature> out;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const QaExample& ex = examples[i];
    const std::size_t lead = ex.question.find_first_not_of(" \t\n\r\f\v");
    const Encoding q = tok.encode(lead == std::string::npos ? "" : ex.question.substr(lead), plain);
    const Encoding c = tok.encode(ex.context, plain);
    const std::size_t used = q.size() + specials;
    const std::size_t window = opt.max_length > used ? opt.max_length - used : 0;
    if (window <= opt.doc_stride)
      throw Error(detail::cat("make_qa_features: example ", i, " ('", ex.id, "'): the question has ", q.size(),
                              " tokens, which with ", specials, " special tokens leaves ", window,
                              " context tokens per window of max_length ", opt.max_length,
                              "; doc_stride (", opt.doc_stride, ") must be smaller"));
    for (std::size_t begin = 0;; begin += window - opt.doc_stride) {
      const std::size_t end = std::min(begin + window, c.size());
      QaFeature f;
      f.example = i;
      for (const auto& item : tmpl) {
        if (item.sequence < 0) {
          for (std::size_t k = 0; k < item.ids.size(); ++k)
            qa_detail::push_token(f.encoding, item.ids[k], item.tokens[k], item.type_id, {}, {}, -1, -1);
          continue;
        }
        const Encoding& src = item.sequence == 0 ? q : c;
        const std::size_t b = item.sequence == 0 ? 0 : begin, e = item.sequence == 0 ? q.size() : end;
        for (std::size_t t = b; t < e; ++t)
          qa_detail::push_token(f.encoding, src.ids[t], src.tokens[t], item.type_id, src.offsets[t],
                                src.char_offsets[t], item.sequence, src.word_ids[t]);
      }
      if (cls_id) {
        const auto it = std::find(f.encoding.ids.begin(), f.encoding.ids.end(), *cls_id);
        if (it != f.encoding.ids.end()) f.cls_index = it - f.encoding.ids.begin();
      }
      if (opt.pad_to_max_length) pad(f.encoding, opt.max_length, static_cast<std::int32_t>(pad_id), pad_token);
      qa_detail::answer_positions(f, ex);
      out.push_back(std::move(f));
      if (end >= c.size()) break;
    }
  }
  return out;
}

/// The features as a batch padded to its longest window (pad_id, mask 0, type 0), with their
/// training positions. Throws Error for no features.
inline QuestionAnsweringBatch make_qa_batch(std::span<const QaFeature> features, std::int64_t pad_id = 0) {
  std::vector<Encoding> rows;
  rows.reserve(features.size());
  for (const auto& f : features) rows.push_back(f.encoding);
  EncodedBatch e = pad_encodings(rows, pad_id);
  const index_t B = static_cast<index_t>(features.size());
  QuestionAnsweringBatch out{e.input_ids, e.attention_mask, e.token_type_ids, Tensor<std::int64_t, 1>({B}),
                             Tensor<std::int64_t, 1>({B})};
  for (index_t b = 0; b < B; ++b) {
    out.start_positions(b) = features[static_cast<std::size_t>(b)].start_position;
    out.end_positions(b) = features[static_cast<std::size_t>(b)].end_position;
  }
  return out;
}

/// Appends each row of logits (B, T) to `rows` (one vector per feature, in feature order).
template <class T>
void append_logit_rows(std::vector<std::vector<double>>& rows, const Tensor<T, 2>& logits) {
  for (index_t b = 0; b < logits.extent(0); ++b) {
    std::vector<double> r(static_cast<std::size_t>(logits.extent(1)));
    for (index_t t = 0; t < logits.extent(1); ++t) r[static_cast<std::size_t>(t)] = static_cast<double>(logits(b, t));
    rows.push_back(std::move(r));
  }
}

struct QaDecodeOptions {
  std::size_t n_best = 20;
  std::size_t max_answer_length = 30;  // tokens
  bool version_2_with_negative = false;
  double null_score_diff_threshold = 0.0;
};

/// One candidate answer of an example.
struct QaCandidate {
  std::string text;
  double start_logit = 0, end_logit = 0, score = 0, probability = 0;
  std::size_t feature = 0;  // the window it comes from
  Offset offsets{};         // bytes of the context; (0, 0) for the null answer
  bool null = false;        // SQuAD v2's "no answer" (start = end = position 0)
};

struct QaPrediction {
  std::string id, text;             // text: the answer ("" for no answer)
  std::vector<QaCandidate> n_best;  // best first; probabilities: softmax of the scores
  double null_score_diff = 0;       // v2: null score - best non-null score (+inf when none)
};

/// Span decoding (see the top). start_logits[f], end_logits[f]: feature f's logits, at least as
/// long as its encoding (longer rows: padding, read too, as HF does). Throws ShapeError for rows
/// that do not fit the features.
inline std::vector<QaPrediction> decode_qa_predictions(std::span<const QaExample> examples,
                                                       std::span<const QaFeature> features,
                                                       std::span<const std::vector<double>> start_logits,
                                                       std::span<const std::vector<double>> end_logits,
                                                       const QaDecodeOptions& opt = {}) {
  if (start_logits.size() != features.size() || end_logits.size() != features.size())
    throw ShapeError(detail::cat("decode_qa_predictions: ", features.size(), " features but ", start_logits.size(),
                                 " start and ", end_logits.size(), " end logit rows"));
  std::vector<std::vector<std::size_t>> per_example(examples.size());
  for (std::size_t f = 0; f < features.size(); ++f) {
    if (features[f].example >= examples.size())
      throw Error(detail::cat("decode_qa_predictions: feature ", f, " belongs to example ", features[f].example,
                              " of ", examples.size()));
    const std::size_t n = features[f].encoding.size();
    if (start_logits[f].size() < n || end_logits[f].size() != start_logits[f].size())
      throw ShapeError(detail::cat("decode_qa_predictions: feature ", f, " has ", n, " tokens but logit rows of ",
                                   start_logits[f].size(), " (start) and ", end_logits[f].size(), " (end)"));
    per_example[features[f].example].push_back(f);
  }
  auto top = [&](const std::vector<double>& v) {  // indices of the n_best largest, largest first
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] > v[b]; });
    idx.resize(std::min(idx.size(), opt.n_best));
    return idx;
  };
  std::vector<QaPrediction> out;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const QaExample& ex = examples[i];
    std::vector<QaCandidate> cands;
    std::optional<QaCandidate> null;
    for (std::size_t f : per_example[i]) {
      const auto& s = start_logits[f];
      const auto& e = end_logits[f];
      const Encoding& enc = features[f].encoding;
      if (!null || null->score > s[0] + e[0]) null = QaCandidate{"", s[0], e[0], s[0] + e[0], 0, f, {}, true};
      const auto starts = top(s), ends = top(e);
      for (std::size_t a : starts)
        for (std::size_t b : ends) {
          if (a >= enc.size() || b >= enc.size() || enc.sequence_ids[a] != 1 || enc.sequence_ids[b] != 1) continue;
          if (b < a || b - a + 1 > opt.max_answer_length) continue;
          const Offset span{enc.offsets[a].begin, enc.offsets[b].end};
          cands.push_back({ex.context.substr(span.begin, span.end - span.begin), s[a], e[b], s[a] + e[b], 0, f, span,
                           false});
        }
    }
    if (opt.version_2_with_negative && null) cands.push_back(*null);
    std::stable_sort(cands.begin(), cands.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
    if (cands.size() > opt.n_best) cands.resize(opt.n_best);
    if (opt.version_2_with_negative && null &&
        std::none_of(cands.begin(), cands.end(), [](const auto& c) { return c.null; }))
      cands.push_back(*null);
    if (!cands.empty()) {
      double m = cands[0].score, z = 0;
      for (const auto& c : cands) m = std::max(m, c.score);
      for (const auto& c : cands) z += std::exp(c.score - m);
      for (auto& c : cands) c.probability = std::exp(c.score - m) / z;
    }
    QaPrediction p;
    p.id = ex.id;
    const auto best = std::find_if(cands.begin(), cands.end(), [](const auto& c) { return !c.null; });
    if (!opt.version_2_with_negative) {
      p.text = best == cands.end() ? "" : best->text;
    } else {
      p.null_score_diff = best == cands.end() || !null ? std::numeric_limits<double>::infinity()
                                              : null->score - best->start_logit - best->end_logit;
      p.text = best == cands.end() || p.null_score_diff > opt.null_score_diff_threshold ? "" : best->text;
    }
    p.n_best = std::move(cands);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace deepprompt::tasks
