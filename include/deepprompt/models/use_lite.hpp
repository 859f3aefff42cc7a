#pragma once
// Universal Sentence Encoder Lite (TF.js graph model, docs/use_lite.md) rebuilt from the
// library's blocks: token embeddings (8002 x 256) with a sinusoidal timing signal, two pre-norm
// transformer layers (256 -> 512, 512 -> 512, 4 heads, ReLU FFN of 1536), mean pooling over the
// real tokens, a tanh projection (512) and L2 normalisation.
//
//   auto model = dp::UseLite<>::from_tfjs("use-lite/package/dist/model.json");
//   auto tok = dp::UseTokenizer::from_file("use-lite/package/dist/vocab.json");
//   auto e = model.embed({tok.encode("Hello world."), tok.encode("How are you?")});  // (2, 512)
//
// As in the graph: a sentence keeps its first 128 tokens; the input of layer 0 is
// 2 * embedding + timing signal (the graph adds the scattered embeddings to the embeddings plus
// signal); layer 0's residual is a dense projection of its input (256 -> 512); the FFN and the
// residual of padded positions are computed but never reach real ones (padded keys are
// masked), and pooling averages the real positions only. encode() is differentiable (frozen
// or trainable parameters, as set on them); embed() adds the L2 normalisation without a tape.
// Both take an optional key/value prefix per layer (P-Tuning v2: peft/use_lite_prefix.hpp) and
// an optional input prompt (Prompt Tuning, P-Tuning v1: peft/use_lite_prompts.hpp): P0 vectors of
// the embedding table's width put in front of the sentence at the input layer, doubled as the
// graph doubles an embedding, without a timing signal (the real tokens keep positions 0..L-1);
// their states run through every layer and are dropped before pooling.
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "../io/tfjs.hpp"
#include "../nn/attention.hpp"
#include "../nn/embedding.hpp"
#include "../nn/feed_forward.hpp"
#include "../nn/linear.hpp"
#include "../nn/norm.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/concat.hpp"
#include "../ops/matmul.hpp"

namespace deepprompt {

/// The dimensions of USE Lite (fixed by the pretrained model; read back from its weights).
struct UseLiteConfig {
  index_t vocab = 8002, embed = 256, hidden = 512, ffn = 1536, heads = 4, max_tokens = 128;
  double ln_eps = 1e-6;
};

/// One pre-norm transformer layer of USE Lite: in -> hidden (layer 0: 256 -> 512).
/// y = attention(LN(x)) + residual(x); out = FFN(LN(y)) + y. The attention's q, k, v are
/// (in, in) with `heads` heads; its output projection o is (hidden, in).
template <class T = float>
struct UseLiteLayer {
  LayerNorm<T> attention_norm;
  MultiHeadAttention<T> attention;
  std::optional<Linear<T>> residual;  // (hidden, in) when in != hidden, else identity
  LayerNorm<T> ffn_norm;
  FeedForward<T> ffn;                 // ReLU, hidden -> ffn -> hidden
  T query_scale = T(1);

  /// x: (B, L, in), call.mask: (B, L) additive -> (B, L, hidden).
  Var<T, 3> forward(const Var<T, 3>& x, AttentionCall<T> call) const {
    call.scale = query_scale;
    const Var<T, 3> y = add(attention.forward(attention_norm(x), call), residual ? (*residual)(x) : x);
    return add(ffn.forward(ffn_norm(y)), y);
  }

  template <class V>
  void visit(V&& v) {
    v("attention_norm", attention_norm);
    v("attention", attention);
    v("residual", residual);
    v("ffn_norm", ffn_norm);
    v("ffn", ffn);
  }
};

/// USE Lite with its pretrained weights (from_tfjs) or zeros (a config).
/// ensures: embed() matches the TF.js model run by @tensorflow/tfjs (cosine >= 0.99999).
template <class T = float>
struct UseLite {
  UseLiteConfig config;
  Embedding<T> embeddings;       // (vocab, embed)
  Tensor<T, 1> inv_timescales;   // (embed / 2), constant
  std::vector<UseLiteLayer<T>> layers;
  Linear<T> projection;          // (hidden, hidden), followed by tanh

  /// Loads model.json and its shards (TfjsModel::open) and takes every weight by its graph name.
  /// Throws IoError / FormatError (a missing weight or an unexpected shape names the weight).
  static UseLite from_tfjs(const std::filesystem::path& model_json) { return from_tfjs(TfjsModel::open(model_json)); }

