#pragma once
// T5 (v1.0 and v1.1) as Hugging Face's T5ForConditionalGeneration: shared embedding, encoder and
// decoder stacks of pre-RMS-norm residual blocks without biases, relative position buckets
// computed in each stack's first layer and shared by all its layers, attention without the
// 1/sqrt(d) scale, a teacher-forced loss with labels, and a key/value cache for decoding
// (greedy and beam search are in t5_generate.hpp).
//
//   auto model = dp::DynamicT5<float>::from_pretrained("t5-small/");      // config.json + model.safetensors
//   auto out = model.forward({.input_ids = ids, .attention_mask = mask, .labels = labels});
//   out.loss->backward();                                                 // every trainable parameter
//
// Parameter names are the Hugging Face state-dict names (`shared.weight`,
// `encoder.block.0.layer.0.SelfAttention.q.weight`, `decoder.block.1.layer.1.EncDecAttention.o.weight`,
// `decoder.block.0.layer.2.DenseReluDense.wi_0.weight`, `lm_head.weight` when untied...).
// Checkpoints with or without the tied aliases (`encoder.embed_tokens.weight`,
// `decoder.embed_tokens.weight`, and `lm_head.weight` when tied) load alike; the unused
// `decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight` of the original
// checkpoints is ignored, as Hugging Face does.
//
// Dropout (train() mode) sits where Hugging Face puts it: on the embeddings, on the attention
// probabilities, on each sub-layer's output before the residual sum, inside the feed-forward
// block after the activation (after the gating product in v1.1), and after each stack's final
// layer norm. Masks come from the model's own Generator, so they are reproducible but not
// PyTorch's.
//
// Key/value prefixes (P-Tuning v2, prefix tuning): T5Prefix holds, per layer, an optional KVPrefix
// (nn/attention.hpp) for encoder self-attention, decoder self-attention and cross-attention,
// shared (H, P, D) or per example (B, H, P, D). The prefix is put in front of the keys and values; the relative position
// bias and the padding masks cover only the real keys (the prefix gets 0 and is always visible).
// (Hugging Face's past_key_values would instead shift the real tokens' relative positions by P.)
//
// Device: T5<Spec, T, Dev> keeps its parameters and activations on Dev (Cpu by default); weights
// are drawn or read on the host and copied (from_pretrained, init_weights, to<D>()), checkpoints
// are written through a host copy. Ids and masks stay host tensors. Generation (t5_generate.hpp)
// runs on the host: copy the model there with to<Cpu>().
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../core/rng.hpp"
#include "../io/config.hpp"
#include "../io/safetensors.hpp"
#include "../nn/attention.hpp"  // KVPrefix
#include "../nn/module.hpp"
#include "../ops/activation.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/attention.hpp"
#include "../ops/concat.hpp"
#include "../ops/cross_entropy.hpp"
#include "../ops/dropout.hpp"
#include "../ops/embedding.hpp"
#include "../ops/linear.hpp"
#include "../ops/norm.hpp"
#include "../ops/shape.hpp"
#include "t5_config.hpp"
#include "t5_io.hpp"
#include "t5_layers.hpp"

namespace deepprompt {

/// T5ForConditionalGeneration. Spec: a T5Config<...> (sizes fixed at compile time; a checkpoint of
/// other sizes is rejected) or T5DynamicConfig (sizes from the constructor or config.json).
template <detail::T5ConfigLike Spec = T5DynamicConfig, class T = float, DevicePolicy Dev = Cpu>
class T5 {
  static_assert(std::is_floating_point_v<T>, "T5: T must be float or double");
  template <detail::T5ConfigLike, class, DevicePolicy>
  friend class T5;

 public:
  using value_type = T;
  using spec = Spec;
  using device_type = Dev;

