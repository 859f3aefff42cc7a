#pragma once
// P-Tuning v2 (Liu et al., THUDM's code) and PEFT's prefix tuning: DeepPrompt<Layers, Tokens, Hidden>.
//
//   auto prompt = dp::DeepPrompt<Cfg::layers, 20, Cfg::hidden>{};      // normal(0, 1) as torch.nn.Embedding
//   auto model  = dp::PromptedBert{std::move(bert), std::move(prompt)}; // peft/deep_prompt_bert.hpp
//   auto any    = dp::DeepPrompt<dp::dynamic, dp::dynamic, dp::dynamic>({.layers = 12, .tokens = 20, .hidden = 768});
//
// The trainable prompt is stored as PEFT stores it: one parameter
//   prompt_embeddings (Tokens, Layers * 2 * Hidden), each row ordered (layer, key/value, head, head_dim),
// and layer l's key/value prefix is, through ops (reshape, permute, slice: gradients reach it),
//   keys   = rows[:, l, 0] as (H, Tokens, D),   values = rows[:, l, 1] as (H, Tokens, D),
// exactly PEFT's get_prompt(): view (P, 2L, H, D), permute to (2L, H, P, D), split in pairs.
//
// Options (DeepPromptOptions):
//   - heads: the model's attention heads (the row layout does not depend on it, the (H, P, D) view
//     does); 0: attach() takes it from the model.
//   - init: normal(0, init_std) (default std 1: torch.nn.Embedding's, as PEFT and THUDM), zeros
//     (not a no-op: zero keys score 0 and their zero values dilute the attention), or
//     uniform(-init_range, init_range).
//   - prefix_dropout: THUDM's P-Tuning v2 applies dropout (hidden_dropout_prob) to the prefix
//     while training, with an independent mask per example (its prefix is expanded to the batch
//     before the dropout); PEFT applies none (default 0). With dropout the prefix is given per
//     example (B, H, P, D).
//   - shift_positions: Hugging Face BERT given past_key_values numbers the real tokens from
//     P (past_key_values_length); default on, for parity with PEFT and THUDM.
//   - projection: the reparameterisation of Prefix Tuning / THUDM's prefix_projection,
//     Embedding(Tokens, Hidden) -> Linear(Hidden, projection) -> tanh -> Linear(projection,
//     2 * Layers * Hidden) (THUDM: 512); 0: none. fold() evaluates it once into plain
//     prompt_embeddings (what PEFT saves).
//
// Serving: freeze_constants() computes every layer's keys and values once, without a tape,
// folding the projection and skipping dropout: a PromptConstants<T>, which forward_with_prompt
// takes like a prompt and peft/serving.hpp batches across tasks.
//
// PEFT files: save_peft(dir) writes adapter_config.json and adapter_model.safetensors
// (prompt_embeddings, projection folded), both atomically; load_peft(dir) reads them (for a
// static DeepPrompt the sizes must match, FormatError naming the field otherwise).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../core/rng.hpp"
#include "../io/file.hpp"
#include "../io/safetensors.hpp"
#include "../nn/attention.hpp"  // KVPrefix
#include "../nn/linear.hpp"
#include "../ops/activation.hpp"
#include "../ops/concat.hpp"
#include "../ops/dropout.hpp"
#include "../ops/shape.hpp"
#include "prefix_rows.hpp"
#include "prompt_checks.hpp"

