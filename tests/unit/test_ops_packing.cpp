// ops/packing.hpp (packed variable-length sequences) and packed_attention (ops/attention.hpp):
// values against plain loops and against the padded attention with its padding mask,
// gradients by finite differences (double), errors.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "deepprompt/autodiff/parameter.hpp"
#include "deepprompt/backend/cpu/threads.hpp"
#include "deepprompt/core/rng.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/attention.hpp"
#include "deepprompt/ops/concat.hpp"
#include "deepprompt/ops/packing.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "deepprompt/ops/shape.hpp"
#include "testing.hpp"

namespace test_ops_packing {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Shape;
using dp::Tensor;
using dp::Var;
using dp_test::expect_ad;
using dp_test::random_tensor;

namespace {

// (B, T) 0/1 mask with rows of the given lengths.
Tensor<std::int64_t, 2> mask_of(const std::vector<index_t>& lengths, index_t T) {
  auto m = Tensor<std::int64_t, 2>::zeros({static_cast<index_t>(lengths.size()), T});
  for (std::size_t b = 0; b < lengths.size(); ++b)
    for (index_t t = 0; t < lengths[b]; ++t) m(static_cast<index_t>(b), t) = 1;
  return m;
}

// (B, T, H*D) -> (B, H, T, D), plain copy.
template <class T>
Tensor<T, 4> heads_first(const Tensor<T, 3>& x, index_t H) {
  const index_t B = x.extent(0), L = x.extent(1), D = x.extent(2) / H;
  Tensor<T, 4> y({B, H, L, D});
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t t = 0; t < L; ++t)
        for (index_t d = 0; d < D; ++d) y(b, h, t, d) = x(b, t, h * D + d);
  return y;
}

}  // namespace

TEST_CASE("right_padded_lengths and sequence_offsets") {
  const auto lengths = dp::right_padded_lengths(mask_of({3, 1, 4}, 4));
  REQUIRE(lengths.has_value());
  CHECK(*lengths == std::vector<index_t>{3, 1, 4});
  CHECK(dp::sequence_offsets(*lengths) == std::vector<index_t>{0, 3, 4, 8});
  auto holes = mask_of({3, 2}, 4);
  holes(1, 3) = 1;  // 1 1 0 1: not right-padded
  CHECK_FALSE(dp::right_padded_lengths(holes).has_value());
  auto twos = mask_of({2}, 3);
  twos(0, 0) = 2;
  CHECK_FALSE(dp::right_padded_lengths(twos).has_value());
  // skip: counting after a prefix's columns
  CHECK(*dp::right_padded_lengths(mask_of({5, 3}, 6), 2) == std::vector<index_t>{3, 1});
}

TEST_CASE("pack_sequences / unpack_sequences: values against loops, gradients, errors") {
  const std::vector<index_t> lengths{3, 1, 4};
  const auto x = random_tensor<float, 3>({3, 4, 2}, 1);
  const auto p = dp::pack_sequences(Var<float, 3>(x), lengths).value();
  REQUIRE(p.shape() == Shape<3>{1, 8, 2});
  index_t n = 0;
  for (index_t b = 0; b < 3; ++b)
    for (index_t t = 0; t < lengths[static_cast<std::size_t>(b)]; ++t, ++n)
      for (index_t c = 0; c < 2; ++c) CHECK(p(0, n, c) == x(b, t, c));
  const auto u = dp::unpack_sequences(Var<float, 3>(p), lengths, 4).value();
  REQUIRE(u.shape() == x.shape());
  for (index_t b = 0; b < 3; ++b)
    for (index_t t = 0; t < 4; ++t)
      for (index_t c = 0; c < 2; ++c)
        CHECK(u(b, t, c) == (t < lengths[static_cast<std::size_t>(b)] ? x(b, t, c) : 0.0f));

  expect_ad([&](auto v) { return dp::pack_sequences(v, lengths); }, random_tensor<double, 3>({3, 4, 2}, 2));
  expect_ad([&](auto v) { return dp::unpack_sequences(v, lengths, 5); }, random_tensor<double, 3>({1, 8, 2}, 3));

  const std::vector<index_t> too_long{3, 5, 1};
  CHECK_THROWS_WITH_AS(dp::pack_sequences(Var<float, 3>(x), too_long), doctest::Contains("row 1 has length 5"),
                       dp::ShapeError);
  CHECK_THROWS_AS(dp::pack_sequences(Var<float, 3>(x), std::vector<index_t>{1, 2}), dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::unpack_sequences(Var<float, 3>(p), std::vector<index_t>{3, 1, 3}, 4),
                       doctest::Contains("sum of the 3 lengths"), dp::ShapeError);
}