  /// A model with the Spec's sizes, initialised as Hugging Face's T5PreTrainedModel._init_weights
  /// (initializer_factor 1) from `seed`. Static Specs only.
  explicit T5(std::uint64_t seed = 0)
    requires(!Spec::dynamic)
      : T5(Spec::dims(), seed) {}
  /// A model sized by `dims` (a static Spec checks that they are its own), initialised from `seed`.
  explicit T5(const T5Dims& dims, std::uint64_t seed = 0) : T5(dims, NoInit{}) { init_weights(seed); }
  /// A model sized by a Hugging Face config (io/config.hpp), initialised from `seed`.
  explicit T5(const HfT5Config& config, std::uint64_t seed = 0) : T5(t5_dims(config), seed) {}

  T5(T5&&) noexcept = default;
  T5& operator=(T5&&) noexcept = default;

  /// Loads `dir`/config.json and `dir`/model.safetensors (F32, F16, BF16 or F64; converted to T).
  /// Throws IoError / FormatError naming the file, and Error listing every missing, unexpected
  /// and mis-shaped tensor.
  static T5 from_pretrained(const std::filesystem::path& dir) {
    if constexpr (!std::is_same_v<Dev, Cpu>) {  // read on the host, then copied
      return T5<Spec, T, Cpu>::from_pretrained(dir).template to<Dev>();
    } else {
      const T5Dims d = t5_dims(read_t5_config(dir));
      if constexpr (!Spec::dynamic) detail::check_t5_dims_match(Spec::dims(), d, (dir / "config.json").string());
      const auto file = dir / "model.safetensors";
      if (!std::filesystem::exists(file))
        throw IoError(detail::cat("T5: no model.safetensors in '", dir.string(),
                                  "' (only safetensors checkpoints are read; convert pytorch_model.bin first)"));
      T5 m(d, NoInit{});
      m.load_safetensors(file);
      return m;
    }
  }

  /// Copies the tensors of a safetensors file into the parameters (see the aliases at the top).
  /// Strict: throws one Error listing every missing, unexpected and mis-shaped tensor and copies
  /// nothing. Not strict: copies what fits and returns the report. On a device: through a host copy.
  LoadReport load_safetensors(const std::filesystem::path& path, bool strict = true) {
    if constexpr (std::is_same_v<Dev, Cpu>) {
      return t5::load_safetensors(*this, dims_, path, strict);
    } else {
      auto host = to<Cpu>();
      LoadReport rep = host.load_safetensors(path, strict);
      copy_parameters<T>(*this, host);
      return rep;
    }
  }

  /// Writes `dir`/config.json and `dir`/model.safetensors as Hugging Face's save_pretrained does
  /// (no tied duplicates), or with the aliases encoder/decoder.embed_tokens.weight (and
  /// lm_head.weight when tied) as torch's state_dict() lists them. float models write F32.
  void save_pretrained(const std::filesystem::path& dir, bool with_tied_aliases = false) {
    if constexpr (std::is_same_v<Dev, Cpu>)
      t5::save_pretrained(*this, shared_.weight, config_json(), dims_.tied, dir, with_tied_aliases);
    else
      to<Cpu>().save_pretrained(dir, with_tied_aliases);
  }

  /// A copy of this model on device To (the host or a device, from either): the same sizes,
  /// weights, trainable flags, dropout stream and mode.
  template <DevicePolicy To>
  T5<Spec, T, To> to() {
    T5<Spec, T, To> out(dims_, typename T5<Spec, T, To>::NoInit{});
    copy_parameters<T>(out, *this);
    out.gen_ = gen_;
    out.training_ = training_;
    return out;
  }

  /// The Hugging Face config.json of this model.
  nlohmann::json config_json() const { return t5_config_json(dims_); }

  const T5Dims& dims() const { return dims_; }

  template <class V>
  void visit(V&& v) {
    v("shared", shared_);
    v("encoder", encoder_);
    v("decoder", decoder_);
    v("lm_head", lm_head_);  // untied only
  }

  // --- dropout ------------------------------------------------------------------------------
  /// train(): dropout on (dims().dropout, drawn from generator()); eval(): off (the default).
  void train(bool on = true) { training_ = on; }
  void eval() { training_ = false; }
  bool training() const { return training_; }
  Generator& generator() { return gen_; }

