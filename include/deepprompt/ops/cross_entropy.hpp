#pragma once
// cross_entropy(logits, targets, ignore_index, label_smoothing): the mean softmax cross-entropy,
// exactly as torch.nn.functional.cross_entropy(logits, targets, ignore_index=...,
// label_smoothing=..., reduction="mean") without class weights.
//
//   logits (N, C) with targets (N), or logits (B, T, C) with targets (B, T), which is torch on
//   logits.view(-1, C) and targets.view(-1) (the Hugging Face language-model loss; note that torch
//   itself would read a rank-3 input as (N, C, d1), with the classes on axis 1).
//
// With logp = log_softmax(logits) per row, eps = label_smoothing and K the set of rows whose
// target is not ignore_index:
//   loss = (1 / |K|) sum_{i in K} [ -(1 - eps) logp[i, t_i] - (eps / C) sum_c logp[i, c] ],
// i.e. ignored rows contribute neither to the sum nor to the denominator, for the smoothing term
// too (torch masks the smoothing loss of ignored rows and divides it by the same count).
// If every target is ignored (or N == 0) the loss is 0/0 = NaN, as in torch, and the gradient
// is zero (torch's is zero too: nll_loss writes nothing and the masked smoothing term passes 0).
// Targets that are neither in [0, C) nor ignore_index throw Error (naming the target, its
// position and C); eps outside [0, 1] throws.
//
// The gradient is (softmax(logits[i]) - q_i) / |K| per kept row, q_i = (1 - eps) onehot(t_i) + eps / C.
// Memory: the (N, C) log-probabilities are kept for backward (as PyTorch keeps log_softmax's
// output) only when the logits need a gradient; the logits themselves are not kept.
//
// On another device (logits a Var<T, R, Cuda>), targets stay a host tensor: they are checked on
// the host and copied to the device once per call; the device's log_softmax_rows and
// cross_entropy_forward / _backward kernels compute the loss, a device scalar (its sum order
// differs from the host's, so the last bits may).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/rowwise.hpp"

