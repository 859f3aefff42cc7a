#pragma once
// P-Tuning v1 (Liu et al. 2021, "GPT Understands, Too"; PEFT's P_TUNING): input-layer prompts
// produced by a prompt encoder from `Tokens` trainable embeddings.
//
//   auto prompt = dp::PTuningV1<20, 768>({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 768});
//   auto model  = dp::PromptedBert{std::move(bert), std::move(prompt)};  // peft/input_prompt_bert.hpp
//   ...train...
//   model.prompt.save_peft("rte-ptuning/");   // prompt_embeddings = the encoder's output, as PEFT
//
// Exactly PEFT's PromptEncoder (tuners/p_tuning/model.py), with its parameter names:
//   embedding.weight (Tokens, Hidden)                 torch.nn.Embedding, normal(0, 1)
//   MLP  (encoder_reparameterization_type "MLP", PEFT's default):
//        mlp_head.0 Linear(Hidden, h), ReLU, mlp_head.2 Linear(h, h), ReLU, mlp_head.4 Linear(h, Hidden)
//   LSTM ("LSTM"): lstm_head = torch.nn.LSTM(Hidden, h, num_layers = encoder_num_layers (2),
//        dropout = encoder_dropout, bidirectional, batch_first), parameters
//        lstm_head.{weight_ih, weight_hh, bias_ih, bias_hh}_l{k}[_reverse]; then
//        mlp_head.0 Linear(2h, 2h), ReLU, mlp_head.2 Linear(2h, Hidden)
// where h = encoder_hidden_size. Each direction of each LSTM layer is ops::lstm_cell run over
// the prompt positions (forwards, and backwards for `_reverse`) from zero states; the two
// directions' outputs are concatenated (2h) and feed the next layer. PEFT runs the encoder on the
// prompt tokens of every example, identical rows: it is run once here (encoder_dropout between
// LSTM layers while training then draws one mask for the whole batch, not one per example).
// Initialisation as torch's defaults: Linear and LSTM weights and biases uniform(-1/sqrt(fan),
// 1/sqrt(fan)) (fan: a Linear's input width; the LSTM's hidden size), drawn from `seed`.
//
// fold() evaluates the encoder once into plain prompt rows (embedding.weight, trainable as
// before) and drops the encoder: what PEFT saves and what it loads in inference mode. save_peft()
// writes the encoder's output as prompt_embeddings (Tokens, Hidden) without folding the object;
// load_peft() gives a folded PTuningV1.
#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "../nn/linear.hpp"
#include "../ops/activation.hpp"
#include "../ops/concat.hpp"
#include "../ops/dropout.hpp"
#include "../ops/lstm.hpp"
#include "prompt_tuning.hpp"

namespace deepprompt {

enum class PromptEncoderType { mlp, lstm };

struct PTuningOptions {
  PromptEncoderType encoder = PromptEncoderType::mlp;  // PEFT's default ("MLP")
  index_t encoder_hidden = 0;      // encoder_hidden_size h; 0: Hidden
  index_t encoder_layers = 2;      // encoder_num_layers: LSTM layers (the MLP has its fixed three)
  double encoder_dropout = 0.0;    // between LSTM layers, while training
  double init_std = 1.0;           // embedding: normal(0, init_std)
  std::uint64_t seed = 0;          // of the initial values and of the dropout stream
};

/// One direction of one LSTM layer: torch's weight_ih (4h, In), weight_hh (4h, h), bias_ih,
/// bias_hh (4h), gates ordered (i, f, g, o).
template <class T>
struct LstmDirection {
  Parameter<T, 2> weight_ih, weight_hh;
  Parameter<T, 1> bias_ih, bias_hh;
};

/// torch.nn.LSTM(In, h, num_layers, dropout, bidirectional=True, batch_first=True) on one
/// sequence: (P, In) -> (P, 2h).
template <class T>
struct BidirectionalLstm {
  std::vector<std::array<LstmDirection<T>, 2>> layers;  // [layer][0: forward, 1: reverse]
  double dropout = 0.0;

