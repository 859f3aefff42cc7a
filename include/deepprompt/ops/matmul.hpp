#pragma once
// matmul: matrix products of Vars, plain (M,K) x (K,N) and batched (B,M,K) x (B,K,N), with
// either operand optionally transposed (read in the other order, never copied).
//
//   y = op(a) op(b),  op(a) = a or a^T per `ta`, op(b) = b or b^T per `tb`.
//
// Backward (each only when that input needs a gradient, capturing only the other operand):
//   d op(a) = dy op(b)^T,   d op(b) = op(a)^T dy,
// written as one GEMM each with beta = 1 (accumulate) and the transposes chosen so that the
// stored layout of a and b is written directly.
#include "../autodiff/var.hpp"
#include "../backend/cpu/gemm.hpp"

namespace deepprompt {


namespace detail {

// Rows and columns of op(x) for x stored as (rows, cols).
inline index_t matmul_op_rows(index_t rows, index_t cols, Trans t) { return t == Trans::Yes ? cols : rows; }
inline index_t matmul_op_cols(index_t rows, index_t cols, Trans t) { return t == Trans::Yes ? rows : cols; }
inline Trans matmul_flip(Trans t) { return t == Trans::Yes ? Trans::No : Trans::Yes; }
inline const char* matmul_trans_str(Trans t) { return t == Trans::Yes ? "Yes" : "No"; }

// The GEMM dimensions of one product; validates the inner dimensions.
struct MatmulDims {
  index_t M, N, K;
  index_t lda, ldb;  // stored row lengths of a and b
};

template <class SA, class SB>
MatmulDims matmul_dims(index_t ar, index_t ac, index_t br, index_t bc, Trans ta, Trans tb, const SA& sa,
                       const SB& sb) {
  const index_t M = matmul_op_rows(ar, ac, ta), K = matmul_op_cols(ar, ac, ta);
  const index_t Kb = matmul_op_rows(br, bc, tb), N = matmul_op_cols(br, bc, tb);
  if (K != Kb)
    check_shapes(false, "matmul",
                 detail::cat("inner dimensions differ (ta = ", matmul_trans_str(ta), ", tb = ", matmul_trans_str(tb),
                             ": ", K, " vs ", Kb, ")"),
                 sa, sb);
  return {M, N, K, ac, bc};
}

// The two backward GEMMs of one (possibly batched) product, `batch` == 1 for a plain one.
// da, db may be nullptr (that gradient is not needed); av/bv are the forward operands as stored
// (av is read only for db, bv only for da); dy is (M, N) per matrix.
template <class D, class T>
void matmul_backward(const MatmulDims& d, Trans ta, Trans tb, const T* av, const T* bv, const T* dy, T* da,
                     T* db, index_t batch) {
  const index_t M = d.M, N = d.N, K = d.K;
  const index_t sa = M * K, sb = K * N, sy = M * N;  // per-matrix strides (all contiguous)
  if (da) {
    if (ta == Trans::No)  // da (M,K) += dy (M,N) op(b)^T
      gemm_batched(D{}, Trans::No, matmul_flip(tb), M, K, N, T(1), dy, N, sy, bv, d.ldb, sb, T(1), da, K, sa, batch);
    else  // da (K,M) += op(b) (K,N) dy^T
      gemm_batched(D{}, tb, Trans::Yes, K, M, N, T(1), bv, d.ldb, sb, dy, N, sy, T(1), da, M, sa, batch);
  }
  if (db) {
    if (tb == Trans::No)  // db (K,N) += op(a)^T (K,M) dy
      gemm_batched(D{}, matmul_flip(ta), Trans::No, K, N, M, T(1), av, d.lda, sa, dy, N, sy, T(1), db, N, sb, batch);
    else  // db (N,K) += dy^T (N,M) op(a)
      gemm_batched(D{}, Trans::Yes, ta, N, K, M, T(1), dy, N, sy, av, d.lda, sa, T(1), db, K, sb, batch);
  }
}

}  // namespace detail

/// y = op(a) op(b).  a: (M, K) or (K, M) if ta; b: (K, N) or (N, K) if tb; y: (M, N).
/// Throws ShapeError naming "matmul" and both shapes when the inner dimensions differ.
template <class T, class D>
Var<T, 2, D> matmul(const Var<T, 2, D>& a, const Var<T, 2, D>& b, Trans ta = Trans::No, Trans tb = Trans::No) {
  const auto d = detail::matmul_dims(a.extent(0), a.extent(1), b.extent(0), b.extent(1), ta, tb, a.shape(), b.shape());
  Tensor<T, 2, D> y({d.M, d.N});
  gemm(D{}, ta, tb, d.M, d.N, d.K, T(1), a.value().data(), d.lda, b.value().data(), d.ldb, T(0), y.data(), d.N);
  auto out = Var<T, 2, D>::result(y, a.requires_grad() || b.requires_grad());
  if (out.requires_grad()) {
    // a's value is needed only for b's gradient and vice versa
    tape().record(out.node(), [d, ta, tb, an = a.node(), bn = b.node(),
                               av = b.requires_grad() ? a.value() : Tensor<T, 2, D>(),
                               bv = a.requires_grad() ? b.value() : Tensor<T, 2, D>()](const Tensor<T, 2, D>& dy) {
      detail::matmul_backward<D>(d, ta, tb, av.data(), bv.data(), dy.data(), an ? an->accumulator().data() : nullptr,
                                 bn ? bn->accumulator().data() : nullptr, 1);
    });
  }
  return out;
}

/// Batched: y[i] = op(a[i]) op(b[i]).  a: (B, M, K) or (B, K, M); b: (B, K, N) or (B, N, K);
/// y: (B, M, N). Throws ShapeError when the batch sizes or the inner dimensions differ.
template <class T, class D>
Var<T, 3, D> matmul(const Var<T, 3, D>& a, const Var<T, 3, D>& b, Trans ta = Trans::No, Trans tb = Trans::No) {
  check_shapes(a.extent(0) == b.extent(0), "matmul", "batch sizes differ", a.shape(), b.shape());
  const index_t batch = a.extent(0);
  const auto d = detail::matmul_dims(a.extent(1), a.extent(2), b.extent(1), b.extent(2), ta, tb, a.shape(), b.shape());
  Tensor<T, 3, D> y({batch, d.M, d.N});
  gemm_batched(D{}, ta, tb, d.M, d.N, d.K, T(1), a.value().data(), d.lda, d.M * d.K, b.value().data(), d.ldb,
                       d.K * d.N, T(0), y.data(), d.N, d.M * d.N, batch);
  auto out = Var<T, 3, D>::result(y, a.requires_grad() || b.requires_grad());
  if (out.requires_grad()) {
    tape().record(out.node(), [d, ta, tb, batch, an = a.node(), bn = b.node(),
                               av = b.requires_grad() ? a.value() : Tensor<T, 3, D>(),
                               bv = a.requires_grad() ? b.value() : Tensor<T, 3, D>()](const Tensor<T, 3, D>& dy) {
      detail::matmul_backward<D>(d, ta, tb, av.data(), bv.data(), dy.data(), an ? an->accumulator().data() : nullptr,
                                 bn ? bn->accumulator().data() : nullptr, batch);
    });
  }
  return out;
}

}  // namespace deepprompt
