#pragma once
// Deep prompts on T5: separate, individually optional prefixes for encoder self-attention,
// decoder self-attention and cross-attention (PEFT gives the encoder none; here each is a choice).
//
//   using Cfg = dp::T5Small;
//   dp::T5DeepPrompt<Cfg::num_layers, 20, Cfg::inner> prompt({.encoder = true, .decoder = true, .cross = false});
//   dp::attach(t5, prompt);                                        // sizes checked (compile time when static)
//   auto out = dp::forward_with_prompt(t5, prompt, batch);         // T5::forward with prompt.prefixes()
//
// Each part is a DeepPrompt<Layers, Tokens, Hidden> (PEFT's row layout, options, projection,
// fold(), prefix dropout) whose Hidden is T5's attention width num_heads * d_kv (d_model for the
// standard checkpoints). Layers is the encoder's layer count for the encoder part and the
// decoder's for the two decoder parts: a static T5DeepPrompt needs a model with as many decoder
// as encoder layers (every released T5); an asymmetric one takes the dynamic form.
//
// Positions: T5 has no absolute positions and models/t5.hpp gives the prefix keys no relative
// position bias (they are always visible); DeepPromptOptions::shift_positions is not used.
// Hugging Face T5 with past_key_values would instead shift the decoder queries' relative
// positions by P (see models/t5.hpp), so PEFT's seq2seq prefix tuning has no exact counterpart.
#include <optional>
#include <utility>

#include "../models/t5.hpp"
#include "deep_prompt.hpp"

namespace deepprompt {

/// Which attention kinds get a prompt.
struct T5PromptParts {
  bool encoder = true;  // encoder self-attention
  bool decoder = true;  // decoder self-attention
  bool cross = true;    // decoder cross-attention
};

template <index_t Layers, index_t Tokens, index_t Hidden, class T = float>
class T5DeepPrompt {
 public:
  using value_type = T;
  using Part = DeepPrompt<Layers, Tokens, Hidden, T>;
  static constexpr index_t static_layers = Layers, static_tokens = Tokens, static_hidden = Hidden;

  std::optional<Part> encoder, decoder, cross;

  /// Static sizes. Each part is initialised from its own seed (options.seed, + 1, + 2).
  explicit T5DeepPrompt(T5PromptParts which = {}, const DeepPromptOptions& o = {})
    requires Part::is_static
      : T5DeepPrompt(PromptSizes{}, which, o) {}
  /// Run-time sizes for the dynamic extents (as DeepPrompt). Throws Error when no part is chosen.
  explicit T5DeepPrompt(PromptSizes s, T5PromptParts which = {}, const DeepPromptOptions& o = {}) {
    if (!which.encoder && !which.decoder && !which.cross)
      throw Error("T5DeepPrompt: choose at least one of encoder, decoder and cross-attention prompts");
    auto make = [&](bool on, std::uint64_t k, std::optional<Part>& part) {
      if (!on) return;
      DeepPromptOptions po = o;
      po.seed = o.seed + k;
      part.emplace(s, po);
    };
    make(which.encoder, 0, encoder);
    make(which.decoder, 1, decoder);
    make(which.cross, 2, cross);
  }
  /// From three prompts (any of them absent).
  T5DeepPrompt(std::optional<Part> enc, std::optional<Part> dec, std::optional<Part> crs)
      : encoder(std::move(enc)), decoder(std::move(dec)), cross(std::move(crs)) {}

  bool shift_positions() const { return false; }

  /// The parts' per-layer prefixes as T5Prefix (an absent part: an empty vector).
  T5Prefix<T> prefixes(const PromptRun& run = {}) {
    T5Prefix<T> p;
    if (encoder) p.encoder = encoder->prefixes(run);
    if (decoder) p.decoder = decoder->prefixes(run);
    if (cross) p.cross = cross->prefixes(run);
    return p;
  }

  /// Every part's keys and values as constants (no tape, projections evaluated, no dropout).
  T5Prefix<T> freeze_constants() const {
    T5Prefix<T> p;
    if (encoder) p.encoder = encoder->freeze_constants().layers;
    if (decoder) p.decoder = decoder->freeze_constants().layers;
    if (cross) p.cross = cross->freeze_constants().layers;
    return p;
  }

  /// fold() of every part.
  void fold() {
    for (auto* part : {&encoder, &decoder, &cross})
      if (*part) (*part)->fold();
  }

  template <class V>
  void visit(V&& v) {
    v("encoder", encoder);
    v("decoder", decoder);
    v("cross", cross);
  }
};

template <class T = float>
using DynamicT5DeepPrompt = T5DeepPrompt<dynamic, dynamic, dynamic, T>;

namespace peft_detail {
template <index_t PromptLayers, index_t ModelDecoderLayers>
struct PromptLayersMatchDecoder {
  static_assert(PromptLayers == ModelDecoderLayers,
                "T5DeepPrompt<Layers, Tokens, Hidden>: Layers differs from the model's number of decoder layers "
                "(the compiler's note shows prompt Layers == num_decoder_layers; use the dynamic form for a model "
                "whose encoder and decoder depths differ)");
  static constexpr bool value = true;
};
}  // namespace peft_detail

/// Checks the prompt's parts against the T5 (encoder part: num_layers; decoder and cross parts:
/// num_decoder_layers; every part: Hidden == num_heads * d_kv), at compile time when both are
/// static, and gives every part the model's number of heads.
template <class Cfg, class T, index_t Layers, index_t Tokens, index_t Hidden>
void attach(const T5<Cfg, T>& t5, T5DeepPrompt<Layers, Tokens, Hidden, T>& prompt) {
  if constexpr (!Cfg::dynamic) {
    static_assert(peft_detail::static_check<T5DeepPrompt<Layers, Tokens, Hidden, T>, Cfg::num_layers, Cfg::inner>());
    if constexpr (Layers != dynamic) static_assert(peft_detail::PromptLayersMatchDecoder<Layers, Cfg::num_decoder_layers>::value);
  }
  const T5Dims& d = t5.dims();
  auto one = [&](auto& part, index_t layers, const char* model) {
    if (!part) return;
    peft_detail::check_fits(part->layers(), part->hidden(), layers, d.inner(), model);
    part->set_heads(d.num_heads);
  };
  one(prompt.encoder, d.num_layers, "T5 encoder");
  one(prompt.decoder, d.num_decoder_layers, "T5 decoder");
  one(prompt.cross, d.num_decoder_layers, "T5 decoder (cross-attention)");
}

/// T5::forward with the prompt's prefixes. The model's train() flag drives the prompt's dropout;
/// `generator` (nullptr: each part's own) its stream.
template <class Cfg, class T, index_t Layers, index_t Tokens, index_t Hidden>
T5Output<T> forward_with_prompt(T5<Cfg, T>& t5, T5DeepPrompt<Layers, Tokens, Hidden, T>& prompt, const T5Batch& batch,
                                Generator* generator = nullptr) {
  attach(t5, prompt);
  const T5Prefix<T> p = prompt.prefixes({t5.training(), batch.input_ids.extent(0), generator});
  return t5.forward(batch, &p);
}

}  // namespace deepprompt
