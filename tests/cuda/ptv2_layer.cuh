#pragma once
// A P-Tuning v2 encoder written with the device-generic ops only: post-LN BERT layers whose
// attention takes a trainable key/value prefix per layer, a token-classification head and the
// cross-entropy loss. The same code runs on Cpu and Cuda (ops.cu compares the two) and times
// the GPU step at BERT shapes (ptv2_step.cu). Weights are random, from fixed seeds.
#include <array>
#include <memory>
#include <type_traits>
#include <vector>

#include "device_ops.cuh"
#include "deepprompt/backend/cuda/linear_bf16.cuh"
#include "deepprompt/ops/activation.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/attention.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/ops/linear.hpp"
#include "deepprompt/ops/norm.hpp"
#include "deepprompt/ops/shape.hpp"

namespace cuda_test {

struct Ptv2Shape {
  index_t layers, hidden, heads, ffn, prefix, labels;
};

/// requires: shape.hidden % shape.heads == 0.
template <class D>
struct Ptv2Encoder {
  template <std::size_t R>
  using P = dp::Parameter<float, R, D>;
  struct Layer {
    P<2> wq, wk, wv, wo, w1, w2;                      // (C, C) x4, (F, C), (C, F)
    P<1> bq, bk, bv, bo, b1, b2, g1, be1, g2, be2;    // (C) or (F)
    P<3> prefix_k, prefix_v;                          // (H, prefix, C / H): what P-Tuning v2 trains
  };
  Ptv2Shape s;
  std::vector<Layer> layers;
  P<2> head_w;  // (labels, C)
  P<1> head_b;  // (labels)
  // per layer, bf16 copies of wq, wk, wv, wo, w1, w2 (empty: the fp32 weights are used)
  std::vector<std::array<std::shared_ptr<const dp::CudaBf16Weight>, 6>> bf16;

  /// Runs the six frozen projections of every layer on bf16 copies of their weights (GPU only).
  void use_bf16()
    requires std::is_same_v<D, dp::Cuda>
  {
    for (const Layer& L : layers) {
      std::array<std::shared_ptr<const dp::CudaBf16Weight>, 6> w;
      const P<2>* src[6] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2};
      for (int i = 0; i < 6; ++i) w[i] = std::make_shared<const dp::CudaBf16Weight>(src[i]->value());
      bf16.push_back(std::move(w));
    }
  }

  /// Weights from fixed seeds; the backbone is frozen unless `train_backbone`.
  Ptv2Encoder(const Ptv2Shape& shape, bool train_backbone) : s(shape) {
    unsigned seed = 100;
    const auto t = [&](auto sh, float scale) { return on<D>(random_tensor(sh, seed++, -scale, scale)); };
    const index_t C = s.hidden, F = s.ffn, Dh = C / s.heads;
    const float wc = 1.0f / std::sqrt(float(C)), wf = 1.0f / std::sqrt(float(F));
    const auto w2d = [&](index_t o, index_t i, float sc) { return P<2>("w", t(Shape2{o, i}, sc), train_backbone); };
    const auto w1d = [&](index_t n, float sc, float at) {
      auto v = random_tensor(dp::Shape<1>{n}, seed++, at - sc, at + sc);
      return P<1>("b", on<D>(v), train_backbone);
    };
    for (index_t l = 0; l < s.layers; ++l) {
      Layer L{w2d(C, C, wc), w2d(C, C, wc), w2d(C, C, wc), w2d(C, C, wc), w2d(F, C, wc), w2d(C, F, wf),
              w1d(C, 0.1f, 0), w1d(C, 0.1f, 0), w1d(C, 0.1f, 0), w1d(C, 0.1f, 0), w1d(F, 0.1f, 0), w1d(C, 0.1f, 0),
              w1d(C, 0.1f, 1), w1d(C, 0.1f, 0), w1d(C, 0.1f, 1), w1d(C, 0.1f, 0),
              P<3>("prefix_k", t(dp::Shape<3>{s.heads, s.prefix, Dh}, 1.0f)),
              P<3>("prefix_v", t(dp::Shape<3>{s.heads, s.prefix, Dh}, 1.0f))};
      layers.push_back(std::move(L));
    }
    head_w = P<2>("head.weight", t(Shape2{s.labels, C}, wc));
    head_b = P<1>("head.bias", on<D>(random_tensor(dp::Shape<1>{s.labels}, seed++, -0.1f, 0.1f)));
  }