namespace deepprompt {

enum class PromptInit { normal, zeros, uniform };

/// Run-time sizes of a prompt (0: the template argument's).
struct PromptSizes {
  index_t layers = 0, tokens = 0, hidden = 0;
};

struct DeepPromptOptions {
  index_t heads = 0;                    // attention heads; 0: set by attach() from the model
  PromptInit init = PromptInit::normal;
  double init_std = 1.0;                // normal(0, init_std): torch.nn.Embedding's default (PEFT, THUDM)
  double init_range = 0.5;              // uniform(-init_range, init_range)
  std::uint64_t seed = 0;               // of the initial values and of the prefix-dropout stream
  double prefix_dropout = 0.0;          // THUDM: hidden_dropout_prob (0.1); PEFT: 0
  bool shift_positions = true;          // HF: real tokens' positions start at Tokens
  index_t projection = 0;               // reparameterisation width (THUDM: 512); 0: none
};

/// Per-call settings of a prompt's forward (prefixes()).
struct PromptRun {
  bool training = false;           // prefix dropout on (when the prompt has any)
  index_t batch = 1;               // B: prefix dropout draws one mask per example
  Generator* generator = nullptr;  // the dropout stream; nullptr: the prompt's own
};

/// A trained prompt's per-layer keys and values as constants (no tape), for serving.
/// layers[l]: (H, P_l, D) shared by the batch, or empty (no prompt on layer l).
template <class T, DevicePolicy Dev = Cpu>
struct PromptConstants {
  using value_type = T;
  using device_type = Dev;
  std::vector<KVPrefix<T, Dev>> layers;
  bool shift = true;  // HF's position shift by layers[0]'s length

  index_t num_layers() const { return static_cast<index_t>(layers.size()); }
  index_t length(index_t l) const { return layers.at(static_cast<std::size_t>(l)).length(); }
  // The interface of a prompt, so that the model's forward takes constants like a prompt:
  bool shift_positions() const { return shift; }
  /// The per-layer prefixes (the run is ignored: constants have no dropout).
  const std::vector<KVPrefix<T, Dev>>& prefixes(const PromptRun& = {}) const { return layers; }
};

namespace peft_detail {

/// The sizes of a prompt with template extents (L, P, C): a static extent must be 0 or equal in
/// `s`, a dynamic one positive. ShapeError naming `type` otherwise.
inline PromptSizes resolve_sizes(PromptSizes s, index_t L, index_t P, index_t C, const std::string& type) {
  auto one = [&](index_t given, index_t fixed, const char* what) {
    if (fixed < 0) {
      if (given <= 0)
        throw ShapeError(detail::cat(type, ": give a positive run-time ", what, " (PromptSizes::", what, "), got ", given));
      return given;
    }
    if (given != 0 && given != fixed)
      throw ShapeError(detail::cat(type, ": PromptSizes::", what, " = ", given, " differs from the template's ", fixed));
    return fixed;
  };
  return {one(s.layers, L, "layers"), one(s.tokens, P, "tokens"), one(s.hidden, C, "hidden")};
}

/// "Name<12, 20, 768>" with dynamic extents as "dynamic".
inline std::string extents_name(const char* name, index_t L, index_t P, index_t C) {
  auto e = [](index_t x) { return x < 0 ? std::string("dynamic") : std::to_string(x); };
  return detail::cat(name, "<", e(L), ", ", e(P), ", ", e(C), ">");
}

inline void check_heads(index_t heads, index_t hidden, const char* who) {
  if (heads <= 0 || hidden % heads != 0)
    throw ShapeError(detail::cat(who, ": ", heads, " attention heads do not divide the hidden size ", hidden));
}

template <class T, std::size_t R>
void init_prompt(const Tensor<T, R>& t, const DeepPromptOptions& o, Generator& gen) {
  switch (o.init) {
    case PromptInit::normal: init::normal(t, 0.0, o.init_std, gen); break;
    case PromptInit::zeros: t.fill(T(0)); break;
    case PromptInit::uniform: init::uniform(t, -o.init_range, o.init_range, gen); break;
  }
}

}  // namespace peft_detail

/// What save_peft() writes besides the prompt.
struct PeftSaveOptions {
  std::string task_type = "SEQ_CLS";        // PEFT's TaskType: SEQ_CLS, TOKEN_CLS, SEQ_2_SEQ_LM, ...
  std::string base_model_name_or_path{};    // empty: null
  std::vector<TensorEntry> extra{};         // further tensors (a task head under PEFT's modules_to_save names)
};

namespace detail {

/// The code shared by every DeepPrompt<Layers, Tokens, Hidden, T, Dev>: sizes live here at run
/// time. Dev: where the prompt's parameters live (initialised on the host, then copied).
template <class T, DevicePolicy Dev>
class DeepPromptImpl {
 public:
  using value_type = T;
  using device_type = Dev;

