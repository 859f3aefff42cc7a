// peft/use_lite_prefix.hpp and UseLite's prompt hooks on a USE-Lite-shaped model whose two layers
// have different widths (a tiny random model: tests/unit/use_lite_tiny.hpp): P-Tuning v2's
// key/value prefix, Prefix Tuning's projection, the hidden-state form and the input prompt.
// Each forward pass is compared with the literal computation in plain loops (prefix keys and
// values concatenated in front of the layer's own; hidden vectors concatenated in front of the
// layer's input, the whole layer run, their outputs sliced off; input rows in front of the
// tokens), and each gradient with finite differences in double.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "deepprompt/autodiff/grad_check.hpp"
#include "deepprompt/core/init.hpp"
#include "deepprompt/peft/use_lite_prefix.hpp"
#include "use_lite_tiny.hpp"

namespace test_use_prefix {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

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

// What a sentence's computation may be given besides its ids (each optional):
struct Extra {
  std::vector<const Tensor<double, 2>*> rows{nullptr, nullptr};    // layer l's key/value prefix (P, 2 * H * D)
  std::vector<const Tensor<double, 2>*> hidden{nullptr, nullptr};  // layer l's prepended input vectors (P, in_l)
  const Tensor<double, 2>* input = nullptr;                        // input prompt (P0, embed)
};

// One sentence (no padding) through the model, literally: the input prompt's rows (doubled, no
// timing signal) in front of the tokens; at each layer the hidden vectors concatenated in front
// of the layer's input, the whole layer run on every position (prefix keys and values in front
// of the attention's own), the hidden vectors' outputs sliced off; pooling over the real tokens.
Vec reference_encode(const UseLite<double>& m, const std::vector<std::int32_t>& ids, const Extra& ex) {
  const std::size_t n = std::min<std::size_t>(ids.size(), std::size_t(m.config.max_tokens));
  const index_t C = m.config.embed, half = C / 2;
  const std::size_t P0 = ex.input ? std::size_t(ex.input->extent(0)) : 0;
  std::vector<Vec> x(P0 + n, Vec(std::size_t(C)));
  for (std::size_t t = 0; t < P0; ++t)
    for (index_t c = 0; c < C; ++c) x[t][std::size_t(c)] = 2 * (*ex.input)(index_t(t), c);
  for (std::size_t t = 0; t < n; ++t)
    for (index_t c = 0; c < C; ++c) {
      const double e = m.embeddings.weight.value()(ids[t], c);
      const double arg = double(t) * m.inv_timescales(c % half);
      x[P0 + t][std::size_t(c)] = 2 * e + (c < half ? std::sin(arg) : std::cos(arg));
    }
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    const auto& L = m.layers[l];
    const index_t H = L.attention.heads, W = L.attention.k.out_features(), D = W / H;
    std::size_t Ph = 0;
    if (ex.hidden[l]) {  // concatenate
      std::vector<Vec> cat;
      for (index_t p = 0; p < ex.hidden[l]->extent(0); ++p, ++Ph) {
        Vec r(std::size_t(ex.hidden[l]->extent(1)));
        for (std::size_t c = 0; c < r.size(); ++c) r[c] = (*ex.hidden[l])(p, index_t(c));
        cat.push_back(r);
      }
      cat.insert(cat.end(), x.begin(), x.end());
      x = cat;
    }
    std::vector<Vec> keys, values, q;  // prefix rows first, then every position's
    if (ex.rows[l])
      for (index_t p = 0; p < ex.rows[l]->extent(0); ++p) {
        Vec k(static_cast<std::size_t>(W)), v(static_cast<std::size_t>(W));
        for (index_t c = 0; c < W; ++c) k[std::size_t(c)] = (*ex.rows[l])(p, c), v[std::size_t(c)] = (*ex.rows[l])(p, W + c);
        keys.push_back(k), values.push_back(v);
      }
    for (const Vec& xt : x) {
      const Vec h = layer_norm(L.attention_norm, xt);
      q.push_back(lin(L.attention.q, h)), keys.push_back(lin(L.attention.k, h)), values.push_back(lin(L.attention.v, h));
    }
    std::vector<Vec> y(x.size());
    for (std::size_t t = 0; t < x.size(); ++t) {
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
    x.assign(y.begin() + std::ptrdiff_t(Ph), y.end());  // slice
  }
  Vec pooled(std::size_t(m.config.hidden), 0.0);
  for (std::size_t t = P0; t < x.size(); ++t)
    for (std::size_t c = 0; c < x[t].size(); ++c) pooled[c] += x[t][c] / double(n);
  Vec out = lin(m.projection, pooled);
  for (auto& v : out) v = std::tanh(v);
  return out;
}
Vec reference_encode(const UseLite<double>& m, const std::vector<std::int32_t>& ids,
                     const std::vector<const Tensor<double, 2>*>& rows) {
  return reference_encode(m, ids, Extra{.rows = rows});
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

namespace {
// Every sentence of kSentences through reference_encode with `ex`, against `got` (B, hidden).
void check_against_reference(const Tensor<double, 2>& got, const UseLite<double>& m, const Extra& ex) {
  for (std::size_t b = 0; b < kSentences.size(); ++b) {
    const Vec want = reference_encode(m, kSentences[b], ex);
    for (std::size_t c = 0; c < want.size(); ++c)
      CHECK(got(index_t(b), index_t(c)) == doctest::Approx(want[c]).epsilon(1e-12));
  }
}
double max_abs_diff(const Tensor<double, 2>& a, const Tensor<double, 2>& b) {
  double d = 0;
  for (index_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a.data()[i] - b.data()[i]));
  return d;
}
}  // namespace

TEST_CASE("use lite hidden prompt: the literal 'concatenate, run the whole layer, slice', computed as a prefix") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLiteHiddenPrompt<double> h(m, {.tokens = 3, .seed = 4});
  REQUIRE(h.rows.size() == 2);
  CHECK(h.rows[0].shape() == Shape<2>{3, 8});  // layer 0's input width
  CHECK(h.rows[1].shape() == Shape<2>{3, 16});
  CHECK(parameter_count(h, true) == 3 * 24);
  const Tensor<double, 2> got = m.encode(kSentences, h.prefixes(m)).value();
  check_against_reference(got, m, Extra{.hidden = {&h.rows[0].value(), &h.rows[1].value()}});
  // A zero prompt is not a no-op: LN(0) is the norm's bias, whose keys and values take attention.
  const Tensor<double, 2> plain = m.encode(kSentences).value();
  CHECK(max_abs_diff(got, plain) > 1e-3);
  for (auto& r : h.rows) r.value().fill(0.0);
  const Tensor<double, 2> zero = m.encode(kSentences, h.prefixes(m)).value();
  CHECK(max_abs_diff(zero, plain) > 1e-4);
  check_against_reference(zero, m, Extra{.hidden = {&h.rows[0].value(), &h.rows[1].value()}});
  h.rows.pop_back();
  CHECK_THROWS_AS(h.prefixes(m), ShapeError);
  tape().release();
}

