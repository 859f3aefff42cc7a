#pragma once
// BertMethod: a BERT backbone (run-time configuration) with one parameter-efficient method
// chosen at run time, for programs that take the method as an option (the ptune command).
//
//   auto m = BertMethod::create(DynamicBert<float>::from_pretrained(dir), Method::ptv2, {.tokens = 20});
//   BertOutput<float> o = m.forward(ids, mask, types, {.training = true});
//   m.save_peft("adapter/", {.task_type = "SEQ_CLS", .extra = head_entries});
//
// Methods (peft/baselines.hpp has the types):
//   ptv2         DeepPrompt: per-layer key/value prefix (P-Tuning v2)           PREFIX_TUNING file
//   ptv2-hidden  HiddenPrompt: per-layer hidden-state prompt (the seed's form); its file is the
//                equivalent key/value prefix (the frozen layers' projections of the prompt
//                vectors), so PEFT and `ptune eval` read it as PREFIX_TUNING; the real
//                tokens' positions start at Tokens, as HF numbers them with a prefix,
//                so that the file is exact                                      PREFIX_TUNING file
//   prefix       PrefixTuning: the prefix through the MLP reparameterisation, folded when saved
//   prompt       PromptTuning: input-layer prompt                               PROMPT_TUNING file
//   ptuning      PTuningV1: input prompt from an MLP encoder                    P_TUNING file
//   lora         LoRA on query and value                                        LORA file
//   full         every weight trainable; save_peft writes the model (config.json,
//                model.safetensors) and the head (adapter_model.safetensors)
// Invariants: the backbone's weights are frozen except for `full`; the head is the caller's.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "../io/config.hpp"
#include "../nn/module.hpp"
#include "baselines.hpp"

namespace deepprompt {

enum class Method { ptv2, ptv2_hidden, prefix, prompt, ptuning, lora, full };

/// "ptv2" -> Method::ptv2 ...; nullopt for an unknown name.
inline std::optional<Method> method_from_name(std::string_view s) {
  constexpr std::pair<std::string_view, Method> names[] = {
      {"ptv2", Method::ptv2},     {"ptv2-hidden", Method::ptv2_hidden}, {"prefix", Method::prefix},
      {"prompt", Method::prompt}, {"ptuning", Method::ptuning},         {"lora", Method::lora},
      {"full", Method::full}};
  for (const auto& [n, m] : names)
    if (n == s) return m;
  return std::nullopt;
}
inline constexpr std::string_view kMethodNames = "ptv2|ptv2-hidden|prefix|prompt|ptuning|lora|full";

struct MethodOptions {
  index_t tokens = 20;             // prompt length (prefix or input prompt)
  index_t projection = 512;        // prefix: reparameterisation width
  double prefix_dropout = 0.0;     // ptv2/prefix: THUDM's dropout on the prefix
  index_t lora_r = 8;
  double lora_alpha = 16.0, lora_dropout = 0.1;
  std::uint64_t seed = 0;          // of the method's initial values
};

class BertMethod {
 public:
  using value_type = float;
  using Model = DynamicBert<float>;
  using Prompt = std::variant<std::monostate, DynamicDeepPrompt<float>, HiddenPrompt<dynamic, dynamic, dynamic, float>,
                              DynamicPrefixTuning<float>, DynamicPromptTuning<float>, DynamicPTuningV1<float>>;

  Model bert;
  Prompt prompt;
  std::optional<LoraAttachment> lora;

