#pragma once
// Prefix Tuning (Li & Liang 2021; PEFT's PREFIX_TUNING with prefix_projection): the deep
// key/value prefix of DeepPrompt, reparameterised by default.
//
//   auto prompt = dp::PrefixTuning<Cfg::layers, 20, Cfg::hidden>{};   // projection width 512
//   auto model  = dp::PromptedBert{std::move(bert), std::move(prompt)};
//   model.prompt.save_peft(dir);   // PREFIX_TUNING, prefix_projection true, encoder_hidden_size 512
//
// PrefixTuning is a DeepPrompt (same parameters, files and serving) whose options default to
// the reparameterisation Embedding(Tokens, Hidden) -> Linear(Hidden, 512) -> tanh ->
// Linear(512, 2 * Layers * Hidden): Li & Liang's and THUDM's width 512 (PEFT's
// PrefixTuningConfig leaves prefix_projection off by default; encoder_hidden_size is the width).
// DeepPromptOptions::projection, when set, chooses another width; a plain (unprojected) prefix
// is DeepPrompt itself (P-Tuning v2).
#include "deep_prompt.hpp"

namespace deepprompt {

/// The reparameterisation width of Prefix Tuning by default (Li & Liang, THUDM).
inline constexpr index_t prefix_tuning_default_projection = 512;

/// `o` with projection = 512 unless it sets a width.
inline DeepPromptOptions prefix_tuning_options(DeepPromptOptions o = {}) {
  if (o.projection == 0) o.projection = prefix_tuning_default_projection;
  return o;
}

template <index_t Layers, index_t Tokens, index_t Hidden, class T = float>
class PrefixTuning : public DeepPrompt<Layers, Tokens, Hidden, T> {
  using Base = DeepPrompt<Layers, Tokens, Hidden, T>;

 public:
  explicit PrefixTuning(const DeepPromptOptions& o = {})
    requires Base::is_static
      : Base(prefix_tuning_options(o)) {}
  explicit PrefixTuning(PromptSizes s, const DeepPromptOptions& o = {}) : Base(s, prefix_tuning_options(o)) {}
};

/// A PrefixTuning whose sizes are all known only at run time.
template <class T = float>
using DynamicPrefixTuning = PrefixTuning<dynamic, dynamic, dynamic, T>;

}  // namespace deepprompt
