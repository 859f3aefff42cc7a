#pragma once
// QaRunner: extractive question answering on SQuAD v1.1 / v2.0 ready for train::Trainer: a
// QuestionAnswerer over a BertMethod, the questions cut into windows once (make_qa_features:
// RunnerOptions::max_length tokens per window, QaOptions::doc_stride shared between windows;
// SQuAD's usual settings are 384 and 128), and the official exact-match / F1 on the evaluation
// split after n-best span decoding (decode_qa_predictions).
//
// Data folder (read_qa_task): train.json and dev.json in SQuAD's JSON format. SQuAD v2.0 is
// detected when either file's "version" starts with "v2"/"2" or a question is impossible
// (is_impossible: true); SquadVersion forces one.
// Training: every window (feature) is one training example; its targets are the answer's first
// and last token, or [CLS] when the window does not hold the answer (and for unanswerable
// questions). Answers are located with OffsetCheck::relocate (rebuilt copies of SQuAD carry
// estimated answer_start); an answerable question none of whose answers occurs in its context
// is left out and counted (QaSplits::train_dropped), as are impossible questions under v1.
// Metrics (evaluate): v1 "exact", "f1", "total" (evaluate-v1.1.py over the questions that have
// a gold answer); v2 "exact", "f1", "total" and the script's "HasAns_*" / "NoAns_*" breakdown
// (exact, f1, total; each group only when it has questions).
#include <algorithm>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../../autodiff/tape.hpp"
#include "../../peft/bert_method.hpp"
#include "../../train/trainer.hpp"
#include "../data/squad.hpp"
#include "../heads/qa_postprocess.hpp"
#include "../heads/question_answering.hpp"
#include "../metrics/squad.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

enum class SquadVersion { detect, v1, v2 };

/// The train and evaluation questions of a SQuAD task. eval answers hold every gold answer text
/// (their answer_start is not used).
struct QaSplits {
  std::vector<QaExample> train, eval;
  bool version_2 = false;
  std::size_t train_dropped = 0;  // training questions left out (see the top)
};

namespace qa_runner_detail {

inline bool is_v2(const data::SquadDataset& ds) {
  if (ds.version.starts_with("v2") || ds.version.starts_with("2")) return true;
  for (const auto& a : ds.articles)
    for (const auto& p : a.paragraphs)
      for (const auto& q : p.qas)
        if (q.is_impossible) return true;
  return false;
}

/// Keeps only what make_qa_batch (and, with `decode`, decode_qa_predictions) reads.
inline void slim(Encoding& e, bool decode) {
  e.tokens = {};
  e.char_offsets = {};
  e.word_ids = {};
  e.special_tokens_mask = {};
  if (!decode) e.offsets = {}, e.sequence_ids = {};
}

}  // namespace qa_runner_detail

/// The splits of the SQuAD folder `dir` (see the top). Throws IoError when train.json or dev.json
/// is missing, FormatError "FILE: ..." from the reader for a malformed file.
inline QaSplits read_qa_task(const std::filesystem::path& dir, SquadVersion version = SquadVersion::detect) {
  namespace fs = std::filesystem;
  auto need = [&](const char* name) {
    const fs::path p = dir / name;
    if (!fs::exists(p))
      throw IoError(detail::cat("task squad: '", p.string(), "' does not exist (--data should hold train.json and dev.json)"));
    return p;
  };
  const fs::path train_file = need("train.json"), dev_file = need("dev.json");
  const auto train = data::read_squad(train_file, {.offsets = data::OffsetCheck::relocate});
  const auto dev = data::read_squad(dev_file);
  QaSplits s;
  s.version_2 = version == SquadVersion::v2 ||
                (version == SquadVersion::detect && (qa_runner_detail::is_v2(train) || qa_runner_detail::is_v2(dev)));
  for (const auto& x : data::squad_examples(train)) {
    QaExample e{x.id, x.question, x.context, {}};
    if (x.is_impossible) {
      if (!s.version_2) ++s.train_dropped;
      else s.train.push_back(std::move(e));
      continue;
    }
    for (const auto& a : x.answers)
      if (a.byte_start && a.answer_start) e.answers.push_back({a.text, static_cast<std::size_t>(*a.answer_start)});
    if (e.answers.empty()) ++s.train_dropped;
    else s.train.push_back(std::move(e));
  }
  for (const auto& x : data::squad_examples(dev)) {
    QaExample e{x.id, x.question, x.context, {}};
    if (!x.is_impossible)
      for (const auto& a : x.answers)
        e.answers.push_back({a.text, static_cast<std::size_t>(std::max<std::int64_t>(0, a.answer_start.value_or(0)))});
    s.eval.push_back(std::move(e));
  }
  return s;
}

/// What QA adds to RunnerOptions.
struct QaOptions {
  std::size_t doc_stride = 128;         // tokens shared by consecutive windows (< max_length - question)
  std::size_t n_best = 20;              // candidate starts and ends per window
  std::size_t max_answer_length = 30;   // tokens
  double null_score_diff_threshold = 0; // v2: answer "" when null - best > this
};

class QaRunner {
 public:
  using Model = QuestionAnswerer<BertMethod>;
  Model model;

