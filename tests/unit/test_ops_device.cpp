// The device code paths of the ops, run without a GPU. An op on Var<T, R, D> with D other than
// Cpu takes other branches than on the host: kernels reached through f(D{}, ...), ids and
// targets uploaded, no saved attention-dropout bits, arithmetic built from unfused kernels,
// permute through permute_copy, gradients zeroed through fill. HostDevice below is a device
// whose memory is host memory and whose kernels are the CPU ones (or plain loops with the
// CUDA kernels' contracts), so every op is run here on HostDevice and on Cpu from the same
// inputs and seed gradient, and the outputs and gradients must agree. On a GPU, tests/cuda/ops.cu
// runs the same comparison with the CUDA kernels.
#include <doctest/doctest.h>

#include <cstring>
#include <tuple>
#include <vector>

#include "deepprompt/autodiff/parameter.hpp"
#include "deepprompt/backend/dispatch.hpp"
#include "deepprompt/ops/activation.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/attention.hpp"
#include "deepprompt/ops/concat.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/ops/embedding.hpp"
#include "deepprompt/ops/linear.hpp"
#include "deepprompt/ops/lstm.hpp"
#include "deepprompt/ops/matmul.hpp"
#include "deepprompt/ops/norm.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "deepprompt/ops/shape.hpp"
#include "deepprompt/ops/softmax.hpp"
#include "host_device.hpp"

