#pragma once
// BERT (Devlin et al.) as Hugging Face's BertModel, with its optional masked-LM head, loading
// and saving Hugging Face checkpoints (config.json + model.safetensors).
//
//   auto bert = dp::Bert<dp::BertBase>::from_pretrained("bert-base-uncased/");   // sizes checked
//   auto any  = dp::Bert<dp::BertDynamicConfig>::from_pretrained(dir);           // sizes from config.json
//   auto out  = bert.forward(ids, mask, type_ids);        // (B, T) int64 each; type_ids may be {}
//   out.last_hidden_state;                                // (B, T, C)
//   out.pooler_output;                                    // (B, C): tanh(dense(h[:, 0]))
//
// Structure and parameter names (those of the HF state dict; `bert.` is added in front of the
// backbone's names when the masked-LM head is saved with it, as BertForMaskedLM does):
//   embeddings.{word_embeddings, position_embeddings, token_type_embeddings}.weight,
//   embeddings.LayerNorm.{weight, bias}
//   encoder.layer.N.attention.self.{query, key, value}.{weight, bias}
//   encoder.layer.N.attention.output.{dense, LayerNorm}.{weight, bias}
//   encoder.layer.N.intermediate.dense.{weight, bias}
//   encoder.layer.N.output.{dense, LayerNorm}.{weight, bias}
//   pooler.dense.{weight, bias}                                  (optional)
//   cls.predictions.transform.{dense, LayerNorm}.{weight, bias},
//   cls.predictions.bias                                         (optional masked-LM head; its
//                                          decoder is tied to embeddings.word_embeddings.weight)
// Post-LN layers: h = LN(x + dropout(attention(x))), y = LN(h + dropout(W2 act(W1 h))).
// Attention: the additive mask (1 - mask) * lowest, softmax over the keys, as HF does.
//
// Key/value prefix (P-Tuning v2): forward takes, per layer, a KVPrefix (shared (H, P, D) or per
// example (B, H, P, D)) from a callable `prefix(layer) -> KVPrefix<T>` or a range of L
// KVPrefix. As HF with past_key_values, the prefix keys are always attended (the (B, T) mask is
// extended with P ones), and the real tokens' position ids start at P, the prefix length of
// layer 0 (HF's past_key_values_length); BertRun::shift_positions = false starts them at 0.
// A mask of shape (B, P + T) that covers the prefix is accepted too.
//
// Input hooks (Prompt Tuning, P-Tuning v1):
//   forward_embeds(inputs_embeds (B, T, C), mask, types, run[, prefix])   HF's inputs_embeds: the
//        given vectors replace the word-embedding lookup; token-type and position embeddings,
//        LayerNorm and dropout follow as usual.
//   forward_with_input_prompt(prompt (P, C) or (B, P, C), ids, mask, types, run[, prefix])
//        exactly what PEFT's PeftModel does for PROMPT_TUNING / P_TUNING on BERT:
//        inputs_embeds = cat(prompt, word_embeddings(ids)), the attention mask gets P ones in
//        front, token_type_ids P zeros; positions count the virtual tokens (0 .. P + T - 1), and
//        the outputs cover them: last_hidden_state (B, P + T, C), and the pooler reads position
//        0, the first virtual token (as PEFT + BertForSequenceClassification do).
// Per-row positions: BertRun::position_offsets (B values) numbers row b's tokens from
// position_offsets[b] (instead of 0 or the prefix length), for batches that mix tasks.
//
// Adapters on Linear modules (LoRA, nn/linear.hpp) are trained and saved through peft/lora.hpp:
// save(), hf_state_dict() and load_weights() leave their lora_A / lora_B tensors out.
//
// Device: Bert<Cfg, T, Dev> keeps its parameters and activations on Dev (Cpu by default):
//   auto gpu = dp::Bert<dp::BertBase, float, dp::Cuda>::from_pretrained(dir);  // read on the host, copied
//   auto same = host_model.to<dp::Cuda>();                                      // or any model, copied
// Ids, masks and type ids stay host tensors (checked there, uploaded per call). On a device the
// padded layout always runs (BertRun::unpadded, a host optimisation, is ignored: the results
// are the same). Checkpoints are read and written through a host copy.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <span>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/config.hpp"
#include "../io/file.hpp"
#include "../io/safetensors.hpp"
#include "../nn/activation.hpp"
#include "../nn/attention.hpp"
#include "../nn/dropout.hpp"
#include "../nn/embedding.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "../nn/norm.hpp"
#include "../ops/concat.hpp"
#include "../ops/packing.hpp"
#include "../ops/shape.hpp"
#include "bert_config.hpp"
#include "bert_io.hpp"
#include "bert_layers.hpp"

