#pragma once
// BERT configurations: compile-time sizes (BertConfig and the standard aliases) and
// run-time sizes (BertDynamicConfig, from a config.json), read by one model template.
//
// Both kinds expose the same members, so that models/bert.hpp reads `cfg.hidden`,
// `cfg.heads`, `cfg.head_dim()` ... without knowing which kind it has: the static kind has
// static constexpr sizes (usable as template arguments: `Cfg::layers`), the dynamic kind has
// run-time ones (as std::dynamic_extent beside std::span's static extents). The settings that
// are not sizes (activation, epsilon, dropout, pad id, init range) are run-time members of both,
// with Hugging Face's defaults, and are read from config.json by from_pretrained.
//
// The parsed config.json itself is io/config.hpp's HfBertConfig. The model's per-call settings
// (BertRun), its output (BertOutput) and its construction and loading options are here too.
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../autodiff/var.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../io/config.hpp"
#include "../nn/activation.hpp"

namespace deepprompt {

/// The run-time settings of a BERT model that are not sizes (transformers.BertConfig defaults).
struct BertSettings {
  Activation hidden_act = Activation::gelu;  // "gelu": the exact erf form
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::int64_t pad_token_id = 0;
  double initializer_range = 0.02;

  /// Copies the settings of a parsed config.json; throws FormatError naming `source` for an
  /// unsupported hidden_act or position_embedding_type.
  void set_from(const HfBertConfig& hf, std::string_view source) {
    if (!parse_activation(hf.hidden_act, hidden_act))
      throw FormatError(detail::cat("config '", source, "': field \"hidden_act\": \"", hf.hidden_act,
                                    "\" is not supported (gelu, gelu_new, relu, silu, tanh)"));
    if (hf.position_embedding_type != "absolute")
      throw FormatError(detail::cat("config '", source, "': field \"position_embedding_type\": \"",
                                    hf.position_embedding_type, "\" is not supported (only \"absolute\")"));
    layer_norm_eps = hf.layer_norm_eps;
    hidden_dropout_prob = hf.hidden_dropout_prob;
    attention_probs_dropout_prob = hf.attention_probs_dropout_prob;
    pad_token_id = hf.pad_token_id;
  }
};

/// BERT with sizes fixed at compile time:
///   Layers (num_hidden_layers), Hidden (hidden_size), Heads (num_attention_heads),
///   Intermediate (intermediate_size), Vocab (vocab_size), MaxPositions
///   (max_position_embeddings), TypeVocab (type_vocab_size).
template <index_t Layers, index_t Hidden, index_t Heads, index_t Intermediate, index_t Vocab = 30522,
          index_t MaxPositions = 512, index_t TypeVocab = 2>
struct BertConfig : BertSettings {
  static_assert(Layers > 0, "BertConfig<Layers, ...>: Layers (num_hidden_layers) must be positive");
  static_assert(Hidden > 0, "BertConfig<Layers, Hidden, ...>: Hidden (hidden_size) must be positive");
  static_assert(Heads > 0,
                "BertConfig<Layers, Hidden, Heads, ...>: Heads (num_attention_heads) must be positive");
  static_assert(Hidden % (Heads > 0 ? Heads : 1) == 0,
                "BertConfig<Layers, Hidden, Heads, ...>: Heads must divide Hidden (each head gets Hidden / Heads "
                "dimensions)");
  static_assert(Intermediate > 0,
                "BertConfig<..., Intermediate, ...>: Intermediate (intermediate_size) must be positive");
  static_assert(Vocab > 0, "BertConfig<..., Vocab, ...>: Vocab (vocab_size) must be positive");
  static_assert(MaxPositions > 0,
                "BertConfig<..., MaxPositions, ...>: MaxPositions (max_position_embeddings) must be positive");
  static_assert(TypeVocab > 0, "BertConfig<..., TypeVocab>: TypeVocab (type_vocab_size) must be positive");

  static constexpr bool is_static = true;
  static constexpr index_t layers = Layers;
  static constexpr index_t hidden = Hidden;
  static constexpr index_t heads = Heads;
  static constexpr index_t intermediate = Intermediate;
  static constexpr index_t vocab = Vocab;
  static constexpr index_t max_positions = MaxPositions;
  static constexpr index_t type_vocab = TypeVocab;
  static constexpr index_t head_dim() { return Hidden / Heads; }
};

/// The standard sizes (Turc et al., "Well-Read Students Learn Better"; Devlin et al.).
using BertTiny = BertConfig<2, 128, 2, 512>;
using BertMini = BertConfig<4, 256, 4, 1024>;
using BertSmall = BertConfig<4, 512, 8, 2048>;
using BertMedium = BertConfig<8, 512, 8, 2048>;
using BertBase = BertConfig<12, 768, 12, 3072>;
using BertLarge = BertConfig<24, 1024, 16, 4096>;

/// BERT with sizes known only at run time (an arbitrary config.json).
struct BertDynamicConfig : BertSettings {
  static constexpr bool is_static = false;
  index_t layers = 12, hidden = 768, heads = 12, intermediate = 3072, vocab = 30522, max_positions = 512,
          type_vocab = 2;
  index_t head_dim() const { return hidden / heads; }