  // --- forward --------------------------------------------------------------------------------
  /// Encoder, decoder, LM head and (with labels) the loss. Decoder inputs: decoder_input_ids, or
  /// the labels shifted right (decoder_start_token_id in front, -100 replaced by pad_token_id).
  T5Output<T, Dev> forward(const T5Batch& batch, const T5Prefix<T, Dev>* prefix = nullptr) {
    const bool has_labels = !batch.labels.empty();
    if (batch.decoder_input_ids.empty() && !has_labels)
      throw Error("T5::forward: give decoder_input_ids or labels (the decoder needs inputs)");
    const Tensor<std::int64_t, 2> dec_ids = batch.decoder_input_ids.empty() ? shift_right(batch.labels)
                                                                             : batch.decoder_input_ids;
    check_ids("input_ids", batch.input_ids);
    check_ids("decoder_input_ids", dec_ids);
    if (has_labels)
      check_shapes(batch.labels.shape() == dec_ids.shape(), "T5::forward",
                   "labels must have the shape of decoder_input_ids", batch.labels.shape(), dec_ids.shape());
    check_shapes(dec_ids.extent(0) == batch.input_ids.extent(0), "T5::forward",
                 "input_ids and decoder_input_ids differ in batch size", batch.input_ids.shape(), dec_ids.shape());
    if (!batch.decoder_attention_mask.empty())
      check_shapes(batch.decoder_attention_mask.shape() == dec_ids.shape(), "T5::forward",
                   "decoder_attention_mask must have the shape of decoder_input_ids",
                   batch.decoder_attention_mask.shape(), dec_ids.shape());
    T5Output<T, Dev> out;
    out.encoder_last_hidden_state = encode(batch.input_ids, batch.attention_mask, prefix);
    const Tensor<T, 2, Dev> enc_mask = additive_mask(batch.attention_mask, batch.input_ids);
    const Tensor<T, 2, Dev> dec_mask = additive_mask(batch.decoder_attention_mask, dec_ids);
    auto hidden = decode(dec_ids, out.encoder_last_hidden_state, enc_mask, prefix, nullptr, dec_mask);
    out.logits = lm_logits(hidden);
    if (has_labels) out.loss = cross_entropy(out.logits, batch.labels, -100);
    return out;
  }
  /// forward() with decoder_input_ids.
  T5Output<T, Dev> forward(const Tensor<std::int64_t, 2>& input_ids, const Tensor<std::int64_t, 2>& attention_mask,
                      const Tensor<std::int64_t, 2>& decoder_input_ids, const T5Prefix<T, Dev>* prefix = nullptr) {
    return forward(T5Batch{.input_ids = input_ids, .attention_mask = attention_mask, .decoder_input_ids = decoder_input_ids},
                   prefix);
  }
  /// The teacher-forced loss with labels (B, S) (-100 ignored).
  Var<T, 0, Dev> loss(const Tensor<std::int64_t, 2>& input_ids, const Tensor<std::int64_t, 2>& attention_mask,
                 const Tensor<std::int64_t, 2>& labels, const T5Prefix<T, Dev>* prefix = nullptr) {
    return *forward(T5Batch{.input_ids = input_ids, .attention_mask = attention_mask, .labels = labels}, prefix).loss;
  }

  /// Hugging Face's _shift_right: decoder_start_token_id, then labels[:, :-1], -100 -> pad.
  Tensor<std::int64_t, 2> shift_right(const Tensor<std::int64_t, 2>& labels) const {
    const index_t B = labels.extent(0), S = labels.extent(1);
    Tensor<std::int64_t, 2> out({B, S});
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < S; ++t) {
        const std::int64_t v = t == 0 ? dims_.decoder_start_token_id : labels(b, t - 1);
        out(b, t) = v == -100 ? dims_.pad_token_id : v;
      }
    return out;
  }

  /// The additive mask of a 0/1 mask (0 or the lowest finite T), (B, T); empty for an empty mask.
  /// `ids` (B, T) is the sequence the mask belongs to (checked against its shape).
  Tensor<T, 2, Dev> additive_mask(const Tensor<std::int64_t, 2>& mask, const Tensor<std::int64_t, 2>& ids) const {
    if (mask.empty()) return {};
    check_shapes(mask.shape() == ids.shape(), "T5", "an attention mask must have the shape of its ids", mask.shape(),
                 ids.shape());
    return copy_to<Dev>(attention_mask<T>(mask));
  }

