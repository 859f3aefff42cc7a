#pragma once
// Deep prompts on BERT: attaching a prompt to a model (sizes checked at compile time where both
// are static), the forward pass with a prompt, the owning wrapper PromptedBert, the hidden-state
// form of the deep prompt (HiddenPrompt), and multi-task serving.
//
//   using Cfg = dp::BertBase;
//   auto model = dp::PromptedBert{dp::Bert<Cfg>::from_pretrained(dir), dp::DeepPrompt<Cfg::layers, 20, Cfg::hidden>{}};
//   auto out = model.forward(ids, mask, types, {.training = true});      // the backbone is frozen
//
//   dp::DeepPrompt<6, 20, 768> p;  dp::attach(bert_base, p);   // compile error: Layers (6) differs from 12
//
// Prompts are anything with layers(), hidden(), shift_positions() and prefixes(PromptRun)
// (DeepPrompt, SelectiveDeepPrompt, PromptConstants) or prefixes(model) (HiddenPrompt).
//
// Hidden-state form (the seed's formulation): per layer, Tokens trainable hidden vectors P_l are
// put in front of the layer's input and their outputs dropped. Every sub-layer but attention
// acts per token, so P_l reaches the real tokens only through its keys and values
// K = P_l Wk^T + bk, V = P_l Wv^T + bv (the layer's own frozen projections): the prefix path,
// with no feed-forward on prompt rows. The literal computation numbers the real tokens from 0,
// so HiddenPrompt does not shift positions by default.
//
// Multi-task serving: forward_multi_task(bert, multi_task_prefix(...), ids, mask, types). Rows
// of one batch may have prompts of different lengths; Bert::forward applies one position shift
// (layer 0's prefix length) to the whole batch, so this function runs the same layers itself
// (the model's public parts: embeddings, encoder.layer[l].forward, pooler) with a position
// offset per row and a mask per layer that hides each row's padded prefix positions. Its output
// equals running each row alone through Bert::forward with its own prompt.
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "../models/bert.hpp"
#include "deep_prompt.hpp"
#include "serving.hpp"

namespace deepprompt {

// --- attaching -----------------------------------------------------------------------------------

/// Checks that `prompt` fits `bert` (layer count and hidden size: at compile time when both are
/// static, otherwise ShapeError naming both) and gives the prompt the model's number of heads.
template <class Cfg, class T, class Dev, class Prompt>
void attach(const Bert<Cfg, T, Dev>& bert, Prompt& prompt) {
  using P = std::remove_cvref_t<Prompt>;
  static_assert(std::is_same_v<typename P::value_type, T>,
                "attach: the prompt's element type (DeepPrompt<..., T>) differs from the model's (Bert<Cfg, T>)");
  static_assert(std::is_same_v<model_device_t<P>, Dev>,
                "attach: the prompt's device (DeepPrompt<..., T, Dev>) differs from the model's (Bert<Cfg, T, Dev>)");
  if constexpr (Cfg::is_static) static_assert(peft_detail::static_check<P, Cfg::layers, Cfg::hidden>());
  if constexpr (requires { prompt.hidden(); }) {
    peft_detail::check_fits(prompt.layers(), prompt.hidden(), bert.cfg.layers, bert.cfg.hidden, "BERT model");
  } else if (prompt.num_layers() != bert.cfg.layers) {  // PromptConstants: (H, P, D) checked by the attention
    throw ShapeError(detail::cat("DeepPrompt: the prompt constants have ", prompt.num_layers(),
                                 " layers but the BERT model has ", bert.cfg.layers));
  }
  if constexpr (requires { prompt.set_heads(index_t{}); }) prompt.set_heads(bert.cfg.heads);
}

/// Bert::forward with the prompt's per-layer prefixes (and its position-shift setting). The run's
/// training flag and generator also drive the prompt's dropout.
template <class Cfg, class T, class Dev, class Prompt>
BertOutput<T, Dev> forward_with_prompt(Bert<Cfg, T, Dev>& bert, Prompt& prompt, const Tensor<std::int64_t, 2>& input_ids,
                                  const Tensor<std::int64_t, 2>& attention_mask = {},
                                  const Tensor<std::int64_t, 2>& token_type_ids = {}, BertRun run = {}) {
  attach(bert, prompt);
  run.shift_positions = prompt.shift_positions();
  if constexpr (requires { prompt.prefixes(bert); }) {
    return bert.forward(input_ids, attention_mask, token_type_ids, run, prompt.prefixes(bert));
  } else {
    const PromptRun pr{run.training, input_ids.extent(0), run.generator};
    return bert.forward(input_ids, attention_mask, token_type_ids, run, prompt.prefixes(pr));
  }
}

/// A BERT backbone with its prompt, owned together. The constructor checks that they fit
/// (a compile error for static sizes that differ) and, by default, freezes the backbone
/// (pooler included): only the prompt trains. The device is the prompt's (DeepPrompt<..., T,
/// Dev>): Bert<Cfg, T, Dev> and the prompt live on it together.
template <class Cfg, class Prompt, class T = typename Prompt::value_type>
class PromptedBert {
 public:
  using value_type = T;
  using device_type = model_device_t<Prompt>;
  Bert<Cfg, T, device_type> bert;
  Prompt prompt;

