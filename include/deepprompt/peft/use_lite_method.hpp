#pragma once
// UseLiteMethod: USE Lite (models/use_lite.hpp) with one tuning method chosen at run time, for
// programs that take the method as an option (ptune with a TF.js USE Lite model).
//
//   auto m = dp::UseLiteMethod::create(dp::UseLite<>::from_tfjs(dir / "model.json"), dp::UseMethod::ptv2);
//   dp::Var<float, 2> h = m.forward(ids, true);   // (B, 512): tanh output, before L2 normalisation
//
// Methods (the names of peft/bert_method.hpp where the method is the same):
//   ptv2         per-layer key/value prefix (peft/use_lite_prefix.hpp; widths 256 and 512)
//   ptv2-hidden  per-layer hidden-state prompt (the seed's form; UseLiteHiddenPrompt)
//   prefix       Prefix Tuning: the key/value prefix through an MLP of width `projection` (512)
//   prompt       Prompt Tuning: an input-layer prompt (PromptTuning, 256 wide), initialised
//                from rows of the embedding table sampled uniformly (Lester et al.'s best init)
//   ptuning      P-Tuning v1: the input-layer prompt from a prompt encoder (PTuningV1: PEFT's
//                default MLP, hidden 256)
//   probe        nothing of the encoder trains (a linear probe: only the caller's head)
//   lora         LoRA on the attention's query and value projections (peft/lora.hpp)
//   full         every weight of the encoder trains
// Invariant: the encoder's weights are frozen except for `full` (and LoRA's own A, B).
//
// Files: config() is a small JSON object (method, prefix length, LoRA settings) and
// trainable_entries() the tensors that trained, under their names ("prompt.layer.0",
// "use.layer.1.attention.q.lora_A.weight", "use.embeddings.weight", ...); load() rebuilds the
// method from both, every parameter frozen. PEFT has no layout for a prefix whose layers differ
// in width, so this is the library's own format (runners/use_classification.hpp writes it).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/safetensors.hpp"
#include "../nn/module.hpp"
#include "lora.hpp"
#include "prompt_tuning.hpp"
#include "ptuning_v1.hpp"
#include "use_lite_prefix.hpp"

namespace deepprompt {

enum class UseMethod { ptv2, ptv2_hidden, prefix, prompt, ptuning, probe, lora, full };

inline constexpr std::string_view kUseMethodNames = "ptv2|ptv2-hidden|prefix|prompt|ptuning|probe|lora|full";

namespace peft_detail {
inline constexpr std::pair<std::string_view, UseMethod> kUseMethods[] = {
    {"ptv2", UseMethod::ptv2},       {"ptv2-hidden", UseMethod::ptv2_hidden}, {"prefix", UseMethod::prefix},
    {"prompt", UseMethod::prompt},   {"ptuning", UseMethod::ptuning},         {"probe", UseMethod::probe},
    {"lora", UseMethod::lora},       {"full", UseMethod::full}};
}  // namespace peft_detail

/// "ptv2" -> UseMethod::ptv2 ...; nullopt for an unknown name.
inline std::optional<UseMethod> use_method_from_name(std::string_view s) {
  for (const auto& [name, m] : peft_detail::kUseMethods)
    if (name == s) return m;
  return std::nullopt;
}
inline std::string use_method_name(UseMethod m) {
  for (const auto& [name, k] : peft_detail::kUseMethods)
    if (k == m) return std::string(name);
  return "";
}

struct UseMethodOptions {
  index_t tokens = 20;         // prompt length (prefix or input prompt)
  double init_std = 1.0;       // ptv2, ptv2-hidden, prefix: normal(0, init_std)
  index_t projection = 512;    // prefix: reparameterisation width
  index_t lora_r = 8;
  double lora_alpha = 16.0, lora_dropout = 0.1;
  std::uint64_t seed = 0;      // of the method's initial values
};

class UseLiteMethod {
 public:
  using value_type = float;
  UseLite<float> use;
  std::optional<UseLitePrefix<float>> prompt;               // ptv2, prefix
  std::optional<UseLiteHiddenPrompt<float>> hidden_prompt;  // ptv2-hidden
  std::optional<DynamicPromptTuning<float>> input_prompt;   // prompt
  std::optional<DynamicPTuningV1<float>> ptuning;           // ptuning
  std::optional<LoraAttachment> lora;

  /// `model` frozen and the method's parameters new (trainable); `full` unfreezes everything.
  static UseLiteMethod create(UseLite<float> model, UseMethod m, const UseMethodOptions& o = {}) {
    UseLiteMethod u(std::move(model), m);
    const InputPromptSizes input{o.tokens, u.use.config.embed};
    switch (m) {
      case UseMethod::ptv2: u.prompt.emplace(u.use, UseLitePrefixOptions{o.tokens, o.init_std, o.seed}); break;
      case UseMethod::prefix:
        u.prompt.emplace(u.use, UseLitePrefixOptions{o.tokens, o.init_std, o.seed, o.projection});
        break;
      case UseMethod::ptv2_hidden: u.hidden_prompt.emplace(u.use, UseLitePrefixOptions{o.tokens, o.init_std, o.seed}); break;
      case UseMethod::prompt:
        u.input_prompt.emplace(input, PromptTuningOptions{.init = PromptTuningInit::sample_vocab, .seed = o.seed},
                               u.use.embeddings.weight.value());
        break;
      case UseMethod::ptuning: u.ptuning.emplace(input, PTuningOptions{.seed = o.seed}); break;
      case UseMethod::probe: break;
      case UseMethod::lora:
        u.lora = attach_lora(u.use, LoraOptions{.r = o.lora_r, .alpha = o.lora_alpha, .dropout = o.lora_dropout,
                                                .target_modules = {"attention.q", "attention.v"}, .seed = o.seed});
        break;
      case UseMethod::full: unfreeze(u.use); break;
    }
    return u;
  }

