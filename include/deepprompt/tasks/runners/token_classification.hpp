#pragma once
// NerRunner: named-entity recognition on CoNLL-2003 ready for train::Trainer: a TokenClassifier
// over a BertMethod, the sentences tokenised once (words -> sub-tokens, labels on the first
// sub-token of each word, HF's run_ner.py), and seqeval's entity-level scores on the evaluation
// split.
//
// Data folder (read_ner_task), the first layout found:
//   train.txt, valid.txt        "token<TAB>tag" (or space-separated), IOB2 tags
//                               (as ../shared/data/conll2003/iob2_2col)
//   eng.train, eng.testa        the original release: "token POS chunk NER", IOB1 tags,
//                               -DOCSTART- lines; converted to IOB2 on read
// Labels: the 9 tags of kConll2003Labels, in that order (index = class); another tag is a
// FormatError naming the file and line.
//
// Metrics (evaluate): "precision", "recall", "f1": seqeval's micro average over entities (default,
// conlleval-compatible mode) of the word-level tags; "accuracy": the fraction of words tagged
// right. A word left without a prediction (cut off by max_length, or with no sub-token) counts
// as "O".
#include <algorithm>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../../autodiff/tape.hpp"
#include "../../peft/bert_method.hpp"
#include "../../train/trainer.hpp"
#include "../data/conll.hpp"
#include "../heads/token_classification.hpp"
#include "../metrics/seqeval.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// The train and evaluation sentences of a NER task and its label list (index = class).
struct NerSplits {
  std::vector<data::ConllSentence> train, eval;
  std::vector<std::string> labels;
};

/// The CoNLL-2003 label list (kConll2003Labels) as strings.
inline std::vector<std::string> conll2003_labels() {
  return {std::begin(data::kConll2003Labels), std::end(data::kConll2003Labels)};
}

/// The splits of the CoNLL-2003 folder `dir` (see the top). Throws IoError when `dir` holds
/// neither layout (or one file of a pair is missing), FormatError "FILE:LINE: ..." for a
/// malformed line or a tag outside kConll2003Labels.
inline NerSplits read_ner_task(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  NerSplits s;
  s.labels = conll2003_labels();
  const bool two_col = fs::exists(dir / "train.txt") || fs::exists(dir / "valid.txt");
  const bool original = fs::exists(dir / "eng.train") || fs::exists(dir / "eng.testa");
  if (!two_col && !original)
    throw IoError(detail::cat("task conll03: '", dir.string(),
                              "' holds neither train.txt + valid.txt (token<TAB>tag, IOB2) nor eng.train + eng.testa "
                              "(CoNLL-2003 original)"));
  const char* names[2] = {two_col ? "train.txt" : "eng.train", two_col ? "valid.txt" : "eng.testa"};
  std::vector<data::ConllSentence>* outs[2] = {&s.train, &s.eval};
  for (int i = 0; i < 2; ++i) {
    const fs::path p = dir / names[i];
    if (!fs::exists(p))
      throw IoError(detail::cat("task conll03: '", p.string(), "' does not exist (--data should hold ", names[0],
                                " and ", names[1], ")"));
    data::ConllDataset ds = data::read_conll(p, data::ConllOptions{.to_iob2 = true});
    for (const auto& sent : ds.examples) {
      for (std::size_t t = 0; t < sent.tags.size(); ++t)
        if (std::find(s.labels.begin(), s.labels.end(), sent.tags[t]) == s.labels.end())
          throw FormatError(detail::cat(p.string(), ":", sent.line + t, ": tag ", data::detail::quote(sent.tags[t]),
                                        " is not a CoNLL-2003 label (O, B/I-PER, ORG, LOC, MISC)"));
    }
    *outs[i] = std::move(ds.examples);
  }
  return s;
}

class NerRunner {
 public:
  using Model = TokenClassifier<BertMethod>;
  Model model;

  /// `tok` must outlive the runner. Every tag must be in data.labels (else FormatError naming the
  /// sentence's line). Training sentences that give no labelled token are left out and counted
  /// (dropped_train()).
  NerRunner(BertMethod backbone, const Tokenizer& tok, NerSplits data, const RunnerOptions& o = {},
            double head_dropout = 0.1)
      : model(std::move(backbone), static_cast<index_t>(data.labels.size()),
              HeadOptions{.dropout = head_dropout, .seed = o.seed}),
        tok_(&tok), labels_(std::move(data.labels)), opt_(o), gen_(o.seed + 7) {
    if (labels_.empty()) throw Error("NerRunner: the label list is empty");
    pad_ = pad_id_of(tok);
    for (const auto& s : data.train) {
      Encoding e = encode(s.tokens);
      std::vector<std::int64_t> word_labels;
      for (int id : data::tag_ids(s, std::span<const std::string>(labels_))) word_labels.push_back(id);
      auto token_labels = align_word_labels(e, word_labels);
      if (std::all_of(token_labels.begin(), token_labels.end(), [](auto l) { return l == -100; })) {
        ++dropped_train_;
        continue;
      }
      train_.push_back(std::move(e));
      train_labels_.push_back(std::move(token_labels));
    }
    for (auto& s : data.eval) {
      (void)data::tag_ids(s, std::span<const std::string>(labels_));  // validates the tags
      eval_.push_back(encode(s.tokens));
      eval_words_.push_back(s.tokens.size());
      eval_tags_.push_back(std::move(s.tags));
    }
  }