namespace deepprompt {

namespace detail {

// cross_entropy on a device other than the host, after the host checked the targets.
template <class T, std::size_t R, class D>
Var<T, 0, D> cross_entropy_device(const Var<T, R, D>& logits,                 // (rows, classes)
                                  const Tensor<std::int64_t, R - 1>& targets,  // (rows), on the host
                                  index_t rows, index_t classes, std::int64_t ignore_index, T eps) {
  Tensor<std::int64_t, 1, D> tg({rows});
  upload(D{}, targets.data(), tg.data(), rows);
  Tensor<T, 2, D> logp({rows, classes});
  log_softmax_rows(D{}, logits.value().data(), logp.data(), rows, classes);
  Tensor<T, 1, D> result({2});  // the loss, then the number of kept rows (read by the backward)
  cross_entropy_forward(D{}, logp.data(), tg.data(), rows,
                        classes, ignore_index, eps, result.data());
  auto out = Var<T, 0, D>::result(result.slice(0, 1).template reshape<0>({}), logits.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [logp, tg, result, xn = logits.node(), rows, classes, ignore_index,
                               eps](const Tensor<T, 0, D>& dy) {
      cross_entropy_backward(D{}, logp.data(), tg.data(), rows,
                             classes, ignore_index, eps, dy.data(),
                             result.data(), xn->accumulator().data());
    });
  return out;
}

}  // namespace detail

template <class T, std::size_t R, class D>
Var<T, 0, D> cross_entropy(const Var<T, R, D>& logits,                 // (N, C) or (B, T, C)
                           const Tensor<std::int64_t, R - 1>& targets,  // (N) or (B, T), on the host
                           std::int64_t ignore_index = -100, std::type_identity_t<T> label_smoothing = T(0)) {
  static_assert(R == 2 || R == 3, "cross_entropy: logits must be (N, C) with targets (N), or (B, T, C) with targets (B, T)");
  namespace simd = cpu::simd;
  using B = simd::batch<T>;
  const T eps = label_smoothing;
  Shape<R - 1> lead{};
  for (std::size_t a = 0; a + 1 < R; ++a) lead[a] = logits.extent(a);
  check_shapes(targets.shape() == lead, "cross_entropy", "targets must have the shape of logits without the class axis",
               logits.shape(), targets.shape());
  if (!(eps >= T(0) && eps <= T(1)))
    throw Error(detail::cat("cross_entropy: label_smoothing must be in [0, 1], got ", eps));
  const index_t classes = logits.extent(R - 1);
  const index_t rows = numel(lead);
  const std::int64_t* tg = targets.data();
  index_t kept = 0;
  for (index_t i = 0; i < rows; ++i) {
    if (tg[i] == ignore_index) continue;
    if (tg[i] < 0 || tg[i] >= classes) {
      Shape<R - 1> pos{};
      for (index_t q = i, a = static_cast<index_t>(R) - 2; a >= 0; --a) {
        pos[a] = q % lead[a];
        q /= lead[a];
      }
      throw Error(detail::cat("cross_entropy: target ", tg[i], " at position ", shape_str(pos), " of targets ",
                              shape_str(targets.shape()), " is out of range for C = ", classes,
                              " classes (and is not ignore_index = ", ignore_index, ")"));
    }
    ++kept;
  }
  if constexpr (!std::is_same_v<D, Cpu>) {
    return detail::cross_entropy_device(logits, targets, rows, classes, ignore_index, eps);
  } else {

    // logp: (rows, classes); row_loss: (rows), 0 for ignored rows
    Tensor<T, 2> logp({rows, classes});
    cpu::log_softmax_rows(logits.value().data(), logp.data(), rows, classes);
    Tensor<T, 1> row_loss({rows});
    const T smooth = eps / T(classes > 0 ? classes : 1);
    simd::for_rows(rows, classes, [&](index_t i) {
      T l = T(0);
      if (tg[i] != ignore_index) {
        const T* lp = logp.data() + i * classes;
        l = -(T(1) - eps) * lp[tg[i]];
        if (eps > T(0)) {  // skipped at eps == 0, where a -inf logp would give 0 * inf
          B acc(T(0));
          for (index_t c = 0; c < classes; c += simd::lanes<T>)
            acc += simd::load_n(lp + c, std::min(simd::lanes<T>, classes - c), T(0));
          l -= smooth * xsimd::hadd(acc);
        }
      }
      row_loss.data()[i] = l;
    });
    double total = 0;  // in row order: deterministic
    for (index_t i = 0; i < rows; ++i) total += static_cast<double>(row_loss.data()[i]);
    const T loss = kept > 0 ? static_cast<T>(total / static_cast<double>(kept)) : std::numeric_limits<T>::quiet_NaN();

    auto out = Var<T, 0>::result(Tensor<T, 0>::full({}, loss), logits.requires_grad());
    if (out.requires_grad())
      tape().record(out.node(), [logp, targets, xn = logits.node(), ignore_index, eps, smooth, kept, rows,
                                 classes](const Tensor<T, 0>& dy) {
        if (kept == 0) return;  // torch: a zero gradient
        const std::int64_t* tg = targets.data();
        T* dx = xn->accumulator().data();
        const T s = dy.item() / T(kept);
        const B vs(s), vsmooth(smooth);
        simd::for_rows(rows, classes, [&](index_t i) {
          if (tg[i] == ignore_index) return;
          T* dxr = dx + i * classes;
          // dx += s (softmax - eps / C), then the target's extra -s (1 - eps)
          simd::apply(classes, dxr, [vs, vsmooth](B lp, B acc) { return xsimd::fma(vs, xsimd::exp(lp) - vsmooth, acc); },
                      logp.data() + i * classes, dxr);
          dxr[tg[i]] -= s * (T(1) - eps);
        });
      });
    return out;
  }
}

}  // namespace deepprompt
