#pragma once
// The modules of a BERT layer stack, as Hugging Face's BertModel names them (models/bert.hpp
// assembles them into the model and documents the names): embeddings, self-attention (with a
// key/value prefix and packed sequences), the residual outputs, the feed-forward, the layer,
// the encoder, the pooler and the masked-LM head.
// Dev: where the parameters and activations live (Cpu by default); the packed-sequence layout
// (offsets, forward_packed, forward_queries) is host-only.
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "../nn/activation.hpp"
#include "../nn/attention.hpp"
#include "../nn/dropout.hpp"
#include "../nn/embedding.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "../nn/norm.hpp"
#include "../ops/concat.hpp"
#include "../ops/embedding.hpp"
#include "../ops/shape.hpp"
#include "bert_config.hpp"

namespace deepprompt {

template <class T, DevicePolicy Dev = Cpu>
struct BertEmbeddings {
  Embedding<T, Dev> word_embeddings;        // (V, C), padding_idx = pad_token_id
  Embedding<T, Dev> position_embeddings;    // (MaxPositions, C)
  Embedding<T, Dev> token_type_embeddings;  // (TypeVocab, C)
  LayerNorm<T, Dev> norm;                   // "LayerNorm"
  Dropout dropout;

  BertEmbeddings() = default;
  template <BertConfigLike Cfg>
  BertEmbeddings(const Cfg& c, Generator& gen)
      : word_embeddings(c.vocab, c.hidden, gen, c.pad_token_id, c.initializer_range),
        position_embeddings(c.max_positions, c.hidden, gen, std::nullopt, c.initializer_range),
        token_type_embeddings(c.type_vocab, c.hidden, gen, std::nullopt, c.initializer_range),
        norm(c.hidden, c.layer_norm_eps),
        dropout(c.hidden_dropout_prob) {}

  /// ids, types: (B, T) -> (B, T, C); the positions are past, ..., past + T - 1.
  Var<T, 3, Dev> forward(const Tensor<std::int64_t, 2>& ids, const Tensor<std::int64_t, 2>& types, index_t past,
                    Generator* gen, bool training) const {
    const index_t L = ids.extent(1);
    Tensor<std::int64_t, 1> positions({L});  // (T)
    for (index_t t = 0; t < L; ++t) positions.data()[t] = past + t;
    return combine(word_embeddings(ids), types, positions, gen, training);
  }

  /// The embedding output of given word vectors: words (B, T, C) (looked up, or HF's
  /// inputs_embeds), types (B, T), positions (T) shared by the rows or (B, T) -> (B, T, C).
  template <std::size_t PR>
  Var<T, 3, Dev> combine(const Var<T, 3, Dev>& words, const Tensor<std::int64_t, 2>& types,
                    const Tensor<std::int64_t, PR>& positions, Generator* gen, bool training) const {
    Var<T, 3, Dev> x = add(words, token_type_embeddings(types));  // as HF: (word + type) + position
    x = add(x, position_embeddings(positions));              // (B, T, C) + (T, C) or (B, T, C)
    return dropout.forward(norm(x), gen, training);
  }

  template <class V>
  void visit(V&& v) {
    v("word_embeddings", word_embeddings);
    v("position_embeddings", position_embeddings);
    v("token_type_embeddings", token_type_embeddings);
    v("LayerNorm", norm);
  }
};

template <class T, DevicePolicy Dev = Cpu>
struct BertSelfAttention {
  Linear<T, Dev> query, key, value;  // (C, C) each
  index_t heads = 0;
  Dropout dropout;  // on the attention probabilities

  BertSelfAttention() = default;
  template <BertConfigLike Cfg>
  BertSelfAttention(const Cfg& c, Generator& gen)
      : query(c.hidden, c.hidden, true, gen, c.initializer_range),
        key(c.hidden, c.hidden, true, gen, c.initializer_range),
        value(c.hidden, c.hidden, true, gen, c.initializer_range),
        heads(c.heads),
        dropout(c.attention_probs_dropout_prob) {}