  /// The encoder: ids (B, Ts), 0/1 mask (B, Ts) or empty; returns the last hidden state (B, Ts, C).
  Var<T, 3, Dev> encode(const Tensor<std::int64_t, 2>& input_ids, const Tensor<std::int64_t, 2>& mask,
                   const T5Prefix<T, Dev>* prefix = nullptr) {
    check_ids("input_ids", input_ids);
    check_prefix(prefix, input_ids.extent(0));
    const index_t S = input_ids.extent(1);
    const Tensor<T, 2, Dev> m = additive_mask(mask, input_ids);
    auto h = drop(embedding(shared_.weight.var(), input_ids));  // (B, Ts, C)
    const auto bias = position_bias(*encoder_.block[0].self.attention.relative_attention_bias, 0, S, S, true);
    for (std::size_t i = 0; i < encoder_.block.size(); ++i) {
      auto& blk = encoder_.block[i];
      auto& att = blk.self.attention;
      auto n = rms_norm(h, blk.self.layer_norm.weight, T(dims_.eps));
      auto a = attend(att, n, heads(linear(n, att.k.weight.var())), heads(linear(n, att.v.weight.var())), m, bias,
                      false, layer_prefix(prefix, &T5Prefix<T, Dev>::encoder, i));
      h = h + drop(a);
      h = feed_forward(blk.ff, h);
    }
    return drop(rms_norm(h, encoder_.final_layer_norm.weight, T(dims_.eps)));
  }

  /// The decoder on ids (B, S) at positions cache->length.. (0 without a cache), attending to
  /// `encoder_hidden` (B, Ts, C) with the additive encoder mask `enc_mask` (B, Ts) (or empty);
  /// returns the hidden state after the final layer norm (B, S, C). With a cache, the new keys
  /// and values are appended to it (the cross-attention ones are computed on the first call) and
  /// its length advances by S. `dec_mask`: an additive mask over the decoder's keys (B, length + S),
  /// or empty (causal only).
  Var<T, 3, Dev> decode(const Tensor<std::int64_t, 2>& ids, const Var<T, 3, Dev>& encoder_hidden, const Tensor<T, 2, Dev>& enc_mask,
                   const T5Prefix<T, Dev>* prefix = nullptr, T5Cache<T, Dev>* cache = nullptr,
                   const Tensor<T, 2, Dev>& dec_mask = {}) {
    check_ids("decoder_input_ids", ids);
    check_prefix(prefix, ids.extent(0));
    const index_t B = ids.extent(0), S = ids.extent(1), C = dims_.d_model;
    check_shapes(encoder_hidden.extent(0) == B && encoder_hidden.extent(2) == C, "T5::decode",
                 "the encoder output must be (B, Ts, d_model) for decoder ids (B, S)", encoder_hidden.shape(),
                 ids.shape());
    const index_t past = cache ? cache->length : 0;
    if (cache && cache->layers.empty()) cache->layers.resize(decoder_.block.size());
    auto h = drop(embedding(shared_.weight.var(), ids));  // (B, S, C)
    const auto bias =
        position_bias(*decoder_.block[0].self.attention.relative_attention_bias, past, S, past + S, false);
    for (std::size_t i = 0; i < decoder_.block.size(); ++i) {
      auto& blk = decoder_.block[i];
      auto& sa = blk.self.attention;
      auto n = rms_norm(h, blk.self.layer_norm.weight, T(dims_.eps));
      auto k = heads(linear(n, sa.k.weight.var())), v = heads(linear(n, sa.v.weight.var()));
      if (cache) {
        auto& c = cache->layers[i];
        if (past > 0) {
          k = concat<T, 4, Dev>({c.self_k, k}, 2);
          v = concat<T, 4, Dev>({c.self_v, v}, 2);
        }
        c.self_k = k, c.self_v = v;
      }
      auto a = attend(sa, n, k, v, dec_mask, bias, true, layer_prefix(prefix, &T5Prefix<T, Dev>::decoder, i));
      h = h + drop(a);

      auto& ca = blk.cross->attention;
      n = rms_norm(h, blk.cross->layer_norm.weight, T(dims_.eps));
      Var<T, 4, Dev> ck, cv;
      if (cache && !cache->layers[i].cross_k.value().empty()) {
        ck = cache->layers[i].cross_k, cv = cache->layers[i].cross_v;
      } else {
        ck = heads(linear(encoder_hidden, ca.k.weight.var()));
        cv = heads(linear(encoder_hidden, ca.v.weight.var()));
        if (cache) cache->layers[i].cross_k = ck, cache->layers[i].cross_v = cv;
      }
      a = attend(ca, n, ck, cv, enc_mask, Var<T, 4, Dev>(), false, layer_prefix(prefix, &T5Prefix<T, Dev>::cross, i));
      h = h + drop(a);
      h = feed_forward(blk.ff, h);
    }
    if (cache) cache->length += S;
    return drop(rms_norm(h, decoder_.final_layer_norm.weight, T(dims_.eps)));
  }

