#pragma once
// T5 configurations: compile-time sizes (T5Config<...> and the aliases of the published
// checkpoints) and run-time sizes (T5DynamicConfig, from a config.json or io's HfT5Config), both
// reduced to one run-time description, T5Dims, that all of the model code reads.
//
//   dp::T5<dp::T5Small> a(/*seed=*/0);                              // t5-small: 6 + 6 layers, ReLU, tied
//   auto b = dp::T5<dp::T5Small>::from_pretrained("t5-small/");      // sizes checked against config.json
//   auto c = dp::DynamicT5<float>::from_pretrained("some-t5/");      // sizes from config.json
//
// The structural sizes of a static configuration are static constexpr members (usable as
// template arguments: `Cfg::num_layers`, `Cfg::num_heads`, `Cfg::d_kv`); the settings that are not
// sizes (epsilon, dropout, special token ids) are read from config.json by from_pretrained, with
// Hugging Face's defaults otherwise.
//
// The parsed config.json itself is io/config.hpp's HfT5Config.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../io/config.hpp"

namespace deepprompt {

/// The activation of T5's feed-forward block (Hugging Face `dense_act_fn`).
enum class T5Act : std::uint8_t {
  relu,      // "relu" (T5 v1.0)
  gelu,      // "gelu": erf form
  gelu_new,  // "gelu_new": tanh approximation ("gated-gelu" of T5 v1.1 means this one)
  silu,      // "silu"
};

inline constexpr std::string_view t5_act_name(T5Act a) {
  switch (a) {
    case T5Act::relu: return "relu";
    case T5Act::gelu: return "gelu";
    case T5Act::gelu_new: return "gelu_new";
    case T5Act::silu: return "silu";
  }
  return "?";
}

/// Everything the model code needs to know about a T5, at run time.
struct T5Dims {
  index_t d_model = 512, d_kv = 64, d_ff = 2048;
  index_t num_layers = 6, num_decoder_layers = 6, num_heads = 8;
  index_t vocab_size = 32128;
  index_t buckets = 32, max_distance = 128;  // relative_attention_num_buckets / _max_distance
  T5Act act = T5Act::relu;
  bool gated = false;  // T5DenseGatedActDense (wi_0, wi_1, wo) rather than T5DenseActDense (wi, wo)
  bool tied = true;    // lm_head shares `shared.weight`, and its input is scaled by d_model^-0.5
  double eps = 1e-6;   // layer_norm_epsilon
  double dropout = 0.1;
  std::int64_t pad_token_id = 0, eos_token_id = 1, decoder_start_token_id = 0;

  index_t inner() const { return num_heads * d_kv; }

  /// Hugging Face's feed_forward_proj string ("relu", "gated-gelu", ...).
  std::string feed_forward_proj() const {
    if (gated && act == T5Act::gelu_new) return "gated-gelu";
    return (gated ? "gated-" : "") + std::string(t5_act_name(act));
  }