  /// The method of `config` (see config()) with the tensors of `file` in place of the trained
  /// parameters' initial values (`prefix` in front of their names), every parameter frozen.
  /// FormatError for an unknown method, a missing tensor or one that names no parameter.
  static UseLiteMethod load(UseLite<float> model, const nlohmann::json& config, const SafeTensorsFile& file,
                            const std::string& prefix = "") {
    auto field = [&](const char* k, auto def) {
      return config.contains(k) && !config[k].is_null() ? config[k].get<decltype(def)>() : def;
    };
    const std::string name = field("method", std::string());
    const auto m = use_method_from_name(name);
    if (!m) throw FormatError(detail::cat("USE Lite adapter: method \"", name, "\" is not one of ", kUseMethodNames));
    UseMethodOptions o;
    o.tokens = field("tokens", index_t{20});
    o.projection = field("projection", index_t{512});
    o.lora_r = field("lora_r", index_t{8});
    o.lora_alpha = field("lora_alpha", 16.0);
    o.lora_dropout = field("lora_dropout", 0.0);
    UseLiteMethod u = create(std::move(model), *m, o);
    std::size_t used = 0;
    std::vector<std::string> missing;
    for_each_parameter(u, [&](const std::string& n, auto& p) {
      if (!p.trainable()) return;
      if (!file.contains(prefix + n)) return missing.push_back(prefix + n);
      file.load_into(prefix + n, p.value());
      ++used;
    });
    if (!missing.empty())
      throw FormatError(detail::cat("USE Lite adapter '", file.path().string(), "': no tensor \"", missing.front(),
                                    "\" (", missing.size(), " missing) for method ", name));
    freeze(u);
    u.loaded_ = used;
    return u;
  }

  UseMethod method() const { return method_; }
  index_t hidden() const { return use.config.hidden; }
  /// Parameters taken from the file by load() (0 after create()).
  std::size_t loaded() const { return loaded_; }

  /// tanh(projection(mean pooled states)) of token ids (B sentences): (B, hidden), with the
  /// prefix for ptv2; `training` turns LoRA's dropout on.
  Var<float, 2> forward(const std::vector<std::vector<std::int32_t>>& ids, bool training) {
    if (lora && training != lora_training_) set_lora_training(use, lora_training_ = training);
    if (prompt) return use.encode(ids, prompt->prefixes());
    if (hidden_prompt) return use.encode(ids, hidden_prompt->prefixes(use));
    if (input_prompt) return use.encode(ids, {}, input_prompt->input_embeddings());
    if (ptuning) return use.encode(ids, {}, ptuning->input_embeddings(PromptRun{.training = training}));
    return use.encode(ids);
  }

  /// What load() needs besides the tensors. Prefix Tuning is saved folded (its MLP serves
  /// training only, as PEFT saves PREFIX_TUNING): "projection" 0, and the width it trained with
  /// as "trained_projection".
  nlohmann::json config() const {
    nlohmann::json j = {{"method", use_method_name(method_)}};
    if (prompt) j["tokens"] = prompt->tokens();
    if (method_ == UseMethod::prefix) j["projection"] = 0;
    if (prompt && prompt->projected()) j["trained_projection"] = prompt->projection->first.out_features();
    if (hidden_prompt) j["tokens"] = hidden_prompt->tokens();
    if (input_prompt) j["tokens"] = input_prompt->tokens();
    if (ptuning) j["tokens"] = ptuning->tokens();
    if (lora) {
      j["lora_r"] = lora->options.r;
      j["lora_alpha"] = lora->options.alpha;
      j["lora_dropout"] = lora->options.dropout;
      j["target_modules"] = lora->modules;
    }
    return j;
  }

  /// The trainable parameters as safetensors entries, `prefix` in front of their names; a
  /// projected prefix as its folded rows ("prompt.layer.<l>", UseLitePrefix::folded_rows()).
  std::vector<TensorEntry> trainable_entries(const std::string& prefix = "") {
    std::vector<TensorEntry> out;
    const bool fold = prompt && prompt->projected();
    for_each_parameter(*this, [&](const std::string& n, auto& p) {
      if (fold && n.rfind("prompt.projection.", 0) == 0) return;
      if (p.trainable()) out.push_back(entry(prefix + n, p.value()));
    });
    if (fold) {
      const auto rows = prompt->folded_rows();
      for (std::size_t l = 0; l < rows.size(); ++l) out.push_back(entry(prefix + "prompt.layer." + std::to_string(l), rows[l]));
    }
    return out;
  }

  template <class V>
  void visit(V&& v) {
    v("use", use);
    v("prompt", prompt);
    v("hidden_prompt", hidden_prompt);
    v("input_prompt", input_prompt);
    v("ptuning", ptuning);
  }

 private:
  UseLiteMethod(UseLite<float> m, UseMethod k) : use(std::move(m)), method_(k) { freeze(use); }
  UseMethod method_;
  bool lora_training_ = false;
  std::size_t loaded_ = 0;
};

}  // namespace deepprompt