  BidirectionalLstm() = default;
  BidirectionalLstm(index_t in, index_t hidden, index_t num_layers, double drop, Generator& gen) : dropout(drop) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
    auto uniform2 = [&](index_t r, index_t c) {
      Tensor<T, 2> t({r, c});
      init::uniform(t, -bound, bound, gen);
      return t;
    };
    auto uniform1 = [&](index_t n) {
      Tensor<T, 1> t({n});
      init::uniform(t, -bound, bound, gen);
      return t;
    };
    for (index_t k = 0; k < num_layers; ++k) {
      const index_t width = k == 0 ? in : 2 * hidden;
      auto& layer = layers.emplace_back();
      for (auto& d : layer) {
        d.weight_ih = Parameter<T, 2>("weight_ih", uniform2(4 * hidden, width));
        d.weight_hh = Parameter<T, 2>("weight_hh", uniform2(4 * hidden, hidden));
        d.bias_ih = Parameter<T, 1>("bias_ih", uniform1(4 * hidden));
        d.bias_hh = Parameter<T, 1>("bias_hh", uniform1(4 * hidden));
      }
    }
  }

  index_t hidden() const { return layers.at(0)[0].weight_hh.shape()[1]; }

  /// x: (P, In) -> (P, 2h): per layer, both directions from zero states, outputs concatenated.
  Var<T, 2> forward(const Var<T, 2>& x, Generator* gen, bool training) const {
    const index_t P = x.extent(0), h = hidden();
    Var<T, 2> in = x;
    for (std::size_t k = 0; k < layers.size(); ++k) {
      if (k > 0 && training && dropout > 0.0) {
        if (gen == nullptr) throw Error("BidirectionalLstm: training with dropout needs a Generator");
        in = deepprompt::dropout(in, static_cast<T>(dropout), *gen, true);
      }
      std::array<Var<T, 2>, 2> dir_out;
      for (int d = 0; d < 2; ++d) {
        const auto& w = layers[k][static_cast<std::size_t>(d)];
        std::vector<Var<T, 2>> steps(static_cast<std::size_t>(P));
        LstmState<T> st{Var<T, 2>(Tensor<T, 2>::zeros({1, h})), Var<T, 2>(Tensor<T, 2>::zeros({1, h}))};
        for (index_t s = 0; s < P; ++s) {
          const index_t t = d == 0 ? s : P - 1 - s;
          st = lstm_cell(slice(in, 0, t, t + 1), st.h, st.c, w.weight_ih.var(), w.weight_hh.var(), w.bias_ih.var(),
                         w.bias_hh.var());
          steps[static_cast<std::size_t>(t)] = st.h;  // (1, h)
        }
        dir_out[static_cast<std::size_t>(d)] = concat(std::span<const Var<T, 2>>(steps), 0);  // (P, h)
      }
      in = concat(std::span<const Var<T, 2>>(dir_out), 1);  // (P, 2h)
    }
    return in;
  }

  template <class V>
  void visit(V&& v) {
    for (std::size_t k = 0; k < layers.size(); ++k)
      for (int d = 0; d < 2; ++d) {
        const std::string suffix = "_l" + std::to_string(k) + (d ? "_reverse" : "");
        auto& w = layers[k][static_cast<std::size_t>(d)];
        v("weight_ih" + suffix, w.weight_ih);
        v("weight_hh" + suffix, w.weight_hh);
        v("bias_ih" + suffix, w.bias_ih);
        v("bias_hh" + suffix, w.bias_hh);
      }
  }
};

/// P-Tuning v1's prompt: `Tokens` embeddings through PEFT's PromptEncoder (see the top). Either
/// extent may be `dynamic`.
template <index_t Tokens, index_t Hidden, class T = float>
class PTuningV1 {
  static_assert(Tokens == dynamic || Tokens > 0, "PTuningV1<Tokens, Hidden>: Tokens must be positive (or dynamic)");
  static_assert(Hidden == dynamic || Hidden > 0, "PTuningV1<Tokens, Hidden>: Hidden must be positive (or dynamic)");
  static_assert(std::is_floating_point_v<T>, "PTuningV1<..., T>: T must be float or double");

