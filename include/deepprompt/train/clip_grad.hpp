#pragma once
// clip_grad_norm: torch.nn.utils.clip_grad_norm_ over ParamRefs (frozen ones are skipped).
//
// The total norm is that of all gradients seen as one vector, accumulated in double (torch
// accumulates in float: the two agree to about 1 ulp of T) and rounded to T. The factor is then
// computed in T exactly as torch does, (1 / (total + 1e-6)) * max_norm (Tensor.__rtruediv__ is
// reciprocal-then-multiply), and the gradients are multiplied by it only when it is below 1.
//
// Non-finite total norm (a NaN or an infinity in some gradient): NOTHING is clipped and the norm
// is returned, so that the caller can skip the step (as AMP's GradScaler does). This differs
// from torch 1.13 with error_if_nonfinite=False, which multiplies the gradients by the
// non-finite factor anyway (all NaN for a NaN norm; 0, and NaN where a gradient is infinite,
// for an infinite one).
//
// The sums are the same bits at any thread count: large gradients are cut into a fixed number
// of blocks whose partial sums are added in order.
//
// Device: with ParamRef<T, D>, each gradient's partial (sum of |g|^p in double, or max |g|) comes
// from the backend's grad_norm_partial(D, g, n, p) (one fixed-order reduction per gradient), the
// factor is computed here, and the gradients are scaled by the backend's scale(D, ...).
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "../backend/cpu/simd.hpp"
#include "param_ref.hpp"

namespace deepprompt {

namespace detail {

// Sum of |x|^2 (kind 2), |x| (kind 1) or |x|^p (kind 0) over x[0, n), in double.
template <class T>
double sum_pow_serial(const T* x, index_t n, int kind, double p) {
  double s = 0;
  if (kind == 2) {
#pragma omp simd reduction(+ : s)
    for (index_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  } else if (kind == 1) {
#pragma omp simd reduction(+ : s)
    for (index_t i = 0; i < n; ++i) s += std::abs(static_cast<double>(x[i]));
  } else {
    for (index_t i = 0; i < n; ++i) s += std::pow(std::abs(static_cast<double>(x[i])), p);
  }
  return s;
}

// max |x| over x[0, n), NaN if any element is NaN; 0 when n == 0.
template <class T>
double max_abs_serial(const T* x, index_t n) {
  double m = 0;
  for (index_t i = 0; i < n; ++i) {
    const double a = std::abs(static_cast<double>(x[i]));
    if (a > m || a != a) m = a;
    if (m != m) break;
  }
  return m;
}

// reduce(x + lo, hi - lo) over a fixed partition of [0, n) into kBlocks blocks, combined in order.
template <class T, class Reduce, class Combine>
double blocked_reduce(const T* x, index_t n, Reduce reduce, Combine combine) {
  if (n < cpu::simd::parallel_threshold) return reduce(x, n);
  constexpr int kBlocks = 64;
  double part[kBlocks];
  const index_t per = (n + kBlocks - 1) / kBlocks;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < kBlocks; ++b) {
    const index_t lo = std::min(n, b * per), hi = std::min(n, lo + per);
    part[b] = reduce(x + lo, hi - lo);
  }
  double r = part[0];
  for (int b = 1; b < kBlocks; ++b) r = combine(r, part[b]);
  return r;
}

// max(a, b), NaN if either is NaN.
inline double combine_max(double a, double b) {
  if (a != a || b != b) return std::numeric_limits<double>::quiet_NaN();
  return a > b ? a : b;
}

}  // namespace detail

/// Scales the gradients of `params` in place so that their total `norm_type`-norm is at most
/// `max_norm` and returns the total norm before clipping (0 without trainable parameters).
/// norm_type: any p > 0, or std::numeric_limits<double>::infinity() for the largest |g|.
/// A non-finite total norm clips nothing (see the header comment).
template <class T, DevicePolicy D>
T clip_grad_norm(std::span<const ParamRef<T, D>> params, double max_norm, double norm_type = 2.0) {
  if (!(norm_type > 0))
    throw Error(detail::cat("clip_grad_norm: invalid norm_type ", norm_type, " (needs p > 0 or inf)"));
  const bool inf_norm = std::isinf(norm_type);
  const int kind = norm_type == 2 ? 2 : norm_type == 1 ? 1 : 0;
  double acc = 0;
  for (const auto& p : params) {
    if (p.grad == nullptr) continue;
    if constexpr (!std::is_same_v<D, Cpu>) {
      const double part = grad_norm_partial(D{}, static_cast<const T*>(p.grad), p.size, norm_type);
      acc = inf_norm ? detail::combine_max(acc, part) : acc + part;
    } else if (inf_norm) {
      acc = detail::combine_max(acc, detail::blocked_reduce(p.grad, p.size, detail::max_abs_serial<T>,
                                                            detail::combine_max));
    } else {
      acc += detail::blocked_reduce(
          p.grad, p.size, [&](const T* x, index_t n) { return detail::sum_pow_serial(x, n, kind, norm_type); },
          [](double a, double b) { return a + b; });
    }
  }
  const double norm = inf_norm || kind == 1 ? acc : kind == 2 ? std::sqrt(acc) : std::pow(acc, 1 / norm_type);
  const T total = static_cast<T>(norm);
  if (!std::isfinite(total)) return total;
  const T coef = (T(1) / (total + T(1e-6))) * T(max_norm);
  if (coef < T(1)) {
    for (const auto& p : params) {
      if (p.grad == nullptr) continue;
      if constexpr (std::is_same_v<D, Cpu>) {
        const cpu::simd::batch<T> c(coef);
        cpu::simd::map(p.size, p.grad, [c](cpu::simd::batch<T> g) { return g * c; }, p.grad);
      } else {
        scale(D{}, static_cast<const T*>(p.grad), coef, p.grad, p.size);
      }
    }
  }
  return total;
}

template <class T, DevicePolicy D>
T clip_grad_norm(const std::vector<ParamRef<T, D>>& params, double max_norm, double norm_type = 2.0) {
  return clip_grad_norm(std::span<const ParamRef<T, D>>(params), max_norm, norm_type);
}

}  // namespace deepprompt
