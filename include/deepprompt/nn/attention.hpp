#pragma once
// Multi-head attention on top of ops::scaled_dot_product_attention.
//
//   multi_head_attention(q, k, v, heads, call)   the generic part: q (B, Tq, H*D) and
//        k, v (B, Tk, H*D), already projected, are split into heads, attended with the call's
//        mask / bias / causal flag / scale / dropout / key-value prefix, and merged back:
//        (B, Tq, H*D). Every model's attention goes through it.
//   MultiHeadAttention<T>    a module with four projections (q, k, v, o) whose names are
//        chosen at construction (T5: "q", "k", "v", "o", no bias), for self-attention
//        forward(x, call) and cross-attention forward(x, memory, call). BERT names its
//        projections across two sub-modules (attention.self.query ..., attention.output.dense),
//        so models/bert.hpp calls the function directly.
//
// KVPrefix<T> is what P-Tuning v2 injects per layer and per call: keys and values put in front
// of the real ones, either shared by the batch (H, P, D) or one per example (B, H, P, D). The
// prefix positions are always attended (no mask entry needed, none causal-masked). A
// per-example prefix can also carry a decoder's cached keys and values.
//
// Device: everything here takes D (Cpu by default); the packed layout (call.offsets) is host-only.
#include <optional>
#include <span>
#include <string_view>

#include "../ops/attention.hpp"
#include "../ops/shape.hpp"
#include "linear.hpp"

namespace deepprompt {

/// A key/value prefix for one attention call: shared by the batch (H, P, D) or one per example
/// (B, H, P, D); both empty: none. (models/t5.hpp uses the same type: one definition here.)
template <class T, DevicePolicy Dev = Cpu>
struct KVPrefix {
  Var<T, 3, Dev> k{}, v{};              // shared by the batch: (H, P, D)
  Var<T, 4, Dev> k_batch{}, v_batch{};  // or one per example: (B, H, P, D)

  static KVPrefix shared(Var<T, 3, Dev> keys, Var<T, 3, Dev> values) {
    KVPrefix p;
    p.k = std::move(keys), p.v = std::move(values);
    return p;
  }
  static KVPrefix per_example(Var<T, 4, Dev> keys, Var<T, 4, Dev> values) {
    KVPrefix p;
    p.k_batch = std::move(keys), p.v_batch = std::move(values);
    return p;
  }
  bool empty() const { return k.value().empty() && k_batch.value().empty(); }
  /// P (0 when empty).
  index_t length() const { return !k.value().empty() ? k.extent(1) : !k_batch.value().empty() ? k_batch.extent(2) : 0; }
};

/// Everything of one attention call besides q, k, v.
template <class T, DevicePolicy Dev = Cpu>
struct AttentionCall {
  Tensor<T, 2, Dev> mask{};  // additive, (B, Tk) or (B, P + Tk) (see dp::attention_mask); empty: none
  Var<T, 4, Dev> bias{};     // additive, (1 or B, H, Tq, Tk or P + Tk) (T5); empty: none
  bool causal = false;       // query i sees real keys j <= i + Tk - Tq, and the whole prefix
  std::optional<T> scale{};  // default 1 / sqrt(D)
  double dropout = 0.0;      // on the attention probabilities, when training
  Generator* generator = nullptr;
  bool training = false;
  KVPrefix<T, Dev> prefix{};
  /// Packed variable-length sequences (ops/attention.hpp, packed_attention): q, k, v are
  /// (1, N, H*D), sequence b being tokens [offsets[b], offsets[b + 1]); empty: the padded
  /// (B, T, H*D) layout. No mask, bias or causal masking with it.
  std::span<const index_t> offsets{};
  /// With offsets: the queries' own offsets when they are other rows than the keys' (q is then
  /// (1, Nq, H*D), e.g. one row per sequence); empty: the keys' rows.
  std::span<const index_t> query_offsets{};
};

/// (B, T, H*D) -> (B, H, T, D).
template <class T, class Dev>
Var<T, 4, Dev> split_heads(const Var<T, 3, Dev>& x, index_t heads) {
  const index_t B = x.extent(0), L = x.extent(1), C = x.extent(2);
  if (heads <= 0 || C % heads != 0)
    throw ShapeError(
        detail::cat("split_heads: ", heads, " heads do not divide the last extent of ", shape_str(x.shape())));
  return permute(reshape<4>(x, Shape<4>{B, L, heads, C / heads}), {0, 2, 1, 3});
}

/// (B, H, T, D) -> (B, T, H*D).
template <class T, class Dev>
Var<T, 3, Dev> merge_heads(const Var<T, 4, Dev>& x) {
  const index_t B = x.extent(0), H = x.extent(1), L = x.extent(2), D = x.extent(3);
  return reshape<3>(permute(x, {0, 2, 1, 3}), Shape<3>{B, L, H * D});
}

/// softmax(q k^T * scale + mask + bias) v per head, with the call's prefix, causal masking and
/// dropout. q: (B, Tq, H*D); k, v: (B, Tk, H*D); returns (B, Tq, H*D).
template <class T, class Dev>
Var<T, 3, Dev> multi_head_attention(const Var<T, 3, Dev>& q, const Var<T, 3, Dev>& k, const Var<T, 3, Dev>& v,
                                    index_t heads, const std::type_identity_t<AttentionCall<T, Dev>>& call) {
  AttentionOptions<T, Dev> o;
  o.mask = call.mask;
  o.bias = call.bias;
  o.causal = call.causal;
  o.scale = call.scale;
  if (call.training && call.dropout > 0.0) {
    o.dropout = static_cast<T>(call.dropout);
    o.generator = call.generator;
  }
  o.prefix_k = call.prefix.k;
  o.prefix_v = call.prefix.v;
  o.prefix_k_batch = call.prefix.k_batch;
  o.prefix_v_batch = call.prefix.v_batch;
  if (!call.offsets.empty()) {
    if constexpr (!std::is_same_v<Dev, Cpu>)
      throw Error(detail::cat("multi_head_attention: packed sequences are a host layout (device ", Dev::name, ")"));
    else {
      if (q.extent(0) != 1)
        throw ShapeError(
            detail::cat("multi_head_attention: packed sequences come as (1, N, H*D), got ", shape_str(q.shape())));
      auto flat = [](const Var<T, 3>& x) { return reshape<2>(x, Shape<2>{x.extent(1), x.extent(2)}); };
      const Var<T, 2> y =
          packed_attention(flat(q), flat(k), flat(v), heads, call.offsets, o, call.query_offsets);  // (Nq, H*D)
      return reshape<3>(y, Shape<3>{1, y.extent(0), y.extent(1)});
    }
  }
  return merge_heads(
      scaled_dot_product_attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), o));
}