  /// The LM head: hidden (B, S, C) -> logits (B, S, V); tied models scale the input by d_model^-0.5.
  Var<T, 3, Dev> lm_logits(const Var<T, 3, Dev>& hidden) {
    if (dims_.tied)
      return linear(scale(hidden, static_cast<T>(std::pow(static_cast<double>(dims_.d_model), -0.5))),
                    shared_.weight.var());
    return linear(hidden, lm_head_->weight.var());
  }

  /// The relative position bias of `table` (buckets, H) for queries at positions q0..q0+Tq-1 and
  /// keys 0..Tk-1: (1, H, Tq, Tk), differentiable in the table.
  Var<T, 4, Dev> position_bias(const t5::Matrix<T, Dev>& table, index_t q0, index_t Tq, index_t Tk, bool bidirectional) const {
    Tensor<std::int64_t, 2> ids({Tq, Tk});
    for (index_t i = 0; i < Tq; ++i)
      for (index_t j = 0; j < Tk; ++j)
        ids(i, j) = t5_relative_position_bucket(j - (q0 + i), bidirectional, dims_.buckets, dims_.max_distance);
    auto e = embedding(table.weight.var(), ids);  // (Tq, Tk, H)
    return reshape<4>(permute(e, {2, 0, 1}), Shape<4>{1, dims_.num_heads, Tq, Tk});
  }

  // --- parts, by reference (Hugging Face names in comments) ---------------------------------
  t5::Matrix<T, Dev>& shared() { return shared_; }             // shared
  t5::Stack<T, Dev>& encoder() { return encoder_; }            // encoder
  t5::Stack<T, Dev>& decoder() { return decoder_; }            // decoder
  std::optional<t5::Matrix<T, Dev>>& lm_head() { return lm_head_; }  // lm_head (untied only)

  /// Hugging Face's _init_weights with initializer_factor `factor`, drawn from `seed` (on a
  /// device: drawn on the host, copied, so both devices start alike).
  void init_weights(std::uint64_t seed, double factor = 1.0) {
    if constexpr (std::is_same_v<Dev, Cpu>) {
      t5::init_weights(shared_, encoder_, decoder_, lm_head_, dims_, seed, factor);
    } else {
      T5<Spec, T, Cpu> host(dims_, typename T5<Spec, T, Cpu>::NoInit{});
      host.init_weights(seed, factor);
      copy_parameters<T>(*this, host);
    }
  }

 private:
  struct NoInit {};

  T5(const T5Dims& dims, NoInit) : dims_(dims) {
    dims_.validate();
    if constexpr (!Spec::dynamic) detail::check_t5_dims_match(Spec::dims(), dims_, "the constructor's T5Dims");
    build();
  }

