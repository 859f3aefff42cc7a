#pragma once
// linear: torch.nn.functional.linear. x: (..., In) of any rank (the leading axes are
// flattened into rows), weight: (Out, In), bias: (Out) optional; y: (..., Out).
//
//   y = x W^T + b
//
// Backward, each part only when needed:
//   dx += dy W          (x needs a gradient; captures W's value only then)
//   dW += dy^T x        (W is trainable;      captures x's value only then)
//   db += sum of dy over the rows
// so a frozen weight costs one GEMM forward and one backward, and its gradient GEMM never runs.
// linear runs on any device (the device's gemm, add_rows and sum_rows_accumulate); the two
// frozen-weight variants below are CPU kernels.
//
// linear_bf16: the same product for a FROZEN weight held in bfloat16 (Bf16LinearWeight, packed
// once for backend/cpu/gemm_bf16.hpp): x is rounded to bf16 as it is packed, products accumulate
// in fp32. Its backward gives dx (+= dy W, W in bf16, dy rounded to bf16) and db, never dW.
//
// linear_packed: the same product for a FROZEN fp32 weight packed once for the forward GEMM
// (PackedLinearWeight, backend/cpu/gemm_packed.hpp): bit-identical to linear, without packing W at
// every call. Its backward gives dx (+= dy W with the fp32 weight) and db, never dW.
#include <memory>
#include <mutex>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "../backend/cpu/gemm.hpp"
#include "../backend/cpu/gemm_bf16.hpp"
#include "../backend/cpu/gemm_packed.hpp"

