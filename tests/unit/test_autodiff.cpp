// autodiff/: the tape, Vars, Parameters, no-grad scopes, error messages and the gradient
// checker itself, on two toy ops defined here (so these tests depend on no real op).
#include <doctest/doctest.h>

#include "deepprompt/autodiff/grad_check.hpp"

namespace test_autodiff {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;

namespace {
// y = x * x (element-wise); the correct rule accumulates.
template <std::size_t R>
Var<double, R> square(const Var<double, R>& x) {
  Tensor<double, R> y(x.shape());
  for (index_t i = 0; i < y.size(); ++i) y.data()[i] = x.value().data()[i] * x.value().data()[i];
  auto out = Var<double, R>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [xv = x.value(), xn = x.node()](const Tensor<double, R>& dy) {
      const auto& dx = xn->accumulator();
      for (index_t i = 0; i < dy.size(); ++i) dx.data()[i] += 2.0 * xv.data()[i] * dy.data()[i];
    });
  return out;
}
// s = sum(a * b): two inputs, a scalar output. `overwrite` plants the classic bug.
template <bool overwrite = false>
Var<double, 0> dot(const Var<double, 1>& a, const Var<double, 1>& b) {
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += a.value()(i) * b.value()(i);
  auto out = Var<double, 0>::result(Tensor<double, 0>::full({}, s), a.requires_grad() || b.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [av = a.value(), bv = b.value(), an = a.node(), bn = b.node()](const Tensor<double, 0>& dy) {
      for (auto [n, other] : {std::pair{an, bv}, std::pair{bn, av}}) {
        if (!n) continue;
        const auto& g = n->accumulator();
        for (index_t i = 0; i < g.size(); ++i) {
          if constexpr (overwrite)
            g.data()[i] = other.data()[i] * dy.item();
          else
            g.data()[i] += other.data()[i] * dy.item();
        }
      }
    });
  return out;
}
}  // namespace

TEST_CASE("tape: gradients flow through a graph where a value is used twice") {
  Parameter<double, 1> a("a", Tensor<double, 1>::from({3}, {1, 2, 3}));
  Parameter<double, 1> b("b", Tensor<double, 1>::from({3}, {4, 5, 6}));
  auto s = square(a.var());                  // s = a^2
  auto loss = dot(s, a.var());               // sum(a^3)... plus the a-path: d/da = 2a*a + a^2 = 3a^2
  auto loss2 = dot(b.var(), b.var());        // separate branch, not backpropagated
  (void)loss2;
  loss.backward();
  CHECK(a.grad()(0) == doctest::Approx(3.0));
  CHECK(a.grad()(2) == doctest::Approx(27.0));
  CHECK(b.grad()(0) == 0.0);  // the other branch was not part of this backward
  CHECK(tape().size() == 0);  // released
}

TEST_CASE("tape: parameters accumulate across backward calls until zero_grad") {
  Parameter<double, 1> a("a", Tensor<double, 1>::from({2}, {1, -2}));
  for (int i = 0; i < 2; ++i) dot(a.var(), a.var()).backward();
  CHECK(a.grad()(1) == doctest::Approx(-8.0));
  a.zero_grad();
  CHECK(a.grad()(1) == 0.0);
}

TEST_CASE("frozen parameters have no gradient buffer and make results constant") {
  Parameter<double, 1> w("w", Tensor<double, 1>::from({2}, {1, 2}), /*trainable=*/false);
  CHECK(!w.trainable());
  CHECK_THROWS_AS(w.grad(), AutodiffError);
  auto y = dot(w.var(), w.var());
  CHECK(!y.requires_grad());
  CHECK(tape().size() == 0);  // nothing recorded
  w.set_trainable(true);
  CHECK(w.grad()(0) == 0.0);
}

TEST_CASE("no-grad scope records nothing") {
  Parameter<double, 1> a("a", Tensor<double, 1>::from({2}, {1, 2}));
  {
    NoGradGuard guard;
    auto y = dot(a.var(), a.var());
    CHECK(!y.requires_grad());
    CHECK(y.value().item() == 5.0);
    CHECK(tape().size() == 0);
  }
  CHECK(tape().grad_enabled());
}

TEST_CASE("backward errors: non-scalar, released tape, no gradient, wrong seed shape") {
  Parameter<double, 1> a("a", Tensor<double, 1>::from({2}, {1, 2}));
  auto v = square(a.var());
  CHECK_THROWS_WITH_AS(v.backward(), doctest::Contains("must be a scalar, but it has shape (2)"), AutodiffError);
  CHECK_THROWS_WITH_AS(v.backward(Tensor<double, 1>::zeros({3})), doctest::Contains("(3) and (2)"), ShapeError);
  auto loss = dot(v, v);
  loss.backward();
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("already released"), AutodiffError);
  CHECK_THROWS_AS(square(v), AutodiffError);  // v died with the tape
  Var<double, 0> c(Tensor<double, 0>::full({}, 1.0));
  CHECK_THROWS_WITH_AS(c.backward(), doctest::Contains("needs no gradient"), AutodiffError);
  tape().release();
}

TEST_CASE("check_gradients passes a correct op and catches wrong or overwriting rules") {
  auto x = Tensor<double, 1>::from({4}, {0.5, -1.5, 2.0, 0.1});
  auto y = Tensor<double, 1>::from({4}, {1.0, 2.0, -0.5, 3.0});
  auto good = check_gradients([](auto a, auto b) { return dot(square(a), b); }, {}, x, y);
  CHECK_MESSAGE(good.ok, good.report);
  CHECK(good.checked == 8);

  // a used twice by an op that overwrites: the pre-filled gradient is lost
  auto bad = check_gradients([](auto a, auto b) { return dot<true>(a, b); }, {}, x, y);
  CHECK(!bad.ok);
  CHECK(bad.report.find("autodiff") != std::string::npos);
}

TEST_CASE("the arena is reused: a second identical step asks the system for nothing") {
  Parameter<double, 1> a("a", Tensor<double, 1>::from({64}, std::vector<double>(64, 0.5)));
  auto step = [&] {
    Var<double, 1> h = a.var();
    for (int i = 0; i < 2000; ++i) h = square(h);  // enough nodes to need several chunks
    dot(h, a.var()).backward();
  };
  step();
  const auto chunks = tape().arena().system_allocations();
  const auto blocks = MemoryPool::cpu().stats().system_allocations;
  step();
  step();
  CHECK(tape().arena().system_allocations() == chunks);
  CHECK(MemoryPool::cpu().stats().system_allocations == blocks);
}

}  // namespace test_autodiff
