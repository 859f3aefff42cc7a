#pragma once
// The plain reference attention of tests/unit/test_ops_attention.cpp (concatenated keys, scores,
// additive mask and bias, causal, softmax, dropout, weighted sum; double, explicit loops) and
// the cases it runs: inputs, masks, options.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "deepprompt/ops/attention.hpp"
#include "testing.hpp"

namespace dp_test::attention {

namespace dp = deepprompt;
using dp::index_t;
using dp::Shape;
using dp::Tensor;
using dp::Var;
using dp_test::random_tensor;


// ---------------------------------------------------------------------------------------------
// The plain reference: concatenated keys, scores, additive mask and bias, causal, softmax,
// dropout, weighted sum, all in double with explicit loops.

struct Ref {
  index_t P = 0;
  bool causal = false;
  double scale = 0;  // 0: 1/sqrt(D)
  double dropout = 0;
  std::uint64_t seed = 0, first = 0;
};

// pk, pv: (B, H, P, D) or empty; mask: additive (B, P + Tk) or empty; bias: (1 or B, H, Tq, P + Tk)
// or empty.
template <class T>
Tensor<double, 4> reference(const Tensor<T, 4>& q, const Tensor<T, 4>& k, const Tensor<T, 4>& v, const Tensor<T, 4>& pk,
                            const Tensor<T, 4>& pv, const Tensor<T, 2>& mask, const Tensor<T, 4>& bias, const Ref& r) {
  const index_t B = q.extent(0), H = q.extent(1), Tq = q.extent(2), D = q.extent(3), Tk = k.extent(2), P = r.P,
                W = P + Tk;
  const double scale = r.scale != 0 ? r.scale : 1.0 / std::sqrt(double(D));
  Tensor<double, 4> out = Tensor<double, 4>::zeros({B, H, Tq, D});
  dp::Generator gen(r.seed);
  std::vector<double> s(W);
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < Tq; ++i) {
        auto key = [&](index_t j, index_t d) { return j < P ? double(pk(b, h, j, d)) : double(k(b, h, j - P, d)); };
        auto val = [&](index_t j, index_t d) { return j < P ? double(pv(b, h, j, d)) : double(v(b, h, j - P, d)); };
        double m = -std::numeric_limits<double>::infinity();
        for (index_t j = 0; j < W; ++j) {
          double x = 0;
          for (index_t d = 0; d < D; ++d) x += double(q(b, h, i, d)) * key(j, d);
          x *= scale;
          // the additive terms are added in T, as the library (and PyTorch) does
          T xt = T(x);
          if (!bias.empty()) xt += bias(bias.extent(0) == 1 ? 0 : b, h, i, j);
          if (!mask.empty()) xt += mask(b, j);
          x = double(xt);
          if (r.causal && j >= P && j - P > i + Tk - Tq) x = -std::numeric_limits<double>::infinity();
          s[j] = x;
          m = std::max(m, x);
        }
        if (m == -std::numeric_limits<double>::infinity()) continue;  // nothing visible: zeros
        double sum = 0;
        for (index_t j = 0; j < W; ++j) sum += s[j] = std::exp(s[j] - m);
        for (index_t j = 0; j < W; ++j) {
          double p = s[j] / sum;
          if (r.dropout > 0) {
            const std::uint64_t word = r.first + std::uint64_t(((b * H + h) * Tq + i) * W + j);
            const auto threshold = std::uint64_t(std::ceil(static_cast<long double>(r.dropout) * 4294967296.0L));
            p = gen.word_at(word) >= threshold ? p * (T(1) / (T(1) - T(r.dropout))) : 0.0;
          }
          for (index_t d = 0; d < D; ++d) out(b, h, i, d) += p * val(j, d);
        }
      }
  return out;
}

