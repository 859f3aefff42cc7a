#pragma once
// Extractive question answering (SQuAD) on a BERT backbone, as Hugging Face's
// BertForQuestionAnswering:
//   logits      = qa_outputs(last_hidden_state)                   (B, T, 2)
//   start, end  = logits[..., 0], logits[..., 1]                   (B, T) each
//   loss        = (CE(start, start_positions) + CE(end, end_positions)) / 2
// where positions are clamped to [0, T] and T is the ignore index (a position outside the
// sequence is ignored; a negative one becomes 0, the [CLS] token). No dropout (HF has none).
// Windows over long contexts, answer positions per window and span decoding: qa_postprocess.hpp.
//
//   tasks::QuestionAnswerer model{std::move(prompted_bert)};
//   auto feats = tasks::make_qa_features(tokenizer, examples, {.max_length = 384, .doc_stride = 128});
//   auto loss  = model.loss(tasks::make_qa_batch(feats_of_batch, pad_id), {.training = true});
#include <cstdint>
#include <filesystem>
#include <utility>
#include <vector>

#include "../../ops/arithmetic.hpp"
#include "../../ops/cross_entropy.hpp"
#include "../../ops/shape.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// One batch of QA windows; positions (B): the answer's first and last token, 0 ([CLS]) when the
/// window does not hold the answer.
struct QuestionAnsweringBatch {
  Tensor<std::int64_t, 2> input_ids{}, attention_mask{}, token_type_ids{};  // (B, T); mask, types may be empty
  Tensor<std::int64_t, 1> start_positions{}, end_positions{};               // (B)
};

/// Start and end logits, (B, T) each.
template <class T>
struct SpanLogits {
  Var<T, 2> start, end;
};

/// Linear(C, 2) on every token: qa_outputs.weight (2, C), qa_outputs.bias (2).
template <class T = float>
struct QuestionAnsweringHead {
  Linear<T> qa_outputs;

  QuestionAnsweringHead() = default;
  QuestionAnsweringHead(index_t hidden, double init_std, std::uint64_t seed) {
    if (hidden < 1) throw Error(detail::cat("QuestionAnsweringHead: hidden (", hidden, ") must be positive"));
    Generator gen(seed);
    qa_outputs = Linear<T>(2, hidden, true, gen, init_std);
  }

  /// hidden (B, T, C) -> start, end (B, T).
  SpanLogits<T> forward(const Var<T, 3>& hidden) const {
    check_shapes(hidden.extent(2) == qa_outputs.in_features() && qa_outputs.out_features() == 2,
                 "QuestionAnsweringHead", "the hidden states (B, T, C) must fit qa_outputs.weight (2, C)",
                 hidden.shape(), qa_outputs.weight.shape());
    const index_t B = hidden.extent(0), L = hidden.extent(1);
    const Var<T, 3> logits = qa_outputs(hidden);  // (B, T, 2)
    return {reshape<2>(slice(logits, 2, 0, 1), Shape<2>{B, L}), reshape<2>(slice(logits, 2, 1, 2), Shape<2>{B, L})};
  }

  template <class V>
  void visit(V&& v) {
    v("qa_outputs", qa_outputs);
  }
};

/// HF's span loss: start, end (B, T); positions (B), clamped to [0, T], T ignored; the mean of the
/// two cross-entropies. A batch whose positions are all ignored gives NaN, as torch.
template <class T>
Var<T, 0> span_loss(const SpanLogits<T>& logits, const Tensor<std::int64_t, 1>& start_positions,
                    const Tensor<std::int64_t, 1>& end_positions) {
  const index_t B = logits.start.extent(0), L = logits.start.extent(1);
  check_shapes(logits.end.shape() == logits.start.shape(), "span_loss", "start and end logits must both be (B, T)",
               logits.start.shape(), logits.end.shape());
  for (const auto* p : {&start_positions, &end_positions})
    check_shapes(!p->empty() && p->extent(0) == B, "span_loss", "positions must be (B) for logits (B, T)", p->shape(),
                 logits.start.shape());
  auto clamped = [&](const Tensor<std::int64_t, 1>& p) {  // (B)
    Tensor<std::int64_t, 1> c({B});
    for (index_t b = 0; b < B; ++b) c(b) = std::clamp<std::int64_t>(p(b), 0, L);
    return c;
  };
  const Var<T, 0> s = cross_entropy(logits.start, clamped(start_positions), L);
  const Var<T, 0> e = cross_entropy(logits.end, clamped(end_positions), L);
  return scale(add(s, e), T(0.5));
}

