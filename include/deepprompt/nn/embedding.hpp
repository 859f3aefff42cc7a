#pragma once
// nn::Embedding: torch.nn.Embedding as a module. Parameter: weight (V, C).
// Initialised as Hugging Face's _init_weights: Normal(0, std = initializer_range), and the
// padding_idx row (if any) zeroed; that row also receives no gradient (as torch). init_std = 0
// gives zeros without drawing (for weights about to be loaded).
#include <cstdint>
#include <optional>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../ops/embedding.hpp"

namespace deepprompt {

template <class T = float>
struct Embedding {
  Parameter<T, 2> weight;                   // (V, C)
  std::optional<std::int64_t> padding_idx;  // a row that gets no gradient, or none

  Embedding() = default;
  Embedding(index_t num, index_t dim, Generator& gen, std::optional<std::int64_t> padding = std::nullopt,
            double init_std = 0.02)
      : weight("weight", Tensor<T, 2>({num, dim})), padding_idx(padding) {
    if (init_std > 0)
      init::normal(weight.value(), 0.0, init_std, gen);
    else
      weight.value().fill(T(0));
    if (padding_idx) {
      const std::int64_t p = *padding_idx < 0 ? *padding_idx + num : *padding_idx;
      if (p < 0 || p >= num)
        throw Error(detail::cat("Embedding: padding_idx ", *padding_idx, " is out of range for ", num, " rows"));
      std::fill_n(weight.value().data() + p * dim, dim, T(0));
    }
  }

  index_t num_embeddings() const { return weight.shape()[0]; }
  index_t embedding_dim() const { return weight.shape()[1]; }

  /// ids: (...) -> (..., C). Every id must be in [0, V) (Error naming the id otherwise).
  template <std::size_t R>
  Var<T, R + 1> forward(const Tensor<std::int64_t, R>& ids) const {
    return embedding(weight.var(), ids, padding_idx);
  }
  template <std::size_t R>
  Var<T, R + 1> operator()(const Tensor<std::int64_t, R>& ids) const {
    return forward(ids);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }
};

}  // namespace deepprompt
