#pragma once
// Prompt Tuning (Lester et al. 2021; PEFT's PROMPT_TUNING): `Tokens` trainable vectors put in
// front of the word embeddings at the input layer only.
//
//   auto prompt = dp::PromptTuning<20, 768>{};                                      // normal(0, 1)
//   auto text   = dp::PromptTuning<20, 768>({.init = dp::PromptTuningInit::text,
//                                            .init_token_ids = tok.encode("Classify the sentiment")},
//                                           bert.embeddings.word_embeddings.weight.value());
//   auto model  = dp::PromptedBert{std::move(bert), std::move(prompt)};  // peft/input_prompt_bert.hpp
//   auto out    = model.forward(ids, mask);      // last_hidden_state (B, 20 + T, C), as PEFT's
//
// One parameter, PEFT's PromptEmbedding: embedding.weight (Tokens, Hidden). Initialisation
// (PromptTuningOptions::init, PEFT's prompt_tuning_init):
//   random        normal(0, init_std), torch.nn.Embedding's default (std 1)          "RANDOM"
//   text          rows of the (frozen) word embeddings at init_token_ids: the tokenizer's
//                 input_ids of a text, special tokens included as PEFT's tokenizer call gives
//                 them, repeated (cycled) or truncated to Tokens, as PEFT's TEXT init does  "TEXT"
//   sample_vocab  rows of the word embeddings at ids drawn uniformly from [vocab_begin,
//                 vocab_end) (default: the whole vocabulary; Lester et al. drew from the 5,000
//                 most frequent tokens)                                              "SAMPLE_VOCAB"
// The rows are copied: the prompt does not share storage with the model.
//
// PEFT files: save_peft(dir) writes adapter_config.json (PromptTuningConfig's keys) and
// adapter_model.safetensors with prompt_embeddings (Tokens, Hidden), atomically; load_peft(dir)
// reads PROMPT_TUNING and P_TUNING files (both store plain prompt_embeddings (Tokens, Hidden)).
//
// Shared with P-Tuning v1 (peft/ptuning_v1.hpp): InputPromptSizes and input_prompt_detail.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../core/rng.hpp"
#include "deep_prompt.hpp"  // dynamic, PromptRun, PeftSaveOptions
#include "peft_io.hpp"

