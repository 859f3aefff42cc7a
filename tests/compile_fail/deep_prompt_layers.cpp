// Must NOT compile: a deep prompt for 6 layers attached to the 12-layer BERT-base.
// Expected diagnostic: "DeepPrompt<Layers, Tokens, Hidden>: Layers differs from the model's number
// of layers", with PromptLayersMatchModel<6, 12> in the instantiation context.
#include "deepprompt/peft/deep_prompt_bert.hpp"

void attach_mismatched(deepprompt::Bert<deepprompt::BertBase>& bert) {
  deepprompt::DeepPrompt<6, 20, 768> prompt;
  deepprompt::attach(bert, prompt);
}

int main() { return 0; }
