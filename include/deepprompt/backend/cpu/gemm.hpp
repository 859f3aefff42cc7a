// Row-major GEMM on the CPU, built from Eigen's packing routines and kernels.
//
// Why not `C.noalias() = A * B` on Eigen maps? Three reasons, all measured:
//  - Eigen allocates its packing buffers on every call; here each thread packs into its own
//    thread_local buffers (thread_scratch), allocated once at the largest block size, so a
//    thread that has run any product runs every later one without heap allocation;
//  - Eigen's OpenMP split is not the best one for our shapes; here each thread computes one
//    output panel, split along the dimension that duplicates the least packing;
//  - compiled by GCC 12 with -march=native on AMD Zen 4, Eigen 3.4's 48x4 float kernel has its
//    lhs loads folded into every FMA (12 vector loads per 12 FMAs instead of 3), which caps it
//    at ~75% of peak. Full 48x8 tiles of float products therefore use a small AVX-512 kernel
//    of ours on Eigen's packed panels; Eigen's kernel does the edges and every other case.
#pragma once

#include "deepprompt/backend/cpu/counters.hpp"
#include "deepprompt/backend/cpu/threads.hpp"
#include "deepprompt/core/blas_types.hpp"
#include "deepprompt/core/device.hpp"

#include <Eigen/Core>
#include <omp.h>

#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DEEPPROMPT_GEMM_AVX512 1
#else
#define DEEPPROMPT_GEMM_AVX512 0
#endif

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>

namespace deepprompt::cpu {

using deepprompt::Trans;  // core/blas_types.hpp: shared by every device's GEMM
using index_t = std::ptrdiff_t;

namespace detail {

namespace ei = Eigen::internal;

// A 64-byte aligned scratch buffer that only grows.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }

