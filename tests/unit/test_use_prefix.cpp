// peft/use_lite_prefix.hpp and UseLite's prefix hook: P-Tuning v2 on a USE-Lite-shaped model whose
// two layers have different widths (a tiny random model: tests/unit/use_lite_tiny.hpp). The
// forward pass is compared with the literal computation in plain loops (the prefix's keys and
// values concatenated in front of the layer's own, the padding mask extended with ones), and the
// prefix's gradient with finite differences in double.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "deepprompt/autodiff/grad_check.hpp"
#include "deepprompt/peft/use_lite_prefix.hpp"
#include "use_lite_tiny.hpp"

using namespace deepprompt;

namespace {

using Vec = std::vector<double>;

Vec lin(const Linear<double>& f, const Vec& x) {  // W (out, in) x + b
  const index_t out = f.out_features(), in = f.in_features();
  Vec y(static_cast<std::size_t>(out));
  for (index_t o = 0; o < out; ++o) {
    double s = f.bias ? f.bias->value()(o) : 0.0;
    for (index_t i = 0; i < in; ++i) s += f.weight.value()(o, i) * x[static_cast<std::size_t>(i)];
    y[static_cast<std::size_t>(o)] = s;
  }
  return y;
}

Vec layer_norm(const LayerNorm<double>& n, const Vec& x) {
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= double(x.size());
  for (double v : x) var += (v - mean) * (v - mean);
  var /= double(x.size());
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    y[i] = (x[i] - mean) / std::sqrt(var + n.eps) * n.weight.value()(index_t(i)) + n.bias.value()(index_t(i));
  return y;
}

Vec add(Vec a, const Vec& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// One sentence (no padding) through the model, layer l's prefix rows[l] (P, 2 * H * D) or none.
Vec reference_encode(const UseLite<double>& m, const std::vector<std::int32_t>& ids,
                     const std::vector<const Tensor<double, 2>*>& rows) {
  const std::size_t n = std::min<std::size_t>(ids.size(), std::size_t(m.config.max_tokens));
  const index_t C = m.config.embed, half = C / 2;
  std::vector<Vec> x(n, Vec(std::size_t(C)));
  for (std::size_t t = 0; t < n; ++t)
    for (index_t c = 0; c < C; ++c) {
      const double e = m.embeddings.weight.value()(ids[t], c);
      const double arg = double(t) * m.inv_timescales(c % half);
      x[t][std::size_t(c)] = 2 * e + (c < half ? std::sin(arg) : std::cos(arg));
    }
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    const auto& L = m.layers[l];
    const index_t H = L.attention.heads, W = L.attention.k.out_features(), D = W / H;
    std::vector<Vec> keys, values, q;  // prefix rows first, then the sentence's
    if (rows[l])
      for (index_t p = 0; p < rows[l]->extent(0); ++p) {
        Vec k(static_cast<std::size_t>(W)), v(static_cast<std::size_t>(W));
        for (index_t c = 0; c < W; ++c) k[std::size_t(c)] = (*rows[l])(p, c), v[std::size_t(c)] = (*rows[l])(p, W + c);
        keys.push_back(k), values.push_back(v);
      }
    for (std::size_t t = 0; t < n; ++t) {
      const Vec h = layer_norm(L.attention_norm, x[t]);
      q.push_back(lin(L.attention.q, h)), keys.push_back(lin(L.attention.k, h)), values.push_back(lin(L.attention.v, h));
    }
    std::vector<Vec> y(n);
    for (std::size_t t = 0; t < n; ++t) {
      Vec a(std::size_t(W), 0.0);
      for (index_t hh = 0; hh < H; ++hh) {
        Vec s(keys.size());
        double mx = -1e300, z = 0;
        for (std::size_t j = 0; j < keys.size(); ++j) {
          double d = 0;
          for (index_t e = 0; e < D; ++e) d += q[t][std::size_t(hh * D + e)] * keys[j][std::size_t(hh * D + e)];
          s[j] = d * double(L.query_scale), mx = std::max(mx, s[j]);
        }
        for (auto& v : s) z += (v = std::exp(v - mx));
        for (std::size_t j = 0; j < keys.size(); ++j)
          for (index_t e = 0; e < D; ++e) a[std::size_t(hh * D + e)] += s[j] / z * values[j][std::size_t(hh * D + e)];
      }
      y[t] = add(lin(L.attention.o, a), L.residual ? lin(*L.residual, x[t]) : x[t]);
      Vec f = lin(L.ffn.wi, layer_norm(L.ffn_norm, y[t]));
      for (auto& v : f) v = std::max(v, 0.0);
      y[t] = add(lin(L.ffn.wo, f), y[t]);
    }
    x = y;
  }
  Vec pooled(std::size_t(m.config.hidden), 0.0);
  for (const auto& r : x)
    for (std::size_t c = 0; c < r.size(); ++c) pooled[c] += r[c] / double(n);
  Vec out = lin(m.projection, pooled);
  for (auto& v : out) v = std::tanh(v);
  return out;
}

const std::vector<std::vector<std::int32_t>> kSentences{{3, 7}, {1, 2, 3, 4, 5}, {19, 0, 4, 4, 8, 11, 12}, {6}};

}  // namespace