  PromptedBert(Bert<Cfg, T, device_type> backbone, Prompt p, bool freeze_backbone = true)
      : bert(std::move(backbone)), prompt(std::move(p)) {
    attach(bert, prompt);
    if (freeze_backbone) freeze(bert);
  }

  /// See Bert::forward; the prompt's prefixes are added.
  BertOutput<T, device_type> forward(const Tensor<std::int64_t, 2>& input_ids, const Tensor<std::int64_t, 2>& attention_mask = {},
                        const Tensor<std::int64_t, 2>& token_type_ids = {}, const BertRun& run = {}) {
    return forward_with_prompt(bert, prompt, input_ids, attention_mask, token_type_ids, run);
  }

  /// The prompt's per-layer constants, for serving (needs no tape).
  PromptConstants<T, device_type> freeze_constants() const {
    if constexpr (requires { prompt.freeze_constants(bert); })
      return prompt.freeze_constants(bert);
    else
      return prompt.freeze_constants();
  }

  template <class V>
  void visit(V&& v) {
    v("bert", bert);
    v("prompt", prompt);
  }
};

template <class Cfg, class T, class Dev, class Prompt>
PromptedBert(Bert<Cfg, T, Dev>, Prompt, bool = true) -> PromptedBert<Cfg, Prompt, T>;

// --- the hidden-state form -------------------------------------------------------------------------

struct HiddenPromptOptions {
  PromptInit init = PromptInit::normal;
  double init_std = 1.0;     // hidden states after BERT's LayerNorms have about unit scale
  double init_range = 0.5;
  std::uint64_t seed = 0;
  bool shift_positions = false;  // the literal "prepend hidden vectors" keeps positions 0..T-1
};

/// Per layer `Tokens` trainable hidden vectors prepended to the layer's input, outputs dropped;
/// computed as the key/value prefix they induce (see the top of this header). One parameter
/// `prompt` (Layers, Tokens, Hidden). Extents may be `dynamic`.
template <index_t Layers, index_t Tokens, index_t Hidden, class T = float>
class HiddenPrompt {
  static_assert(Layers == dynamic || Layers > 0, "HiddenPrompt<Layers, Tokens, Hidden>: Layers must be positive (or dynamic)");
  static_assert(Tokens == dynamic || Tokens > 0, "HiddenPrompt<Layers, Tokens, Hidden>: Tokens must be positive (or dynamic)");
  static_assert(Hidden == dynamic || Hidden > 0, "HiddenPrompt<Layers, Tokens, Hidden>: Hidden must be positive (or dynamic)");

 public:
  using value_type = T;
  static constexpr index_t static_layers = Layers, static_tokens = Tokens, static_hidden = Hidden;
  static constexpr bool is_static = Layers != dynamic && Tokens != dynamic && Hidden != dynamic;

  Parameter<T, 3> prompt;  // (Layers, Tokens, Hidden)

  explicit HiddenPrompt(const HiddenPromptOptions& o = {})
    requires is_static
      : HiddenPrompt(PromptSizes{}, o) {}
  explicit HiddenPrompt(PromptSizes s, const HiddenPromptOptions& o = {}) : opt_(o) {
    s = peft_detail::resolve_sizes(s, Layers, Tokens, Hidden, peft_detail::extents_name("HiddenPrompt", Layers, Tokens, Hidden));
    prompt = Parameter<T, 3>("prompt", Tensor<T, 3>({s.layers, s.tokens, s.hidden}));
    DeepPromptOptions init;
    init.init = o.init, init.init_std = o.init_std, init.init_range = o.init_range;
    Generator gen(o.seed);
    peft_detail::init_prompt(prompt.value(), init, gen);
  }

  index_t layers() const { return prompt.shape()[0]; }
  index_t tokens() const { return prompt.shape()[1]; }
  index_t hidden() const { return prompt.shape()[2]; }
  bool shift_positions() const { return opt_.shift_positions; }
  void set_shift_positions(bool on) { opt_.shift_positions = on; }

  /// Layer l's hidden vectors P_l (Tokens, Hidden) (a view; differentiable).
  Var<T, 2> hidden_rows(index_t l) const {
    return reshape<2>(slice(prompt.var(), 0, l, l + 1), Shape<2>{tokens(), hidden()});
  }

  /// Layer l's prefix: K = P_l Wk^T + bk, V = P_l Wv^T + bv with the layer's own projections.
  template <class Cfg>
  std::vector<KVPrefix<T>> prefixes(const Bert<Cfg, T>& bert) const {
    peft_detail::check_fits(layers(), hidden(), bert.cfg.layers, bert.cfg.hidden, "BERT model");
    std::vector<KVPrefix<T>> out;
    out.reserve(static_cast<std::size_t>(layers()));
    for (index_t l = 0; l < layers(); ++l)
      out.push_back(bert.encoder.layer[static_cast<std::size_t>(l)].attention.self_attention.prefix_from_hidden(
          hidden_rows(l)));
    return out;
  }

