#pragma once
// The baselines P-Tuning v2 is compared with, on the same backbones and through the same API:
//
//   method              type / function                          trainable
//   Prompt Tuning       PromptTuning<Tokens, Hidden>             input prompt (Tokens, Hidden)
//   P-Tuning v1         PTuningV1<Tokens, Hidden>                embedding + prompt encoder (LSTM+MLP or MLP)
//   Prefix Tuning       PrefixTuning<Layers, Tokens, Hidden>     reparameterised deep prefix (width 512)
//   P-Tuning v2         DeepPrompt<Layers, Tokens, Hidden>       deep key/value prefix
//   LoRA                attach_lora(model, {...}), LoraBert      lora_A, lora_B of the target Linears
//   full fine-tuning    full_finetuning(model)                   everything
//
// The prompts plug into PromptedBert / forward_with_prompt (peft/deep_prompt_bert.hpp,
// peft/input_prompt_bert.hpp); every method leaves the backbone's weights untouched (LoRA: while
// unmerged), and parameter_report() (peft/report.hpp) gives the parameter-efficiency table.
// PEFT adapter files: save_peft / load_peft of each prompt type, save_lora_peft / load_lora_peft.
#include "deep_prompt.hpp"
#include "deep_prompt_bert.hpp"
#include "input_prompt_bert.hpp"
#include "lora.hpp"
#include "lora_bert.hpp"
#include "peft_io.hpp"
#include "prefix_tuning.hpp"
#include "prompt_tuning.hpp"
#include "ptuning_v1.hpp"
#include "report.hpp"
