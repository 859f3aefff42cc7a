#pragma once
// A frozen weight packed once for its forward product y = x W^T (nn.Linear), in the blocks the
// GEMM's micro-kernel reads (Eigen's lhs panels, mc x kc blocks of backend/cpu/gemm.hpp's
// blocking): every later call skips packing W (about 7% of a BERT-base forward pass) and its
// threads split the tokens, each packing only its share of x. The results are bit-identical to
// cpu::gemm's (the same kernel sums every element over the same k blocks in the same order).
//
// AVX-512 float builds only (gemm.hpp's own kernel, whose blocking depends on W's shape alone):
// elsewhere PackedWeight::available() is false and callers keep using cpu::gemm.
#include "deepprompt/backend/cpu/gemm.hpp"
#include "deepprompt/core/error.hpp"

#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace deepprompt::cpu {

class PackedWeight {
 public:
  /// Whether this build can pack weights (AVX-512, float).
  static constexpr bool available() { return detail::kOwnKernel<float>; }

  PackedWeight() = default;
  /// w: (out, in), row-major with row stride ldw. requires: available().
  PackedWeight(index_t out, index_t in, const float* w, index_t ldw) : out_(out), in_(in) {
    if (!available()) throw Error("PackedWeight: this build has no AVX-512 GEMM kernel to pack weights for");
    if constexpr (available()) {
      const detail::BlockSizes b = detail::block_sizes<float>(out, 1, in);
      mc_ = b.mc, kc_ = b.kc;
      // block (kb, ib) starts at offsets_[kb * iblocks + ib], 16-float (64-byte) aligned
      std::size_t total = 0;
      for (index_t k0 = 0; k0 < in; k0 += kc_)
        for (index_t i0 = 0; i0 < out; i0 += mc_) {
          offsets_.push_back(total);
          total += (static_cast<std::size_t>(std::min(mc_, out - i0) * std::min(kc_, in - k0)) + 15) / 16 * 16;
        }
      data_.reset(static_cast<float*>(std::aligned_alloc(64, std::max<std::size_t>(total, 16) * sizeof(float))));
      if (!data_) throw std::bad_alloc{};
      bytes_ = total * sizeof(float);
      using Traits = Eigen::internal::gebp_traits<float, float>;
      using Mapper = Eigen::internal::const_blas_data_mapper<float, index_t, Eigen::RowMajor>;
      Eigen::internal::gemm_pack_lhs<float, index_t, Mapper, Traits::mr, Traits::LhsProgress,
                                     typename Traits::LhsPacket4Packing, Eigen::RowMajor>
          pack;
      const Mapper lhs(w, ldw);  // lhs(i, k) = W[i][k]: the column-major view of C^T = W x^T
      for (index_t k0 = 0, kb = 0; k0 < in; k0 += kc_, ++kb)
        for (index_t i0 = 0, ib = 0; i0 < out; i0 += mc_, ++ib)
          pack(block(kb, ib), lhs.getSubMapper(i0, k0), std::min(kc_, in - k0), std::min(mc_, out - i0));
    }
  }

  index_t out_features() const { return out_; }
  index_t in_features() const { return in_; }
  std::size_t bytes() const { return bytes_; }
  index_t mc() const { return mc_; }
  index_t kc() const { return kc_; }
  /// The packed block of rows [ib mc, ...) and depth [kb kc, ...).
  const float* block(index_t kb, index_t ib) const { return data_.get() + offsets_[index(kb, ib)]; }

 private:
  float* block(index_t kb, index_t ib) { return data_.get() + offsets_[index(kb, ib)]; }
  std::size_t index(index_t kb, index_t ib) const {
    return static_cast<std::size_t>(kb * ((out_ + mc_ - 1) / mc_) + ib);
  }
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  index_t out_ = 0, in_ = 0, mc_ = 1, kc_ = 1;
  std::vector<std::size_t> offsets_;
  std::unique_ptr<float, Free> data_;
  std::size_t bytes_ = 0;
};

namespace detail {

// Tokens [m0, m1) of C(rows, out) = x W^T + beta C on the calling thread.
inline void packed_block(const PackedWeight& w, const float* x, index_t ldx, float beta, float* C, index_t ldc,
                         index_t m0, index_t m1) {
  const index_t out = w.out_features(), in = w.in_features(), mc = w.mc(), kc = w.kc();
  if (m1 <= m0) return;
  for (index_t i = m0; i < m1; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) std::fill(c, c + out, 0.0f);
    else if (beta != 1.0f) for (index_t j = 0; j < out; ++j) c[j] *= beta;
  }
  if (in == 0) return;
  using Traits = ei::gebp_traits<float, float>;
  using RhsMapper = ei::const_blas_data_mapper<float, index_t, ColMajor>;
  ei::gemm_pack_rhs<float, index_t, RhsMapper, Traits::nr, ColMajor> pack_rhs;
  const index_t nc = block_sizes<float>(out, m1 - m0, in).nc;
  float* packed_rhs = thread_scratch().rhs.get<float>(std::max(kc * nc, kMaxRhs<float>));
  const RhsMapper rhs(x + m0 * ldx, ldx);  // rhs(k, j) = x[m0 + j][k]
  float* res = C + m0 * ldc;               // column-major C^T: (feature i, token j) at res[j ldc + i]
  for (index_t j = 0; j < m1 - m0; j += nc) {
    const index_t ncb = std::min(nc, m1 - m0 - j);
    for (index_t k0 = 0, kb = 0; k0 < in; k0 += kc, ++kb) {
      const index_t kcb = std::min(kc, in - k0);
      pack_rhs(packed_rhs, rhs.getSubMapper(k0, j), kcb, ncb);
      for (index_t i0 = 0, ib = 0; i0 < out; i0 += mc, ++ib)
        block_kernel(res + j * ldc + i0, ldc, w.block(kb, ib), packed_rhs, std::min(mc, out - i0), kcb, ncb, 1.0f);
    }
  }
}

}  // namespace detail

/// C(rows, out) = x(rows, in) W^T + beta C with W packed; x, C row-major with row strides ldx,
/// ldc. Threads split the rows (tokens). Counts one GEMM call and 2 rows out in flops.
/// requires: PackedWeight::available(); C does not overlap x.
inline void gemm_packed(const PackedWeight& w, index_t rows, const float* x, index_t ldx, float beta, float* C,
                        index_t ldc) {
  const index_t out = w.out_features(), in = w.in_features();
  detail::count_gemm(rows, out, in, 1);
  if (rows <= 0 || out <= 0) return;
  const int threads = detail::gemm_threads(rows, out, in);
  if (threads <= 1) {
    detail::packed_block(w, x, ldx, beta, C, ldc, 0, rows);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int parts = omp_get_num_threads(), t = omp_get_thread_num();
    detail::packed_block(w, x, ldx, beta, C, ldc, detail::split_point(rows, parts, t, detail::kTileCols<float>),
                         detail::split_point(rows, parts, t + 1, detail::kTileCols<float>));
  }
}

}  // namespace deepprompt::cpu