  /// x: (B, T, C) -> the attention context (B, T, C), before the output projection.
  /// mask: additive (B, T) or (B, P + T), or empty. offsets: empty, or x is (1, N, C) holding
  /// packed sequences (AttentionCall::offsets; then no mask).
  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& x, const Tensor<T, 2, Dev>& mask, const KVPrefix<T, Dev>& prefix,
                         Generator* gen, bool training, std::span<const index_t> offsets = {}) const {
    return attend(x, x, mask, prefix, gen, training, offsets, {});
  }
  /// Packed sequences x (1, N, C) (offsets) whose queries are only the rows xq (1, Nq, C), sequence
  /// b's at query_offsets [b, b + 1): the context of those rows (1, Nq, C).
  Var<T, 3, Dev> forward_queries(const Var<T, 3, Dev>& xq, const Var<T, 3, Dev>& x, const KVPrefix<T, Dev>& prefix,
                                 Generator* gen, bool training, std::span<const index_t> offsets,
                                 std::span<const index_t> query_offsets) const {
    return attend(xq, x, {}, prefix, gen, training, offsets, query_offsets);
  }

  /// The keys and values that P hidden vectors h (P, C) would contribute if they were tokens
  /// in front of this layer's input: K = h Wk^T + bk, V = h Wv^T + bv, each as (H, P, D). The
  /// "prepend hidden vectors" form of deep prompts is this prefix (their own outputs are dropped).
  KVPrefix<T, Dev> prefix_from_hidden(const Var<T, 2, Dev>& h) const {  // h: (P, C)
    const index_t P = h.extent(0), C = h.extent(1), Dh = C / heads;
    auto heads_first = [&](const Var<T, 2, Dev>& y) {  // (P, C) -> (H, P, D)
      return permute(reshape<3>(y, Shape<3>{P, heads, Dh}), {1, 0, 2});
    };
    return KVPrefix<T, Dev>::shared(heads_first(key(h)), heads_first(value(h)));
  }

  Var<T, 3, Dev> attend(const Var<T, 3, Dev>& xq, const Var<T, 3, Dev>& x, const Tensor<T, 2, Dev>& mask,
                        const KVPrefix<T, Dev>& prefix, Generator* gen, bool training, std::span<const index_t> offsets,
                        std::span<const index_t> query_offsets) const {
    AttentionCall<T, Dev> call;
    call.mask = mask;
    call.offsets = offsets;
    call.query_offsets = query_offsets;
    call.prefix = prefix;
    call.dropout = dropout.p;
    call.generator = gen;
    call.training = training;
    return multi_head_attention(query(xq), key(x), value(x), heads, call);
  }

  template <class V>
  void visit(V&& v) {
    v("query", query);
    v("key", key);
    v("value", value);
  }
};

/// dense, dropout, then LayerNorm of the sum with the residual (BertSelfOutput and BertOutput).
template <class T, DevicePolicy Dev = Cpu>
struct BertResidualOutput {
  Linear<T, Dev> dense;
  LayerNorm<T, Dev> norm;  // "LayerNorm"
  Dropout dropout;

  BertResidualOutput() = default;
  template <BertConfigLike Cfg>
  BertResidualOutput(const Cfg& c, index_t in, Generator& gen)
      : dense(c.hidden, in, true, gen, c.initializer_range),
        norm(c.hidden, c.layer_norm_eps),
        dropout(c.hidden_dropout_prob) {}

  /// h: (B, T, In), residual: (B, T, C) -> (B, T, C).
  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& h, const Var<T, 3, Dev>& residual, Generator* gen, bool training) const {
    return norm(add(dropout.forward(dense(h), gen, training), residual));
  }

  template <class V>
  void visit(V&& v) {
    v("dense", dense);
    v("LayerNorm", norm);
  }
};

template <class T, DevicePolicy Dev = Cpu>
struct BertAttention {
  BertSelfAttention<T, Dev> self_attention;  // "self"
  BertResidualOutput<T, Dev> output;

