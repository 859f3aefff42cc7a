// core/: tensors, views, the memory pool, 16-bit storage types, the RNG and initialisers.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "deepprompt/core/half.hpp"
#include "deepprompt/core/init.hpp"
#include "deepprompt/core/tensor.hpp"
#include "alloc_counter.hpp"
#include <cstdlib>

namespace test_core {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;

TEST_CASE("tensor: shape, indexing, row-major layout, 64-byte alignment") {
  auto t = Tensor<float, 3>::zeros({2, 3, 4});
  CHECK(t.size() == 24);
  CHECK(t.strides() == Shape<3>{12, 4, 1});
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  t(1, 2, 3) = 5.f;
  CHECK(t.data()[23] == 5.f);
  auto u = Tensor<double, 2>::from({2, 2}, {1, 2, 3, 4});
  CHECK(u(1, 0) == 3.0);
  CHECK_THROWS_AS((Tensor<float, 2>::from({2, 2}, {1.f, 2.f})), ShapeError);
  CHECK_THROWS_AS((Tensor<float, 1>({-1})), ShapeError);
  Tensor<float, 0> s = Tensor<float, 0>::full({}, 2.5f);
  CHECK(s.size() == 1);
  CHECK(s.item() == 2.5f);
}

TEST_CASE("tensor: copies share, clone copies, views alias without copying") {
  auto a = Tensor<float, 2>::from({3, 2}, {0, 1, 2, 3, 4, 5});
  auto b = a;
  b(0, 0) = 9.f;
  CHECK(a(0, 0) == 9.f);
  auto c = a.clone();
  c(0, 0) = -1.f;
  CHECK(a(0, 0) == 9.f);

  auto flat = a.reshape<1>({6});
  CHECK(flat.data() == a.data());
  CHECK(flat(5) == 5.f);
  CHECK_THROWS_AS(a.reshape<2>({4, 2}), ShapeError);

  auto rows = a.slice(1, 3);
  CHECK(rows.shape() == Shape<2>{2, 2});
  CHECK(rows(0, 1) == 3.f);
  CHECK(rows.data() == a.data() + 2);
  CHECK_THROWS_AS(a.slice(2, 4), ShapeError);
  auto row = a[2];
  CHECK(row.shape() == Shape<1>{2});
  CHECK(row(1) == 5.f);
  CHECK_THROWS_AS(a[3], ShapeError);

  // a view keeps the buffer alive after the original handle is gone
  Tensor<float, 1> keep;
  {
    auto tmp = Tensor<float, 2>::full({4, 4}, 3.f);
    keep = tmp[1];
  }
  CHECK(keep(3) == 3.f);
}

TEST_CASE("memory pool: released blocks are reused, peak and in-use bytes are tracked") {
  auto& pool = MemoryPool::cpu();
  { Tensor<float, 1> warm({1000}); }
  const auto before = pool.stats();
  for (int i = 0; i < 10; ++i) {
    Tensor<float, 1> t({1000});
    Tensor<float, 1> u({990});  // same size class as 1000 floats
    t.fill(1.f);
  }
  const auto after = pool.stats();
  CHECK(after.system_allocations <= before.system_allocations + 1);
  CHECK(after.bytes_in_use == before.bytes_in_use);
}

TEST_CASE("bf16 and fp16 round like PyTorch (nearest even, inf, NaN, subnormals)") {
  std::ifstream in(std::string(DEEPPROMPT_TEST_DATA) + "/half_conversions.txt");
  REQUIRE(in.good());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::uint32_t fbits, hbits, bbits;
    ls >> fbits >> hbits >> bbits;
    const float f = std::bit_cast<float>(fbits);
    INFO("float bits " << fbits << " = " << f);
    CHECK(fp16(f).bits == hbits);
    CHECK(bf16(f).bits == bbits);
    // back to float: exact for representable values
    const float hf = static_cast<float>(fp16::from_bits(static_cast<std::uint16_t>(hbits)));
    CHECK(fp16(hf).bits == hbits);
    ++n;
  }
  CHECK(n > 400);
  CHECK(std::isnan(static_cast<float>(bf16(std::nanf("")))));
  CHECK(std::isnan(static_cast<float>(fp16(std::nanf("")))));
  auto t = Tensor<float, 1>::from({3}, {1.f, -2.5f, 65504.f});
  auto h = convert<fp16>(t);
  auto back = convert<float>(h);
  CHECK(back(1) == -2.5f);
  CHECK(back(2) == 65504.f);
}

