#pragma once
// PEFT adapter directories, the parts shared by the baselines (Prompt Tuning, P-Tuning v1, LoRA)
// and deepprompt-run: reading adapter_config.json with field checks that name the file and the
// field, writing both files atomically, and the names of a task head in PEFT's files.
//
//   auto cfg = dp::peft_io::AdapterConfig::read(dir, "PromptTuning::load_peft");
//   cfg.peft_type();                    // "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "LORA", ...
//   cfg.positive("num_virtual_tokens"); // FormatError naming the file and the field otherwise
//
// Task heads (modules_to_save). PEFT wraps a SEQ_CLS model's `classifier` in a
// ModulesToSaveWrapper; get_peft_model_state_dict() keeps its copy
// `<base>.classifier.modules_to_save.default.weight` and writes it with "modules_to_save." and
// ".default" removed, i.e. `<base>.classifier.weight` / `.bias`, where <base> is
//   base_model            for prompt learning (PROMPT_TUNING, P_TUNING, PREFIX_TUNING: the
//                         PeftModel holds the transformers model itself as base_model), and
//   base_model.model      for LoRA (base_model is the LoraModel tuner, whose .model is it).
// (PEFT 0.x as read from its sources; the tests' generator writes the same names.)
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../io/file.hpp"
#include "../io/json.hpp"
#include "../io/safetensors.hpp"
#include "../nn/linear.hpp"

namespace deepprompt::peft_io {

/// PEFT's prompt-learning types (their modules_to_save live under "base_model.").
inline bool is_prompt_learning(std::string_view peft_type) {
  return peft_type == "PROMPT_TUNING" || peft_type == "P_TUNING" || peft_type == "PREFIX_TUNING" ||
         peft_type == "MULTITASK_PROMPT_TUNING";
}

/// "base_model." (prompt learning) or "base_model.model." (LoRA and the other tuners).
inline std::string head_prefix(std::string_view peft_type) {
  return is_prompt_learning(peft_type) ? "base_model." : "base_model.model.";
}

/// A parsed adapter_config.json with checked access to its fields.
class AdapterConfig {
 public:
  nlohmann::json json;
  std::filesystem::path dir, config_path, weights_path;

  /// Reads dir/adapter_config.json and checks that dir/adapter_model.safetensors exists.
  /// IoError (no directory, no file) or FormatError (invalid JSON), each naming `who` and the path.
  static AdapterConfig read(const std::filesystem::path& dir, std::string_view who) {
    AdapterConfig c;
    c.dir = dir;
    c.config_path = dir / "adapter_config.json";
    c.weights_path = dir / "adapter_model.safetensors";
    if (!std::filesystem::is_directory(dir))
      throw IoError(detail::cat(who, ": '", dir.string(), "' is not a directory"));
    if (!std::filesystem::exists(c.config_path))
      throw IoError(detail::cat(who, ": '", dir.string(), "' has no adapter_config.json"));
    if (!std::filesystem::exists(c.weights_path)) {
      const bool bin = std::filesystem::exists(dir / "adapter_model.bin");
      throw IoError(detail::cat(who, ": '", dir.string(), "' has no adapter_model.safetensors",
                                bin ? " (only safetensors is read: convert adapter_model.bin first)" : ""));
    }
    AdapterConfig parsed = parse(read_text_file(c.config_path), c.config_path);
    c.json = std::move(parsed.json);
    return c;
  }

  /// Parses the text of an adapter_config.json (no file is touched); `config_path` names it in
  /// errors. FormatError (invalid JSON, not an object) or LimitError (nesting deeper than
  /// limits().json_depth).
  static AdapterConfig parse(std::string_view text, const std::filesystem::path& config_path = "adapter_config.json") {
    AdapterConfig c;
    c.config_path = config_path;
    const std::string context = detail::cat("adapter config '", config_path.string(), "'");
    try {
      c.json = detail::parse_json_limited(text, context);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(detail::cat(context, ": invalid JSON: ", detail::printable(e.what())));
    }
    if (!c.json.is_object()) throw FormatError(detail::cat(context, ": expected a JSON object"));
    return c;
  }

  [[noreturn]] void fail(std::string_view field, std::string_view what) const {
    throw FormatError(detail::cat("adapter config '", config_path.string(), "': field \"", field, "\" ", what));
  }

