#pragma once
// Sequence classification and regression on a BERT backbone, as Hugging Face's
// BertForSequenceClassification (and THUDM's BertPrefixForSequenceClassification for P-Tuning v2):
//   pooled = backbone's pooler_output = tanh(dense(h[:, 0]))     (B, C)  (frozen with the backbone)
//   logits = classifier(dropout(pooled))                          (B, K)
//   loss   = cross_entropy(logits, labels)       single-label classification (K >= 2)
//          = mean((logits[:, 0] - targets)^2)    regression (K == 1, HF's problem_type "regression")
// Sentence pairs are token_type_ids 0/1 in the batch (the tokenizer's pair template gives them).
//
//   using Cfg = dp::BertBase;
//   tasks::SequenceClassifier model{dp::Bert<Cfg>::from_pretrained(dir), dp::DeepPrompt<12, 20, 768>{}, 2};
//   auto loss = model.loss(batch, {.training = true});   // gradients reach the prompt and the head
//   model.save_peft("rte-prompt/");                      // + base_model.classifier.{weight,bias}
//
// Parameter names (visit): the backbone's (bert.*, prompt.*) then classifier.weight (K, C) and
// classifier.bias (K), as HF; PEFT files store the head under modules_to_save names.
// Not done: HF's multi-label problem type (BCE with logits).
#include <cstdint>
#include <filesystem>
#include <utility>
#include <vector>

#include "../../nn/dropout.hpp"
#include "../../ops/arithmetic.hpp"
#include "../../ops/cross_entropy.hpp"
#include "../../ops/reduce.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// HF's problem_type; automatic: regression when the head has one output, else single-label.
enum class ProblemType { automatic, single_label_classification, regression };

/// One batch of a sentence (or sentence-pair) task. labels: class ids for classification;
/// targets: values for regression (labels are read as values when targets is empty).
struct SequenceClassificationBatch {
  Tensor<std::int64_t, 2> input_ids{}, attention_mask{}, token_type_ids{};  // (B, T); mask, types may be empty
  Tensor<std::int64_t, 1> labels{};                                         // (B)
  Tensor<double, 1> targets{};                                              // (B)
};

/// dropout -> Linear(C, K) on the pooled output. Represents the trainable head alone.
template <class T = float>
struct SequenceClassificationHead {
  Dropout dropout;
  Linear<T> classifier;  // weight (K, C), bias (K)

  SequenceClassificationHead() = default;
  /// requires hidden, num_labels >= 1; weights ~ Normal(0, init_std) from `seed`, bias 0.
  SequenceClassificationHead(index_t hidden, index_t num_labels, double dropout_p, double init_std,
                             std::uint64_t seed)
      : dropout(dropout_p) {
    if (hidden < 1 || num_labels < 1)
      throw Error(detail::cat("SequenceClassificationHead: hidden (", hidden, ") and num_labels (", num_labels,
                              ") must be positive"));
    Generator gen(seed);
    classifier = Linear<T>(num_labels, hidden, true, gen, init_std);
  }

  index_t num_labels() const { return classifier.out_features(); }

  /// pooled (B, C) -> logits (B, K). Dropout only when `training` (then `gen` is required).
  Var<T, 2> forward(const Var<T, 2>& pooled, Generator* gen, bool training) const {
    if (pooled.value().empty())
      throw Error("SequenceClassificationHead: the backbone returned no pooled output (it has no pooler)");
    check_shapes(pooled.extent(1) == classifier.in_features(), "SequenceClassificationHead",
                 "the pooled output (B, C) must have the classifier's input size C (weight (K, C))", pooled.shape(),
                 classifier.weight.shape());
    return classifier(dropout.forward(pooled, gen, training));
  }

  template <class V>
  void visit(V&& v) {
    v("classifier", classifier);
  }
};

/// Mean cross-entropy of logits (B, K) against class ids (B) (-100 ignored, as torch).
template <class T>
Var<T, 0> classification_loss(const Var<T, 2>& logits, const Tensor<std::int64_t, 1>& labels) {
  check_shapes(!labels.empty() && labels.extent(0) == logits.extent(0), "classification_loss",
               "labels must be (B) for logits (B, K)", labels.shape(), logits.shape());
  return cross_entropy(logits, labels);
}

/// HF's regression loss MSELoss(logits.squeeze(), targets): mean over B of (logits[b, 0] - targets[b])^2.
/// logits (B, 1); targets (B).
template <class T>
Var<T, 0> regression_loss(const Var<T, 2>& logits, const Tensor<double, 1>& targets) {
  check_shapes(logits.extent(1) == 1 && !targets.empty() && targets.extent(0) == logits.extent(0), "regression_loss",
               "a regression head needs logits (B, 1) and targets (B)", logits.shape(), targets.shape());
  const index_t B = logits.extent(0);
  Tensor<T, 2> y({B, 1});  // (B, 1)
  for (index_t b = 0; b < B; ++b) y(b, 0) = static_cast<T>(targets(b));
  const Var<T, 2> d = sub(logits, Var<T, 2>(y));
  return mean(mul(d, d));
}