  /// (Tokens, Layers * 2 * Hidden); absent while the prompt is reparameterised.
  std::optional<Parameter<T, 2, Dev>> prompt_embeddings;
  /// The reparameterisation, while not folded.
  std::optional<PrefixProjection<T, Dev>> projection;
  Generator generator;  // prefix dropout's default stream

  index_t layers() const { return layers_; }
  index_t tokens() const { return tokens_; }
  index_t hidden() const { return hidden_; }
  /// 0 until attached to a model (or given in the options).
  index_t heads() const { return opt_.heads; }
  const DeepPromptOptions& options() const { return opt_; }
  bool shift_positions() const { return opt_.shift_positions; }
  void set_shift_positions(bool on) { opt_.shift_positions = on; }
  void set_prefix_dropout(double p) {
    if (!(p >= 0.0 && p <= 1.0)) throw Error(detail::cat("DeepPrompt: prefix dropout ", p, " is not in [0, 1]"));
    opt_.prefix_dropout = p;
  }
  /// The width of the reparameterisation the prompt was trained with (also after fold()); 0: none.
  index_t projection_width() const { return projection ? projection->first.out_features() : folded_from_; }

  /// Sets the number of attention heads (attach() does). Throws ShapeError unless it divides
  /// the hidden size, or when the prompt already has another number of heads.
  void set_heads(index_t heads) {
    peft_detail::check_heads(heads, hidden_, "DeepPrompt");
    if (opt_.heads != 0 && opt_.heads != heads)
      throw ShapeError(detail::cat("DeepPrompt: the prompt was made for ", opt_.heads, " attention heads, the model has ",
                                   heads));
    opt_.heads = heads;
  }

  /// The prompt rows (Tokens, Layers * 2 * Hidden): prompt_embeddings, or the projection's output.
  Var<T, 2, Dev> rows() const {
    if (projection) return projection->forward();
    return prompt_embeddings->var();
  }

  /// Every layer's key/value prefix for one forward pass: shared (H, P, D), or per example
  /// (B, H, P, D) when training with prefix dropout. The list is this prompt's own and is
  /// rewritten by the next call (reusing its memory: a warmed-up step allocates nothing here);
  /// copy it to keep it across calls.
  const std::vector<KVPrefix<T, Dev>>& prefixes(const PromptRun& run = {}) {
    require_heads("prefixes");
    const Var<T, 2, Dev> r = rows();
    if (run.training && opt_.prefix_dropout > 0.0) {
      Generator& gen = run.generator ? *run.generator : generator;
      kv_prefixes_into(prefixes_, dropout(repeat_rows(r, run.batch), static_cast<T>(opt_.prefix_dropout), gen, true),
                       layers_, opt_.heads);
    } else {
      kv_prefixes_into(prefixes_, r, layers_, opt_.heads);
    }
    return prefixes_;
  }

  /// Evaluates the reparameterisation once into plain prompt_embeddings (trainable, as the
  /// projection was) and drops the projection. No-op without one.
  void fold() {
    if (!projection) return;
    const bool trainable = projection->embedding.trainable();
    Tensor<T, 2, Dev> folded;
    {
      NoGradGuard no_grad;
      folded = copy_of(projection->forward().value());
    }
    folded_from_ = projection->first.out_features();
    projection.reset();
    prompt_embeddings.emplace("prompt_embeddings", std::move(folded), trainable);
  }

  /// Every layer's keys and values as constants, computed once without a tape (the projection
  /// evaluated, no dropout); independent of later changes to the prompt.
  PromptConstants<T, Dev> freeze_constants() const {
    require_heads("freeze_constants");
    NoGradGuard no_grad;
    PromptConstants<T, Dev> c;
    c.layers = kv_prefixes(Var<T, 2, Dev>(copy_of(rows().value())), layers_, opt_.heads);
    c.shift = opt_.shift_positions;
    return c;
  }

