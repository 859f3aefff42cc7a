#pragma once
// SIMD and threading helpers shared by the CPU kernels (elementwise.hpp, rowwise.hpp).
//
// One xsimd batch of the architecture the code is compiled for (-march=native picks
// AVX-512 here: 16 floats, 8 doubles). The tail of a range is processed as ONE padded batch
// loaded through a small stack buffer, not as a scalar loop: every element then goes through
// the same instructions, so a result never depends on n, on the chunking, or on where an
// element falls in a row (and each operation is written once).
//
// Threading: work below `parallel_threshold` elements runs on the calling thread; larger
// work is split with `#pragma omp parallel for schedule(static)`. Inside an enclosing
// parallel region OpenMP runs the inner loop on one thread (nested parallelism is off).

// GCC 12 flags its own AVX-512 intrinsics (`__m512 __Y = __Y;` in avx512fintrin.h) with
// -W(maybe-)uninitialized once xsimd's math is inlined (GCC bug 105593, fixed in GCC 13).
// The state has to be in force where the intrinsics headers are parsed.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop
#else
#include <xsimd/xsimd.hpp>
#endif

#include <algorithm>
#include <cstddef>

namespace deepprompt::cpu {

using index_t = std::ptrdiff_t;

namespace simd {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
inline constexpr index_t lanes = static_cast<index_t>(batch<T>::size);

// Work (elements, or rows * cols) below which a kernel stays on the calling thread.
inline constexpr index_t parallel_threshold = index_t{1} << 15;

// Elementwise ranges are handed to threads in chunks of this many elements; a multiple of
// every lane count, so only the last chunk has a tail.
inline constexpr index_t chunk = index_t{1} << 12;

// requires: 0 <= k <= lanes<T>, p[0, k) readable.
// ensures: lanes [0, k) hold p[0, k), the other lanes hold `fill`.
template <class T>
batch<T> load_n(const T* p, index_t k, T fill = T(1)) noexcept {
  if (k == lanes<T>) return batch<T>::load_unaligned(p);
  alignas(batch<T>::arch_type::alignment()) T buf[batch<T>::size];
  for (index_t i = 0; i < lanes<T>; ++i) buf[i] = i < k ? p[i] : fill;
  return batch<T>::load_aligned(buf);
}

// requires: 0 <= k <= lanes<T>, p[0, k) writable.  ensures: p[0, k) = lanes [0, k) of v.
template <class T>
void store_n(T* p, const batch<T>& v, index_t k) noexcept {
  if (k == lanes<T>) return v.store_unaligned(p);
  alignas(batch<T>::arch_type::alignment()) T buf[batch<T>::size];
  v.store_aligned(buf);
  std::copy_n(buf, k, p);
}

// Largest lane of v.
template <class T>
T hmax(const batch<T>& v) noexcept {
  alignas(batch<T>::arch_type::alignment()) T buf[batch<T>::size];
  v.store_aligned(buf);
  return *std::max_element(buf, buf + batch<T>::size);
}

// e^x that is finite wherever the true value is. xsimd::exp returns inf a little below the
// overflow point (x > 88.376 for float, the true limit is 88.72; 709.44 vs 709.78 for double)
// and 0 below the smallest normal result; lanes past `edge` use (e^(x/2))^2 instead, which
// costs a second exp only for batches that hold such lanes.
template <class T>
batch<T> exp_full_range(const batch<T>& x) noexcept {
  constexpr T edge = sizeof(T) == 4 ? T(87) : T(708);
  batch<T> y = xsimd::exp(x);
  const auto far = xsimd::abs(x) > batch<T>(edge);
  if (xsimd::any(far)) {
    const batch<T> half = xsimd::exp(x * batch<T>(T(0.5)));
    y = xsimd::select(far, half * half, y);
  }
  return y;
}

// y[i] = op(in[i]...) for i in [0, n); `op` maps batches to a batch. The tail is one batch
// padded with ones. y may alias any input (each batch is loaded before it is stored).
template <class T, class Op, class... In>
void apply(index_t n, T* y, Op op, const In*... in) noexcept {
  index_t i = 0;
  for (; i + lanes<T> <= n; i += lanes<T>)
    op(batch<T>::load_unaligned(in + i)...).store_unaligned(y + i);
  if (i < n) store_n(y + i, op(load_n(in + i, n - i)...), n - i);
}

// Calls f(begin, end) on disjoint ranges covering [0, n): once on this thread when n is
// small, otherwise chunk by chunk on the OpenMP team. f must be safe on disjoint ranges.
template <class F>
void for_ranges(index_t n, F&& f) {
  if (n < parallel_threshold) {
    f(index_t{0}, n);
    return;
  }
  const index_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (index_t c = 0; c < chunks; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
}

// apply() over [0, n), threaded when n is large.
template <class T, class Op, class... In>
void map(index_t n, T* y, Op op, const In*... in) {
  for_ranges(n, [&](index_t b, index_t e) { apply(e - b, y + b, op, (in + b)...); });
}

// Calls f(r) for every row r in [0, rows); threaded over rows when rows * cols is large.
template <class F>
void for_rows(index_t rows, index_t cols, F&& f) {
  if (rows < 2 || rows * cols < parallel_threshold) {
    for (index_t r = 0; r < rows; ++r) f(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (index_t r = 0; r < rows; ++r) f(r);
}

// Calls f(c, k) for every block of k <= lanes<T> consecutive columns starting at column c;
// threaded over blocks when rows * cols is large. A column reduction done inside f (over the
// rows in order) is thread-safe and gives the same bits at any thread count.
template <class T, class F>
void for_column_blocks(index_t rows, index_t cols, F&& f) {
  const index_t blocks = (cols + lanes<T> - 1) / lanes<T>;
  auto block = [&](index_t b) { f(b * lanes<T>, std::min(lanes<T>, cols - b * lanes<T>)); };
  if (blocks < 2 || rows * cols < parallel_threshold) {
    for (index_t b = 0; b < blocks; ++b) block(b);
    return;
  }
#pragma omp parallel for schedule(static)
  for (index_t b = 0; b < blocks; ++b) block(b);
}

}  // namespace simd
}  // namespace deepprompt::cpu