/// The arg-max class of each row of logits (B, K) (the first on ties).
template <class T>
std::vector<std::int64_t> argmax_rows(const Tensor<T, 2>& logits) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(logits.extent(0)));
  for (index_t b = 0; b < logits.extent(0); ++b) {
    index_t best = 0;
    for (index_t k = 1; k < logits.extent(1); ++k)
      if (logits(b, k) > logits(b, best)) best = k;
    out[static_cast<std::size_t>(b)] = best;
  }
  return out;
}

/// A backbone (see BertBackbone) with a sequence-classification head. The backbone's trainable
/// state is left as it is (PromptedBert freezes BERT and its pooler; a plain Bert trains fully);
/// the head is trainable. Requires a backbone with a pooler.
template <BertBackbone Backbone, class T = backbone_value_t<Backbone>>
class SequenceClassifier {
 public:
  using value_type = T;
  Backbone backbone;
  SequenceClassificationHead<T> head;
  ProblemType problem = ProblemType::automatic;
  Generator generator;  // the head's dropout stream when BertRun::generator is null

  /// num_labels >= 1 (1: regression under ProblemType::automatic).
  SequenceClassifier(Backbone b, index_t num_labels, const HeadOptions& o = {})
      : backbone(std::move(b)), generator(o.seed + 1) {
    const auto r = resolve_head_options(backbone, o, "SequenceClassifier");
    head = SequenceClassificationHead<T>(r.hidden, num_labels, r.dropout, r.init_std, o.seed);
  }
  /// P-Tuning v2 and the other prompts: PromptedBert{bert, prompt} (backbone frozen) with the head.
  template <class Cfg, class Prompt>
    requires std::same_as<Backbone, PromptedBert<Cfg, Prompt, T>>
  SequenceClassifier(Bert<Cfg, T> bert, Prompt prompt, index_t num_labels, const HeadOptions& o = {})
      : SequenceClassifier(Backbone(std::move(bert), std::move(prompt)), num_labels, o) {}

  index_t num_labels() const { return head.num_labels(); }
  bool is_regression() const {
    return problem == ProblemType::regression || (problem == ProblemType::automatic && num_labels() == 1);
  }

  /// logits (B, K) of a batch: anything with input_ids, attention_mask, token_type_ids (B, T).
  template <class Batch>
  Var<T, 2> forward(const Batch& batch, const BertRun& run = {}) {
    BertRun r = run;
    r.first_token_only = true;  // the head reads the pooled first token only
    const BertOutput<T> out =
        heads_detail::run_backbone(backbone, batch.input_ids, batch.attention_mask, batch.token_type_ids, r);
    return head.forward(out.pooler_output, run.generator ? run.generator : &generator, run.training);
  }

  /// The mean loss of a labelled batch: cross-entropy (labels (B)) or MSE (targets (B), or labels
  /// read as values). run.training turns dropout on.
  Var<T, 0> loss(const SequenceClassificationBatch& batch, const BertRun& run = {}) {
    constexpr const char* who = "SequenceClassifier::loss";
    if (is_regression()) {
      Tensor<double, 1> y = batch.targets;
      if (y.empty() && !batch.labels.empty()) {
        y = Tensor<double, 1>({batch.labels.extent(0)});
        for (index_t b = 0; b < y.extent(0); ++b) y(b) = static_cast<double>(batch.labels(b));
      }
      if (y.empty()) throw Error(detail::cat(who, ": a regression batch needs targets (B)"));
      check_label_shape(y, batch.input_ids.shape(), who, "targets");
      return regression_loss(forward(batch, run), y);
    }
    if (batch.labels.empty()) throw Error(detail::cat(who, ": a classification batch needs labels (B)"));
    check_label_shape(batch.labels, batch.input_ids.shape(), who, "labels");
    return classification_loss(forward(batch, run), batch.labels);
  }

  /// The arg-max class per row of logits (B, K).
  static std::vector<std::int64_t> predict(const Tensor<T, 2>& logits) { return argmax_rows(logits); }

  template <class V>
  void visit(V&& v) {
    visit_backbone(backbone, v);
    v("classifier", head.classifier);
  }
  std::vector<ParamRef<T>> trainable_parameters() { return deepprompt::trainable_parameters<T>(*this); }

  /// The head under PEFT's names for this backbone's method (see common.hpp).
  std::vector<TensorEntry> peft_head_entries() const {
    return tasks::peft_head_entries(head.classifier, "classifier", peft_family(backbone));
  }
  /// The backbone's adapter (task_type SEQ_CLS) with the head, as PEFT's save_pretrained.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) {
    save_backbone_peft(backbone, dir, o, peft_head_entries(), "SEQ_CLS");
  }
  /// Loads the head of an adapter directory (FormatError when it has none or it does not fit).
  void load_peft_head(const std::filesystem::path& dir, bool trainable = true) {
    load_head_into(head.classifier, dir, "classifier", trainable, "SequenceClassifier::load_peft_head");
  }
};

template <class B>
SequenceClassifier(B, index_t, const HeadOptions& = {}) -> SequenceClassifier<B>;
template <class Cfg, class T, class Prompt>
SequenceClassifier(Bert<Cfg, T>, Prompt, index_t, const HeadOptions& = {})
    -> SequenceClassifier<PromptedBert<Cfg, Prompt, T>, T>;

}  // namespace deepprompt::tasks
