#pragma once
// LoRA (Hu et al. 2021; PEFT's LORA) on any model built from nn::Linear: a low-rank update
// y = x W^T + b + (alpha / r) * dropout(x) A^T B^T on the Linear modules named by
// target_modules, W and b frozen.
//
//   auto lora = dp::attach_lora(bert, {.r = 8, .alpha = 16, .dropout = 0.1});   // query, value
//   dp::set_lora_training(bert, true);          // LoRA dropout on (peft/lora_bert.hpp's LoraBert
//                                               // does it from BertRun::training)
//   ... train: only the lora_A / lora_B parameters (and your head) have gradients ...
//   dp::save_lora_peft(bert, lora, "sst2-lora/", {}, "bert.");   // PEFT's adapter files
//   dp::merge_lora(bert);                       // W += (alpha / r) B A: no extra work per token
//   dp::unmerge_lora(bert);                     // W restored bit for bit
//
// The hook is nn::Linear's optional LowRankUpdate (nn/linear.hpp): present only on adapted
// modules, where the module's visit() names lora_A.weight (r, In) and lora_B.weight (Out, r)
// after weight and bias, so that they appear in the state dict, freeze()/unfreeze() patterns,
// trainable_parameters() and parameter counts; absent elsewhere.
//
// target_modules (PEFT's default for BERT: query, value). Each entry is
//   - a plain name: matches a module whose dotted name equals it or ends with "." + it
//     ("query" matches encoder.layer.3.attention.self.query), as PEFT matches a list; or
//   - a glob ("*", "?", "[...]"; "*" crosses dots): matched against the whole dotted name
//     ("encoder.layer.1[01].*.dense"); PEFT has no globs (a single string there is a regex).
// Names are the model's own (Bert: no "bert." in front).
//
// Initialisation as PEFT's init_lora_weights=True: A ~ kaiming_uniform(a = sqrt(5)), i.e.
// uniform(-1/sqrt(In), 1/sqrt(In)), B = 0 (the adapted model starts equal to the base);
// "gaussian": A ~ normal(0, 1/r). Scaling alpha / r, or alpha / sqrt(r) with use_rslora.
//
// merge_lora() adds the update into W and keeps the unmerged W, so that unmerge_lora() restores
// it exactly (PEFT subtracts, which leaves rounding residue); merge_and_unload() merges and drops
// the adapters. While merged, forward skips the update (and its parameters get no gradient).
//
// PEFT files (save_lora_peft / load_lora_peft): adapter_model.safetensors holds
// base_model.model.<prefix><module>.lora_A.weight and .lora_B.weight, where <prefix> names the
// backbone inside the transformers model PEFT wrapped ("bert." for BertForSequenceClassification
// and the other task models, "" for a bare BertModel); adapter_config.json has LoraConfig's keys
// (r, lora_alpha, lora_dropout, target_modules, bias "none", fan_in_fan_out false,
// modules_to_save, use_rslora, ...). Loading finds each module by the longest dotted suffix of
// the file's name that is a Linear of the model, so any prefix works.
#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "../backend/cpu/gemm.hpp"
#include "../core/init.hpp"
#include "../io/safetensors.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "deep_prompt.hpp"  // PeftSaveOptions
#include "peft_io.hpp"

namespace deepprompt {

enum class LoraInit { kaiming_uniform, gaussian };

struct LoraOptions {
  index_t r = 8;                                              // PEFT's default
  double alpha = 8.0;                                         // lora_alpha (PEFT's default 8)
  double dropout = 0.0;                                       // lora_dropout, on the update's input
  std::vector<std::string> target_modules{"query", "value"};  // names or globs (see the top)
  bool use_rslora = false;                                    // scaling alpha / sqrt(r)
  LoraInit init = LoraInit::kaiming_uniform;
  std::uint64_t seed = 0;                                     // of A and of the dropout streams
  bool freeze_base = true;                                    // freeze every other parameter
  std::optional<std::vector<std::string>> modules_to_save{};  // recorded in adapter_config.json

