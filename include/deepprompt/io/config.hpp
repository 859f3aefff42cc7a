#pragma once
// Hugging Face config.json for the models of the library: BERT and T5.
//
// The dimension fields are required (a config without them is surely not the one meant; guessing
// bert-base shapes would only fail later at the weights); every other field takes the default of
// Hugging Face's HfBertConfig / HfT5Config when absent or null. A wrong JSON type, a missing required
// field, an unknown model_type or an inconsistent value raises FormatError naming the file and
// the field. Unknown fields (architectures, task_specific_params, id2label...) are ignored.
// A config whose dimensions imply more parameters than limits().model_parameters, or whose JSON
// nests deeper than limits().json_depth, raises LimitError (io/limits.hpp).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "../core/tensor.hpp"
#include "file.hpp"
#include "json.hpp"
#include "limits.hpp"

namespace deepprompt {

/// transformers.BertConfig (model_type "bert"); defaults are bert-base-uncased's.
struct HfBertConfig {
  std::string model_type = "bert";
  index_t vocab_size = 30522;              // required
  index_t hidden_size = 768;               // required
  index_t num_hidden_layers = 12;          // required
  index_t num_attention_heads = 12;        // required; divides hidden_size
  index_t intermediate_size = 3072;        // required
  std::string hidden_act = "gelu";         // "gelu" is the erf form; "gelu_new" the tanh one
  index_t max_position_embeddings = 512;
  index_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  index_t pad_token_id = 0;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::string position_embedding_type = "absolute";
  std::optional<double> classifier_dropout;  // null: use hidden_dropout_prob
};

/// transformers.T5Config (model_type "t5" or "mt5"); defaults are t5-small's.
struct HfT5Config {
  std::string model_type = "t5";
  index_t vocab_size = 32128;              // required
  index_t d_model = 512;                   // required
  index_t d_kv = 64;                       // required (num_heads * d_kv need not be d_model)
  index_t d_ff = 2048;                     // required
  index_t num_layers = 6;                  // required
  index_t num_decoder_layers = 6;          // default: num_layers
  index_t num_heads = 8;                   // required
  index_t relative_attention_num_buckets = 32;
  index_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  std::string feed_forward_proj = "relu";  // "[gated-]ACT": "relu" (T5), "gated-gelu" (T5 v1.1)
  bool is_gated_act = false;               // derived: feed_forward_proj starts with "gated-"
  std::string dense_act_fn = "relu";       // derived: ACT ("gated-gelu" means "gelu_new", as in HF)
  bool tie_word_embeddings = true;
  index_t decoder_start_token_id = 0;      // default: pad_token_id
  index_t eos_token_id = 1;
  index_t pad_token_id = 0;
};

using ModelConfig = std::variant<HfBertConfig, HfT5Config>;

namespace detail {

/// Typed access to the fields of one config object; errors name the source and the field.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  [[noreturn]] void fail(std::string_view field, std::string_view what) const {
    throw FormatError(cat("config '", source_, "': field \"", field, "\": ", what));
  }

  const nlohmann::json* find(std::string_view field) const {
    auto it = j_.find(field);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  template <class T>
  T required(std::string_view field) const {
    const auto* v = find(field);
    if (!v) fail(field, j_.contains(field) ? "is null" : "missing (required)");
    return as<T>(field, *v);
  }
  template <class T>
  T optional(std::string_view field, T fallback) const {
    const auto* v = find(field);
    return v ? as<T>(field, *v) : fallback;
  }
  template <class T>
  void read(std::string_view field, T& out) const {
    out = optional<T>(field, out);
  }
  index_t positive(std::string_view field) const {
    const auto v = required<index_t>(field);
    if (v <= 0) fail(field, cat("must be positive, got ", v));
    return v;
  }

 private:
  template <class T>
  T as(std::string_view field, const nlohmann::json& v) const {
    if constexpr (std::is_same_v<T, index_t>) {
      if (!v.is_number_integer()) fail(field, cat("expected an integer, got ", v.dump()));
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        fail(field, cat("integer ", v.dump(), " is out of range"));
      return v.get<index_t>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!v.is_number()) fail(field, cat("expected a number, got ", v.dump()));
      return v.get<double>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail(field, cat("expected true or false, got ", v.dump()));
      return v.get<bool>();
    } else {
      static_assert(std::is_same_v<T, std::string>);
      if (!v.is_string()) fail(field, cat("expected a string, got ", v.dump()));
      return v.get<std::string>();
    }
  }

  const nlohmann::json& j_;
  std::string source_;
};

