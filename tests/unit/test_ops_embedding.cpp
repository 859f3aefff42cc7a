// ops/embedding.hpp: row lookup for ids of rank 1 to 3, out-of-range errors, padding_idx (no
// gradient, negative values from the end), the scatter-add backward with repeated ids (finite
// differences in double, a plain loop at any thread count in float), frozen weights and
// NoGradGuard.
#include "deepprompt/ops/embedding.hpp"

#include <omp.h>

#include "testing.hpp"

namespace test_ops_embedding {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace dp = deepprompt;
using dp_test::expect_ad;
using dp_test::random_tensor;

namespace {

template <std::size_t R>
Tensor<std::int64_t, R> ids_of(const Shape<R>& shape, std::initializer_list<std::int64_t> v) {
  return Tensor<std::int64_t, R>::from(shape, v);
}

// dW of sum(dy * embedding(W, ids)) by a plain loop in position order, skipping `pad`.
template <class T, std::size_t R>
Tensor<T, 2> scatter_ref(index_t vocab, const Tensor<std::int64_t, R>& ids, const Tensor<T, R + 1>& dy,
                         std::int64_t pad = -1) {
  const index_t cols = dy.extent(R);
  auto dw = Tensor<T, 2>::zeros({vocab, cols});
  for (index_t p = 0; p < ids.size(); ++p) {
    if (ids.data()[p] == pad) continue;
    for (index_t c = 0; c < cols; ++c) dw(ids.data()[p], c) += dy.data()[p * cols + c];
  }
  return dw;
}

}  // namespace

TEST_CASE("embedding: rows are looked up for ids of any rank") {
  auto w = random_tensor<float, 2>({7, 19}, 71);
  Var<float, 2> wv(w);
  auto ids1 = ids_of<1>({4}, {3, 0, 3, 6});
  auto y1 = dp::embedding(wv, ids1);
  static_assert(std::is_same_v<decltype(y1), Var<float, 2>>);
  REQUIRE(y1.shape() == Shape<2>{4, 19});
  auto ids3 = ids_of<3>({2, 1, 3}, {1, 2, 2, 6, 0, 1});
  auto y3 = dp::embedding(wv, ids3);
  REQUIRE(y3.shape() == Shape<4>{2, 1, 3, 19});
  CHECK(!y3.requires_grad());
  for (index_t c = 0; c < 19; ++c) {
    CHECK(y1.value()(0, c) == w(3, c));
    CHECK(y1.value()(3, c) == w(6, c));
    CHECK(y3.value()(1, 0, 0, c) == w(6, c));
    CHECK(y3.value()(1, 0, 2, c) == w(1, c));
  }
  // the padding row is still read (only its gradient is dropped)
  auto yp = dp::embedding(wv, ids1, 3);
  CHECK(yp.value()(0, 5) == w(3, 5));
  // no ids: an empty result
  auto ye = dp::embedding(wv, Tensor<std::int64_t, 1>({0}));
  CHECK(ye.shape() == Shape<2>{0, 19});
}

TEST_CASE("embedding: out-of-range ids and padding_idx throw, naming the id, its position and V") {
  Var<float, 2> w(Tensor<float, 2>::zeros({5, 3}));
  CHECK_THROWS_WITH_AS(dp::embedding(w, ids_of<2>({2, 3}, {0, 1, 2, 3, 4, 7})),
                       "embedding: id 7 at position (1, 2) of ids (2, 3) is out of range for a table of V = 5 rows "
                       "(weight (5, 3))",
                       Error);
  CHECK_THROWS_WITH_AS(dp::embedding(w, ids_of<1>({3}, {0, -1, 2})),
                       doctest::Contains("id -1 at position (1) of ids (3)"), Error);
  CHECK_THROWS_WITH_AS(dp::embedding(w, ids_of<1>({1}, {5})), doctest::Contains("V = 5"), Error);
  CHECK_THROWS_WITH_AS(dp::embedding(w, ids_of<1>({1}, {0}), 5), doctest::Contains("padding_idx 5 is out of range"),
                       Error);
  CHECK_THROWS_WITH_AS(dp::embedding(w, ids_of<1>({1}, {0}), -6), doctest::Contains("padding_idx -6"), Error);
  CHECK_NOTHROW(dp::embedding(w, ids_of<1>({1}, {0}), -5));
}

TEST_CASE("embedding: gradients with repeated ids against finite differences (double)") {
  const auto w = random_tensor<double, 2>({6, 5}, 72);
  const auto ids1 = ids_of<1>({7}, {2, 0, 2, 5, 2, 0, 1});
  const auto ids2 = ids_of<2>({2, 3}, {4, 4, 1, 4, 0, 1});
  expect_ad([&](auto v) { return dp::embedding(v, ids1); }, w);
  expect_ad([&](auto v) { return dp::embedding(v, ids2); }, w);
  expect_ad([&](auto v) { return dp::embedding(v, ids2, 3); }, w);  // a padding_idx that no id uses
}

TEST_CASE("embedding: the padding_idx row gets no gradient; the others the scatter-add sum") {
  auto w = random_tensor<float, 2>({6, 21}, 73);
  const auto ids = ids_of<2>({2, 4}, {5, 1, 5, 0, 1, 5, 3, 1});
  const auto dy = random_tensor<float, 3>({2, 4, 21}, 74);
  for (std::int64_t pad : {1, -1}) {  // -1 is row 5
    INFO("padding_idx " << pad);
    Parameter<float, 2> p("w", w.clone());
    dp::embedding(p.var(), ids, pad).backward(dy);
    const std::int64_t row = pad < 0 ? 6 + pad : pad;
    CHECK(dp_test::max_abs_diff(p.grad(), scatter_ref<float>(6, ids, dy, row)) == 0.0);
    for (index_t c = 0; c < 21; ++c) CHECK(p.grad()(row, c) == 0.0f);
  }
}

TEST_CASE("embedding: the backward scatter is race-free and bit-identical at any thread count") {
  const index_t vocab = 50, cols = 70, n = 4096;  // n * cols above the parallel threshold
  auto w = random_tensor<float, 2>({vocab, cols}, 75);
  Tensor<std::int64_t, 1> ids({n});
  for (index_t i = 0; i < n; ++i) ids.data()[i] = (i * 7919) % vocab;  // every id repeated ~80 times
  const auto dy = random_tensor<float, 2>({n, cols}, 76);
  const auto want = scatter_ref<float>(vocab, ids, dy, 0);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 4}) {
    omp_set_num_threads(threads);
    Parameter<float, 2> p("w", w);
    auto y = dp::embedding(p.var(), ids, 0);
    CHECK(y.value()(n - 1, cols - 1) == w(ids(n - 1), cols - 1));
    y.backward(dy);
    CHECK(dp_test::max_abs_diff(p.grad(), want) == 0.0);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("embedding: a frozen weight or NoGradGuard records nothing") {
  Parameter<float, 2> frozen("w", random_tensor<float, 2>({4, 3}, 77), false);
  Parameter<float, 2> trained("w", random_tensor<float, 2>({4, 3}, 77));
  const auto ids = ids_of<1>({2}, {1, 3});
  const auto before = tape().size();
  CHECK(!dp::embedding(frozen.var(), ids).requires_grad());
  {
    NoGradGuard guard;
    CHECK(!dp::embedding(trained.var(), ids).requires_grad());
  }
  CHECK(tape().size() == before);
  CHECK(dp::embedding(trained.var(), ids).requires_grad());
  CHECK(tape().size() == before + 1);
  tape().release();
}

}  // namespace test_ops_embedding
