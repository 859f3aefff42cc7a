#pragma once
// PEFT's layout of a deep prompt: rows (Tokens, Layers * 2 * Hidden), each ordered (layer,
// key/value, head, head_dim), and the per-layer key/value prefixes they are viewed as
// (kv_prefixes, through differentiable reshape / permute / slice); Prefix Tuning's
// reparameterisation that produces such rows (PrefixProjection). Used by DeepPrompt
// (peft/deep_prompt.hpp), Prefix Tuning and the T5 / USE Lite prefixes.
#include <cstdint>
#include <utility>
#include <vector>

#include "../autodiff/parameter.hpp"
#include "../nn/attention.hpp"  // KVPrefix
#include "../nn/linear.hpp"
#include "../ops/activation.hpp"
#include "../ops/shape.hpp"

namespace deepprompt {

/// Layer l's keys and values of prompt rows (P, layers * 2 * H * D), each row ordered
/// (layer, key/value, head, head_dim): `layers` prefixes, keys and values (H, P, D), shared by
/// the batch, written into `out` (cleared first; a vector reused across steps keeps its capacity,
/// so a warmed-up step allocates nothing here). Differentiable in `rows`. Throws ShapeError
/// unless 2 * layers * heads divides the row width.
template <class T, class Dev>
void kv_prefixes_into(std::vector<KVPrefix<T, Dev>>& out, const Var<T, 2, Dev>& rows, index_t layers, index_t heads) {
  const index_t P = rows.extent(0), W = rows.extent(1);
  if (layers <= 0 || heads <= 0 || W % (2 * layers * heads) != 0)
    throw ShapeError(detail::cat("kv_prefixes: prompt rows of shape ", shape_str(rows.shape()), " do not split into ",
                                 layers, " layers x 2 (key, value) x ", heads, " heads"));
  const index_t D = W / (2 * layers * heads);
  // (P, 2L, H, D) -> (2L, H, P, D): PEFT's permute([2, 0, 3, 1, 4]) without the batch axis
  const Var<T, 4, Dev> x = permute(reshape<4>(rows, Shape<4>{P, 2 * layers, heads, D}), {1, 2, 0, 3});
  out.clear();
  out.reserve(static_cast<std::size_t>(layers));
  for (index_t l = 0; l < layers; ++l) {
    auto k = reshape<3>(slice(x, 0, 2 * l, 2 * l + 1), Shape<3>{heads, P, D});  // axis-0 slices are views
    auto v = reshape<3>(slice(x, 0, 2 * l + 1, 2 * l + 2), Shape<3>{heads, P, D});
    out.push_back(KVPrefix<T, Dev>::shared(std::move(k), std::move(v)));
  }
}

/// The same per example: rows (B, P, layers * 2 * H * D) -> prefixes (B, H, P, D).
template <class T, class Dev>
void kv_prefixes_into(std::vector<KVPrefix<T, Dev>>& out, const Var<T, 3, Dev>& rows, index_t layers, index_t heads) {
  const index_t B = rows.extent(0), P = rows.extent(1), W = rows.extent(2);
  if (layers <= 0 || heads <= 0 || W % (2 * layers * heads) != 0)
    throw ShapeError(detail::cat("kv_prefixes: prompt rows of shape ", shape_str(rows.shape()), " do not split into ",
                                 layers, " layers x 2 (key, value) x ", heads, " heads"));
  const index_t D = W / (2 * layers * heads);
  const Var<T, 5, Dev> x = permute(reshape<5>(rows, Shape<5>{B, P, 2 * layers, heads, D}), {2, 0, 3, 1, 4});
  out.clear();
  out.reserve(static_cast<std::size_t>(layers));
  for (index_t l = 0; l < layers; ++l) {
    auto k = reshape<4>(slice(x, 0, 2 * l, 2 * l + 1), Shape<4>{B, heads, P, D});
    auto v = reshape<4>(slice(x, 0, 2 * l + 1, 2 * l + 2), Shape<4>{B, heads, P, D});
    out.push_back(KVPrefix<T, Dev>::per_example(std::move(k), std::move(v)));
  }
}

/// kv_prefixes_into a new vector: rows (P, W) give shared prefixes (H, P, D), rows (B, P, W)
/// per-example ones (B, H, P, D). On any device.
template <class T, std::size_t R, class Dev>
std::vector<KVPrefix<T, Dev>> kv_prefixes(const Var<T, R, Dev>& rows, index_t layers, index_t heads) {
  std::vector<KVPrefix<T, Dev>> out;
  kv_prefixes_into(out, rows, layers, heads);
  return out;
}

/// Prefix tuning's reparameterisation: second(tanh(first(embedding))).
/// embedding: (P, C); w0: (M, C), b0: (M); w2: (N, M), b2: (N) -> (P, N).
template <class T, class Dev>
Var<T, 2, Dev> prefix_projection(const Var<T, 2, Dev>& embedding, const Var<T, 2, Dev>& w0, const Var<T, 1, Dev>& b0,
                                 const Var<T, 2, Dev>& w2, const Var<T, 1, Dev>& b2) {
  return linear(deepprompt::tanh(linear(embedding, w0, b0)), w2, b2);
}

/// PEFT's PrefixEncoder with prefix_projection: embedding (Tokens, Hidden), transform.0
/// Linear(Hidden, M), tanh, transform.2 Linear(M, 2 * Layers * Hidden).
template <class T = float, DevicePolicy Dev = Cpu>
struct PrefixProjection {
  Parameter<T, 2, Dev> embedding;  // (P, C)
  Linear<T, Dev> first;            // transform.0: weight (M, C), bias (M)
  Linear<T, Dev> second;           // transform.2: weight (N, M), bias (N)

  Var<T, 2, Dev> forward() const {  // -> (P, N)
    return prefix_projection(embedding.var(), first.weight.var(), first.bias->var(), second.weight.var(),
                             second.bias->var());
  }

  template <class V>
  void visit(V&& v) {
    v("embedding.weight", embedding);
    v("transform.0", first);
    v("transform.2", second);
  }
};

}  // namespace deepprompt