inline void check_probability(const ConfigReader& r, std::string_view field, double p) {
  if (!(p >= 0.0 && p < 1.0)) r.fail(field, cat("must be in [0, 1), got ", p));
}
inline void check_epsilon(const ConfigReader& r, std::string_view field, double eps) {
  if (!(eps > 0.0)) r.fail(field, cat("must be positive, got ", eps));
}

// The parameters a model of these dimensions has (weight matrices and embeddings; biases and
// norms are a rounding error), saturating instead of overflowing.
inline std::uint64_t dims(std::initializer_list<index_t> factors) {
  std::uint64_t p = 1;
  for (auto f : factors) p = saturating_mul(p, static_cast<std::uint64_t>(std::max<index_t>(f, 0)));
  return p;
}
inline std::uint64_t bert_parameters(const HfBertConfig& c) {
  const auto rows = saturating_add(saturating_add(dims({c.vocab_size}), dims({c.max_position_embeddings})),
                                   dims({c.type_vocab_size}));
  const auto layer = saturating_add(dims({4, c.hidden_size, c.hidden_size}), dims({2, c.hidden_size, c.intermediate_size}));
  return saturating_add(saturating_mul(rows, dims({c.hidden_size})), saturating_mul(layer, dims({c.num_hidden_layers})));
}
inline std::uint64_t t5_parameters(const HfT5Config& c) {
  const auto attention = dims({4, c.num_heads, c.d_kv, c.d_model});
  const auto ff = dims({c.is_gated_act ? 3 : 2, c.d_model, c.d_ff});
  const auto encoder = saturating_mul(saturating_add(attention, ff), dims({c.num_layers}));
  const auto decoder = saturating_mul(saturating_add(saturating_mul(2, attention), ff), dims({c.num_decoder_layers}));
  const auto embeddings = dims({c.vocab_size, c.d_model, c.tie_word_embeddings ? 1 : 2});
  const auto buckets = dims({2, c.relative_attention_num_buckets, c.num_heads});
  return saturating_add(saturating_add(embeddings, buckets), saturating_add(encoder, decoder));
}
/// LimitError when the model of `c` would have more than limits().model_parameters parameters.
inline void check_parameters(std::string_view source, std::uint64_t count) {
  check_limit(cat("config '", source, "'"), "the parameter count implied by the dimensions", count,
              limits().model_parameters, "model_parameters");
}

