// backend/cpu/philox.hpp and the attention's dropout bits: the vectorised Philox words against
// Generator::word_at, the dropout kernels (forward mask and bits, backward) against plain loops
// at sizes that cross the 16-lane, 64-bit-word and 4096-element chunk boundaries, and the fused
// attention's backward pass reading the forward's kept bits against the one that redraws them.
#include "deepprompt/backend/cpu/attention_kernels.hpp"
#include "deepprompt/backend/cpu/philox.hpp"
#include "deepprompt/core/rng.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace test_kernels_dropout {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace {

namespace cpu = deepprompt::cpu;
using cpu::index_t;

std::vector<float> random_floats(index_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = dist(gen);
  return v;
}

std::uint64_t threshold_of(double p) { return static_cast<std::uint64_t>(std::ceil(p * 4294967296.0)); }

}  // namespace

TEST_CASE("philox_words: word j is Generator(seed).word_at(first + j), any first and n") {
  for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{4097},
                              (std::uint64_t{1} << 33) + 2}) {
    for (index_t n : {1, 3, 31, 32, 33, 100, 1000}) {
      INFO("first " << first << ", n " << n);
      const std::uint64_t seed = 0x1234'5678'9ABC'DEF0ull ^ first;
      std::vector<std::uint32_t> tmp(static_cast<std::size_t>(cpu::philox_capacity(n)));
      const std::uint32_t* w = cpu::philox_words(seed, first, n, tmp.data());
      const deepprompt::Generator gen(seed);
      index_t wrong = 0;
      for (index_t j = 0; j < n; ++j) wrong += w[j] != gen.word_at(first + static_cast<std::uint64_t>(j));
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("dropout kernels: forward values and bits, backward, against plain loops (float and double)") {
  const double p = 0.3;
  const std::uint64_t seed = 77, thr = threshold_of(p);
  const deepprompt::Generator gen(seed);
  for (index_t n : {1, 15, 16, 17, 63, 64, 65, 555, 4096, 4097, 70001}) {
    for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{5}}) {
      INFO("n " << n << ", first " << first);
      const auto x = random_floats(n, 1), dy = random_floats(n, 2);
      const float scale = 1.0f / (1.0f - static_cast<float>(p));
      std::vector<float> y(x.size()), dx(x.size(), 0.5f);
      std::vector<std::uint64_t> mask(static_cast<std::size_t>((n + 63) / 64), ~std::uint64_t{0});
      cpu::dropout_forward(x.data(), y.data(), mask.data(), n, seed, first, thr, scale);
      cpu::dropout_backward(mask.data(), dy.data(), dx.data(), n, scale);
      index_t bad_y = 0, bad_bit = 0, bad_dx = 0;
      for (index_t i = 0; i < n; ++i) {
        const bool keep = gen.word_at(first + static_cast<std::uint64_t>(i)) >= thr;
        bad_y += y[i] != (keep ? x[i] * scale : 0.0f);
        bad_bit += ((mask[i / 64] >> (i % 64)) & 1u) != keep;
        // dx += dy * scale, fused or not (one rounding apart)
        const double want = 0.5 + (keep ? double(dy[i]) * scale : 0.0);
        bad_dx += std::abs(dx[i] - want) > 1e-6 * (1 + std::abs(want));
      }
      CHECK(bad_y == 0);
      CHECK(bad_bit == 0);
      CHECK(bad_dx == 0);
      // double takes the portable path: the same mask
      std::vector<double> xd(x.begin(), x.end()), yd(xd.size());
      cpu::dropout_forward(xd.data(), yd.data(), static_cast<std::uint64_t*>(nullptr), n, seed, first, thr, 1.0 / (1 - p));
      index_t bad_d = 0;
      for (index_t i = 0; i < n; ++i) bad_d += (yd[i] != 0.0) != (y[i] != 0.0f || x[i] == 0.0f);
      CHECK(bad_d == 0);
    }
  }
}