  void build() {
    const T5Dims& d = dims_;
    auto mat = [](const std::string& name, index_t r, index_t c) {
      return t5::Matrix<T, Dev>{Parameter<T, 2, Dev>(name + ".weight", Tensor<T, 2, Dev>({r, c}))};
    };
    auto norm = [&](const std::string& name) {
      return t5::Norm<T, Dev>{Parameter<T, 1, Dev>(name + ".weight", filled<T, 1, Dev>({d.d_model}, T(1)))};
    };
    auto attention = [&](const std::string& name, bool relative) {
      t5::Attention<T, Dev> a{mat(name + ".q", d.inner(), d.d_model), mat(name + ".k", d.inner(), d.d_model),
                         mat(name + ".v", d.inner(), d.d_model), mat(name + ".o", d.d_model, d.inner()),
                         std::nullopt};
      if (relative) a.relative_attention_bias = mat(name + ".relative_attention_bias", d.buckets, d.num_heads);
      return a;
    };
    auto stack = [&](const std::string& name, index_t layers, bool decoder) {
      t5::Stack<T, Dev> s;
      for (index_t i = 0; i < layers; ++i) {
        const std::string p = detail::cat(name, ".block.", i, ".layer.");
        t5::Block<T, Dev> b;
        b.self = {attention(p + "0.SelfAttention", i == 0), norm(p + "0.layer_norm")};
        if (decoder) b.cross = t5::CrossAttentionLayer<T, Dev>{attention(p + "1.EncDecAttention", false), norm(p + "1.layer_norm")};
        const std::string f = p + (decoder ? "2" : "1");
        if (d.gated) {
          b.ff.dense.wi_0 = mat(f + ".DenseReluDense.wi_0", d.d_ff, d.d_model);
          b.ff.dense.wi_1 = mat(f + ".DenseReluDense.wi_1", d.d_ff, d.d_model);
        } else {
          b.ff.dense.wi = mat(f + ".DenseReluDense.wi", d.d_ff, d.d_model);
        }
        b.ff.dense.wo = mat(f + ".DenseReluDense.wo", d.d_model, d.d_ff);
        b.ff.layer_norm = norm(f + ".layer_norm");
        s.block.push_back(std::move(b));
      }
      s.final_layer_norm = norm(name + ".final_layer_norm");
      return s;
    };
    shared_ = mat("shared", d.vocab_size, d.d_model);
    encoder_ = stack("encoder", d.num_layers, false);
    decoder_ = stack("decoder", d.num_decoder_layers, true);
    if (!d.tied) lm_head_ = mat("lm_head", d.vocab_size, d.d_model);
  }

  void check_ids(const char* what, const Tensor<std::int64_t, 2>& ids) const {
    if (ids.empty() || ids.extent(0) == 0 || ids.extent(1) == 0)
      throw ShapeError(detail::cat("T5: ", what, " is empty (shape ", shape_str(ids.shape()), ")"));
    for (index_t i = 0; i < ids.size(); ++i)
      if (ids.data()[i] < 0 || ids.data()[i] >= dims_.vocab_size)
        throw Error(detail::cat("T5: ", what, " holds id ", ids.data()[i], " at flat position ", i,
                                ", outside the vocabulary [0, ", dims_.vocab_size, ")"));
  }

  void check_prefix(const T5Prefix<T, Dev>* p, index_t B) const {
    if (!p) return;
    auto check = [&](const std::vector<KVPrefix<T, Dev>>& v, index_t layers, const char* kind) {
      if (!v.empty() && static_cast<index_t>(v.size()) != layers)
        throw Error(detail::cat("T5Prefix: ", v.size(), " ", kind, " prefixes for ", layers,
                                " layers (give none or one per layer; an empty entry means none there)"));
      for (const auto& e : v) {
        if (e.empty()) continue;
        const bool batched = !e.k_batch.value().empty();
        const index_t H = batched ? e.k_batch.extent(1) : e.k.extent(0);
        const index_t D = batched ? e.k_batch.extent(3) : e.k.extent(2);
        if (H != dims_.num_heads || D != dims_.d_kv || (batched && e.k_batch.extent(0) != B))
          throw ShapeError(detail::cat("T5Prefix: a ", kind, " prefix of shape ",
                                       batched ? shape_str(e.k_batch.shape()) : shape_str(e.k.shape()),
                                       " does not fit (H, P, D) or (B, H, P, D) with B = ", B,
                                       ", H = ", dims_.num_heads, ", D = d_kv = ", dims_.d_kv));
      }
    };
    check(p->encoder, dims_.num_layers, "encoder");
    check(p->decoder, dims_.num_decoder_layers, "decoder self-attention");
    check(p->cross, dims_.num_decoder_layers, "cross-attention");
  }