inline HfBertConfig bert_from(const ConfigReader& r, std::string model_type) {
  HfBertConfig c;
  c.model_type = std::move(model_type);
  c.vocab_size = r.positive("vocab_size");
  c.hidden_size = r.positive("hidden_size");
  c.num_hidden_layers = r.positive("num_hidden_layers");
  c.num_attention_heads = r.positive("num_attention_heads");
  c.intermediate_size = r.positive("intermediate_size");
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail("num_attention_heads", cat(c.num_attention_heads, " does not divide hidden_size ", c.hidden_size));
  r.read("hidden_act", c.hidden_act);
  r.read("max_position_embeddings", c.max_position_embeddings);
  r.read("type_vocab_size", c.type_vocab_size);
  r.read("layer_norm_eps", c.layer_norm_eps);
  r.read("pad_token_id", c.pad_token_id);
  r.read("hidden_dropout_prob", c.hidden_dropout_prob);
  r.read("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  r.read("position_embedding_type", c.position_embedding_type);
  if (r.find("classifier_dropout")) c.classifier_dropout = r.required<double>("classifier_dropout");
  if (c.max_position_embeddings <= 0) r.fail("max_position_embeddings", "must be positive");
  if (c.type_vocab_size < 0) r.fail("type_vocab_size", "must not be negative");
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    r.fail("pad_token_id", cat(c.pad_token_id, " is not a token id below vocab_size ", c.vocab_size));
  check_epsilon(r, "layer_norm_eps", c.layer_norm_eps);
  check_probability(r, "hidden_dropout_prob", c.hidden_dropout_prob);
  check_probability(r, "attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  if (c.classifier_dropout) check_probability(r, "classifier_dropout", *c.classifier_dropout);
  return c;
}

inline HfT5Config t5_from(const ConfigReader& r, std::string model_type) {
  HfT5Config c;
  c.model_type = std::move(model_type);
  c.vocab_size = r.positive("vocab_size");
  c.d_model = r.positive("d_model");
  c.d_kv = r.positive("d_kv");
  c.d_ff = r.positive("d_ff");
  c.num_layers = r.positive("num_layers");
  c.num_heads = r.positive("num_heads");
  c.num_decoder_layers = r.optional<index_t>("num_decoder_layers", c.num_layers);
  r.read("relative_attention_num_buckets", c.relative_attention_num_buckets);
  r.read("relative_attention_max_distance", c.relative_attention_max_distance);
  r.read("dropout_rate", c.dropout_rate);
  r.read("layer_norm_epsilon", c.layer_norm_epsilon);
  r.read("feed_forward_proj", c.feed_forward_proj);
  r.read("tie_word_embeddings", c.tie_word_embeddings);
  r.read("eos_token_id", c.eos_token_id);
  r.read("pad_token_id", c.pad_token_id);
  c.decoder_start_token_id = r.optional<index_t>("decoder_start_token_id", c.pad_token_id);
  if (c.num_decoder_layers <= 0) r.fail("num_decoder_layers", "must be positive");
  if (c.relative_attention_num_buckets <= 0) r.fail("relative_attention_num_buckets", "must be positive");
  if (c.relative_attention_max_distance <= 0) r.fail("relative_attention_max_distance", "must be positive");
  check_epsilon(r, "layer_norm_epsilon", c.layer_norm_epsilon);
  check_probability(r, "dropout_rate", c.dropout_rate);
  for (auto [field, id] : {std::pair{"eos_token_id", c.eos_token_id}, std::pair{"pad_token_id", c.pad_token_id},
                           std::pair{"decoder_start_token_id", c.decoder_start_token_id}})
    if (id < 0 || id >= c.vocab_size) r.fail(field, cat(id, " is not a token id below vocab_size ", c.vocab_size));

  // As transformers: "ACT" or "gated-ACT"; "gated-gelu" is the tanh approximation (gelu_new).
  const std::string& p = c.feed_forward_proj;
  c.is_gated_act = p.rfind("gated-", 0) == 0;
  c.dense_act_fn = c.is_gated_act ? p.substr(6) : p;
  if (p == "gated-gelu") c.dense_act_fn = "gelu_new";
  if (c.dense_act_fn != "relu" && c.dense_act_fn != "gelu" && c.dense_act_fn != "gelu_new" && c.dense_act_fn != "silu")
    r.fail("feed_forward_proj",
           cat("\"", p, "\" is not \"ACT\" or \"gated-ACT\" with ACT one of relu, gelu, gelu_new, silu"));
  return c;
}

}  // namespace detail

/// Parses the text of a config.json; `source` names it in errors (a path, or "<string>").
inline ModelConfig parse_config(std::string_view json_text, std::string_view source = "<string>") {
  nlohmann::json j;
  try {
    j = detail::parse_json_limited(json_text, detail::cat("config '", source, "'"));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(detail::cat("config '", source, "': invalid JSON: ", detail::printable(e.what())));
  }
  if (!j.is_object()) throw FormatError(detail::cat("config '", source, "': not a JSON object"));
  const detail::ConfigReader r(j, std::string(source));
  auto type = r.required<std::string>("model_type");
  if (type == "bert") {
    auto c = detail::bert_from(r, std::move(type));
    detail::check_parameters(source, detail::bert_parameters(c));
    return c;
  }
  if (type == "t5" || type == "mt5") {
    auto c = detail::t5_from(r, std::move(type));
    detail::check_parameters(source, detail::t5_parameters(c));
    return c;
  }
  r.fail("model_type", detail::cat("unknown model_type \"", type, "\" (supported: bert, t5, mt5)"));
}

/// Reads a config.json (or the config.json of a folder). Throws IoError or FormatError.
inline ModelConfig read_config(const std::filesystem::path& path) {
  const auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  return parse_config(read_text_file(file), file.string());
}

/// Reads a config.json that must describe a BERT model.
inline HfBertConfig read_bert_config(const std::filesystem::path& path) {
  auto c = read_config(path);
  if (auto* b = std::get_if<HfBertConfig>(&c)) return *b;
  throw FormatError(detail::cat("config '", path.string(), "': field \"model_type\": \"",
                                std::get<HfT5Config>(c).model_type, "\" is not a BERT model"));
}

/// Reads a config.json that must describe a T5 model.
inline HfT5Config read_t5_config(const std::filesystem::path& path) {
  auto c = read_config(path);
  if (auto* t = std::get_if<HfT5Config>(&c)) return *t;
  throw FormatError(detail::cat("config '", path.string(), "': field \"model_type\": \"",
                                std::get<HfBertConfig>(c).model_type, "\" is not a T5 model"));
}

}  // namespace deepprompt