  double scaling() const {
    return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
  }
};

/// What attach_lora() / load_lora_peft() did: the options and the adapted modules, in visit order.
struct LoraAttachment {
  LoraOptions options;
  std::vector<std::string> modules;
};

namespace lora_detail {

inline bool is_glob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

/// Does module `name` match the target list (see the top)?
inline bool matches(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& t : targets) {
    if (is_glob(t)) {
      if (fnmatch(t.c_str(), name.c_str(), 0) == 0) return true;
    } else if (name == t || (name.size() > t.size() && name.ends_with(t) && name[name.size() - t.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

inline std::string list(const std::vector<std::string>& v, std::size_t at_most = 12) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < at_most; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > at_most) s += detail::cat(", ... (", v.size(), " in all)");
  return s;
}

}  // namespace lora_detail

/// The names of the Linear modules that carry a LoRA update.
template <class M>
std::vector<std::string> lora_modules(M& model) {
  std::vector<std::string> out;
  for_each_linear(model, [&](const std::string& name, auto& lin) {
    if (lin.lora) out.push_back(name);
  });
  return out;
}

/// Adds a LoRA update to every Linear of `model` that target_modules names (see the top):
/// A (r, In) initialised as PEFT, B (Out, r) zero, both trainable; with freeze_base, every other
/// parameter of the model is frozen first. Throws Error when no module matches (listing the
/// model's Linear modules), when a matched module already has one, or for invalid options.
template <class M>
LoraAttachment attach_lora(M& model, const LoraOptions& o = {}) {
  if (o.r < 1) throw Error(detail::cat("attach_lora: r must be >= 1, got ", o.r));
  if (!(o.alpha > 0.0)) throw Error(detail::cat("attach_lora: lora_alpha must be positive, got ", o.alpha));
  if (!(o.dropout >= 0.0 && o.dropout < 1.0))
    throw Error(detail::cat("attach_lora: lora_dropout ", o.dropout, " is not in [0, 1)"));
  if (o.target_modules.empty()) throw Error("attach_lora: target_modules is empty");
  std::vector<std::string> all, chosen;
  for_each_linear(model, [&](const std::string& name, auto& lin) {
    all.push_back(name);
    if (!lora_detail::matches(name, o.target_modules)) return;
    if (lin.lora) throw Error(detail::cat("attach_lora: '", name, "' already has a LoRA update"));
    chosen.push_back(name);
  });
  if (chosen.empty())
    throw Error(detail::cat("attach_lora: no Linear module matches target_modules [", lora_detail::list(o.target_modules),
                            "]; the model's Linear modules: ", lora_detail::list(all)));
  if (o.freeze_base) freeze(model);
  Generator gen(o.seed);
  std::uint64_t k = 0;
  for_each_linear(model, [&](const std::string& name, auto& lin) {
    if (!lora_detail::matches(name, o.target_modules)) return;
    using T = typename linear_type<std::remove_cvref_t<decltype(lin)>>::value_type;
    const index_t in = lin.in_features(), out = lin.out_features();
    LowRankUpdate<T> u;
    u.A = Parameter<T, 2>("lora_A.weight", Tensor<T, 2>({o.r, in}));
    if (o.init == LoraInit::kaiming_uniform) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));  // kaiming_uniform(a = sqrt(5))
      init::uniform(u.A.value(), -bound, bound, gen);
    } else {
      init::normal(u.A.value(), 0.0, 1.0 / static_cast<double>(o.r), gen);
    }
    u.B = Parameter<T, 2>("lora_B.weight", Tensor<T, 2>::zeros({out, o.r}));
    u.scale = static_cast<T>(o.scaling());
    u.dropout = o.dropout;
    u.generator = Generator(o.seed + 1 + k++);
    lin.lora.emplace(std::move(u));
  });
  return {o, chosen};
}

/// Turns LoRA dropout on (training) or off on every adapted module.
template <class M>
void set_lora_training(M& model, bool training) {
  for_each_linear(model, [&](const std::string&, auto& lin) {
    if (lin.lora) lin.lora->training = training;
  });
}

