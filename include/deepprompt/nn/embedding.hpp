#pragma once
// nn::Embedding: torch.nn.Embedding as a module. Parameter: weight (V, C).
// Initialised as Hugging Face's _init_weights: Normal(0, std = initializer_range), and the
// padding_idx row (if any) zeroed; that row also receives no gradient (as torch). init_std = 0
// gives zeros without drawing (for weights about to be loaded). The weight lives on device D
// (initialised on the host, then copied); ids are host tensors on every device.
#include <cstdint>
#include <optional>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../ops/embedding.hpp"

namespace deepprompt {

template <class T = float, DevicePolicy D = Cpu>
struct Embedding {
  Parameter<T, 2, D> weight;                // (V, C)
  std::optional<std::int64_t> padding_idx;  // a row that gets no gradient, or none

  Embedding() = default;
  Embedding(index_t num, index_t dim, Generator& gen, std::optional<std::int64_t> padding = std::nullopt,
            double init_std = 0.02)
      : weight("weight", copy_to<D>(initial_weight(num, dim, gen, padding, init_std))), padding_idx(padding) {}

  index_t num_embeddings() const { return weight.shape()[0]; }
  index_t embedding_dim() const { return weight.shape()[1]; }

  /// ids: (...) -> (..., C). Every id must be in [0, V) (Error naming the id otherwise).
  template <std::size_t R>
  Var<T, R + 1, D> forward(const Tensor<std::int64_t, R>& ids) const {
    return embedding(weight.var(), ids, padding_idx);
  }
  template <std::size_t R>
  Var<T, R + 1, D> operator()(const Tensor<std::int64_t, R>& ids) const {
    return forward(ids);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }

 private:
  // (num, dim) on the host: Normal(0, init_std) (zeros for init_std <= 0), the padding row zeroed.
  static Tensor<T, 2> initial_weight(index_t num, index_t dim, Generator& gen, std::optional<std::int64_t> padding,
                                     double init_std) {
    Tensor<T, 2> w({num, dim});
    if (init_std > 0)
      init::normal(w, 0.0, init_std, gen);
    else
      w.fill(T(0));
    if (padding) {
      const std::int64_t p = *padding < 0 ? *padding + num : *padding;
      if (p < 0 || p >= num)
        throw Error(detail::cat("Embedding: padding_idx ", *padding, " is out of range for ", num, " rows"));
      std::fill_n(w.data() + p * dim, dim, T(0));
    }
    return w;
  }
};

}  // namespace deepprompt