// The packed form against the padded attention with the padding mask: equal on the real rows.
// prefix: 0 none, 1 shared (H, P, D), 2 per example (B, H, P, D).
static void check_packed_against_padded(int prefix) {
  const std::vector<index_t> lengths{5, 2, 7, 1};
  const index_t B = 4, T = 7, H = 2, D = 3, C = H * D, P = 3;
  const auto offsets = dp::sequence_offsets(lengths);
  const index_t N = offsets.back();
  const auto qp = random_tensor<float, 3>({B, T, C}, 10), kp = random_tensor<float, 3>({B, T, C}, 11),
             vp = random_tensor<float, 3>({B, T, C}, 12);
  // the packed inputs: the real rows of the padded ones
  auto packed = [&](const Tensor<float, 3>& x) {
    return dp::reshape<2>(dp::pack_sequences(Var<float, 3>(x), lengths), Shape<2>{N, C}).value().clone();
  };
  dp::Parameter<float, 2> q("q", packed(qp)), k("k", packed(kp)), v("v", packed(vp));
  dp::Parameter<float, 4> Q("Q", heads_first(qp, H)), K("K", heads_first(kp, H)), V("V", heads_first(vp, H));
  dp::Parameter<float, 3> pk("pk", random_tensor<float, 3>({H, P, D}, 13)), pv("pv", random_tensor<float, 3>({H, P, D}, 14));
  dp::Parameter<float, 4> pkb("pkb", random_tensor<float, 4>({B, H, P, D}, 15)),
      pvb("pvb", random_tensor<float, 4>({B, H, P, D}, 16));
  dp::AttentionOptions<float> o;
  if (prefix == 1) o.prefix_k = pk.var(), o.prefix_v = pv.var();
  if (prefix == 2) o.prefix_k_batch = pkb.var(), o.prefix_v_batch = pvb.var();
  const Var<float, 2> y = dp::packed_attention(q.var(), k.var(), v.var(), H, offsets, o);  // (N, C)
  // the same weights on the outputs, so that the gradients compare
  const auto w = random_tensor<float, 2>({N, C}, 17);
  dp::sum(dp::mul(y, Var<float, 2>(w))).backward();
  const Tensor<float, 2> yv = y.value();
  const Tensor<float, 3> pk_g = prefix == 1 ? pk.grad().clone() : Tensor<float, 3>();
  const Tensor<float, 4> pkb_g = prefix == 2 ? pkb.grad().clone() : Tensor<float, 4>();

  o.mask = dp::attention_mask<float>(mask_of(lengths, T));
  if (prefix == 1) pk.zero_grad();
  if (prefix == 2) pkb.zero_grad();
  const Var<float, 4> Y = dp::scaled_dot_product_attention(Q.var(), K.var(), V.var(), o);  // (B, H, T, D)
  auto W = Tensor<float, 4>::zeros({B, H, T, D});  // w at the real rows, 0 at padding
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < lengths[static_cast<std::size_t>(b)]; ++t)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < D; ++d) W(b, h, t, d) = w(offsets[static_cast<std::size_t>(b)] + t, h * D + d);
  dp::sum(dp::mul(Y, Var<float, 4>(W))).backward();
  double err = 0, gq = 0, gk = 0, gv = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < lengths[static_cast<std::size_t>(b)]; ++t)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < D; ++d) {
          const index_t n = offsets[static_cast<std::size_t>(b)] + t, c = h * D + d;
          err = std::max(err, double(std::abs(yv(n, c) - Y.value()(b, h, t, d))));
          gq = std::max(gq, double(std::abs(q.grad()(n, c) - Q.grad()(b, h, t, d))));
          gk = std::max(gk, double(std::abs(k.grad()(n, c) - K.grad()(b, h, t, d))));
          gv = std::max(gv, double(std::abs(v.grad()(n, c) - V.grad()(b, h, t, d))));
        }
  CHECK(err < 1e-6);
  CHECK(gq < 1e-5);
  CHECK(gk < 1e-5);
  CHECK(gv < 1e-5);
  if (prefix == 1) CHECK(dp_test::max_abs_diff(pk_g, pk.grad()) < 1e-5);
  if (prefix == 2) CHECK(dp_test::max_abs_diff(pkb_g, pkb.grad()) < 1e-5);
}

