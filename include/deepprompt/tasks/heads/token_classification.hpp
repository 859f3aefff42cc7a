#pragma once
// Token classification (NER) on a BERT backbone, as Hugging Face's BertForTokenClassification (and
// THUDM's BertPrefixForTokenClassification for P-Tuning v2):
//   logits = classifier(dropout(last_hidden_state))      (B, T, K)
//   loss   = cross_entropy over the tokens whose label is not -100 and whose attention_mask is 1
// Words and labels (HF's run_ner.py, tokenize_and_align_labels):
//   auto enc    = tasks::encode_words(tokenizer, words);            // word_ids index `words`
//   auto labels = tasks::align_word_labels(enc, word_labels);       // first sub-token of each word;
//                                                                   // -100 elsewhere and on specials
//   auto preds  = tasks::word_predictions(enc.word_ids, logits_row, words.size());  // one per word
// A backbone with an input-layer prompt (Prompt Tuning, P-Tuning) returns P more rows in front;
// their outputs are dropped (as if labelled -100).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../../nn/dropout.hpp"
#include "../../ops/cross_entropy.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// One batch of a token-level task; labels (B, T) with -100 where no label applies.
struct TokenClassificationBatch {
  Tensor<std::int64_t, 2> input_ids{}, attention_mask{}, token_type_ids{};  // (B, T); mask, types may be empty
  Tensor<std::int64_t, 2> labels{};                                         // (B, T)
};

/// dropout -> Linear(C, K) on every token's hidden state.
template <class T = float>
struct TokenClassificationHead {
  Dropout dropout;
  Linear<T> classifier;  // weight (K, C), bias (K)

  TokenClassificationHead() = default;
  TokenClassificationHead(index_t hidden, index_t num_labels, double dropout_p, double init_std, std::uint64_t seed)
      : dropout(dropout_p) {
    if (hidden < 1 || num_labels < 1)
      throw Error(detail::cat("TokenClassificationHead: hidden (", hidden, ") and num_labels (", num_labels,
                              ") must be positive"));
    Generator gen(seed);
    classifier = Linear<T>(num_labels, hidden, true, gen, init_std);
  }

  index_t num_labels() const { return classifier.out_features(); }

  /// hidden (B, T, C) -> logits (B, T, K).
  Var<T, 3> forward(const Var<T, 3>& hidden, Generator* gen, bool training) const {
    check_shapes(hidden.extent(2) == classifier.in_features(), "TokenClassificationHead",
                 "the hidden states (B, T, C) must have the classifier's input size C (weight (K, C))",
                 hidden.shape(), classifier.weight.shape());
    return classifier(dropout.forward(hidden, gen, training));
  }

  template <class V>
  void visit(V&& v) {
    v("classifier", classifier);
  }
};

/// Mean cross-entropy of logits (B, T, K) against labels (B, T) over the tokens whose label is
/// not -100 and, when attention_mask (B, T) is given, whose mask is 1 (HF's active_loss).
template <class T>
Var<T, 0> token_classification_loss(const Var<T, 3>& logits, const Tensor<std::int64_t, 2>& labels,
                                    const Tensor<std::int64_t, 2>& attention_mask = {}) {
  const Shape<2> bt{logits.extent(0), logits.extent(1)};
  check_shapes(labels.shape() == bt, "token_classification_loss", "labels must be (B, T) for logits (B, T, K)",
               labels.shape(), logits.shape());
  if (attention_mask.empty()) return cross_entropy(logits, labels);
  check_shapes(attention_mask.shape() == bt, "token_classification_loss",
               "attention_mask must be (B, T) for logits (B, T, K)", attention_mask.shape(), logits.shape());
  Tensor<std::int64_t, 2> active = labels.clone();  // (B, T)
  for (index_t i = 0; i < active.size(); ++i)
    if (attention_mask.data()[i] == 0) active.data()[i] = -100;
  return cross_entropy(logits, active);
}

/// A backbone with a token-classification head; the head is trainable.
template <BertBackbone Backbone, class T = backbone_value_t<Backbone>>
class TokenClassifier {
 public:
  using value_type = T;
  Backbone backbone;
  TokenClassificationHead<T> head;
  Generator generator;  // the head's dropout stream when BertRun::generator is null