  BertAttention() = default;
  template <BertConfigLike Cfg>
  BertAttention(const Cfg& c, Generator& gen) : self_attention(c, gen), output(c, c.hidden, gen) {}

  template <class V>
  void visit(V&& v) {
    v("self", self_attention);
    v("output", output);
  }
};

template <class T, DevicePolicy Dev = Cpu>
struct BertIntermediate {
  Linear<T, Dev> dense;  // (I, C)
  Activation act = Activation::gelu;

  BertIntermediate() = default;
  template <BertConfigLike Cfg>
  BertIntermediate(const Cfg& c, Generator& gen)
      : dense(c.intermediate, c.hidden, true, gen, c.initializer_range), act(c.hidden_act) {}

  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& x) const { return activate(dense(x), act); }  // (B, T, C) -> (B, T, I)

  template <class V>
  void visit(V&& v) {
    v("dense", dense);
  }
};

template <class T, DevicePolicy Dev = Cpu>
struct BertLayer {
  BertAttention<T, Dev> attention;
  BertIntermediate<T, Dev> intermediate;
  BertResidualOutput<T, Dev> output;

  BertLayer() = default;
  template <BertConfigLike Cfg>
  BertLayer(const Cfg& c, Generator& gen) : attention(c, gen), intermediate(c, gen), output(c, c.intermediate, gen) {}

  /// x, y: (B, T, C).
  /// x: (B, T, C), or (1, N, C) packed sequences with their offsets (BertSelfAttention::forward).
  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& x, const Tensor<T, 2, Dev>& mask, const KVPrefix<T, Dev>& prefix,
                         Generator* gen, bool training, std::span<const index_t> offsets = {}) const {
    Var<T, 3, Dev> h = attention.output.forward(
        attention.self_attention.forward(x, mask, prefix, gen, training, offsets), x, gen, training);
    return output.forward(intermediate.forward(h), h, gen, training);
  }
  /// The layer's outputs for the rows xq (1, Nq, C) only of packed sequences x (1, N, C)
  /// (BertSelfAttention::forward_queries): every row serves as key and value, only xq's rows
  /// go through the attention output and the feed-forward.
  Var<T, 3, Dev> forward_queries(const Var<T, 3, Dev>& xq, const Var<T, 3, Dev>& x, const KVPrefix<T, Dev>& prefix,
                                 Generator* gen, bool training, std::span<const index_t> offsets,
                                 std::span<const index_t> query_offsets) const {
    Var<T, 3, Dev> h = attention.output.forward(
        attention.self_attention.forward_queries(xq, x, prefix, gen, training, offsets, query_offsets), xq, gen,
        training);
    return output.forward(intermediate.forward(h), h, gen, training);
  }

  template <class V>
  void visit(V&& v) {
    v("attention", attention);
    v("intermediate", intermediate);
    v("output", output);
  }
};

template <class T, DevicePolicy Dev = Cpu>
struct BertEncoder {
  std::vector<BertLayer<T, Dev>> layer;

  /// The layers over x (B, T, C) with the additive mask (B, T) or (B, P + T) (or empty);
  /// prefix_of(l): layer l's KVPrefix<T, Dev> (empty: none). Returns (B, T, C).
  template <class PrefixOf>
  Var<T, 3, Dev> forward(Var<T, 3, Dev> x, const Tensor<T, 2, Dev>& mask, PrefixOf&& prefix_of, Generator* gen,
                    bool training) const {
    for (std::size_t l = 0; l < layer.size(); ++l)
      x = layer[l].forward(x, mask, prefix_of(static_cast<index_t>(l)), gen, training);
    return x;
  }