  /// `bert` frozen and the method's parameters new (trainable); `full` unfreezes everything.
  static BertMethod create(Model bert, Method m, const MethodOptions& o = {}) {
    BertMethod b(std::move(bert), m);
    const PromptSizes deep{b.bert.cfg.layers, o.tokens, b.bert.cfg.hidden};
    const InputPromptSizes input{o.tokens, b.bert.cfg.hidden};
    switch (m) {
      case Method::ptv2: {
        DeepPromptOptions d{.seed = o.seed, .prefix_dropout = o.prefix_dropout};
        b.prompt.emplace<DynamicDeepPrompt<float>>(deep, d);
        break;
      }
      case Method::ptv2_hidden:  // positions shifted as HF does with a prefix: the saved prefix is then exact
        b.prompt.emplace<2>(deep, HiddenPromptOptions{.seed = o.seed, .shift_positions = true});
        break;
      case Method::prefix: {
        DeepPromptOptions d{.seed = o.seed, .prefix_dropout = o.prefix_dropout, .projection = o.projection};
        b.prompt.emplace<DynamicPrefixTuning<float>>(deep, d);
        break;
      }
      case Method::prompt: b.prompt.emplace<DynamicPromptTuning<float>>(input, PromptTuningOptions{.seed = o.seed}); break;
      case Method::ptuning: b.prompt.emplace<DynamicPTuningV1<float>>(input, PTuningOptions{.seed = o.seed}); break;
      case Method::lora:
        b.lora = attach_lora(b.bert, LoraOptions{.r = o.lora_r, .alpha = o.lora_alpha, .dropout = o.lora_dropout,
                                                  .seed = o.seed});
        break;
      case Method::full: unfreeze(b.bert); break;
    }
    b.attach_prompt();
    return b;
  }

  /// The backbone with the adapter of a PEFT directory applied, every parameter frozen (for
  /// evaluation).
  /// A folder without adapter_config.json but with config.json and model.safetensors is a fully
  /// fine-tuned model (what save_peft writes for `full`): it replaces `bert`.
  static BertMethod load(Model bert, const std::filesystem::path& adapter_dir) {
    namespace fs = std::filesystem;
    if (!fs::exists(adapter_dir / "adapter_config.json") && fs::exists(adapter_dir / "config.json") &&
        fs::exists(adapter_dir / "model.safetensors")) {
      BertMethod b(Model::from_pretrained(adapter_dir), Method::full);
      return b;
    }
    BertMethod b = load_unfrozen(std::move(bert), adapter_dir);
    freeze(b);
    return b;
  }
  Method method() const { return method_; }
  /// Rows the input-layer prompts put in front of the sequence (0 for the others).
  index_t virtual_tokens() const {
    if (auto* p = std::get_if<DynamicPromptTuning<float>>(&prompt)) return p->tokens();
    if (auto* p = std::get_if<DynamicPTuningV1<float>>(&prompt)) return p->tokens();
    return 0;
  }

  /// Bert::forward with the method applied. input_ids, attention_mask, token_type_ids: (B, T).
  /// Returns last_hidden_state (B, virtual_tokens() + T, C) and pooler_output (B, C).
  BertOutput<float> forward(const Tensor<std::int64_t, 2>& input_ids, const Tensor<std::int64_t, 2>& attention_mask = {},
                            const Tensor<std::int64_t, 2>& token_type_ids = {}, const BertRun& run = {}) {
    if (lora && run.training != lora_training_) set_lora_training(bert, lora_training_ = run.training);
    return std::visit(
        [&](auto& p) -> BertOutput<float> {
          if constexpr (std::is_same_v<std::decay_t<decltype(p)>, std::monostate>)
            return bert.forward(input_ids, attention_mask, token_type_ids, run);
          else
            return forward_with_prompt(bert, p, input_ids, attention_mask, token_type_ids, run);
        },
        prompt);
  }

  /// The PEFT adapter of the method (see the top), `o.extra` (a task head) included; `full`
  /// writes the whole model (model.safetensors, config.json) and the extra tensors beside it.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) {
    std::filesystem::create_directories(dir);
    if (method_ == Method::full) {  // the whole model as HF writes it, the head beside it
      bert.save_pretrained(dir);
      save_safetensors(dir / "adapter_model.safetensors", o.extra);
      return;
    }
    if (lora) return save_lora_peft(bert, *lora, dir, o, bert_model_prefix(o.task_type));
    if (auto* h = std::get_if<2>(&prompt)) return hidden_as_prefix(*h).save_peft(dir, o);
    std::visit(
        [&](auto& p) {
          if constexpr (requires { p.save_peft(dir, o); }) p.save_peft(dir, o);
        },
        prompt);
  }

