#pragma once
// embedding(weight, ids, padding_idx): row lookup, as torch.nn.functional.embedding.
//
//   weight: (V, C); ids: Tensor<int64_t, R> of any shape, R >= 1; result: (ids..., C), with
//   result[p] = weight[ids[p]].
// Every id must lie in [0, V) (checked before anything is written; the Error names the id, its
// position and V). padding_idx (negative values count from the end, as in torch; must then lie
// in [0, V)): positions holding it still read their row, but that row receives no gradient.
//
// Backward (only when the weight needs a gradient): dW[ids[p]] += dy[p] for every position p
// not holding padding_idx. Threads split the embedding columns and each column is summed over
// the positions in order, so repeated ids accumulate without races and with the same bits at
// any thread count. The ids tensor is kept by handle (not copied) until backward: do not
// overwrite it in between.
//
// On another device (weight a Var<T, 2, Cuda>), ids stay a host tensor: they are checked on the
// host, copied to the device once per call (upload(D, ...)), and the device's embedding_forward /
// embedding_backward kernels do the rest (the same column-wise, in-order accumulation).
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/simd.hpp"

namespace deepprompt {

template <class T, std::size_t R, class D>
Var<T, R + 1, D> embedding(const Var<T, 2, D>& weight,             // (V, C)
                           const Tensor<std::int64_t, R>& ids,     // (...), on the host
                           std::optional<std::int64_t> padding_idx = std::nullopt) {
  static_assert(R >= 1, "embedding: ids need at least one axis");
  const index_t vocab = weight.extent(0), cols = weight.extent(1);
  const index_t n = ids.size();
  const std::int64_t* id = ids.data();

  std::int64_t pad = -1;  // -1: none
  if (padding_idx) {
    pad = *padding_idx < 0 ? *padding_idx + vocab : *padding_idx;
    if (pad < 0 || pad >= vocab)
      throw Error(detail::cat("embedding: padding_idx ", *padding_idx, " is out of range for a table of V = ", vocab,
                              " rows (weight ", shape_str(weight.shape()), ")"));
  }
  for (index_t p = 0; p < n; ++p)
    if (id[p] < 0 || id[p] >= vocab) {
      Shape<R> pos{};  // the multi-index of p in ids
      for (index_t q = p, a = static_cast<index_t>(R) - 1; a >= 0; --a) {
        pos[a] = q % ids.extent(a);
        q /= ids.extent(a);
      }
      throw Error(detail::cat("embedding: id ", id[p], " at position ", shape_str(pos), " of ids ",
                              shape_str(ids.shape()), " is out of range for a table of V = ", vocab, " rows (weight ",
                              shape_str(weight.shape()), ")"));
    }

  Shape<R + 1> shape{};
  for (std::size_t a = 0; a < R; ++a) shape[a] = ids.extent(a);
  shape[R] = cols;
  if constexpr (!std::is_same_v<D, Cpu>) {
    Tensor<std::int64_t, 1, D> dev_ids({n});
    upload(D{}, id, dev_ids.data(), n);
    Tensor<T, R + 1, D> y(shape);
    embedding_forward(D{}, weight.value().data(), dev_ids.data(),
                      y.data(), n, cols);
    auto out = Var<T, R + 1, D>::result(y, weight.requires_grad());
    if (out.requires_grad())
      tape().record(out.node(), [dev_ids, wn = weight.node(), pad, n, cols](const Tensor<T, R + 1, D>& dy) {
        embedding_backward(D{}, dev_ids.data(), dy.data(),
                           wn->accumulator().data(), n, cols, pad);
      });
    return out;
  } else {
    Tensor<T, R + 1> y(shape);
    const T* w = weight.value().data();
    T* out_data = y.data();
    if (cols > 0) {
#pragma omp parallel for schedule(static) if (n * cols >= cpu::simd::parallel_threshold)
      for (index_t p = 0; p < n; ++p)
        std::memcpy(out_data + p * cols, w + id[p] * cols, static_cast<std::size_t>(cols) * sizeof(T));
    }

    auto out = Var<T, R + 1>::result(y, weight.requires_grad());
    if (out.requires_grad())
      tape().record(out.node(), [ids, wn = weight.node(), pad, n, cols](const Tensor<T, R + 1>& dy) {
        namespace simd = cpu::simd;
        const std::int64_t* id = ids.data();
        const T* g = dy.data();
        T* dw = wn->accumulator().data();
        simd::for_column_blocks<T>(n, cols, [&](index_t c, index_t k) {
          for (index_t p = 0; p < n; ++p) {
            if (id[p] == pad) continue;
            T* row = dw + id[p] * cols + c;
            simd::store_n(row, simd::load_n(row, k) + simd::load_n(g + p * cols + c, k), k);
          }
        });
      });
    return out;
  }
}

}  // namespace deepprompt