  /// Writes dir/adapter_config.json and dir/adapter_model.safetensors as PEFT does for
  /// PREFIX_TUNING (prompt_embeddings with the projection folded; inference_mode true), each
  /// atomically; creates dir.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) const {
    require_heads("save_peft");
    std::filesystem::create_directories(dir);
    Tensor<T, 2> rows_now;  // on the host
    {
      NoGradGuard no_grad;
      rows_now = to_host(rows().value());
    }
    std::vector<TensorEntry> entries{entry("prompt_embeddings", rows_now)};
    entries.insert(entries.end(), o.extra.begin(), o.extra.end());
    save_safetensors(dir / "adapter_model.safetensors", entries, {{"format", "pt"}});
    const std::string text = peft_config(o).dump(2) + "\n";
    write_file_atomic(dir / "adapter_config.json", std::as_bytes(std::span<const char>(text.data(), text.size())));
  }

  /// adapter_config.json's contents (PEFT's PrefixTuningConfig, keys sorted as PEFT writes them).
  nlohmann::json peft_config(const PeftSaveOptions& o = {}) const {
    nlohmann::json j;
    j["auto_mapping"] = nullptr;
    j["base_model_name_or_path"] =
        o.base_model_name_or_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.base_model_name_or_path);
    const index_t width = projection_width();
    j["encoder_hidden_size"] = width > 0 ? width : hidden_;
    j["inference_mode"] = true;
    j["num_attention_heads"] = opt_.heads;
    j["num_layers"] = layers_;
    j["num_transformer_submodules"] = 1;
    j["num_virtual_tokens"] = tokens_;
    j["peft_type"] = "PREFIX_TUNING";
    j["prefix_projection"] = width > 0;
    j["revision"] = nullptr;
    j["task_type"] = o.task_type;
    j["token_dim"] = hidden_;
    return j;
  }

  template <class V>
  void visit(V&& v) {
    v("prompt_embeddings", prompt_embeddings);
    v("projection", projection);
  }

 protected:
  DeepPromptImpl(PromptSizes s, const DeepPromptOptions& o) : generator(o.seed + 1), opt_(o) {
    layers_ = s.layers, tokens_ = s.tokens, hidden_ = s.hidden;
    if (layers_ <= 0 || tokens_ <= 0 || hidden_ <= 0)
      throw ShapeError(detail::cat("DeepPrompt: layers (", layers_, "), tokens (", tokens_, ") and hidden (", hidden_,
                                   ") must be positive"));
    if (opt_.heads != 0) peft_detail::check_heads(opt_.heads, hidden_, "DeepPrompt");
    if (!(opt_.prefix_dropout >= 0.0 && opt_.prefix_dropout <= 1.0))
      throw Error(detail::cat("DeepPrompt: prefix dropout ", opt_.prefix_dropout, " is not in [0, 1]"));
    if (opt_.projection < 0) throw Error(detail::cat("DeepPrompt: negative projection width ", opt_.projection));
    Generator gen(o.seed);
    const index_t width = 2 * layers_ * hidden_;
    if (opt_.projection > 0) {
      // PEFT: nn.Embedding (init as chosen) and nn.Linear's default uniform(-1/sqrt(in), 1/sqrt(in))
      PrefixProjection<T> p;
      p.embedding = Parameter<T, 2>("embedding.weight", Tensor<T, 2>({tokens_, hidden_}));
      peft_detail::init_prompt(p.embedding.value(), opt_, gen);
      auto make = [&](index_t out, index_t in) {
        Linear<T> lin(out, in, true, gen);
        const double bound = 1.0 / std::sqrt(static_cast<double>(in));
        init::uniform(lin.weight.value(), -bound, bound, gen);
        init::uniform(lin.bias->value(), -bound, bound, gen);
        return lin;
      };
      p.first = make(opt_.projection, hidden_);
      p.second = make(width, opt_.projection);
      if constexpr (std::is_same_v<Dev, Cpu>) {
        projection.emplace(std::move(p));
      } else {  // the same values on the device
        Generator unused(0);
        projection.emplace();
        projection->embedding = Parameter<T, 2, Dev>("embedding.weight", Tensor<T, 2, Dev>({tokens_, hidden_}));
        projection->first = Linear<T, Dev>(opt_.projection, hidden_, true, unused);
        projection->second = Linear<T, Dev>(width, opt_.projection, true, unused);
        copy_parameters<T>(*projection, p);
      }
    } else {
      Tensor<T, 2> rows0({tokens_, width});
      peft_detail::init_prompt(rows0, opt_, gen);
      prompt_embeddings.emplace("prompt_embeddings", copy_to<Dev>(rows0));
    }
  }