  // Ensures: the result is 64-byte aligned and holds `count` objects of type T; it stays
  // valid until the next call that needs more room.
  template <class T>
  T* get(index_t count) {
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(count);
    if (bytes > capacity_) {
      const std::size_t rounded = (bytes + 63) / 64 * 64;
      std::free(data_);
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) throw std::bad_alloc{};
      capacity_ = rounded;
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// This thread's packing buffers, shared by every product it runs (products never nest on one
// thread: inside a parallel region they run single-threaded).
struct ThreadScratch {
  Scratch lhs, rhs;
};
inline ThreadScratch& thread_scratch() {
  thread_local ThreadScratch s;
  return s;
}

// Whether T's full tiles go to our AVX-512 kernel (48 x 8 column-major tiles).
template <class T>
inline constexpr bool kOwnKernel = DEEPPROMPT_GEMM_AVX512 && std::is_same_v<T, float>;

// Register tile of the kernel that does the bulk of the work: rows (along the contiguous
// dimension of C) by columns. Thread panels are aligned to it.
template <class T>
inline constexpr index_t kTileRows = kOwnKernel<T> ? 48 : ei::gebp_traits<T, T>::mr;
template <class T>
inline constexpr index_t kTileCols = kOwnKernel<T> ? 8 : ei::gebp_traits<T, T>::nr;

// Cache blocking of a column-major (rows x cols x depth) product: the packed lhs block is
// mc x kc, the packed rhs block kc x nc.
struct BlockSizes {
  index_t mc, nc, kc;
};

// The largest blocks of our kernel's blocking (block_sizes below).
inline constexpr index_t kMaxMc = 384, kMaxNc = 4096, kMaxKc = 256;

template <class T>
BlockSizes block_sizes(index_t rows, index_t cols, index_t depth) {
  if constexpr (kOwnKernel<T>) {
    // Tuned on Zen 4 (32 KiB L1d, 1 MiB L2): an 8 x kc rhs sliver stays in L1 while the
    // mc x kc lhs block (384 KiB) streams from L2; the kc x nc rhs block (at most 4 MiB)
    // sits in L3. kc from 192 to 512 and mc from 192 to 768 are all within 2%.
    return {std::min(rows, kMaxMc), std::min(cols, kMaxNc), std::min(depth, kMaxKc)};
  } else {
    BlockSizes b{rows, cols, depth};
    ei::computeProductBlockingSizes<T, T, 1>(b.kc, b.mc, b.nc, index_t{1});
    return b;
  }
}

// The packing buffers' sizes at the largest blocks (our kernel's blocking; 0 for Eigen's,
// whose blocks depend on the product and grow the buffers as needed): allocated at these sizes
// on a thread's first product, they serve every later one.
template <class T>
inline constexpr index_t kMaxLhs = kOwnKernel<T> ? kMaxMc * kMaxKc : 0;
template <class T>
inline constexpr index_t kMaxRhs = kOwnKernel<T> ? kMaxKc * kMaxNc : 0;

// Allocates the calling thread's packing buffers now (at their largest sizes where they have
// them), for parallel regions in which a thread may run its first product only in a later call
// (work handed out dynamically): no product on this thread allocates afterwards.
template <class T>
void reserve_thread_scratch() {
  ThreadScratch& space = thread_scratch();
  (void)space.lhs.get<T>(kMaxLhs<T>);
  (void)space.rhs.get<T>(kMaxRhs<T>);
}

#if DEEPPROMPT_GEMM_AVX512
// res(16 R, 8) += alpha * a(16 R, kc) * [b0 | b1](kc, 8), column-major res with stride ld; R = 3
// is the bulk kernel (48 x 8), R = 2 and 1 take the 32- and 16-row panels Eigen packs after
// the 48-row ones (a head dimension of 64 = 48 + 16).
// a: an Eigen-packed 16R-row lhs panel (16R consecutive floats per k, 64-byte aligned);
// b0, b1: two Eigen-packed 4-column rhs panels (4 consecutive floats per k).
template <int R>
inline void kernel_rx8(index_t kc, const float* a, const float* b0, const float* b1, float alpha, float* res,
                       index_t ld) {
  static_assert(R >= 1 && R <= 3, "kernel_rx8: 1 to 3 vectors of 16 rows");
  __m512 c[R][8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j)
#pragma GCC unroll 3
    for (int r = 0; r < R; ++r) c[r][j] = _mm512_setzero_ps();
  // Start fetching the C tile now; it is only needed after the loop (2-4% faster).
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j)
#pragma GCC unroll 3
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(res + j * ld + 16 * r), _MM_HINT_T0);

  for (index_t k = 0; k < kc; ++k, a += 16 * R, b0 += 4, b1 += 4) {
    __m512 av[R];
#pragma GCC unroll 3
    for (int r = 0; r < R; ++r) av[r] = _mm512_load_ps(a + 16 * r);
    // Keep the lhs vectors in registers: without this, GCC's Zen tuning folds each load into
    // the FMAs that use it and the kernel becomes load-bound.
    if constexpr (R == 3) __asm__("" : "+v"(av[0]), "+v"(av[1]), "+v"(av[2]));
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m512 b = _mm512_set1_ps(j < 4 ? b0[j] : b1[j - 4]);
#pragma GCC unroll 3
      for (int r = 0; r < R; ++r) c[r][j] = _mm512_fmadd_ps(av[r], b, c[r][j]);
    }
  }

  const __m512 alpha_v = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j)
#pragma GCC unroll 3
    for (int r = 0; r < R; ++r) {
      float* p = res + j * ld + 16 * r;
      _mm512_storeu_ps(p, _mm512_fmadd_ps(c[r][j], alpha_v, _mm512_loadu_ps(p)));
    }
}

#endif

using Eigen::ColMajor;
using Eigen::RowMajor;
template <class T>
using ResMapper = ei::blas_data_mapper<T, index_t, ColMajor>;

