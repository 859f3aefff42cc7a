#pragma once
// ClassificationRunner: a sentence or sentence-pair classification task (GLUE SST-2, SuperGLUE
// RTE and WSC) ready for train::Trainer: a SequenceClassifier over a BertMethod, the examples
// tokenised once, and accuracy / macro-F1 / Matthews correlation on the evaluation split.
//
// Data folders (the standard files; tasks/data/ reads them):
//   sst2  train.tsv, dev.tsv                   (GLUE: sentence, label)
//   rte   train.jsonl, val.jsonl               (SuperGLUE: premise, hypothesis, label)
//   wsc   train.jsonl, val.jsonl               (SuperGLUE: text + spans; the pair is
//         (text, "<span2_text> refers to <span1_text>"), label = the pronoun refers to the noun)
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../../autodiff/tape.hpp"
#include "../../peft/bert_method.hpp"
#include "../../train/trainer.hpp"
#include "../data/glue.hpp"
#include "../data/superglue.hpp"
#include "../heads/sequence_classification.hpp"
#include "../metrics/classification.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// One labelled text or text pair. label: class index (-1: unlabelled).
struct TextExample {
  std::string text_a;
  std::optional<std::string> text_b;
  std::int64_t label = -1;
};

struct TextSplits {
  std::vector<TextExample> train, eval;
  std::vector<std::string> labels;  // class names, index = label
};

/// The class names of a text task (sst2, rte, wsc), index = label. Error for another task.
inline std::vector<std::string> read_text_labels(const std::string& task) {
  std::vector<std::string> out;
  if (task == "sst2")
    for (auto l : data::glue_spec(data::GlueTask::sst2).labels) out.emplace_back(l);
  else if (task == "rte")
    for (auto l : data::RteExample::kLabels) out.emplace_back(l);
  else if (task == "wsc")
    out = {"False", "True"};
  else
    throw Error(detail::cat("'", task, "' is not a text classification task (sst2, rte, wsc)"));
  return out;
}

/// The train and evaluation splits of `task` (sst2, rte, wsc) in `dir` (see the top).
/// Throws Error for another task, IoError / FormatError from the readers.
inline TextSplits read_text_task(const std::string& task, const std::filesystem::path& dir) {
  TextSplits s;
  s.labels = read_text_labels(task);
  auto need = [&](const char* name) {
    const auto p = dir / name;
    if (!std::filesystem::exists(p))
      throw IoError(detail::cat("task ", task, ": '", p.string(), "' does not exist (--data should hold ", name, ")"));
    return p;
  };
  if (task == "sst2") {
    for (auto [file, out] : {std::pair{"train.tsv", &s.train}, std::pair{"dev.tsv", &s.eval}})
      for (auto& e : data::read_glue(data::GlueTask::sst2, need(file)).examples)
        out->push_back({e.text_a, std::nullopt, e.label ? *e.label : -1});
  } else if (task == "rte") {
    for (auto [file, out] : {std::pair{"train.jsonl", &s.train}, std::pair{"val.jsonl", &s.eval}})
      for (auto& e : data::read_superglue<data::RteExample>(need(file)).examples)
        out->push_back({e.premise, e.hypothesis, e.label ? *e.label : -1});
  } else if (task == "wsc") {
    for (auto [file, out] : {std::pair{"train.jsonl", &s.train}, std::pair{"val.jsonl", &s.eval}})
      for (auto& e : data::read_superglue<data::WscExample>(need(file)).examples)
        out->push_back({e.text, e.span2_text + " refers to " + e.span1_text, e.label ? std::int64_t{*e.label} : -1});
  } else {
    throw Error(detail::cat("read_text_task: '", task, "' is not a text classification task (sst2, rte, wsc)"));
  }
  return s;
}

class ClassificationRunner {
 public:
  using Model = SequenceClassifier<BertMethod>;
  Model model;