  /// The prefixes as constants (no tape): the keys and values of the current prompt.
  template <class Cfg>
  PromptConstants<T> freeze_constants(const Bert<Cfg, T>& bert) const {
    NoGradGuard no_grad;
    PromptConstants<T> c;
    c.layers = prefixes(bert);
    c.shift = opt_.shift_positions;
    return c;
  }

  template <class V>
  void visit(V&& v) {
    v("prompt", prompt);
  }

 private:
  HiddenPromptOptions opt_;
};

// --- multi-task serving -------------------------------------------------------------------------

/// The BERT forward pass of a multi-task batch (see the top of this header and peft/serving.hpp):
/// input_ids (B, T); attention_mask (B, T) of 0/1 or empty; token_type_ids (B, T) or empty.
/// Row b's real tokens are numbered from mt.position_offset[b]. Dropout follows `run`
/// (run.shift_positions is not used: the offsets are per row).
template <class Cfg, class T>
BertOutput<T> forward_multi_task(Bert<Cfg, T>& bert, const MultiTaskPrefix<T>& mt,
                                 const Tensor<std::int64_t, 2>& input_ids,
                                 const Tensor<std::int64_t, 2>& attention_mask = {},
                                 const Tensor<std::int64_t, 2>& token_type_ids = {}, const BertRun& run = {}) {
  constexpr const char* op = "forward_multi_task";
  const index_t B = input_ids.extent(0), L = input_ids.extent(1);
  if (input_ids.empty() || B < 1 || L < 1)
    throw ShapeError(detail::cat(op, ": input_ids must be (B, T) with B, T >= 1; got ", shape_str(input_ids.shape())));
  if (mt.batch() != B)
    throw ShapeError(detail::cat(op, ": the multi-task prefix was built for ", mt.batch(), " rows, input_ids has ", B));
  if (mt.num_layers() != bert.cfg.layers)
    throw ShapeError(detail::cat(op, ": the multi-task prefix has ", mt.num_layers(), " layers, the model ",
                                 bert.cfg.layers));
  if (!attention_mask.empty())
    check_shapes(attention_mask.shape() == input_ids.shape(), op, "attention_mask must be (B, T) as input_ids",
                 attention_mask.shape(), input_ids.shape());
  const Tensor<std::int64_t, 2> types =
      token_type_ids.empty() ? Tensor<std::int64_t, 2>::zeros({B, L}) : token_type_ids;
  check_shapes(types.shape() == input_ids.shape(), op, "token_type_ids must be (B, T) as input_ids", types.shape(),
               input_ids.shape());
  Tensor<std::int64_t, 2> positions({B, L});  // (B, T): row b from its own offset
  for (index_t b = 0; b < B; ++b) {
    const index_t off = mt.position_offset[static_cast<std::size_t>(b)];
    if (off + L > bert.cfg.max_positions)
      throw ShapeError(detail::cat(op, ": row ", b, " needs positions up to ", off + L, " (", L,
                                   " tokens after a prefix of ", off, ") but max_position_embeddings = ",
                                   bert.cfg.max_positions));
    for (index_t t = 0; t < L; ++t) positions(b, t) = off + t;
  }
  Generator* gen = run.generator ? run.generator : &bert.generator;

  // As BertEmbeddings::forward: (word + type) + position, LayerNorm, dropout.
  const auto& e = bert.embeddings;
  Var<T, 3> x = add(e.word_embeddings(input_ids), e.token_type_embeddings(types));
  x = add(x, e.position_embeddings(positions));
  x = e.dropout.forward(e.norm(x), gen, run.training);

  for (index_t l = 0; l < bert.cfg.layers; ++l) {
    const auto& pm = mt.prefix_mask[static_cast<std::size_t>(l)];
    const index_t P = pm.empty() ? 0 : pm.extent(1);
    Tensor<std::int64_t, 2> m01({B, P + L});  // 0/1 over the prefix and the real keys
    for (index_t b = 0; b < B; ++b) {
      for (index_t j = 0; j < P; ++j) m01(b, j) = pm(b, j);
      for (index_t t = 0; t < L; ++t) m01(b, P + t) = attention_mask.empty() ? 1 : attention_mask(b, t);
    }
    x = bert.encoder.layer[static_cast<std::size_t>(l)].forward(x, deepprompt::attention_mask<T>(m01),
                                                               mt.layers[static_cast<std::size_t>(l)], gen,
                                                               run.training);
  }
  BertOutput<T> out;
  out.last_hidden_state = x;
  if (bert.pooler) out.pooler_output = bert.pooler->forward(x);
  return out;
}

}  // namespace deepprompt
