// Must NOT compile: the hidden-state form for 24 layers on the 12-layer BERT-base.
#include "deepprompt/peft/deep_prompt_bert.hpp"

void attach_mismatched(deepprompt::Bert<deepprompt::BertBase>& bert) {
  deepprompt::HiddenPrompt<24, 10, 768> prompt;
  deepprompt::attach(bert, prompt);
}

int main() { return 0; }
