#pragma once
// Input-layer prompts (Prompt Tuning, P-Tuning v1) on BERT, through the same API as the deep
// prompts of peft/deep_prompt_bert.hpp: attach(), forward_with_prompt() and PromptedBert accept
// any prompt with input_embeddings(PromptRun) -> (P, C) (PromptTuning, PTuningV1).
//
//   auto model = dp::PromptedBert{dp::Bert<Cfg>::from_pretrained(dir), dp::PromptTuning<20, Cfg::hidden>{}};
//   auto out   = model.forward(ids, mask, types, {.training = true});   // the backbone is frozen
//   out.last_hidden_state;   // (B, 20 + T, C): the virtual tokens' rows first, as PEFT returns
//   out.pooler_output;       // pooled from position 0, the first virtual token, as PEFT + HF do
//
// The computation is PEFT's PeftModel forward for PROMPT_TUNING / P_TUNING
// (Bert::forward_with_input_prompt): inputs_embeds = cat(prompt, word_embeddings(ids)), the
// mask prefixed with P ones, token_type_ids with P zeros, positions 0 .. P + T - 1 (PEFT drops
// position_ids). These overloads are more constrained than deep_prompt_bert.hpp's, so overload
// resolution picks them for input prompts.
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "../models/bert.hpp"
#include "deep_prompt_bert.hpp"
#include "prompt_tuning.hpp"

namespace deepprompt {

/// A prompt for the input layer: P vectors of the model's width.
template <class P>
concept InputPromptLike = requires(P& p, const PromptRun& r) {
  typename P::value_type;
  { p.input_embeddings(r) } -> std::convertible_to<Var<typename P::value_type, 2>>;
  { p.tokens() } -> std::convertible_to<index_t>;
  { p.hidden() } -> std::convertible_to<index_t>;
  p.set_model(index_t{}, index_t{});
};

namespace input_prompt_detail {
template <index_t PromptHidden, index_t ModelHidden>
struct InputPromptHiddenMatchesModel {
  static_assert(PromptHidden == ModelHidden,
                "PromptTuning / PTuningV1 <Tokens, Hidden>: Hidden differs from the model's hidden size (the "
                "compiler's note shows prompt Hidden == model hidden size)");
  static constexpr bool value = true;
};
}  // namespace input_prompt_detail

/// Checks that an input prompt fits `bert` (its width: at compile time when both are static,
/// otherwise ShapeError naming both) and records the model's layer and head counts (PEFT's
/// config has them).
template <class Cfg, class T, InputPromptLike Prompt>
void attach(const Bert<Cfg, T>& bert, Prompt& prompt) {
  using P = std::remove_cvref_t<Prompt>;
  static_assert(std::is_same_v<typename P::value_type, T>,
                "attach: the prompt's element type differs from the model's (Bert<Cfg, T>)");
  if constexpr (Cfg::is_static && requires { P::static_hidden; }) {
    if constexpr (P::static_hidden != dynamic)
      static_assert(input_prompt_detail::InputPromptHiddenMatchesModel<P::static_hidden, Cfg::hidden>::value);
  }
  if (prompt.hidden() != bert.cfg.hidden)
    throw ShapeError(detail::cat("attach: the input prompt's width is ", prompt.hidden(), " but the BERT model's is ",
                                 bert.cfg.hidden));
  prompt.set_model(bert.cfg.layers, bert.cfg.heads);
}

/// Bert::forward_with_input_prompt with the prompt's rows (see the top). The run's training
/// flag and generator also drive the prompt encoder's dropout.
template <class Cfg, class T, InputPromptLike Prompt>
BertOutput<T> forward_with_prompt(Bert<Cfg, T>& bert, Prompt& prompt, const Tensor<std::int64_t, 2>& input_ids,
                                  const Tensor<std::int64_t, 2>& attention_mask = {},
                                  const Tensor<std::int64_t, 2>& token_type_ids = {}, BertRun run = {}) {
  attach(bert, prompt);
  const PromptRun pr{run.training, input_ids.extent(0), run.generator};
  return bert.forward_with_input_prompt(prompt.input_embeddings(pr), input_ids, attention_mask, token_type_ids, run);
}

}  // namespace deepprompt
