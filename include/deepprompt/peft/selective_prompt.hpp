#pragma once
// Depth selection ("dynamic deep prompt"): prompts on a chosen subset of layers, each layer with
// its own length; the other layers get no prefix.
//
//   dp::SelectiveDeepPrompt<float> prompt(12, 768, {{0, 16}, {5, 8}, {11, 32}});  // (layer, tokens)
//   auto out = dp::forward_with_prompt(bert, prompt, ids, mask);                  // deep_prompt_bert.hpp
//
// One parameter per selected layer, `layer.<l>.prompt_embeddings` (tokens_l, 2 * Hidden), each
// row ordered (key/value, head, head_dim) as one layer's slice of PEFT's rows. Options as
// DeepPrompt's (init, seed, prefix dropout per example, position shift); no reparameterisation.
// Position shift: as Hugging Face, the real tokens' positions start at layer 0's prefix length
// (0 when layer 0 has no prompt).
#include <algorithm>
#include <vector>

#include "deep_prompt.hpp"

namespace deepprompt {

/// A prompt of `tokens` key/value pairs on layer `layer`.
struct PromptLayer {
  index_t layer = 0;
  index_t tokens = 0;
};

template <class T = float>
class SelectiveDeepPrompt {
 public:
  using value_type = T;

  std::vector<Parameter<T, 2>> prompts;  // per selected layer, in selection() order: (tokens, 2 * Hidden)
  Generator generator;                   // prefix dropout's default stream

  /// A model of `model_layers` layers and hidden size `hidden`; `which`: distinct layers in
  /// [0, model_layers), each with tokens >= 1 (sorted by layer here). Throws ShapeError.
  SelectiveDeepPrompt(index_t model_layers, index_t hidden, std::vector<PromptLayer> which,
                      const DeepPromptOptions& o = {})
      : generator(o.seed + 1), layers_(model_layers), hidden_(hidden), which_(std::move(which)), opt_(o) {
    if (layers_ <= 0 || hidden_ <= 0)
      throw ShapeError(detail::cat("SelectiveDeepPrompt: layers (", layers_, ") and hidden (", hidden_,
                                   ") must be positive"));
    if (opt_.projection != 0)
      throw Error("SelectiveDeepPrompt: no reparameterisation (use DeepPrompt with DeepPromptOptions::projection)");
    if (!(opt_.prefix_dropout >= 0.0 && opt_.prefix_dropout <= 1.0))
      throw Error(detail::cat("SelectiveDeepPrompt: prefix dropout ", opt_.prefix_dropout, " is not in [0, 1]"));
    if (opt_.heads != 0) peft_detail::check_heads(opt_.heads, hidden_, "SelectiveDeepPrompt");
    std::sort(which_.begin(), which_.end(), [](const PromptLayer& a, const PromptLayer& b) { return a.layer < b.layer; });
    for (std::size_t i = 0; i < which_.size(); ++i) {
      const auto& w = which_[i];
      if (w.layer < 0 || w.layer >= layers_)
        throw ShapeError(detail::cat("SelectiveDeepPrompt: layer ", w.layer, " is outside [0, ", layers_, ")"));
      if (w.tokens < 1)
        throw ShapeError(detail::cat("SelectiveDeepPrompt: layer ", w.layer, " has ", w.tokens, " tokens (need >= 1)"));
      if (i > 0 && which_[i - 1].layer == w.layer)
        throw ShapeError(detail::cat("SelectiveDeepPrompt: layer ", w.layer, " is selected twice"));
    }
    Generator gen(o.seed);
    for (const auto& w : which_) {
      prompts.emplace_back(detail::cat("layer.", w.layer, ".prompt_embeddings"), Tensor<T, 2>({w.tokens, 2 * hidden_}));
      peft_detail::init_prompt(prompts.back().value(), opt_, gen);
    }
  }

  index_t layers() const { return layers_; }
  index_t hidden() const { return hidden_; }
  index_t heads() const { return opt_.heads; }
  const std::vector<PromptLayer>& selection() const { return which_; }
  const DeepPromptOptions& options() const { return opt_; }
  bool shift_positions() const { return opt_.shift_positions; }
  void set_shift_positions(bool on) { opt_.shift_positions = on; }
  /// The prompt length of model layer l (0: none).
  index_t length(index_t l) const {
    for (const auto& w : which_)
      if (w.layer == l) return w.tokens;
    return 0;
  }

  void set_heads(index_t heads) {
    peft_detail::check_heads(heads, hidden_, "SelectiveDeepPrompt");
    if (opt_.heads != 0 && opt_.heads != heads)
      throw ShapeError(detail::cat("SelectiveDeepPrompt: the prompt was made for ", opt_.heads,
                                   " attention heads, the model has ", heads));
    opt_.heads = heads;
  }

  /// One entry per model layer: the selected layers' prefixes (H, P_l, D) (per example with
  /// prefix dropout while training), empty elsewhere.
  std::vector<KVPrefix<T>> prefixes(const PromptRun& run = {}) {
    require_heads();
    std::vector<KVPrefix<T>> out(static_cast<std::size_t>(layers_));
    const bool drop = run.training && opt_.prefix_dropout > 0.0;
    Generator& gen = run.generator ? *run.generator : generator;
    for (std::size_t i = 0; i < which_.size(); ++i) {
      const Var<T, 2> r = prompts[i].var();
      out[static_cast<std::size_t>(which_[i].layer)] =
          drop ? kv_prefixes(dropout(repeat_rows(r, run.batch), static_cast<T>(opt_.prefix_dropout), gen, true), 1,
                             opt_.heads)[0]
               : kv_prefixes(r, 1, opt_.heads)[0];
    }
    return out;
  }

  /// The prefixes as constants (no tape, no dropout).
  PromptConstants<T> freeze_constants() const {
    require_heads();
    NoGradGuard no_grad;
    PromptConstants<T> c;
    c.layers.resize(static_cast<std::size_t>(layers_));
    for (std::size_t i = 0; i < which_.size(); ++i)
      c.layers[static_cast<std::size_t>(which_[i].layer)] =
          kv_prefixes(Var<T, 2>(prompts[i].value().clone()), 1, opt_.heads)[0];
    c.shift = opt_.shift_positions;
    return c;
  }

  template <class V>
  void visit(V&& v) {
    for (std::size_t i = 0; i < which_.size(); ++i)
      v(detail::cat("layer.", which_[i].layer, ".prompt_embeddings"), prompts[i]);
  }

 private:
  void require_heads() const {
    if (opt_.heads <= 0)
      throw Error("SelectiveDeepPrompt: the number of attention heads is not known yet: attach the prompt to a model "
                  "or set DeepPromptOptions::heads");
  }

  index_t layers_ = 0, hidden_ = 0;
  std::vector<PromptLayer> which_;
  DeepPromptOptions opt_;
};

}  // namespace deepprompt