TEST_CASE("use lite hidden prompt: the gradient of both layers' vectors matches finite differences") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLiteHiddenPrompt<double> h(m, {.tokens = 2, .seed = 8});
  auto f = [&](const Var<double, 2>& r0, const Var<double, 2>& r1) {
    // What UseLiteHiddenPrompt::prefixes computes, on the checked Vars:
    return m.encode(kSentences, {m.layers[0].attention.prefix_from_hidden(m.layers[0].attention_norm(r0)),
                                 m.layers[1].attention.prefix_from_hidden(m.layers[1].attention_norm(r1))});
  };
  const auto r = check_gradients(f, {.step = 1e-6, .atol = 1e-7, .rtol = 1e-5}, h.rows[0].value(), h.rows[1].value());
  CHECK_MESSAGE(r.ok, r.report);
}

TEST_CASE("use lite prefix tuning: the projection's output split by layer width; folding keeps the output") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLitePrefix<double> p(m, {.tokens = 3, .seed = 2, .projection = 5});
  REQUIRE(p.projected());
  CHECK(p.rows.empty());
  CHECK(p.tokens() == 3);
  CHECK(parameter_count(p, true) == 3 * 16 + (5 * 16 + 5) + (48 * 5 + 48));
  // The projection in plain loops: second(tanh(first(embedding))), (3, 48) = layer 0's 16 | layer 1's 32.
  const auto& pr = *p.projection;
  Tensor<double, 2> r0({3, 16}), r1({3, 32});
  for (index_t i = 0; i < 3; ++i) {
    Vec e(16);
    for (index_t c = 0; c < 16; ++c) e[std::size_t(c)] = pr.embedding.value()(i, c);
    Vec t = lin(pr.first, e);
    for (auto& v : t) v = std::tanh(v);
    const Vec all = lin(pr.second, t);
    for (index_t j = 0; j < 48; ++j) (j < 16 ? r0(i, j) : r1(i, j - 16)) = all[std::size_t(j)];
  }
  const Tensor<double, 2> got = m.encode(kSentences, p.prefixes()).value();
  check_against_reference(got, m, Extra{.rows = {&r0, &r1}});
  p.fold();
  CHECK(!p.projected());
  REQUIRE(p.rows.size() == 2);
  CHECK(p.rows[1].trainable());
  CHECK(p.rows[1].value()(2, 31) == doctest::Approx(r1(2, 31)).epsilon(1e-12));
  CHECK(max_abs_diff(m.encode(kSentences, p.prefixes()).value(), got) < 1e-12);
  CHECK(parameter_count(p, true) == 3 * 48);
  tape().release();
}

