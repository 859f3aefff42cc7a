#pragma once
// LoRA on BERT: LoraBert owns a backbone with its LoRA updates (peft/lora.hpp), turns LoRA
// dropout on and off with BertRun::training, and writes PEFT files with the module names PEFT
// gives a BERT task model.
//
//   dp::LoraBert model{dp::Bert<Cfg>::from_pretrained(dir), {.r = 8, .alpha = 16, .dropout = 0.1}};
//   auto out = model.forward(ids, mask, types, {.training = true});   // only lora_A / lora_B train
//   model.save_peft("sst2-lora/", {.extra = dp::peft_io::head_entries(head, "LORA")});
//   auto back = dp::LoraBert<Cfg>::load_peft(dp::Bert<Cfg>::from_pretrained(dir), "sst2-lora/");
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "../models/bert.hpp"
#include "lora.hpp"

namespace deepprompt {

/// The name of the BERT backbone inside the transformers model that PEFT wraps for a task:
/// "bert." for the task models (BertForSequenceClassification: SEQ_CLS, TOKEN_CLS,
/// QUESTION_ANS), "" otherwise (a bare BertModel: FEATURE_EXTRACTION, or no task).
inline std::string bert_model_prefix(std::string_view task_type) {
  return task_type == "SEQ_CLS" || task_type == "TOKEN_CLS" || task_type == "QUESTION_ANS" ? "bert." : "";
}

template <class Cfg, class T = float>
class LoraBert {
 public:
  using value_type = T;
  Bert<Cfg, T> bert;
  LoraAttachment lora;

  /// Attaches LoRA to `backbone` (frozen but for the updates; see attach_lora()).
  LoraBert(Bert<Cfg, T> backbone, const LoraOptions& o = {}) : bert(std::move(backbone)) {
    lora = attach_lora(bert, o);
  }

  /// A backbone with the LoRA updates of a PEFT adapter directory (load_lora_peft()).
  static LoraBert load_peft(Bert<Cfg, T> backbone, const std::filesystem::path& dir, bool trainable = false) {
    LoraBert m(std::move(backbone), Loaded{});
    m.lora = load_lora_peft(m.bert, dir, trainable);
    return m;
  }

  /// Bert::forward; LoRA dropout follows run.training.
  BertOutput<T> forward(const Tensor<std::int64_t, 2>& input_ids, const Tensor<std::int64_t, 2>& attention_mask = {},
                        const Tensor<std::int64_t, 2>& token_type_ids = {}, const BertRun& run = {}) {
    if (run.training != training_) {  // walks the modules only when the mode changes
      set_lora_training(bert, run.training);
      training_ = run.training;
    }
    return bert.forward(input_ids, attention_mask, token_type_ids, run);
  }

  int merge() { return merge_lora(bert); }
  int unmerge() { return unmerge_lora(bert); }

  /// PEFT's LORA adapter files, module names base_model.model.bert.<module> for the task
  /// models (bert_model_prefix(s.task_type)).
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& s = {}) {
    save_lora_peft(bert, lora, dir, s, bert_model_prefix(s.task_type));
  }

  template <class V>
  void visit(V&& v) {
    v("bert", bert);
  }

 private:
  struct Loaded {};
  LoraBert(Bert<Cfg, T> backbone, Loaded) : bert(std::move(backbone)) {}
  bool training_ = false;
};

template <class Cfg, class T>
LoraBert(Bert<Cfg, T>, const LoraOptions& = {}) -> LoraBert<Cfg, T>;

}  // namespace deepprompt