  /// The layers over packed sequences x (1, N, C), sequence b being rows [offsets[b],
  /// offsets[b + 1]). Returns (1, N, C); with first_token_only, the last layer computes each
  /// sequence's first row only (its keys and values still come from every row): (1, B, C).
  template <class PrefixOf>
  Var<T, 3, Dev> forward_packed(Var<T, 3, Dev> x, std::span<const index_t> offsets, bool first_token_only,
                           PrefixOf&& prefix_of, Generator* gen, bool training) const {
    const std::size_t full = first_token_only ? layer.size() - 1 : layer.size();
    for (std::size_t l = 0; l < full; ++l)
      x = layer[l].forward(x, {}, prefix_of(static_cast<index_t>(l)), gen, training, offsets);
    if (full == layer.size()) return x;
    const index_t B = static_cast<index_t>(offsets.size()) - 1, C = x.extent(2);
    Tensor<index_t, 1> first_rows({B + 1});  // {0, 1, ..., B}: one query each (pool memory: no allocation per step)
    std::iota(first_rows.data(), first_rows.data() + B + 1, index_t{0});
    auto first_of = Tensor<std::int64_t, 2>({1, B});  // each sequence's first row in x
    for (index_t b = 0; b < B; ++b) first_of(0, b) = offsets[static_cast<std::size_t>(b)];
    const Var<T, 3, Dev> xq = embedding(reshape<2>(x, Shape<2>{x.extent(1), C}), first_of);  // (1, B, C): a row gather
    return layer.back().forward_queries(xq, x, prefix_of(static_cast<index_t>(full)), gen, training, offsets,
                                        std::span<const index_t>(first_rows.data(), static_cast<std::size_t>(B) + 1));
  }

  template <class V>
  void visit(V&& v) {
    v("layer", layer);
  }
};

template <class T, DevicePolicy Dev = Cpu>
struct BertPooler {
  Linear<T, Dev> dense;  // (C, C)

  BertPooler() = default;
  template <BertConfigLike Cfg>
  BertPooler(const Cfg& c, Generator& gen) : dense(c.hidden, c.hidden, true, gen, c.initializer_range) {}

  /// tanh(dense(x[:, 0])).  x: (B, T, C) -> (B, C).
  Var<T, 2, Dev> forward(const Var<T, 3, Dev>& x) const {
    const index_t B = x.extent(0), C = x.extent(2);
    return deepprompt::tanh(dense(reshape<2>(slice(x, 1, 0, 1), Shape<2>{B, C})));
  }

  template <class V>
  void visit(V&& v) {
    v("dense", dense);
  }
};

/// cls.predictions: transform (dense, act, LayerNorm), then the decoder tied to the word
/// embeddings, plus a bias (V).
template <class T, DevicePolicy Dev = Cpu>
struct BertMlmHead {
  struct Transform {
    Linear<T, Dev> dense;  // (C, C)
    Activation act = Activation::gelu;
    LayerNorm<T, Dev> norm;  // "LayerNorm"
    template <class V>
    void visit(V&& v) {
      v("dense", dense);
      v("LayerNorm", norm);
    }
  };
  struct Predictions {
    Transform transform;
    Parameter<T, 1, Dev> bias;  // (V)
    template <class V>
    void visit(V&& v) {
      v("transform", transform);
      v("bias", bias);
    }
  };
  Predictions predictions;

  BertMlmHead() = default;
  template <BertConfigLike Cfg>
  BertMlmHead(const Cfg& c, Generator& gen) {
    predictions.transform.dense = Linear<T, Dev>(c.hidden, c.hidden, true, gen, c.initializer_range);
    predictions.transform.act = c.hidden_act;
    predictions.transform.norm = LayerNorm<T, Dev>(c.hidden, c.layer_norm_eps);
    predictions.bias = Parameter<T, 1, Dev>("bias", filled<T, 1, Dev>({c.vocab}, T(0)));
  }

  /// x: (B, T, C), word_embeddings: (V, C) -> logits (B, T, V).
  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& x, const Var<T, 2, Dev>& word_embeddings) const {
    const auto& t = predictions.transform;
    return linear(t.norm(activate(t.dense(x), t.act)), word_embeddings, predictions.bias.var());
  }

  template <class V>
  void visit(V&& v) {
    v("predictions", predictions);
  }
};

}  // namespace deepprompt