namespace deepprompt {

/// Run-time sizes of an input-layer prompt (0: the template argument's).
struct InputPromptSizes {
  index_t tokens = 0, hidden = 0;
};

namespace input_prompt_detail {

/// Sizes of a prompt with template extents (P, C): a static extent must be 0 or equal in `s`, a
/// dynamic one positive. ShapeError naming `type` otherwise.
inline InputPromptSizes resolve(InputPromptSizes s, index_t P, index_t C, const std::string& type) {
  auto one = [&](index_t given, index_t fixed, const char* what) {
    if (fixed < 0) {
      if (given <= 0)
        throw ShapeError(
            detail::cat(type, ": give a positive run-time ", what, " (InputPromptSizes::", what, "), got ", given));
      return given;
    }
    if (given != 0 && given != fixed)
      throw ShapeError(
          detail::cat(type, ": InputPromptSizes::", what, " = ", given, " differs from the template's ", fixed));
    return fixed;
  };
  return {one(s.tokens, P, "tokens"), one(s.hidden, C, "hidden")};
}

/// "Name<20, 768>" with dynamic extents as "dynamic".
inline std::string extents_name(const char* name, index_t P, index_t C) {
  auto e = [](index_t x) { return x < 0 ? std::string("dynamic") : std::to_string(x); };
  return detail::cat(name, "<", e(P), ", ", e(C), ">");
}

/// The model sizes a PEFT prompt-learning config records (num_layers, num_attention_heads;
/// filled in by attach(), 0 until then).
struct ModelSizes {
  index_t layers = 0, heads = 0;
};

/// The keys every PEFT prompt-learning config of an encoder adapter has.
inline nlohmann::json prompt_learning_config(std::string_view peft_type, const PeftSaveOptions& o, index_t tokens,
                                             index_t hidden, ModelSizes m) {
  nlohmann::json j = peft_io::common_config(peft_type, o.task_type, o.base_model_name_or_path);
  j["num_attention_heads"] = m.heads > 0 ? nlohmann::json(m.heads) : nlohmann::json(nullptr);
  j["num_layers"] = m.layers > 0 ? nlohmann::json(m.layers) : nlohmann::json(nullptr);
  j["num_transformer_submodules"] = 1;
  j["num_virtual_tokens"] = tokens;
  j["token_dim"] = hidden;
  return j;
}

/// What a PROMPT_TUNING or P_TUNING file holds: its config and prompt_embeddings (P, C),
/// checked against the static extents (FormatError naming the field and both values).
template <class T>
struct PromptFile {
  peft_io::AdapterConfig config;
  Tensor<T, 2> rows;  // (P, C)
  ModelSizes model;
};

template <class T>
PromptFile<T> read_prompt_file(const std::filesystem::path& dir, std::string_view want_type, index_t P, index_t C,
                               const std::string& type_name) {
  PromptFile<T> f{peft_io::AdapterConfig::read(dir, type_name + "::load_peft"), {}, {}};
  const auto& cfg = f.config;
  cfg.require_type(want_type, type_name);
  cfg.require_one_submodule();
  const index_t tokens = cfg.positive("num_virtual_tokens"), hidden = cfg.positive("token_dim");
  auto match = [&](const char* name, index_t file, index_t ours, const char* arg) {
    if (ours != dynamic && file != ours)
      cfg.fail(name, detail::cat("is ", file, " but ", type_name, " has ", arg, " = ", ours));
  };
  match("num_virtual_tokens", tokens, P, "Tokens");
  match("token_dim", hidden, C, "Hidden");
  if (cfg.has("num_layers")) f.model.layers = cfg.positive("num_layers");
  if (cfg.has("num_attention_heads")) f.model.heads = cfg.positive("num_attention_heads");
  const auto file = SafeTensorsFile::open(cfg.weights_path);
  if (!file.contains("prompt_embeddings"))
    throw FormatError(detail::cat("adapter '", cfg.weights_path.string(), "': no tensor \"prompt_embeddings\""));
  const auto& info = file.info("prompt_embeddings");
  const std::vector<index_t> want{tokens, hidden};
  if (info.shape != want)
    throw FormatError(detail::cat("adapter '", cfg.weights_path.string(), "': prompt_embeddings has shape ",
                                  shape_str(info.shape), ", but the config says ", shape_str(want),
                                  " (num_virtual_tokens, token_dim)"));
  f.rows = file.template load<T, 2>("prompt_embeddings");
  return f;
}

}  // namespace input_prompt_detail

enum class PromptTuningInit { random, text, sample_vocab };

/// PEFT's name of an initialisation ("RANDOM", "TEXT", "SAMPLE_VOCAB").
inline const char* peft_name(PromptTuningInit i) {
  switch (i) {
    case PromptTuningInit::text: return "TEXT";
    case PromptTuningInit::sample_vocab: return "SAMPLE_VOCAB";
    default: return "RANDOM";
  }
}

struct PromptTuningOptions {
  PromptTuningInit init = PromptTuningInit::random;
  double init_std = 1.0;                      // random: normal(0, init_std)
  std::vector<std::int64_t> init_token_ids{};  // text: the tokenizer's input_ids of the init text
  std::string init_text{};                    // text: recorded as prompt_tuning_init_text
  std::string tokenizer_name_or_path{};       // recorded as tokenizer_name_or_path
  std::int64_t vocab_begin = 0, vocab_end = 0;  // sample_vocab: ids from [begin, end); end 0: V
  std::uint64_t seed = 0;
};

/// Lester et al.'s prompt: `Tokens` trainable input vectors of width `Hidden`. Either extent
/// may be `dynamic` (given at run time in InputPromptSizes).
template <index_t Tokens, index_t Hidden, class T = float>
class PromptTuning {
  static_assert(Tokens == dynamic || Tokens > 0, "PromptTuning<Tokens, Hidden>: Tokens must be positive (or dynamic)");
  static_assert(Hidden == dynamic || Hidden > 0, "PromptTuning<Tokens, Hidden>: Hidden must be positive (or dynamic)");
  static_assert(std::is_floating_point_v<T>, "PromptTuning<..., T>: T must be float or double");

