#pragma once
// Sequence-to-sequence tasks with T5 (data-to-text on WebNLG, summarisation...): a thin wrapper
// over models/t5.hpp (teacher-forced loss with labels) and models/t5_generate.hpp (greedy / beam
// search), optionally with a T5DeepPrompt (backbone frozen), as Hugging Face's
// run_summarization.py + T5ForConditionalGeneration:
//   labels = the target's token ids, padding -> -100 (ignore_pad_token_for_loss); the decoder reads
//   the labels shifted right; loss = mean cross-entropy over labels != -100.
//
//   tasks::Seq2SeqModel model{dp::DynamicT5<>::from_pretrained(dir), prompt};     // T5 frozen
//   auto batch = tasks::encode_seq2seq(tok, sources, targets, {.max_target_length = 128});
//   model.loss(batch, {.training = true}).backward();
//   auto texts = model.generate_text(tok, sources, {}, {.max_new_tokens = 64, .num_beams = 4});
//
// Inputs are strings (input linearisation, e.g. of WebNLG triples, is the data reader's job).
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../../models/t5_generate.hpp"
#include "../../peft/deep_prompt_t5.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// Source ids (B, Ts) with their 0/1 mask, and labels (B, S) with -100 where no target token is.
struct Seq2SeqBatch {
  Tensor<std::int64_t, 2> input_ids{}, attention_mask{};  // (B, Ts)
  Tensor<std::int64_t, 2> labels{};                       // (B, S); empty: no loss (generation only)
};

struct Seq2SeqEncodeOptions {
  std::size_t max_source_length = 512;     // tokens, </s> included (0: no limit)
  std::size_t max_target_length = 128;
  std::string source_prefix{};             // e.g. "translate English to German: "
  bool ignore_pad_token_for_loss = true;   // pad ids inside the targets -> -100 too
};

/// Tokenises sources (with the prefix) and, when given, targets (as many), each truncated and
/// padded to the longest of the batch: input_ids with the pad id, labels with -100.
inline Seq2SeqBatch encode_seq2seq(const Tokenizer& tok, std::span<const std::string> sources,
                                   std::span<const std::string> targets = {}, const Seq2SeqEncodeOptions& o = {}) {
  if (sources.empty()) throw Error("encode_seq2seq: no sources");
  if (!targets.empty() && targets.size() != sources.size())
    throw ShapeError(detail::cat("encode_seq2seq: ", sources.size(), " sources but ", targets.size(), " targets"));
  const std::int64_t pad = pad_id_of(tok);
  std::vector<Encoding> src;
  for (const auto& s : sources) src.push_back(tok.encode(o.source_prefix + s, {.max_length = o.max_source_length}));
  const EncodedBatch e = pad_encodings(src, pad);
  Seq2SeqBatch out{e.input_ids, e.attention_mask, {}};
  if (targets.empty()) return out;
  std::vector<Encoding> tgt;
  std::size_t S = 1;
  for (const auto& t : targets) {
    tgt.push_back(tok.encode(t, {.max_length = o.max_target_length}));
    S = std::max(S, tgt.back().size());
  }
  const index_t B = static_cast<index_t>(targets.size());
  out.labels = Tensor<std::int64_t, 2>::full({B, static_cast<index_t>(S)}, -100);
  for (index_t b = 0; b < B; ++b) {
    const auto& ids = tgt[static_cast<std::size_t>(b)].ids;
    for (std::size_t t = 0; t < ids.size(); ++t)
      out.labels(b, static_cast<index_t>(t)) = o.ignore_pad_token_for_loss && ids[t] == pad ? -100 : ids[t];
  }
  return out;
}

/// Per-call settings: dropout (T5's train()/eval() mode is set from `training`), and the stream of
/// the prompt's dropout (nullptr: its own).
struct Seq2SeqRun {
  bool training = false;
  Generator* generator = nullptr;
};

/// No prompt: full fine-tuning of T5.
struct NoT5Prompt {
  template <class V>
  void visit(V&&) {}
};

