// The fused attention of backend/cuda/attention.cuh against a double reference that draws the
// same dropout words: a shared or per-example key/value prefix, a padding mask over the real keys
// or over prefix and keys, a bias, causal masking with Tq < Tk, dropout; the outputs, the saved
// row statistics and every gradient (accumulated into non-zero outputs). The reference equals
// the CPU kernel (backend/cpu/attention_kernels.hpp) to 4e-7 on these cases (checked once by
// running it against cpu::attention_forward / _backward). Bound: |got - want| <= 1e-5 max(1,
// |want|). Exits 77 (skipped) without a GPU, 1 on any failure.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "check.cuh"
#include "deepprompt/backend/cuda/attention.cuh"
#include "deepprompt/core/rng.hpp"

using namespace cuda_test;

namespace {

// One attention case: B, H, Tq, Tk, P, D; prefix per example; mask over P + Tk columns (else
// Tk); bias (batch extent 1, over Tk); causal; dropout.
struct AttnCase {
  index_t B, H, Tq, Tk, P, D;
  bool per_example, wide_mask, bias, causal;
  float dropout;
};

void attention(const AttnCase& t) {
  const index_t B = t.B, H = t.H, Tq = t.Tq, Tk = t.Tk, P = t.P, D = t.D, W = P + Tk;
  const std::string tag = " (B" + std::to_string(B) + " H" + std::to_string(H) + " Tq" + std::to_string(Tq) + " Tk" +
                          std::to_string(Tk) + " P" + std::to_string(P) + " D" + std::to_string(D) +
                          (t.per_example ? " per-example" : "") + (t.wide_mask ? " mask P+Tk" : "") +
                          (t.bias ? " bias" : "") + (t.causal ? " causal" : "") +
                          (t.dropout > 0 ? " dropout" : "") + ")";
  const index_t npre = (t.per_example ? B : 1) * H * P * D, mcols = t.wide_mask ? W : Tk;
  const auto q = random_floats(B * H * Tq * D, 30, -1, 1), k = random_floats(B * H * Tk * D, 31, -1, 1),
             v = random_floats(B * H * Tk * D, 32, -1, 1), pk = random_floats(npre, 33, -1, 1),
             pv = random_floats(npre, 34, -1, 1), dout = random_floats(B * H * Tq * D, 35, -1, 1),
             bias = random_floats(H * Tq * Tk, 36, -1, 1);
  std::vector<float> mask(static_cast<std::size_t>(B * mcols), 0.0f);
  for (index_t b = 0; b < B; ++b)  // example b: its last b % Tk real keys masked
    for (index_t j = Tk - b % Tk; j < Tk; ++j) mask[b * mcols + (t.wide_mask ? P + j : j)] = -INFINITY;
  Dev<float> dq(q), dk(k), dv(v), dpk(pk), dpv(pv), dmask(mask), dbias(bias), ddout(dout);
  Dev<float> dout_o(static_cast<std::size_t>(B * H * Tq * D)), dstats(static_cast<std::size_t>(B * H * Tq * 2));
  cu::AttentionArgs<float> a;
  a.batch = B, a.heads = H, a.q_len = Tq, a.kv_len = Tk, a.prefix_len = P, a.head_dim = D;
  a.q = dq.p, a.k = dk.p, a.v = dv.p;
  if (P > 0) a.prefix_k = dpk.p, a.prefix_v = dpv.p;
  a.prefix_per_example = t.per_example;
  a.mask = dmask.p, a.mask_cols = mcols;
  if (t.bias) a.bias = dbias.p, a.bias_cols = Tk;
  a.causal = t.causal;
  a.scale = 1.0f / std::sqrt(float(D));
  a.dropout = t.dropout, a.seed = 77, a.first_word = 8;
  cu::attention_forward(a, dout_o.p, dstats.p);
  // gradients accumulate: start from ones
  const std::vector<float> ones_q(q.size(), 1.0f), ones_k(k.size(), 1.0f), ones_p(static_cast<std::size_t>(npre), 1.0f),
      ones_b(bias.size(), 1.0f);
  Dev<float> gq(ones_q), gk(ones_k), gv(ones_k), gpk(ones_p), gpv(ones_p), gb(ones_b);
  cu::AttentionGrads<float> g{gq.p, gk.p, gv.p, P > 0 ? gpk.p : nullptr, P > 0 ? gpv.p : nullptr, t.bias ? gb.p : nullptr};
  cu::attention_backward(a, ddout.p, dstats.p, g);

  // the reference, in double
  const dp::Generator gen(77);
  const auto threshold = static_cast<std::uint64_t>(std::ceil(static_cast<long double>(t.dropout) * 4294967296.0L));
  const double drop_scale = t.dropout > 0 ? 1.0 / (1.0 - t.dropout) : 1.0;
  std::vector<double> out(dout.size()), st(static_cast<std::size_t>(B * H * Tq * 2)), rq(q.size(), 1.0),
      rk(k.size(), 1.0), rv(k.size(), 1.0), rpk(static_cast<std::size_t>(npre), 1.0), rpv(rpk), rb(bias.size(), 1.0);
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) {
      const index_t bh = b * H + h, pre = ((t.per_example ? b * H : 0) + h) * P * D;
      auto key = [&](index_t c) { return c < P ? &pk[pre + c * D] : &k[(bh * Tk + c - P) * D]; };
      auto val = [&](index_t c) { return c < P ? &pv[pre + c * D] : &v[(bh * Tk + c - P) * D]; };
      for (index_t i = 0; i < Tq; ++i) {
        const index_t row = bh * Tq + i;
        const index_t kvis = t.causal ? std::max<index_t>(0, std::min<index_t>(Tk, i + Tk - Tq + 1)) : Tk, n = P + kvis;
        std::vector<double> s(n), p(n), z(n), dp(n);
        double m = -INFINITY;
        for (index_t c = 0; c < n; ++c) {
          double x = 0;
          for (index_t d = 0; d < D; ++d) x += double(q[row * D + d]) * key(c)[d];
          x = x / std::sqrt(double(D)) + (t.wide_mask ? mask[b * mcols + c] : (c >= P ? mask[b * mcols + c - P] : 0.0f));
          if (t.bias && c >= P) x += bias[(h * Tq + i) * Tk + c - P];
          s[c] = x, m = std::fmax(m, x);
        }
        if (std::isinf(m)) {
          st[2 * row] = INFINITY, st[2 * row + 1] = 0;
          continue;  // zero output and gradients
        }
        double sum = 0;
        for (index_t c = 0; c < n; ++c) sum += std::exp(s[c] - m);
        st[2 * row] = m, st[2 * row + 1] = 1 / sum;
        double dsum = 0;
        for (index_t c = 0; c < n; ++c) {
          p[c] = std::exp(s[c] - m) / sum;
          z[c] = t.dropout > 0 ? (gen.word_at(8 + static_cast<std::uint64_t>(row * W + c)) >= threshold ? drop_scale : 0.0) : 1.0;
          double dov = 0;
          for (index_t d = 0; d < D; ++d) {
            out[row * D + d] += p[c] * z[c] * val(c)[d];
            dov += double(dout[row * D + d]) * val(c)[d];
          }
          dp[c] = z[c] * dov, dsum += p[c] * dp[c];
        }
        const double sc = 1 / std::sqrt(double(D));
        for (index_t c = 0; c < n; ++c) {
          const double ds = p[c] * (dp[c] - dsum);
          for (index_t d = 0; d < D; ++d) {
            rq[row * D + d] += sc * ds * key(c)[d];
            const double dkv = sc * ds * q[row * D + d], dvv = p[c] * z[c] * dout[row * D + d];
            if (c < P) rpk[pre + c * D + d] += dkv, rpv[pre + c * D + d] += dvv;
            else rk[(bh * Tk + c - P) * D + d] += dkv, rv[(bh * Tk + c - P) * D + d] += dvv;
          }
          if (t.bias && c >= P) rb[(h * Tq + i) * Tk + c - P] += ds;
        }
      }
    }
  expect_close("attention_forward" + tag, dout_o.host(), out, 1e-5);
  expect_close("attention_forward stats" + tag, dstats.host(), st, 1e-5);
  expect_close("attention_backward dq" + tag, gq.host(), rq, 1e-5);
  expect_close("attention_backward dk" + tag, gk.host(), rk, 1e-5);
  expect_close("attention_backward dv" + tag, gv.host(), rv, 1e-5);
  if (P > 0) {
    expect_close("attention_backward dprefix_k" + tag, gpk.host(), rpk, 1e-5);
    expect_close("attention_backward dprefix_v" + tag, gpv.host(), rpv, 1e-5);
  }
  if (t.bias) expect_close("attention_backward dbias" + tag, gb.host(), rb, 1e-5);
}

}  // namespace

int main() {
  if (cu::device_count() == 0) {
    std::printf("skipped: no CUDA device on this machine (the CUDA attention was compiled, not run)\n");
    return 77;
  }
  try {
    attention({2, 3, 5, 5, 4, 16, false, false, false, false, 0.0f});      // shared prefix, padding mask
    attention({3, 2, 7, 7, 3, 64, true, true, true, false, 0.1f});         // per example, wide mask, bias, dropout
    attention({2, 2, 6, 9, 0, 40, false, false, false, true, 0.0f});       // no prefix, causal, Tq < Tk
    attention({2, 12, 33, 33, 20, 64, false, false, false, false, 0.1f});  // BERT-like heads, more rows than a block
    cu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d failed\n", g_failed ? "FAILED" : "all CUDA attention checks passed", g_failed);
  return g_failed ? 1 : 0;
}