TEST_CASE("use lite prefix: one parameter per layer, sized for each layer's width") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLitePrefix<double> p(m, {.tokens = 3, .seed = 5});
  REQUIRE(p.num_layers() == 2);
  CHECK(p.tokens() == 3);
  CHECK(p.rows[0].shape() == Shape<2>{3, 16});  // 2 x (2 heads x 4)
  CHECK(p.rows[1].shape() == Shape<2>{3, 32});  // 2 x (2 heads x 8)
  CHECK(p.rows[0].trainable());
  CHECK(parameter_count(p) == 3 * 48);
  CHECK_NOTHROW(p.check_fits(m));
  const auto pre = p.prefixes();
  CHECK(pre[0].k.shape() == Shape<3>{2, 3, 4});
  CHECK(pre[1].v.shape() == Shape<3>{2, 3, 8});
  CHECK(pre[1].v.value()(1, 2, 5) == p.rows[1].value()(2, 16 + 8 + 5));  // value, head 1, element 5
  UseLitePrefix<double> other(dp_test::tiny_use_lite<double>(), {.tokens = 3});
  other.rows.pop_back();
  CHECK_THROWS_AS(other.check_fits(m), ShapeError);
  CHECK_THROWS_AS(m.encode(kSentences, {pre[0]}), ShapeError);
}

TEST_CASE("use lite prefix: the forward pass is the literal concatenation, batch-independent") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLitePrefix<double> p(m, {.tokens = 3, .seed = 5});
  const Tensor<double, 2> got = m.encode(kSentences, p.prefixes()).value();  // (4, 16), padded to 6
  const Tensor<double, 2> plain = m.encode(kSentences).value();
  double diff_plain = 0;
  for (std::size_t b = 0; b < kSentences.size(); ++b) {
    const Vec want = reference_encode(m, kSentences[b], {&p.rows[0].value(), &p.rows[1].value()});
    const Vec want0 = reference_encode(m, kSentences[b], {nullptr, nullptr});
    for (std::size_t c = 0; c < want.size(); ++c) {
      CHECK(got(index_t(b), index_t(c)) == doctest::Approx(want[c]).epsilon(1e-12));
      CHECK(plain(index_t(b), index_t(c)) == doctest::Approx(want0[c]).epsilon(1e-12));
      diff_plain = std::max(diff_plain, std::abs(want[c] - want0[c]));
    }
  }
  CHECK(diff_plain > 1e-3);  // the prefix changes the output
  // embed(): the same, L2-normalised, without a tape even though the prefix trains.
  const Tensor<double, 2> e = m.embed(kSentences, p.prefixes());
  double norm = 0;
  for (index_t c = 0; c < 16; ++c) norm += got(2, c) * got(2, c);
  for (index_t c = 0; c < 16; ++c) CHECK(e(2, c) == doctest::Approx(got(2, c) / std::sqrt(norm)).epsilon(1e-12));
  // A prefix on layer 1 only (an empty KVPrefix on layer 0).
  auto pre = p.prefixes();
  pre[0] = {};
  const Tensor<double, 2> one = m.encode(kSentences, pre).value();
  const Vec want = reference_encode(m, kSentences[1], {nullptr, &p.rows[1].value()});
  for (std::size_t c = 0; c < want.size(); ++c) CHECK(one(1, index_t(c)) == doctest::Approx(want[c]).epsilon(1e-12));
  tape().release();  // the forward passes above recorded the prefix's steps
}

TEST_CASE("use lite prefix: the gradient of both layers' prefixes matches finite differences") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLitePrefix<double> p(m, {.tokens = 2, .seed = 9});
  auto f = [&](const Var<double, 2>& r0, const Var<double, 2>& r1) {
    return m.encode(kSentences, {kv_prefixes(r0, 1, 2).front(), kv_prefixes(r1, 1, 2).front()});
  };
  const auto r = check_gradients(f, {.step = 1e-6, .atol = 1e-7, .rtol = 1e-5}, p.rows[0].value(), p.rows[1].value());
  CHECK_MESSAGE(r.ok, r.report);
}
