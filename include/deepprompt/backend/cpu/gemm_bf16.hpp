// Row-major GEMM with a bf16 right-hand side packed once: C = A B + beta C, for frozen weights.
//
// B (K, N) is converted to bfloat16 (round to nearest even, core/half.hpp) once, into a
// PackedBf16Matrix; A (fp32) is converted while it is packed, at every call; products are
// accumulated in fp32. A frozen Linear (ops/linear.hpp, linear_bf16) packs W^T for its forward
// (y = x W^T) and W for its input gradient (dx += dy W): two packings of a (Out, In) weight take
// 2 * 2 bytes per element, as much as the fp32 weight.
//
// With AVX512-BF16 (-march=native on Zen 4, Sapphire Rapids) the micro-kernel is 12 rows x 32
// columns: 24 zmm accumulators, one vdpbf16ps per row and 16 columns adds two K values' products
// (a broadcast pair of A against 16 interleaved pairs of B). B is packed in panels of 32 columns,
// [k/2][32][2] bf16 within a panel, odd K padded with a zero. A is packed per block of kKc K values
// and kMc rows into tiles of [k/2][12] bf16 pairs. Without AVX512-BF16 a scalar kernel reads the
// same packed data (same input rounding, fp32 accumulation: results agree up to accumulation
// order and, on the AVX path, denormal inputs of A flushed to zero by vcvtneps2bf16).
//
// Threads: one output panel per thread (row panels aligned to 12, or column panels aligned to 32
// when M is under 48 rows per thread); every output element is computed by one thread, in the
// same K order whatever the thread count, so results do not depend on it.
#pragma once

#include "deepprompt/backend/cpu/counters.hpp"
#include "deepprompt/backend/cpu/gemm.hpp"
#include "deepprompt/backend/cpu/threads.hpp"
#include "deepprompt/core/half.hpp"

#include <omp.h>

#if defined(__AVX512F__) && defined(__AVX512BF16__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DEEPPROMPT_GEMM_BF16_AVX512 1
#else
#define DEEPPROMPT_GEMM_BF16_AVX512 0
#endif

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

namespace deepprompt::cpu {

namespace bf16_detail {

inline constexpr index_t kMr = 12;   // rows of the micro-kernel (packed A tile)
inline constexpr index_t kNr = 32;   // columns of the micro-kernel (packed B panel)
inline constexpr index_t kKc = 384;  // K values per block (even): a 32 x 384 B sliver is 24 KiB (L1)
inline constexpr index_t kMc = 384;  // rows per packed A block (multiple of kMr): 288 KiB (L2)

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace bf16_detail

/// B (K, N) in bfloat16, packed for gemm_bf16: panels of 32 columns (the last one padded with
/// zero columns), each [ceil(K/2)][32][2] (pairs of consecutive K values per column, an odd K
/// padded with a zero). Immutable once built.
class PackedBf16Matrix {
 public:
  PackedBf16Matrix() = default;

  /// Packs B (K, N): stored (K, N) row-major with row stride ldb if tb == No, (N, K) if Yes
  /// (a (Out, In) weight W is B = W^T with tb == Yes).
  /// requires: K, N >= 0; ldb >= the stored row length.
  /// ensures: element (k, n) holds bf16(B(k, n)), rounded to nearest even.
  PackedBf16Matrix(Trans tb, index_t K, index_t N, const float* B, index_t ldb) : K_(K), N_(N) {
    kp_ = (K + 1) / 2;
    panels_ = (N + bf16_detail::kNr - 1) / bf16_detail::kNr;
    const std::size_t count = static_cast<std::size_t>(panels_ * kp_ * bf16_detail::kNr * 2);
    if (count == 0) return;
    const std::size_t bytes = (count * sizeof(std::uint16_t) + 63) / 64 * 64;
    data_.reset(static_cast<std::uint16_t*>(std::aligned_alloc(64, bytes)));
    if (!data_) throw std::bad_alloc{};
    const bool t = tb == Trans::Yes;
    std::uint16_t* out = data_.get();
    for (index_t p = 0; p < panels_; ++p)
      for (index_t q = 0; q < kp_; ++q)
        for (index_t c = 0; c < bf16_detail::kNr; ++c)
          for (index_t e = 0; e < 2; ++e) {
            const index_t n = p * bf16_detail::kNr + c, k = 2 * q + e;
            const float v = n < N && k < K ? (t ? B[n * ldb + k] : B[k * ldb + n]) : 0.0f;
            *out++ = bf16::from_float(v);
          }
  }