/// W += scale * B A on every adapted, unmerged module, keeping the unmerged W for
/// unmerge_lora(). Returns the number of modules merged.
template <class M>
int merge_lora(M& model) {
  int n = 0;
  for_each_linear(model, [&](const std::string&, auto& lin) {
    if (!lin.lora || lin.lora->merged) return;
    auto& u = *lin.lora;
    const auto& W = lin.weight.value();  // (Out, In)
    u.original = W.clone();
    const index_t out = lin.out_features(), in = lin.in_features(), r = u.rank();
    // W (Out, In) += scale * B (Out, r) A (r, In)
    cpu::gemm(cpu::Trans::No, cpu::Trans::No, out, in, r, u.scale, u.B.value().data(), r, u.A.value().data(), in,
              decltype(u.scale)(1), W.data(), in);
    u.merged = true;
    ++n;
  });
  return n;
}

/// Restores the unmerged weights (exactly: the copy merge_lora() kept). Returns the count.
template <class M>
int unmerge_lora(M& model) {
  int n = 0;
  for_each_linear(model, [&](const std::string&, auto& lin) {
    if (!lin.lora || !lin.lora->merged) return;
    lin.weight.value().copy_from(lin.lora->original);
    lin.lora->original = {};
    lin.lora->merged = false;
    ++n;
  });
  return n;
}

/// Merges every update into its weight and removes the adapters (PEFT's merge_and_unload):
/// a plain model that computes what the adapted one did. Returns the count.
template <class M>
int merge_and_unload(M& model) {
  const int n = static_cast<int>(lora_modules(model).size());
  merge_lora(model);
  for_each_linear(model, [&](const std::string&, auto& lin) { lin.lora.reset(); });
  return n;
}

/// Removes the adapters (unmerging first where merged): the base model as it was. Returns the count.
template <class M>
int detach_lora(M& model) {
  unmerge_lora(model);
  int n = 0;
  for_each_linear(model, [&](const std::string&, auto& lin) {
    if (lin.lora) lin.lora.reset(), ++n;
  });
  return n;
}

/// adapter_config.json's contents for `lora` (PEFT's LoraConfig keys). `model_prefix` as in
/// save_lora_peft().
inline nlohmann::json lora_peft_config(const LoraAttachment& lora, const PeftSaveOptions& s = {},
                                       const std::string& model_prefix = "") {
  const auto& o = lora.options;
  nlohmann::json j = peft_io::common_config("LORA", s.task_type, s.base_model_name_or_path);
  j["alpha_pattern"] = nlohmann::json::object();
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["init_lora_weights"] = o.init == LoraInit::gaussian ? nlohmann::json("gaussian") : nlohmann::json(true);
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  if (o.alpha == std::floor(o.alpha) && std::abs(o.alpha) < 1e15)
    j["lora_alpha"] = static_cast<std::int64_t>(o.alpha);  // PEFT's lora_alpha is an int
  else
    j["lora_alpha"] = o.alpha;
  j["lora_dropout"] = o.dropout;
  j["modules_to_save"] = o.modules_to_save ? nlohmann::json(*o.modules_to_save) : nlohmann::json(nullptr);
  j["r"] = o.r;
  j["rank_pattern"] = nlohmann::json::object();
  // plain names are PEFT's own matching rule; globs are written as the modules they matched
  const bool plain = std::none_of(o.target_modules.begin(), o.target_modules.end(), lora_detail::is_glob);
  std::set<std::string> targets;
  if (plain)
    targets.insert(o.target_modules.begin(), o.target_modules.end());
  else
    for (const auto& m : lora.modules) targets.insert(model_prefix + m);
  j["target_modules"] = std::vector<std::string>(targets.begin(), targets.end());
  j["use_dora"] = false;
  j["use_rslora"] = o.use_rslora;
  return j;
}

