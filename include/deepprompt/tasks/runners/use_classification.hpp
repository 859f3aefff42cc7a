#pragma once
// UseClassificationRunner: sentence classification (GLUE SST-2; RTE/WSC pairs joined by a
// space) on Universal Sentence Encoder Lite, ready for train::Trainer:
//   h      = USE Lite's sentence vector before the L2 normalisation: tanh(W mean(states) + b)  (B, 512)
//   logits = Linear(512, K)(dropout(h))                                                     (B, K)
// with the encoder tuned by a UseLiteMethod (peft/use_lite_method.hpp: ptv2, probe, lora, full).
//
// is_use_lite_dir(dir): a folder with model.json and vocab.json (the npm package's dist/).
//
// Adapter folder (save(dir), read by load_use_adapter()):
//   adapter_config.json        {"peft_type": "DEEPPROMPT_USE_LITE", "method": ..., "tokens": ...,
//                               "num_labels": K, "labels": [...], LoRA settings}
//   adapter_model.safetensors  the method's trained tensors ("prompt.layer.<l>" (P, 2 * W_l), ...)
//                              and the head ("classifier.weight" (K, 512), "classifier.bias" (K))
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../autodiff/tape.hpp"
#include "../../io/file.hpp"
#include "../../io/use_tokenizer.hpp"
#include "../../peft/use_lite_method.hpp"
#include "../../train/trainer.hpp"
#include "../heads/sequence_classification.hpp"
#include "../metrics/classification.hpp"
#include "classification.hpp"  // TextExample, TextSplits

namespace deepprompt::tasks {

inline bool is_use_lite_dir(const std::filesystem::path& dir) {
  return !dir.empty() && std::filesystem::exists(dir / "model.json") && std::filesystem::exists(dir / "vocab.json");
}

inline constexpr const char* kUseAdapterType = "DEEPPROMPT_USE_LITE";

/// The encoder with its method and the head; visit names: use.*, prompt.*, classifier.*.
struct UseClassifier {
  UseLiteMethod backbone;
  SequenceClassificationHead<float> head;

  /// ids: B sentences -> logits (B, K). `gen` drives the head's dropout when training.
  Var<float, 2> forward(const std::vector<std::vector<std::int32_t>>& ids, Generator* gen, bool training) {
    return head.forward(backbone.forward(ids, training), gen, training);
  }
  template <class V>
  void visit(V&& v) {
    backbone.visit(v);
    v("classifier", head.classifier);
  }
};

/// The method and head of an adapter folder written by UseClassificationRunner::save, every
/// parameter frozen. Throws IoError / FormatError naming the file.
inline UseClassifier load_use_adapter(UseLite<float> model, const std::filesystem::path& dir) {
  const auto cfg_path = dir / "adapter_config.json";
  std::ifstream in(cfg_path);
  if (!in) throw IoError(detail::cat("USE Lite adapter: '", cfg_path.string(), "' cannot be read"));
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(in);
    if (cfg.value("peft_type", std::string()) != kUseAdapterType)
      throw FormatError(detail::cat("'", cfg_path.string(), "': peft_type is not ", kUseAdapterType,
                                    " (an adapter trained on USE Lite by ptune)"));
    const auto f = SafeTensorsFile::open(dir / "adapter_model.safetensors");
    UseClassifier c{UseLiteMethod::load(std::move(model), cfg, f), {}};
    const index_t K = cfg.at("num_labels").get<index_t>();
    c.head = SequenceClassificationHead<float>(c.backbone.hidden(), K, 0.0, 0.02, 0);
    f.load_into("classifier.weight", c.head.classifier.weight.value());
    f.load_into("classifier.bias", c.head.classifier.bias->value());
    freeze(c);
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(detail::cat("'", cfg_path.string(), "': ", e.what()));
  }
}

class UseClassificationRunner {
 public:
  using Model = UseClassifier;
  Model model;

