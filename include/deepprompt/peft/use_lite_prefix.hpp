#pragma once
// Deep prompts on USE Lite (models/use_lite.hpp), whose layers have different widths (256 = 4 x 64
// and 512 = 4 x 128), which DeepPrompt's single (Tokens, Layers * 2 * Hidden) parameter cannot
// hold.
//
// UseLitePrefix: P-Tuning v2's key/value prefix, one parameter per layer:
//   layer.<l>  (Tokens, 2 * W_l), each row ordered (key/value, head, head_dim), as DeepPrompt's
//              rows of one layer; keys and values are (H_l, Tokens, D_l) views of it
//              (kv_prefixes with one layer), shared by the batch.
// With `projection` = M > 0 it is Prefix Tuning instead (Li & Liang; THUDM's prefix_projection):
//   projection.embedding.weight (Tokens, hidden) -> projection.transform.0 Linear(hidden, M) -> tanh
//   -> projection.transform.2 Linear(M, sum_l 2 * W_l); layer l's rows are its columns
//   [sum_{k<l} 2 W_k, sum_{k<=l} 2 W_k). fold() evaluates it once into plain per-layer rows.
//
// UseLiteHiddenPrompt: the hidden-state form (the seed's formulation): per layer `Tokens`
//   trainable vectors of that layer's input width (256, 512) put in front of its input and
//   their outputs dropped. USE Lite's layers are pre-norm and every sub-layer but attention acts
//   per token, so the vectors reach the real tokens only through the keys and values
//   k(LN(P_l)), v(LN(P_l)) (the layer's own frozen norm and projections): the prefix path.
//   One parameter per layer, layer.<l> (Tokens, in_l).
//
//   auto prefix = dp::UseLitePrefix<float>(model, {.tokens = 20});
//   dp::Var<float, 2> h = model.encode(ids, prefix.prefixes());   // gradients reach the prefix
//   auto hidden = dp::UseLiteHiddenPrompt<float>(model, {.tokens = 20});
//   dp::Var<float, 2> g = model.encode(ids, hidden.prefixes(model));
//
// Initial values: normal(0, init_std) (P-Tuning v2 / PEFT use torch.nn.Embedding's std 1; the
// keys and values of USE Lite's layers are of that order too); the projection's Linears as
// torch.nn.Linear (uniform(+-1/sqrt(fan_in))).
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../models/use_lite.hpp"
#include "deep_prompt.hpp"  // kv_prefixes, PromptInit, PrefixProjection

namespace deepprompt {

struct UseLitePrefixOptions {
  index_t tokens = 20;      // prefix length P, the same on every layer
  double init_std = 1.0;    // normal(0, init_std)
  std::uint64_t seed = 0;
  index_t projection = 0;   // Prefix Tuning's reparameterisation width M (THUDM: 512); 0: none
};

namespace peft_detail {
inline void check_use_tokens(index_t tokens, const char* who) {
  if (tokens < 1) throw ShapeError(detail::cat(who, ": prefix length ", tokens, " < 1"));
}
}  // namespace peft_detail

/// Per-layer key/value prefixes for a UseLite model (see the top). Invariant: while not
/// projected, rows[l] is (tokens, 2 * heads[l] * head_dim_l) and heads[l] divides its half.
template <class T = float>
class UseLitePrefix {
 public:
  using value_type = T;
  std::vector<Parameter<T, 2>> rows;            // layer l: (P, 2 * W_l); empty while projected
  std::optional<PrefixProjection<T>> projection;  // Prefix Tuning, until folded
  std::vector<index_t> heads;                   // H_l
  std::vector<index_t> widths;                  // 2 * W_l

  UseLitePrefix() = default;
  /// A new trainable prefix sized for `model`'s layers. requires o.tokens >= 1.
  UseLitePrefix(const UseLite<T>& model, const UseLitePrefixOptions& o = {}) {
    peft_detail::check_use_tokens(o.tokens, "UseLitePrefix");
    if (o.projection < 0) throw ShapeError(detail::cat("UseLitePrefix: projection width ", o.projection, " < 0"));
    Generator gen(o.seed);
    const DeepPromptOptions init{.init = PromptInit::normal, .init_std = o.init_std};
    index_t total = 0;
    for (const auto& layer : model.layers) {
      widths.push_back(2 * layer.attention.k.out_features());  // 2 * H * D
      heads.push_back(layer.attention.heads);
      total += widths.back();
    }
    if (o.projection == 0) {
      for (index_t w : widths) {
        Tensor<T, 2> t({o.tokens, w});
        peft_detail::init_prompt(t, init, gen);
        rows.emplace_back("prefix", std::move(t), true);
      }
      return;
    }
    auto linear_layer = [&](index_t out, index_t in) { return torch_default_linear<T>(out, in, gen); };
    const index_t C = model.config.hidden;
    PrefixProjection<T> p;
    Tensor<T, 2> e({o.tokens, C});
    peft_detail::init_prompt(e, init, gen);
    p.embedding = Parameter<T, 2>("embedding.weight", std::move(e), true);
    p.first = linear_layer(o.projection, C);
    p.second = linear_layer(total, o.projection);
    projection = std::move(p);
  }

  index_t tokens() const { return projection ? projection->embedding.shape()[0] : rows.empty() ? 0 : rows.front().shape()[0]; }
  index_t num_layers() const { return static_cast<index_t>(heads.size()); }
  bool projected() const { return projection.has_value(); }