TEST_CASE("packed_attention equals the padded attention with its mask on the real rows, gradients too") {
  SUBCASE("no prefix") { check_packed_against_padded(0); }
  SUBCASE("shared prefix") { check_packed_against_padded(1); }
  SUBCASE("per-example prefix") { check_packed_against_padded(2); }
}

TEST_CASE("packed_attention: gradients of q, k, v and the prefix (double, finite differences), with dropout") {
  const std::vector<index_t> offsets{0, 3, 4, 6};
  const index_t N = 6, H = 2, D = 2, P = 2;
  auto f = [&](double dropout, bool per_example) {
    return [=](auto q, auto k, auto v, auto pk, auto pv) {
      dp::Generator gen(7);  // a fixed stream: the function is deterministic
      dp::AttentionOptions<double> o;
      o.dropout = dropout;
      o.generator = &gen;
      if (per_example) {
        o.prefix_k_batch = dp::reshape<4>(pk, Shape<4>{3, H, P, D});
        o.prefix_v_batch = dp::reshape<4>(pv, Shape<4>{3, H, P, D});
      } else {
        o.prefix_k = dp::reshape<3>(dp::slice(pk, 0, 0, H * P * D), Shape<3>{H, P, D});
        o.prefix_v = dp::reshape<3>(dp::slice(pv, 0, 0, H * P * D), Shape<3>{H, P, D});
      }
      return dp::packed_attention(q, k, v, H, offsets, o);
    };
  };
  const auto q = random_tensor<double, 2>({N, H * D}, 20), k = random_tensor<double, 2>({N, H * D}, 21),
             v = random_tensor<double, 2>({N, H * D}, 22);
  const auto pk = random_tensor<double, 1>({3 * H * P * D}, 23), pv = random_tensor<double, 1>({3 * H * P * D}, 24);
  expect_ad(f(0.0, false), q, k, v, pk, pv);
  expect_ad(f(0.3, false), q, k, v, pk, pv);
  expect_ad(f(0.3, true), q, k, v, pk, pv);
}

TEST_CASE("packed_attention: dropout keeps about 1 - p; results do not depend on the thread count") {
  const std::vector<index_t> offsets{0, 40, 41, 100};
  const auto q = random_tensor<float, 2>({100, 8}, 30), k = random_tensor<float, 2>({100, 8}, 31),
             v = random_tensor<float, 2>({100, 8}, 32);
  auto run = [&](int threads) {
    dp::cpu::set_num_threads(threads);
    dp::Generator gen(3);
    dp::AttentionOptions<float> o;
    o.dropout = 0.5f;
    o.generator = &gen;
    auto y = dp::packed_attention(Var<float, 2>(q), Var<float, 2>(k), Var<float, 2>(v), 2, offsets, o).value().clone();
    dp::cpu::set_num_threads(0);
    return y;
  };
  const auto y1 = run(1), y2 = run(2);
  CHECK(dp_test::max_abs_diff(y1, y2) == 0.0);
  // the output is a weighted mean of v scaled by 1 / (1 - p): with p = 0.5 its average magnitude
  // stays near the no-dropout output's, and the outputs differ from it
  const auto y0 = dp::packed_attention(Var<float, 2>(q), Var<float, 2>(k), Var<float, 2>(v), 2, offsets).value();
  CHECK(dp_test::max_abs_diff(y0, y1) > 1e-3);
}

