#pragma once
// Checks of a prompt's sizes against a model's: at compile time where both are template
// arguments (a static_assert whose note shows the two numbers), otherwise at run time (a
// ShapeError naming both). peft/deep_prompt.hpp and the Prompted* models use them.
#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace deepprompt {

/// An extent known only at run time (as std::dynamic_extent for std::span).
inline constexpr index_t dynamic = -1;

// --- checks of a prompt against a model --------------------------------------------------------

namespace peft_detail {

// Instantiated with the two numbers, so that the compiler's note shows them.
template <index_t PromptLayers, index_t ModelLayers>
struct PromptLayersMatchModel {
  static_assert(PromptLayers == ModelLayers,
                "DeepPrompt<Layers, Tokens, Hidden>: Layers differs from the model's number of layers (the "
                "compiler's note shows prompt Layers == model layers)");
  static constexpr bool value = true;
};
template <index_t PromptHidden, index_t ModelHidden>
struct PromptHiddenMatchesModel {
  static_assert(PromptHidden == ModelHidden,
                "DeepPrompt<Layers, Tokens, Hidden>: Hidden differs from the model's hidden size (the "
                "compiler's note shows prompt Hidden == model hidden size)");
  static constexpr bool value = true;
};

/// Compile-time check of a prompt type against a model's static sizes (a dynamic extent on
/// either side is checked at run time instead).
template <class Prompt, index_t ModelLayers, index_t ModelHidden>
constexpr bool static_check() {
  if constexpr (requires { Prompt::static_layers; }) {
    if constexpr (Prompt::static_layers != dynamic && ModelLayers != dynamic)
      static_assert(PromptLayersMatchModel<Prompt::static_layers, ModelLayers>::value);
  }
  if constexpr (requires { Prompt::static_hidden; }) {
    if constexpr (Prompt::static_hidden != dynamic && ModelHidden != dynamic)
      static_assert(PromptHiddenMatchesModel<Prompt::static_hidden, ModelHidden>::value);
  }
  return true;
}

/// Run-time check: ShapeError naming both sizes.
inline void check_fits(index_t prompt_layers, index_t prompt_hidden, index_t model_layers, index_t model_hidden,
                       const char* model) {
  if (prompt_layers != model_layers)
    throw ShapeError(detail::cat("DeepPrompt: the prompt has ", prompt_layers, " layers but the ", model, " has ",
                                 model_layers));
  if (prompt_hidden != model_hidden)
    throw ShapeError(detail::cat("DeepPrompt: the prompt's hidden size is ", prompt_hidden, " but the ", model,
                                 "'s is ", model_hidden));
}

}  // namespace peft_detail

}  // namespace deepprompt
