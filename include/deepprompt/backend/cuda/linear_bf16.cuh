#pragma once
// linear_bf16 on the GPU: the device counterpart of ops/linear.hpp's linear_bf16, for a FROZEN
// weight held in bfloat16 on the device (CudaBf16Weight). x (fp32) is rounded to bf16 for the
// product, which accumulates in fp32 on the tensor cores (cuda::gemm_bf16); the output is fp32.
// Backward: dx += dy W (dy rounded to bf16) when x needs a gradient, db += the column sums of dy
// when the bias does; the weight never gets one (as on the host). CUDA translation units only.
#include <memory>

#include "../../core/half.hpp"
#include "../../ops/linear.hpp"
#include "kernels.cuh"

namespace deepprompt {

/// A frozen (Out, In) fp32 weight rounded once to bf16 on the device (to nearest even, as the
/// host's packing). Does not follow later changes of the fp32 weight: convert after loading.
class CudaBf16Weight {
 public:
  /// requires: weight is (Out, In), on the device.
  explicit CudaBf16Weight(const Tensor<float, 2, Cuda>& weight) : w_(weight.shape()) {
    cuda::to_bf16(weight.data(), raw(w_), weight.size());
  }
  index_t in_features() const { return w_.extent(1); }
  index_t out_features() const { return w_.extent(0); }
  const __nv_bfloat16* data() const { return raw(w_); }

  /// A bf16 tensor's elements as CUDA's type (the same 16 bits).
  template <std::size_t R>
  static __nv_bfloat16* raw(const Tensor<bf16, R, Cuda>& t) {
    return reinterpret_cast<__nv_bfloat16*>(t.data());
  }

 private:
  Tensor<bf16, 2, Cuda> w_;  // (Out, In)
};

/// y = x W^T (+ b) with W frozen in bf16 on the device.  x: (..., In), w: (Out, In), bias: (Out)
/// or null; y: (..., Out). Throws ShapeError naming "linear_bf16" when In or Out disagree. The
/// tape keeps `w` alive.
template <std::size_t R>
Var<float, R, Cuda> linear_bf16(const Var<float, R, Cuda>& x, std::shared_ptr<const CudaBf16Weight> w,
                                const Var<float, 1, Cuda>* bias = nullptr) {
  const index_t in = w->in_features(), out_features = w->out_features();
  const index_t rows = detail::linear_rows("linear_bf16", x, Shape<2>{out_features, in}, bias);
  Tensor<float, R, Cuda> y = detail::linear_values(x, rows, out_features, bias, [&](float* yd) {
    Tensor<bf16, 1, Cuda> xb({rows * in});  // x rounded to bf16
    cuda::to_bf16(x.value().data(), CudaBf16Weight::raw(xb), rows * in);
    cuda::gemm_bf16(Trans::No, Trans::Yes, rows, out_features, in, 1.0f, CudaBf16Weight::raw(xb), in, w->data(), in,
                    0.0f, yd, out_features);
  });
  return detail::frozen_linear_result(
      x, y, rows, out_features, bias,
      [w = x.requires_grad() ? std::move(w) : nullptr](const float* dy, float beta, float* dx, index_t n) {
        // dx (rows, In) = dy (rows, Out) W (Out, In) + beta dx, dy rounded to bf16
        const index_t o = w->out_features(), i = w->in_features();
        Tensor<bf16, 1, Cuda> dyb({n * o});
        cuda::to_bf16(dy, CudaBf16Weight::raw(dyb), n * o);
        cuda::gemm_bf16(Trans::No, Trans::No, n, i, o, 1.0f, CudaBf16Weight::raw(dyb), o, w->data(), i, beta, dx, i);
      });
}

}  // namespace deepprompt
