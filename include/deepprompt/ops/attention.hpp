#pragma once
// Attention: the additive padding mask and fused scaled-dot-product attention with a key/value
// prefix (P-Tuning v2), an additive bias (T5), causal masking and attention dropout.
//
//   auto m = dp::attention_mask<float>(batch.attention_mask);          // (B, T): 0 or lowest
//   auto y = dp::scaled_dot_product_attention(q, k, v, {.mask = m,      // q: (B, H, Tq, D)
//                                                       .prefix_k = pk, // (H, P, D), trainable
//                                                       .prefix_v = pv});
//
// The kernels are in backend/cpu/attention_kernels.hpp (semantics of causal, masks, dropout
// and memory are documented there). scaled_dot_product_attention runs on any device (on a GPU,
// backend/cuda/attention.cuh: the same options; it redraws the dropout words in the backward
// pass instead of saving keep bits); packed_attention is a CPU op.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "../autodiff/var.hpp"
#include "../backend/cpu/attention_kernels.hpp"
#include "../core/rng.hpp"

namespace deepprompt {

/// The additive attention mask of a 0/1 padding mask (1 = keep), as Hugging Face builds it:
/// (1 - mask) * lowest finite T, i.e. 0 for kept positions and std::numeric_limits<T>::lowest()
/// for padded ones. `prefix` kept positions are put in front: the result is (B, prefix + T)
/// (the mask of keys extended by a P-token prefix). Not differentiable (a plain tensor).
/// requires: every mask value in [0, 1]; prefix >= 0.
template <class T = float, class M>
Tensor<T, 2> attention_mask(const Tensor<M, 2>& mask, index_t prefix = 0) {  // mask: (B, T)
  static_assert(std::is_floating_point_v<T>, "attention_mask: the result type must be float or double");
  static_assert(std::is_arithmetic_v<M>, "attention_mask: the 0/1 mask must hold integers or floating-point values");
  if (prefix < 0) throw ShapeError(detail::cat("attention_mask: negative prefix length ", prefix));
  const index_t B = mask.extent(0), L = mask.extent(1);
  Tensor<T, 2> out({B, prefix + L});
  constexpr T lowest = std::numeric_limits<T>::lowest();
  for (index_t b = 0; b < B; ++b) {
    T* o = out.data() + b * (prefix + L);
    std::fill_n(o, prefix, T(0));
    for (index_t t = 0; t < L; ++t) {
      const M m = mask.data()[b * L + t];
      if (!(m >= M(0) && m <= M(1)))
        throw Error(detail::cat("attention_mask: mask values must lie in [0, 1] (1 = keep), got ", +m,
                                " at (", b, ", ", t, ") of a mask of shape ", shape_str(mask.shape())));
      o[prefix + t] = (T(1) - static_cast<T>(m)) * lowest;
    }
  }
  return out;
}

template <class T, DevicePolicy Dev = Cpu>
struct AttentionOptions {
  /// Additive mask over the keys, (B, Tk) (the prefix is kept: it gets zeros in front) or
  /// (B, P + Tk) (covers the prefix too); broadcast over heads and queries. Empty: none.
  Tensor<T, 2, Dev> mask{};
  /// Additive bias, (1 or B, H, Tq, P + Tk) or (1 or B, H, Tq, Tk) (real keys only): T5's
  /// relative position bias. May need a gradient. Empty: none.
  Var<T, 4, Dev> bias{};
  /// Query i sees the real keys j <= i + (Tk - Tq) (bottom-right aligned) and the whole prefix.
  bool causal = false;
  /// Multiplies q k^T; default 1 / sqrt(D) (T5 uses 1).
  std::optional<T> scale{};
  /// Attention dropout probability in [0, 1] (inverted dropout on the probabilities); > 0
  /// requires a generator. With 0 < p < 1 it advances by B * H * Tq * (P + Tk) words, and
  /// element e of the (B, H, Tq, P + Tk) probability tensor is kept iff its word is
  /// >= ceil(p * 2^32), the rule of dp::dropout; p == 1 drops everything and draws nothing.
  T dropout = T(0);
  Generator* generator = nullptr;
  /// The key/value prefix put in front of the keys and values: either shared by the batch
  /// (H, P, D) (P-Tuning v2: the same trainable prefix for every example) ...
  Var<T, 3, Dev> prefix_k{}, prefix_v{};
  /// ... or one per example (B, H, P, D). At most one of the two forms.
  Var<T, 4, Dev> prefix_k_batch{}, prefix_v_batch{};
};

namespace detail {

/// Checks opt's key/value prefix against B, H, D and puts it into `a`; returns P (0: none).
template <class T, class Dev>
index_t attention_prefix(const AttentionOptions<T, Dev>& opt, index_t B, index_t H, index_t D, std::string_view op,
                         std::string_view queries, const auto& qs, cpu::AttentionArgs<T>& a) {
  const bool shared = !opt.prefix_k.value().empty() || !opt.prefix_v.value().empty();
  const bool batched = !opt.prefix_k_batch.value().empty() || !opt.prefix_v_batch.value().empty();
  if (shared && batched)
    throw ShapeError(detail::cat(op, ": give the prefix either shared (H, P, D) or per example (B, H, P, D), not both; got ",
                                 shape_str(opt.prefix_k.shape()), " and ", shape_str(opt.prefix_k_batch.shape())));
  index_t P = 0;
  if (shared) {
    const auto& pk = opt.prefix_k.shape();
    check_shapes(pk == opt.prefix_v.shape(), op, "prefix keys and prefix values differ in shape", pk, opt.prefix_v.shape());
    if (!(pk[0] == H && pk[2] == D))  // (the message is built only on failure: no allocation per call)
      check_shapes(false, op, detail::cat("the shared prefix (H, P, D) does not fit the queries ", queries), pk, qs);
    P = pk[1];
  } else if (batched) {
    const auto& pk = opt.prefix_k_batch.shape();
    check_shapes(pk == opt.prefix_v_batch.shape(), op, "prefix keys and prefix values differ in shape", pk,
                 opt.prefix_v_batch.shape());
    if (!(pk[0] == B && pk[1] == H && pk[3] == D))
      check_shapes(false, op, detail::cat("the per-example prefix (B, H, P, D) does not fit the queries ", queries), pk,
                   qs);
    P = pk[2];
  }
  a.prefix_len = P;
  if (P > 0) {
    a.prefix_k = shared ? opt.prefix_k.value().data() : opt.prefix_k_batch.value().data();
    a.prefix_v = shared ? opt.prefix_v.value().data() : opt.prefix_v_batch.value().data();
    a.prefix_per_example = !shared;
  }
  return P;
}

/// The shared part of both attention ops, once `a` holds the sizes, layout, prefix, mask and
/// bias: scale, dropout, the forward kernel and the backward closure. y has q's shape.
template <class T, std::size_t R, class Dev>
Var<T, R, Dev> run_attention(cpu::AttentionArgs<T> a, const Var<T, R, Dev>& q, const Var<T, R, Dev>& k,
                             const Var<T, R, Dev>& v, const AttentionOptions<T, Dev>& opt, Tensor<index_t, 1> offsets,
                             std::string_view op) {
  constexpr bool host = std::is_same_v<Dev, Cpu>;
  const index_t D = a.head_dim;
  if (!(opt.dropout >= T(0) && opt.dropout <= T(1)))
    throw Error(detail::cat(op, ": dropout probability ", opt.dropout, " is not in [0, 1]"));
  if (opt.dropout > T(0) && opt.generator == nullptr)
    throw Error(detail::cat(op, ": dropout ", opt.dropout, " needs a Generator (options.generator)"));
  a.q = q.value().data(), a.k = k.value().data(), a.v = v.value().data();
  a.offsets = offsets.empty() ? nullptr : offsets.data();
  a.scale = opt.scale ? *opt.scale : (D > 0 ? T(1) / std::sqrt(static_cast<T>(D)) : T(1));
  a.dropout = opt.dropout;
  if (opt.dropout > T(0) && opt.dropout < T(1)) {
    a.seed = opt.generator->seed();
    a.first_word = opt.generator->advance(static_cast<std::uint64_t>(a.query_rows() * a.heads * a.keys()));
  }

  // nodes of the inputs that need a gradient (nullptr: none)
  const bool shared = a.prefix_len > 0 && !a.prefix_per_example, batched = a.prefix_len > 0 && a.prefix_per_example;
  auto* qn = q.node();
  auto* kn = k.node();
  auto* vn = v.node();
  auto* bn = a.bias ? opt.bias.node() : nullptr;
  auto* pk3n = shared ? opt.prefix_k.node() : nullptr;
  auto* pv3n = shared ? opt.prefix_v.node() : nullptr;
  auto* pk4n = batched ? opt.prefix_k_batch.node() : nullptr;
  auto* pv4n = batched ? opt.prefix_v_batch.node() : nullptr;
  const bool needs = qn || kn || vn || bn || pk3n || pv3n || pk4n || pv4n;
  const bool recording = needs && tape().grad_enabled();

  Tensor<T, R, Dev> y(q.shape());  // as q
  // per query row: the max of its scores and 1 / sum(exp(s - max)), for the backward pass
  Tensor<T, 1, Dev> stats = recording ? Tensor<T, 1, Dev>({a.query_rows() * a.heads * 2}) : Tensor<T, 1, Dev>();
  // the attention-dropout bits, so that the backward pass does not redraw them (host only)
  Tensor<std::uint64_t, 1> keep = host && recording && a.keep_words() > 0 ? Tensor<std::uint64_t, 1>({a.keep_words()})
                                                                          : Tensor<std::uint64_t, 1>();
  a.keep_bits = keep.empty() ? nullptr : keep.data();
  if constexpr (host) {
    Tensor<T, 1> ws({cpu::attention_workspace_size(a, false)});
    cpu::attention_forward(a, y.data(), recording ? stats.data() : nullptr, ws.data());
  } else {
    attention_forward(Dev{}, a, y.data(), recording ? stats.data() : nullptr);
  }
  auto out = Var<T, R, Dev>::result(y, needs);
  if (out.requires_grad()) {
    // Everything the recomputation reads stays alive with the step; `a` points into it.
    tape().record(out.node(), [a, stats, keep, offsets, qv = q.value(), kv = k.value(), vv = v.value(),
                               pk3 = opt.prefix_k.value(), pv3 = opt.prefix_v.value(), pkb = opt.prefix_k_batch.value(),
                               pvb = opt.prefix_v_batch.value(), mask = opt.mask, bias = opt.bias.value(), qn, kn, vn,
                               bn, pk3n, pv3n, pk4n, pv4n](const Tensor<T, R, Dev>& dy) {
      cpu::AttentionGrads<T> g;
      if (qn) g.q = qn->accumulator().data();
      if (kn) g.k = kn->accumulator().data();
      if (vn) g.v = vn->accumulator().data();
      if (bn) g.bias = bn->accumulator().data();
      if (pk3n) g.prefix_k = pk3n->accumulator().data();
      if (pv3n) g.prefix_v = pv3n->accumulator().data();
      if (pk4n) g.prefix_k = pk4n->accumulator().data();
      if (pv4n) g.prefix_v = pv4n->accumulator().data();
      if (a.prefix_len == 0) g.prefix_k = g.prefix_v = nullptr;
      if constexpr (host) {
        Tensor<T, 1> ws({cpu::attention_workspace_size(a, true)});
        cpu::attention_backward(a, dy.data(), stats.data(), g, ws.data());
      } else {
        attention_backward(Dev{}, a, dy.data(), stats.data(), g);
      }
    });
  }
  return out;
}

}  // namespace detail

/// softmax(scale * q [pk; k]^T + mask + bias, causal) with dropout, times [pv; v].
/// q: (B, H, Tq, D); k, v: (B, H, Tk, D); returns (B, H, Tq, D). Gradients reach q, k, v, the
/// prefix (summed over the batch in the shared form) and the bias, each only if it needs one.
template <class T, class Dev>
Var<T, 4, Dev> scaled_dot_product_attention(const Var<T, 4, Dev>& q, const Var<T, 4, Dev>& k, const Var<T, 4, Dev>& v,
                                            const std::type_identity_t<AttentionOptions<T, Dev>>& opt = {}) {
  static_assert(std::is_floating_point_v<T>, "scaled_dot_product_attention: T must be float or double");
  constexpr std::string_view op = "scaled_dot_product_attention";
  const auto& qs = q.shape();
  const auto& ks = k.shape();
  check_shapes(ks == v.shape(), op, "keys and values differ in shape", ks, v.shape());
  check_shapes(qs[0] == ks[0] && qs[1] == ks[1] && qs[3] == ks[3], op,
               "queries (B, H, Tq, D) and keys (B, H, Tk, D) differ in B, H or D", qs, ks);
  const index_t B = qs[0], H = qs[1], Tq = qs[2], D = qs[3], Tk = ks[2];
  cpu::AttentionArgs<T> a;
  a.batch = B, a.heads = H, a.q_len = Tq, a.kv_len = Tk, a.head_dim = D;
  const index_t P = detail::attention_prefix(opt, B, H, D, op, "(B, H, Tq, D)", qs, a);
  const index_t W = P + Tk;
  if (!opt.mask.empty()) {
    const auto& ms = opt.mask.shape();
    check_shapes(ms[0] == B && (ms[1] == Tk || ms[1] == W), op,
                 "the mask must be (B, Tk) or (B, P + Tk) for keys (B, H, Tk, D) and P prefix tokens", ms,
                 Shape<3>{B, Tk, P});
    a.mask = opt.mask.data(), a.mask_cols = ms[1];
  }
  if (!opt.bias.value().empty()) {
    const auto& bs = opt.bias.shape();
    check_shapes((bs[0] == 1 || bs[0] == B) && bs[1] == H && bs[2] == Tq && (bs[3] == Tk || bs[3] == W), op,
                 "the bias must be (1 or B, H, Tq, Tk or P + Tk) for queries (B, H, Tq, D), keys (B, H, Tk, D) "
                 "and P prefix tokens; got bias and (B, H, Tq, Tk, P)",
                 bs, Shape<5>{B, H, Tq, Tk, P});
    a.bias = opt.bias.value().data();
    a.bias_per_example = bs[0] == B && B != 1;
    a.bias_cols = bs[3];
  }
  a.causal = opt.causal;
  return detail::run_attention(a, q, k, v, opt, Tensor<index_t, 1>(), op);
}

/// Attention over packed variable-length sequences, without padding: q, k, v (N, H * D) hold
/// the N tokens of B sequences one after another, heads side by side (as a Linear writes
/// them), sequence b being rows [offsets[b], offsets[b + 1]); each sequence attends to its own
/// tokens and to the prefix. Returns (N, H * D). Gives, on the real rows, what
/// scaled_dot_product_attention gives for the padded batch with its padding mask (checked by
/// the tests), and skips the padded rows' and keys' work. Options: the prefix (shared
/// (H, P, D) or per example (B, H, P, D)), scale and dropout (other words than the padded form
/// draws); mask, bias and causal are not supported here (ShapeError / Error).
/// query_offsets (optional, B + 1 values {0, ..., Nq}): the queries are other rows than the
/// keys, q (Nq, H * D) with sequence b's queries at rows [query_offsets[b], query_offsets[b + 1])
/// (e.g. each sequence's first token only: what a classifier reading [CLS] needs of a last
/// layer); the result is then (Nq, H * D).
/// requires: offsets = {0, ..., N}, non-decreasing, B + 1 >= 2 values; heads divides q's width.
template <class T>
Var<T, 2> packed_attention(const Var<T, 2>& q, const Var<T, 2>& k, const Var<T, 2>& v, index_t heads,
                           std::span<const index_t> offsets, const AttentionOptions<T>& opt = {},
                           std::span<const index_t> query_offsets = {}) {
  static_assert(std::is_floating_point_v<T>, "packed_attention: T must be float or double");
  constexpr std::string_view op = "packed_attention";
  const auto& qs = q.shape();
  const auto& ks = k.shape();
  check_shapes(v.shape() == ks && qs[1] == ks[1] && (!query_offsets.empty() || qs[0] == ks[0]), op,
               "keys and values must have one shape (N, H * D), the queries the same width (and rows, without "
               "query offsets); got queries and keys",
               qs, ks);
  if (heads <= 0 || qs[1] % heads != 0)
    throw ShapeError(detail::cat(op, ": ", heads, " heads do not divide the width of ", shape_str(qs)));
  if (offsets.size() < 2 || offsets.front() != 0 || offsets.back() != ks[0])
    throw ShapeError(detail::cat(op, ": the offsets must run from 0 to the ", ks[0], " rows of ", shape_str(ks),
                                 " (", offsets.size(), " offsets given)"));
  if (!query_offsets.empty() &&
      (query_offsets.size() != offsets.size() || query_offsets.front() != 0 || query_offsets.back() != qs[0]))
    throw ShapeError(detail::cat(op, ": the query offsets must be ", offsets.size(), " values from 0 to the ", qs[0],
                                 " query rows of ", shape_str(qs), " (", query_offsets.size(), " given)"));
  if (!opt.mask.empty() || !opt.bias.value().empty() || opt.causal)
    throw Error(detail::cat(op, ": masks, biases and causal masking are not supported on packed sequences"));
  // the key offsets, then (when given) the query offsets, in one pool buffer the tape keeps alive
  Tensor<index_t, 1> offs({static_cast<index_t>(offsets.size() + query_offsets.size())});
  std::copy(query_offsets.begin(), query_offsets.end(), std::copy(offsets.begin(), offsets.end(), offs.data()));
  auto longest_of = [&](std::span<const index_t> o) {
    index_t m = 0;
    for (std::size_t b = 0; b + 1 < o.size(); ++b) {
      const index_t n = o[b + 1] - o[b];
      if (n < 0) throw ShapeError(detail::cat(op, ": offsets decrease at sequence ", b, " (", o[b], " to ", o[b + 1], ")"));
      m = std::max(m, n);
    }
    return m;
  };
  const index_t B = static_cast<index_t>(offsets.size()) - 1, D = qs[1] / heads;
  const index_t longest = longest_of(offsets), longest_q = query_offsets.empty() ? longest : longest_of(query_offsets);
  cpu::AttentionArgs<T> a;
  a.batch = B, a.heads = heads, a.q_len = longest_q, a.kv_len = longest, a.head_dim = D;
  detail::attention_prefix(opt, B, heads, D, op, "(N, H * D)", qs, a);
  if (!query_offsets.empty()) a.q_offsets = offs.data() + offsets.size();
  return detail::run_attention(a, q, k, v, opt, std::move(offs), op);
}

}  // namespace deepprompt