  /// requires: every size positive, heads divides hidden (Error naming the sizes otherwise).
  void validate() const {
    if (layers <= 0 || hidden <= 0 || heads <= 0 || intermediate <= 0 || vocab <= 0 || max_positions <= 0 ||
        type_vocab <= 0)
      throw Error(detail::cat("BertDynamicConfig: every size must be positive; got layers ", layers, ", hidden ",
                              hidden, ", heads ", heads, ", intermediate ", intermediate, ", vocab ", vocab,
                              ", max_positions ", max_positions, ", type_vocab ", type_vocab));
    if (hidden % heads != 0)
      throw Error(detail::cat("BertDynamicConfig: heads ", heads, " does not divide hidden ", hidden));
  }

  /// From a parsed config.json (`source` names it in errors).
  static BertDynamicConfig from(const HfBertConfig& hf, std::string_view source = "<config>") {
    BertDynamicConfig c;
    c.set_from(hf, source);
    c.layers = hf.num_hidden_layers;
    c.hidden = hf.hidden_size;
    c.heads = hf.num_attention_heads;
    c.intermediate = hf.intermediate_size;
    c.vocab = hf.vocab_size;
    c.max_positions = hf.max_position_embeddings;
    c.type_vocab = hf.type_vocab_size;
    if (c.type_vocab <= 0)
      throw FormatError(
          detail::cat("config '", source, "': field \"type_vocab_size\": must be positive, got ", c.type_vocab));
    c.validate();
    return c;
  }
};

/// What models/bert.hpp needs of a configuration.
template <class C>
concept BertConfigLike = std::derived_from<C, BertSettings> && requires(const C& c) {
  { C::is_static } -> std::convertible_to<bool>;
  { c.layers } -> std::convertible_to<index_t>;
  { c.hidden } -> std::convertible_to<index_t>;
  { c.heads } -> std::convertible_to<index_t>;
  { c.head_dim() } -> std::convertible_to<index_t>;
  { c.intermediate } -> std::convertible_to<index_t>;
  { c.vocab } -> std::convertible_to<index_t>;
  { c.max_positions } -> std::convertible_to<index_t>;
  { c.type_vocab } -> std::convertible_to<index_t>;
};

/// The sizes of any configuration as a dynamic one.
template <BertConfigLike C>
BertDynamicConfig to_dynamic(const C& c) {
  BertDynamicConfig d;
  static_cast<BertSettings&>(d) = c;
  d.layers = c.layers, d.hidden = c.hidden, d.heads = c.heads, d.intermediate = c.intermediate, d.vocab = c.vocab,
  d.max_positions = c.max_positions, d.type_vocab = c.type_vocab;
  return d;
}

/// " BertConfig<2, 128, 2, 512, 30522, 512, 2>" for a static configuration, "" for the dynamic
/// one (for error messages).
template <BertConfigLike Cfg>
std::string bert_shape_note() {
  if constexpr (Cfg::is_static)
    return detail::cat(" BertConfig<", Cfg::layers, ", ", Cfg::hidden, ", ", Cfg::heads, ", ", Cfg::intermediate, ", ",
                       Cfg::vocab, ", ", Cfg::max_positions, ", ", Cfg::type_vocab, ">");
  else
    return "";
}

/// The configuration of a parsed config.json: for a static Cfg, checks the sizes (FormatError
/// naming each difference) and takes the settings; for the dynamic one, takes everything.
template <BertConfigLike Cfg>
Cfg bert_config_from(const HfBertConfig& hf, std::string_view source) {
  if constexpr (Cfg::is_static) {
    std::string diff;
    auto cmp = [&](const char* field, index_t file, index_t ours, const char* arg) {
      if (file != ours)
        diff += detail::cat(diff.empty() ? "" : ", ", field, " is ", file, " there but ", ours, " (", arg, ")");
    };
    cmp("num_hidden_layers", hf.num_hidden_layers, Cfg::layers, "Layers");
    cmp("hidden_size", hf.hidden_size, Cfg::hidden, "Hidden");
    cmp("num_attention_heads", hf.num_attention_heads, Cfg::heads, "Heads");
    cmp("intermediate_size", hf.intermediate_size, Cfg::intermediate, "Intermediate");
    cmp("vocab_size", hf.vocab_size, Cfg::vocab, "Vocab");
    cmp("max_position_embeddings", hf.max_position_embeddings, Cfg::max_positions, "MaxPositions");
    cmp("type_vocab_size", hf.type_vocab_size, Cfg::type_vocab, "TypeVocab");
    if (!diff.empty())
      throw FormatError(detail::cat("config '", source, "' does not match the compile-time configuration",
                                    bert_shape_note<Cfg>(), ": ", diff,
                                    "; use BertDynamicConfig for sizes known only at run time"));
    Cfg c;
    c.set_from(hf, source);
    return c;
  } else {
    return BertDynamicConfig::from(hf, source);
  }
}

/// config.json as transformers.BertConfig writes it, for a model of element type T (torch_dtype)
/// with (masked_lm: BertForMaskedLM) or without (BertModel) the masked-LM head.
template <class T, BertConfigLike Cfg>
nlohmann::json bert_config_json(const Cfg& cfg, bool masked_lm) {
  nlohmann::json j;
  j["architectures"] = nlohmann::json::array({masked_lm ? "BertForMaskedLM" : "BertModel"});
  j["attention_probs_dropout_prob"] = cfg.attention_probs_dropout_prob;
  j["hidden_act"] = std::string(activation_name(cfg.hidden_act));
  j["hidden_dropout_prob"] = cfg.hidden_dropout_prob;
  j["hidden_size"] = cfg.hidden;
  j["initializer_range"] = cfg.initializer_range;
  j["intermediate_size"] = cfg.intermediate;
  j["layer_norm_eps"] = cfg.layer_norm_eps;
  j["max_position_embeddings"] = cfg.max_positions;
  j["model_type"] = "bert";
  j["num_attention_heads"] = cfg.heads;
  j["num_hidden_layers"] = cfg.layers;
  j["pad_token_id"] = cfg.pad_token_id;
  j["position_embedding_type"] = "absolute";
  j["torch_dtype"] = std::is_same_v<T, double> ? "float64" : "float32";
  j["type_vocab_size"] = cfg.type_vocab;
  j["vocab_size"] = cfg.vocab;
  return j;
}

// --- options and outputs of the model (models/bert.hpp) ---------------------------------------

template <class T, DevicePolicy Dev = Cpu>
struct BertOutput {
  Var<T, 3, Dev> last_hidden_state;  // (B, T, C)
  Var<T, 2, Dev> pooler_output;      // (B, C); empty when the model has no pooler
};

/// Per-call settings of Bert::forward.
struct BertRun {
  bool training = false;           // dropout on (with the model's probabilities)
  bool shift_positions = true;     // with a prefix, positions start at P (as HF); false: at 0
  Generator* generator = nullptr;  // dropout's random stream; nullptr: the model's own
  /// Empty, or one value per row: row b's tokens are numbered from position_offsets[b] (replaces
  /// the start above; for batches whose rows carry prompts of different lengths).
  std::span<const index_t> position_offsets{};
  /// Skip the padding: when the attention mask's rows are ones followed by zeros (and any prefix
  /// columns of a (B, P + T) mask are all ones), the layers run on the real tokens only, packed
  /// (ops/packing.hpp, packed_attention). The real positions' outputs are what the padded run
  /// gives (up to rounding: other summation orders); last_hidden_state is 0 at padded
  /// positions (the padded run gives vectors there that nothing should read), and dropout draws
  /// other words. Other masks take the padded path.
  bool unpadded = false;
  /// With unpadded: the caller reads only each row's first token ([CLS]: pooler_output, or
  /// last_hidden_state[:, 0]). The last layer then computes its outputs for those rows only (its
  /// keys and values still come from every token), and last_hidden_state is (B, 1, C). The
  /// sequence classification head sets it.
  bool first_token_only = false;
};

/// No key/value prefix (the default of Bert::forward).
struct NoPrefix {};

/// Which optional parts a model has. automatic (loading only): the part exists iff the checkpoint
/// holds it.
enum class BertPart { automatic, yes, no };

struct BertInit {
  std::uint64_t seed = 0;      // of the initial weights (and of the dropout generator)
  bool random_weights = true;  // false: Linear and Embedding weights start at 0 (about to be loaded)
  bool pooler = true;
  bool mlm_head = false;
};

struct BertLoadOptions {
  BertPart pooler = BertPart::automatic;  // pooler.dense.*
  BertPart mlm_head = BertPart::no;       // cls.predictions.*; automatic: iff in the checkpoint
  /// Strict: every parameter must be in the file with its shape, and every tensor of the file
  /// must be a parameter or one that Hugging Face ignores too (see load_weights). Not strict:
  /// what fits is loaded, the rest keeps its random initialisation (as Hugging Face does).
  bool strict = true;
  /// When set, receives the names of the file's tensors that were ignored.
  std::vector<std::string>* ignored = nullptr;
};

}  // namespace deepprompt