/// The names of the four projections in the state dict.
struct AttentionNames {
  std::string_view q = "q", k = "k", v = "v", o = "o";
};

/// Self- and cross-attention with projections q, k, v: (H*D, C) and o: (C, H*D).
template <class T = float, DevicePolicy Dev = Cpu>
struct MultiHeadAttention {
  index_t heads = 0;
  AttentionNames names{};
  Linear<T, Dev> q, k, v, o;

  MultiHeadAttention() = default;
  MultiHeadAttention(index_t d_model, index_t num_heads, index_t head_dim, bool with_bias, Generator& gen,
                     AttentionNames n = {}, double init_std = 0.02)
      : heads(num_heads),
        names(n),
        q(num_heads * head_dim, d_model, with_bias, gen, init_std),
        k(num_heads * head_dim, d_model, with_bias, gen, init_std),
        v(num_heads * head_dim, d_model, with_bias, gen, init_std),
        o(d_model, num_heads * head_dim, with_bias, gen, init_std) {
    if (num_heads <= 0 || head_dim <= 0)
      throw Error(
          detail::cat("MultiHeadAttention: heads (", num_heads, ") and head_dim (", head_dim, ") must be positive"));
  }

  /// Self-attention. x, y: (B, T, C).
  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& x, const AttentionCall<T, Dev>& call = {}) const {
    return o(multi_head_attention(q(x), k(x), v(x), heads, call));
  }
  /// Cross-attention: queries from x (B, Tq, C), keys and values from memory (B, Tk, C).
  Var<T, 3, Dev> forward(const Var<T, 3, Dev>& x, const Var<T, 3, Dev>& memory, const AttentionCall<T, Dev>& call) const {
    return o(multi_head_attention(q(x), k(memory), v(memory), heads, call));
  }

  /// The keys and values that P hidden vectors h (P, C) would give as tokens in front of this
  /// attention's input: k(h), v(h), each (H, P, D), shared by the batch (the hidden-state form
  /// of deep prompts is this prefix; the vectors' own outputs are dropped).
  KVPrefix<T, Dev> prefix_from_hidden(const Var<T, 2, Dev>& h) const {  // h: (P, C)
    const index_t P = h.extent(0), W = k.out_features(), D = W / heads;
    auto heads_first = [&](const Var<T, 2, Dev>& y) {  // (P, H * D) -> (H, P, D)
      return permute(reshape<3>(y, Shape<3>{P, heads, D}), {1, 0, 2});
    };
    return KVPrefix<T, Dev>::shared(heads_first(k(h)), heads_first(v(h)));
  }

  template <class V>
  void visit(V&& vis) {
    vis(names.q, q);
    vis(names.k, k);
    vis(names.v, v);
    vis(names.o, o);
  }
};

}  // namespace deepprompt
