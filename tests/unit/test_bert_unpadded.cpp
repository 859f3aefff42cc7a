// Bert with BertRun::unpadded: the layers run on the real tokens only (packed sequences). Its
// outputs and gradients equal the padded run's on the real positions, with no prefix, a shared
// and a per-example key/value prefix; padded positions are zero; masks it cannot pack take the
// padded path; a finite-difference check (double) of the prompt's gradient with dropout on.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "deepprompt/autodiff/parameter.hpp"
#include "deepprompt/models/bert.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "testing.hpp"

namespace test_bert_unpadded {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Shape;
using dp::Tensor;
using dp::Var;
using dp_test::random_tensor;

namespace {

constexpr index_t kB = 3, kT = 7, kH = 2, kD = 8, kC = kH * kD, kP = 3, kLayers = 2;
const std::vector<index_t> kLengths{7, 4, 1};

template <class T>
dp::DynamicBert<T> tiny_bert(double dropout = 0.0) {
  dp::BertDynamicConfig cfg;
  cfg.hidden = kC, cfg.layers = kLayers, cfg.heads = kH, cfg.intermediate = 24, cfg.vocab = 40, cfg.max_positions = 32;
  cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout;
  cfg.validate();
  return dp::DynamicBert<T>(cfg, dp::BertInit{.seed = 5});
}

struct Batch {
  Tensor<std::int64_t, 2> ids = Tensor<std::int64_t, 2>::zeros({kB, kT}), mask = Tensor<std::int64_t, 2>::zeros({kB, kT});
};

Batch batch() {
  Batch b;
  std::mt19937_64 rng(3);
  for (index_t r = 0; r < kB; ++r)
    for (index_t t = 0; t < kLengths[static_cast<std::size_t>(r)]; ++t) {
      b.ids(r, t) = 1 + static_cast<std::int64_t>(rng() % 39);
      b.mask(r, t) = 1;
    }
  return b;
}

// prefix: 0 none, 1 shared (H, P, D) per layer, 2 per example (B, H, P, D) per layer.
struct Run {
  Tensor<float, 3> hidden;
  Tensor<float, 2> pooled;
  std::vector<Tensor<float, 3>> grad_shared;
  std::vector<Tensor<float, 4>> grad_batch;
};

Run run(int prefix, bool unpadded, const Tensor<std::int64_t, 2>& mask, bool first_token_only = false) {
  auto bert = tiny_bert<float>();
  const Batch in = batch();
  std::vector<dp::Parameter<float, 3>> pk, pv;
  std::vector<dp::Parameter<float, 4>> pkb, pvb;
  for (index_t l = 0; l < kLayers; ++l) {
    pk.emplace_back("pk", random_tensor<float, 3>({kH, kP, kD}, 10 + l));
    pv.emplace_back("pv", random_tensor<float, 3>({kH, kP, kD}, 20 + l));
    pkb.emplace_back("pkb", random_tensor<float, 4>({kB, kH, kP, kD}, 30 + l));
    pvb.emplace_back("pvb", random_tensor<float, 4>({kB, kH, kP, kD}, 40 + l));
  }
  auto prefixes = [&](index_t l) -> dp::KVPrefix<float> {
    const auto i = static_cast<std::size_t>(l);
    if (prefix == 1) return dp::KVPrefix<float>::shared(pk[i].var(), pv[i].var());
    if (prefix == 2) return dp::KVPrefix<float>::per_example(pkb[i].var(), pvb[i].var());
    return {};
  };
  dp::BertRun r;
  r.unpadded = unpadded;
  r.first_token_only = first_token_only;
  const auto out = bert.forward(in.ids, mask, {}, r, prefixes);
  // the loss: the pooled output, and (unless only the first tokens were computed) the real positions
  const Var<float, 2> wp(random_tensor<float, 2>({kB, kC}, 51));
  Var<float, 0> loss = dp::sum(dp::mul(out.pooler_output, wp));
  if (!first_token_only) {
    auto w = Tensor<float, 3>::zeros({kB, kT, kC});
    const auto wr = random_tensor<float, 3>({kB, kT, kC}, 50);
    for (index_t b = 0; b < kB; ++b)
      for (index_t t = 0; t < kLengths[static_cast<std::size_t>(b)]; ++t)
        for (index_t c = 0; c < kC; ++c) w(b, t, c) = wr(b, t, c);
    loss = dp::add(dp::sum(dp::mul(out.last_hidden_state, Var<float, 3>(w))), loss);
  }
  Run res{out.last_hidden_state.value().clone(), out.pooler_output.value().clone(), {}, {}};
  if (prefix > 0) {
    loss.backward();
    for (index_t l = 0; l < kLayers; ++l) {
      const auto i = static_cast<std::size_t>(l);
      if (prefix == 1) res.grad_shared.push_back(pk[i].grad().clone()), res.grad_shared.push_back(pv[i].grad().clone());
      if (prefix == 2) res.grad_batch.push_back(pkb[i].grad().clone()), res.grad_batch.push_back(pvb[i].grad().clone());
    }
  }
  return res;
}

}  // namespace

TEST_CASE("bert unpadded: equals the padded run on the real positions, prefix gradients too; zeros at padding") {
  for (int prefix : {0, 1, 2}) {
    CAPTURE(prefix);
    const auto mask = batch().mask;
    const Run a = run(prefix, false, mask), b = run(prefix, true, mask);
    double err = 0, pad = 0;
    for (index_t r = 0; r < kB; ++r)
      for (index_t t = 0; t < kT; ++t)
        for (index_t c = 0; c < kC; ++c) {
          if (t < kLengths[static_cast<std::size_t>(r)])
            err = std::max(err, double(std::abs(a.hidden(r, t, c) - b.hidden(r, t, c))));
          else
            pad = std::max(pad, double(std::abs(b.hidden(r, t, c))));
        }
    CHECK(err < 2e-5);
    CHECK(pad == 0.0);
    CHECK(dp_test::max_abs_diff(a.pooled, b.pooled) < 2e-5);
    REQUIRE(a.grad_shared.size() == b.grad_shared.size());
    for (std::size_t i = 0; i < a.grad_shared.size(); ++i) CHECK(dp_test::max_abs_diff(a.grad_shared[i], b.grad_shared[i]) < 2e-5);
    REQUIRE(a.grad_batch.size() == b.grad_batch.size());
    for (std::size_t i = 0; i < a.grad_batch.size(); ++i) CHECK(dp_test::max_abs_diff(a.grad_batch[i], b.grad_batch[i]) < 2e-5);
    if (prefix > 0) CHECK(!(a.grad_shared.empty() && a.grad_batch.empty()));
  }
}

TEST_CASE("bert unpadded, first token only: the [CLS] rows and the pooled output of the full run, prefix gradients too") {
  for (int prefix : {1, 2}) {
    CAPTURE(prefix);
    const auto mask = batch().mask;
    const Run a = run(prefix, false, mask, false), b = run(prefix, true, mask, true);
    REQUIRE(b.hidden.shape() == Shape<3>{kB, 1, kC});
    double err = 0;
    for (index_t r = 0; r < kB; ++r)
      for (index_t c = 0; c < kC; ++c) err = std::max(err, double(std::abs(a.hidden(r, 0, c) - b.hidden(r, 0, c))));
    CHECK(err < 2e-5);
    CHECK(dp_test::max_abs_diff(a.pooled, b.pooled) < 2e-5);
    // the gradients of a pooled-only loss: compare with the full unpadded run on the same loss
    // (the padded path ignores first_token_only: d is the whole computation with the same loss)
    const Run c = run(prefix, true, mask, true), d = run(prefix, false, mask, true);
    REQUIRE(d.hidden.shape() == Shape<3>{kB, kT, kC});
    for (std::size_t i = 0; i < c.grad_shared.size(); ++i) CHECK(dp_test::max_abs_diff(c.grad_shared[i], d.grad_shared[i]) < 2e-5);
    for (std::size_t i = 0; i < c.grad_batch.size(); ++i) CHECK(dp_test::max_abs_diff(c.grad_batch[i], d.grad_batch[i]) < 2e-5);
    CHECK(!(c.grad_shared.empty() && c.grad_batch.empty()));
  }
}

TEST_CASE("bert unpadded, first token only: the prefix gradient by finite differences (double), dropout on") {
  auto bert = tiny_bert<double>(0.2);
  const Batch in = batch();
  auto f = [&](auto pk, auto pv) {
    dp::Generator gen(9);
    dp::BertRun r{.training = true, .generator = &gen};
    r.unpadded = true;
    r.first_token_only = true;
    auto prefix = [&](index_t) { return dp::KVPrefix<double>::shared(pk, pv); };
    return bert.forward(in.ids, in.mask, {}, r, prefix).pooler_output;
  };
  dp_test::expect_ad(f, random_tensor<double, 3>({kH, kP, kD}, 62), random_tensor<double, 3>({kH, kP, kD}, 63));
}

TEST_CASE("bert unpadded: a mask that is not right-padded takes the padded path (the same bits)") {
  auto mask = batch().mask;
  mask(1, 0) = 0;  // a hole at the start of row 1
  const Run a = run(1, false, mask), b = run(1, true, mask);
  CHECK(dp_test::max_abs_diff(a.hidden, b.hidden) == 0.0);
  CHECK(dp_test::max_abs_diff(a.grad_shared[0], b.grad_shared[0]) == 0.0);
}

TEST_CASE("bert unpadded: the prefix gradient by finite differences (double), dropout on") {
  auto bert = tiny_bert<double>(0.2);
  const Batch in = batch();
  auto f = [&](auto pk, auto pv) {
    dp::Generator gen(9);  // the same dropout words on every call
    dp::BertRun r{.training = true, .generator = &gen};
    r.unpadded = true;
    auto prefix = [&](index_t) { return dp::KVPrefix<double>::shared(pk, pv); };
    return bert.forward(in.ids, in.mask, {}, r, prefix).pooler_output;
  };
  dp_test::expect_ad(f, random_tensor<double, 3>({kH, kP, kD}, 60), random_tensor<double, 3>({kH, kP, kD}, 61));
}

}  // namespace test_bert_unpadded
