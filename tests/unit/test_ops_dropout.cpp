// ops/dropout.hpp: the mask against a plain loop over the generator's words, its independence
// from the thread count, the special cases (eval, p = 0, p = 1, bad p), gradients against finite
// differences with a fixed seed (double), and what gets recorded.
#include "deepprompt/ops/dropout.hpp"

#include <omp.h>

#include <cmath>
#include <limits>

#include "testing.hpp"

namespace test_ops_dropout {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace dp = deepprompt;
using dp_test::expect_ad;
using dp_test::random_tensor;

namespace {

// Plain-loop reference: element i kept iff word (first + i) >= ceil(p 2^32), then scaled.
template <std::size_t R>
Tensor<double, R> dropout_ref(const Tensor<float, R>& x, double p, const Generator& gen, std::uint64_t first) {
  Tensor<double, R> y(x.shape());
  const double threshold = std::ceil(p * 4294967296.0);
  const float scale = 1.0f / (1.0f - static_cast<float>(p));
  for (index_t i = 0; i < x.size(); ++i)
    y.data()[i] = gen.word_at(first + static_cast<std::uint64_t>(i)) >= threshold ? double(x.data()[i] * scale) : 0.0;
  return y;
}

}  // namespace

TEST_CASE("dropout: the mask is word first + i of the generator, kept values scaled by 1/(1-p)") {
  auto x = random_tensor<float, 3>({3, 5, 37}, 61, 0.5, 2.0);  // 555 elements: not a multiple of 64
  for (std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{1} << 33}) {  // also unaligned
    INFO("offset " << offset);
    Generator gen(2024, offset);
    const Generator before = gen;
    auto y = dp::dropout(Var<float, 3>(x), 0.3f, gen, true);
    CHECK(gen.offset() == offset + 556);  // advance(555) keeps the stream block-aligned
    CHECK(dp_test::max_abs_diff(y.value(), dropout_ref(x, 0.3f, before, offset)) == 0.0);
    // the same generator state replays the same mask; the next call draws a new one
    Generator again(2024, offset);
    CHECK(dp_test::max_abs_diff(dp::dropout(Var<float, 3>(x), 0.3f, again, true).value(), y.value()) == 0.0);
    auto y2 = dp::dropout(Var<float, 3>(x), 0.3f, gen, true);
    CHECK(dp_test::max_abs_diff(y2.value(), y.value()) > 0.0);
  }
}

TEST_CASE("dropout: the fraction kept is 1 - p and the mean is preserved") {
  auto x = Tensor<double, 1>::full({200000}, 1.0);
  Generator gen(7);
  for (double p : {0.1, 0.5, 0.9}) {
    auto y = dp::dropout(Var<double, 1>(x), p, gen, true).value();
    index_t kept = 0;
    double sum = 0;
    for (index_t i = 0; i < y.size(); ++i) {
      kept += y.data()[i] != 0.0;
      sum += y.data()[i];
    }
    CHECK(double(kept) / double(y.size()) == doctest::Approx(1 - p).epsilon(0.01));
    CHECK(sum / double(y.size()) == doctest::Approx(1.0).epsilon(0.03));
  }
}

TEST_CASE("dropout: the mask does not depend on the number of threads") {
  auto x = random_tensor<float, 2>({7, 10001}, 62);  // above the parallel threshold
  const int saved = omp_get_max_threads();
  Tensor<float, 2> ref;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Generator gen(99, 12);
    Parameter<float, 2> p("x", x.clone());
    auto y = dp::dropout(p.var(), 0.25f, gen, true);
    y.backward(Tensor<float, 2>::full(x.shape(), 1.0f));
    if (threads == 1) {
      ref = y.value().clone();
      CHECK(dp_test::max_abs_diff(ref, dropout_ref(x, 0.25f, Generator(99), 12)) == 0.0);
    }
    CHECK(dp_test::max_abs_diff(y.value(), ref) == 0.0);
    // the gradient of sum(y) is the mask scaled: y / x where kept, 0 where dropped
    for (index_t i = 0; i < x.size(); i += 997)
      CHECK(p.grad().data()[i] == (ref.data()[i] != 0.0f ? 1.0f / 0.75f : 0.0f));
  }
  omp_set_num_threads(saved);
}

TEST_CASE("dropout: eval mode and p == 0 return x itself; p == 1 gives zeros") {
  Parameter<float, 2> p("x", random_tensor<float, 2>({3, 4}, 63));
  Generator gen(5);
  auto x = p.var();
  for (auto [prob, training] : {std::pair{0.5f, false}, std::pair{0.0f, true}, std::pair{1.0f, false}}) {
    auto y = dp::dropout(x, prob, gen, training);
    CHECK(y.value().data() == x.value().data());
    CHECK(y.node() == x.node());
  }
  CHECK(gen.offset() == 0);

  auto z = dp::dropout(x, 1.0f, gen, true);
  CHECK(gen.offset() == 0);
  CHECK(z.requires_grad());
  for (index_t i = 0; i < z.size(); ++i) CHECK(z.value().data()[i] == 0.0f);
  dp::dropout(x, 1.0f, gen, true).backward(Tensor<float, 2>::full({3, 4}, 1.0f));
  for (index_t i = 0; i < z.size(); ++i) CHECK(p.grad().data()[i] == 0.0f);
  tape().release();
}

TEST_CASE("dropout: p outside [0, 1] throws") {
  Var<float, 1> x(Tensor<float, 1>::zeros({4}));
  Generator gen(1);
  CHECK_THROWS_WITH_AS(dp::dropout(x, 1.5f, gen, true), "dropout: the drop probability p must be in [0, 1], got 1.5",
                       Error);
  CHECK_THROWS_WITH_AS(dp::dropout(x, -0.1f, gen, false), doctest::Contains("got -0.1"), Error);
  CHECK_THROWS_AS(dp::dropout(x, std::numeric_limits<float>::quiet_NaN(), gen, true), Error);
}

TEST_CASE("dropout: gradients against finite differences with a fixed seed (double)") {
  // a fresh generator with the same seed inside the function: every evaluation draws the same mask
  expect_ad([](auto v) {
    Generator gen(314);
    return dp::dropout(v, 0.4, gen, true);
  }, random_tensor<double, 3>({2, 3, 23}, 64));
  expect_ad([](auto v) {
    Generator gen(315, 6);
    auto h = dp::dropout(v, 0.5, gen, true);
    return dp::dropout(h, 0.2, gen, true);  // two masks from one stream, v reached through both
  }, random_tensor<double, 2>({5, 13}, 65));
  expect_ad([](auto v) {
    Generator gen(316);
    return dp::dropout(v, 0.3, gen, false);
  }, random_tensor<double, 1>({9}, 66));
}

TEST_CASE("dropout: nothing is recorded under NoGradGuard or for constants") {
  Parameter<double, 2> p("p", random_tensor<double, 2>({2, 3}, 3));
  Generator gen(8);
  const auto before = tape().size();
  {
    NoGradGuard guard;
    CHECK(!dp::dropout(p.var(), 0.5, gen, true).requires_grad());
  }
  CHECK(gen.offset() == 8);  // the mask is still drawn
  CHECK(!dp::dropout(Var<double, 2>(p.value()), 0.5, gen, true).requires_grad());
  CHECK(tape().size() == before);
  CHECK(dp::dropout(p.var(), 0.5, gen, true).requires_grad());
  CHECK(tape().size() == before + 1);
  tape().release();
}

}  // namespace test_ops_dropout