namespace deepprompt {

// --- the model -------------------------------------------------------------------------------

template <BertConfigLike Cfg, class T = float, DevicePolicy Dev = Cpu>
class Bert {
 public:
  using config_type = Cfg;
  using value_type = T;
  using device_type = Dev;

  Cfg cfg;
  BertEmbeddings<T, Dev> embeddings;
  BertEncoder<T, Dev> encoder;
  std::optional<BertPooler<T, Dev>> pooler;
  std::optional<BertMlmHead<T, Dev>> cls;
  Generator generator;  // the default stream of dropout

  /// A randomly initialised model, as Hugging Face's _init_weights: Linear and Embedding weights
  /// ~ Normal(0, initializer_range), biases 0, LayerNorm 1 and 0, the padding row 0.
  explicit Bert(Cfg c = {}, const BertInit& init = {}) : cfg(std::move(c)), generator(init.seed + 1) {
    if constexpr (!Cfg::is_static) cfg.validate();
    if (cfg.pad_token_id < 0 || cfg.pad_token_id >= cfg.vocab)
      throw Error(detail::cat("Bert: pad_token_id ", cfg.pad_token_id, " is not below vocab ", cfg.vocab));
    Generator gen(init.seed);
    Cfg c0 = cfg;  // the parts read their sizes and settings from it
    if (!init.random_weights) c0.initializer_range = 0;
    embeddings = BertEmbeddings<T, Dev>(c0, gen);
    encoder.layer.reserve(static_cast<std::size_t>(cfg.layers));
    for (index_t l = 0; l < cfg.layers; ++l) encoder.layer.emplace_back(c0, gen);
    if (init.pooler) pooler.emplace(c0, gen);
    if (init.mlm_head) cls.emplace(c0, gen);
  }

  template <class V>
  void visit(V&& v) {
    v("embeddings", embeddings);
    v("encoder", encoder);
    v("pooler", pooler);
    v("cls", cls);
  }

  /// input_ids: (B, T); attention_mask: (B, T) of 0/1 (1 = attend), (B, P + T) covering the
  /// prefix, or empty (attend to all); token_type_ids: (B, T) or empty (all 0).
  /// prefix: NoPrefix, a callable `(index_t layer) -> KVPrefix<T, Dev>` (an empty KVPrefix: none
  /// for that layer), or a range of `layers` KVPrefix<T, Dev> (std::vector, std::span...).
  /// Returns last_hidden_state (B, T, C) and pooler_output (B, C) (empty without a pooler).
  /// One call at a time per model: the dropout stream and the packing buffers are the model's.
  template <class Prefix = NoPrefix>
  BertOutput<T, Dev> forward(const Tensor<std::int64_t, 2>& input_ids,
                             const Tensor<std::int64_t, 2>& attention_mask = {},
                             const Tensor<std::int64_t, 2>& token_type_ids = {}, const BertRun& run = {},
                             Prefix&& prefix = Prefix{}) {
    const index_t B = input_ids.extent(0), L = input_ids.extent(1);
    if (input_ids.empty() || B < 1 || L < 1)
      throw ShapeError(
          detail::cat("Bert::forward: input_ids must be (B, T) with B, T >= 1; got ", shape_str(input_ids.shape())));
    return encode("Bert::forward", "input_ids", input_ids.shape(), attention_mask, token_type_ids, run, prefix,
                  [&] { return embeddings.word_embeddings(input_ids); });
  }

  /// As forward(), with Hugging Face's inputs_embeds (B, T, C) in place of the word-embedding
  /// lookup of input ids (token-type and position embeddings are added as usual).
  template <class Prefix = NoPrefix>
  BertOutput<T, Dev> forward_embeds(const Var<T, 3, Dev>& inputs_embeds,
                                    const Tensor<std::int64_t, 2>& attention_mask = {},
                                    const Tensor<std::int64_t, 2>& token_type_ids = {}, const BertRun& run = {},
                                    Prefix&& prefix = Prefix{}) {
    const index_t B = inputs_embeds.extent(0), L = inputs_embeds.extent(1);
    if (inputs_embeds.value().empty() || B < 1 || L < 1 || inputs_embeds.extent(2) != cfg.hidden)
      throw ShapeError(detail::cat("Bert::forward_embeds: inputs_embeds must be (B, T, ", cfg.hidden,
                                   ") with B, T >= 1; got ", shape_str(inputs_embeds.shape())));
    return encode("Bert::forward_embeds", "inputs_embeds", Shape<2>{B, L}, attention_mask, token_type_ids, run,
                  prefix, [&] { return inputs_embeds; });
  }