  TokenClassifier(Backbone b, index_t num_labels, const HeadOptions& o = {})
      : backbone(std::move(b)), generator(o.seed + 1) {
    const auto r = resolve_head_options(backbone, o, "TokenClassifier");
    head = TokenClassificationHead<T>(r.hidden, num_labels, r.dropout, r.init_std, o.seed);
  }
  template <class Cfg, class Prompt>
    requires std::same_as<Backbone, PromptedBert<Cfg, Prompt, T>>
  TokenClassifier(Bert<Cfg, T> bert, Prompt prompt, index_t num_labels, const HeadOptions& o = {})
      : TokenClassifier(Backbone(std::move(bert), std::move(prompt)), num_labels, o) {}

  index_t num_labels() const { return head.num_labels(); }

  /// logits (B, T, K) for input_ids (B, T).
  template <class Batch>
  Var<T, 3> forward(const Batch& batch, const BertRun& run = {}) {
    const BertOutput<T> out =
        heads_detail::run_backbone(backbone, batch.input_ids, batch.attention_mask, batch.token_type_ids, run);
    const Var<T, 3> h = real_token_rows(out.last_hidden_state, batch.input_ids.extent(1), "TokenClassifier");
    return head.forward(h, run.generator ? run.generator : &generator, run.training);
  }

  /// token_classification_loss of the batch (labels (B, T), -100 ignored; padded tokens ignored).
  Var<T, 0> loss(const TokenClassificationBatch& batch, const BertRun& run = {}) {
    if (batch.labels.empty()) throw Error("TokenClassifier::loss: the batch needs labels (B, T)");
    check_label_shape(batch.labels, batch.input_ids.shape(), "TokenClassifier::loss", "labels");
    return token_classification_loss(forward(batch, run), batch.labels, batch.attention_mask);
  }

  template <class V>
  void visit(V&& v) {
    visit_backbone(backbone, v);
    v("classifier", head.classifier);
  }
  std::vector<ParamRef<T>> trainable_parameters() { return deepprompt::trainable_parameters<T>(*this); }

  std::vector<TensorEntry> peft_head_entries() const {
    return tasks::peft_head_entries(head.classifier, "classifier", peft_family(backbone));
  }
  /// The backbone's adapter (task_type TOKEN_CLS) with the head.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) {
    save_backbone_peft(backbone, dir, o, peft_head_entries(), "TOKEN_CLS");
  }
  /// Loads the head of an adapter directory (FormatError when it has none, ShapeError when it
  /// is not (K, C) as this model's).
  void load_peft_head(const std::filesystem::path& dir, bool trainable = true) {
    load_head_into(head.classifier, dir, "classifier", trainable, "TokenClassifier::load_peft_head");
  }
};

template <class B>
TokenClassifier(B, index_t, const HeadOptions& = {}) -> TokenClassifier<B>;
template <class Cfg, class T, class Prompt>
TokenClassifier(Bert<Cfg, T>, Prompt, index_t, const HeadOptions& = {}) -> TokenClassifier<PromptedBert<Cfg, Prompt, T>, T>;

// --- words and sub-tokens -------------------------------------------------------------------------

/// Tokenises pre-split words (HF's is_split_into_words): the words joined by single spaces, with
/// word_ids rewritten to index `words` (each token belongs to the word whose bytes hold its start;
/// -1 for special tokens). A word may give several tokens ("U.N." -> u . n .) or none (only
/// whitespace or removed characters). Truncation follows `opt`.
inline Encoding encode_words(const Tokenizer& tok, std::span<const std::string> words, const EncodeOptions& opt = {}) {
  std::string text;
  std::vector<std::size_t> starts;  // byte where each word starts in `text`
  for (std::size_t w = 0; w < words.size(); ++w) {
    if (w) text += ' ';
    starts.push_back(text.size());
    text += words[w];
  }
  Encoding e = tok.encode(text, opt);
  for (std::size_t t = 0; t < e.size(); ++t) {
    if (e.sequence_ids[t] < 0) {
      e.word_ids[t] = -1;
      continue;
    }
    const std::size_t at = e.offsets[t].begin;  // the last word that starts at or before the token
    const auto it = std::upper_bound(starts.begin(), starts.end(), at);
    e.word_ids[t] = it == starts.begin() ? -1 : static_cast<std::int32_t>(it - starts.begin() - 1);
  }
  return e;
}

