// Deep prompts beyond the canonical one, on the tiny BERT of tests/data/bert: the hidden-state
// form against the literal "concatenate, run the layer, slice" computation; depth selection
// (SelectiveDeepPrompt); serving: frozen constants == the live prompt, and a multi-task batch
// (prompts of different lengths and kinds, per-row position shifts) == each row alone.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "deepprompt/peft/deep_prompt_bert.hpp"
#include "deepprompt/peft/selective_prompt.hpp"
#include "testing.hpp"

namespace test_peft_serving {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;
using dp::Var;

namespace {

using ServCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kL = 2, kC = 32, kH = 4;

template <class T = float>
dp::Bert<ServCfg, T> serving_bert() {
  auto b = dp::Bert<ServCfg, T>::from_pretrained(fs::path(DEEPPROMPT_TEST_DATA) / "bert");
  dp::freeze(b);
  return b;
}

Tensor<std::int64_t, 2> int_matrix(index_t rows, index_t cols, std::initializer_list<std::int64_t> v) {
  return Tensor<std::int64_t, 2>::from({rows, cols}, v);
}

struct Batch {
  // 7 rows of 7 tokens, padded differently
  Tensor<std::int64_t, 2> ids = int_matrix(7, 7, {2, 15, 37, 8, 91, 54, 3,  //
                                                  2, 44, 7, 3, 0, 0, 0,     //
                                                  2, 9, 17, 60, 61, 3, 0,   //
                                                  2, 81, 3, 0, 0, 0, 0,     //
                                                  2, 33, 34, 35, 36, 37, 3,  //
                                                  2, 5, 6, 3, 0, 0, 0,      //
                                                  2, 70, 71, 72, 3, 0, 0});
  Tensor<std::int64_t, 2> mask = int_matrix(7, 7, {1, 1, 1, 1, 1, 1, 1,  //
                                                   1, 1, 1, 1, 0, 0, 0,  //
                                                   1, 1, 1, 1, 1, 1, 0,  //
                                                   1, 1, 1, 0, 0, 0, 0,  //
                                                   1, 1, 1, 1, 1, 1, 1,  //
                                                   1, 1, 1, 1, 0, 0, 0,  //
                                                   1, 1, 1, 1, 1, 0, 0});
  Tensor<std::int64_t, 2> types = int_matrix(7, 7, {0, 0, 0, 1, 1, 1, 1,  //
                                                    0, 0, 1, 1, 0, 0, 0,  //
                                                    0, 0, 0, 0, 1, 1, 0,  //
                                                    0, 1, 1, 0, 0, 0, 0,  //
                                                    0, 0, 0, 0, 0, 0, 0,  //
                                                    0, 0, 1, 1, 0, 0, 0,  //
                                                    0, 0, 0, 1, 1, 0, 0});

  /// Row b as a batch of one.
  static Tensor<std::int64_t, 2> row(const Tensor<std::int64_t, 2>& x, index_t b) {
    return x.slice(b, b + 1).clone();
  }
};

/// Row b of (B, ...) as (1, ...).
template <std::size_t R>
Tensor<float, R> row_of(const Tensor<float, R>& x, index_t b) {
  return x.slice(b, b + 1);
}

}  // namespace

TEST_CASE("hidden-state prompt: equals the literal 'concatenate P_l, run the whole layer, slice' on every layer") {
  auto bert = serving_bert();
  const Batch in;
  const index_t B = in.ids.extent(0), T = in.ids.extent(1), P = 3;
  dp::HiddenPrompt<kL, 3, kC> hp({.seed = 5});
  CHECK_FALSE(hp.shift_positions());

  // layer by layer, from the same input: the layer with the induced prefix vs the literal layer
  {
    dp::NoGradGuard g;
    const Tensor<float, 2> m = dp::attention_mask<float>(in.mask);
    Tensor<std::int64_t, 2> ones_mask = Tensor<std::int64_t, 2>::full({B, P + T}, 1);
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T; ++t) ones_mask(b, P + t) = in.mask(b, t);
    const Tensor<float, 2> m_ext = dp::attention_mask<float>(ones_mask);
    Var<float, 3> x = bert.embeddings.forward(in.ids, in.types, 0, nullptr, false);
    const auto pre = hp.prefixes(bert);
    for (index_t l = 0; l < kL; ++l) {
      const auto& layer = bert.encoder.layer[std::size_t(l)];
      auto via_prefix = layer.forward(x, m, pre[std::size_t(l)], nullptr, false);
      auto cat = dp::concat<float, 3>({dp::repeat_rows(hp.hidden_rows(l), B), x}, 1);  // (B, P + T, C)
      auto literal = dp::slice(layer.forward(cat, m_ext, {}, nullptr, false), 1, P, P + T);
      const double e = dp_test::max_abs_diff(via_prefix.value(), literal.value());
      MESSAGE("layer ", l, ": prefix path vs literal, max |diff| ", e);
      CHECK(e < 1e-5);
      x = via_prefix;
    }
  }

