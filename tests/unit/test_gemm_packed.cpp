// backend/cpu/gemm_packed.hpp and the pre-packed path of a frozen Linear (ops/linear.hpp
// linear_packed, nn/linear.hpp use_packed): gemm_packed equals cpu::gemm bit for bit at BERT's
// shapes and within rounding at edge shapes, for beta 0, 1 and other, with row strides; the
// op's forward equals linear's, its dx and db equal linear's, the weight gets no gradient.
#include <doctest/doctest.h>

#include <deepprompt/backend/cpu/counters.hpp>
#include <deepprompt/backend/cpu/gemm_packed.hpp>
#include <deepprompt/deepprompt.hpp>

#include <cmath>
#include <vector>

#include "testing.hpp"

namespace test_gemm_packed {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using dp_test::random_tensor;

namespace {

// max |a - b| / max(1, |b|) over n elements with row strides
double max_diff(const float* a, const float* b, index_t rows, index_t cols, index_t ld) {
  double worst = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      const double x = a[i * ld + j], y = b[i * ld + j];
      worst = std::fmax(worst, std::fabs(x - y) / std::fmax(1.0, std::fabs(y)));
    }
  return worst;
}

void compare(index_t rows, index_t out, index_t in, float beta, bool exact) {
  CAPTURE(rows);
  CAPTURE(out);
  CAPTURE(in);
  CAPTURE(beta);
  const index_t ldw = in + 3, ldx = in + 5, ldc = out + 7;
  const Tensor<float, 2> w = random_tensor<float, 2>({out, ldw}, 40), x = random_tensor<float, 2>({rows, ldx}, 41);
  const Tensor<float, 2> c0 = random_tensor<float, 2>({rows, ldc}, 42);
  Tensor<float, 2> want = c0.clone(), got = c0.clone();
  cpu::gemm(Trans::No, Trans::Yes, rows, out, in, 1.0f, x.data(), ldx, w.data(), ldw, beta, want.data(), ldc);
  const cpu::PackedWeight pw(out, in, w.data(), ldw);
  CHECK(pw.bytes() >= static_cast<std::size_t>(out * in) * sizeof(float));
  auto& k = cpu::counters();
  const long long calls = k.gemm_calls.load(), flops = k.gemm_flops.load();
  cpu::gemm_packed(pw, rows, x.data(), ldx, beta, got.data(), ldc);
  CHECK(k.gemm_calls.load() == calls + 1);
  CHECK(k.gemm_flops.load() == flops + 2 * rows * out * in);
  const double d = max_diff(got.data(), want.data(), rows, out, ldc);
  if (exact) CHECK(d == 0.0);
  else CHECK(d < 1e-6);
  // the padding columns of C are untouched
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = out; j < ldc; ++j) CHECK(got(i, j) == c0(i, j));
}

}  // namespace

TEST_CASE("gemm_packed: equals cpu::gemm, bit for bit at BERT's shapes, within rounding at edges") {
  if (!cpu::PackedWeight::available()) {
    CHECK_THROWS_AS(cpu::PackedWeight(4, 4, std::vector<float>(16).data(), 4), Error);
    return;
  }
  compare(576, 768, 768, 0.0f, true);   // BERT-base query/key/value/output, 2 threads
  compare(576, 3072, 768, 0.0f, true);  // intermediate
  compare(64, 768, 3072, 1.0f, true);   // output.dense, accumulating
  compare(13, 70, 45, 0.5f, false);     // edges everywhere, beta other than 0 and 1
  compare(1, 33, 300, 0.0f, false);     // one row (single-threaded), depth over one block
  compare(0, 8, 8, 0.0f, true);         // no rows
}

TEST_CASE("linear_packed: forward, dx and db equal linear's bit for bit; the weight gets no gradient") {
  if (!cpu::PackedWeight::available()) return;
  Generator gen(3);
  Linear<float> lin(768, 768, true, gen);
  lin.weight.set_trainable(false);
  init::normal(lin.bias->value(), 0.0, 0.1, gen);
  Parameter<float, 3> x("x", random_tensor<float, 3>({8, 72, 768}, 50));  // 576 rows, as BERT-base's batch
  const Tensor<float, 3> dy = random_tensor<float, 3>({8, 72, 768}, 51);
  lin(x.var()).backward(dy);
  const Tensor<float, 3> y_ref = lin(x.var()).value().clone(), dx_ref = x.grad().clone();
  const Tensor<float, 1> db_ref = lin.bias->grad().clone();
  x.zero_grad(), lin.bias->zero_grad();

  lin.use_packed(true);
  CHECK(lin.uses_packed());
  CHECK(lin.packed_weight()->bytes() >= 768 * 768 * sizeof(float));
  const Var<float, 3> y = lin(x.var());
  y.backward(dy);
  CHECK(dp_test::max_abs_diff(y.value(), y_ref) == 0.0);
  CHECK(dp_test::max_abs_diff(x.grad(), dx_ref) == 0.0);
  CHECK(dp_test::max_abs_diff(lin.bias->grad(), db_ref) == 0.0);
  CHECK_THROWS_AS(lin.weight.grad(), AutodiffError);  // frozen: no gradient buffer at all

  // a shape mismatch names the op
  const Var<float, 2> bad(Tensor<float, 2>::zeros({2, 5}));
  CHECK_THROWS_WITH_AS(lin(bad), doctest::Contains("linear_packed: x's last extent"), ShapeError);
  // unfreezing returns to the plain path; a trainable weight cannot be packed
  lin.weight.set_trainable(true);
  CHECK(!lin.uses_packed());
  CHECK_THROWS_AS(lin.use_packed(true), Error);
  lin.use_packed(false);
  CHECK(lin.packed_weight() == nullptr);
}

TEST_CASE("use_packed_weights: every frozen Linear of a small BERT; the outputs are the same bits") {
  if (!cpu::PackedWeight::available()) return;
  BertDynamicConfig cfg;
  cfg.hidden = 64, cfg.layers = 2, cfg.heads = 4, cfg.intermediate = 128, cfg.vocab = 50, cfg.max_positions = 40;
  cfg.validate();
  DynamicBert<float> bert(cfg, BertInit{.seed = 9});
  auto ids = Tensor<std::int64_t, 2>::zeros({3, 37});  // 111 rows: edges in every product
  for (index_t i = 0; i < ids.size(); ++i) ids.data()[i] = (i * 13) % 50;
  const Tensor<float, 3> ref = bert.forward(ids).last_hidden_state.value().clone();
  CHECK(use_packed_weights(bert) == 0);  // nothing frozen yet
  freeze(bert);
  CHECK(use_packed_weights(bert) == 2 * 6 + 1);  // 6 Linears a layer and the pooler
  CHECK(dp_test::max_abs_diff(bert.forward(ids).last_hidden_state.value(), ref) == 0.0);
  CHECK(use_packed_weights(bert, false) == 13);
  CHECK(dp_test::max_abs_diff(bert.forward(ids).last_hidden_state.value(), ref) == 0.0);
}

}  // namespace test_gemm_packed