// res(rows, cols) += alpha * packed_lhs(rows, kc) * packed_rhs(kc, cols), on Eigen-packed
// blocks; res is column-major with stride ld.
template <class T>
void block_kernel(T* res, index_t ld, const T* lhs, const T* rhs, index_t rows, index_t kc,
                  index_t cols, T alpha) {
  using Traits = ei::gebp_traits<T, T>;
  ei::gebp_kernel<T, T, index_t, ResMapper<T>, Traits::mr, Traits::nr, false, false> eigen;
  index_t tiled_rows = 0, tiled_cols = 0;
#if DEEPPROMPT_GEMM_AVX512
  if constexpr (kOwnKernel<T>) {
    // Eigen's lhs panels: 48 rows while they last, then one of 32, then 16s; ours take those,
    // Eigen's kernel the narrower ones.
    const index_t rows48 = rows / 48 * 48, rows32 = rows - rows48 >= 32 ? 32 : 0;
    tiled_rows = rows48 + rows32 + (rows - rows48 - rows32) / 16 * 16;
    tiled_cols = tiled_rows > 0 ? cols / 8 * 8 : 0;
    for (index_t j = 0; j < tiled_cols; j += 8) {
      const T* b0 = rhs + j * kc;
      const T* b1 = rhs + (j + 4) * kc;
      index_t i = 0;
      for (; i < rows48; i += 48) kernel_rx8<3>(kc, lhs + i * kc, b0, b1, alpha, res + j * ld + i, ld);
      if (rows32 > 0) kernel_rx8<2>(kc, lhs + i * kc, b0, b1, alpha, res + j * ld + i, ld), i += 32;
      for (; i < tiled_rows; i += 16) kernel_rx8<1>(kc, lhs + i * kc, b0, b1, alpha, res + j * ld + i, ld);
    }
  }
#endif
  // Eigen packs its panels (rows as above, columns by 4) contiguously, so the edges are
  // sub-blocks that start at a panel boundary.
  const ResMapper<T> out(res, ld);
  if (tiled_cols < cols && tiled_rows > 0)
    eigen(out.getSubMapper(0, tiled_cols), lhs, rhs + tiled_cols * kc, tiled_rows, kc,
          cols - tiled_cols, alpha);
  if (tiled_rows < rows)
    eigen(out.getSubMapper(tiled_rows, 0), lhs + tiled_rows * kc, rhs, rows - tiled_rows, kc,
          cols, alpha);
}

// Column-major res(rows, cols) += alpha * lhs(rows, depth) * rhs(depth, cols) on one thread,
// lhs and rhs stored in the given orders. The packed blocks live in thread_local buffers.
template <class T, int LhsOrder, int RhsOrder>
void serial_product(index_t rows, index_t cols, index_t depth, T alpha, const T* lhs_data,
                    index_t lhs_stride, const T* rhs_data, index_t rhs_stride, T* res,
                    index_t ld) {
  using Traits = ei::gebp_traits<T, T>;
  using LhsMapper = ei::const_blas_data_mapper<T, index_t, LhsOrder>;
  using RhsMapper = ei::const_blas_data_mapper<T, index_t, RhsOrder>;
  ei::gemm_pack_lhs<T, index_t, LhsMapper, Traits::mr, Traits::LhsProgress,
                    typename Traits::LhsPacket4Packing, LhsOrder>
      pack_lhs;
  ei::gemm_pack_rhs<T, index_t, RhsMapper, Traits::nr, RhsOrder> pack_rhs;

  const BlockSizes b = block_sizes<T>(rows, cols, depth);
  ThreadScratch& space = thread_scratch();
  T* packed_lhs = space.lhs.get<T>(std::max(b.mc * b.kc, kMaxLhs<T>));
  T* packed_rhs = space.rhs.get<T>(std::max(b.kc * b.nc, kMaxRhs<T>));
  const LhsMapper lhs(lhs_data, lhs_stride);
  const RhsMapper rhs(rhs_data, rhs_stride);

  for (index_t j = 0; j < cols; j += b.nc) {
    const index_t nc = std::min(b.nc, cols - j);
    for (index_t k = 0; k < depth; k += b.kc) {
      const index_t kc = std::min(b.kc, depth - k);
      pack_rhs(packed_rhs, rhs.getSubMapper(k, j), kc, nc);
      for (index_t i = 0; i < rows; i += b.mc) {
        const index_t mc = std::min(b.mc, rows - i);
        pack_lhs(packed_lhs, lhs.getSubMapper(i, k), kc, mc);
        block_kernel(res + j * ld + i, ld, packed_lhs, packed_rhs, mc, kc, nc, alpha);
      }
    }
  }
}