  /// `tok` must outlive the runner. head_dropout is not used: the span head has none (as HF's);
  /// the backbone's hidden dropout applies. Throws Error when max_length does not leave more than
  /// doc_stride context tokens after a question (make_qa_features names the example).
  QaRunner(BertMethod backbone, const Tokenizer& tok, QaSplits data, const RunnerOptions& o = {},
           double head_dropout = 0.1, const QaOptions& qa = {})
      : model(std::move(backbone), HeadOptions{.dropout = head_dropout, .seed = o.seed}),
        tok_(&tok), opt_(o), qa_(qa), gen_(o.seed + 7), version_2_(data.version_2) {
    if (o.max_length < 1 || static_cast<std::size_t>(o.max_length) <= qa.doc_stride)
      throw Error(detail::cat("QaRunner: max_length (", o.max_length, ") must exceed doc_stride (", qa.doc_stride,
                              ") and the question; SQuAD's usual values are 384 and 128"));
    pad_ = pad_id_of(tok);
    train_ = features(data.train, false);
    eval_ = std::move(data.eval);
    eval_features_ = features(eval_, true);
  }

  // --- train::TrainTask ---
  index_t train_size() const { return static_cast<index_t>(train_.size()); }
  std::vector<index_t> train_lengths() const {
    std::vector<index_t> l;
    for (const auto& f : train_) l.push_back(static_cast<index_t>(f.encoding.size()));
    return l;
  }
  Var<float, 0> loss(std::span<const index_t> batch) {
    std::vector<QaFeature> rows;
    for (index_t i : batch) rows.push_back(train_[static_cast<std::size_t>(i)]);
    return model.loss(make_qa_batch(rows, pad_), BertRun{.training = training_, .generator = &gen_, .unpadded = true});
  }
  train::Metrics evaluate() {
    if (eval_.empty()) return {};
    const auto pred = decode(eval_, eval_features_);
    std::vector<std::string> p;
    std::vector<std::vector<std::string>> gold;
    for (std::size_t i = 0; i < eval_.size(); ++i) {
      if (!version_2_ && eval_[i].answers.empty()) continue;  // v1.1's script needs a gold answer
      p.push_back(pred[i].text);
      auto& g = gold.emplace_back();
      for (const auto& a : eval_[i].answers) g.push_back(a.text);
    }
    if (p.empty()) return {};
    if (!version_2_) {
      const auto s = metrics::squad_v1(p, gold);
      return {{"exact", s.exact}, {"f1", s.f1}, {"total", static_cast<double>(s.total)}};
    }
    const auto s = metrics::squad_v2(p, gold);
    train::Metrics m{{"exact", s.all.exact}, {"f1", s.all.f1}, {"total", static_cast<double>(s.all.total)}};
    for (auto [name, g] : {std::pair{"HasAns_", &s.has_ans}, std::pair{"NoAns_", &s.no_ans}}) {
      if (g->total == 0) continue;
      m[std::string(name) + "exact"] = g->exact;
      m[std::string(name) + "f1"] = g->f1;
      m[std::string(name) + "total"] = static_cast<double>(g->total);
    }
    return m;
  }
  std::vector<ParamRef<float>> trainable_parameters() { return model.trainable_parameters(); }
  Generator& generator() { return gen_; }
  void set_training(bool on) { training_ = on; }
  void save(const std::filesystem::path& dir) { model.save_peft(dir); }

  /// The answer to `question` about `context` ("" when a v2 model predicts no answer).
  std::string predict(const std::string& question, const std::string& context) {
    return predict_batch({QaExample{"0", question, context, {}}})[0].text;
  }
  /// Predictions (with their n-best lists) of several questions, in order.
  std::vector<QaPrediction> predict_batch(const std::vector<QaExample>& examples) {
    return decode(examples, features(examples, true));
  }
  bool version_2() const { return version_2_; }
  std::size_t eval_features() const { return eval_features_.size(); }

 private:
  /// The windows of `examples`, in chunks (the tokens' strings dropped as they are made).
  std::vector<QaFeature> features(std::span<const QaExample> examples, bool for_decoding) const {
    const QaWindowOptions w{.max_length = static_cast<std::size_t>(opt_.max_length), .doc_stride = qa_.doc_stride};
    std::vector<QaFeature> out;
    constexpr std::size_t chunk = 512;
    for (std::size_t b = 0; b < examples.size(); b += chunk) {
      const auto part = examples.subspan(b, std::min(chunk, examples.size() - b));
      for (auto& f : make_qa_features(*tok_, part, w)) {
        f.example += b;
        qa_runner_detail::slim(f.encoding, for_decoding);
        out.push_back(std::move(f));
      }
    }
    return out;
  }
  /// Span decoding of every example from its windows' logits (eval mode, no tape).
  std::vector<QaPrediction> decode(std::span<const QaExample> examples, std::span<const QaFeature> feats) {
    NoGradGuard no_grad;
    std::vector<std::vector<double>> starts, ends;  // one row per feature
    const std::size_t step = static_cast<std::size_t>(std::max<index_t>(1, opt_.eval_batch_size));
    for (std::size_t b = 0; b < feats.size(); b += step) {
      const auto part = feats.subspan(b, std::min(step, feats.size() - b));
      const SpanLogits<float> l = model.forward(make_qa_batch(part, pad_), BertRun{.training = false, .unpadded = true});  // (B, T) each
      append_logit_rows(starts, l.start.value());
      append_logit_rows(ends, l.end.value());
    }
    return decode_qa_predictions(examples, feats, starts, ends,
                                 {.n_best = qa_.n_best,
                                  .max_answer_length = qa_.max_answer_length,
                                  .version_2_with_negative = version_2_,
                                  .null_score_diff_threshold = qa_.null_score_diff_threshold});
  }

  const Tokenizer* tok_;
  RunnerOptions opt_;
  QaOptions qa_;
  Generator gen_;
  bool version_2_ = false;
  std::int64_t pad_ = 0;
  bool training_ = true;
  std::vector<QaFeature> train_;  // encodings keep ids, type ids and mask only
  std::vector<QaExample> eval_;
  std::vector<QaFeature> eval_features_;
};
static_assert(train::TrainTask<QaRunner>);

}  // namespace deepprompt::tasks
