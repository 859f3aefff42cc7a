#pragma once
// Normalisation over the last axis of a Var of rank >= 1:
//   layer_norm(x, gamma, beta, eps)  as torch.nn.LayerNorm(C, eps) (biased variance);
//   layer_norm(x, eps)               the same without the affine part (elementwise_affine=False);
//   rms_norm(x, gamma, eps)          T5LayerNorm: x / sqrt(mean(x^2) + eps) * gamma, no mean, no bias.
// On any device; kernels: the device's layer_norm_rows, rms_norm_rows and their backward passes
// (backend/cpu/rowwise.hpp, backend/cuda/rowwise.cuh).
//
// Backward: dx, dgamma and dbeta are each computed only for the inputs that need them. The
// per-row statistics (mean and 1/std, (rows) each) are saved in tensors only when x or gamma
// needs a gradient; gamma's value is kept only when x needs a gradient; when only beta learns,
// nothing but the nodes is kept (dbeta is the column sum of dy).
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "../backend/cpu/rowwise.hpp"

namespace deepprompt {

namespace detail {

template <class T, std::size_t R, class D>
index_t norm_check(const char* op, const Var<T, R, D>& x, const Var<T, 1, D>* gamma, const Var<T, 1, D>* beta, T eps) {
  static_assert(R >= 1, "layer_norm / rms_norm: the input needs at least one axis (the normalised one)");
  const index_t cols = x.extent(R - 1);
  if (cols < 1) throw ShapeError(detail::cat(op, ": the normalised (last) axis is empty; got x ", shape_str(x.shape())));
  if (gamma)
    check_shapes(gamma->extent(0) == cols, op, "gamma must have the length of x's last axis", x.shape(), gamma->shape());
  if (beta)
    check_shapes(beta->extent(0) == cols, op, "beta must have the length of x's last axis", x.shape(), beta->shape());
  if (!(eps >= T(0))) throw Error(detail::cat(op, ": eps must be >= 0, got ", eps));
  return cols;
}

// gamma, beta: nullptr for "no scale" / "no shift".
template <class T, std::size_t R, class D>
Var<T, R, D> layer_norm_op(const Var<T, R, D>& x, const Var<T, 1, D>* gamma, const Var<T, 1, D>* beta, T eps) {
  // x, y: (..., C); gamma, beta: (C)
  const index_t cols = norm_check("layer_norm", x, gamma, beta, eps);
  const index_t rows = x.size() / cols;
  VarNode<T, R, D>* xn = x.node();
  VarNode<T, 1, D>* gn = gamma ? gamma->node() : nullptr;
  VarNode<T, 1, D>* bn = beta ? beta->node() : nullptr;
  const bool record = tape().grad_enabled() && (xn || gn || bn);
  const bool stats = record && (xn || gn);  // needed by dx and dgamma, not by dbeta

  Tensor<T, R, D> y(x.shape());
  Tensor<T, 1, D> mean, rstd;  // (rows), saved for backward
  if (stats) {
    mean = Tensor<T, 1, D>({rows});
    rstd = Tensor<T, 1, D>({rows});
  }
  layer_norm_rows(D{}, x.value().data(), gamma ? gamma->value().data() : nullptr,
                  beta ? beta->value().data() : nullptr, y.data(), mean.data(), rstd.data(),
                  rows, cols, eps);
  auto out = Var<T, R, D>::result(y, record);
  if (out.requires_grad()) {
    Tensor<T, R, D> xv = stats ? x.value() : Tensor<T, R, D>();
    Tensor<T, 1, D> gv = xn && gamma ? gamma->value() : Tensor<T, 1, D>();
    tape().record(out.node(), [xv, gv, mean, rstd, xn, gn, bn, rows, cols](const Tensor<T, R, D>& dy) {
      if (xn || gn)
        layer_norm_rows_backward(D{}, xv.data(), gv.data(),
                                 mean.data(), rstd.data(),
                                 dy.data(), xn ? xn->accumulator().data() : nullptr,
                                 gn ? gn->accumulator().data() : nullptr, bn ? bn->accumulator().data() : nullptr,
                                 rows, cols);
      else
        sum_rows_accumulate(D{}, dy.data(), bn->accumulator().data(), rows, cols);
    });
  }
  return out;
}

}  // namespace detail

/// torch.nn.LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta, with the
/// biased variance. gamma, beta: (C) where C = x.extent(R - 1) (a Parameter converts).
template <class T, std::size_t R, class D>
Var<T, R, D> layer_norm(const Var<T, R, D>& x,                           // x, y: (..., C)
                        const std::type_identity_t<Var<T, 1, D>>& gamma,  // (C)
                        const std::type_identity_t<Var<T, 1, D>>& beta,   // (C)
                     std::type_identity_t<T> eps = T(1e-5)) {
  return detail::layer_norm_op(x, &gamma, &beta, eps);
}

/// LayerNorm without the affine part: (x - mean) / sqrt(var + eps).
template <class T, std::size_t R, class D>
Var<T, R, D> layer_norm(const Var<T, R, D>& x, std::type_identity_t<T> eps = T(1e-5)) {  // x, y: (..., C)
  return detail::layer_norm_op<T, R, D>(x, nullptr, nullptr, eps);
}

/// RMSNorm, as Hugging Face's T5LayerNorm: x * rsqrt(mean(x^2) + eps) * gamma (no mean
/// subtraction, no bias). gamma: (C).
template <class T, std::size_t R, class D>
Var<T, R, D> rms_norm(const Var<T, R, D>& x,                           // x, y: (..., C)
                      const std::type_identity_t<Var<T, 1, D>>& gamma,  // (C)
                      std::type_identity_t<T> eps = T(1e-6)) {
  const index_t cols = detail::norm_check<T, R, D>("rms_norm", x, &gamma, nullptr, eps);
  const index_t rows = x.size() / cols;
  VarNode<T, R, D>* xn = x.node();
  VarNode<T, 1, D>* gn = gamma.node();
  const bool record = tape().grad_enabled() && (xn || gn);

  Tensor<T, R, D> y(x.shape());
  Tensor<T, 1, D> rstd;  // (rows), saved for backward
  if (record) rstd = Tensor<T, 1, D>({rows});
  rms_norm_rows(D{}, x.value().data(), gamma.value().data(), y.data(),
                rstd.data(), rows, cols, eps);
  auto out = Var<T, R, D>::result(y, record);
  if (out.requires_grad()) {
    Tensor<T, 1, D> gv = xn ? gamma.value() : Tensor<T, 1, D>();
    tape().record(out.node(), [xv = x.value(), gv, rstd, xn, gn, rows, cols](const Tensor<T, R, D>& dy) {
      // gv is empty only when dx is not computed, the one place gamma is used
      rms_norm_rows_backward(D{}, xv.data(), gv.data(),
                             rstd.data(), dy.data(),
                             xn ? xn->accumulator().data() : nullptr, gn ? gn->accumulator().data() : nullptr, rows,
                             cols);
    });
  }
  return out;
}

}  // namespace deepprompt