// The arguments of one row-major GEMM call.
template <class T>
struct GemmArgs {
  Trans ta, tb;
  index_t M, N, K;
  T alpha;
  const T* A;
  index_t lda;
  const T* B;
  index_t ldb;
  T beta;
  T* C;
  index_t ldc;
};

// C[m0:m1, n0:n1] = alpha * op(A)[m0:m1, :] * op(B)[:, n0:n1] + beta * C[m0:m1, n0:n1], on
// the calling thread. Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: Eigen's
// lhs is our B, its rhs our A, and a transposed operand is the same memory read in the
// other storage order, so nothing is copied beyond Eigen's packing.
template <class T>
void gemm_block(const GemmArgs<T>& g, index_t m0, index_t m1, index_t n0, index_t n1) {
  const index_t rows = n1 - n0, cols = m1 - m0;
  if (rows <= 0 || cols <= 0) return;
  T* C = g.C + m0 * g.ldc + n0;
  for (index_t i = 0; i < cols; ++i) {
    T* c = C + i * g.ldc;
    if (g.beta == T(0))
      std::fill(c, c + rows, T(0));
    else if (g.beta != T(1))
      for (index_t j = 0; j < rows; ++j) c[j] *= g.beta;
  }
  if (g.K == 0 || g.alpha == T(0)) return;

  const bool ta = g.ta == Trans::Yes, tb = g.tb == Trans::Yes;
  const T* lhs = tb ? g.B + n0 * g.ldb : g.B + n0;
  const T* rhs = ta ? g.A + m0 : g.A + m0 * g.lda;
  const auto run = [&]<int LhsOrder, int RhsOrder>() {
    serial_product<T, LhsOrder, RhsOrder>(rows, cols, g.K, g.alpha, lhs, g.ldb, rhs, g.lda, C,
                                          g.ldc);
  };
  if (!tb && !ta) run.template operator()<ColMajor, ColMajor>();
  if (!tb && ta) run.template operator()<ColMajor, RowMajor>();
  if (tb && !ta) run.template operator()<RowMajor, ColMajor>();
  if (tb && ta) run.template operator()<RowMajor, RowMajor>();
}

// Adds one call of `batch` (M, N, K) products to counters().
inline void count_gemm(index_t M, index_t N, index_t K, index_t batch) {
  KernelCounters& c = counters();
  c.gemm_calls.fetch_add(1, std::memory_order_relaxed);
  c.gemm_flops.fetch_add(2 * M * N * K * batch, std::memory_order_relaxed);
}

// Products below this many multiply-adds run on one thread: the fork costs more than it saves.
inline constexpr double kParallelMinWork = 64.0 * 64.0 * 64.0;

// The number of threads worth using for an (M, N, K) product: 1 inside a parallel region.
inline int gemm_threads(index_t M, index_t N, index_t K) {
  if (omp_in_parallel()) return 1;
  const double work = double(M) * double(N) * double(K);
  return work < kParallelMinWork ? 1 : num_threads();
}