  /// PEFT's input-layer prompt (PROMPT_TUNING, P_TUNING): `prompt` (P, C) shared by the batch, or
  /// (B, P, C), is put in front of the word embeddings of input_ids (B, T); attention_mask (B, T)
  /// of 0/1 (or empty: all ones) gets P ones in front, token_type_ids (B, T) (or empty) P zeros;
  /// positions count the prompt (0 .. P + T - 1, or from run.position_offsets). Returns
  /// last_hidden_state (B, P + T, C) (the prompt's rows first) and the pooled output of row 0
  /// (the first virtual token). `prefix` as in forward() (a key/value prefix on top).
  template <std::size_t PR, class Prefix = NoPrefix>
  BertOutput<T, Dev> forward_with_input_prompt(const Var<T, PR, Dev>& prompt,
                                               const Tensor<std::int64_t, 2>& input_ids,
                                               const Tensor<std::int64_t, 2>& attention_mask = {},
                                               const Tensor<std::int64_t, 2>& token_type_ids = {},
                                               const BertRun& run = {}, Prefix&& prefix = Prefix{}) {
    static_assert(PR == 2 || PR == 3, "Bert::forward_with_input_prompt: the prompt is (P, C) or (B, P, C)");
    constexpr const char* op = "Bert::forward_with_input_prompt";
    const index_t B = input_ids.extent(0), L = input_ids.extent(1);
    if (input_ids.empty() || B < 1 || L < 1)
      throw ShapeError(detail::cat(op, ": input_ids must be (B, T) with B, T >= 1; got ", shape_str(input_ids.shape())));
    const index_t P = prompt.extent(PR - 2);
    bool ok = !prompt.value().empty() && P >= 1 && prompt.extent(PR - 1) == cfg.hidden;
    if constexpr (PR == 3) ok = ok && prompt.extent(0) == B;
    if (!ok)
      throw ShapeError(detail::cat(op, ": the prompt must be (P, ", cfg.hidden, ") or (B, P, ", cfg.hidden,
                                   ") with P >= 1 for input_ids ", shape_str(input_ids.shape()), "; got ",
                                   shape_str(prompt.shape())));
    if (!attention_mask.empty())
      check_shapes(attention_mask.shape() == input_ids.shape(), op, "attention_mask must be (B, T) as input_ids",
                   attention_mask.shape(), input_ids.shape());
    if (!token_type_ids.empty())
      check_shapes(token_type_ids.shape() == input_ids.shape(), op, "token_type_ids must have input_ids' shape (B, T)",
                   token_type_ids.shape(), input_ids.shape());
    auto in_front = [&](const Tensor<std::int64_t, 2>& t, std::int64_t fill) {  // (B, T) -> (B, P + T)
      Tensor<std::int64_t, 2> out({B, P + L});
      for (index_t b = 0; b < B; ++b) {
        for (index_t j = 0; j < P; ++j) out(b, j) = fill;
        for (index_t j = 0; j < L; ++j) out(b, P + j) = t(b, j);
      }
      return out;
    };
    const Tensor<std::int64_t, 2> mask = attention_mask.empty() ? Tensor<std::int64_t, 2>() : in_front(attention_mask, 1);
    const Tensor<std::int64_t, 2> types = token_type_ids.empty() ? Tensor<std::int64_t, 2>() : in_front(token_type_ids, 0);
    const Var<T, 3, Dev> words = embeddings.word_embeddings(input_ids);  // (B, T, C)
    Var<T, 3, Dev> rows;                                                 // (B, P, C)
    if constexpr (PR == 2) {
      const Var<T, 3, Dev> one = reshape<3>(prompt, Shape<3>{1, P, cfg.hidden});
      if (B == 1) {
        rows = one;
      } else {
        const std::vector<Var<T, 3, Dev>> copies(static_cast<std::size_t>(B), one);
        rows = concat(std::span<const Var<T, 3, Dev>>(copies), 0);
      }
    } else {
      rows = prompt;
    }
    return encode(op, "the prompt and input_ids", Shape<2>{B, P + L}, mask, types, run, prefix,
                  [&] { return concat({rows, words}, 1); });
  }

