// backend/cpu/gemm_bf16.hpp and the bf16 path of a frozen Linear (ops/linear.hpp linear_bf16,
// nn/linear.hpp use_bf16): values against a double reference computed on the bf16-rounded
// inputs (so only the fp32 accumulation order differs), edges, thread-count independence, the
// gradients, and the error of bf16 weights against fp32 (Linear and a small BERT).
#include <deepprompt/backend/cpu/counters.hpp>
#include <deepprompt/backend/cpu/gemm_bf16.hpp>
#include <deepprompt/deepprompt.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "testing.hpp"

namespace test_gemm_bf16 {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using cpu::PackedBf16Matrix;
using dp_test::random_tensor;

namespace {

float round_bf16(float x) { return static_cast<float>(bf16(x)); }

std::vector<float> random_values(index_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// C = A B + beta C0 with A (M, K) row stride lda, B (K, N) stored (K, N) or (N, K) with ldb:
// checks `c` (row stride ldc) against a double reference on bf16-rounded A and B, within
// tol * (sum_k |a||b| + |beta c0|) per element.
void check_against_reference(index_t M, index_t N, index_t K, const std::vector<float>& a, index_t lda, Trans tb,
                             const std::vector<float>& b, index_t ldb, float beta, const std::vector<float>& c0,
                             const std::vector<float>& c, index_t ldc, double tol) {
  int bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double s = 0, mag = 0;
      for (index_t k = 0; k < K; ++k) {
        const double av = round_bf16(a[i * lda + k]);
        const double bv = round_bf16(tb == Trans::Yes ? b[j * ldb + k] : b[k * ldb + j]);
        s += av * bv;
        mag += std::abs(av * bv);
      }
      const double cin = beta == 0.0f ? 0.0 : double(beta) * c0[i * ldc + j];
      const double want = s + cin, got = c[i * ldc + j];
      if (!(std::abs(got - want) <= tol * (mag + std::abs(cin)) + 1e-30) && bad++ < 5)
        FAIL_CHECK("M " << M << " N " << N << " K " << K << " beta " << beta << " at (" << i << ", " << j
                        << "): got " << got << ", want " << want);
    }
  CHECK(bad == 0);
}

// One product with padded rows (lda = K + 3, ldc = N + 2): values and untouched padding.
void run_case(index_t M, index_t N, index_t K, Trans tb, float beta, std::uint32_t seed) {
  const index_t lda = K + 3, ldc = N + 2, ldb = (tb == Trans::Yes ? K : N) + 1;
  const auto a = random_values(M * lda, seed);
  const auto b = random_values((tb == Trans::Yes ? N : K) * ldb, seed + 1);
  const auto c0 = random_values(M * ldc, seed + 2);
  std::vector<float> c = c0;
  if (beta == 0.0f)  // beta == 0 must overwrite, NaN included
    for (index_t i = 0; i < M; ++i) c[i * ldc] = std::nanf("");
  const PackedBf16Matrix packed(tb, K, N, b.data(), ldb);
  REQUIRE(packed.rows() == K);
  REQUIRE(packed.cols() == N);
  cpu::gemm_bf16(M, a.data(), lda, packed, beta, c.data(), ldc);
  check_against_reference(M, N, K, a, lda, tb, b, ldb, beta, c0, c, ldc, 1e-5);
  for (index_t i = 0; i < M; ++i)
    for (index_t j = N; j < ldc; ++j) REQUIRE(c[i * ldc + j] == c0[i * ldc + j]);
}

// Restores the thread count when a test ends.
struct ThreadsGuard {
  int saved = cpu::num_threads();
  ~ThreadsGuard() { cpu::set_num_threads(saved); }
};

}  // namespace

TEST_CASE("gemm_bf16: packing rounds B to nearest even bf16, both storage orders") {
  const index_t K = 5, N = 35;
  auto b = random_values(K * N, 3);
  b[0] = 1.0f + 1.0f / 256;  // a tie between 1 and 1 + 2^-7: rounds to even (1)
  b[1] = 1.0f + 3.0f / 256;  // a tie between 1 + 2^-7 and 1 + 2^-6: rounds to even (1 + 2^-6)
  const PackedBf16Matrix kn(Trans::No, K, N, b.data(), N);   // b stored (K, N)
  const PackedBf16Matrix nk(Trans::Yes, N, K, b.data(), N);  // the same memory as (N, K)^T: B' (N, K)
  CHECK(kn.at(0, 0) == 1.0f);
  CHECK(kn.at(0, 1) == 1.0f + 1.0f / 64);
  for (index_t k = 0; k < K; ++k)
    for (index_t n = 0; n < N; ++n) {
      CHECK(kn.at(k, n) == round_bf16(b[k * N + n]));
      CHECK(nk.at(n, k) == round_bf16(b[k * N + n]));
    }
  CHECK(kn.bytes() == 2u * 2 * 3 * 32 * 2);  // 2 panels of 32 columns, 3 pairs of K, 2 bytes
}

TEST_CASE("gemm_bf16: values against a double reference on bf16-rounded inputs, edge shapes, beta 0 and 1") {
  std::uint32_t seed = 10;
  for (index_t M : {1, 7, 17, 33, 100})
    for (index_t N : {1, 7, 17, 33, 64, 100})
      for (index_t K : {1, 7, 17, 33, 64, 100, 768})
        for (float beta : {0.0f, 1.0f}) {
          CAPTURE(M);
          CAPTURE(N);
          CAPTURE(K);
          run_case(M, N, K, (seed & 1) ? Trans::Yes : Trans::No, beta, seed);
          seed += 3;
        }
}

TEST_CASE("gemm_bf16: BERT-sized products (K of several blocks, odd K, row and column thread splits)") {
  run_case(100, 768, 768, Trans::Yes, 0.0f, 101);
  run_case(37, 200, 777, Trans::No, 1.0f, 102);  // odd K over three K blocks
  run_case(390, 40, 65, Trans::Yes, 1.0f, 103);  // rows past one 384-row block
  run_case(5, 300, 100, Trans::Yes, 0.0f, 104);  // few rows: split along N
}

TEST_CASE("gemm_bf16: beta other than 0 and 1, K == 0, M == 0") {
  run_case(9, 40, 20, Trans::Yes, 0.5f, 200);
  const std::vector<float> a(8, 1.0f);
  std::vector<float> c{1, 2, 3, 4, 5, 6};
  const PackedBf16Matrix empty_k(Trans::No, 0, 3, nullptr, 3);
  cpu::gemm_bf16(2, a.data(), 0, empty_k, 2.0f, c.data(), 3);
  CHECK(c == std::vector<float>{2, 4, 6, 8, 10, 12});
  cpu::gemm_bf16(2, a.data(), 0, empty_k, 0.0f, c.data(), 3);
  CHECK(c == std::vector<float>(6, 0.0f));
  const std::vector<float> b_src(12, 1.0f);  // (K, N) = (4, 3)
  const PackedBf16Matrix b(Trans::No, 4, 3, b_src.data(), 3);
  cpu::gemm_bf16(0, a.data(), 4, b, 0.0f, c.data(), 3);  // nothing to do, nothing read
}

TEST_CASE("gemm_bf16: results are bit-identical on 1 and 2 threads") {
  ThreadsGuard guard;
  struct Shape3 {
    index_t M, N, K;
  };
  for (const Shape3 s : {Shape3{300, 200, 800}, Shape3{20, 500, 300}, Shape3{129, 129, 129}}) {
    const auto a = random_values(s.M * s.K, 300);
    const auto w = random_values(s.N * s.K, 301);
    const auto c0 = random_values(s.M * s.N, 302);
    const PackedBf16Matrix packed(Trans::Yes, s.K, s.N, w.data(), s.K);
    std::vector<float> one = c0, two = c0;
    cpu::set_num_threads(1);
    cpu::gemm_bf16(s.M, a.data(), s.K, packed, 1.0f, one.data(), s.N);
    cpu::set_num_threads(2);
    cpu::gemm_bf16(s.M, a.data(), s.K, packed, 1.0f, two.data(), s.N);
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("gemm_bf16: counts one GEMM call and 2 M N K flops") {
  const auto a = random_values(6 * 10, 400), w = random_values(8 * 10, 401);
  const PackedBf16Matrix packed(Trans::Yes, 10, 8, w.data(), 10);
  std::vector<float> c(6 * 8);
  auto& k = cpu::counters();
  const long long calls = k.gemm_calls.load(), flops = k.gemm_flops.load();
  cpu::gemm_bf16(6, a.data(), 10, packed, 0.0f, c.data(), 8);
  CHECK(k.gemm_calls.load() == calls + 1);
  CHECK(k.gemm_flops.load() == flops + 2 * 6 * 8 * 10);
}

namespace {

// A float Linear (out, in) with a bias, weights and bias uniform in [-r, r).
Linear<float> random_linear(index_t out, index_t in, std::uint64_t seed, double r = 0.1) {
  Generator gen(seed);
  Linear<float> lin(out, in, true, gen, 0.0);
  init::uniform(lin.weight.value(), -r, r, gen);
  init::uniform(lin.bias->value(), -r, r, gen);
  return lin;
}

}  // namespace

TEST_CASE("Linear::use_bf16: needs a frozen weight, keeps the fp32 weight, unfreezing returns to fp32") {
  Linear<float> lin = random_linear(24, 40, 500);
  CHECK_THROWS_AS(lin.use_bf16(true), Error);
  CHECK(!lin.uses_bf16());
  const Tensor<float, 2> before = lin.weight.value().clone();
  lin.weight.set_trainable(false);
  lin.use_bf16(true);
  CHECK(lin.uses_bf16());
  CHECK(lin.bf16_weight()->bytes() == 2u * 32 * 20 * 2);  // W^T: 1 panel of 32 columns x 20 pairs (no dx yet)
  CHECK(std::memcmp(before.data(), lin.weight.value().data(), sizeof(float) * before.size()) == 0);

  const Var<float, 2> x(random_tensor<float, 2>({5, 40}, 501));
  const Tensor<float, 2> y_bf16 = lin(x).value().clone();
  lin.weight.set_trainable(true);  // trainable again: the exact fp32 path
  CHECK(!lin.uses_bf16());
  const Tensor<float, 2> y_f32 = lin(x).value().clone();
  const Tensor<float, 2> y_ref = linear(x, Var<float, 2>(before), lin.bias->var()).value();
  CHECK(dp_test::max_abs_diff(y_f32, y_ref) == 0.0);
  CHECK(dp_test::max_abs_diff(y_bf16, y_f32) > 0.0);
  lin.use_bf16(false);
  CHECK(lin.bf16_weight() == nullptr);

  Generator gen(1);
  Linear<double> dlin(3, 4, true, gen);
  dlin.weight.set_trainable(false);
  CHECK_THROWS_AS(dlin.use_bf16(true), Error);
}

TEST_CASE("linear_bf16: forward against the bf16 reference and near fp32; dx, db; no weight gradient") {
  const index_t rows = 2 * 13, in = 70, out = 45;
  Linear<float> lin = random_linear(out, in, 600);
  lin.weight.set_trainable(false);
  Parameter<float, 3> x("x", random_tensor<float, 3>({2, 13, in}, 601));
  const Tensor<float, 3> dy = random_tensor<float, 3>({2, 13, out}, 602);
  const std::vector<float> xv(x.value().data(), x.value().data() + x.size());
  const std::vector<float> wv(lin.weight.value().data(), lin.weight.value().data() + lin.weight.size());
  const std::vector<float> dyv(dy.data(), dy.data() + dy.size());

  // fp32 first (value and gradients), then bf16.
  lin(x.var()).backward(dy);
  const Tensor<float, 3> dx_f32 = x.grad().clone();
  const Tensor<float, 1> db_f32 = lin.bias->grad().clone();
  const Tensor<float, 3> y_f32 = lin(x.var()).value().clone();
  x.zero_grad();
  lin.bias->zero_grad();

  lin.use_bf16(true);
  auto& k = cpu::counters();
  const long long calls = k.gemm_calls.load();
  const Var<float, 3> y = lin(x.var());
  CHECK(k.gemm_calls.load() == calls + 1);
  y.backward(dy);
  CHECK(k.gemm_calls.load() == calls + 2);  // dx only: no weight-gradient GEMM

  // forward: the bf16 reference plus the bias
  std::vector<float> yv(y.value().data(), y.value().data() + y.size());
  const float* bias = lin.bias->value().data();
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < out; ++j) yv[i * out + j] -= bias[j];
  check_against_reference(rows, out, in, xv, in, Trans::Yes, wv, in, 0.0f, {}, yv, out, 2e-5);
  // dx = dy W, on bf16-rounded dy and W
  const std::vector<float> dxv(x.grad().data(), x.grad().data() + x.grad().size());
  check_against_reference(rows, in, out, dyv, out, Trans::No, wv, in, 0.0f, {}, dxv, in, 1e-5);
  // db is exact fp32 (the same reduction as the fp32 path)
  CHECK(dp_test::max_abs_diff(lin.bias->grad(), db_f32) == 0.0);

  // Against fp32: bf16 keeps 8 significant bits of x and W, so each product is off by up to
  // ~2^-8 relative; over In = 70 random terms the sum's error is ~1e-3 of its scale.
  const double fwd_err = dp_test::scaled_error(y.value(), y_f32);
  const double dx_err = dp_test::scaled_error(x.grad(), dx_f32);
  MESSAGE("linear_bf16 vs fp32, max abs error / max |fp32|: forward " << fwd_err << ", dx " << dx_err);
  CHECK(fwd_err < 1e-2);
  CHECK(dx_err < 1e-2);
  CHECK(fwd_err > 0);
}

TEST_CASE("linear_bf16: shape errors name the op and the shapes") {
  const auto w = std::make_shared<const Bf16LinearWeight>(random_tensor<float, 2>({5, 3}, 610));
  const Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(linear_bf16(x, w), doctest::Contains("linear_bf16: x's last extent"), ShapeError);
  CHECK_THROWS_WITH_AS(linear_bf16(x, w), doctest::Contains("(2, 3, 4) and (5, 3)"), ShapeError);
  const Var<float, 2> fits(Tensor<float, 2>::zeros({2, 3}));
  const Var<float, 1> bias(Tensor<float, 1>::zeros({4}));
  CHECK_THROWS_WITH_AS(linear_bf16(fits, w, &bias), doctest::Contains("bias must have weight's Out extent; got (4) and (5, 3)"),
                       ShapeError);
  CHECK(linear_bf16(fits, w).shape() == Shape<2>{2, 5});
}

TEST_CASE("linear_bf16: dx matches finite differences of the bf16 forward (loosely), with and without bias") {
  const index_t in = 16, out = 8;
  for (bool with_bias : {true, false}) {
    Linear<float> lin = random_linear(out, in, 700);
    if (!with_bias) lin.bias.reset();
    lin.weight.set_trainable(false);
    lin.use_bf16(true);
    Parameter<float, 2> x("x", random_tensor<float, 2>({3, in}, 701));
    const Tensor<float, 2> dy = random_tensor<float, 2>({3, out}, 702);
    lin(x.var()).backward(dy);
    // loss = sum(y * dy); the forward rounds x to bf16, so the step is large (several bf16
    // ulps) and the tolerance loose.
    const float h = 0.05f;
    for (index_t i = 0; i < x.size(); ++i) {
      Tensor<float, 2> xp = x.value().clone(), xm = x.value().clone();
      xp.data()[i] += h;
      xm.data()[i] -= h;
      const Tensor<float, 2> yp = lin(Var<float, 2>(xp)).value(), ym = lin(Var<float, 2>(xm)).value();
      double fd = 0;
      for (index_t j = 0; j < yp.size(); ++j) fd += (double(yp.data()[j]) - ym.data()[j]) * dy.data()[j];
      fd /= 2 * h;
      CHECK(std::abs(fd - x.grad().data()[i]) < 2e-2);
    }
  }
}

TEST_CASE("use_bf16_weights: switches every frozen Linear of a small BERT; last_hidden_state stays close") {
  BertDynamicConfig c;
  c.layers = 2, c.hidden = 64, c.heads = 4, c.intermediate = 128, c.vocab = 100, c.max_positions = 32;
  DynamicBert<float> bert(c, BertInit{.seed = 3});
  const index_t B = 2, T = 9;
  Tensor<std::int64_t, 2> ids({B, T}), mask({B, T});
  for (index_t i = 0; i < B * T; ++i) {
    ids.data()[i] = (i * 37 + 5) % c.vocab;
    mask.data()[i] = i % T < T - 2 * (i / T) ? 1 : 0;  // row 1 has 2 padded positions
  }
  NoGradGuard no_grad;
  const Tensor<float, 3> f32 = bert.forward(ids, mask).last_hidden_state.value().clone();

  CHECK(use_bf16_weights(bert) == 0);  // nothing frozen yet
  freeze(bert);
  // 6 Linears per layer (query, key, value, attention output, intermediate, output) + the pooler
  CHECK(use_bf16_weights(bert) == 6 * 2 + 1);
  const Tensor<float, 3> b16 = bert.forward(ids, mask).last_hidden_state.value().clone();
  double max_abs = 0, max_ref = 0;
  for (index_t i = 0; i < f32.size(); ++i) {
    max_abs = std::max(max_abs, std::abs(double(b16.data()[i]) - f32.data()[i]));
    max_ref = std::max(max_ref, std::abs(double(f32.data()[i])));
  }
  MESSAGE("BERT (2 layers, 64 hidden) last_hidden_state, bf16 vs fp32: max abs " << max_abs << ", max |fp32| "
                                                                                   << max_ref);
  CHECK(max_abs > 0);
  CHECK(max_abs < 0.05 * max_ref);

  CHECK(use_bf16_weights(bert, false) == 6 * 2 + 1);
  const Tensor<float, 3> back = bert.forward(ids, mask).last_hidden_state.value();
  CHECK(dp_test::max_abs_diff(back, f32) == 0.0);
}

}  // namespace test_gemm_bf16