  // the whole model: outputs and the gradient reaching P
  const auto R = dp_test::random_tensor<float, 3>({B, T, kC}, 21);
  auto out = dp::forward_with_prompt(bert, hp, in.ids, in.mask, in.types);
  const auto last = out.last_hidden_state.value().clone();
  out.last_hidden_state.backward(R);
  const auto grad_prefix = hp.prompt.grad().clone();
  hp.prompt.zero_grad();

  Tensor<std::int64_t, 2> ext({B, P + T});
  for (index_t b = 0; b < B; ++b)
    for (index_t j = 0; j < P + T; ++j) ext(b, j) = j < P ? 1 : in.mask(b, j - P);
  const Tensor<float, 2> m_ext = dp::attention_mask<float>(ext);
  Var<float, 3> x = bert.embeddings.forward(in.ids, in.types, 0, nullptr, false);
  for (index_t l = 0; l < kL; ++l) {
    auto cat = dp::concat<float, 3>({dp::repeat_rows(hp.hidden_rows(l), B), x}, 1);
    x = dp::slice(bert.encoder.layer[std::size_t(l)].forward(cat, m_ext, {}, nullptr, false), 1, P, P + T);
  }
  const double e_out = dp_test::max_abs_diff(last, x.value());
  x.backward(R);
  const double e_grad = dp_test::max_abs_diff(grad_prefix, hp.prompt.grad());
  MESSAGE("whole model: outputs differ by ", e_out, ", gradients to P by ", e_grad);
  CHECK(e_out < 1e-5);
  CHECK(e_grad < 1e-5);
}

TEST_CASE("hidden-state prompt: gradient check in double") {
  auto bert = serving_bert<double>();
  const Batch in;
  dp_test::expect_ad(
      [&](auto p) {
        std::vector<dp::KVPrefix<double>> pre;
        for (index_t l = 0; l < kL; ++l)
          pre.push_back(bert.encoder.layer[std::size_t(l)].attention.self_attention.prefix_from_hidden(
              dp::reshape<2>(dp::slice(p, 0, l, l + 1), dp::Shape<2>{2, kC})));
        return bert.forward(in.ids, in.mask, in.types, {.shift_positions = false}, pre).pooler_output;
      },
      dp_test::random_tensor<double, 3>({kL, 2, kC}, 31));
}

TEST_CASE("depth selection: prompts on chosen layers, each with its own length") {
  auto bert = serving_bert();
  const Batch in;
  // all layers, equal lengths: the same as a DeepPrompt with the same rows
  dp::DeepPrompt<kL, 4, kC> full({.init_std = 0.5, .seed = 8});
  dp::SelectiveDeepPrompt<float> same(kL, kC, {{1, 4}, {0, 4}});
  for (index_t l = 0; l < kL; ++l)
    for (index_t t = 0; t < 4; ++t)
      for (index_t j = 0; j < 2 * kC; ++j)
        same.prompts[std::size_t(l)].value()(t, j) = full.prompt_embeddings->value()(t, l * 2 * kC + j);
  std::vector<std::string> names;
  dp::for_each_parameter(same, [&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"layer.0.prompt_embeddings", "layer.1.prompt_embeddings"});
  {
    dp::NoGradGuard g;
    const auto a = dp::forward_with_prompt(bert, full, in.ids, in.mask, in.types).last_hidden_state.value();
    const auto b = dp::forward_with_prompt(bert, same, in.ids, in.mask, in.types).last_hidden_state.value();
    CHECK(dp_test::max_abs_diff(a, b) < 1e-6);
  }
  // only layer 1, 3 tokens: layer 0 gets nothing, and (as HF) no position shift
  dp::SelectiveDeepPrompt<float> deep_only(kL, kC, {{1, 3}}, {.init_std = 0.5});
  dp::attach(bert, deep_only);
  {
    dp::NoGradGuard g;
    auto pre = deep_only.prefixes();
    CHECK(pre[0].empty());
    CHECK(pre[1].length() == 3);
    CHECK(deep_only.length(0) == 0);
    const auto got = dp::forward_with_prompt(bert, deep_only, in.ids, in.mask, in.types).last_hidden_state.value();
    const auto none = bert.forward(in.ids, in.mask, in.types).last_hidden_state.value();
    const auto manual = bert.forward(in.ids, in.mask, in.types, {.shift_positions = false}, pre).last_hidden_state.value();
    CHECK(dp_test::max_abs_diff(got, manual) == 0.0);
    CHECK(dp_test::max_abs_diff(got, none) > 1e-3);
  }
  // different lengths per layer: gradient check in double
  auto bert_d = serving_bert<double>();
  dp_test::expect_ad(
      [&](auto r0, auto r1) {
        std::vector<dp::KVPrefix<double>> pre{dp::kv_prefixes(r0, 1, kH)[0], dp::kv_prefixes(r1, 1, kH)[0]};
        return bert_d.forward(in.ids, in.mask, in.types, {}, pre).pooler_output;
      },
      dp_test::random_tensor<double, 2>({2, 2 * kC}, 41), dp_test::random_tensor<double, 2>({5, 2 * kC}, 42));
  // the class itself trains: gradients reach only the selected layers' parameters
  dp::SelectiveDeepPrompt<float> mixed(kL, kC, {{0, 2}, {1, 5}});
  auto out = dp::forward_with_prompt(bert, mixed, in.ids, in.mask, in.types);
  out.pooler_output.backward(dp_test::random_tensor<float, 2>({in.ids.extent(0), kC}, 43));
  for (auto& p : mixed.prompts) {
    double n = 0;
    for (index_t i = 0; i < p.size(); ++i) n += std::abs(p.grad().data()[i]);
    CHECK(n > 0);
  }
  CHECK_THROWS_WITH_AS(dp::SelectiveDeepPrompt<float>(kL, kC, {{2, 4}}), "SelectiveDeepPrompt: layer 2 is outside [0, 2)",
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::SelectiveDeepPrompt<float>(kL, kC, {{1, 4}, {1, 2}}),
                       "SelectiveDeepPrompt: layer 1 is selected twice", dp::ShapeError);
  CHECK_THROWS_AS(dp::SelectiveDeepPrompt<float>(kL, kC, {{0, 0}}), dp::ShapeError);
  dp::SelectiveDeepPrompt<float> three_layers(3, kC, {{0, 2}});
  CHECK_THROWS_WITH_AS(dp::attach(bert, three_layers), "DeepPrompt: the prompt has 3 layers but the BERT model has 2",
                       dp::ShapeError);
}