  static UseLite from_tfjs(const TfjsModel& m) {
    const std::string P = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
    const std::string K = "module/Encoder_en/KonaTransformer/Encode/";
    UseLite u;
    UseLiteConfig& c = u.config;
    const auto emb = m.load<float, 2>("module/Embeddings_en");
    c.vocab = emb.extent(0);
    c.embed = emb.extent(1);
    c.max_tokens = m.scalar<std::int32_t>("module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y");
    c.ln_eps = m.scalar<float>(P + "TransformerStack/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x");
    Generator gen(0);
    u.embeddings = Embedding<T>(c.vocab, c.embed, gen, std::nullopt, 0.0);
    copy_to(emb.data(), u.embeddings.weight.value());
    u.inv_timescales = convert(m.values<float>(P + "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1"));
    if (2 * u.inv_timescales.extent(0) != c.embed)
      throw FormatError(detail::cat("USE Lite '", m.path().string(), "': ", u.inv_timescales.extent(0),
                                    " timescales for an embedding of width ", c.embed));
    for (int l = 0; m.contains(K + "Layer_" + std::to_string(l) + "/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0"); ++l) {
      const std::string L = "Layer_" + std::to_string(l) + "/TransformerLayer/";
      const std::string S = P + "TransformerStack/" + L;
      UseLiteLayer<T> layer;
      layer.attention_norm = norm(m, P + L + "layer_prepostprocess/layer_norm/", c.ln_eps);
      const auto qkv = kernel(m, K + L + "MultiheadAttention/qkv_transform_single/kernel/part_0");
      const auto qkv_b = m.values<float>(P + L + "MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat");
      const index_t in = qkv.extent(0), width = qkv.extent(1) / 3;
      const auto o = kernel(m, K + L + "MultiheadAttention/output_transform_single/kernel/part_0");
      c.hidden = o.extent(1);
      const index_t head_dim = m.scalar<std::int32_t>(S + "MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3");
      if (head_dim <= 0 || width % head_dim != 0)
        throw FormatError(detail::cat("USE Lite '", m.path().string(), "': layer ", l, ": head width ", head_dim,
                                      " does not divide the attention width ", width));
      layer.attention.heads = width / head_dim;
      layer.attention.q = linear(qkv, qkv_b, 0, width);
      layer.attention.k = linear(qkv, qkv_b, width, width);
      layer.attention.v = linear(qkv, qkv_b, 2 * width, width);
      layer.attention.o = linear(o, m.values<float>(P + L + "MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat"), 0, c.hidden);
      layer.query_scale = static_cast<T>(m.scalar<float>(S + "MultiheadAttention/mul/y"));
      if (m.contains(P + L + "dense/kernel/ConcatPartitions/concat")) {
        const auto d = m.load<float, 2>(P + L + "dense/kernel/ConcatPartitions/concat");
        layer.residual = linear(d, m.values<float>(P + L + "dense/bias/ConcatPartitions/concat"), 0, d.extent(1));
      } else if (in != c.hidden) {
        throw FormatError(detail::cat("USE Lite '", m.path().string(), "': layer ", l, " maps ", in, " to ", c.hidden,
                                      " but has no residual projection (", P + L, "dense)"));
      }
      layer.ffn_norm = norm(m, P + L + "FFN/layer_prepostprocess/layer_norm/", c.ln_eps);
      const auto w1 = m.load<float, 2>(S + "FFN/conv1/Tensordot/Reshape_1");
      const auto w2 = m.load<float, 2>(S + "FFN/conv2/Tensordot/Reshape_1");
      c.ffn = w1.extent(1);
      layer.ffn.act = Activation::relu;
      layer.ffn.wi = linear(w1, m.values<float>(P + L + "FFN/conv1/bias/ConcatPartitions/concat"), 0, c.ffn);
      layer.ffn.wo = linear(w2, m.values<float>(P + L + "FFN/conv2/bias/ConcatPartitions/concat"), 0, w2.extent(1));
      u.layers.push_back(std::move(layer));
    }
    if (u.layers.empty()) throw FormatError(detail::cat("USE Lite '", m.path().string(), "': no transformer layer found"));
    c.heads = u.layers.back().attention.heads;
    const auto pw = m.load<float, 2>("module/Encoder_en/hidden_layers/tanh_layer_0/weights");
    u.projection = linear(pw, m.values<float>("module/Encoder_en/hidden_layers/tanh_layer_0/bias"), 0, pw.extent(1));
    return u;
  }