namespace test_ops_device {

namespace dp = deepprompt;
using dp::index_t;
using dp::Shape;
using dp_test::check_op;
using dp_test::on;
using dp_test::values;
using Dev = dp_test::HostDevice;

template <std::size_t R>
dp::Tensor<float, R> rnd(const Shape<R>& s, std::uint64_t seed, double lo = -2, double hi = 2) {
  return dp_test::random_tensor<float>(s, seed, lo, hi);
}
template <class V>
using DeviceOf = typename V::device_type;

TEST_CASE("device path: element-wise, row-wise and shape ops agree with the host") {
  const auto x = rnd(Shape<3>{3, 5, 67}, 1);
  const auto g = rnd(Shape<1>{67}, 2), b = rnd(Shape<1>{67}, 3);
  check_op([](auto v) { return dp::gelu(v); }, 0, x);
  check_op([](auto v) { return dp::tanh(v); }, 0, x);
  check_op([](auto v) { return dp::softmax(v); }, 0, x);
  check_op([](auto v) { return dp::layer_norm(v, 1e-5f); }, 0, x);
  check_op([](auto v, auto gg, auto bb) { return dp::layer_norm(v, gg, bb); }, 0, x, g, b);
  check_op([](auto v, auto gg) { return dp::rms_norm(v, gg); }, 0, x, g);
  check_op([](auto v) { return dp::permute(dp::reshape(v, Shape<4>{3, 5, 1, 67}), {2, 0, 3, 1}); }, 0, x);
  check_op([](auto v) { return dp::transpose(v, 0, 1); }, 0, x);
  check_op([](auto v) { return dp::slice(v, 1, 1, 4) * 2.0f; }, 0, x);   // a copy (the pooler's slice)
  check_op([](auto v) { return dp::slice(v, 2, 60, 67); }, 0, x);
  check_op([](auto v) { return dp::slice(v, 0, 1, 2) * 3.0f; }, 0, x);   // a view
  check_op([](auto v) { return dp::repeat_rows(dp::reshape(v, Shape<2>{15, 67}), 4); }, 0, x);
  check_op([](auto u, auto v) { return dp::concat({u, v * 2.0f, u}, 1); }, 0, x, rnd(Shape<3>{3, 2, 67}, 8));
  check_op([](auto u, auto v) { return dp::concat({v, u}, -1); }, 0, x, rnd(Shape<3>{3, 5, 9}, 9));
  // reductions: a double accumulator in another order, so within float rounding of the sum
  check_op([](auto v) { return dp::sum(v) * 1.0f; }, 1e-6, x);
  check_op([](auto v) { return dp::mean(v) * 1.0f; }, 1e-6, x);
  check_op([](auto v) { return dp::sum(v, 1); }, 1e-6, x);
  check_op([](auto v) { return dp::mean(v, -1); }, 1e-6, x);
  check_op([](auto v) { return dp::sum(v, 0); }, 1e-6, x);
  check_op([](auto v) {
    dp::Generator gen(5, 9);
    return dp::dropout(v, 0.25f, gen, true);
  }, 0, x);
}

TEST_CASE("device path: arithmetic (unfused kernels) agrees with the host") {
  const auto a = rnd(Shape<2>{6, 33}, 4), c = rnd(Shape<2>{6, 33}, 5, 0.5, 2);
  const auto bias = rnd(Shape<1>{33}, 6);
  check_op([](auto u, auto v) { return u + v; }, 0, a, c);
  check_op([](auto u, auto v) { return u + v; }, 0, a, bias);
  check_op([](auto u, auto v) { return u - v; }, 0, a, c);
  check_op([](auto u, auto v) { return u * v; }, 1e-6, a, c);
  check_op([](auto u, auto v) { return u / v; }, 1e-6, a, c);
  check_op([](auto u) { return 2.0f * u - 1.0f; }, 0, a);
  // broadcasting other than add is not offered on a device: a clear error, not garbage
  dp::Var<float, 2, Dev> ad(on<Dev>(a));
  dp::Var<float, 1, Dev> bd(on<Dev>(bias));
  CHECK_THROWS_WITH_AS(ad * bd, doctest::Contains("not offered on device host-device"), dp::Error);
}

TEST_CASE("device path: linear, embedding and cross-entropy agree with the host") {
  const auto x = rnd(Shape<3>{2, 9, 24}, 7);
  const auto w = rnd(Shape<2>{10, 24}, 8);
  const auto b = rnd(Shape<1>{10}, 9);
  check_op([](auto u, auto v, auto c) { return dp::linear(u, v, c); }, 0, x, w, b);
  const auto m1 = rnd(Shape<2>{7, 12}, 21), m2 = rnd(Shape<2>{9, 12}, 22);
  check_op([](auto u, auto v) { return dp::matmul(u, v, dp::Trans::No, dp::Trans::Yes); }, 0, m1, m2);
  const auto b1 = rnd(Shape<3>{3, 12, 7}, 23), b2 = rnd(Shape<3>{3, 12, 5}, 24);
  check_op([](auto u, auto v) { return dp::matmul(u, v, dp::Trans::Yes, dp::Trans::No); }, 0, b1, b2);
  // P-Tuning v1's LSTM cell: the gates through the device's lstm_gates kernels
  const auto lx = rnd(Shape<2>{3, 5}, 25), lh = rnd(Shape<2>{3, 4}, 26), lc = rnd(Shape<2>{3, 4}, 27);
  const auto wih = rnd(Shape<2>{16, 5}, 28), whh = rnd(Shape<2>{16, 4}, 29);
  const auto bih = rnd(Shape<1>{16}, 30), bhh = rnd(Shape<1>{16}, 31);
  check_op([](auto x, auto h, auto c, auto wi, auto wh, auto bi, auto bh) {
    const auto s = dp::lstm_cell(x, h, c, wi, wh, bi, bh);
    return s.h * 2.0f + s.c;
  }, 1e-6, lx, lh, lc, wih, whh, bih, bhh);
  check_op([](auto x, auto h, auto c, auto wi, auto wh, auto bi, auto bh) {
    return dp::lstm_cell(x, h, c, wi, wh, bi, bh).h;  // no gradient reaches c'
  }, 1e-6, lx, lh, lc, wih, whh, bih, bhh);
  const auto table = rnd(Shape<2>{20, 6}, 10);
  const auto ids = dp::Tensor<std::int64_t, 2>::from({2, 4}, {3, 0, 3, 19, 7, 0, 7, 7});
  check_op([&](auto t) { return dp::embedding(t, ids, 0); }, 0, table);
  dp::Var<float, 2, Dev> td(on<Dev>(table));
  const auto bad = dp::Tensor<std::int64_t, 1>::from({2}, {1, 20});
  CHECK_THROWS_WITH_AS(dp::embedding(td, bad), doctest::Contains("id 20"), dp::Error);  // checked on the host
  const auto logits = rnd(Shape<3>{2, 5, 9}, 11, -4, 4);
  const auto targets = dp::Tensor<std::int64_t, 2>::from({2, 5}, {0, 8, 3, 3, -100, 1, 2, 7, 6, 5});
  check_op([&](auto l) { return dp::cross_entropy(l, targets); }, 1e-6, logits);
  check_op([&](auto l) { return dp::cross_entropy(l, targets, -100, 0.1f); }, 1e-6, logits);
}

TEST_CASE("device path: attention with a prefix, mask, bias, causal and dropout agrees with the host") {
  const index_t B = 2, H = 3, T = 6, D = 8, P = 2;
  const auto q = rnd(Shape<4>{B, H, T, D}, 12), k = rnd(Shape<4>{B, H, T, D}, 13), v = rnd(Shape<4>{B, H, T, D}, 14);
  const auto pk = rnd(Shape<3>{H, P, D}, 15), pv = rnd(Shape<3>{H, P, D}, 16);
  const auto bias = rnd(Shape<4>{1, H, T, P + T}, 17);
  const auto mask = dp::attention_mask<float>(dp::Tensor<int, 2>::from({B, T}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
  check_op(
      [&](auto a, auto b, auto c, auto pkv, auto pvv, auto bv) {
        using D2 = DeviceOf<decltype(a)>;
        dp::Generator gen(3);
        dp::AttentionOptions<float, D2> o;
        o.mask = on<D2>(mask), o.prefix_k = pkv, o.prefix_v = pvv, o.bias = bv, o.causal = true;
        o.dropout = 0.2f, o.generator = &gen;
        return dp::scaled_dot_product_attention(a, b, c, o);
      },
      0, q, k, v, pk, pv, bias);
}

TEST_CASE("device path: a Parameter's gradient accumulates over passes and zero_grad clears it") {
  dp::Parameter<float, 2, Dev> p("p", on<Dev>(rnd(Shape<2>{2, 3}, 18)));
  CHECK(values(p.grad()) == std::vector<float>(6, 0.0f));
  for (int pass = 0; pass < 2; ++pass)
    dp::reshape(p.var() * 3.0f, Shape<1>{6}).backward(on<Dev>(dp::Tensor<float, 1>::full({6}, 1.0f)));
  CHECK(values(p.grad()) == std::vector<float>(6, 6.0f));
  p.zero_grad();
  CHECK(values(p.grad()) == std::vector<float>(6, 0.0f));
}

}  // namespace test_ops_device