// The start of range `i` when [0, n) is cut into `parts` ranges whose inner boundaries are
// multiples of `align` (range i is [split_point(i), split_point(i + 1))).
inline index_t split_point(index_t n, int parts, int i, index_t align) {
  const index_t units = (n + align - 1) / align;
  return std::min(n, units * i / parts * align);
}

// The whole product of `g` on `threads` threads, one output panel each.
template <class T>
void gemm_parallel(const GemmArgs<T>& g, int threads) {
  if (threads <= 1) {
    gemm_block(g, 0, g.M, 0, g.N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int parts = omp_get_num_threads(), t = omp_get_thread_num();
    // Every thread packs the whole operand that spans its panel: splitting along N
    // duplicates the packing of op(A) (M x K), splitting along M that of op(B) (K x N).
    if (g.N >= g.M)
      gemm_block(g, 0, g.M, split_point(g.N, parts, t, kTileRows<T>),
                 split_point(g.N, parts, t + 1, kTileRows<T>));
    else
      gemm_block(g, split_point(g.M, parts, t, kTileCols<T>),
                 split_point(g.M, parts, t + 1, kTileCols<T>), 0, g.N);
  }
}

}  // namespace detail

// Row-major GEMM: C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C.
// A is stored (M,K) if ta == No, (K,M) if Yes; likewise B is stored (K,N) or (N,K).
// lda, ldb, ldc are the row strides (in elements) of A, B, C as stored.
// Requires: M, N, K >= 0; each ld >= the stored row length; C does not overlap A or B.
// Ensures: beta == 0 overwrites C (NaN in C is not propagated); alpha == 0 or K == 0 gives
//          C = beta * C without reading A or B. Runs on num_threads() threads (on the calling
//          thread alone inside an OpenMP parallel region or for small products). Once a
//          thread has run a product, it runs every later one with no heap allocation (with our
//          AVX-512 kernel; with Eigen's, every product of a shape it has run). Counts one call
//          and 2*M*N*K flops in counters().
template <class T>
void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  detail::count_gemm(M, N, K, 1);
  if (M <= 0 || N <= 0) return;
  const detail::GemmArgs<T> g{ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  detail::gemm_parallel(g, detail::gemm_threads(M, N, K));
}

// `batch` independent GEMMs, as gemm(); matrix b of A, B and C starts at A + b * strideA,
// B + b * strideB and C + b * strideC. With at least as many matrices as threads, each
// thread computes whole GEMMs; otherwise each GEMM is split across the threads.
// Requires: batch >= 0; the C matrices overlap neither each other nor any A or B.
// Ensures: counts one call and 2*M*N*K*batch flops in counters().
template <class T>
void gemm_batched(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A,
                  index_t lda, index_t strideA, const T* B, index_t ldb, index_t strideB, T beta,
                  T* C, index_t ldc, index_t strideC, index_t batch) {
  detail::count_gemm(M, N, K, batch);
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const auto args = [&](index_t b) {
    return detail::GemmArgs<T>{ta, tb, M, N, K, alpha, A + b * strideA, lda,
                               B + b * strideB, ldb, beta, C + b * strideC, ldc};
  };
  const int threads = detail::gemm_threads(M, N, K * batch);
  if (threads > 1 && batch >= threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (index_t b = 0; b < batch; ++b) detail::gemm_block(args(b), 0, M, 0, N);
  } else {
    for (index_t b = 0; b < batch; ++b)
      detail::gemm_parallel(args(b), detail::gemm_threads(M, N, K));
  }
}

}  // namespace deepprompt::cpu

// --- under the device tag (backend/dispatch.hpp): gemm(Cpu{}, ...) and gemm_batched(Cpu{}, ...)
// forward to the functions above.
namespace deepprompt {

template <class... A>
void gemm(Cpu, A&&... a) {
  cpu::gemm(std::forward<A>(a)...);
}
template <class... A>
void gemm_batched(Cpu, A&&... a) {
  cpu::gemm_batched(std::forward<A>(a)...);
}

}  // namespace deepprompt
