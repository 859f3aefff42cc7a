#pragma once
// What `deepprompt-run --adapter DIR` does for a BERT checkpoint: the model of `model_dir` with
// the PEFT adapter directory `adapter_dir` applied, on INPUT.json (models/bert_run.hpp).
//
//   run_bert_adapter(model_dir, adapter_dir, "input.json", "out.safetensors");
//
// adapter_config.json's peft_type chooses the method:
//   PREFIX_TUNING  DynamicDeepPrompt::load_peft: per-layer key/value prefix (positions shifted,
//                  as PEFT)
//   PROMPT_TUNING, P_TUNING   DynamicPromptTuning / DynamicPTuningV1::load_peft: the prompt put
//                  in front of the word embeddings
//   LORA           load_lora_peft on the model's Linear modules
// OUT.safetensors (F32): last_hidden_state — (B, T, C), or (B, P + T, C) for the input-layer
// prompts, the virtual tokens first, as PEFT's model returns it — pooler_output (B, C) when the
// checkpoint has a pooler, and, for a SEQ_CLS adapter whose file holds a classification head
// (PEFT's modules_to_save names, peft/peft_io.hpp), logits (B, labels) = classifier(pooler_output)
// (BertForSequenceClassification in eval mode). Every fault throws deepprompt::Error naming the
// file and the field.
#include <filesystem>
#include <string>
#include <vector>

#include "../models/bert_run.hpp"
#include "deep_prompt_bert.hpp"
#include "input_prompt_bert.hpp"
#include "lora.hpp"
#include "peft_io.hpp"
#include "prompt_tuning.hpp"
#include "ptuning_v1.hpp"

namespace deepprompt {

inline void run_bert_adapter(const std::filesystem::path& model_dir, const std::filesystem::path& adapter_dir,
                             const std::filesystem::path& input_json, const std::filesystem::path& out) {
  const BertRunInputs in = read_bert_inputs(input_json);
  const auto cfg = peft_io::AdapterConfig::read(adapter_dir, "--adapter");
  const std::string type = cfg.peft_type();
  auto model = DynamicBert<float>::from_pretrained(model_dir);
  check_bert_inputs(in, model, input_json);
  const auto file = SafeTensorsFile::open(cfg.weights_path);
  const auto head = peft_io::load_head<float>(file);
  const bool want_logits = cfg.task_type() == "SEQ_CLS" && head.has_value();
  if (want_logits) {
    if (!model.pooler)
      throw Error(detail::cat("--adapter '", adapter_dir.string(),
                              "': a SEQ_CLS head reads the pooled output, but the checkpoint '", model_dir.string(),
                              "' has no pooler"));
    if (head->in_features() != model.cfg.hidden)
      throw FormatError(detail::cat("adapter '", cfg.weights_path.string(), "': the classifier has shape ",
                                    shape_str(head->weight.shape()), " but the model's hidden size is ",
                                    model.cfg.hidden));
  }

  NoGradGuard no_grad;
  BertOutput<float> o;
  if (type == "PREFIX_TUNING") {
    auto prompt = DynamicDeepPrompt<float>::load_peft(adapter_dir);
    o = forward_with_prompt(model, prompt, in.ids, in.mask, in.types);
  } else if (type == "PROMPT_TUNING") {
    auto prompt = DynamicPromptTuning<float>::load_peft(adapter_dir, false);
    o = forward_with_prompt(model, prompt, in.ids, in.mask, in.types);
  } else if (type == "P_TUNING") {
    auto prompt = DynamicPTuningV1<float>::load_peft(adapter_dir, false);
    o = forward_with_prompt(model, prompt, in.ids, in.mask, in.types);
  } else if (type == "LORA") {
    load_lora_peft(model, adapter_dir);
    o = model.forward(in.ids, in.mask, in.types);
  } else {
    cfg.fail("peft_type", detail::cat("is \"", type,
                                      "\"; deepprompt-run applies PREFIX_TUNING, PROMPT_TUNING, P_TUNING and LORA "
                                      "adapters"));
  }
  std::vector<TensorEntry> entries{entry("last_hidden_state", o.last_hidden_state.value())};
  if (model.pooler) entries.push_back(entry("pooler_output", o.pooler_output.value()));
  if (want_logits) entries.push_back(entry("logits", (*head)(o.pooler_output).value()));
  save_safetensors(out, entries);
}

}  // namespace deepprompt
