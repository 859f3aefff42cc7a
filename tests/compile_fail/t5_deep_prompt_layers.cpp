// Must NOT compile: a T5 deep prompt for 12 layers attached to t5-small (6 + 6 layers).
// Expected diagnostic: "DeepPrompt<Layers, Tokens, Hidden>: Layers differs from the model's number
// of layers", the note showing (12 == 6).
#include "deepprompt/peft/deep_prompt_t5.hpp"

void attach_mismatched(deepprompt::T5<deepprompt::T5Small>& t5) {
  deepprompt::T5DeepPrompt<12, 20, 512> prompt;
  deepprompt::attach(t5, prompt);
}

int main() { return 0; }