TEST_CASE("serving: frozen constants give the live prompt's outputs, computed once without a tape") {
  auto bert = serving_bert();
  const Batch in;
  dp::DeepPrompt<kL, 4, kC> plain({.seed = 1});
  dp::DeepPrompt<kL, 4, kC> projected({.seed = 2, .projection = 8});
  dp::HiddenPrompt<kL, 3, kC> hidden({.seed = 3});
  dp::SelectiveDeepPrompt<float> selective(kL, kC, {{1, 3}}, {.seed = 4});
  auto check = [&](auto& prompt, const dp::PromptConstants<float>& c, const char* what) {
    for (const auto& p : c.layers) CHECK_FALSE((p.k.requires_grad() || p.v.requires_grad()));
    auto live = dp::forward_with_prompt(bert, prompt, in.ids, in.mask, in.types);  // records a tape
    const auto a = live.last_hidden_state.value().clone();
    dp::tape().release();
    dp::NoGradGuard g;
    const auto b = dp::forward_with_prompt(bert, c, in.ids, in.mask, in.types).last_hidden_state.value();
    const double e = dp_test::max_abs_diff(a, b);
    MESSAGE(std::string(what), ": folded vs unfolded, max |diff| ", e);
    CHECK(e < 1e-6);
  };
  dp::attach(bert, plain), dp::attach(bert, projected), dp::attach(bert, selective);
  check(plain, plain.freeze_constants(), "DeepPrompt");
  check(projected, projected.freeze_constants(), "DeepPrompt with projection");
  check(hidden, hidden.freeze_constants(bert), "HiddenPrompt");
  check(selective, selective.freeze_constants(), "SelectiveDeepPrompt");

  // the constants do not follow later changes of the prompt
  const auto c = plain.freeze_constants();
  const auto k0 = c.layers[0].k.value().clone();
  plain.prompt_embeddings->value().fill(0.5f);
  CHECK(dp_test::max_abs_diff(k0, c.layers[0].k.value()) == 0.0);
}

