#pragma once
// T5's pieces apart from the model class (models/t5.hpp assembles them and documents the
// Hugging Face names): the relative position buckets, the batch / prefix / output / cache types
// of T5::forward, and the parameter modules of the stacks (namespace t5), named as Hugging Face's
// T5 modules are.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../core/rng.hpp"
#include "../nn/attention.hpp"  // KVPrefix
#include "../nn/module.hpp"
#include "t5_config.hpp"

namespace deepprompt {

/// Hugging Face's T5Attention._relative_position_bucket for one relative position
/// (memory position - query position), with its float32 arithmetic: positions below
/// max_exact = buckets/2 (buckets/4 per direction when bidirectional) get their own bucket,
/// larger ones logarithmic buckets up to max_distance, beyond it the last bucket. Bidirectional
/// (encoder): positive offsets use the upper half of the buckets; causal (decoder): positive
/// offsets (future keys) fall into bucket 0.
inline std::int64_t t5_relative_position_bucket(std::int64_t relative_position, bool bidirectional,
                                                std::int64_t num_buckets, std::int64_t max_distance) {
  std::int64_t bucket = 0;
  std::int64_t n = num_buckets;
  std::int64_t rp = relative_position;
  if (bidirectional) {
    n /= 2;
    if (rp > 0) bucket += n;
    rp = rp < 0 ? -rp : rp;
  } else {
    rp = rp < 0 ? -rp : 0;
  }
  const std::int64_t max_exact = n / 2;
  if (rp < max_exact) return bucket + rp;
  // torch: max_exact + (log(rp.float() / max_exact) / math.log(max_distance / max_exact)
  //                     * (n - max_exact)).to(long), all in float32
  const float ratio = static_cast<float>(rp) / static_cast<float>(max_exact);
  const float denom = static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / denom * static_cast<float>(n - max_exact);
  const std::int64_t large = std::min<std::int64_t>(max_exact + static_cast<std::int64_t>(scaled), n - 1);
  return bucket + large;
}

/// Per-layer prefixes of a T5. Each vector is empty (no prefix) or has one entry per layer of its
/// kind (an empty entry: no prefix on that layer).
template <class T, DevicePolicy Dev = Cpu>
struct T5Prefix {
  std::vector<KVPrefix<T, Dev>> encoder;  // encoder self-attention, num_layers entries
  std::vector<KVPrefix<T, Dev>> decoder;  // decoder self-attention, num_decoder_layers entries
  std::vector<KVPrefix<T, Dev>> cross;    // cross-attention, num_decoder_layers entries
};

/// Inputs of T5::forward. Token ids are int64; masks hold 0/1 (1 = attend).
struct T5Batch {
  Tensor<std::int64_t, 2> input_ids{};               // (B, Ts), required
  Tensor<std::int64_t, 2> attention_mask{};          // (B, Ts); empty: all ones
  Tensor<std::int64_t, 2> decoder_input_ids{};       // (B, S); empty: labels shifted right
  Tensor<std::int64_t, 2> decoder_attention_mask{};  // (B, S); empty: all ones (causal only)
  Tensor<std::int64_t, 2> labels{};                  // (B, S); -100 = ignored; empty: no loss
};

template <class T, DevicePolicy Dev = Cpu>
struct T5Output {
  Var<T, 3, Dev> logits;                     // (B, S, V)
  Var<T, 3, Dev> encoder_last_hidden_state;  // (B, Ts, d_model)
  std::optional<Var<T, 0, Dev>> loss;        // with labels: mean cross-entropy over labels != -100
};

/// The decoder's key/value cache: per layer, the self-attention keys and values of the positions
/// decoded so far (B, H, t, D) and the cross-attention keys and values of the encoder output
/// (B, H, Ts, D), computed on the first step. Prefixes are not cached here (they are constants
/// passed with each call).
template <class T, DevicePolicy Dev = Cpu>
struct T5Cache {
  struct Layer {
    Var<T, 4, Dev> self_k{}, self_v{}, cross_k{}, cross_v{};
  };
  std::vector<Layer> layers;
  index_t length = 0;  // decoded positions held

  /// Keeps row rows[i] of the self-attention cache as row i (beam search reordering). The
  /// cross-attention rows are left as they are (they are equal within a beam group).
  void reorder(const std::vector<index_t>& rows) {
    for (auto& l : layers) {
      if constexpr (std::is_same_v<Dev, Cpu>) {
        l.self_k = Var<T, 4>(gather_rows(l.self_k.value(), rows));
        l.self_v = Var<T, 4>(gather_rows(l.self_v.value(), rows));
      } else {  // through the host (generation runs there)
        l.self_k = Var<T, 4, Dev>(copy_to<Dev>(gather_rows(to_host(l.self_k.value()), rows)));
        l.self_v = Var<T, 4, Dev>(copy_to<Dev>(gather_rows(to_host(l.self_v.value()), rows)));
      }
    }
  }