  /// A copy of t in new memory on Dev.
  static Tensor<T, 2, Dev> copy_of(const Tensor<T, 2, Dev>& t) {
    if constexpr (std::is_same_v<Dev, Cpu>)
      return t.clone();
    else
      return copy_to<Dev>(to_host(t));  // through the host: a one-off
  }

  void require_heads(const char* what) const {
    if (opt_.heads <= 0)
      throw Error(detail::cat("DeepPrompt::", what,
                              ": the number of attention heads is not known yet: attach the prompt to a model "
                              "(attach(), PromptedBert) or set DeepPromptOptions::heads"));
  }

  index_t layers_ = 0, tokens_ = 0, hidden_ = 0;
  DeepPromptOptions opt_;
  index_t folded_from_ = 0;
  std::vector<KVPrefix<T, Dev>> prefixes_;  // prefixes()'s result, reused
};

}  // namespace detail

/// P-Tuning v2's deep prompt: `Tokens` key and `Tokens` value vectors per layer, for a model of
/// `Layers` layers and hidden size `Hidden`. Any extent may be `dynamic` (given at run time in
/// PromptSizes); the code is shared. Dev: where its parameters live (Cpu by default; the same
/// initial values on every device).
template <index_t Layers, index_t Tokens, index_t Hidden, class T = float, DevicePolicy Dev = Cpu>
class DeepPrompt : public detail::DeepPromptImpl<T, Dev> {
  static_assert(Layers == dynamic || Layers > 0, "DeepPrompt<Layers, Tokens, Hidden>: Layers must be positive (or dynamic)");
  static_assert(Tokens == dynamic || Tokens > 0, "DeepPrompt<Layers, Tokens, Hidden>: Tokens must be positive (or dynamic)");
  static_assert(Hidden == dynamic || Hidden > 0, "DeepPrompt<Layers, Tokens, Hidden>: Hidden must be positive (or dynamic)");
  static_assert(std::is_floating_point_v<T>, "DeepPrompt<..., T>: T must be float or double");
  using Impl = detail::DeepPromptImpl<T, Dev>;

 public:
  static constexpr index_t static_layers = Layers, static_tokens = Tokens, static_hidden = Hidden;
  static constexpr bool is_static = Layers != dynamic && Tokens != dynamic && Hidden != dynamic;

  /// All extents static: initialised as the options say.
  explicit DeepPrompt(const DeepPromptOptions& o = {})
    requires is_static
      : Impl(PromptSizes{Layers, Tokens, Hidden}, o) {}
  /// Run-time sizes for the dynamic extents (a static extent: 0 or its own value; ShapeError naming
  /// both otherwise).
  explicit DeepPrompt(PromptSizes s, const DeepPromptOptions& o = {}) : Impl(resolve(s), o) {}