  /// Throws Error naming the first field that cannot describe a T5.
  void validate() const {
    auto fail = [](std::string_view what) { throw Error(detail::cat("T5 configuration: ", what)); };
    if (d_model <= 0 || d_kv <= 0 || d_ff <= 0 || num_layers <= 0 || num_decoder_layers <= 0 || num_heads <= 0 ||
        vocab_size <= 0)
      fail("d_model, d_kv, d_ff, num_layers, num_decoder_layers, num_heads and vocab_size must be positive");
    if (buckets < 4)
      fail(detail::cat("relative_attention_num_buckets = ", buckets,
                       " is too small: the bidirectional encoder needs at least 4 (2 exact buckets per direction)"));
    if (max_distance <= buckets / 2)
      fail(detail::cat("relative_attention_max_distance = ", max_distance,
                       " must exceed half the number of buckets (", buckets / 2,
                       "), where the logarithmic buckets start"));
    if (gated && act == T5Act::gelu)
      fail("a gated erf-GELU has no Hugging Face name (\"gated-gelu\" is the tanh form, gelu_new)");
    if (!(eps > 0)) fail(detail::cat("layer_norm_epsilon must be positive, got ", eps));
    if (!(dropout >= 0 && dropout < 1)) fail(detail::cat("dropout_rate must be in [0, 1), got ", dropout));
    for (auto id : {pad_token_id, eos_token_id, decoder_start_token_id})
      if (id < 0 || id >= vocab_size)
        fail(detail::cat("special token id ", id, " is not below vocab_size ", vocab_size));
  }
};

/// T5Dims from a Hugging Face config (io/config.hpp). Throws Error for what the model cannot run.
inline T5Dims t5_dims(const HfT5Config& c) {
  T5Dims d;
  d.d_model = c.d_model, d.d_kv = c.d_kv, d.d_ff = c.d_ff;
  d.num_layers = c.num_layers, d.num_decoder_layers = c.num_decoder_layers, d.num_heads = c.num_heads;
  d.vocab_size = c.vocab_size;
  d.buckets = c.relative_attention_num_buckets, d.max_distance = c.relative_attention_max_distance;
  d.gated = c.is_gated_act;
  if (c.dense_act_fn == "relu") d.act = T5Act::relu;
  else if (c.dense_act_fn == "gelu") d.act = T5Act::gelu;
  else if (c.dense_act_fn == "gelu_new") d.act = T5Act::gelu_new;
  else if (c.dense_act_fn == "silu") d.act = T5Act::silu;
  else throw Error("T5 configuration: unsupported activation \"" + c.dense_act_fn + "\"");
  d.tied = c.tie_word_embeddings;
  d.eps = c.layer_norm_epsilon, d.dropout = c.dropout_rate;
  d.pad_token_id = c.pad_token_id, d.eos_token_id = c.eos_token_id, d.decoder_start_token_id = c.decoder_start_token_id;
  d.validate();
  return d;
}

/// A T5 whose sizes are template arguments. Invalid combinations fail to compile with a
/// readable message.
template <index_t DModel, index_t DKv, index_t DFf, index_t Layers, index_t DecoderLayers, index_t Heads,
          index_t Vocab, T5Act Act = T5Act::relu, bool Gated = false, bool Tied = true, index_t Buckets = 32,
          index_t MaxDistance = 128>
struct T5Config {
  static_assert(DModel > 0, "T5Config: d_model must be positive");
  static_assert(DKv > 0, "T5Config: d_kv (the size of one attention head) must be positive");
  static_assert(DFf > 0, "T5Config: d_ff must be positive");
  static_assert(Layers > 0, "T5Config: the encoder needs at least one layer");
  static_assert(DecoderLayers > 0, "T5Config: the decoder needs at least one layer");
  static_assert(Heads > 0, "T5Config: num_heads must be positive");
  static_assert(Vocab > 1, "T5Config: the vocabulary needs at least the pad and EOS tokens (ids 0 and 1)");
  static_assert(Buckets >= 4, "T5Config: relative_attention_num_buckets must be at least 4 (the bidirectional "
                              "encoder splits them into two directions with 2 exact buckets each)");
  static_assert(MaxDistance > Buckets / 2, "T5Config: relative_attention_max_distance must exceed half the number of "
                                           "buckets, where the logarithmic buckets begin");
  static_assert(!(Gated && Act == T5Act::gelu), "T5Config: Hugging Face's gated GELU (\"gated-gelu\", T5 v1.1) is the "
                                                "tanh form: use T5Act::gelu_new");

  static constexpr bool dynamic = false;
  static constexpr index_t d_model = DModel, d_kv = DKv, d_ff = DFf, num_layers = Layers,
                           num_decoder_layers = DecoderLayers, num_heads = Heads, vocab_size = Vocab,
                           buckets = Buckets, max_distance = MaxDistance;
  static constexpr T5Act act = Act;
  static constexpr bool gated = Gated, tied = Tied;
  static constexpr index_t inner = Heads * DKv;  // the width of q, k, v: num_heads * d_kv