/// Token labels for word labels (HF's tokenize_and_align_labels): the first token of each word
/// gets the word's label; the word's other tokens get -100, or the label too when
/// `label_all_tokens`; special and padding tokens (word id -1) get -100. Throws Error when a word
/// id has no label.
inline std::vector<std::int64_t> align_word_labels(const Encoding& e, std::span<const std::int64_t> word_labels,
                                                   bool label_all_tokens = false) {
  std::vector<std::int64_t> out(e.size(), -100);
  std::int32_t previous = -1;
  for (std::size_t t = 0; t < e.size(); ++t) {
    const std::int32_t w = e.word_ids[t];
    if (w < 0) {
      previous = -1;
      continue;
    }
    if (static_cast<std::size_t>(w) >= word_labels.size())
      throw Error(detail::cat("align_word_labels: token ", t, " belongs to word ", w, " but only ",
                              word_labels.size(), " word labels were given"));
    if (w != previous || label_all_tokens) out[t] = word_labels[static_cast<std::size_t>(w)];
    previous = w;
  }
  return out;
}

/// Token labels of several rows padded to `length` tokens with -100: (B, length).
inline Tensor<std::int64_t, 2> label_rows(std::span<const std::vector<std::int64_t>> rows, index_t length) {
  const index_t B = static_cast<index_t>(rows.size());
  Tensor<std::int64_t, 2> out = Tensor<std::int64_t, 2>::full({B, length}, -100);
  for (index_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<std::size_t>(b)];
    if (static_cast<index_t>(r.size()) > length)
      throw ShapeError(detail::cat("label_rows: row ", b, " has ", r.size(), " labels for ", length, " tokens"));
    for (std::size_t t = 0; t < r.size(); ++t) out(b, static_cast<index_t>(t)) = r[t];
  }
  return out;
}

/// One label per word from the token logits of one row (T, K) (T >= the number of word ids; the
/// first word_ids.size() rows are read): the arg-max of each word's first token; -1 for a word
/// with no token (e.g. cut off by truncation).
template <class T>
std::vector<std::int64_t> word_predictions(std::span<const std::int32_t> word_ids, const Tensor<T, 2>& logits,
                                           std::size_t num_words) {
  if (static_cast<index_t>(word_ids.size()) > logits.extent(0))
    throw ShapeError(detail::cat("word_predictions: ", word_ids.size(), " tokens but logits ",
                                 shape_str(logits.shape()), " (T, K)"));
  std::vector<std::int64_t> out(num_words, -1);
  std::int32_t previous = -1;
  for (std::size_t t = 0; t < word_ids.size(); ++t) {
    const std::int32_t w = word_ids[t];
    if (w >= 0 && w != previous) {
      if (static_cast<std::size_t>(w) >= num_words)
        throw Error(detail::cat("word_predictions: token ", t, " belongs to word ", w, " of ", num_words));
      const index_t row = static_cast<index_t>(t);
      index_t best = 0;
      for (index_t k = 1; k < logits.extent(1); ++k)
        if (logits(row, k) > logits(row, best)) best = k;
      if (out[static_cast<std::size_t>(w)] < 0) out[static_cast<std::size_t>(w)] = best;
    }
    previous = w;
  }
  return out;
}

/// Row b of logits (B, T, K) as (T, K) (a copy).
template <class T>
Tensor<T, 2> logits_row(const Tensor<T, 3>& logits, index_t b) {
  Tensor<T, 2> row({logits.extent(1), logits.extent(2)});
  std::copy_n(logits.data() + b * row.size(), row.size(), row.data());
  return row;
}

}  // namespace deepprompt::tasks