  /// Reads a PEFT PREFIX_TUNING adapter directory (adapter_config.json and
  /// adapter_model.safetensors with prompt_embeddings (Tokens, Layers * 2 * Hidden), projection
  /// folded). The static extents must equal the file's (FormatError naming the field and both
  /// values otherwise). `o` gives the other options (heads is taken from the file).
  static DeepPrompt load_peft(const std::filesystem::path& dir, DeepPromptOptions o = {}) {
    const auto cfg_path = dir / "adapter_config.json";
    const auto st_path = dir / "adapter_model.safetensors";
    if (!std::filesystem::is_directory(dir))
      throw IoError(detail::cat("DeepPrompt::load_peft: '", dir.string(), "' is not a directory"));
    if (!std::filesystem::exists(st_path)) {
      const bool bin = std::filesystem::exists(dir / "adapter_model.bin");
      throw IoError(detail::cat("DeepPrompt::load_peft: '", dir.string(), "' has no adapter_model.safetensors",
                                bin ? " (only safetensors is read: convert adapter_model.bin first)" : ""));
    }
    const std::string text = read_text_file(cfg_path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(detail::cat("adapter config '", cfg_path.string(), "': invalid JSON: ", detail::printable(e.what())));
    }
    const std::string src = cfg_path.string();
    auto field = [&](const char* name) -> const nlohmann::json& {
      if (!j.is_object() || !j.contains(name) || j[name].is_null())
        throw FormatError(detail::cat("adapter config '", src, "': field \"", name, "\" is missing"));
      return j[name];
    };
    auto integer = [&](const char* name) -> index_t {
      const auto& f = field(name);
      if (!f.is_number_integer() || f.template get<std::int64_t>() <= 0)
        throw FormatError(detail::cat("adapter config '", src, "': field \"", name, "\" must be a positive integer, got ",
                                      f.dump()));
      return f.template get<index_t>();
    };
    const auto& type = field("peft_type");
    if (!type.is_string() || type.template get<std::string>() != "PREFIX_TUNING")
      throw FormatError(detail::cat("adapter config '", src, "': field \"peft_type\" is ", type.dump(),
                                    "; DeepPrompt reads \"PREFIX_TUNING\" adapters"));
    if (j.contains("num_transformer_submodules") && !j["num_transformer_submodules"].is_null() &&
        j["num_transformer_submodules"] != 1)
      throw FormatError(detail::cat("adapter config '", src, "': field \"num_transformer_submodules\" is ",
                                    j["num_transformer_submodules"].dump(),
                                    "; an encoder-decoder adapter does not fit an encoder's DeepPrompt"));
    PromptSizes s{integer("num_layers"), integer("num_virtual_tokens"), integer("token_dim")};
    const index_t heads = integer("num_attention_heads");
    auto match = [&](const char* name, index_t file, index_t ours, const char* arg) {
      if (ours != dynamic && file != ours)
        throw FormatError(detail::cat("adapter config '", src, "': field \"", name, "\" is ", file, " but ",
                                      type_name(), " has ", arg, " = ", ours));
    };
    match("num_layers", s.layers, Layers, "Layers");
    match("num_virtual_tokens", s.tokens, Tokens, "Tokens");
    match("token_dim", s.hidden, Hidden, "Hidden");
    if (s.hidden % heads != 0)
      throw FormatError(detail::cat("adapter config '", src, "': num_attention_heads ", heads,
                                    " does not divide token_dim ", s.hidden));
    o.heads = heads;
    o.projection = 0;
    o.init = PromptInit::zeros;
    DeepPrompt p(s, o);
    const auto file = SafeTensorsFile::open(st_path);
    if (!file.contains("prompt_embeddings"))
      throw FormatError(detail::cat("adapter '", st_path.string(), "': no tensor \"prompt_embeddings\""));
    const auto& info = file.info("prompt_embeddings");
    const std::vector<index_t> want{s.tokens, s.layers * 2 * s.hidden};
    if (info.shape != want)
      throw FormatError(detail::cat("adapter '", st_path.string(), "': prompt_embeddings has shape ",
                                    shape_str(info.shape), ", but the config says ", shape_str(want),
                                    " (num_virtual_tokens, num_layers * 2 * token_dim)"));
    if constexpr (std::is_same_v<Dev, Cpu>) {
      file.load_into("prompt_embeddings", p.prompt_embeddings->value());
    } else {
      Tensor<T, 2> rows({s.tokens, s.layers * 2 * s.hidden});
      file.load_into("prompt_embeddings", rows);
      upload(Dev{}, static_cast<const T*>(rows.data()), p.prompt_embeddings->value().data(), rows.size());
    }
    if (j.contains("prefix_projection") && j["prefix_projection"] == true && j.contains("encoder_hidden_size") &&
        j["encoder_hidden_size"].is_number_integer())
      p.folded_from_ = j["encoder_hidden_size"].template get<index_t>();
    return p;
  }

  /// "DeepPrompt<12, 20, 768>" (dynamic extents as "dynamic").
  static std::string type_name() { return peft_detail::extents_name("DeepPrompt", Layers, Tokens, Hidden); }

 private:
  static PromptSizes resolve(PromptSizes s) { return peft_detail::resolve_sizes(s, Layers, Tokens, Hidden, type_name()); }
};

/// A DeepPrompt whose sizes are all known only at run time.
template <class T = float, DevicePolicy Dev = Cpu>
using DynamicDeepPrompt = DeepPrompt<dynamic, dynamic, dynamic, T, Dev>;

}  // namespace deepprompt