  static T5Dims dims() {
    T5Dims d;
    d.d_model = DModel, d.d_kv = DKv, d.d_ff = DFf, d.num_layers = Layers, d.num_decoder_layers = DecoderLayers;
    d.num_heads = Heads, d.vocab_size = Vocab, d.buckets = Buckets, d.max_distance = MaxDistance;
    d.act = Act, d.gated = Gated, d.tied = Tied;
    return d;
  }
};

/// Sizes known only at run time (from config.json); the model takes them in its constructor.
struct T5DynamicConfig {
  static constexpr bool dynamic = true;
};

// t5-small / -base / -large (v1.0): ReLU feed-forward, tied embeddings (LM head input * d_model^-0.5)
using T5Small = T5Config<512, 64, 2048, 6, 6, 8, 32128>;
using T5Base = T5Config<768, 64, 3072, 12, 12, 12, 32128>;
using T5Large = T5Config<1024, 64, 4096, 24, 24, 16, 32128>;
// google/t5-v1_1-small / -base / -large: gated-GELU (gelu_new), untied lm_head
using T5v1_1Small = T5Config<512, 64, 1024, 8, 8, 6, 32128, T5Act::gelu_new, true, false>;
using T5v1_1Base = T5Config<768, 64, 2048, 12, 12, 12, 32128, T5Act::gelu_new, true, false>;
using T5v1_1Large = T5Config<1024, 64, 2816, 24, 24, 16, 32128, T5Act::gelu_new, true, false>;

namespace detail {
template <class S>
concept T5ConfigLike = requires {
  { S::dynamic } -> std::convertible_to<bool>;
};

/// Throws Error naming every structural field of `loaded` that differs from `want`.
inline void check_t5_dims_match(const T5Dims& want, const T5Dims& loaded, std::string_view source) {
  std::string diff;
  auto cmp = [&](const char* field, auto a, auto b) {
    if (a != b) diff += detail::cat(diff.empty() ? "" : ", ", field, " ", b, " (expected ", a, ")");
  };
  cmp("d_model", want.d_model, loaded.d_model);
  cmp("d_kv", want.d_kv, loaded.d_kv);
  cmp("d_ff", want.d_ff, loaded.d_ff);
  cmp("num_layers", want.num_layers, loaded.num_layers);
  cmp("num_decoder_layers", want.num_decoder_layers, loaded.num_decoder_layers);
  cmp("num_heads", want.num_heads, loaded.num_heads);
  cmp("vocab_size", want.vocab_size, loaded.vocab_size);
  cmp("relative_attention_num_buckets", want.buckets, loaded.buckets);
  cmp("relative_attention_max_distance", want.max_distance, loaded.max_distance);
  if (want.feed_forward_proj() != loaded.feed_forward_proj())
    diff += detail::cat(diff.empty() ? "" : ", ", "feed_forward_proj \"", loaded.feed_forward_proj(),
                        "\" (expected \"", want.feed_forward_proj(), "\")");
  cmp("tie_word_embeddings", want.tied, loaded.tied);
  if (!diff.empty())
    throw Error(detail::cat("T5: the configuration of '", source,
                            "' does not match the compile-time configuration: ", diff,
                            "; use T5<T5DynamicConfig> for sizes known only at run time"));
}
}  // namespace detail

/// The Hugging Face config.json of a model of these sizes (T5ForConditionalGeneration).
inline nlohmann::json t5_config_json(const T5Dims& d) {
  return {{"architectures", {"T5ForConditionalGeneration"}},
          {"model_type", "t5"},
          {"vocab_size", d.vocab_size},
          {"d_model", d.d_model},
          {"d_kv", d.d_kv},
          {"d_ff", d.d_ff},
          {"num_layers", d.num_layers},
          {"num_decoder_layers", d.num_decoder_layers},
          {"num_heads", d.num_heads},
          {"relative_attention_num_buckets", d.buckets},
          {"relative_attention_max_distance", d.max_distance},
          {"dropout_rate", d.dropout},
          {"layer_norm_epsilon", d.eps},
          {"initializer_factor", 1.0},
          {"feed_forward_proj", d.feed_forward_proj()},
          {"tie_word_embeddings", d.tied},
          {"is_encoder_decoder", true},
          {"use_cache", true},
          {"pad_token_id", d.pad_token_id},
          {"eos_token_id", d.eos_token_id},
          {"decoder_start_token_id", d.decoder_start_token_id}};
}

}  // namespace deepprompt
