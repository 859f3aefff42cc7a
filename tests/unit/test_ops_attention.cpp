// ops/attention.hpp: the additive mask and fused scaled-dot-product attention with a key/value
// prefix, mask, bias, causal masking and dropout. Values against a plain-loop reference (float),
// gradients by finite differences (double), PyTorch parity from tests/data/attention/.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "attention_reference.hpp"
#include "deepprompt/ops/attention.hpp"
#include "testing.hpp"

namespace test_ops_attention {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Shape;
using dp::Tensor;
using dp::Var;
using dp_test::random_tensor;

using namespace dp_test::attention;  // the reference and its cases (attention_reference.hpp)

TEST_CASE("attention_mask: (1 - mask) * lowest, with kept prefix positions in front") {
  auto m = Tensor<std::int64_t, 2>::from({2, 3}, {1, 1, 0, 1, 0, 0});
  auto a = dp::attention_mask<float>(m);
  CHECK(a.shape() == Shape<2>{2, 3});
  CHECK(a(0, 0) == 0.0f);
  CHECK(a(0, 2) == std::numeric_limits<float>::lowest());
  CHECK(a(1, 1) == std::numeric_limits<float>::lowest());
  auto p = dp::attention_mask<double>(m, 2);
  CHECK(p.shape() == Shape<2>{2, 5});
  CHECK(p(1, 0) == 0.0);
  CHECK(p(1, 1) == 0.0);
  CHECK(p(1, 2) == 0.0);
  CHECK(p(1, 3) == std::numeric_limits<double>::lowest());
  auto f = dp::attention_mask<float>(Tensor<float, 2>::from({1, 2}, {1.0f, 0.0f}));
  CHECK(f(0, 0) == 0.0f);
  CHECK(f(0, 1) == std::numeric_limits<float>::lowest());
  CHECK_THROWS_WITH_AS(dp::attention_mask<float>(Tensor<std::int64_t, 2>::from({1, 2}, {1, 2})),
                       doctest::Contains("attention_mask: mask values must lie in [0, 1] (1 = keep), got 2 at (0, 1)"),
                       dp::Error);
  CHECK_THROWS_WITH_AS(dp::attention_mask<float>(m, -1), doctest::Contains("negative prefix"), dp::ShapeError);
}

TEST_CASE("attention: values against the plain loop (float)") {
  std::uint64_t seed = 100;
  for (const auto& c : kForwardCases) {
    CAPTURE(c.B); CAPTURE(c.H); CAPTURE(c.Tq); CAPTURE(c.Tk); CAPTURE(c.D); CAPTURE(c.P); CAPTURE(c.causal); CAPTURE(c.bias); CAPTURE(c.dropout);
    const auto in = make_inputs<float>(c, seed += 10);
    auto o = options(c, in);
    dp::Generator gen(77 + seed);
    if (c.dropout > 0) o.generator = &gen;
    const auto y = dp::scaled_dot_product_attention(Var<float, 4>(in.q), Var<float, 4>(in.k), Var<float, 4>(in.v), o);
    const auto want = reference(in.q, in.k, in.v, in.pk4, in.pv4, in.ref_mask, in.ref_bias, ref_of(c, 77 + seed));
    CHECK(dp_test::max_abs_diff(y.value(), want) < 2e-6);
    for (float e : y.value().span()) CHECK(std::isfinite(e));
    if (c.dropout > 0) {
      const std::uint64_t words = std::uint64_t(c.B * c.H * c.Tq * (c.P + c.Tk));
      CHECK(gen.offset() == (words + 3) / 4 * 4);
    }
  }
}

TEST_CASE("attention: prefix (pk, pv) equals plain attention on concatenated keys and values, gradients too") {
  const index_t B = 3, H = 2, T = 6, D = 8, P = 4;
  const auto q = random_tensor<double, 4>({B, H, T, D}, 1);
  const auto k = random_tensor<double, 4>({B, H, T, D}, 2);
  const auto v = random_tensor<double, 4>({B, H, T, D}, 3);
  const auto pk = random_tensor<double, 3>({H, P, D}, 4);
  const auto pv = random_tensor<double, 3>({H, P, D}, 5);
  const auto m01 = padding(B, T, true);
  const auto dy = random_tensor<double, 4>({B, H, T, D}, 6);

  dp::Parameter<double, 4> qa("q", q.clone()), ka("k", k.clone()), va("v", v.clone());
  dp::Parameter<double, 3> pka("pk", pk.clone()), pva("pv", pv.clone());
  auto ya = dp::scaled_dot_product_attention(qa.var(), ka.var(), va.var(),
                                             {.mask = dp::attention_mask<double>(m01), .prefix_k = pka, .prefix_v = pva});
  const auto ya_value = ya.value().clone();
  ya.backward(dy);

  dp::Parameter<double, 4> qb("q", q.clone()), kb("k'", concat_keys(broadcast_prefix(pk, B), k)),
      vb("v'", concat_keys(broadcast_prefix(pv, B), v));
  auto yb = dp::scaled_dot_product_attention(qb.var(), kb.var(), vb.var(), {.mask = dp::attention_mask<double>(m01, P)});
  const auto yb_value = yb.value().clone();
  yb.backward(dy);

  CHECK(dp_test::max_abs_diff(ya_value, yb_value) < 1e-13);
  CHECK(dp_test::max_abs_diff(qa.grad(), qb.grad()) < 1e-13);
  double dk = 0, dpk = 0, dpv = 0;
  for (index_t h = 0; h < H; ++h)
    for (index_t d = 0; d < D; ++d) {
      for (index_t b = 0; b < B; ++b)
        for (index_t t = 0; t < T; ++t) {
          dk = std::max(dk, std::abs(ka.grad()(b, h, t, d) - kb.grad()(b, h, P + t, d)));
          dk = std::max(dk, std::abs(va.grad()(b, h, t, d) - vb.grad()(b, h, P + t, d)));
        }
      for (index_t j = 0; j < P; ++j) {
        double sk = 0, sv = 0;
        for (index_t b = 0; b < B; ++b) sk += kb.grad()(b, h, j, d), sv += vb.grad()(b, h, j, d);
        dpk = std::max(dpk, std::abs(pka.grad()(h, j, d) - sk));
        dpv = std::max(dpv, std::abs(pva.grad()(h, j, d) - sv));
      }
    }
  CHECK(dk < 1e-13);
  CHECK(dpk < 1e-13);
  CHECK(dpv < 1e-13);
}

TEST_CASE("attention: an all -inf row gives zeros, not NaN, forward and backward") {
  const index_t B = 2, H = 2, T = 3, D = 4;
  auto mask = Tensor<double, 2>::zeros({B, T});
  for (index_t t = 0; t < T; ++t) mask(1, t) = -std::numeric_limits<double>::infinity();
  mask(0, 2) = -std::numeric_limits<double>::infinity();
  dp::Parameter<double, 4> q("q", random_tensor<double, 4>({B, H, T, D}, 1)), k("k", random_tensor<double, 4>({B, H, T, D}, 2)),
      v("v", random_tensor<double, 4>({B, H, T, D}, 3));
  auto y = dp::scaled_dot_product_attention(q.var(), k.var(), v.var(), {.mask = mask});
  for (index_t h = 0; h < H; ++h)
    for (index_t t = 0; t < T; ++t)
      for (index_t d = 0; d < D; ++d) CHECK(y.value()(1, h, t, d) == 0.0);
  for (double e : y.value().span()) CHECK(std::isfinite(e));
  y.backward(random_tensor<double, 4>({B, H, T, D}, 4));
  for (const auto* g : {&q.grad(), &k.grad(), &v.grad()})
    for (double e : g->span()) CHECK(std::isfinite(e));
  CHECK(q.grad()(1, 0, 0, 0) == 0.0);
  // the same rows with a prefix attend to the prefix only
  auto pk = random_tensor<double, 3>({H, 2, D}, 5), pv = random_tensor<double, 3>({H, 2, D}, 6);
  auto yp = dp::scaled_dot_product_attention(Var<double, 4>(q.value()), Var<double, 4>(k.value()),
                                             Var<double, 4>(v.value()), {.mask = mask, .prefix_k = Var<double, 3>(pk),
                                                                         .prefix_v = Var<double, 3>(pv)});
  auto yo = dp::scaled_dot_product_attention(Var<double, 4>(q.value().slice(1, 2).clone()),
                                             Var<double, 4>(Tensor<double, 4>({1, H, 0, D})),
                                             Var<double, 4>(Tensor<double, 4>({1, H, 0, D})),
                                             {.prefix_k = Var<double, 3>(pk), .prefix_v = Var<double, 3>(pv)});
  CHECK(dp_test::max_abs_diff(yp.value().slice(1, 2).clone(), yo.value()) < 1e-14);
}

TEST_CASE("attention: gradients of q, k, v, prefix and bias (double, finite differences)") {
  std::uint64_t seed = 500;
  const Case cases[] = {
      {2, 2, 3, 4, 3},                                                 // plain
      // A fully padded example without a prefix is left out here: its scores all round to the
      // lowest float, so the computed function is flat (finite differences give 0) while the
      // gradient is that of the uniform softmax, as in PyTorch (checked in the parity test).
      {3, 2, 3, 4, 3, 0, true, true},                                  // mask
      {2, 2, 3, 4, 3, 2, true, true, true},                            // shared prefix + mask
      {2, 2, 3, 4, 3, 2, false, true},                                 // per-example prefix + mask
      {2, 2, 4, 4, 3, 2, true, false, false, false, true},             // causal + shared prefix
      {1, 2, 2, 5, 3, 0, true, false, false, false, true},             // causal, Tq < Tk
      {1, 2, 5, 2, 3, 2, true, false, false, false, true},             // causal, Tq > Tk
      {2, 2, 3, 3, 3, 2, true, true, false, false, false, 1, 1.0},     // T5 bias (1, ...), scale 1
      {2, 2, 3, 3, 3, 2, false, false, false, false, true, 2},         // bias (B, ...)
      {2, 2, 3, 3, 3, 2, true, false, false, false, false, 3},         // bias over the real keys
      {2, 2, 3, 4, 3, 2, true, true, false, false, false, 0, 0, 0.4},  // dropout, shared prefix
      {2, 1, 3, 4, 3, 2, false, false, false, false, true, 1, 0, 0.4}, // dropout, per-example prefix, bias
      {1, 1, 67, 3, 2, 1, true, false, false, false, true},            // two query blocks
  };
  for (const auto& c : cases) {
    CAPTURE(c.B); CAPTURE(c.Tq); CAPTURE(c.Tk); CAPTURE(c.P); CAPTURE(c.shared); CAPTURE(c.causal); CAPTURE(c.bias); CAPTURE(c.dropout);
    const auto in = make_inputs<double>(c, seed += 10);
    const auto base = options(c, in);
    auto run = [&](auto q, auto k, auto v, auto pk, auto pv, auto bias) {
      dp::AttentionOptions<double> o = base;
      dp::Generator gen(9);  // fresh: the same mask in every evaluation
      if (c.dropout > 0) o.generator = &gen;
      if constexpr (decltype(pk)::rank == 3) o.prefix_k = pk, o.prefix_v = pv;
      else o.prefix_k_batch = pk, o.prefix_v_batch = pv;
      if (c.bias) o.bias = bias;
      return dp::scaled_dot_product_attention(q, k, v, o);
    };
    const auto bias = c.bias ? in.bias : Tensor<double, 4>({1, 1, 1, 1});
    if (c.P == 0)
      dp_test::expect_ad([&](auto q, auto k, auto v, auto b) { return run(q, k, v, Var<double, 3>(), Var<double, 3>(), b); },
                         in.q, in.k, in.v, bias);
    else if (c.shared)
      dp_test::expect_ad(run, in.q, in.k, in.v, in.pk3, in.pv3, bias);
    else
      dp_test::expect_ad(run, in.q, in.k, in.v, in.pk4, in.pv4, bias);
  }
}

TEST_CASE("attention: only the inputs that need a gradient get one; no-grad records nothing") {
  const Case c{2, 2, 4, 5, 4, 3, true, true};
  const auto in = make_inputs<double>(c, 3);
  const auto dy = random_tensor<double, 4>({2, 2, 4, 4}, 9);
  // frozen backbone: only the prefix is trainable (layer 0 of P-Tuning v2)
  dp::Parameter<double, 3> pk("pk", in.pk3.clone()), pv("pv", in.pv3.clone());
  auto y = dp::scaled_dot_product_attention(Var<double, 4>(in.q), Var<double, 4>(in.k), Var<double, 4>(in.v),
                                            {.mask = in.mask, .prefix_k = pk, .prefix_v = pv});
  CHECK(dp::tape().size() == 1);
  y.backward(dy);
  // everything trainable: the prefix gradients are the same
  dp::Parameter<double, 4> q("q", in.q.clone()), k("k", in.k.clone()), v("v", in.v.clone());
  dp::Parameter<double, 3> pk2("pk", in.pk3.clone()), pv2("pv", in.pv3.clone());
  dp::scaled_dot_product_attention(q.var(), k.var(), v.var(), {.mask = in.mask, .prefix_k = pk2, .prefix_v = pv2})
      .backward(dy);
  CHECK(dp_test::max_abs_diff(pk.grad(), pk2.grad()) < 1e-15);
  CHECK(dp_test::max_abs_diff(pv.grad(), pv2.grad()) < 1e-15);
  {
    dp::NoGradGuard guard;
    auto z = dp::scaled_dot_product_attention(q.var(), k.var(), v.var(), {.prefix_k = pk, .prefix_v = pv});
    CHECK(!z.requires_grad());
    CHECK(dp::tape().size() == 0);
  }
  auto z = dp::scaled_dot_product_attention(Var<double, 4>(in.q), Var<double, 4>(in.k), Var<double, 4>(in.v));
  CHECK(!z.requires_grad());
  CHECK(dp::tape().size() == 0);
}

TEST_CASE("attention: results do not depend on the thread count") {
  const int saved = dp::cpu::num_threads();
  const Case cases[] = {{3, 4, 20, 24, 16, 5, true, true, true, false, true, 1, 0, 0.1},
                        {3, 4, 20, 24, 16, 5, false, true, false, false, false, 2}};
  for (const auto& c : cases) {
    const auto in = make_inputs<float>(c, 11);
    const auto dy = random_tensor<float, 4>({c.B, c.H, c.Tq, c.D}, 12);
    std::vector<Tensor<float, 4>> results;
    for (int threads : {1, 2, 3}) {
      dp::cpu::set_num_threads(threads);
      dp::Parameter<float, 4> q("q", in.q.clone()), k("k", in.k.clone()), v("v", in.v.clone()),
          bias("b", in.bias.clone()), pk4("pk", in.pk4.clone()), pv4("pv", in.pv4.clone());
      dp::Parameter<float, 3> pk3("pk", c.shared ? in.pk3.clone() : Tensor<float, 3>({1, 1, 1})),
          pv3("pv", c.shared ? in.pv3.clone() : Tensor<float, 3>({1, 1, 1}));
      auto o = options(c, in);
      dp::Generator gen(5);
      o.generator = &gen;
      o.bias = bias;
      if (c.shared) o.prefix_k = pk3, o.prefix_v = pv3;
      else o.prefix_k_batch = pk4, o.prefix_v_batch = pv4;
      auto y = dp::scaled_dot_product_attention(q.var(), k.var(), v.var(), o);
      results.push_back(y.value().clone());
      y.backward(dy);
      for (const auto* g : {&q.grad(), &k.grad(), &v.grad(), &bias.grad()}) results.push_back(g->clone());
      results.push_back(c.shared ? broadcast_prefix(pk3.grad(), 1) : pk4.grad().clone());
      results.push_back(c.shared ? broadcast_prefix(pv3.grad(), 1) : pv4.grad().clone());
    }
    const std::size_t n = results.size() / 3;
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(dp_test::max_abs_diff(results[i], results[n + i]) == 0.0);
      CHECK(dp_test::max_abs_diff(results[i], results[2 * n + i]) == 0.0);
    }
  }
  dp::cpu::set_num_threads(saved);
}