/// A backbone with the span head (trainable).
template <BertBackbone Backbone, class T = backbone_value_t<Backbone>>
class QuestionAnswerer {
 public:
  using value_type = T;
  Backbone backbone;
  QuestionAnsweringHead<T> head;

  explicit QuestionAnswerer(Backbone b, const HeadOptions& o = {}) : backbone(std::move(b)) {
    const auto r = resolve_head_options(backbone, o, "QuestionAnswerer");
    head = QuestionAnsweringHead<T>(r.hidden, r.init_std, o.seed);
  }
  template <class Cfg, class Prompt>
    requires std::same_as<Backbone, PromptedBert<Cfg, Prompt, T>>
  QuestionAnswerer(Bert<Cfg, T> bert, Prompt prompt, const HeadOptions& o = {})
      : QuestionAnswerer(Backbone(std::move(bert), std::move(prompt)), o) {}

  /// start, end logits (B, T) for input_ids (B, T).
  template <class Batch>
  SpanLogits<T> forward(const Batch& batch, const BertRun& run = {}) {
    const BertOutput<T> out =
        heads_detail::run_backbone(backbone, batch.input_ids, batch.attention_mask, batch.token_type_ids, run);
    return head.forward(real_token_rows(out.last_hidden_state, batch.input_ids.extent(1), "QuestionAnswerer"));
  }

  Var<T, 0> loss(const QuestionAnsweringBatch& batch, const BertRun& run = {}) {
    constexpr const char* who = "QuestionAnswerer::loss";
    if (batch.start_positions.empty() || batch.end_positions.empty())
      throw Error(detail::cat(who, ": the batch needs start_positions and end_positions (B)"));
    check_label_shape(batch.start_positions, batch.input_ids.shape(), who, "start_positions");
    check_label_shape(batch.end_positions, batch.input_ids.shape(), who, "end_positions");
    return span_loss(forward(batch, run), batch.start_positions, batch.end_positions);
  }

  template <class V>
  void visit(V&& v) {
    visit_backbone(backbone, v);
    v("qa_outputs", head.qa_outputs);
  }
  std::vector<ParamRef<T>> trainable_parameters() { return deepprompt::trainable_parameters<T>(*this); }

  std::vector<TensorEntry> peft_head_entries() const {
    return tasks::peft_head_entries(head.qa_outputs, "qa_outputs", peft_family(backbone));
  }
  /// The backbone's adapter (task_type QUESTION_ANS) with qa_outputs under modules_to_save names.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) {
    save_backbone_peft(backbone, dir, o, peft_head_entries(), "QUESTION_ANS");
  }
  /// Loads qa_outputs from an adapter directory (FormatError when absent or mis-shaped).
  void load_peft_head(const std::filesystem::path& dir, bool trainable = true) {
    load_head_into(head.qa_outputs, dir, "qa_outputs", trainable, "QuestionAnswerer::load_peft_head");
  }
};

template <class B>
QuestionAnswerer(B, const HeadOptions& = {}) -> QuestionAnswerer<B>;
template <class Cfg, class T, class Prompt>
QuestionAnswerer(Bert<Cfg, T>, Prompt, const HeadOptions& = {}) -> QuestionAnswerer<PromptedBert<Cfg, Prompt, T>, T>;

}  // namespace deepprompt::tasks
