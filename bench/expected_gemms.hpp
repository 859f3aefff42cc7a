#pragma once
// The GEMMs a BERT training step must run (deepprompt-bench-peft checks the kernel counters
// against them): from the shapes and from what needs a gradient, following ops/linear.hpp and
// backend/cpu/attention_kernels.hpp (which GEMM runs when). `o` has the fields of
// bench_common.hpp's options plus unpadded and prefix_dropout.
#include "bench_common.hpp"

namespace bench {

/// A training step's GEMMs by phase, and the backward calls by kind.
struct Expected {
  Gemms forward, backward;
  Gemms frozen_weight_grads;  // the weight-gradient GEMMs of frozen matrices (skipped)
  long long frozen_matrices = 0;
  // the backward calls by kind
  long long linear_input_grads = 0, linear_weight_grads = 0, attention = 0;
};

template <class O>
Expected expected_gemms(const O& o, bool backbone_trainable, index_t P) {
  const long long B = o.batch, C = o.hidden, H = o.heads, D = C / H, F = o.ffn, N = o.labels;
  // the sequences the layers run: the real lengths (unpadded) or B rows of seq tokens
  std::vector<long long> seqs(static_cast<std::size_t>(B), o.seq);
  if (o.unpadded) {
    const Batch b = make_batch(o);
    std::copy(b.lengths.begin(), b.lengths.end(), seqs.begin());
  }
  long long rows = 0;
  for (long long n : seqs) rows += n;
  Expected e;
  auto add = [](Gemms& g, long long M, long long Nn, long long K) {
    g.calls += 1;
    g.flops += 2 * M * Nn * K;
  };
  // a Linear (out, in) on `r` rows: forward, then dX / dW as needed
  auto linear = [&](long long r, long long out, long long in, bool x_grad, bool trainable) {
    add(e.forward, r, out, in);
    if (x_grad) add(e.backward, r, in, out), ++e.linear_input_grads;
    if (trainable)
      add(e.backward, out, in, r), ++e.linear_weight_grads;
    else
      add(e.frozen_weight_grads, out, in, r), ++e.frozen_matrices;
  };
  auto attn = [&](long long M, long long Nn, long long K) {  // a backward GEMM of the fused attention
    add(e.backward, M, Nn, K);
    ++e.attention;
  };
  const bool prefix_grad = P > 0;  // the prompt is trainable
  for (index_t l = 0; l < o.layers; ++l) {
    // the layer's input needs a gradient if anything before it is trainable
    const bool x_grad = backbone_trainable || (prefix_grad && l > 0);
    for (int m = 0; m < 3; ++m) linear(rows, C, C, x_grad, backbone_trainable);  // query, key, value
    const bool qkv_grad = x_grad || backbone_trainable;
    // fused attention, per (b, h) pair and block of 64 queries
    const bool backward = qkv_grad || prefix_grad;
    // Packed sequences with a prefix shared by the batch: the prefix's part runs as GEMMs per
    // head over all rows (backend/cpu/attention_kernels.hpp, panels), the blocks do the rest.
    const bool panels = o.unpadded && P > 0 && o.prefix_dropout == 0;
    if (panels) {
      for (long long h = 0; h < H; ++h) {
        add(e.forward, rows, P, D);  // prefix scores
        add(e.forward, rows, D, P);  // probabilities x prefix values
        if (backward) {
          attn(rows, P, D);  // prefix scores again
          attn(rows, P, D);  // dO x prefix values^T (dq, dk or the prefix keys need it)
          if (prefix_grad) attn(P, D, rows);  // d prefix values
          if (qkv_grad) attn(rows, D, P);     // dq's prefix part
          if (prefix_grad) attn(P, D, rows);  // d prefix keys
        }
      }
    }
    for (long long pair = 0; pair < B * H; ++pair) {
      const long long T = seqs[static_cast<std::size_t>(pair / H)];
      for (long long i0 = 0; i0 < T; i0 += 64) {
        const long long r = std::min<long long>(64, T - i0);
        if (panels) {
          add(e.forward, r, T, D);  // scores on the real keys
          add(e.forward, r, D, T);  // probabilities x values
          if (!backward) continue;
          attn(r, T, D);                // recomputed scores
          attn(r, T, D);                // dO V^T
          if (qkv_grad) attn(T, D, r);  // dv
          if (qkv_grad) attn(r, D, T);  // dq
          if (qkv_grad) attn(T, D, r);  // dk
          continue;
        }
        if (P > 0) add(e.forward, r, P, D);  // scores on the prefix keys
        add(e.forward, r, T, D);             // scores on the real keys
        add(e.forward, r, D, P);             // probabilities x prefix values (called with K = 0 too)
        add(e.forward, r, D, T);             // probabilities x values
        if (!backward) continue;
        if (P > 0) attn(r, P, D);  // recomputed scores
        attn(r, T, D);
        // dO V'^T (needed for dq, dk or the prefix keys' gradient)
        if (P > 0) attn(r, P, D);
        attn(r, T, D);
        if (prefix_grad && P > 0) attn(P, D, r);  // d prefix values
        if (qkv_grad) attn(T, D, r);               // dv
        if (qkv_grad) {                            // dq
          if (P > 0) attn(r, D, P);
          attn(r, D, T);
        }
        if (prefix_grad && P > 0) attn(P, D, r);  // d prefix keys
        if (qkv_grad) attn(T, D, r);               // dk
      }
    }
    const bool ctx_grad = backward;
    linear(rows, C, C, ctx_grad, backbone_trainable);  // attention.output.dense
    linear(rows, F, C, ctx_grad, backbone_trainable);  // intermediate.dense
    linear(rows, C, F, ctx_grad, backbone_trainable);  // output.dense
  }
  linear(B, C, C, true, backbone_trainable);  // pooler.dense (its input needs a gradient)
  linear(B, N, C, true, true);                // the classifier head (trainable)
  return e;
}

json check_json(const Gemms& measured, const Gemms& expected) {
  return {{"measured", gemms_json(measured)},
          {"expected", gemms_json(expected)},
          {"measured_flops", measured.flops},
          {"expected_flops", expected.flops},
          {"match", measured == expected}};
}

}  // namespace bench
