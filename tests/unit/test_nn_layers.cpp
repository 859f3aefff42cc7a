// nn/ layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, activations, FeedForward and
// multi-head attention (with key/value prefix): names, initialisation, values against plain
// loops, gradients by finite differences (double).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "deepprompt/nn/layers.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "testing.hpp"

namespace test_nn_layers {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Tensor;
using dp::Var;
using dp_test::random_tensor;

namespace {

template <class M>
std::vector<std::string> names_of(M& m) {
  std::vector<std::string> out;
  dp::for_each_parameter(m, [&](const std::string& n, auto& p) { out.push_back(n + " " + dp::shape_str(p.shape())); });
  return out;
}

double mean_of(const Tensor<float, 2>& t) {
  double s = 0;
  for (float x : t) s += x;
  return s / double(t.size());
}
double std_of(const Tensor<float, 2>& t) {
  const double m = mean_of(t);
  double s = 0;
  for (float x : t) s += (x - m) * (x - m);
  return std::sqrt(s / double(t.size()));
}

}  // namespace

TEST_CASE("nn: Linear names, Hugging Face initialisation and forward") {
  dp::Generator gen(7);
  dp::Linear<float> lin(300, 200, true, gen);
  CHECK(names_of(lin) == std::vector<std::string>{"weight (300, 200)", "bias (300)"});
  CHECK(lin.in_features() == 200);
  CHECK(lin.out_features() == 300);
  CHECK(std::abs(mean_of(lin.weight.value())) < 0.001);
  CHECK(std::abs(std_of(lin.weight.value()) - 0.02) < 0.0005);
  for (float b : lin.bias->value()) CHECK(b == 0.f);

  dp::Linear<float> nobias(3, 2, false, gen);
  CHECK(names_of(nobias) == std::vector<std::string>{"weight (3, 2)"});

  dp::Linear<double> l2(3, 4, true, gen, 0.5);
  l2.bias->value().copy_from(random_tensor<double, 1>({3}, 3));
  auto x = random_tensor<double, 3>({2, 5, 4}, 4);
  auto y = l2(Var<double, 3>(x)).value();
  REQUIRE(y.shape() == dp::Shape<3>{2, 5, 3});
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < 5; ++t)
      for (index_t o = 0; o < 3; ++o) {
        double r = l2.bias->value()(o);
        for (index_t i = 0; i < 4; ++i) r += x(b, t, i) * l2.weight.value()(o, i);
        CHECK(y(b, t, o) == doctest::Approx(r).epsilon(1e-12));
      }
}

TEST_CASE("nn: Embedding zeroes its padding row and gives it no gradient") {
  dp::Generator gen(1);
  dp::Embedding<float> emb(10, 4, gen, 3);
  CHECK(names_of(emb) == std::vector<std::string>{"weight (10, 4)"});
  for (index_t c = 0; c < 4; ++c) CHECK(emb.weight.value()(3, c) == 0.f);
  CHECK(emb.weight.value()(2, 0) != 0.f);
  CHECK_THROWS_AS(dp::Embedding<float>(10, 4, gen, 10), dp::Error);

  emb.weight.value()(3, 1) = 5.f;  // a loaded checkpoint may have any value there
  auto ids = Tensor<std::int64_t, 2>::from({2, 2}, {3, 1, 1, 3});
  auto y = emb(ids);
  CHECK(y.value()(0, 0, 1) == 5.f);
  dp::sum(y).backward();
  for (index_t c = 0; c < 4; ++c) {
    CHECK(emb.weight.grad()(3, c) == 0.f);
    CHECK(emb.weight.grad()(1, c) == 2.f);
  }
}

TEST_CASE("nn: LayerNorm and RMSNorm start at identity scale and match the ops") {
  dp::LayerNorm<double> ln(6, 1e-12);
  dp::RMSNorm<double> rms(6);
  CHECK(names_of(ln) == std::vector<std::string>{"weight (6)", "bias (6)"});
  CHECK(names_of(rms) == std::vector<std::string>{"weight (6)"});
  auto x = random_tensor<double, 2>({3, 6}, 9);
  auto y = ln(Var<double, 2>(x)).value();
  auto z = rms(Var<double, 2>(x)).value();
  for (index_t r = 0; r < 3; ++r) {
    double m = 0, v = 0, ms = 0;
    for (index_t c = 0; c < 6; ++c) m += x(r, c) / 6, ms += x(r, c) * x(r, c) / 6;
    for (index_t c = 0; c < 6; ++c) v += (x(r, c) - m) * (x(r, c) - m) / 6;
    for (index_t c = 0; c < 6; ++c) {
      CHECK(y(r, c) == doctest::Approx((x(r, c) - m) / std::sqrt(v + 1e-12)).epsilon(1e-10));
      CHECK(z(r, c) == doctest::Approx(x(r, c) / std::sqrt(ms + 1e-6)).epsilon(1e-10));
    }
  }
}