  index_t rows() const { return K_; }  // K
  index_t cols() const { return N_; }  // N
  /// Bytes of packed data.
  std::size_t bytes() const { return static_cast<std::size_t>(panels_ * kp_ * bf16_detail::kNr * 2) * 2; }
  /// The element (k, n) as a float. requires: 0 <= k < rows(), 0 <= n < cols().
  float at(index_t k, index_t n) const {
    const index_t p = n / bf16_detail::kNr, c = n % bf16_detail::kNr;
    return static_cast<float>(bf16::from_bits(data_[static_cast<std::size_t>(((p * kp_ + k / 2) * bf16_detail::kNr + c) * 2 + k % 2)]));
  }
  /// Panel p (columns 32p to 32p + 31) from K value 2q on: [kp - q][32][2]. 64-byte aligned.
  const std::uint16_t* panel(index_t p, index_t q) const {
    return data_.get() + (p * kp_ + q) * bf16_detail::kNr * 2;
  }

 private:
  index_t K_ = 0, N_ = 0, kp_ = 0, panels_ = 0;
  std::unique_ptr<std::uint16_t[], bf16_detail::FreeDeleter> data_;
};

namespace bf16_detail {

// Packs A[0:mc, 0:kc] (fp32, row stride lda) into tiles of kMr rows: tile t is [kpc][kMr]
// uint32, each the bf16 pair (A[r][2q], A[r][2q + 1]) (low half first); rows past mc and an odd
// kc's last pair partner are zero. kpc = ceil(kc / 2).
inline void pack_a(const float* A, index_t lda, index_t mc, index_t kc, std::uint32_t* packed,
                   std::uint16_t* row_tmp) {
  const index_t kpc = (kc + 1) / 2;
  const index_t stride = (kc + 31) / 32 * 32;  // uint16 per converted row in row_tmp
  for (index_t t = 0; t * kMr < mc; ++t) {
    for (index_t r = 0; r < kMr; ++r) {
      std::uint16_t* dst = row_tmp + r * stride;
      const index_t row = t * kMr + r;
      if (row >= mc) {
        std::memset(dst, 0, sizeof(std::uint16_t) * static_cast<std::size_t>(stride));
        continue;
      }
      const float* src = A + row * lda;
#if DEEPPROMPT_GEMM_BF16_AVX512
      for (index_t k = 0; k < stride; k += 16) {
        const index_t left = kc - k;
        const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, src + k);
        const __m256bh h = _mm512_cvtneps_pbh(v);
        std::memcpy(dst + k, &h, 32);
      }
#else
      for (index_t k = 0; k < kc; ++k) dst[k] = bf16::from_float(src[k]);
      for (index_t k = kc; k < stride; ++k) dst[k] = 0;
#endif
    }
    std::uint32_t* tile = packed + t * kpc * kMr;
    for (index_t r = 0; r < kMr; ++r) {
      const std::uint16_t* src = row_tmp + r * stride;
      for (index_t q = 0; q < kpc; ++q) {
        std::uint32_t pair;
        std::memcpy(&pair, src + 2 * q, 4);
        tile[q * kMr + r] = pair;
      }
    }
  }
}

// c[0:mr, 0:nr] = a (kMr, 2 kpc) * b (2 kpc, 32) + cscale * c (c read only if read_c); c has row
// stride ldc. a: a packed A tile [kpc][kMr]; b: a packed B panel [kpc][32][2].
#if DEEPPROMPT_GEMM_BF16_AVX512
inline void kernel(index_t kpc, const std::uint32_t* a, const std::uint16_t* b, float* c, index_t ldc,
                   index_t mr, index_t nr, bool read_c, float cscale) {
  constexpr int R = static_cast<int>(kMr);
  __m512 acc[R][2];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (index_t q = 0; q < kpc; ++q, a += kMr, b += 2 * kNr) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + kNr);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr <= 16 ? __mmask16(0) : __mmask16((1u << (nr - 16)) - 1);
  const __m512 s = _mm512_set1_ps(cscale);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    if (r >= mr) break;
    float* p = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (read_c) {
      v0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, p), s, v0);
      v1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, p + 16), s, v1);
    }
    _mm512_mask_storeu_ps(p, m0, v0);
    _mm512_mask_storeu_ps(p + 16, m1, v1);
  }
}
#else
inline void kernel(index_t kpc, const std::uint32_t* a, const std::uint16_t* b, float* c, index_t ldc,
                   index_t mr, index_t nr, bool read_c, float cscale) {
  const auto f = [](std::uint16_t bits) { return static_cast<float>(bf16::from_bits(bits)); };
  for (index_t r = 0; r < mr; ++r)
    for (index_t j = 0; j < nr; ++j) {
      float acc = 0.0f;
      for (index_t q = 0; q < kpc; ++q) {
        const std::uint32_t pair = a[q * kMr + r];
        const std::uint16_t* bp = b + (q * kNr + j) * 2;
        // The products of two bf16 values are exact in fp32; the odd K value first, as vdpbf16ps.
        acc += f(static_cast<std::uint16_t>(pair >> 16)) * f(bp[1]);
        acc += f(static_cast<std::uint16_t>(pair & 0xFFFFu)) * f(bp[0]);
      }
      float& out = c[r * ldc + j];
      out = read_c ? out * cscale + acc : acc;
    }
}
#endif