 public:
  using value_type = T;
  static constexpr index_t static_tokens = Tokens, static_hidden = Hidden;
  static constexpr bool is_static = Tokens != dynamic && Hidden != dynamic;

  Parameter<T, 2> embedding;                      // (Tokens, Hidden)
  std::optional<BidirectionalLstm<T>> lstm_head;  // LSTM encoder, until folded
  std::vector<Linear<T>> mlp_head;                // mlp_head.0, .2 (, .4); empty once folded
  mutable Generator generator;                    // encoder dropout's default stream

  explicit PTuningV1(const PTuningOptions& o = {})
    requires is_static
      : PTuningV1(InputPromptSizes{}, o) {}
  explicit PTuningV1(InputPromptSizes s, const PTuningOptions& o = {}) : generator(o.seed + 1), opt_(o) {
    s = input_prompt_detail::resolve(s, Tokens, Hidden, type_name());
    if (opt_.encoder_hidden == 0) opt_.encoder_hidden = s.hidden;
    const index_t h = opt_.encoder_hidden, C = s.hidden;
    if (h < 0) throw Error(detail::cat(type_name(), ": negative encoder_hidden ", h));
    if (opt_.encoder == PromptEncoderType::lstm && opt_.encoder_layers < 1)
      throw Error(detail::cat(type_name(), ": the LSTM encoder needs encoder_layers >= 1, got ", opt_.encoder_layers));
    if (!(opt_.encoder_dropout >= 0.0 && opt_.encoder_dropout <= 1.0))
      throw Error(detail::cat(type_name(), ": encoder_dropout ", opt_.encoder_dropout, " is not in [0, 1]"));
    Generator gen(o.seed);
    embedding = Parameter<T, 2>("embedding.weight", Tensor<T, 2>({s.tokens, C}));
    init::normal(embedding.value(), 0.0, opt_.init_std, gen);
    auto linear_layer = [&](index_t out, index_t in) { return torch_default_linear<T>(out, in, gen); };
    if (opt_.encoder == PromptEncoderType::lstm) {
      lstm_head.emplace(C, h, opt_.encoder_layers, opt_.encoder_dropout, gen);
      mlp_head.push_back(linear_layer(2 * h, 2 * h));
      mlp_head.push_back(linear_layer(C, 2 * h));
    } else {
      mlp_head.push_back(linear_layer(h, C));
      mlp_head.push_back(linear_layer(h, h));
      mlp_head.push_back(linear_layer(C, h));
    }
  }

  index_t tokens() const { return embedding.shape()[0]; }
  index_t hidden() const { return embedding.shape()[1]; }
  const PTuningOptions& options() const { return opt_; }
  /// True once the encoder has been evaluated into plain rows (fold(), load_peft()).
  bool folded() const { return mlp_head.empty(); }

  /// The prompt rows (Tokens, Hidden): the encoder's output (or the folded rows).
  Var<T, 2> input_embeddings(const PromptRun& run = {}) const {
    const Var<T, 2> x = embedding.var();
    if (folded()) return x;
    Var<T, 2> h = x;
    if (lstm_head) {
      Generator* gen = run.generator ? run.generator : &generator;
      h = lstm_head->forward(h, gen, run.training);
    }
    for (std::size_t i = 0; i < mlp_head.size(); ++i) {
      h = mlp_head[i](h);
      if (i + 1 < mlp_head.size()) h = relu(h);
    }
    return h;
  }

  /// Evaluates the encoder once (no tape) into embedding.weight and drops the encoder. No-op
  /// when already folded.
  void fold() {
    if (folded()) return;
    const bool trainable = embedding.trainable();
    Tensor<T, 2> rows;
    {
      NoGradGuard no_grad;
      rows = input_embeddings().value().clone();
    }
    lstm_head.reset();
    mlp_head.clear();
    embedding = Parameter<T, 2>("embedding.weight", std::move(rows), trainable);
  }