TEST_CASE("philox: known-answer vectors of the Random123 reference") {
  // Random123 kat_vectors, philox4x32_10: counter 0, key 0 and counter all-ones, key all-ones
  auto r = philox4x32({0, 0, 0, 0}, 0);
  CHECK(r == std::array<std::uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  r = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffffffffffull);
  CHECK(r == std::array<std::uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
}

TEST_CASE("initialisers: reproducible, right moments, truncation respected") {
  Generator g1(42), g2(42);
  auto a = Tensor<float, 2>({300, 200});
  auto b = Tensor<float, 2>({300, 200});
  init::normal(a, 1.0, 2.0, g1);
  init::normal(b, 1.0, 2.0, g2);
  CHECK(std::equal(a.begin(), a.end(), b.begin()));
  double m = 0, v = 0;
  for (float x : a.span()) m += x;
  m /= a.size();
  for (float x : a.span()) v += (x - m) * (x - m);
  v /= a.size();
  CHECK(m == doctest::Approx(1.0).epsilon(0.02));
  CHECK(std::sqrt(v) == doctest::Approx(2.0).epsilon(0.01));

  init::normal(b, 1.0, 2.0, g2);  // the stream advanced: a different draw
  CHECK(!std::equal(a.begin(), a.end(), b.begin()));

  auto t = Tensor<double, 1>({100000});
  Generator g3(7);
  init::truncated_normal(t, 0.0, 1.0, -2.0, 2.0, g3);
  double tm = 0, tv = 0, lo = 0, hi = 0;
  for (double x : t.span()) tm += x, tv += x * x, lo = std::min(lo, x), hi = std::max(hi, x);
  tm /= t.size();
  tv = tv / t.size() - tm * tm;
  CHECK(lo >= -2.0);
  CHECK(hi <= 2.0);
  CHECK(std::abs(tm) < 0.01);
  CHECK(tv == doctest::Approx(0.7737).epsilon(0.01));  // variance of N(0,1) truncated to [-2, 2]

  auto u = Tensor<float, 1>({50000});
  init::uniform(u, -0.5, 0.5, g3);
  float umin = 1, umax = -1;
  double us = 0;
  for (float x : u.span()) umin = std::min(umin, x), umax = std::max(umax, x), us += x;
  CHECK(umin >= -0.5f);
  CHECK(umax < 0.5f);
  CHECK(std::abs(us / u.size()) < 0.01);
  CHECK(init::inverse_erf(std::erf(0.3)) == doctest::Approx(0.3).epsilon(1e-12));
  CHECK(init::inverse_erf(std::erf(-2.7)) == doctest::Approx(-2.7).epsilon(1e-12));
}

namespace {
void* volatile g_sink;  // allocations stored here escape, so the compiler cannot elide them
}

TEST_CASE("the allocation counter sees operator new and, when wrapped, malloc") {
  const auto before = dp_test::heap_allocations();
  g_sink = new int(3);
  delete static_cast<int*>(g_sink);
  CHECK(dp_test::heap_allocations() - before >= 1);
#ifdef DEEPPROMPT_WRAP_MALLOC
  const auto mid = dp_test::heap_allocations();
  g_sink = std::malloc(16);
  std::free(g_sink);
  g_sink = std::aligned_alloc(64, 128);
  std::free(g_sink);
  CHECK(dp_test::heap_allocations() - mid == 2);
#endif
}

}  // namespace test_core
