// Numerical hazards (issue 9): softmax, log_softmax, cross_entropy, layer_norm, rms_norm, the
// activations and attention stay finite, forward and backward, for extreme inputs: very large or
// very negative logits, the additive mask value lowest() (what Hugging Face and attention_mask()
// put on padded keys), fully masked rows and zero-variance rows. Each case also checks the value
// that the exact mathematics gives where it is representable, so a kernel that returned zeros
// everywhere would fail.
#include <cmath>
#include <limits>
#include <vector>

#include "deepprompt/ops/activation.hpp"
#include "deepprompt/ops/attention.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/norm.hpp"
#include "deepprompt/ops/softmax.hpp"
#include "testing.hpp"

namespace test_numerical_hazards {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace dp = deepprompt;
using dp_test::random_tensor;

namespace {

template <class T, std::size_t R>
bool all_finite(const Tensor<T, R>& t) {
  for (T e : t.span())
    if (!std::isfinite(e)) return false;
  return true;
}

template <class T>
Tensor<T, 2> rows_of(index_t cols, std::vector<T> v) {
  const index_t rows = static_cast<index_t>(v.size()) / cols;
  return Tensor<T, 2>::from({rows, cols}, v);
}

}  // namespace

TEST_CASE_TEMPLATE("hazards: softmax and log_softmax of huge, tiny and masked logits", T, float, double) {
  const T big = T(1e30), low = std::numeric_limits<T>::lowest();
  // rows: huge positive/negative spread; all huge and equal; mask value everywhere but one;
  // mask value everywhere (a fully masked row, HF style); ordinary values
  auto x = rows_of<T>(4, {big, -big, T(0), big,        //
                          big, big, big, big,          //
                          low, low, T(3), low,         //
                          low, low, low, low,          //
                          T(1), T(2), T(3), T(4)});
  Parameter<T, 2> p("x", x);
  auto y = dp::softmax(p.var());
  REQUIRE(all_finite(y.value()));
  CHECK(y.value()(0, 0) == doctest::Approx(0.5));
  CHECK(y.value()(0, 1) == T(0));
  CHECK(y.value()(1, 2) == doctest::Approx(0.25));
  CHECK(y.value()(2, 2) == doctest::Approx(1.0));
  CHECK(y.value()(2, 0) == T(0));
  for (index_t c = 0; c < 4; ++c) CHECK(y.value()(3, c) == doctest::Approx(0.25));  // lowest - lowest = 0: uniform
  for (index_t r = 0; r < 5; ++r) {
    T s = 0;
    for (index_t c = 0; c < 4; ++c) s += y.value()(r, c);
    CHECK(s == doctest::Approx(1.0));
  }
  y.backward(random_tensor<T, 2>({5, 4}, 1));
  CHECK(all_finite(p.grad()));

  Parameter<T, 2> q("x", x);
  auto ly = dp::log_softmax(q.var());
  // exact values are representable here: -2e30, 0 - log 2 ... (lowest - 3 rounds to lowest)
  CHECK(ly.value()(0, 0) == doctest::Approx(-std::log(2.0)));
  CHECK(ly.value()(0, 1) == doctest::Approx(-2e30));
  CHECK(ly.value()(3, 0) == doctest::Approx(-std::log(4.0)));
  REQUIRE(all_finite(ly.value()));
  ly.backward(random_tensor<T, 2>({5, 4}, 2));
  CHECK(all_finite(q.grad()));
}

TEST_CASE_TEMPLATE("hazards: cross_entropy with huge logits, on the right and the wrong class", T, float, double) {
  const T big = T(1e30);
  auto x = rows_of<T>(3, {big, -big, T(0),     // target 0: loss 0
                          big, -big, T(0),     // target 1: loss 2e30 (huge, finite)
                          -big, -big, -big});  // target 2: uniform, loss log 3
  const auto targets = Tensor<std::int64_t, 1>::from({3}, {0, 1, 2});
  for (T eps : {T(0), T(0.1)}) {
    Parameter<T, 2> p("z", x);
    auto l = dp::cross_entropy(p.var(), targets, -100, eps);
    REQUIRE(std::isfinite(l.value().item()));
    // mean over rows; with eps the smoothing term adds eps/C * (sum of -logp) ~ eps/C * 4e30 per huge row
    const double want = eps == T(0) ? (2e30 + std::log(3.0)) / 3 : ((1 - 0.1) * 2e30 + 0.1 / 3 * (2e30 + 1e30 + 2e30 + 1e30 + 3 * std::log(3.0)) + (1 - 0.1) * std::log(3.0)) / 3;
    CHECK(l.value().item() == doctest::Approx(want).epsilon(1e-5));
    l.backward();
    REQUIRE(all_finite(p.grad()));
    // d loss / d z = (softmax - q) / N: row 1 puts all mass on class 0
    CHECK(p.grad()(1, 0) == doctest::Approx((1.0 - eps / 3) / 3));
    CHECK(p.grad()(1, 1) == doctest::Approx(-(1.0 - eps + eps / 3) / 3));
  }
}

TEST_CASE_TEMPLATE("hazards: layer_norm of zero-variance, huge and tiny rows", T, float, double) {
  const index_t C = 37;  // not a multiple of the SIMD width: the padded lanes must not count
  std::vector<T> v;
  for (index_t c = 0; c < C; ++c) v.push_back(T(5));                          // zero variance
  for (index_t c = 0; c < C; ++c) v.push_back(T(1e15) + T(c % 2 ? 1e12 : -1e12));  // huge offset, large spread
  for (index_t c = 0; c < C; ++c) v.push_back(T(0));                          // all zero
  for (index_t c = 0; c < C; ++c) v.push_back(T(c % 2 ? 1e-30 : -1e-30));     // tiny spread: below eps
  for (index_t c = 0; c < C; ++c) v.push_back(T(c % 2 ? 1e18 : -1e18));       // huge spread
  auto x = rows_of<T>(C, v);
  const auto g0 = random_tensor<T, 1>({C}, 3, 0.5, 1.5), b0 = random_tensor<T, 1>({C}, 4);
  Parameter<T, 2> p("x", x);
  Parameter<T, 1> g("g", g0), b("b", b0);
  auto y = dp::layer_norm(p.var(), g.var(), b.var());
  REQUIRE(all_finite(y.value()));
  for (index_t c = 0; c < C; ++c) {
    CHECK(y.value()(0, c) == doctest::Approx(b0(c)));  // (x - mean) = 0 exactly: y = beta
    CHECK(y.value()(2, c) == doctest::Approx(b0(c)));
    CHECK(y.value()(3, c) == doctest::Approx(b0(c)).epsilon(1e-6));
    // +-1e18 around mean ~ 1e18/C: xhat ~ +-1 (the biased std of the alternating row)
    const double sign = c % 2 ? 1 : -1, mean = -1e18 / C;  // 18 positives, 19 negatives
    const double sd = std::sqrt(1e36 - mean * mean);
    CHECK(y.value()(4, c) == doctest::Approx((sign * 1e18 - mean) / sd * g0(c) + b0(c)).epsilon(1e-4));
  }
  y.backward(random_tensor<T, 2>({5, C}, 5));
  CHECK(all_finite(p.grad()));
  CHECK(all_finite(g.grad()));
  CHECK(all_finite(b.grad()));

  Parameter<T, 2> q("x", x);
  Parameter<T, 1> gr("g", g0);
  auto z = dp::rms_norm(q.var(), gr.var());
  REQUIRE(all_finite(z.value()));
  for (index_t c = 0; c < C; ++c) {
    CHECK(z.value()(2, c) == T(0));                                    // zero row: 0 * rsqrt(eps)
    CHECK(z.value()(0, c) == doctest::Approx(g0(c)).epsilon(1e-5));    // 5 / sqrt(25 + eps)
    CHECK(z.value()(4, c) == doctest::Approx((c % 2 ? 1 : -1) * g0(c)).epsilon(1e-5));
  }
  z.backward(random_tensor<T, 2>({5, C}, 6));
  CHECK(all_finite(q.grad()));
  CHECK(all_finite(gr.grad()));
}

TEST_CASE_TEMPLATE("hazards: activations saturate instead of overflowing", T, float, double) {
  const T big = T(1e30);
  const auto x = Tensor<T, 1>::from({6}, {-big, -T(100), T(-1e-30), T(1e-30), T(100), big});
  const auto check = [&](auto f, std::vector<double> lo_hi) {
    Parameter<T, 1> p("x", x);
    auto y = f(p.var());
    REQUIRE(all_finite(y.value()));
    CHECK(y.value()(0) == doctest::Approx(lo_hi[0]));
    CHECK(y.value()(5) == doctest::Approx(lo_hi[1]).epsilon(1e-6));
    y.backward(Tensor<T, 1>::full({6}, T(1)));
    CHECK(all_finite(p.grad()));
  };
  check([](auto v) { return dp::tanh(v); }, {-1, 1});
  check([](auto v) { return dp::sigmoid(v); }, {0, 1});
  check([](auto v) { return dp::gelu(v); }, {0, 1e30});
  check([](auto v) { return dp::gelu_tanh(v); }, {0, 1e30});
  check([](auto v) { return dp::relu(v); }, {0, 1e30});
}

TEST_CASE_TEMPLATE("hazards: attention with huge scores, the lowest() mask and fully masked rows", T, float, double) {
  const index_t B = 3, H = 2, T_ = 5, D = 8;
  // example 0: huge queries (scores ~1e8: the softmax is one-hot); 1: HF's lowest() mask on two keys;
  // 2: every key masked (a fully padded example) -> the uniform average of the values, as HF
  auto qv = random_tensor<T, 4>({B, H, T_, D}, 7);
  for (index_t i = 0; i < H * T_ * D; ++i) qv.data()[i] *= T(1e4);
  auto kv = random_tensor<T, 4>({B, H, T_, D}, 8), vv = random_tensor<T, 4>({B, H, T_, D}, 9);
  auto pad = Tensor<float, 2>::full({B, T_}, 1.f);
  pad(1, 3) = pad(1, 4) = 0.f;
  for (index_t t = 0; t < T_; ++t) pad(2, t) = 0.f;
  for (bool with_prefix : {false, true}) {
    INFO("prefix " << with_prefix);
    Parameter<T, 4> q("q", qv), k("k", kv), v("v", vv);
    Parameter<T, 3> pk("pk", random_tensor<T, 3>({H, 2, D}, 10)), pv("pv", random_tensor<T, 3>({H, 2, D}, 11));
    dp::AttentionOptions<T> opt{.mask = dp::attention_mask<T>(pad)};
    if (with_prefix) opt.prefix_k = pk.var(), opt.prefix_v = pv.var();
    auto y = dp::scaled_dot_product_attention(q.var(), k.var(), v.var(), opt);
    REQUIRE(all_finite(y.value()));
    if (!with_prefix)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < D; ++d) {
          T mean = 0;
          for (index_t t = 0; t < T_; ++t) mean += vv(2, h, t, d) / T(T_);
          CHECK(y.value()(2, h, 0, d) == doctest::Approx(mean).epsilon(1e-5));
        }
    y.backward(random_tensor<T, 4>({B, H, T_, D}, 12));
    CHECK(all_finite(q.grad()));
    CHECK(all_finite(k.grad()));
    CHECK(all_finite(v.grad()));
    if (with_prefix) {
      CHECK(all_finite(pk.grad()));
      CHECK(all_finite(pv.grad()));
    }
    // a masked key gets no gradient (its probability is exactly 0)
    for (index_t d = 0; d < D; ++d) CHECK(v.grad()(1, 0, 4, d) == T(0));
  }
}

}  // namespace test_numerical_hazards