TEST_CASE("nn: Dropout is the identity in evaluation and needs a generator in training") {
  dp::Dropout d(0.5);
  Var<float, 1> x(Tensor<float, 1>::full({1000}, 1.f));
  auto same = d.forward(x, nullptr, false);
  CHECK(same.value().data() == x.value().data());
  CHECK_THROWS_WITH_AS(d.forward(x, nullptr, true), doctest::Contains("needs a Generator"), dp::Error);
  dp::Generator g(3);
  auto y = d.forward(x, &g, true).value();
  int kept = 0;
  for (float v : y) {
    CHECK((v == 0.f || v == 2.f));
    kept += v != 0.f;
  }
  CHECK(kept > 400);
  CHECK(kept < 600);
  CHECK_THROWS_AS(dp::Dropout(1.5), dp::Error);
}

TEST_CASE("nn: activations by Hugging Face name") {
  dp::Activation a{};
  CHECK(dp::parse_activation("gelu", a));
  CHECK(a == dp::Activation::gelu);
  CHECK(dp::parse_activation("gelu_new", a));
  CHECK(a == dp::Activation::gelu_new);
  CHECK(dp::parse_activation("swish", a));
  CHECK(a == dp::Activation::silu);
  CHECK(!dp::parse_activation("mish", a));
  CHECK(dp::activation_name(dp::Activation::relu) == "relu");
  auto x = Tensor<double, 1>::from({3}, {-1.0, 0.5, 2.0});
  auto y = dp::activate(Var<double, 1>(x), dp::Activation::silu).value();
  for (index_t i = 0; i < 3; ++i) CHECK(y(i) == doctest::Approx(x(i) / (1 + std::exp(-x(i)))));
  auto g = dp::activate(Var<double, 1>(x), dp::Activation::gelu).value();
  CHECK(g(0) == doctest::Approx(-1.0 * 0.5 * (1 + std::erf(-1.0 / std::sqrt(2.0)))));
  for (auto act : {dp::Activation::gelu, dp::Activation::gelu_new, dp::Activation::silu, dp::Activation::tanh})
    dp_test::expect_ad([act](auto v) { return dp::activate(v, act); }, random_tensor<double, 2>({2, 3}, 5));
}

TEST_CASE("nn: FeedForward, plain and gated, with T5's names") {
  dp::Generator gen(2);
  dp::FeedForward<double> ff(4, 6, dp::Activation::relu, false, false, gen, 0.0, 0.5, 0.5);
  CHECK(names_of(ff) == std::vector<std::string>{"wi.weight (6, 4)", "wo.weight (4, 6)"});
  dp::FeedForward<double> gated(4, 6, dp::Activation::gelu_new, true, false, gen, 0.0, 0.5, 0.5);
  CHECK(names_of(gated) == std::vector<std::string>{"wi_0.weight (6, 4)", "wi_1.weight (6, 4)", "wo.weight (4, 6)"});
  CHECK(gated.gated());
  auto x = random_tensor<double, 3>({2, 3, 4}, 11);
  Var<double, 3> xv(x);
  auto y = gated.forward(xv).value();
  auto ref = gated.wo(dp::mul(dp::gelu_tanh(gated.wi(xv)), (*gated.wi_1)(xv))).value();
  CHECK(dp_test::max_abs_diff(y, ref) == 0.0);
  // gradient through everything, x and the three weights
  dp::Generator g2(5);
  dp_test::expect_ad(
      [&](auto xx, auto w0, auto w1, auto wo) {
        auto h = dp::mul(dp::gelu_tanh(dp::linear(xx, w0)), dp::linear(xx, w1));
        return dp::linear(h, wo);
      },
      x, gated.wi.weight.value().clone(), gated.wi_1->weight.value().clone(), gated.wo.weight.value().clone());
}

namespace {

// Plain multi-head attention in double: q (B, Tq, H*D), k, v (B, Tk, H*D), shared prefix
// pk, pv (H, P, D) or empty, 0/1 mask (B, Tk) or empty.
Tensor<double, 3> mha_reference(const Tensor<double, 3>& q, const Tensor<double, 3>& k, const Tensor<double, 3>& v,
                                index_t H, const Tensor<double, 3>& pk, const Tensor<double, 3>& pv,
                                const Tensor<std::int64_t, 2>& mask, bool causal) {
  const index_t B = q.extent(0), Tq = q.extent(1), Tk = k.extent(1), C = q.extent(2), D = C / H;
  const index_t P = pk.empty() ? 0 : pk.extent(1);
  Tensor<double, 3> out = Tensor<double, 3>::zeros({B, Tq, C});
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < Tq; ++i) {
        std::vector<double> s(P + Tk);
        double mx = -1e300;
        for (index_t j = 0; j < P + Tk; ++j) {
          double d = 0;
          for (index_t e = 0; e < D; ++e) d += q(b, i, h * D + e) * (j < P ? pk(h, j, e) : k(b, j - P, h * D + e));
          d /= std::sqrt(double(D));
          if (j >= P && !mask.empty() && mask(b, j - P) == 0) d = -1e300;
          if (j >= P && causal && j - P > i + Tk - Tq) d = -1e300;
          s[j] = d;
          mx = std::max(mx, d);
        }
        double z = 0;
        for (auto& x : s) z += (x = std::exp(x - mx));
        for (index_t j = 0; j < P + Tk; ++j)
          for (index_t e = 0; e < D; ++e)
            out(b, i, h * D + e) += s[j] / z * (j < P ? pv(h, j, e) : v(b, j - P, h * D + e));
      }
  return out;
}

}  // namespace