  /// The masked-LM logits of hidden states (B, T, C) -> (B, T, V). requires: the model has the head.
  Var<T, 3, Dev> mlm_logits(const Var<T, 3, Dev>& hidden) const {
    if (!cls)
      throw Error(
          "Bert::mlm_logits: this model has no masked-LM head (BertInit::mlm_head / BertLoadOptions::mlm_head)");
    return cls->forward(hidden, embeddings.word_embeddings.weight.var());
  }

  /// Sets the dropout probabilities after construction (the modules keep their own copies):
  /// hidden = HF's hidden_dropout_prob (embeddings and every residual branch; THUDM's
  /// --hidden_dropout_prob), attention = attention_probs_dropout_prob. Error outside [0, 1).
  void set_dropout(double hidden, double attention) {
    for (double p : {hidden, attention})
      if (!(p >= 0.0 && p < 1.0)) throw Error(detail::cat("Bert::set_dropout: ", p, " is not in [0, 1)"));
    cfg.hidden_dropout_prob = hidden, cfg.attention_probs_dropout_prob = attention;
    embeddings.dropout = Dropout(hidden);
    for (auto& l : encoder.layer) {
      l.attention.self_attention.dropout = Dropout(attention);
      l.attention.output.dropout = Dropout(hidden);
      l.output.dropout = Dropout(hidden);
    }
  }

  // --- checkpoints ---------------------------------------------------------------------------

  /// Loads a Hugging Face checkpoint directory: config.json (model_type "bert") and
  /// model.safetensors. With a static configuration, config.json's sizes must equal the
  /// template's (FormatError naming each differing size otherwise); the other settings
  /// (hidden_act, layer_norm_eps, dropout, pad_token_id) are taken from the file.
  static Bert from_pretrained(const std::filesystem::path& dir, const BertLoadOptions& opt = {}) {
    namespace fs = std::filesystem;
    const fs::path config_file = dir / "config.json", weights = dir / "model.safetensors";
    if (!fs::is_directory(dir))
      throw IoError(detail::cat("Bert::from_pretrained: '", dir.string(), "' is not a directory"));
    if (!fs::exists(config_file))
      throw IoError(detail::cat("Bert::from_pretrained: '", dir.string(), "' has no config.json"));
    if (!fs::exists(weights)) {
      std::string hint;
      if (fs::exists(dir / "model.safetensors.index.json"))
        hint = " (sharded checkpoints are not supported)";
      else if (fs::exists(dir / "pytorch_model.bin"))
        hint = " (only safetensors is read: convert pytorch_model.bin first)";
      throw IoError(detail::cat("Bert::from_pretrained: '", dir.string(), "' has no model.safetensors", hint));
    }
    if constexpr (!std::is_same_v<Dev, Cpu>) {  // read on the host, then copied
      return Bert<Cfg, T, Cpu>::from_pretrained(dir, opt).template to<Dev>();
    }
    const HfBertConfig hf = read_bert_config(config_file);
    Cfg c = bert_config_from<Cfg>(hf, config_file.string());

    // Which optional parts: decided from the file's names when automatic.
    const SafeTensorsFile file = SafeTensorsFile::open(weights);
    const std::string prefix = bert_detail::uses_bert_prefix(file) ? "bert." : "";
    BertInit init;
    init.random_weights = !opt.strict;  // strict: every weight is loaded (or nothing is returned)
    init.pooler = opt.pooler == BertPart::yes ||
                  (opt.pooler == BertPart::automatic && file.contains(prefix + "pooler.dense.weight"));
    init.mlm_head = opt.mlm_head == BertPart::yes ||
                    (opt.mlm_head == BertPart::automatic && file.contains("cls.predictions.transform.dense.weight"));
    Bert model(std::move(c), init);
    model.load_weights(file, opt.strict, opt.ignored);
    return model;
  }

  /// Loads the weights of a safetensors file into this model. Names may carry the `bert.`
  /// prefix of Hugging Face task checkpoints (then tensors outside `bert.` and `cls.` are the
  /// task's head and are ignored). Ignored as Hugging Face does: the buffers
  /// embeddings.position_ids / token_type_ids, cls.* when the model has no masked-LM head,
  /// cls.seq_relationship.* (next-sentence head), and cls.predictions.decoder.* (tied).
  /// Strict: throws one Error listing every missing, unexpected and mis-shaped tensor, and
  /// loads nothing unless all fit. F16, BF16 and F64 tensors are converted.
  void load_weights(const SafeTensorsFile& file, bool strict = true, std::vector<std::string>* ignored = nullptr) {
    if constexpr (std::is_same_v<Dev, Cpu>) {
      bert_detail::load_weights(*this, file, strict, ignored);
    } else {  // through a host copy (which keeps what a partial load leaves)
      auto host = to<Cpu>();
      host.load_weights(file, strict, ignored);
      copy_parameters<T>(*this, host);
    }
  }