  void set_model(index_t layers, index_t heads) { model_ = {layers, heads}; }

  /// adapter_config.json's contents (PEFT's PromptEncoderConfig).
  nlohmann::json peft_config(const PeftSaveOptions& o = {}) const {
    auto j = input_prompt_detail::prompt_learning_config("P_TUNING", o, tokens(), hidden(), model_);
    j["encoder_dropout"] = opt_.encoder_dropout;
    j["encoder_hidden_size"] = opt_.encoder_hidden;
    j["encoder_num_layers"] = opt_.encoder_layers;
    j["encoder_reparameterization_type"] = opt_.encoder == PromptEncoderType::lstm ? "LSTM" : "MLP";
    return j;
  }

  /// Writes a PEFT P_TUNING adapter directory: prompt_embeddings = the encoder's output
  /// (Tokens, Hidden), and o.extra; each file atomically.
  void save_peft(const std::filesystem::path& dir, const PeftSaveOptions& o = {}) const {
    Tensor<T, 2> rows;
    {
      NoGradGuard no_grad;
      rows = input_embeddings().value().clone();
    }
    std::vector<TensorEntry> entries{entry("prompt_embeddings", rows)};
    entries.insert(entries.end(), o.extra.begin(), o.extra.end());
    peft_io::write_adapter(dir, entries, peft_config(o));
  }

  /// Reads a P_TUNING adapter directory into a folded PTuningV1 (the encoder's settings are
  /// kept for saving again). Static extents must match (FormatError naming the field).
  static PTuningV1 load_peft(const std::filesystem::path& dir, bool trainable = true) {
    auto f = input_prompt_detail::read_prompt_file<T>(dir, "P_TUNING", Tokens, Hidden, type_name());
    PTuningOptions o;
    const auto& c = f.config;
    if (c.has("encoder_reparameterization_type")) {
      const std::string e = c.string("encoder_reparameterization_type");
      if (e != "MLP" && e != "LSTM") c.fail("encoder_reparameterization_type", "must be \"MLP\" or \"LSTM\"");
      o.encoder = e == "LSTM" ? PromptEncoderType::lstm : PromptEncoderType::mlp;
    }
    if (c.has("encoder_hidden_size")) o.encoder_hidden = c.positive("encoder_hidden_size");
    if (c.has("encoder_num_layers")) o.encoder_layers = c.positive("encoder_num_layers");
    if (c.has("encoder_dropout")) o.encoder_dropout = c.number("encoder_dropout");
    // built small (a 1-wide encoder), then folded to the file's rows
    PTuningOptions tiny = o;
    tiny.encoder = PromptEncoderType::mlp, tiny.encoder_hidden = 1, tiny.init_std = 0.0;
    PTuningV1 p(InputPromptSizes{f.rows.extent(0), f.rows.extent(1)}, tiny);
    p.lstm_head.reset();
    p.mlp_head.clear();
    p.embedding = Parameter<T, 2>("embedding.weight", f.rows, trainable);
    p.opt_ = o;
    p.model_ = f.model;
    return p;
  }

  /// "PTuningV1<20, 768>" (dynamic extents as "dynamic").
  static std::string type_name() { return input_prompt_detail::extents_name("PTuningV1", Tokens, Hidden); }

  template <class V>
  void visit(V&& v) {
    v("embedding.weight", embedding);
    v("lstm_head", lstm_head);
    for (std::size_t i = 0; i < mlp_head.size(); ++i) v("mlp_head." + std::to_string(2 * i), mlp_head[i]);
  }

 private:
  PTuningOptions opt_;
  input_prompt_detail::ModelSizes model_{};
};

/// A PTuningV1 whose sizes are known only at run time.
template <class T = float>
using DynamicPTuningV1 = PTuningV1<dynamic, dynamic, T>;

}  // namespace deepprompt