TEST_CASE("attention: dropout keeps about 1 - p of the probabilities, p = 1 drops all") {
  const index_t B = 2, H = 3, T = 40, D = 1;
  // v = 1 everywhere: each output is the sum of the kept, rescaled probabilities of its row
  const auto q = random_tensor<float, 4>({B, H, T, D}, 1), k = random_tensor<float, 4>({B, H, T, D}, 2);
  const auto v = Tensor<float, 4>::full({B, H, T, D}, 1.0f);
  dp::Generator gen(3);
  auto y = dp::scaled_dot_product_attention(Var<float, 4>(q), Var<float, 4>(k), Var<float, 4>(v),
                                            {.dropout = 0.25f, .generator = &gen});
  double mean = 0;
  for (float e : y.value().span()) mean += e / double(y.size());
  CHECK(mean == doctest::Approx(1.0).epsilon(0.05));
  CHECK(gen.offset() == std::uint64_t(B * H * T * T));
  auto z = dp::scaled_dot_product_attention(Var<float, 4>(q), Var<float, 4>(k), Var<float, 4>(v),
                                            {.dropout = 1.0f, .generator = &gen});
  for (float e : z.value().span()) CHECK(e == 0.0f);
  CHECK(gen.offset() == std::uint64_t(B * H * T * T));  // p == 1 draws nothing, as dp::dropout
}