TEST_CASE("use lite prefix tuning: the gradient reaches the embedding and both Linears") {
  const auto m = dp_test::tiny_use_lite<double>();
  UseLitePrefix<double> p(m, {.tokens = 2, .seed = 6, .projection = 3});
  const auto& pr = *p.projection;
  auto f = [&](const Var<double, 2>& e, const Var<double, 2>& w0, const Var<double, 1>& b0, const Var<double, 2>& w2,
               const Var<double, 1>& b2) {
    const Var<double, 2> all = prefix_projection(e, w0, b0, w2, b2);
    return m.encode(kSentences, {kv_prefixes(slice(all, 1, 0, 16), 1, 2).front(),
                                 kv_prefixes(slice(all, 1, 16, 48), 1, 2).front()});
  };
  const auto r = check_gradients(f, {.step = 1e-6, .atol = 1e-7, .rtol = 1e-5}, pr.embedding.value(),
                                 pr.first.weight.value(), pr.first.bias->value(), pr.second.weight.value(),
                                 pr.second.bias->value());
  CHECK_MESSAGE(r.ok, r.report);
  CHECK_THROWS_AS(UseLitePrefix<double>(m, {.tokens = 0}), ShapeError);
  CHECK_THROWS_AS(UseLitePrefix<double>(m, {.tokens = 2, .projection = -1}), ShapeError);
}

TEST_CASE("use lite input prompt: in front of the tokens, doubled, without timing signal, dropped before pooling") {
  const auto m = dp_test::tiny_use_lite<double>();
  Tensor<double, 2> prompt({2, 8});
  Generator gen(12);
  init::normal(prompt, 0.0, 0.5, gen);
  const Tensor<double, 2> got = m.encode(kSentences, {}, Var<double, 2>(prompt)).value();
  check_against_reference(got, m, Extra{.input = &prompt});
  CHECK(max_abs_diff(got, m.encode(kSentences).value()) > 1e-3);
  // With a key/value prefix as well: both in one pass.
  UseLitePrefix<double> p(m, {.tokens = 3, .seed = 5});
  const Tensor<double, 2> both = m.encode(kSentences, p.prefixes(), Var<double, 2>(prompt)).value();
  check_against_reference(both, m, Extra{.rows = {&p.rows[0].value(), &p.rows[1].value()}, .input = &prompt});
  CHECK_THROWS_AS(m.encode(kSentences, {}, Var<double, 2>(Tensor<double, 2>({2, 7}))), ShapeError);
  tape().release();
  auto f = [&](const Var<double, 2>& x) { return m.encode(kSentences, {}, x); };
  const auto r = check_gradients(f, {.step = 1e-6, .atol = 1e-7, .rtol = 1e-5}, prompt);
  CHECK_MESSAGE(r.ok, r.report);
}

}  // namespace test_use_prefix
