// The control of the compile-failure tests: the same code with matching sizes MUST compile, so
// that the failures above are the static_asserts and not include paths or flags.
#include "deepprompt/peft/deep_prompt_bert.hpp"
#include "deepprompt/peft/deep_prompt_t5.hpp"
#include "deepprompt/peft/selective_prompt.hpp"

void attach_matching(deepprompt::Bert<deepprompt::BertBase>& bert) {
  deepprompt::DeepPrompt<12, 20, 768> prompt;
  deepprompt::attach(bert, prompt);
  deepprompt::DynamicDeepPrompt<> any({.layers = 12, .tokens = 20, .hidden = 768});
  deepprompt::attach(bert, any);  // checked at run time
  deepprompt::HiddenPrompt<12, 10, 768> hidden;
  deepprompt::attach(bert, hidden);
  deepprompt::SelectiveDeepPrompt<float> some(12, 768, {{0, 4}, {11, 8}});
  deepprompt::attach(bert, some);
}

void wrap_matching(deepprompt::Bert<deepprompt::BertBase> bert) {
  deepprompt::PromptedBert model{std::move(bert), deepprompt::DeepPrompt<12, 20, 768>{}};
  (void)model;
}

void attach_matching_t5(deepprompt::T5<deepprompt::T5Small>& t5) {
  deepprompt::T5DeepPrompt<6, 20, 512> prompt;
  deepprompt::attach(t5, prompt);
}

int main() { return 0; }