TEST_CASE("packed_attention with query offsets: the chosen rows of the full attention, gradients too") {
  const std::vector<index_t> offsets{0, 3, 4, 9}, first{0, 1, 2, 3}, rows{0, 3, 4};  // each sequence's first row
  const index_t N = 9, H = 2, D = 3, C = H * D, P = 2;
  const auto qv = random_tensor<float, 2>({N, C}, 60), kv = random_tensor<float, 2>({N, C}, 61),
             vv = random_tensor<float, 2>({N, C}, 62);
  dp::AttentionOptions<float> o;
  o.prefix_k = Var<float, 3>(random_tensor<float, 3>({H, P, D}, 63));
  o.prefix_v = Var<float, 3>(random_tensor<float, 3>({H, P, D}, 64));
  const auto full = dp::packed_attention(Var<float, 2>(qv), Var<float, 2>(kv), Var<float, 2>(vv), H, offsets, o).value();
  auto q1 = Tensor<float, 2>({3, C});
  for (index_t r = 0; r < 3; ++r)
    for (index_t c = 0; c < C; ++c) q1(r, c) = qv(rows[static_cast<std::size_t>(r)], c);
  const auto some = dp::packed_attention(Var<float, 2>(q1), Var<float, 2>(kv), Var<float, 2>(vv), H, offsets, o, first).value();
  REQUIRE(some.shape() == Shape<2>{3, C});
  double err = 0;
  for (index_t r = 0; r < 3; ++r)
    for (index_t c = 0; c < C; ++c) err = std::max(err, double(std::abs(some(r, c) - full(rows[static_cast<std::size_t>(r)], c))));
  CHECK(err < 1e-6);
  // gradients of q, k, v and the shared prefix, with dropout (fixed stream)
  auto f = [&](auto q, auto k, auto v, auto pk, auto pv) {
    dp::Generator gen(4);
    dp::AttentionOptions<double> od;
    od.dropout = 0.25;
    od.generator = &gen;
    od.prefix_k = pk, od.prefix_v = pv;
    return dp::packed_attention(q, k, v, H, offsets, od, first);
  };
  expect_ad(f, random_tensor<double, 2>({3, C}, 65), random_tensor<double, 2>({N, C}, 66),
            random_tensor<double, 2>({N, C}, 67), random_tensor<double, 3>({H, P, D}, 68),
            random_tensor<double, 3>({H, P, D}, 69));
  const std::vector<index_t> wrong{0, 1, 2};
  CHECK_THROWS_WITH_AS(dp::packed_attention(Var<float, 2>(q1), Var<float, 2>(kv), Var<float, 2>(vv), H, offsets, o, wrong),
                       doctest::Contains("query offsets must be 4 values"), dp::ShapeError);
}

TEST_CASE("packed_attention: errors name the op and the shapes") {
  const auto q = random_tensor<float, 2>({5, 4}, 40);
  const Var<float, 2> x(q);
  const std::vector<index_t> good{0, 2, 5}, short_{0, 2, 4}, down{0, 3, 2, 5};
  CHECK_THROWS_WITH_AS(dp::packed_attention(x, x, x, 3, good), doctest::Contains("3 heads do not divide"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::packed_attention(x, x, x, 2, short_), doctest::Contains("offsets must run from 0 to the 5 rows"),
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::packed_attention(x, x, x, 2, down), doctest::Contains("offsets decrease"), dp::ShapeError);
  const Var<float, 2> other(random_tensor<float, 2>({4, 4}, 41));
  CHECK_THROWS_AS(dp::packed_attention(x, other, x, 2, good), dp::ShapeError);
  dp::AttentionOptions<float> causal;
  causal.causal = true;
  CHECK_THROWS_WITH_AS(dp::packed_attention(x, x, x, 2, good, causal), doctest::Contains("not supported"), dp::Error);
  dp::AttentionOptions<float> bad_prefix;
  bad_prefix.prefix_k = bad_prefix.prefix_v = Var<float, 3>(random_tensor<float, 3>({3, 1, 2}, 42));
  CHECK_THROWS_WITH_AS(dp::packed_attention(x, x, x, 2, good, bad_prefix), doctest::Contains("packed_attention"),
                       dp::ShapeError);
}

}  // namespace test_ops_packing