  /// A padded batch: ids (B, L) (0 at padding), the 0/1 mask and each sentence's length,
  /// sentences cut to config.max_tokens.
  struct Batch {
    Tensor<std::int64_t, 2> ids;
    Tensor<T, 2> mask;
    std::vector<index_t> lengths;
  };
  Batch batch(const std::vector<std::vector<std::int32_t>>& sentences) const {
    Batch b;
    index_t L = 0;
    for (const auto& s : sentences) b.lengths.push_back(std::min<index_t>(static_cast<index_t>(s.size()), config.max_tokens));
    for (index_t n : b.lengths) L = std::max(L, n);
    const auto B = static_cast<index_t>(sentences.size());
    b.ids = Tensor<std::int64_t, 2>::zeros({B, L});
    b.mask = Tensor<T, 2>::zeros({B, L});
    for (index_t i = 0; i < B; ++i)
      for (index_t t = 0; t < b.lengths[i]; ++t) {
        b.ids(i, t) = sentences[i][t];
        b.mask(i, t) = T(1);
      }
    return b;
  }

  /// The hidden states of the last layer: (B, L, hidden). `prefixes` (P-Tuning v2; empty: none)
  /// holds one key/value prefix per layer, (H_l, P_l, D_l) or (B, H_l, P_l, D_l), an empty one
  /// for a layer without; the padding mask of a layer with a prefix is extended with P_l kept
  /// positions in front. ShapeError unless there is one entry per layer.
  /// `input_prompt` (P0, embed) or empty: see the top; the result holds the real positions only.
  Var<T, 3> hidden_states(const Batch& b, const std::vector<KVPrefix<T>>& prefixes = {},
                          const Var<T, 2>& input_prompt = {}) const {
    if (!prefixes.empty() && prefixes.size() != layers.size())
      throw ShapeError(detail::cat("UseLite: ", prefixes.size(), " key/value prefixes for ", layers.size(), " layers"));
    const index_t L = b.ids.extent(1), C = config.embed, half = C / 2;
    const index_t P0 = input_prompt.value().empty() ? 0 : input_prompt.extent(0);
    if (P0 > 0 && input_prompt.extent(1) != C)
      throw ShapeError(detail::cat("UseLite: an input prompt of shape ", shape_str(input_prompt.shape()),
                                   " for embeddings of width ", C));
    Tensor<T, 2> signal({L, C});  // sin(p * inv), cos(p * inv), in float as the graph
    for (index_t p = 0; p < L; ++p)
      for (index_t i = 0; i < half; ++i) {
        const T arg = static_cast<T>(p) * inv_timescales(i);
        signal(p, i) = static_cast<T>(std::sin(static_cast<double>(arg)));
        signal(p, half + i) = static_cast<T>(std::cos(static_cast<double>(arg)));
      }
    const Var<T, 3> e = embeddings(b.ids);
    Var<T, 3> x = add(add(e, e), Var<T, 2>(signal));  // (B, L, C)
    if (P0 > 0) x = concat({repeat_rows(scale(input_prompt, T(2)), b.ids.extent(0)), x}, 1);  // (B, P0 + L, C)
    const Tensor<T, 2> mask = attention_mask<T>(b.mask, P0);  // (B, P0 + L)
    for (std::size_t l = 0; l < layers.size(); ++l) {
      AttentionCall<T> call;
      if (prefixes.empty() || prefixes[l].empty()) {
        call.mask = mask;
      } else {
        call.prefix = prefixes[l];
        call.mask = attention_mask<T>(b.mask, P0 + prefixes[l].length());  // (B, P + P0 + L)
      }
      x = layers[l].forward(x, call);
    }
    return P0 > 0 ? slice(x, 1, P0, P0 + L) : x;
  }

  /// tanh(projection(mean of the real positions' states)): (B, hidden), before normalisation.
  /// `prefixes`: see hidden_states().
  Var<T, 2> encode(const std::vector<std::vector<std::int32_t>>& sentences,
                   const std::vector<KVPrefix<T>>& prefixes = {}, const Var<T, 2>& input_prompt = {}) const {
    const Batch b = batch(sentences);
    const index_t B = b.ids.extent(0), L = b.ids.extent(1);
    Tensor<T, 3> w = Tensor<T, 3>::zeros({B, 1, L});
    for (index_t i = 0; i < B; ++i)
      for (index_t t = 0; t < b.lengths[i]; ++t) w(i, 0, t) = T(1) / static_cast<T>(b.lengths[i]);
    const Var<T, 3> pooled = matmul(Var<T, 3>(w), hidden_states(b, prefixes, input_prompt));  // (B, 1, hidden)
    return tanh(projection(reshape<2>(pooled, Shape<2>{B, config.hidden})));
  }