namespace deepprompt {

namespace detail {

// The rows of x (..., In) for a weight of shape ws (Out, In) and a bias (Out) or null, after
// checking that they fit (ShapeError naming `op` and the shapes).
template <class T, std::size_t R, class D>
index_t linear_rows(const char* op, const Var<T, R, D>& x, const Shape<2>& ws, const Var<T, 1, D>* bias) {
  static_assert(R >= 1, "linear: x must have at least one axis, (..., In)");
  check_shapes(x.extent(R - 1) == ws[1], op, "x's last extent must equal weight's In in (Out, In)", x.shape(), ws);
  if (bias) check_shapes(bias->extent(0) == ws[0], op, "bias must have weight's Out extent", bias->shape(), ws);
  index_t rows = 1;
  for (std::size_t i = 0; i + 1 < R; ++i) rows *= x.extent(i);
  return rows;
}

// y (..., Out): x's shape with Out last, filled by product(y) = x W^T (rows, Out), plus the bias.
template <class T, std::size_t R, class D, class Product>
Tensor<T, R, D> linear_values(const Var<T, R, D>& x, index_t rows, index_t out_features, const Var<T, 1, D>* bias,
                              Product&& product) {
  Shape<R> ys = x.shape();
  ys[R - 1] = out_features;
  Tensor<T, R, D> y(ys);  // (rows, Out)
  product(y.data());
  if (bias) add_rows(D{}, y.data(), bias->value().data(), y.data(), rows,
                     out_features);
  return y;
}

// The result of a linear with a frozen weight (on any device D): y recorded with a backward that gives
// dx (through dx_product(dy, beta, dx, rows), which computes dx = dy W + beta dx) when x needs a
// gradient, and db when the bias does; the weight never gets one.
template <std::size_t R, class D, class DxProduct>
Var<float, R, D> frozen_linear_result(const Var<float, R, D>& x, const Tensor<float, R, D>& y, index_t rows,
                                      index_t out_features, const Var<float, 1, D>* bias, DxProduct&& dx_product) {
  const bool bias_grad = bias && bias->requires_grad();
  auto out = Var<float, R, D>::result(y, x.requires_grad() || bias_grad);
  if (out.requires_grad()) {
    tape().record(out.node(), [rows, out_features, xn = x.node(), bn = bias_grad ? bias->node() : nullptr,
                               dx_product = std::forward<DxProduct>(dx_product)](const Tensor<float, R, D>& dy) {
      if (xn) {  // the first gradient of x is written, not added
        bool fresh = false;
        float* dx = xn->accumulator(fresh).data();
        dx_product(dy.data(), fresh ? 0.0f : 1.0f, dx, rows);
      }
      if (bn)  // db (Out) += sum over rows of dy
        sum_rows_accumulate(D{}, dy.data(), bn->accumulator().data(), rows, out_features);
    });
  }
  return out;
}

template <class T, std::size_t R, class D>
Var<T, R, D> linear_impl(const Var<T, R, D>& x, const Var<T, 2, D>& weight, const Var<T, 1, D>* bias) {
  const index_t in = weight.extent(1), out_features = weight.extent(0);
  const index_t rows = linear_rows("linear", x, weight.shape(), bias);
  Tensor<T, R, D> y = linear_values(x, rows, out_features, bias, [&](T* yd) {
    gemm(D{}, Trans::No, Trans::Yes, rows, out_features, in, T(1), x.value().data(), in, weight.value().data(), in,
            T(0), yd, out_features);
  });
  const bool bias_grad = bias && bias->requires_grad();
  auto out = Var<T, R, D>::result(y, x.requires_grad() || weight.requires_grad() || bias_grad);
  if (out.requires_grad()) {
    tape().record(out.node(), [rows, in, out_features, xn = x.node(), wn = weight.node(),
                               bn = bias_grad ? bias->node() : nullptr,
                               xv = weight.requires_grad() ? x.value() : Tensor<T, R, D>(),
                               wv = x.requires_grad() ? weight.value() : Tensor<T, 2, D>()](const Tensor<T, R, D>& dy) {
      if (xn) {  // dx (rows, In) += dy (rows, Out) W (Out, In); the first gradient of x is written, not added
        bool fresh = false;
        T* dx = xn->accumulator(fresh).data();
        gemm(D{}, Trans::No, Trans::No, rows, in, out_features, T(1), dy.data(), out_features, wv.data(), in,
                fresh ? T(0) : T(1), dx, in);
      }
      if (wn)  // dW (Out, In) += dy^T (Out, rows) x (rows, In)
        gemm(D{}, Trans::Yes, Trans::No, out_features, in, rows, T(1), dy.data(), out_features, xv.data(), in, T(1),
                wn->accumulator().data(), in);
      if (bn)  // db (Out) += sum over rows of dy
        sum_rows_accumulate(D{}, dy.data(), bn->accumulator().data(), rows, out_features);
    });
  }
  return out;
}

}  // namespace detail

/// y = x W^T + b.  x: (..., In), weight: (Out, In), bias: (Out); y: (..., Out).
/// Throws ShapeError naming "linear" and the shapes when In or Out disagree.
template <class T, std::size_t R, class D>
Var<T, R, D> linear(const Var<T, R, D>& x, const Var<T, 2, D>& weight, const Var<T, 1, D>& bias) {
  return detail::linear_impl(x, weight, &bias);
}

/// y = x W^T (no bias).  x: (..., In), weight: (Out, In); y: (..., Out).
template <class T, std::size_t R, class D>
Var<T, R, D> linear(const Var<T, R, D>& x, const Var<T, 2, D>& weight) {
  return detail::linear_impl<T, R, D>(x, weight, nullptr);
}

/// A frozen (Out, In) fp32 weight W in bfloat16, packed for linear_bf16: W^T for the forward at
/// construction, W for the input gradient on the first backward that needs it (thread-safe).
/// Memory: 2 bytes per element per packing (both: as much as the fp32 weight). It keeps a
/// reference to the fp32 tensor (for the lazy packing) and does not follow later changes of its
/// values: pack after loading the weights.
class Bf16LinearWeight {
 public:
  /// requires: weight is (Out, In), not modified while this exists.
  explicit Bf16LinearWeight(const Tensor<float, 2>& weight)
      : weight_(weight),
        forward_(cpu::Trans::Yes, weight.extent(1), weight.extent(0), weight.data(), weight.extent(1)) {}

  index_t in_features() const { return weight_.extent(1); }
  index_t out_features() const { return weight_.extent(0); }
  /// W^T (In, Out) in bf16: y = x W^T.
  const cpu::PackedBf16Matrix& forward_packing() const { return forward_; }
  /// W (Out, In) in bf16: dx += dy W. Packed on the first call.
  const cpu::PackedBf16Matrix& backward_packing() const {
    std::call_once(*once_, [&] {
      backward_ = cpu::PackedBf16Matrix(cpu::Trans::No, out_features(), in_features(), weight_.data(), in_features());
    });
    return backward_;
  }
  /// Bytes held by the packings made so far.
  std::size_t bytes() const { return forward_.bytes() + backward_.bytes(); }