/// A T5 (T5<Spec, T>) with an optional deep prompt (T5DeepPrompt). With a prompt the T5 is frozen
/// by default and the prompt alone trains; without one every T5 parameter trains.
template <class Model, class Prompt = NoT5Prompt>
class Seq2SeqModel {
 public:
  using value_type = typename Model::value_type;
  using T = value_type;
  Model t5;
  Prompt prompt;

  explicit Seq2SeqModel(Model m)
    requires std::same_as<Prompt, NoT5Prompt>
      : t5(std::move(m)) {}
  Seq2SeqModel(Model m, Prompt p, bool freeze_backbone = true) : t5(std::move(m)), prompt(std::move(p)) {
    if constexpr (!std::same_as<Prompt, NoT5Prompt>) attach(t5, prompt);
    if (freeze_backbone && !std::same_as<Prompt, NoT5Prompt>) freeze(t5);
  }

  /// Logits (B, S, V) and, with labels, the loss. requires labels (B, S) (the decoder reads them
  /// shifted right).
  T5Output<T> forward(const Seq2SeqBatch& batch, const Seq2SeqRun& run = {}) {
    if (batch.labels.empty()) throw Error("Seq2SeqModel::forward: the batch needs labels (B, S)");
    check_shapes(batch.labels.extent(0) == batch.input_ids.extent(0), "Seq2SeqModel::forward",
                 "labels (B, S) must have input_ids' batch size (B, Ts)", batch.labels.shape(),
                 batch.input_ids.shape());
    t5.train(run.training);
    const T5Batch b{.input_ids = batch.input_ids, .attention_mask = batch.attention_mask, .labels = batch.labels};
    if constexpr (std::same_as<Prompt, NoT5Prompt>)
      return t5.forward(b);
    else
      return forward_with_prompt(t5, prompt, b, run.generator);
  }

  /// The teacher-forced loss (mean over labels != -100).
  Var<T, 0> loss(const Seq2SeqBatch& batch, const Seq2SeqRun& run = {}) { return *forward(batch, run).loss; }

  /// Generated ids (B, L) (decoder start token first) in eval mode (the mode is restored), with the
  /// prompt's keys and values as constants.
  Tensor<std::int64_t, 2> generate(const Tensor<std::int64_t, 2>& input_ids,
                                   const Tensor<std::int64_t, 2>& attention_mask, const T5GenerateOptions& g = {}) {
    const bool was = t5.training();
    t5.eval();
    Tensor<std::int64_t, 2> ids;
    if constexpr (std::same_as<Prompt, NoT5Prompt>) {
      ids = deepprompt::generate(t5, input_ids, attention_mask, g);
    } else {
      const T5Prefix<T> p = prompt.freeze_constants();
      ids = deepprompt::generate(t5, input_ids, attention_mask, g, &p);
    }
    t5.train(was);
    return ids;
  }

  /// The generated text of each source (special tokens dropped), tokenised as encode_seq2seq does.
  std::vector<std::string> generate_text(const Tokenizer& tok, std::span<const std::string> sources,
                                         const Seq2SeqEncodeOptions& o = {}, const T5GenerateOptions& g = {}) {
    const Seq2SeqBatch b = encode_seq2seq(tok, sources, {}, o);
    const Tensor<std::int64_t, 2> ids = generate(b.input_ids, b.attention_mask, g);
    std::vector<std::string> out;
    for (index_t r = 0; r < ids.extent(0); ++r) {
      std::vector<std::int32_t> row;
      for (index_t t = 0; t < ids.extent(1); ++t) row.push_back(static_cast<std::int32_t>(ids(r, t)));
      out.push_back(tok.decode(row, true));
    }
    return out;
  }

  /// T5's Hugging Face names (shared.weight, encoder.block.0...), then prompt.* when there is one.
  template <class V>
  void visit(V&& v) {
    t5.visit(v);
    if constexpr (!std::same_as<Prompt, NoT5Prompt>) v("prompt", prompt);
  }
  std::vector<ParamRef<T>> trainable_parameters() { return deepprompt::trainable_parameters<T>(*this); }
};

template <class Model>
Seq2SeqModel(Model) -> Seq2SeqModel<Model>;
template <class Model, class Prompt>
Seq2SeqModel(Model, Prompt, bool = true) -> Seq2SeqModel<Model, Prompt>;

}  // namespace deepprompt::tasks