  template <std::size_t R>
  static Tensor<T, R> gather_rows(const Tensor<T, R>& x, const std::vector<index_t>& rows) {
    Shape<R> s = x.shape();
    s[0] = static_cast<index_t>(rows.size());
    Tensor<T, R> y(s);
    const index_t row = x.extent(0) > 0 ? x.size() / x.extent(0) : 0;
    for (std::size_t i = 0; i < rows.size(); ++i)
      std::copy_n(x.data() + rows[i] * row, row, y.data() + static_cast<index_t>(i) * row);
    return y;
  }
};

namespace t5 {

// Modules with the Hugging Face names (see visit()), their parameters on Dev.
template <class T, DevicePolicy Dev = Cpu>
struct Matrix {  // nn.Linear without bias, or nn.Embedding
  Parameter<T, 2, Dev> weight;
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct Norm {  // T5LayerNorm
  Parameter<T, 1, Dev> weight;
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct Attention {  // T5Attention
  Matrix<T, Dev> q, k, v, o;
  std::optional<Matrix<T, Dev>> relative_attention_bias;  // (buckets, H), first layer of a stack only
  template <class V>
  void visit(V&& vis) {
    vis("q", q);
    vis("k", k);
    vis("v", v);
    vis("o", o);
    vis("relative_attention_bias", relative_attention_bias);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct SelfAttentionLayer {  // T5LayerSelfAttention
  Attention<T, Dev> attention;
  Norm<T, Dev> layer_norm;
  template <class V>
  void visit(V&& v) {
    v("SelfAttention", attention);
    v("layer_norm", layer_norm);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct CrossAttentionLayer {  // T5LayerCrossAttention
  Attention<T, Dev> attention;
  Norm<T, Dev> layer_norm;
  template <class V>
  void visit(V&& v) {
    v("EncDecAttention", attention);
    v("layer_norm", layer_norm);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct Dense {  // T5DenseActDense (wi, wo) or T5DenseGatedActDense (wi_0, wi_1, wo)
  std::optional<Matrix<T, Dev>> wi, wi_0, wi_1;
  Matrix<T, Dev> wo;
  template <class V>
  void visit(V&& v) {
    v("wi", wi);
    v("wi_0", wi_0);
    v("wi_1", wi_1);
    v("wo", wo);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct FeedForwardLayer {  // T5LayerFF
  Dense<T, Dev> dense;
  Norm<T, Dev> layer_norm;
  template <class V>
  void visit(V&& v) {
    v("DenseReluDense", dense);
    v("layer_norm", layer_norm);
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct Block {  // T5Block: layer.0 self-attention, [layer.1 cross-attention,] last: feed-forward
  SelfAttentionLayer<T, Dev> self;
  std::optional<CrossAttentionLayer<T, Dev>> cross;  // decoder only
  FeedForwardLayer<T, Dev> ff;
  template <class V>
  void visit(V&& v) {
    v("layer.0", self);
    if (cross) {
      v("layer.1", *cross);
      v("layer.2", ff);
    } else {
      v("layer.1", ff);
    }
  }
};
template <class T, DevicePolicy Dev = Cpu>
struct Stack {  // T5Stack (its embed_tokens is the model's `shared`)
  std::vector<Block<T, Dev>> block;
  Norm<T, Dev> final_layer_norm;
  template <class V>
  void visit(V&& v) {
    v("block", block);
    v("final_layer_norm", final_layer_norm);
  }
};

/// Hugging Face's T5PreTrainedModel._init_weights with initializer_factor `factor`, drawn from
/// `seed`, on a model's parts (T5::init_weights).
template <class T>
void init_weights(Matrix<T>& shared, Stack<T>& encoder, Stack<T>& decoder, std::optional<Matrix<T>>& lm_head,
                  const T5Dims& dims, std::uint64_t seed, double factor) {
  Generator g(seed);
  const double d = static_cast<double>(dims.d_model), kv = static_cast<double>(dims.d_kv),
               H = static_cast<double>(dims.num_heads), ff = static_cast<double>(dims.d_ff);
  auto normal = [&](Matrix<T>& m, double std) { init::normal(m.weight.value(), 0.0, factor * std, g); };
  auto stack = [&](Stack<T>& s) {
    for (auto& b : s.block) {
      std::vector<Attention<T>*> atts{&b.self.attention};
      if (b.cross) atts.push_back(&b.cross->attention);
      for (auto* a : atts) {
        normal(a->q, std::pow(d * kv, -0.5));
        normal(a->k, std::pow(d, -0.5));
        normal(a->v, std::pow(d, -0.5));
        normal(a->o, std::pow(H * kv, -0.5));
        if (a->relative_attention_bias) normal(*a->relative_attention_bias, std::pow(d, -0.5));
      }
      for (auto* w : {&b.ff.dense.wi, &b.ff.dense.wi_0, &b.ff.dense.wi_1})
        if (*w) normal(**w, std::pow(d, -0.5));
      normal(b.ff.dense.wo, std::pow(ff, -0.5));
      b.self.layer_norm.weight.value().fill(T(1));
      if (b.cross) b.cross->layer_norm.weight.value().fill(T(1));
      b.ff.layer_norm.weight.value().fill(T(1));
    }
    s.final_layer_norm.weight.value().fill(T(1));
  };
  normal(shared, 1.0);
  stack(encoder);
  stack(decoder);
  if (lm_head) normal(*lm_head, 1.0);
}

}  // namespace t5

}  // namespace deepprompt