  /// The weights as Hugging Face names them: the backbone's names alone, or, with the
  /// masked-LM head, `bert.`-prefixed plus cls.predictions.* (the tied decoder is not stored).
  /// On a device: host copies.
  StateDict<T> hf_state_dict() {
    if constexpr (std::is_same_v<Dev, Cpu>)
      return bert_detail::hf_state_dict(*this);
    else
      return to<Cpu>().hf_state_dict();
  }

  /// Writes hf_state_dict() as safetensors (atomically; metadata {"format": "pt"} as
  /// transformers writes).
  void save(const std::filesystem::path& file) {
    if constexpr (std::is_same_v<Dev, Cpu>)
      bert_detail::save(*this, file);
    else
      to<Cpu>().save(file);
  }

  /// Writes dir/config.json and dir/model.safetensors (creating dir).
  void save_pretrained(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    const std::string text = config_json().dump(2) + "\n";
    write_file_atomic(dir / "config.json", std::as_bytes(std::span<const char>(text.data(), text.size())));
    save(dir / "model.safetensors");
  }

  /// config.json as transformers.BertConfig writes it.
  nlohmann::json config_json() const { return bert_config_json<T>(cfg, cls.has_value()); }

  /// A copy of this model on device To (the host or a device, from either): the same
  /// configuration, parts, weights, trainable flags and dropout stream (PyTorch's model.to()
  /// returns the same module moved; this is a copy, the original stays valid). Adapters
  /// (LoRA) are not copied: attach them on the copy.
  template <DevicePolicy To>
  Bert<Cfg, T, To> to() {
    BertInit init;
    init.random_weights = false;
    init.pooler = pooler.has_value();
    init.mlm_head = cls.has_value();
    Bert<Cfg, T, To> out(cfg, init);
    copy_parameters<T>(out, *this);
    out.generator = generator;
    return out;
  }

 private:


