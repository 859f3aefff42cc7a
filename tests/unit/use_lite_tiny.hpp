#pragma once
// A tiny USE-Lite-shaped model with random weights, for tests that must run without the real
// model: two layers of different widths (embed 8 = 2 heads x 4 -> hidden 16 = 2 heads x 8), a
// residual projection on layer 0, ReLU FFN of 12, vocabulary 20 (or `vocab`: 8002 takes the real
// tokenizer's ids), at most 6 tokens.
#include <string>

#include "deepprompt/models/use_lite.hpp"
#include "deepprompt/nn/module.hpp"

namespace dp_test {

template <class T>
deepprompt::UseLite<T> tiny_use_lite(std::uint64_t seed = 1, double std = 0.5, deepprompt::index_t vocab = 20) {
  namespace dp = deepprompt;
  dp::UseLite<T> u;
  u.config = {.vocab = vocab, .embed = 8, .hidden = 16, .ffn = 12, .heads = 2, .max_tokens = 6, .ln_eps = 1e-6};
  dp::Generator gen(seed);
  u.embeddings = dp::Embedding<T>(vocab, 8, gen, std::nullopt, std);
  u.inv_timescales = dp::Tensor<T, 1>({4});
  for (dp::index_t i = 0; i < 4; ++i) u.inv_timescales(i) = static_cast<T>(std::exp(-std::log(1e4) * double(i) / 3.0));
  for (int l = 0; l < 2; ++l) {
    const dp::index_t in = l == 0 ? 8 : 16;
    dp::UseLiteLayer<T> layer;
    layer.attention_norm = dp::LayerNorm<T>(in, 1e-6);
    layer.attention = dp::MultiHeadAttention<T>(in, 2, in / 2, true, gen);
    layer.attention.o = dp::Linear<T>(16, in, true, gen);
    if (l == 0) layer.residual = dp::Linear<T>(16, 8, true, gen);
    layer.ffn_norm = dp::LayerNorm<T>(16, 1e-6);
    layer.ffn = dp::FeedForward<T>(16, 12, dp::Activation::relu, false, true, gen);
    layer.query_scale = static_cast<T>(1.0 / std::sqrt(double(in / 2)));
    u.layers.push_back(std::move(layer));
  }
  u.projection = dp::Linear<T>(16, 16, true, gen);
  dp::for_each_parameter(u, [&](const std::string& name, auto& p) {
    dp::init::normal(p.value(), name.find("norm.weight") != std::string::npos ? 1.0 : 0.0, std, gen);
  });
  dp::freeze(u);
  return u;
}

}  // namespace dp_test