 public:
  using value_type = T;
  static constexpr index_t static_tokens = Tokens, static_hidden = Hidden;
  static constexpr bool is_static = Tokens != dynamic && Hidden != dynamic;

  Parameter<T, 2> embedding;  // (Tokens, Hidden): PEFT's PromptEmbedding.embedding.weight

  /// Static sizes. `word_embeddings` (V, Hidden): the model's (frozen) word-embedding table,
  /// required by the text and sample_vocab initialisations (Error otherwise).
  explicit PromptTuning(const PromptTuningOptions& o = {}, const Tensor<T, 2>& word_embeddings = {})
    requires is_static
      : PromptTuning(InputPromptSizes{}, o, word_embeddings) {}
  /// Run-time sizes for the dynamic extents (a static extent: 0 or its own value).
  explicit PromptTuning(InputPromptSizes s, const PromptTuningOptions& o = {},
                        const Tensor<T, 2>& word_embeddings = {})
      : opt_(o) {
    s = input_prompt_detail::resolve(s, Tokens, Hidden, type_name());
    embedding = Parameter<T, 2>("embedding.weight", Tensor<T, 2>({s.tokens, s.hidden}));
    initialise(word_embeddings);
  }

  index_t tokens() const { return embedding.shape()[0]; }
  index_t hidden() const { return embedding.shape()[1]; }
  const PromptTuningOptions& options() const { return opt_; }

  /// The prompt rows (Tokens, Hidden) for one forward pass (the run is not used: no dropout).
  Var<T, 2> input_embeddings(const PromptRun& = {}) const { return embedding.var(); }

  /// Records the model's layer and head counts (PEFT's config has them); attach() calls it.
  void set_model(index_t layers, index_t heads) { model_ = {layers, heads}; }

  /// adapter_config.json's contents (PEFT's PromptTuningConfig).
  nlohmann::json peft_config(const PeftSaveOptions& o = {}) const {
    auto j = input_prompt_detail::prompt_learning_config("PROMPT_TUNING", o, tokens(), hidden(), model_);
    j["prompt_tuning_init"] = peft_name(opt_.init);
    j["prompt_tuning_init_text"] =
        opt_.init_text.empty() ? nlohmann::json(nullptr) : nlohmann::json(opt_.init_text);
    j["tokenizer_kwargs"] = nullptr;
    j["tokenizer_name_or_path"] =
        opt_.tokenizer_name_or_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(opt_.tokenizer_name_or_path);
    return j;
  }

  /// Writes a PEFT PROMPT_TUNING adapter directory: prompt_embeddings (Tokens, Hidden) and
  /// o.extra (e.g. peft_io::head_entries(head, "PROMPT_TUNING")), each file atomically.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) const {
    std::vector<TensorEntry> entries{entry("prompt_embeddings", embedding.value().clone())};
    entries.insert(entries.end(), o.extra.begin(), o.extra.end());
    peft_io::write_adapter(dir, entries, peft_config(o));
  }