TEST_CASE("attention: PyTorch parity (tests/data/attention/attention.json)") {
  std::ifstream f(DEEPPROMPT_TEST_DATA "/attention/attention.json");
  REQUIRE(f.good());
  const auto j = nlohmann::json::parse(f);
  REQUIRE(j["cases"].size() >= 8);
  for (const auto& c : j["cases"]) {
    const std::string name = c["name"];
    CAPTURE(name);
    const index_t B = c["B"], H = c["H"], Tq = c["Tq"], Tk = c["Tk"], D = c["D"], P = c["P"];
    const bool shared = c["shared"];
    auto t4 = [&](const char* key, Shape<4> s) { return Tensor<float, 4>::from(s, c[key].get<std::vector<float>>()); };
    dp::Parameter<float, 4> q("q", t4("q", {B, H, Tq, D})), k("k", t4("k", {B, H, Tk, D})), v("v", t4("v", {B, H, Tk, D}));
    dp::AttentionOptions<float> o;
    o.causal = c["causal"];
    o.scale = c["scale"].get<float>();
    if (c.contains("mask"))
      o.mask = dp::attention_mask<float>(Tensor<std::int64_t, 2>::from({B, Tk}, c["mask"].get<std::vector<std::int64_t>>()));
    dp::Parameter<float, 3> pk3, pv3;
    dp::Parameter<float, 4> pk4, pv4, bias;
    if (P > 0 && shared) {
      pk3 = dp::Parameter<float, 3>("pk", Tensor<float, 3>::from({H, P, D}, c["pk"].get<std::vector<float>>()));
      pv3 = dp::Parameter<float, 3>("pv", Tensor<float, 3>::from({H, P, D}, c["pv"].get<std::vector<float>>()));
      o.prefix_k = pk3, o.prefix_v = pv3;
    } else if (P > 0) {
      pk4 = dp::Parameter<float, 4>("pk", t4("pk", {B, H, P, D}));
      pv4 = dp::Parameter<float, 4>("pv", t4("pv", {B, H, P, D}));
      o.prefix_k_batch = pk4, o.prefix_v_batch = pv4;
    }
    if (c.contains("bias")) {
      bias = dp::Parameter<float, 4>("bias", t4("bias", {1, H, Tq, P + Tk}));
      o.bias = bias;
    }
    auto y = dp::scaled_dot_product_attention(q.var(), k.var(), v.var(), o);
    CHECK(dp_test::max_abs_diff(y.value(), t4("out", {B, H, Tq, D})) < 1e-5);
    y.backward(t4("dy", {B, H, Tq, D}));
    CHECK(dp_test::max_abs_diff(q.grad(), t4("dq", {B, H, Tq, D})) < 1e-5);
    CHECK(dp_test::max_abs_diff(k.grad(), t4("dk", {B, H, Tk, D})) < 1e-5);
    CHECK(dp_test::max_abs_diff(v.grad(), t4("dv", {B, H, Tk, D})) < 1e-5);
    if (P > 0 && shared) {
      CHECK(dp_test::max_abs_diff(pk3.grad(), Tensor<float, 3>::from({H, P, D}, c["dpk"].get<std::vector<float>>())) < 1e-5);
      CHECK(dp_test::max_abs_diff(pv3.grad(), Tensor<float, 3>::from({H, P, D}, c["dpv"].get<std::vector<float>>())) < 1e-5);
    } else if (P > 0) {
      CHECK(dp_test::max_abs_diff(pk4.grad(), t4("dpk", {B, H, P, D})) < 1e-5);
      CHECK(dp_test::max_abs_diff(pv4.grad(), t4("dpv", {B, H, P, D})) < 1e-5);
    }
    if (c.contains("bias")) CHECK(dp_test::max_abs_diff(bias.grad(), t4("dbias", {1, H, Tq, P + Tk})) < 1e-5);
  }
}

