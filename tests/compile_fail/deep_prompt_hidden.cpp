// Must NOT compile: a deep prompt of width 1024 in the owning wrapper of a 768-wide BERT-base.
// Expected diagnostic: "DeepPrompt<Layers, Tokens, Hidden>: Hidden differs from the model's hidden
// size", with PromptHiddenMatchesModel<1024, 768> in the instantiation context.
#include "deepprompt/peft/deep_prompt_bert.hpp"

void wrap_mismatched(deepprompt::Bert<deepprompt::BertBase> bert) {
  deepprompt::PromptedBert model{std::move(bert), deepprompt::DeepPrompt<12, 20, 1024>{}};
  (void)model;
}

int main() { return 0; }