  /// The shared part of the forward passes: sizes (B, T) of the token sequence, the word vectors
  /// from words() (B, T, C), then the masks, positions, embeddings, layers and pooler.
  template <class Prefix, class Words>
  BertOutput<T, Dev> encode(const char* op, const char* what, const Shape<2>& ids_shape,
                       const Tensor<std::int64_t, 2>& attention_mask, const Tensor<std::int64_t, 2>& token_type_ids,
                       const BertRun& run, Prefix& prefix, Words&& words) {
    const index_t B = ids_shape[0], L = ids_shape[1];
    if constexpr (requires { std::size(prefix); }) {
      if (static_cast<index_t>(std::size(prefix)) != cfg.layers)
        throw ShapeError(detail::cat(op, ": ", std::size(prefix), " key/value prefixes given for a model of ",
                                     cfg.layers, " layers"));
    }
    KVPrefix<T, Dev> first = prefix_at(prefix, 0);
    const index_t P = first.length();
    if (!attention_mask.empty() &&
        !(attention_mask.extent(0) == B && (attention_mask.extent(1) == L || attention_mask.extent(1) == P + L)))
      check_shapes(false, op,
                   detail::cat("attention_mask must be (B, T), or (B, P + T) with the prefix, for ", what, " (B, T)"),
                   attention_mask.shape(), ids_shape);
    Tensor<std::int64_t, 2> types = token_type_ids;
    if (types.empty())
      types = Tensor<std::int64_t, 2>::zeros({B, L});
    else if (types.shape() != ids_shape)
      check_shapes(false, op, detail::cat("token_type_ids must have ", what, "' shape (B, T)"), types.shape(),
                   ids_shape);
    Generator* gen = run.generator ? run.generator : &generator;
    // additive mask, (B, T) or (B, P + T); the attention op puts zeros in front for the prefix
    const Tensor<T, 2, Dev> mask =
        attention_mask.empty() ? Tensor<T, 2, Dev>() : copy_to<Dev>(deepprompt::attention_mask<T>(attention_mask));

    Var<T, 3, Dev> x;  // (B, T, C)
    if (run.position_offsets.empty()) {
      const index_t past = run.shift_positions ? P : 0;
      if (past + L > cfg.max_positions)
        throw ShapeError(detail::cat(op, ": ", L, " tokens", past ? detail::cat(" after a prefix of ", past) : "",
                                     " need ", past + L, " positions but the model has max_position_embeddings = ",
                                     cfg.max_positions));
      Tensor<std::int64_t, 1> positions({L});  // (T)
      for (index_t t = 0; t < L; ++t) positions(t) = past + t;
      x = embeddings.combine(words(), types, positions, gen, run.training);
    } else {
      if (static_cast<index_t>(run.position_offsets.size()) != B)
        throw ShapeError(detail::cat(op, ": ", run.position_offsets.size(), " position offsets for a batch of ", B,
                                     " rows"));
      Tensor<std::int64_t, 2> positions({B, L});  // (B, T): row b from its own offset
      for (index_t b = 0; b < B; ++b) {
        const index_t off = run.position_offsets[static_cast<std::size_t>(b)];
        if (off < 0 || off + L > cfg.max_positions)
          throw ShapeError(detail::cat(op, ": row ", b, " starts at position ", off, " and needs ", off + L,
                                       " positions but the model has max_position_embeddings = ", cfg.max_positions));
        for (index_t t = 0; t < L; ++t) positions(b, t) = off + t;
      }
      x = embeddings.combine(words(), types, positions, gen, run.training);
    }
    const auto prefix_of = [&](index_t l) { return l == 0 ? first : prefix_at(prefix, l); };
    if constexpr (!std::is_same_v<Dev, Cpu>) {
      x = encoder.forward(x, mask, prefix_of, gen, run.training);  // on a device: the padded layout
    } else {
      // packed: the real rows' lengths and offsets, in buffers reused across calls (no allocation
      // once warmed up)
      const bool packed = run.unpadded && !attention_mask.empty() &&
                          packable_lengths(lengths_, attention_mask, attention_mask.extent(1) - L);
      if (packed) sequence_offsets_into(offsets_, lengths_);
      if (!packed) {
        x = encoder.forward(x, mask, prefix_of, gen, run.training);
      } else if (run.first_token_only) {
        x = reshape<3>(
            encoder.forward_packed(pack_sequences(x, lengths_), offsets_, true, prefix_of, gen, run.training),
            Shape<3>{B, 1, cfg.hidden});  // (B, 1, C)
      } else {
        x = unpack_sequences(encoder.forward_packed(pack_sequences(x, lengths_), offsets_, false, prefix_of, gen,
                                                    run.training),
                             lengths_, L);  // (B, T, C), zeros at padding
      }
    }
    BertOutput<T, Dev> out;
    out.last_hidden_state = x;
    if (pooler) out.pooler_output = pooler->forward(x);
    return out;
  }

  /// Writes into `lengths` the real lengths of a (B, P + T) 0/1 mask whose P prefix columns are
  /// all ones and whose rows are then right-padded, none empty; false otherwise (the padded path
  /// handles it).
  static bool packable_lengths(std::vector<index_t>& lengths, const Tensor<std::int64_t, 2>& mask, index_t P) {
    for (index_t b = 0; b < mask.extent(0); ++b)
      for (index_t j = 0; j < P; ++j)
        if (mask(b, j) != 1) return false;
    return right_padded_lengths_into(lengths, mask, P) &&
           std::ranges::find(lengths, index_t(0)) == lengths.end();  // no empty row
  }


  template <class Prefix>
  KVPrefix<T, Dev> prefix_at(Prefix& prefix, index_t l) const {
    using P = std::remove_cvref_t<Prefix>;
    if constexpr (std::is_same_v<P, NoPrefix>) {
      return {};
    } else if constexpr (requires {
                           std::size(prefix);
                           prefix[static_cast<std::size_t>(l)];
                         }) {
      return prefix[static_cast<std::size_t>(l)];
    } else {
      static_assert(std::is_invocable_r_v<KVPrefix<T, Dev>, Prefix&, index_t>,
                    "Bert::forward: the prefix must be NoPrefix, a range of KVPrefix<T, Dev> (one per layer), or a "
                    "callable (index_t layer) -> KVPrefix<T, Dev>");
      return prefix(l);
    }
  }

  std::vector<index_t> lengths_, offsets_;  // encode()'s packed-sequence bookkeeping, reused
};

/// A BERT whose sizes come from config.json at run time.
template <class T = float, DevicePolicy Dev = Cpu>
using DynamicBert = Bert<BertDynamicConfig, T, Dev>;

}  // namespace deepprompt