TEST_CASE("attention: shape errors name the op and the shapes") {
  using V4 = Var<float, 4>;
  const V4 q(Tensor<float, 4>({2, 3, 4, 8})), k(Tensor<float, 4>({2, 3, 5, 8})), v(Tensor<float, 4>({2, 3, 5, 8}));
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, V4(Tensor<float, 4>({2, 3, 6, 8}))),
                       "scaled_dot_product_attention: keys and values differ in shape; got (2, 3, 5, 8) and (2, 3, 6, 8)",
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, V4(Tensor<float, 4>({2, 3, 5, 4})), V4(Tensor<float, 4>({2, 3, 5, 4}))),
                       doctest::Contains("differ in B, H or D; got (2, 3, 4, 8) and (2, 3, 5, 4)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.mask = Tensor<float, 2>({2, 4})}),
                       doctest::Contains("the mask must be (B, Tk) or (B, P + Tk) for keys (B, H, Tk, D) and P prefix tokens; got (2, 4) and (2, 5, 0)"),
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.bias = V4(Tensor<float, 4>({1, 3, 4, 4}))}),
                       doctest::Contains("got (1, 3, 4, 4) and (2, 3, 4, 5, 0)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.prefix_k = Var<float, 3>(Tensor<float, 3>({2, 7, 8})),
                                                                  .prefix_v = Var<float, 3>(Tensor<float, 3>({2, 7, 8}))}),
                       doctest::Contains("shared prefix (H, P, D) does not fit the queries (B, H, Tq, D); got (2, 7, 8) and (2, 3, 4, 8)"),
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.prefix_k = Var<float, 3>(Tensor<float, 3>({3, 7, 8})),
                                                                  .prefix_v = Var<float, 3>(Tensor<float, 3>({3, 6, 8}))}),
                       doctest::Contains("prefix keys and prefix values differ in shape; got (3, 7, 8) and (3, 6, 8)"),
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.prefix_k_batch = V4(Tensor<float, 4>({1, 3, 7, 8})),
                                                                  .prefix_v_batch = V4(Tensor<float, 4>({1, 3, 7, 8}))}),
                       doctest::Contains("per-example prefix (B, H, P, D) does not fit the queries (B, H, Tq, D); got (1, 3, 7, 8) and (2, 3, 4, 8)"),
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.prefix_k = Var<float, 3>(Tensor<float, 3>({3, 7, 8})),
                                                                  .prefix_v = Var<float, 3>(Tensor<float, 3>({3, 7, 8})),
                                                                  .prefix_k_batch = V4(Tensor<float, 4>({2, 3, 7, 8})),
                                                                  .prefix_v_batch = V4(Tensor<float, 4>({2, 3, 7, 8}))}),
                       doctest::Contains("not both; got (3, 7, 8) and (2, 3, 7, 8)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.dropout = 0.1f}),
                       doctest::Contains("needs a Generator"), dp::Error);
  dp::Generator gen(1);
  CHECK_THROWS_WITH_AS(dp::scaled_dot_product_attention(q, k, v, {.dropout = 1.5f, .generator = &gen}),
                       doctest::Contains("dropout probability 1.5 is not in [0, 1]"), dp::Error);
}

}  // namespace test_ops_attention