// C[m0:m1, n0:n1] of C = A B + beta C on the calling thread; n0 is a multiple of kNr.
inline void gemm_bf16_block(index_t K, const float* A, index_t lda, const PackedBf16Matrix& B, float beta, float* C,
                            index_t ldc, index_t m0, index_t m1, index_t n0, index_t n1) {
  if (m1 <= m0 || n1 <= n0) return;
  if (K == 0) {
    for (index_t i = m0; i < m1; ++i)
      for (index_t j = n0; j < n1; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  thread_local detail::Scratch a_space, tmp_space;
  const index_t mc_max = (std::min(kMc, m1 - m0) + kMr - 1) / kMr * kMr;  // whole tiles
  const index_t kc_max = std::min(kKc, K);
  std::uint32_t* packed = a_space.get<std::uint32_t>(mc_max * ((kc_max + 1) / 2));
  std::uint16_t* row_tmp = tmp_space.get<std::uint16_t>(kMr * ((kc_max + 31) / 32 * 32));
  for (index_t k0 = 0; k0 < K; k0 += kKc) {
    const index_t kc = std::min(kKc, K - k0), kpc = (kc + 1) / 2;
    const bool first = k0 == 0;
    const bool read_c = !first || beta != 0.0f;
    const float cscale = first ? beta : 1.0f;
    for (index_t i0 = m0; i0 < m1; i0 += kMc) {
      const index_t mc = std::min(kMc, m1 - i0);
      pack_a(A + i0 * lda + k0, lda, mc, kc, packed, row_tmp);
      for (index_t j0 = n0; j0 < n1; j0 += kNr) {
        const index_t nr = std::min(kNr, n1 - j0);
        const std::uint16_t* b = B.panel(j0 / kNr, k0 / 2);
        for (index_t t = 0; t * kMr < mc; ++t)
          kernel(kpc, packed + t * kpc * kMr, b, C + (i0 + t * kMr) * ldc + j0, ldc, std::min(kMr, mc - t * kMr), nr,
                 read_c, cscale);
      }
    }
  }
}

}  // namespace bf16_detail

/// Row-major C (M, N) = A (M, K) * B (K, N) + beta * C, with B packed in bf16 and A converted to
/// bf16 (round to nearest even) as it is packed; fp32 accumulation.
/// requires: M >= 0; K == B.rows(), N == B.cols(); lda >= K, ldc >= N; C overlaps neither A nor B.
/// ensures: beta == 0 overwrites C (NaN in C is not propagated); K == 0 gives beta * C. Runs on
///          num_threads() threads (one inside an OpenMP parallel region or for small products),
///          with results independent of the thread count. Counts one call and 2*M*N*K flops in
///          counters().
inline void gemm_bf16(index_t M, const float* A, index_t lda, const PackedBf16Matrix& B, float beta, float* C,
                      index_t ldc) {
  const index_t N = B.cols(), K = B.rows();
  detail::count_gemm(M, N, K, 1);
  if (M <= 0 || N <= 0) return;
  const int threads = detail::gemm_threads(M, N, K);
  if (threads <= 1) {
    bf16_detail::gemm_bf16_block(K, A, lda, B, beta, C, ldc, 0, M, 0, N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int parts = omp_get_num_threads(), t = omp_get_thread_num();
    // Splitting along M duplicates nothing (B is packed already); along N every thread converts
    // the whole of A, which only pays when M is too short to give each thread a few 12-row tiles.
    if (M < 4 * bf16_detail::kMr * parts)
      bf16_detail::gemm_bf16_block(K, A, lda, B, beta, C, ldc, 0, M,
                                   detail::split_point(N, parts, t, bf16_detail::kNr),
                                   detail::split_point(N, parts, t + 1, bf16_detail::kNr));
    else
      bf16_detail::gemm_bf16_block(K, A, lda, B, beta, C, ldc, detail::split_point(M, parts, t, bf16_detail::kMr),
                                   detail::split_point(M, parts, t + 1, bf16_detail::kMr), 0, N);
  }
}

}  // namespace deepprompt::cpu