  /// `tok` must outlive the runner. Examples without a label are refused in `train` and
  /// ignored by the metrics.
  ClassificationRunner(BertMethod backbone, const Tokenizer& tok, TextSplits data, const RunnerOptions& o = {},
                       double head_dropout = 0.1)
      : model(std::move(backbone), static_cast<index_t>(data.labels.size()),
              HeadOptions{.dropout = head_dropout, .seed = o.seed}),
        tok_(&tok), labels_(std::move(data.labels)), opt_(o), gen_(o.seed + 7) {
    pad_ = pad_id_of(tok);
    for (const auto& e : data.train) {
      if (e.label < 0 || e.label >= static_cast<std::int64_t>(labels_.size()))
        throw Error(detail::cat("ClassificationRunner: a training example has label ", e.label, " (", labels_.size(),
                                " classes)"));
      train_.push_back(encode(e));
      train_labels_.push_back(e.label);
    }
    for (const auto& e : data.eval) {
      eval_.push_back(encode(e));
      eval_labels_.push_back(e.label);
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
    SequenceClassificationBatch b = collate(train_, batch);
    b.labels = Tensor<std::int64_t, 1>({static_cast<index_t>(batch.size())});
    for (std::size_t i = 0; i < batch.size(); ++i) b.labels(static_cast<index_t>(i)) = train_labels_[batch[i]];
    return model.loss(b, BertRun{.training = training_, .generator = &gen_, .unpadded = true});
  }
  train::Metrics evaluate() {
    const auto pred = predict_encoded(eval_);
    std::vector<std::int64_t> y, p;
    for (std::size_t i = 0; i < pred.size(); ++i)
      if (eval_labels_[i] >= 0) y.push_back(eval_labels_[i]), p.push_back(pred[i]);
    if (y.empty()) return {};
    return {{"accuracy", metrics::accuracy(y, p)}, {"macro_f1", metrics::macro_f1(y, p)},
            {"mcc", metrics::matthews_corrcoef(y, p)}};
  }
  std::vector<ParamRef<float>> trainable_parameters() { return model.trainable_parameters(); }
  Generator& generator() { return gen_; }
  void set_training(bool on) { training_ = on; }
  void save(const std::filesystem::path& dir) { model.save_peft(dir); }

  /// Predicted class indices of texts (eval mode, no tape).
  std::vector<std::int64_t> predict(const std::vector<TextExample>& xs) {
    std::vector<Encoding> enc;
    for (const auto& e : xs) enc.push_back(encode(e));
    return predict_encoded(enc);
  }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  Encoding encode(const TextExample& e) const {
    const EncodeOptions eo{.max_length = static_cast<std::size_t>(opt_.max_length)};
    return e.text_b ? tok_->encode(e.text_a, *e.text_b, eo) : tok_->encode(e.text_a, eo);
  }
  SequenceClassificationBatch collate(const std::vector<Encoding>& from, std::span<const index_t> idx) const {
    EncodedBatch e = pad_encodings(from, idx, pad_);
    return {e.input_ids, e.attention_mask, e.token_type_ids, {}, {}};
  }
  std::vector<std::int64_t> predict_encoded(const std::vector<Encoding>& enc) {
    NoGradGuard no_grad;
    std::vector<std::int64_t> out;
    for (std::size_t b = 0; b < enc.size(); b += static_cast<std::size_t>(opt_.eval_batch_size)) {
      std::vector<index_t> idx;
      for (std::size_t i = b; i < std::min(enc.size(), b + static_cast<std::size_t>(opt_.eval_batch_size)); ++i)
        idx.push_back(static_cast<index_t>(i));
      const auto logits = model.forward(collate(enc, idx), BertRun{.training = false, .unpadded = true});
      for (auto p : Model::predict(logits.value())) out.push_back(p);
    }
    return out;
  }

  const Tokenizer* tok_;
  std::vector<std::string> labels_;
  RunnerOptions opt_;
  Generator gen_;
  std::int64_t pad_ = 0;
  bool training_ = true;
  std::vector<Encoding> train_, eval_;
  std::vector<std::int64_t> train_labels_, eval_labels_;
};
static_assert(train::TrainTask<ClassificationRunner>);

}  // namespace deepprompt::tasks