  bool has(std::string_view name) const {
    auto it = json.find(name);
    return it != json.end() && !it->is_null();
  }
  const nlohmann::json& field(std::string_view name) const {
    if (!has(name)) fail(name, "is missing");
    return *json.find(name);
  }
  std::string string(std::string_view name) const {
    const auto& f = field(name);
    if (!f.is_string()) fail(name, detail::cat("must be a string, got ", f.dump()));
    return f.get<std::string>();
  }
  /// A positive integer (FormatError otherwise).
  index_t positive(std::string_view name) const {
    const auto& f = field(name);
    if (!f.is_number_integer() || f.get<std::int64_t>() <= 0)
      fail(name, detail::cat("must be a positive integer, got ", f.dump()));
    return f.get<index_t>();
  }
  /// A number (integer or not).
  double number(std::string_view name) const {
    const auto& f = field(name);
    if (!f.is_number()) fail(name, detail::cat("must be a number, got ", f.dump()));
    return f.get<double>();
  }
  /// A boolean, or `absent` when the field is missing or null.
  bool boolean(std::string_view name, bool absent) const {
    if (!has(name)) return absent;
    const auto& f = field(name);
    if (!f.is_boolean()) fail(name, detail::cat("must be true or false, got ", f.dump()));
    return f.get<bool>();
  }
  std::string peft_type() const { return string("peft_type"); }
  std::string task_type() const { return has("task_type") ? string("task_type") : std::string(); }

  /// FormatError unless peft_type is `want`.
  void require_type(std::string_view want, std::string_view reader) const {
    const std::string t = peft_type();
    if (t != want) fail("peft_type", detail::cat("is \"", t, "\"; ", reader, " reads \"", want, "\" adapters"));
  }
  /// FormatError unless num_transformer_submodules is absent or 1 (an encoder's adapter).
  void require_one_submodule() const {
    if (has("num_transformer_submodules") && json["num_transformer_submodules"] != 1)
      fail("num_transformer_submodules",
           detail::cat("is ", json["num_transformer_submodules"].dump(),
                       "; an encoder-decoder adapter does not fit an encoder-only model"));
  }
};

/// Writes dir/adapter_model.safetensors (metadata {"format": "pt"}, as PEFT) and
/// dir/adapter_config.json (keys sorted, two-space indent), each atomically; creates dir.
inline void write_adapter(const std::filesystem::path& dir, std::span<const TensorEntry> entries,
                          const nlohmann::json& config) {
  std::filesystem::create_directories(dir);
  save_safetensors(dir / "adapter_model.safetensors", entries, {{"format", "pt"}});
  const std::string text = config.dump(2) + "\n";
  write_file_atomic(dir / "adapter_config.json", std::as_bytes(std::span<const char>(text.data(), text.size())));
}

/// The fields every PEFT config writes (PeftConfigMixin / PromptLearningConfig), without the
/// type's own.
inline nlohmann::json common_config(std::string_view peft_type, const std::string& task_type,
                                    const std::string& base_model_name_or_path) {
  nlohmann::json j;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] =
      base_model_name_or_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(base_model_name_or_path);
  j["inference_mode"] = true;
  j["peft_type"] = std::string(peft_type);
  j["revision"] = nullptr;
  j["task_type"] = task_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(task_type);
  return j;
}

/// The entries of a sequence-classification head under PEFT's modules_to_save names
/// (<base>.classifier.weight / .bias, see the top).
template <class T>
std::vector<TensorEntry> head_entries(const Linear<T>& head, std::string_view peft_type) {
  const std::string p = head_prefix(peft_type) + "classifier.";
  std::vector<TensorEntry> out{entry(p + "weight", head.weight.value())};
  if (head.bias) out.push_back(entry(p + "bias", head.bias->value()));
  return out;
}

/// The classification head stored in an adapter file, if any: <base>.classifier.weight (labels,
/// C) and .bias (labels), under either base prefix (also the unstripped
/// "classifier.modules_to_save.default." spelling). Frozen unless `trainable`.
template <class T>
std::optional<Linear<T>> load_head(const SafeTensorsFile& file, bool trainable = false) {
  for (const char* base : {"base_model.", "base_model.model."}) {
    for (const char* mid : {"classifier.", "classifier.modules_to_save.default."}) {
      const std::string w = std::string(base) + mid + "weight", b = std::string(base) + mid + "bias";
      if (!file.contains(w)) continue;
      Linear<T> head;
      head.weight = Parameter<T, 2>("weight", file.load<T, 2>(w), trainable);
      if (file.contains(b)) {
        head.bias.emplace("bias", file.load<T, 1>(b), trainable);
        if (head.bias->shape()[0] != head.weight.shape()[0])
          throw FormatError(detail::cat("adapter '", file.path().string(), "': ", b, " has shape ",
                                        shape_str(head.bias->shape()), " but ", w, " has ",
                                        shape_str(head.weight.shape())));
      }
      return head;
    }
  }
  return std::nullopt;
}

}  // namespace deepprompt::peft_io