// (H, P, D) -> (B, H, P, D)
template <class T>
Tensor<T, 4> broadcast_prefix(const Tensor<T, 3>& p, index_t B) {
  Tensor<T, 4> out({B, p.extent(0), p.extent(1), p.extent(2)});
  for (index_t b = 0; b < B; ++b) std::copy(p.begin(), p.end(), out.data() + b * p.size());
  return out;
}

// (B, H, P, D) and (B, H, T, D) -> (B, H, P + T, D)
template <class T>
Tensor<T, 4> concat_keys(const Tensor<T, 4>& p, const Tensor<T, 4>& k) {
  const index_t B = k.extent(0), H = k.extent(1), P = p.extent(2), Tk = k.extent(2), D = k.extent(3);
  Tensor<T, 4> out({B, H, P + Tk, D});
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) {
      for (index_t j = 0; j < P; ++j)
        for (index_t d = 0; d < D; ++d) out(b, h, j, d) = p(b, h, j, d);
      for (index_t j = 0; j < Tk; ++j)
        for (index_t d = 0; d < D; ++d) out(b, h, P + j, d) = k(b, h, j, d);
    }
  return out;
}

// (Bb, H, Tq, Tk) -> (Bb, H, Tq, P + Tk) with zeros in front
template <class T>
Tensor<T, 4> pad_bias(const Tensor<T, 4>& bias, index_t P) {
  const auto s = bias.shape();
  Tensor<T, 4> out = Tensor<T, 4>::zeros({s[0], s[1], s[2], P + s[3]});
  for (index_t a = 0; a < s[0]; ++a)
    for (index_t h = 0; h < s[1]; ++h)
      for (index_t i = 0; i < s[2]; ++i)
        for (index_t j = 0; j < s[3]; ++j) out(a, h, i, P + j) = bias(a, h, i, j);
  return out;
}

// 0/1 mask (B, Tk): example b has b % Tk padded keys at the end; `pad_row`: the last one has none kept.
inline Tensor<std::int64_t, 2> padding(index_t B, index_t Tk, bool pad_row) {
  auto m = Tensor<std::int64_t, 2>::full({B, Tk}, 1);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = Tk - b % Tk; t < Tk; ++t) m(b, t) = 0;
  if (pad_row)
    for (index_t t = 0; t < Tk; ++t) m(B - 1, t) = 0;
  return m;
}

struct Case {
  index_t B, H, Tq, Tk, D, P = 0;
  bool shared = true;      // prefix form
  bool mask = false;
  bool pad_row = false;    // a fully padded example
  bool mask_full = false;  // mask given as (B, P + Tk)
  bool causal = false;
  int bias = 0;            // 0 none, 1: (1, H, Tq, P+Tk), 2: (B, H, Tq, P+Tk), 3: (1, H, Tq, Tk)
  double scale = 0;
  double dropout = 0;
};

template <class T>
struct Inputs {
  Tensor<T, 4> q, k, v, pk4, pv4, bias;  // pk4, pv4: (B, H, P, D) (broadcast in the shared form)
  Tensor<T, 3> pk3, pv3;                 // the shared form
  Tensor<T, 2> mask;                     // as given to the op
  Tensor<T, 2> ref_mask;                 // (B, P + Tk) for the reference
  Tensor<T, 4> ref_bias;                 // (., H, Tq, P + Tk)
};