  /// Every layer's prefix for one forward pass: keys and values (H_l, P, D_l), differentiable.
  std::vector<KVPrefix<T>> prefixes() const {
    std::vector<KVPrefix<T>> out;
    if (projection) {
      const Var<T, 2> all = projection->forward();  // (P, sum_l 2 W_l)
      index_t col = 0;
      for (std::size_t l = 0; l < heads.size(); ++l) {
        out.push_back(kv_prefixes(slice(all, 1, col, col + widths[l]), 1, heads[l]).front());
        col += widths[l];
      }
      return out;
    }
    for (std::size_t l = 0; l < rows.size(); ++l) out.push_back(kv_prefixes(rows[l].var(), 1, heads[l]).front());
    return out;
  }

  /// The plain per-layer rows (P, 2 * W_l) this prompt gives now: the projection evaluated once
  /// (no tape), or copies of the rows.
  std::vector<Tensor<T, 2>> folded_rows() const {
    std::vector<Tensor<T, 2>> out;
    if (!projection) {
      for (const auto& r : rows) out.push_back(r.value().clone());
      return out;
    }
    Tensor<T, 2> all;
    {
      NoGradGuard no_grad;
      all = projection->forward().value().clone();
    }
    index_t col = 0;
    for (index_t w : widths) {
      Tensor<T, 2> t({all.extent(0), w});
      for (index_t i = 0; i < all.extent(0); ++i)
        for (index_t j = 0; j < w; ++j) t(i, j) = all(i, col + j);
      out.push_back(std::move(t));
      col += w;
    }
    return out;
  }

  /// Prefix Tuning: evaluates the projection once into plain per-layer rows (folded_rows()),
  /// which keep its trainable flag, and drops it. The prefixes stay the same. No-op when not
  /// projected.
  void fold() {
    if (!projection) return;
    const bool trainable = projection->embedding.trainable();
    auto folded = folded_rows();
    rows.clear();
    for (auto& t : folded) rows.emplace_back("prefix", std::move(t), trainable);
    projection.reset();
  }

  /// Checks that the prefix fits `model` (layer count, widths, heads); ShapeError otherwise.
  void check_fits(const UseLite<T>& model) const {
    const std::size_t n = projection ? heads.size() : rows.size();
    if (n != model.layers.size() || heads.size() != n || widths.size() != n)
      throw ShapeError(detail::cat("UseLitePrefix: ", n, " layers, the model has ", model.layers.size()));
    for (std::size_t l = 0; l < heads.size(); ++l) {
      const auto& a = model.layers[l].attention;
      if (widths[l] != 2 * a.k.out_features() || heads[l] != a.heads || (!projection && rows[l].shape()[1] != widths[l]))
        throw ShapeError(detail::cat("UseLitePrefix: layer ", l, ": prefix of width ", widths[l], " with ", heads[l],
                                     " heads; the model's attention is ", a.k.out_features(), " wide with ", a.heads,
                                     " heads"));
    }
  }

  template <class V>
  void visit(V&& v) {
    v("layer", rows);
    v("projection", projection);
  }
};

/// The hidden-state form of the deep prompt on USE Lite (see the top). Invariant: rows[l] is
/// (tokens, in_l), layer l's input width.
template <class T = float>
class UseLiteHiddenPrompt {
 public:
  using value_type = T;
  std::vector<Parameter<T, 2>> rows;  // layer l: (P, in_l)

  UseLiteHiddenPrompt() = default;
  /// New trainable vectors, normal(0, init_std), sized for `model`. requires o.tokens >= 1
  /// (o.projection is not used).
  UseLiteHiddenPrompt(const UseLite<T>& model, const UseLitePrefixOptions& o = {}) {
    peft_detail::check_use_tokens(o.tokens, "UseLiteHiddenPrompt");
    Generator gen(o.seed);
    for (const auto& layer : model.layers) {
      Tensor<T, 2> t({o.tokens, layer.attention.k.in_features()});
      peft_detail::init_prompt(t, DeepPromptOptions{.init = PromptInit::normal, .init_std = o.init_std}, gen);
      rows.emplace_back("prompt", std::move(t), true);
    }
  }

  index_t tokens() const { return rows.empty() ? 0 : rows.front().shape()[0]; }

  /// Layer l's prefix: k(LN(P_l)), v(LN(P_l)) with the layer's own norm and projections.
  /// ShapeError when the prompt does not fit `model`.
  std::vector<KVPrefix<T>> prefixes(const UseLite<T>& model) const {
    if (rows.size() != model.layers.size())
      throw ShapeError(detail::cat("UseLiteHiddenPrompt: ", rows.size(), " layers, the model has ", model.layers.size()));
    std::vector<KVPrefix<T>> out;
    for (std::size_t l = 0; l < rows.size(); ++l) {
      const auto& layer = model.layers[l];
      if (rows[l].shape()[1] != layer.attention.k.in_features())
        throw ShapeError(detail::cat("UseLiteHiddenPrompt: layer ", l, ": vectors of shape ", shape_str(rows[l].shape()),
                                     " for an input of width ", layer.attention.k.in_features()));
      out.push_back(layer.attention.prefix_from_hidden(layer.attention_norm(rows[l].var())));
    }
    return out;
  }

  template <class V>
  void visit(V&& v) {
    v("layer", rows);
  }
};

}  // namespace deepprompt