TEST_CASE("serving: a multi-task batch equals each row run alone with its own prompt") {
  auto bert = serving_bert();
  const Batch in;
  const index_t B = in.ids.extent(0);
  dp::DeepPrompt<kL, 4, kC> a({.init_std = 0.7, .seed = 11});                           // 4 tokens, shifted
  dp::DynamicDeepPrompt<> b({.layers = kL, .tokens = 2, .hidden = kC}, {.seed = 12});   // 2 tokens, shifted
  dp::HiddenPrompt<kL, 3, kC> c({.seed = 13});                                          // 3 tokens, not shifted
  dp::SelectiveDeepPrompt<float> d(kL, kC, {{1, 5}}, {.seed = 14});                     // layer 1 only
  dp::DeepPrompt<kL, 1, kC> e({.seed = 15, .projection = 8});                           // 1 token, projected
  dp::attach(bert, a), dp::attach(bert, b), dp::attach(bert, d), dp::attach(bert, e);
  const std::vector<dp::PromptConstants<float>> tasks{a.freeze_constants(), b.freeze_constants(),
                                                      c.freeze_constants(bert), d.freeze_constants(),
                                                      e.freeze_constants()};
  const std::vector<index_t> task_of_row{0, 1, 2, 3, -1, 4, 0};
  const auto mt = dp::multi_task_prefix<float>(tasks, task_of_row);
  CHECK(mt.position_offset == std::vector<index_t>{4, 2, 0, 0, 0, 1, 4});
  CHECK(mt.layers[0].length() == 4);  // the longest prompt on layer 0
  CHECK(mt.layers[1].length() == 5);  // d's on layer 1
  CHECK(mt.layers[1].k_batch.shape() == dp::Shape<4>{B, kH, 5, kC / kH});

  dp::NoGradGuard g;
  const auto batch = dp::forward_multi_task(bert, mt, in.ids, in.mask, in.types);
  double worst = 0;
  for (index_t r = 0; r < B; ++r) {
    const index_t t = task_of_row[std::size_t(r)];
    const auto ids = Batch::row(in.ids, r), mask = Batch::row(in.mask, r), types = Batch::row(in.types, r);
    const auto alone = t < 0 ? bert.forward(ids, mask, types)
                             : dp::forward_with_prompt(bert, tasks[std::size_t(t)], ids, mask, types);
    const double e1 = dp_test::max_abs_diff(row_of(batch.last_hidden_state.value(), r), alone.last_hidden_state.value());
    const double e2 = dp_test::max_abs_diff(row_of(batch.pooler_output.value(), r), alone.pooler_output.value());
    CAPTURE(r);
    CHECK(e1 < 1e-5);
    CHECK(e2 < 1e-5);
    worst = std::max({worst, e1, e2});
  }
  MESSAGE("multi-task batch vs rows alone: max |diff| ", worst);

  // the per-row position shift matters: with one shift for the whole batch, rows differ
  auto same_shift = mt;
  std::fill(same_shift.position_offset.begin(), same_shift.position_offset.end(), 4);
  const auto wrong = dp::forward_multi_task(bert, same_shift, in.ids, in.mask, in.types);
  CHECK(dp_test::max_abs_diff(row_of(wrong.last_hidden_state.value(), 1), row_of(batch.last_hidden_state.value(), 1)) >
        1e-3);

  CHECK_THROWS_WITH_AS(dp::multi_task_prefix<float>(tasks, {0, 5}), doctest::Contains("row 1 names task 5"), dp::Error);
  CHECK_THROWS_AS(dp::forward_multi_task(bert, dp::multi_task_prefix<float>(tasks, {0, 1}), in.ids, in.mask),
                  dp::ShapeError);
}

TEST_CASE("serving: multi-task training: each task's prompt gets the gradient of its own rows") {
  auto bert = serving_bert();
  const Batch in;
  const index_t B = in.ids.extent(0);
  dp::DeepPrompt<kL, 4, kC> a({.seed = 21});
  dp::DeepPrompt<kL, 2, kC> b({.seed = 22});
  dp::attach(bert, a), dp::attach(bert, b);
  const std::vector<index_t> task_of_row{0, 1, 1, 0, -1, 0, 1};
  const auto R = dp_test::random_tensor<float, 2>({B, kC}, 23);
  {
    const std::vector<dp::PromptConstants<float>> live{{a.prefixes(), true}, {b.prefixes(), true}};
    auto out = dp::forward_multi_task(bert, dp::multi_task_prefix<float>(live, task_of_row), in.ids, in.mask, in.types);
    out.pooler_output.backward(R);
  }
  const auto ga = a.prompt_embeddings->grad().clone(), gb = b.prompt_embeddings->grad().clone();
  a.prompt_embeddings->zero_grad(), b.prompt_embeddings->zero_grad();
  for (index_t r = 0; r < B; ++r) {
    const index_t t = task_of_row[std::size_t(r)];
    if (t < 0) continue;
    const auto ids = Batch::row(in.ids, r), mask = Batch::row(in.mask, r), types = Batch::row(in.types, r);
    auto out = t == 0 ? dp::forward_with_prompt(bert, a, ids, mask, types) : dp::forward_with_prompt(bert, b, ids, mask, types);
    out.pooler_output.backward(R.slice(r, r + 1).clone());
  }
  const double ea = dp_test::max_abs_diff(ga, a.prompt_embeddings->grad());
  const double eb = dp_test::max_abs_diff(gb, b.prompt_embeddings->grad());
  MESSAGE("multi-task gradients vs the sum over rows alone: ", ea, ", ", eb);
  CHECK(ea < 1e-5);
  CHECK(eb < 1e-5);
}

}  // namespace test_peft_serving