  /// Reads a PROMPT_TUNING adapter directory (or a P_TUNING one, whose prompt_embeddings are the
  /// encoder's output: the same input-layer prompt). Static extents must match the file
  /// (FormatError naming the field and both values). The prompt is trainable unless told.
  static PromptTuning load_peft(const std::filesystem::path& dir, bool trainable = true) {
    std::string type = "PROMPT_TUNING";
    {
      const auto peek = peft_io::AdapterConfig::read(dir, type_name() + "::load_peft");
      if (peek.has("peft_type") && peek.peft_type() == "P_TUNING") type = "P_TUNING";
    }
    auto f = input_prompt_detail::read_prompt_file<T>(dir, type, Tokens, Hidden, type_name());
    PromptTuningOptions o;
    if (type == "PROMPT_TUNING") {
      if (f.config.has("prompt_tuning_init_text")) o.init_text = f.config.string("prompt_tuning_init_text");
      if (f.config.has("tokenizer_name_or_path")) o.tokenizer_name_or_path = f.config.string("tokenizer_name_or_path");
      if (f.config.has("prompt_tuning_init")) {
        const std::string i = f.config.string("prompt_tuning_init");
        o.init = i == "TEXT" ? PromptTuningInit::text
                 : i == "SAMPLE_VOCAB" ? PromptTuningInit::sample_vocab
                                       : PromptTuningInit::random;
      }
    }
    PromptTuning p(InputPromptSizes{f.rows.extent(0), f.rows.extent(1)}, PromptTuningOptions{.init_std = 0.0});
    p.opt_ = o;
    p.model_ = f.model;
    p.embedding = Parameter<T, 2>("embedding.weight", f.rows, trainable);
    return p;
  }

  /// "PromptTuning<20, 768>" (dynamic extents as "dynamic").
  static std::string type_name() { return input_prompt_detail::extents_name("PromptTuning", Tokens, Hidden); }

  template <class V>
  void visit(V&& v) {
    v("embedding.weight", embedding);
  }

 private:
  void initialise(const Tensor<T, 2>& words) {
    const index_t P = tokens(), C = hidden();
    const auto& w = embedding.value();
    Generator gen(opt_.seed);
    if (opt_.init == PromptTuningInit::random) {
      if (opt_.init_std > 0)
        init::normal(w, 0.0, opt_.init_std, gen);
      else
        w.fill(T(0));
      return;
    }
    const char* what = opt_.init == PromptTuningInit::text ? "text" : "sample_vocab";
    if (words.empty())
      throw Error(detail::cat(type_name(), ": the ", what,
                              " initialisation needs the model's word embeddings (V, Hidden) as the second argument"));
    if (words.extent(1) != C)
      throw ShapeError(detail::cat(type_name(), ": the word embeddings ", shape_str(words.shape()),
                                   " are not of the prompt's width ", C));
    const index_t V = words.extent(0);
    std::vector<std::int64_t> ids(static_cast<std::size_t>(P));
    if (opt_.init == PromptTuningInit::text) {
      const auto& text = opt_.init_token_ids;
      if (text.empty()) throw Error(detail::cat(type_name(), ": the text initialisation needs init_token_ids"));
      for (index_t i = 0; i < P; ++i) ids[static_cast<std::size_t>(i)] = text[static_cast<std::size_t>(i) % text.size()];
    } else {
      const std::int64_t lo = opt_.vocab_begin, hi = opt_.vocab_end > 0 ? opt_.vocab_end : V;
      if (lo < 0 || hi > V || lo >= hi)
        throw Error(detail::cat(type_name(), ": sample_vocab range [", lo, ", ", hi, ") is not a non-empty part of [0, ",
                                V, ")"));
      const auto first = gen.advance(static_cast<std::uint64_t>(P));
      for (index_t i = 0; i < P; ++i) {
        const double u = Generator::to_unit(gen.word_at(first + static_cast<std::uint64_t>(i)));
        ids[static_cast<std::size_t>(i)] =
            std::min<std::int64_t>(hi - 1, lo + static_cast<std::int64_t>(std::floor(u * double(hi - lo))));
      }
    }
    for (index_t i = 0; i < P; ++i) {
      const std::int64_t id = ids[static_cast<std::size_t>(i)];
      if (id < 0 || id >= V)
        throw Error(detail::cat(type_name(), ": init token id ", id, " is out of range for a vocabulary of ", V));
      std::copy_n(words.data() + id * C, C, w.data() + i * C);
    }
  }

  PromptTuningOptions opt_;
  input_prompt_detail::ModelSizes model_{};
};

/// A PromptTuning whose sizes are known only at run time.
template <class T = float>
using DynamicPromptTuning = PromptTuning<dynamic, dynamic, T>;

}  // namespace deepprompt