  static const KVPrefix<T, Dev>* layer_prefix(const T5Prefix<T, Dev>* p, std::vector<KVPrefix<T, Dev>> T5Prefix<T, Dev>::*kind,
                                         std::size_t i) {
    if (!p || (p->*kind).empty() || (p->*kind)[i].empty()) return nullptr;
    return &(p->*kind)[i];
  }

  template <std::size_t R>
  Var<T, R, Dev> drop(const Var<T, R, Dev>& x) {
    return dropout(x, T(dims_.dropout), gen_, training_);
  }

  // (B, S, H * D) -> (B, H, S, D)
  Var<T, 4, Dev> heads(const Var<T, 3, Dev>& x) const {
    const index_t B = x.extent(0), S = x.extent(1);
    return permute(reshape<4>(x, Shape<4>{B, S, dims_.num_heads, dims_.d_kv}), {0, 2, 1, 3});
  }

  // Queries from `x` (B, Tq, C), keys and values (B, H, Tk, D); returns o(attention) (B, Tq, C).
  Var<T, 3, Dev> attend(const t5::Attention<T, Dev>& a, const Var<T, 3, Dev>& x, const Var<T, 4, Dev>& k, const Var<T, 4, Dev>& v,
                   const Tensor<T, 2, Dev>& mask, const Var<T, 4, Dev>& bias, bool causal, const KVPrefix<T, Dev>* prefix) {
    const index_t B = x.extent(0), Tq = x.extent(1);
    AttentionOptions<T, Dev> opt;
    opt.mask = mask;
    opt.bias = bias;
    opt.causal = causal;
    opt.scale = T(1);
    if (training_) {
      opt.dropout = T(dims_.dropout);
      opt.generator = &gen_;
    }
    if (prefix) {
      opt.prefix_k = prefix->k, opt.prefix_v = prefix->v;
      opt.prefix_k_batch = prefix->k_batch, opt.prefix_v_batch = prefix->v_batch;
    }
    auto y = scaled_dot_product_attention(heads(linear(x, a.q.weight.var())), k, v, opt);  // (B, H, Tq, D)
    auto merged = reshape<3>(permute(y, {0, 2, 1, 3}), Shape<3>{B, Tq, dims_.inner()});
    return linear(merged, a.o.weight.var());
  }

  Var<T, 3, Dev> activation(const Var<T, 3, Dev>& x) const {
    switch (dims_.act) {
      case T5Act::relu: return relu(x);
      case T5Act::gelu: return gelu(x);
      case T5Act::gelu_new: return gelu_tanh(x);
      case T5Act::silu: return mul(x, sigmoid(x));
    }
    return x;
  }

  // T5LayerFF: h + dropout(DenseReluDense(layer_norm(h)))
  Var<T, 3, Dev> feed_forward(const t5::FeedForwardLayer<T, Dev>& f, const Var<T, 3, Dev>& h) {
    auto n = rms_norm(h, f.layer_norm.weight, T(dims_.eps));
    Var<T, 3, Dev> inner = f.dense.wi ? activation(linear(n, f.dense.wi->weight.var()))
                                 : mul(activation(linear(n, f.dense.wi_0->weight.var())),
                                       linear(n, f.dense.wi_1->weight.var()));
    auto y = linear(drop(inner), f.dense.wo.weight.var());
    return h + drop(y);
  }

  T5Dims dims_;
  t5::Matrix<T, Dev> shared_;
  t5::Stack<T, Dev> encoder_, decoder_;
  std::optional<t5::Matrix<T, Dev>> lm_head_;
  bool training_ = false;
  Generator gen_{0x7535};
};

/// A T5 sized at run time (config.json).
template <class T = float, DevicePolicy Dev = Cpu>
using DynamicT5 = T5<T5DynamicConfig, T, Dev>;

}  // namespace deepprompt