TEST_CASE("nn: multi_head_attention splits heads, takes a prefix and a mask, merges back") {
  const index_t B = 2, Tq = 3, Tk = 4, H = 2, D = 3, P = 2;
  auto q = random_tensor<double, 3>({B, Tq, H * D}, 1);
  auto k = random_tensor<double, 3>({B, Tk, H * D}, 2);
  auto v = random_tensor<double, 3>({B, Tk, H * D}, 3);
  auto pk = random_tensor<double, 3>({H, P, D}, 4);
  auto pv = random_tensor<double, 3>({H, P, D}, 5);
  auto mask = Tensor<std::int64_t, 2>::from({B, Tk}, {1, 1, 1, 1, 1, 1, 0, 0});

  dp::AttentionCall<double> call;
  call.mask = dp::attention_mask<double>(mask);
  call.prefix = dp::KVPrefix<double>::shared(Var<double, 3>(pk), Var<double, 3>(pv));
  CHECK(call.prefix.length() == P);
  auto y = dp::multi_head_attention(Var<double, 3>(q), Var<double, 3>(k), Var<double, 3>(v), H, call).value();
  CHECK(dp_test::max_abs_diff(y, mha_reference(q, k, v, H, pk, pv, mask, false)) < 1e-12);

  dp::AttentionCall<double> causal;
  causal.causal = true;
  auto yc = dp::multi_head_attention(Var<double, 3>(q), Var<double, 3>(k), Var<double, 3>(v), H, causal).value();
  CHECK(dp_test::max_abs_diff(yc, mha_reference(q, k, v, H, {}, {}, {}, true)) < 1e-12);

  // the same prefix per example gives the same values
  Tensor<double, 4> pkb({B, H, P, D}), pvb({B, H, P, D});
  for (index_t b = 0; b < B; ++b) {
    std::copy(pk.begin(), pk.end(), pkb.data() + b * pk.size());
    std::copy(pv.begin(), pv.end(), pvb.data() + b * pv.size());
  }
  call.prefix = dp::KVPrefix<double>::per_example(Var<double, 4>(pkb), Var<double, 4>(pvb));
  auto yb = dp::multi_head_attention(Var<double, 3>(q), Var<double, 3>(k), Var<double, 3>(v), H, call).value();
  CHECK(dp_test::max_abs_diff(y, yb) < 1e-14);

  // gradients reach q, k, v and the prefix
  const auto m = dp::attention_mask<double>(mask);
  dp_test::expect_ad(
      [&](auto qq, auto kk, auto vv, auto ppk, auto ppv) {
        dp::AttentionCall<double> c;
        c.mask = m;
        c.prefix = dp::KVPrefix<double>::shared(ppk, ppv);
        return dp::multi_head_attention(qq, kk, vv, H, c);
      },
      q, k, v, pk, pv);
}

TEST_CASE("nn: MultiHeadAttention module, names chosen at construction, self and cross") {
  dp::Generator gen(3);
  dp::MultiHeadAttention<double> att(6, 2, 4, false, gen, {}, 0.3);
  CHECK(names_of(att) ==
        std::vector<std::string>{"q.weight (8, 6)", "k.weight (8, 6)", "v.weight (8, 6)", "o.weight (6, 8)"});
  dp::MultiHeadAttention<double> bert_like(6, 2, 3, true, gen, {"query", "key", "value", "dense"});
  CHECK(names_of(bert_like)[0] == "query.weight (6, 6)");
  CHECK(names_of(bert_like)[7] == "dense.bias (6)");

  auto x = random_tensor<double, 3>({2, 3, 6}, 7);
  auto mem = random_tensor<double, 3>({2, 5, 6}, 8);
  Var<double, 3> xv(x), mv(mem);
  auto y = att.forward(xv, mv, {}).value();
  REQUIRE(y.shape() == dp::Shape<3>{2, 3, 6});
  auto ref = mha_reference(att.q(xv).value(), att.k(mv).value(), att.v(mv).value(), 2, {}, {}, {}, false);
  auto yref = att.o(Var<double, 3>(ref)).value();
  CHECK(dp_test::max_abs_diff(y, yref) < 1e-12);
  CHECK(dp::parameter_count(att) == 4 * 48);
  CHECK_THROWS_AS(dp::MultiHeadAttention<float>(6, 0, 3, true, gen), dp::Error);
}

}  // namespace test_nn_layers