 private:
  Tensor<float, 2> weight_;  // (Out, In), shares the parameter's storage
  cpu::PackedBf16Matrix forward_;
  mutable std::unique_ptr<std::once_flag> once_ = std::make_unique<std::once_flag>();
  mutable cpu::PackedBf16Matrix backward_;
};

/// y = x W^T (+ b) with W frozen in bf16.  x: (..., In), w: (Out, In) packed, bias: (Out) or null.
/// Throws ShapeError naming "linear_bf16" when In or Out disagree.
/// Backward: dx += dy W (dy rounded to bf16) when x needs a gradient, db += sum of dy over rows
/// when the bias does; the weight gets no gradient. The tape keeps `w` alive.
template <std::size_t R>
Var<float, R> linear_bf16(const Var<float, R>& x, std::shared_ptr<const Bf16LinearWeight> w,
                          const Var<float, 1>* bias = nullptr) {
  const index_t in = w->in_features(), out_features = w->out_features();
  const index_t rows = detail::linear_rows("linear_bf16", x, Shape<2>{out_features, in}, bias);
  Tensor<float, R> y = detail::linear_values(x, rows, out_features, bias, [&](float* yd) {
    cpu::gemm_bf16(rows, x.value().data(), in, w->forward_packing(), 0.0f, yd, out_features);
  });
  return detail::frozen_linear_result(x, y, rows, out_features, bias,
                                      [w = x.requires_grad() ? std::move(w) : nullptr](const float* dy, float beta, float* dx,
                                                                                   index_t n) {
                                        // dx (rows, In) = dy (rows, Out) W (Out, In) + beta dx; dy rounded to bf16
                                        cpu::gemm_bf16(n, dy, w->out_features(), w->backward_packing(), beta, dx,
                                                       w->in_features());
                                      });
}

/// A frozen (Out, In) fp32 weight packed once for linear_packed's forward product. Memory: as
/// much again as the weight. It keeps a handle on the fp32 tensor (dx uses it) and does not
/// follow later changes of its values: pack after loading the weights.
/// requires: cpu::PackedWeight::available() (AVX-512 builds; Error otherwise).
class PackedLinearWeight {
 public:
  explicit PackedLinearWeight(const Tensor<float, 2>& weight)
      : weight_(weight), packed_(weight.extent(0), weight.extent(1), weight.data(), weight.extent(1)) {}
  index_t in_features() const { return weight_.extent(1); }
  index_t out_features() const { return weight_.extent(0); }
  const Tensor<float, 2>& weight() const { return weight_; }  // (Out, In)
  const cpu::PackedWeight& packed() const { return packed_; }
  std::size_t bytes() const { return packed_.bytes(); }

 private:
  Tensor<float, 2> weight_;  // shares the parameter's storage
  cpu::PackedWeight packed_;
};

/// y = x W^T (+ b) with W frozen and pre-packed: bit-identical to linear(x, W, b).
/// x: (..., In), w: (Out, In) packed, bias: (Out) or null. Throws ShapeError naming
/// "linear_packed" when In or Out disagree. Backward: dx += dy W when x needs a gradient, db when
/// the bias does; the weight gets none. The tape keeps `w` alive.
template <std::size_t R>
Var<float, R> linear_packed(const Var<float, R>& x, std::shared_ptr<const PackedLinearWeight> w,
                            const Var<float, 1>* bias = nullptr) {
  const index_t in = w->in_features(), out_features = w->out_features();
  const index_t rows = detail::linear_rows("linear_packed", x, Shape<2>{out_features, in}, bias);
  Tensor<float, R> y = detail::linear_values(x, rows, out_features, bias, [&](float* yd) {
    cpu::gemm_packed(w->packed(), rows, x.value().data(), in, 0.0f, yd, out_features);
  });
  return detail::frozen_linear_result(x, y, rows, out_features, bias,
                                      [w = x.requires_grad() ? std::move(w) : nullptr](const float* dy, float beta, float* dx,
                                                                                   index_t n) {
                                        // dx (rows, In) = dy (rows, Out) W (Out, In) + beta dx
                                        const index_t o = w->out_features(), i = w->in_features();
                                        cpu::gemm<float>(cpu::Trans::No, cpu::Trans::No, n, i, o, 1.0f, dy, o,
                                                         w->weight().data(), i, beta, dx, i);
                                      });
}

}  // namespace deepprompt
