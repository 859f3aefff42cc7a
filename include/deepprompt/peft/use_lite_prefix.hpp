#pragma once
// P-Tuning v2 on USE Lite (models/use_lite.hpp): a trainable key/value prefix per layer where the
// layers have different widths (256 = 4 x 64 and 512 = 4 x 128), which DeepPrompt's single
// (Tokens, Layers * 2 * Hidden) parameter cannot hold. One parameter per layer instead:
//
//   layer.<l>  (Tokens, 2 * W_l), each row ordered (key/value, head, head_dim), as DeepPrompt's
//              rows of one layer; keys and values are (H_l, Tokens, D_l) views of it
//              (kv_prefixes with one layer), shared by the batch.
//
//   auto prefix = dp::UseLitePrefix<float>(model, {.tokens = 20});
//   dp::Var<float, 2> h = model.encode(ids, prefix.prefixes());   // gradients reach the prefix
//
// Initial values: normal(0, init_std) (P-Tuning v2 / PEFT use torch.nn.Embedding's std 1; the
// keys and values of USE Lite's layers are of that order too).
#include <cstdint>
#include <string>
#include <vector>

#include "../models/use_lite.hpp"
#include "deep_prompt.hpp"  // kv_prefixes, PromptInit

namespace deepprompt {

struct UseLitePrefixOptions {
  index_t tokens = 20;    // prefix length P, the same on every layer
  double init_std = 1.0;  // normal(0, init_std)
  std::uint64_t seed = 0;
};

/// Per-layer key/value prefixes for a UseLite model (see the top). Invariant: rows[l] is
/// (tokens, 2 * heads[l] * head_dim_l) and heads[l] divides its half.
template <class T = float>
class UseLitePrefix {
 public:
  using value_type = T;
  std::vector<Parameter<T, 2>> rows;  // layer l: (P, 2 * W_l)
  std::vector<index_t> heads;         // H_l

  UseLitePrefix() = default;
  /// A new trainable prefix sized for `model`'s layers. requires o.tokens >= 1.
  UseLitePrefix(const UseLite<T>& model, const UseLitePrefixOptions& o = {}) {
    if (o.tokens < 1) throw ShapeError(detail::cat("UseLitePrefix: prefix length ", o.tokens, " < 1"));
    Generator gen(o.seed);
    for (const auto& layer : model.layers) {
      const index_t width = layer.attention.k.out_features();  // H * D
      Tensor<T, 2> t({o.tokens, 2 * width});
      peft_detail::init_prompt(t, DeepPromptOptions{.init = PromptInit::normal, .init_std = o.init_std}, gen);
      rows.emplace_back("prefix", std::move(t), true);
      heads.push_back(layer.attention.heads);
    }
  }

  index_t tokens() const { return rows.empty() ? 0 : rows.front().shape()[0]; }
  index_t num_layers() const { return static_cast<index_t>(rows.size()); }

  /// Every layer's prefix for one forward pass: keys and values (H_l, P, D_l), differentiable.
  std::vector<KVPrefix<T>> prefixes() const {
    std::vector<KVPrefix<T>> out;
    for (std::size_t l = 0; l < rows.size(); ++l) out.push_back(kv_prefixes(rows[l].var(), 1, heads[l]).front());
    return out;
  }

  /// Checks that the prefix fits `model` (layer count, widths, heads); ShapeError otherwise.
  void check_fits(const UseLite<T>& model) const {
    if (rows.size() != model.layers.size())
      throw ShapeError(detail::cat("UseLitePrefix: ", rows.size(), " layers, the model has ", model.layers.size()));
    for (std::size_t l = 0; l < rows.size(); ++l) {
      const auto& a = model.layers[l].attention;
      if (rows[l].shape()[1] != 2 * a.k.out_features() || heads[l] != a.heads)
        throw ShapeError(detail::cat("UseLitePrefix: layer ", l, ": prefix rows ", shape_str(rows[l].shape()), " with ",
                                     heads[l], " heads; the model's attention is ", a.k.out_features(), " wide with ",
                                     a.heads, " heads"));
    }
  }

  template <class V>
  void visit(V&& v) {
    v("layer", rows);
  }
};

}  // namespace deepprompt