/// Writes a PEFT LORA adapter directory: base_model.model.<model_prefix><module>.lora_A.weight /
/// .lora_B.weight for every adapted module (also while merged), the tensors of s.extra (e.g.
/// peft_io::head_entries(head, "LORA")), and adapter_config.json; each file atomically.
/// model_prefix: "bert." when PEFT wrapped BertForSequenceClassification (or another task
/// model), "" for a bare BertModel.
template <class M>
void save_lora_peft(M& model, const LoraAttachment& lora, const std::filesystem::path& dir,
                    const PeftSaveOptions& s = {}, const std::string& model_prefix = "") {
  std::vector<TensorEntry> entries;
  for_each_linear(model, [&](const std::string& name, auto& lin) {
    if (!lin.lora) return;
    const std::string key = "base_model.model." + model_prefix + name;
    entries.push_back(entry(key + ".lora_A.weight", lin.lora->A.value().clone()));
    entries.push_back(entry(key + ".lora_B.weight", lin.lora->B.value().clone()));
  });
  if (entries.empty()) throw Error("save_lora_peft: the model has no LoRA update (attach_lora first)");
  entries.insert(entries.end(), s.extra.begin(), s.extra.end());
  peft_io::write_adapter(dir, entries, lora_peft_config(lora, s, model_prefix));
}