TEST_CASE("keep_apply: a dropped inf or NaN becomes exactly 0; in place; bits of a partial last word") {
  const index_t n = 37;
  std::vector<std::uint32_t> w(static_cast<std::size_t>(n));
  for (index_t j = 0; j < n; ++j) w[j] = j % 3 == 0 ? 0u : 0xFFFFFFFFu;  // every third dropped
  std::vector<float> x(static_cast<std::size_t>(n), std::numeric_limits<float>::infinity());
  x[1] = std::numeric_limits<float>::quiet_NaN();
  std::uint64_t bits[1] = {~std::uint64_t{0}};
  cpu::keep_apply(w.data(), x.data(), x.data(), n, std::uint64_t{1} << 31, 2.0f, bits);
  std::uint64_t expect = 0;
  for (index_t j = 0; j < n; ++j) {
    if (j % 3 == 0) CHECK(x[j] == 0.0f);
    else expect |= std::uint64_t{1} << j;
  }
  CHECK(std::isnan(x[1]));
  CHECK(std::isinf(x[2]));
  CHECK(bits[0] == expect);
  std::vector<float> z(static_cast<std::size_t>(n), -1.0f);
  cpu::keep_factors(bits, z.data(), n, 2.0f);
  for (index_t j = 0; j < n; ++j) CHECK(z[j] == (j % 3 == 0 ? 0.0f : 2.0f));
}

TEST_CASE("fused attention: the backward pass reading the forward's kept bits equals the one that redraws") {
  struct Case {
    index_t B, H, Tq, Tk, P, D;
    bool causal, shared;
  };
  for (const Case c : {Case{2, 3, 70, 70, 21, 8, false, true}, Case{1, 2, 33, 50, 0, 16, true, false},
                       Case{2, 2, 130, 130, 100, 4, false, false}}) {
    INFO("Tq " << c.Tq << ", P " << c.P);
    const index_t nq = c.B * c.H * c.Tq * c.D, nk = c.B * c.H * c.Tk * c.D;
    const index_t np = (c.shared ? 1 : c.B) * c.H * c.P * c.D + 1;
    const auto q = random_floats(nq, 1), k = random_floats(nk, 2), v = random_floats(nk, 3), dout = random_floats(nq, 4);
    const auto pk = random_floats(np, 5), pv = random_floats(np, 6);
    cpu::AttentionArgs<float> a;
    a.batch = c.B, a.heads = c.H, a.q_len = c.Tq, a.kv_len = c.Tk, a.prefix_len = c.P, a.head_dim = c.D;
    a.q = q.data(), a.k = k.data(), a.v = v.data();
    if (c.P > 0) a.prefix_k = pk.data(), a.prefix_v = pv.data(), a.prefix_per_example = !c.shared;
    a.causal = c.causal, a.scale = 0.3f, a.dropout = 0.2f, a.seed = 9, a.first_word = 12345;
    std::vector<float> out(nq), stats(static_cast<std::size_t>(c.B * c.H * c.Tq * 2)),
        ws(cpu::attention_workspace_size(a, true));
    std::vector<std::uint64_t> keep(a.keep_words());
    a.keep_bits = keep.data();
    cpu::attention_forward(a, out.data(), stats.data(), ws.data());
    std::vector<float> grads[2][5];
    for (int with_bits : {0, 1}) {
      a.keep_bits = with_bits ? keep.data() : nullptr;
      auto& g = grads[with_bits];
      g[0].assign(nq, 0.0f), g[1].assign(nk, 0.0f), g[2].assign(nk, 0.0f), g[3].assign(np, 0.0f), g[4].assign(np, 0.0f);
      cpu::AttentionGrads<float> gr{g[0].data(), g[1].data(), g[2].data(), c.P ? g[3].data() : nullptr,
                                    c.P ? g[4].data() : nullptr, nullptr};
      cpu::attention_backward(a, dout.data(), stats.data(), gr, ws.data());
    }
    for (int i = 0; i < 5; ++i) CHECK(grads[0][i] == grads[1][i]);
    // and the forward pass without bits gives the same output
    std::vector<float> out2(nq);
    a.keep_bits = nullptr;
    cpu::attention_forward(a, out2.data(), stats.data(), ws.data());
    CHECK(out == out2);
  }
}

}  // namespace test_kernels_dropout