  // --- train::TrainTask ---
  index_t train_size() const { return static_cast<index_t>(train_.size()); }
  std::vector<index_t> train_lengths() const {
    std::vector<index_t> l;
    for (const auto& e : train_) l.push_back(static_cast<index_t>(e.size()));
    return l;
  }
  Var<float, 0> loss(std::span<const index_t> batch) {
    TokenClassificationBatch b = collate(train_, batch);
    std::vector<std::vector<std::int64_t>> rows;
    for (index_t i : batch) rows.push_back(train_labels_[static_cast<std::size_t>(i)]);
    b.labels = label_rows(rows, b.input_ids.extent(1));  // (B, T), -100 on specials and padding
    return model.loss(b, BertRun{.training = training_, .generator = &gen_, .unpadded = true});
  }
  train::Metrics evaluate() {
    if (eval_.empty()) return {};
    const metrics::TagSentences pred = predict_encoded(eval_, eval_words_);
    const metrics::EntityReport r = metrics::entity_report(eval_tags_, pred);
    return {{"precision", r.micro.precision},
            {"recall", r.micro.recall},
            {"f1", r.micro.f1},
            {"accuracy", metrics::token_accuracy(eval_tags_, pred)}};
  }
  std::vector<ParamRef<float>> trainable_parameters() { return model.trainable_parameters(); }
  Generator& generator() { return gen_; }
  void set_training(bool on) { training_ = on; }
  void save(const std::filesystem::path& dir) { model.save_peft(dir); }

  /// The tags of one pre-split sentence (eval mode, no tape), one per word.
  std::vector<std::string> predict(const std::vector<std::string>& words) { return predict_batch({words})[0]; }
  /// The tags of several sentences.
  std::vector<std::vector<std::string>> predict_batch(const std::vector<std::vector<std::string>>& sentences) {
    std::vector<Encoding> enc;
    std::vector<std::size_t> words;
    for (const auto& s : sentences) enc.push_back(encode(s)), words.push_back(s.size());
    return predict_encoded(enc, words);
  }
  const std::vector<std::string>& labels() const { return labels_; }
  /// Training sentences left out because truncation or tokenisation left them no labelled token.
  std::size_t dropped_train() const { return dropped_train_; }

 private:
  Encoding encode(const std::vector<std::string>& words) const {
    return encode_words(*tok_, words, EncodeOptions{.max_length = static_cast<std::size_t>(opt_.max_length)});
  }
  TokenClassificationBatch collate(const std::vector<Encoding>& from, std::span<const index_t> idx) const {
    EncodedBatch e = pad_encodings(from, idx, pad_);  // (B, T) each
    return {e.input_ids, e.attention_mask, e.token_type_ids, {}};
  }
  /// Word-level tags of encoded sentences; words[i]: the word count of sentence i.
  metrics::TagSentences predict_encoded(const std::vector<Encoding>& enc, const std::vector<std::size_t>& words) {
    NoGradGuard no_grad;
    metrics::TagSentences out;
    const std::size_t step = static_cast<std::size_t>(std::max<index_t>(1, opt_.eval_batch_size));
    for (std::size_t b = 0; b < enc.size(); b += step) {
      std::vector<index_t> idx;
      for (std::size_t i = b; i < std::min(enc.size(), b + step); ++i) idx.push_back(static_cast<index_t>(i));
      const Tensor<float, 3> logits = model.forward(collate(enc, idx), BertRun{.training = false, .unpadded = true}).value();  // (B, T, K)
      for (std::size_t r = 0; r < idx.size(); ++r) {
        const std::size_t i = static_cast<std::size_t>(idx[r]);
        const auto ids = word_predictions(std::span<const std::int32_t>(enc[i].word_ids),
                                          logits_row(logits, static_cast<index_t>(r)), words[i]);
        std::vector<std::string> tags;
        for (auto k : ids) tags.push_back(k < 0 ? std::string("O") : labels_[static_cast<std::size_t>(k)]);
        out.push_back(std::move(tags));
      }
    }
    return out;
  }

  const Tokenizer* tok_;
  std::vector<std::string> labels_;
  RunnerOptions opt_;
  Generator gen_;
  std::int64_t pad_ = 0;
  bool training_ = true;
  std::size_t dropped_train_ = 0;
  std::vector<Encoding> train_, eval_;
  std::vector<std::vector<std::int64_t>> train_labels_;  // per token, -100 where no label applies
  std::vector<std::size_t> eval_words_;
  metrics::TagSentences eval_tags_;
};
static_assert(train::TrainTask<NerRunner>);

}  // namespace deepprompt::tasks