/// Reads a PEFT LORA adapter directory into `model`: one LoRA update per lora_A / lora_B pair,
/// on the Linear whose name is the longest dotted suffix of the file's module name
/// (base_model.model.bert.encoder.layer.0.attention.self.query -> encoder.layer.0.attention.self.query).
/// The rest of the model is frozen; the updates are trainable only if `trainable`. Tensors of a
/// classification head (*.classifier.*) are left for peft_io::load_head(). Throws FormatError for
/// what it cannot represent (bias other than "none", fan_in_fan_out, DoRA, rank/alpha patterns),
/// for a module the model lacks, and for shapes that do not fit; nothing is attached then.
template <class M>
LoraAttachment load_lora_peft(M& model, const std::filesystem::path& dir, bool trainable = false) {
  const auto cfg = peft_io::AdapterConfig::read(dir, "load_lora_peft");
  cfg.require_type("LORA", "load_lora_peft");
  LoraAttachment out;
  auto& o = out.options;
  o.r = cfg.positive("r");
  o.alpha = cfg.number("lora_alpha");
  o.dropout = cfg.has("lora_dropout") ? cfg.number("lora_dropout") : 0.0;
  o.use_rslora = cfg.boolean("use_rslora", false);
  if (cfg.has("bias") && cfg.string("bias") != "none")
    cfg.fail("bias", detail::cat("is \"", cfg.string("bias"), "\"; only \"none\" (no trained biases) is supported"));
  if (cfg.boolean("fan_in_fan_out", false)) cfg.fail("fan_in_fan_out", "is true; only nn.Linear layouts are supported");
  if (cfg.boolean("use_dora", false)) cfg.fail("use_dora", "is true; DoRA is not supported");
  for (const char* pat : {"rank_pattern", "alpha_pattern"})
    if (cfg.has(pat) && !(cfg.field(pat).is_object() && cfg.field(pat).empty()))
      cfg.fail(pat, "is not empty; per-module ranks and alphas are not supported");
  o.target_modules.clear();
  if (cfg.has("target_modules")) {
    const auto& t = cfg.field("target_modules");
    if (t.is_string())
      o.target_modules.push_back(t.get<std::string>());
    else if (t.is_array())
      for (const auto& e : t) {
        if (!e.is_string()) cfg.fail("target_modules", "must hold strings");
        o.target_modules.push_back(e.get<std::string>());
      }
  }
  if (cfg.has("modules_to_save")) {
    const auto& t = cfg.field("modules_to_save");
    if (!t.is_array()) cfg.fail("modules_to_save", "must be a list of strings or null");
    o.modules_to_save.emplace();
    for (const auto& e : t) {
      if (!e.is_string()) cfg.fail("modules_to_save", "must hold strings");
      o.modules_to_save->push_back(e.get<std::string>());
    }
  }
  if (o.alpha <= 0) cfg.fail("lora_alpha", "must be positive");
  if (!(o.dropout >= 0.0 && o.dropout < 1.0)) cfg.fail("lora_dropout", "must be in [0, 1)");

  const auto file = SafeTensorsFile::open(cfg.weights_path);
  const std::string src = cfg.weights_path.string();
  std::set<std::string> linears;
  for_each_linear(model, [&](const std::string& name, auto&) { linears.insert(name); });
  std::map<std::string, std::string> module_of;  // our module name -> the file's key stem
  std::vector<std::string> unknown;
  const std::string suffix_a = ".lora_A.weight", suffix_b = ".lora_B.weight", base = "base_model.model.";
  for (const auto& n : file.names()) {
    if (n.ends_with(suffix_b)) continue;  // checked with its lora_A
    if (!n.ends_with(suffix_a)) {
      if (n.find("classifier.") == std::string::npos) unknown.push_back(n);
      continue;
    }
    std::string stem = n.substr(0, n.size() - suffix_a.size());
    std::string path = stem.rfind(base, 0) == 0 ? stem.substr(base.size()) : stem;
    std::string found;
    for (std::string p = path;;) {  // the longest dotted suffix that is a Linear of the model
      if (linears.contains(p)) {
        found = p;
        break;
      }
      const auto dot = p.find('.');
      if (dot == std::string::npos) break;
      p = p.substr(dot + 1);
    }
    if (found.empty())
      throw FormatError(detail::cat("adapter '", src, "': \"", n, "\" names no Linear module of the model (",
                                    linears.size(), " Linear modules, e.g. ", linears.empty() ? "" : *linears.begin(),
                                    ")"));
    if (!file.contains(stem + suffix_b))
      throw FormatError(detail::cat("adapter '", src, "': \"", n, "\" has no \"", stem, suffix_b, "\""));
    if (!module_of.emplace(found, stem).second)
      throw FormatError(detail::cat("adapter '", src, "': two updates for module '", found, "'"));
  }
  if (!unknown.empty())
    throw FormatError(detail::cat("adapter '", src, "': tensors that are neither LoRA updates nor a classifier: ",
                                  lora_detail::list(unknown)));
  if (module_of.empty()) throw FormatError(detail::cat("adapter '", src, "': no lora_A / lora_B tensors"));
  // check every shape before attaching anything
  for_each_linear(model, [&](const std::string& name, auto& lin) {
    auto it = module_of.find(name);
    if (it == module_of.end()) return;
    if (lin.lora) throw Error(detail::cat("load_lora_peft: '", name, "' already has a LoRA update"));
    const auto& a = file.info(it->second + suffix_a);
    const auto& b = file.info(it->second + suffix_b);
    const std::vector<index_t> wa{o.r, lin.in_features()}, wb{lin.out_features(), o.r};
    if (a.shape != wa || b.shape != wb)
      throw FormatError(detail::cat("adapter '", src, "': module '", name, "' (Linear ", lin.in_features(), " -> ",
                                    lin.out_features(), ", r = ", o.r, ") needs lora_A ", shape_str(wa), " and lora_B ",
                                    shape_str(wb), "; the file has ", shape_str(a.shape), " and ", shape_str(b.shape)));
  });
  freeze(model);
  std::uint64_t k = 0;
  for_each_linear(model, [&](const std::string& name, auto& lin) {
    auto it = module_of.find(name);
    if (it == module_of.end()) return;
    using T = typename linear_type<std::remove_cvref_t<decltype(lin)>>::value_type;
    LowRankUpdate<T> u;
    u.A = Parameter<T, 2>("lora_A.weight", file.load<T, 2>(it->second + suffix_a), trainable);
    u.B = Parameter<T, 2>("lora_B.weight", file.load<T, 2>(it->second + suffix_b), trainable);
    u.scale = static_cast<T>(o.scaling());
    u.dropout = o.dropout;
    u.generator = Generator(o.seed + 1 + k++);
    lin.lora.emplace(std::move(u));
    out.modules.push_back(name);
  });
  if (o.target_modules.empty()) o.target_modules = out.modules;
  return out;
}

}  // namespace deepprompt