  /// The PEFT type save_peft writes ("" for full fine-tuning).
  std::string peft_type() const {
    switch (method_) {
      case Method::ptv2:
      case Method::ptv2_hidden:
      case Method::prefix: return "PREFIX_TUNING";
      case Method::prompt: return "PROMPT_TUNING";
      case Method::ptuning: return "P_TUNING";
      case Method::lora: return "LORA";
      case Method::full: return "";
    }
    return "";
  }

  /// The backbone's parameters under HF names ("bert.") then the prompt's ("prompt.").
  template <class V>
  void visit(V&& v) {
    v("bert", bert);
    std::visit(
        [&](auto& p) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(p)>, std::monostate>) v("prompt", p);
        },
        prompt);
  }

 private:
  static BertMethod load_unfrozen(Model bert, const std::filesystem::path& adapter_dir) {
    const auto cfg = peft_io::AdapterConfig::read(adapter_dir, "adapter");
    const std::string type = cfg.peft_type();
    if (type == "PREFIX_TUNING") {
      BertMethod b(std::move(bert), Method::ptv2);
      b.prompt.emplace<DynamicDeepPrompt<float>>(DynamicDeepPrompt<float>::load_peft(adapter_dir));
      b.attach_prompt();
      return b;
    }
    if (type == "PROMPT_TUNING") {
      BertMethod b(std::move(bert), Method::prompt);
      b.prompt.emplace<DynamicPromptTuning<float>>(DynamicPromptTuning<float>::load_peft(adapter_dir, false));
      b.attach_prompt();
      return b;
    }
    if (type == "P_TUNING") {
      BertMethod b(std::move(bert), Method::ptuning);
      b.prompt.emplace<DynamicPTuningV1<float>>(DynamicPTuningV1<float>::load_peft(adapter_dir, false));
      b.attach_prompt();
      return b;
    }
    if (type == "LORA") {
      BertMethod b(std::move(bert), Method::lora);
      b.lora = load_lora_peft(b.bert, adapter_dir);
      return b;
    }
    cfg.fail("peft_type", detail::cat("is \"", type, "\"; expected PREFIX_TUNING, PROMPT_TUNING, P_TUNING or LORA"));
  }

  BertMethod(Model b, Method m) : bert(std::move(b)), method_(m) { freeze(bert); }

  void attach_prompt() {
    std::visit(
        [&](auto& p) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(p)>, std::monostate>) attach(bert, p);
        },
        prompt);
  }

  // The key/value prefix equivalent to a hidden-state prompt (as DeepPrompt's rows:
  // (Tokens, Layers * 2 * Hidden), each row ordered (layer, key/value, head, head_dim)).
  DynamicDeepPrompt<float> hidden_as_prefix(const HiddenPrompt<dynamic, dynamic, dynamic, float>& h) const {
    const PromptConstants<float> c = h.freeze_constants(bert);
    const index_t L = h.layers(), P = h.tokens(), C = h.hidden(), H = bert.cfg.heads, D = C / H;
    DeepPromptOptions o{.heads = H, .shift_positions = h.shift_positions()};
    DynamicDeepPrompt<float> d(PromptSizes{L, P, C}, o);
    Tensor<float, 2> rows = d.prompt_embeddings->value();  // a handle on the parameter's storage
    for (index_t l = 0; l < L; ++l)
      for (int kv = 0; kv < 2; ++kv) {
        const Tensor<float, 3>& t = kv == 0 ? c.layers[l].k.value() : c.layers[l].v.value();  // (H, P, D)
        for (index_t hh = 0; hh < H; ++hh)
          for (index_t p = 0; p < P; ++p)
            for (index_t e = 0; e < D; ++e) rows(p, (l * 2 + kv) * C + hh * D + e) = t(hh, p, e);
      }
    return d;
  }

  Method method_;
  bool lora_training_ = false;
};

}  // namespace deepprompt