template <class T>
Inputs<T> make_inputs(const Case& c, std::uint64_t seed) {
  Inputs<T> in;
  in.q = random_tensor<T, 4>({c.B, c.H, c.Tq, c.D}, seed, -1.5, 1.5);
  in.k = random_tensor<T, 4>({c.B, c.H, c.Tk, c.D}, seed + 1, -1.5, 1.5);
  in.v = random_tensor<T, 4>({c.B, c.H, c.Tk, c.D}, seed + 2);
  if (c.P > 0) {
    if (c.shared) {
      in.pk3 = random_tensor<T, 3>({c.H, c.P, c.D}, seed + 3, -1.5, 1.5);
      in.pv3 = random_tensor<T, 3>({c.H, c.P, c.D}, seed + 4);
      in.pk4 = broadcast_prefix(in.pk3, c.B);
      in.pv4 = broadcast_prefix(in.pv3, c.B);
    } else {
      in.pk4 = random_tensor<T, 4>({c.B, c.H, c.P, c.D}, seed + 3, -1.5, 1.5);
      in.pv4 = random_tensor<T, 4>({c.B, c.H, c.P, c.D}, seed + 4);
    }
  }
  if (c.mask) {
    const auto m01 = padding(c.B, c.Tk, c.pad_row);
    in.ref_mask = dp::attention_mask<T>(m01, c.P);
    in.mask = c.mask_full ? in.ref_mask : dp::attention_mask<T>(m01);
  }
  if (c.bias) {
    const index_t Bb = c.bias == 2 ? c.B : 1, cols = c.bias == 3 ? c.Tk : c.P + c.Tk;
    in.bias = random_tensor<T, 4>({Bb, c.H, c.Tq, cols}, seed + 5, -2, 2);
    in.ref_bias = c.bias == 3 ? pad_bias(in.bias, c.P) : in.bias;
  }
  return in;
}

template <class T>
dp::AttentionOptions<T> options(const Case& c, const Inputs<T>& in) {
  dp::AttentionOptions<T> o;
  o.mask = in.mask;
  o.causal = c.causal;
  if (c.scale != 0) o.scale = T(c.scale);
  o.dropout = T(c.dropout);
  if (c.P > 0 && c.shared) o.prefix_k = Var<T, 3>(in.pk3), o.prefix_v = Var<T, 3>(in.pv3);
  if (c.P > 0 && !c.shared) o.prefix_k_batch = Var<T, 4>(in.pk4), o.prefix_v_batch = Var<T, 4>(in.pv4);
  if (c.bias) o.bias = Var<T, 4>(in.bias);
  return o;
}

Ref ref_of(const Case& c, std::uint64_t seed = 0) { return {c.P, c.causal, c.scale, c.dropout, seed, 0}; }

const Case kForwardCases[] = {
    {2, 3, 5, 5, 8},                                                           // plain
    {2, 2, 3, 7, 4},                                                           // Tq < Tk
    {1, 2, 9, 4, 16},                                                          // Tq > Tk
    {3, 2, 4, 6, 8, 0, true, true},                                            // mask
    {3, 2, 4, 6, 8, 0, true, true, true},                                      // a fully padded example
    {3, 2, 4, 6, 8, 5, true, true, true},                                      // shared prefix, padded example
    {2, 3, 4, 5, 8, 3, false, true},                                           // per-example prefix
    {2, 2, 4, 5, 8, 3, true, true, false, true},                               // mask given as (B, P + Tk)
    {2, 2, 6, 6, 4, 0, true, false, false, false, true},                       // causal
    {2, 2, 6, 6, 4, 4, true, true, false, false, true},                        // causal + prefix + mask
    {1, 2, 2, 7, 4, 3, true, false, false, false, true},                       // causal, Tq < Tk (KV cache)
    {1, 2, 6, 3, 4, 0, true, false, false, false, true},                       // causal, Tq > Tk: empty rows
    {2, 2, 4, 5, 4, 2, true, true, false, false, false, 1, 1.0},               // T5: bias (1, ...), scale 1
    {2, 2, 4, 5, 4, 2, false, true, false, false, true, 2},                    // bias (B, ...) + causal
    {2, 2, 4, 5, 4, 2, true, false, false, false, false, 3},                   // bias over the real keys only
    {2, 2, 5, 6, 8, 3, true, true, false, false, false, 0, 0, 0.3},            // dropout
    {1, 2, 70, 70, 8, 5, true, false, false, false, true, 1, 0, 0.1},          // two query blocks
    {2, 1, 130, 20, 4, 2, false, true, true, false, false, 0},                 // three query blocks
};

}  // namespace dp_test::attention