  /// `tok` must outlive the runner. Pairs are joined with a space (USE Lite encodes one text).
  /// Training examples need a label; unlabelled evaluation examples are left out of the metrics.
  UseClassificationRunner(UseClassifier m, const UseTokenizer& tok, TextSplits data, const RunnerOptions& o = {})
      : model(std::move(m)), tok_(&tok), labels_(std::move(data.labels)), opt_(o), gen_(o.seed + 7) {
    for (const auto& e : data.train) {
      if (e.label < 0 || e.label >= static_cast<std::int64_t>(labels_.size()))
        throw Error(detail::cat("UseClassificationRunner: a training example has label ", e.label, " (", labels_.size(),
                                " classes)"));
      train_.push_back(encode(e));
      train_labels_.push_back(e.label);
    }
    for (const auto& e : data.eval) {
      eval_.push_back(encode(e));
      eval_labels_.push_back(e.label);
    }
  }
  /// A new head (dropout, Linear(hidden, K) ~ Normal(0, 0.02), seed o.seed) on `method`.
  UseClassificationRunner(UseLiteMethod method, const UseTokenizer& tok, TextSplits data, const RunnerOptions& o,
                          double head_dropout)
      : UseClassificationRunner(
            UseClassifier{std::move(method), {}}, tok, std::move(data), o) {
    model.head = SequenceClassificationHead<float>(model.backbone.hidden(), static_cast<index_t>(labels_.size()),
                                                   head_dropout, 0.02, o.seed);
  }

  // --- train::TrainTask ---
  index_t train_size() const { return static_cast<index_t>(train_.size()); }
  std::vector<index_t> train_lengths() const {
    std::vector<index_t> l;
    for (const auto& e : train_) l.push_back(static_cast<index_t>(e.size()));
    return l;
  }
  Var<float, 0> loss(std::span<const index_t> batch) {
    std::vector<std::vector<std::int32_t>> ids;
    Tensor<std::int64_t, 1> y({static_cast<index_t>(batch.size())});  // (B)
    for (std::size_t i = 0; i < batch.size(); ++i) {
      ids.push_back(train_[static_cast<std::size_t>(batch[i])]);
      y(static_cast<index_t>(i)) = train_labels_[static_cast<std::size_t>(batch[i])];
    }
    return classification_loss(model.forward(ids, &gen_, training_), y);
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
  std::vector<ParamRef<float>> trainable_parameters() { return deepprompt::trainable_parameters<float>(model); }
  Generator& generator() { return gen_; }
  void set_training(bool on) { training_ = on; }

  /// The adapter folder (see the top), both files written atomically.
  void save(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    nlohmann::json cfg = model.backbone.config();
    cfg["peft_type"] = kUseAdapterType;
    cfg["base_model"] = "universal-sentence-encoder-lite";
    cfg["num_labels"] = labels_.size();
    cfg["labels"] = labels_;
    std::vector<TensorEntry> e = model.backbone.trainable_entries();
    e.push_back(entry("classifier.weight", model.head.classifier.weight.value()));
    e.push_back(entry("classifier.bias", model.head.classifier.bias->value()));
    save_safetensors(dir / "adapter_model.safetensors", e);
    const std::string text = cfg.dump(2) + "\n";
    write_file_atomic(dir / "adapter_config.json", std::as_bytes(std::span(text.data(), text.size())));
  }

  /// Predicted class indices of texts (eval mode, no tape).
  std::vector<std::int64_t> predict(const std::vector<TextExample>& xs) {
    std::vector<std::vector<std::int32_t>> enc;
    for (const auto& e : xs) enc.push_back(encode(e));
    return predict_encoded(enc);
  }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  std::vector<std::int32_t> encode(const TextExample& e) const {
    auto ids = tok_->encode(e.text_b ? e.text_a + " " + *e.text_b : e.text_a);
    if (static_cast<index_t>(ids.size()) > opt_.max_length) ids.resize(static_cast<std::size_t>(opt_.max_length));
    return ids;
  }
  // In batches of similar lengths (a sentence's result does not depend on its batch).
  std::vector<std::int64_t> predict_encoded(const std::vector<std::vector<std::int32_t>>& enc) {
    NoGradGuard no_grad;
    std::vector<std::size_t> order(enc.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return enc[a].size() < enc[b].size(); });
    std::vector<std::int64_t> out(enc.size());
    const auto bs = static_cast<std::size_t>(opt_.eval_batch_size);
    for (std::size_t b = 0; b < enc.size(); b += bs) {
      std::vector<std::vector<std::int32_t>> ids;
      for (std::size_t i = b; i < std::min(enc.size(), b + bs); ++i) ids.push_back(enc[order[i]]);
      const auto pred = argmax_rows(model.forward(ids, nullptr, false).value());
      for (std::size_t i = 0; i < pred.size(); ++i) out[order[b + i]] = pred[i];
    }
    return out;
  }

  const UseTokenizer* tok_;
  std::vector<std::string> labels_;
  RunnerOptions opt_;
  Generator gen_;
  bool training_ = true;
  std::vector<std::vector<std::int32_t>> train_, eval_;
  std::vector<std::int64_t> train_labels_, eval_labels_;
};
static_assert(train::TrainTask<UseClassificationRunner>);

}  // namespace deepprompt::tasks