  /// The sentence embeddings: encode() L2-normalised as the graph (x * rsqrt(max(|x|^2, 1e-12))).
  Tensor<T, 2> embed(const std::vector<std::vector<std::int32_t>>& sentences,
                     const std::vector<KVPrefix<T>>& prefixes = {}) const {
    NoGradGuard no_grad;
    Tensor<T, 2> y = encode(sentences, prefixes).value().clone();
    for (index_t i = 0; i < y.extent(0); ++i) {
      T* r = y.data() + i * y.extent(1);
      T ss = 0;
      for (index_t j = 0; j < y.extent(1); ++j) ss += r[j] * r[j];
      const T s = T(1) / std::sqrt(std::max(ss, T(1e-12)));
      for (index_t j = 0; j < y.extent(1); ++j) r[j] *= s;
    }
    return y;
  }

  template <class V>
  void visit(V&& v) {
    v("embeddings", embeddings);
    v("layer", layers);
    v("projection", projection);
  }

 private:
  template <class S>
  static void copy_to(const S* src, const Tensor<T, 2>& dst) {
    for (index_t i = 0; i < dst.size(); ++i) dst.data()[i] = static_cast<T>(src[i]);
  }
  static Tensor<T, 1> convert(const std::vector<float>& v) {
    Tensor<T, 1> t({static_cast<index_t>(v.size())});
    for (std::size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<T>(v[i]);
    return t;
  }
  // A (1, 1, in, out) convolution kernel as an (in, out) matrix.
  static Tensor<float, 2> kernel(const TfjsModel& m, const std::string& name) {
    const auto k = m.load<float, 4>(name);
    if (k.extent(0) != 1 || k.extent(1) != 1)
      throw FormatError(detail::cat("USE Lite '", m.path().string(), "': weight \"", name, "\" has shape ",
                                    shape_str(k.shape()), ", not a 1x1 convolution"));
    return k.reshape(Shape<2>{k.extent(2), k.extent(3)});
  }
  // Linear(out = cols, in) from columns [col0, col0 + cols) of an (in, n) kernel and bias.
  static Linear<T> linear(const Tensor<float, 2>& kern, const std::vector<float>& bias, index_t col0, index_t cols) {
    const index_t in = kern.extent(0), n = kern.extent(1);
    if (col0 + cols > n || static_cast<index_t>(bias.size()) != n)
      throw FormatError(detail::cat("USE Lite: a kernel of shape ", shape_str(kern.shape()), " with a bias of ",
                                    bias.size(), " values does not hold columns [", col0, ", ", col0 + cols, ")"));
    Generator gen(0);
    Linear<T> lin(cols, in, true, gen, 0.0);
    T* w = lin.weight.value().data();
    for (index_t o = 0; o < cols; ++o)
      for (index_t i = 0; i < in; ++i) w[o * in + i] = static_cast<T>(kern.data()[i * n + col0 + o]);
    for (index_t o = 0; o < cols; ++o) lin.bias->value().data()[o] = static_cast<T>(bias[static_cast<std::size_t>(col0 + o)]);
    return lin;
  }
  static LayerNorm<T> norm(const TfjsModel& m, const std::string& prefix, double eps) {
    const auto s = m.values<float>(prefix + "layer_norm_scale/ConcatPartitions/concat");
    const auto b = m.values<float>(prefix + "layer_norm_bias/ConcatPartitions/concat");
    LayerNorm<T> ln(static_cast<index_t>(s.size()), eps);
    if (b.size() != s.size())
      throw FormatError(detail::cat("USE Lite '", m.path().string(), "': ", prefix, " has ", s.size(), " scales and ",
                                    b.size(), " biases"));
    for (std::size_t i = 0; i < s.size(); ++i) {
      ln.weight.value().data()[i] = static_cast<T>(s[i]);
      ln.bias.value().data()[i] = static_cast<T>(b[i]);
    }
    return ln;
  }
};

}  // namespace deepprompt