  /// The mean token-classification loss of x (B, T, C) under the additive key mask (B, T), with
  /// dropout p on the attention probabilities and after each sublayer (gen advances).
  dp::Var<float, 0, D> loss(dp::Var<float, 3, D> x, const dp::Tensor<float, 2, D>& mask,
                            const dp::Tensor<std::int64_t, 2>& targets, float p, dp::Generator& gen) const {
    const index_t B = x.extent(0), T = x.extent(1), C = s.hidden, H = s.heads;
    const auto heads_first = [&](const dp::Var<float, 3, D>& v) {  // (B, T, C) -> (B, H, T, C / H)
      return dp::permute(dp::reshape(v, dp::Shape<4>{B, T, H, C / H}), {0, 2, 1, 3});
    };
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const Layer& L = layers[l];
      // projection i of layer l: fp32 weights, or their bf16 copies after use_bf16()
      const auto proj = [&](const dp::Var<float, 3, D>& in, const P<2>& w, const P<1>& b, int i) {
        if constexpr (std::is_same_v<D, dp::Cuda>) {
          if (!bf16.empty()) {
            const dp::Var<float, 1, D> bv = b.var();
            return dp::linear_bf16(in, bf16[l][i], &bv);
          }
        }
        return dp::linear(in, w.var(), b.var());
      };
      dp::AttentionOptions<float, D> o;
      o.mask = mask, o.prefix_k = L.prefix_k, o.prefix_v = L.prefix_v, o.dropout = p, o.generator = &gen;
      auto a = dp::scaled_dot_product_attention(heads_first(proj(x, L.wq, L.bq, 0)), heads_first(proj(x, L.wk, L.bk, 1)),
                                                heads_first(proj(x, L.wv, L.bv, 2)), o);
      auto merged = dp::reshape(dp::permute(a, {0, 2, 1, 3}), dp::Shape<3>{B, T, C});
      auto h = dp::layer_norm(x + dp::dropout(proj(merged, L.wo, L.bo, 3), p, gen, true), L.g1.var(), L.be1.var(),
                              1e-12f);
      auto f = proj(dp::gelu(proj(h, L.w1, L.b1, 4)), L.w2, L.b2, 5);
      x = dp::layer_norm(h + dp::dropout(f, p, gen, true), L.g2.var(), L.be2.var(), 1e-12f);
    }
    return dp::cross_entropy(dp::linear(x, head_w.var(), head_b.var()), targets);
  }

 private:
  using Shape2 = dp::Shape<2>;
};

/// Token ids' stand-ins: hidden states (B, T, C), a padding mask with `pad` padded positions at
/// the end of example 0, and targets (-100 on the padding).
struct Ptv2Batch {
  dp::Tensor<float, 3> x;
  dp::Tensor<float, 2> mask;
  dp::Tensor<std::int64_t, 2> targets;
};
inline Ptv2Batch ptv2_batch(index_t B, index_t T, index_t C, index_t labels, index_t pad) {
  Ptv2Batch b{random_tensor(dp::Shape<3>{B, T, C}, 1), {}, dp::Tensor<std::int64_t, 2>({B, T})};
  auto keep = dp::Tensor<int, 2>::full({B, T}, 1);
  for (index_t t = T - pad; t < T; ++t) keep(0, t) = 0;
  b.mask = dp::attention_mask<float>(keep);
  for (index_t i = 0; i < B * T; ++i) b.targets.data()[i] = keep.data()[i] ? i % labels : -100;
  return b;
}

/// The layer stack on both devices from the same weights and batch: the loss and the gradients
/// of every prefix and of the head (and of the first layer's weights when the backbone trains).
inline void ptv2_layer_check() {
  const Ptv2Shape s{2, 64, 4, 128, 5, 7};
  const auto batch = ptv2_batch(3, 11, s.hidden, s.labels, 4);
  for (bool train_backbone : {false, true}) {
    const auto run = [&](auto device) {
      using D = decltype(device);
      Ptv2Encoder<D> enc(s, train_backbone);
      dp::Generator gen(2024);
      auto loss = enc.loss(dp::Var<float, 3, D>(on<D>(batch.x)), on<D>(batch.mask), batch.targets, 0.1f, gen);
      loss.backward();
      std::vector<std::vector<float>> out{floats(on_host(loss.value()))};
      for (const auto& L : enc.layers) {
        out.push_back(floats(on_host(L.prefix_k.grad())));
        out.push_back(floats(on_host(L.prefix_v.grad())));
      }
      out.push_back(floats(on_host(enc.head_w.grad())));
      if (train_backbone) {
        out.push_back(floats(on_host(enc.layers[0].wq.grad())));
        out.push_back(floats(on_host(enc.layers[0].w1.grad())));
        out.push_back(floats(on_host(enc.layers[0].g1.grad())));
      }
      return out;
    };
    const auto cpu = run(dp::Cpu{});
    const auto gpu = run(dp::Cuda{});
    const std::string name = train_backbone ? "ptv2 layers, full fine-tuning" : "ptv2 layers, frozen backbone";
    for (std::size_t i = 0; i < cpu.size(); ++i)
      expect_close(name + (i == 0 ? ": loss" : ": gradient " + std::to_string(i)), gpu[i],
                   std::vector<double>(cpu[i].begin(), cpu[i].end()), 1e-4);
  }
}

}  // namespace cuda_test
