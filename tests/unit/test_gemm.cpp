// The CPU GEMM against a plain triple loop accumulated in double.
#include "alloc_counter.hpp"

#include <deepprompt/backend/cpu/gemm.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace test_gemm {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace {

using deepprompt::cpu::gemm;
using deepprompt::cpu::gemm_batched;
using deepprompt::cpu::index_t;
using deepprompt::cpu::Trans;

constexpr Trans kTrans[] = {Trans::No, Trans::Yes};

template <class T>
std::vector<T> random_values(index_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// One GEMM call with its operands. Every stored row has `pad` extra elements, filled with
// values that the GEMM must neither read into the result nor overwrite.
template <class T>
struct Problem {
  Trans ta = Trans::No, tb = Trans::No;
  index_t M = 1, N = 1, K = 1;
  T alpha = 1, beta = 0;
  index_t pad = 0;
  std::uint32_t seed = 1;

  index_t lda() const { return (ta == Trans::No ? K : M) + pad; }
  index_t ldb() const { return (tb == Trans::No ? N : K) + pad; }
  index_t ldc() const { return N + pad; }
  index_t a_rows() const { return ta == Trans::No ? M : K; }
  index_t b_rows() const { return tb == Trans::No ? K : N; }

  std::vector<T> A = random_values<T>(a_rows() * lda(), seed);
  std::vector<T> B = random_values<T>(b_rows() * ldb(), seed + 1);
  // With beta == 0, C starts as NaN: it must be overwritten, not scaled.
  std::vector<T> C = beta == T(0) ? std::vector<T>(static_cast<std::size_t>(M * ldc()),
                                                   std::numeric_limits<T>::quiet_NaN())
                                  : random_values<T>(M * ldc(), seed + 2);

  T a(index_t i, index_t k) const { return ta == Trans::No ? A[i * lda() + k] : A[k * lda() + i]; }
  T b(index_t k, index_t j) const { return tb == Trans::No ? B[k * ldb() + j] : B[j * ldb() + k]; }

  std::vector<T> run() const {
    std::vector<T> out = C;
    gemm<T>(ta, tb, M, N, K, alpha, A.data(), lda(), B.data(), ldb(), beta, out.data(), ldc());
    return out;
  }
};

// Checks `got` (a result of p) element by element against the triple loop in double, with a
// tolerance of a few sqrt(K) * eps relative to the sum of the magnitudes of the terms; and
// checks that the padding of C is untouched.
template <class T>
void check_result(const Problem<T>& p, const std::vector<T>& got) {
  const double eps = std::numeric_limits<T>::epsilon();
  const double tol = 4.0 * std::sqrt(double(p.K) + 1.0) * eps;
  index_t bad = 0;
  for (index_t i = 0; i < p.M; ++i) {
    for (index_t j = 0; j < p.N; ++j) {
      double sum = 0, magnitude = 0;
      for (index_t k = 0; k < p.K; ++k) {
        const double term = double(p.alpha) * double(p.a(i, k)) * double(p.b(k, j));
        sum += term;
        magnitude += std::abs(term);
      }
      if (p.beta != T(0)) {
        const double c = double(p.beta) * double(p.C[i * p.ldc() + j]);
        sum += c;
        magnitude += std::abs(c);
      }
      const double value = got[i * p.ldc() + j];
      if (!(std::abs(value - sum) <= tol * magnitude + std::numeric_limits<T>::min())) ++bad;
    }
    for (index_t j = p.N; j < p.ldc(); ++j)
      if (std::memcmp(&got[i * p.ldc() + j], &p.C[i * p.ldc() + j], sizeof(T)) != 0) ++bad;
  }
  CHECK_MESSAGE(bad == 0, "M=" << p.M << " N=" << p.N << " K=" << p.K << " ta=" << int(p.ta)
                               << " tb=" << int(p.tb) << " pad=" << p.pad << ": " << bad
                               << " wrong elements");
}

struct Shape {
  index_t M, N, K;
};

// Restores the backend's thread count when a test that changes it ends.
struct ThreadCountGuard {
  int saved = deepprompt::cpu::num_threads();
  ~ThreadCountGuard() { deepprompt::cpu::set_num_threads(saved); }
};

}  // namespace

TEST_CASE_TEMPLATE("gemm matches a triple loop for every transpose combination", T, float,
                   double) {
  // Odd sizes, a tall-thin and a wide product, one large enough for several cache blocks,
  // full register tiles and edges in every dimension, and one with more rows per thread than
  // one packed block holds.
  const Shape shapes[] = {{37, 53, 19}, {70, 50, 30},   {5, 300, 7},
                          {130, 413, 291}, {9001, 100, 5}};
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (Shape s : shapes)
        for (index_t pad : {0, 3}) {
          Problem<T> p{.ta = ta, .tb = tb, .M = s.M, .N = s.N, .K = s.K, .pad = pad};
          check_result(p, p.run());
        }
}

TEST_CASE_TEMPLATE("gemm applies alpha and beta", T, float, double) {
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      SUBCASE("beta = 0 overwrites a NaN-filled C") {
        Problem<T> p{.ta = ta, .tb = tb, .M = 61, .N = 99, .K = 40, .alpha = 2, .beta = 0};
        check_result(p, p.run());
      }
      SUBCASE("beta = 1 accumulates") {
        Problem<T> p{.ta = ta, .tb = tb, .M = 61, .N = 99, .K = 40, .alpha = 1, .beta = 1};
        check_result(p, p.run());
      }
      SUBCASE("general alpha and beta") {
        Problem<T> p{.ta = ta, .tb = tb, .M = 50, .N = 97, .K = 33, .alpha = T(-0.5),
                     .beta = T(2), .pad = 2};
        check_result(p, p.run());
      }
    }
}

TEST_CASE_TEMPLATE("gemm with K == 0 or alpha == 0 only scales C", T, float, double) {
  std::vector<T> c(12, std::numeric_limits<T>::quiet_NaN());
  gemm<T>(Trans::No, Trans::No, 3, 4, 0, T(1), nullptr, 1, nullptr, 4, T(0), c.data(), 4);
  for (T x : c) CHECK(x == T(0));

  c.assign(12, T(1.5));
  gemm<T>(Trans::Yes, Trans::No, 3, 4, 0, T(1), nullptr, 3, nullptr, 4, T(2), c.data(), 4);
  for (T x : c) CHECK(x == T(3));

  gemm<T>(Trans::No, Trans::No, 3, 4, 5, T(0), nullptr, 5, nullptr, 4, T(-1), c.data(), 4);
  for (T x : c) CHECK(x == T(-3));
}

TEST_CASE_TEMPLATE("gemm handles empty and 1x1 products", T, float, double) {
  std::vector<T> c{T(7)};
  gemm<T>(Trans::No, Trans::No, 0, 1, 1, T(1), nullptr, 1, nullptr, 1, T(0), c.data(), 1);
  gemm<T>(Trans::No, Trans::No, 1, 0, 1, T(1), nullptr, 1, nullptr, 1, T(0), c.data(), 1);
  CHECK(c[0] == T(7));

  const T a = T(3), b = T(-2);
  gemm<T>(Trans::No, Trans::No, 1, 1, 1, T(1), &a, 1, &b, 1, T(1), c.data(), 1);
  CHECK(c[0] == T(1));
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      Problem<T> p{.ta = ta, .tb = tb, .M = 1, .N = 1, .K = 1, .beta = T(0.5)};
      check_result(p, p.run());
    }
}

TEST_CASE_TEMPLATE("gemm_batched matches the triple loop on each matrix", T, float, double) {
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (index_t batch : {1, 2, 5}) {
        // One Problem holds all the matrices of an operand back to back, with a gap of
        // `gap` elements between consecutive ones: stride = size + gap.
        const index_t M = 45, N = 67, K = 29, pad = 1, gap = 5;
        Problem<T> shape{.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .beta = T(0.25),
                         .pad = pad};
        const index_t sa = shape.a_rows() * shape.lda() + gap;
        const index_t sb = shape.b_rows() * shape.ldb() + gap;
        const index_t sc = M * shape.ldc() + gap;
        std::vector<Problem<T>> each;
        std::vector<T> A(sa * batch), B(sb * batch), C(sc * batch, T(42));
        for (index_t i = 0; i < batch; ++i) {
          each.push_back(Problem<T>{.ta = ta, .tb = tb, .M = M, .N = N, .K = K,
                                    .beta = T(0.25), .pad = pad,
                                    .seed = std::uint32_t(10 * i + 1)});
          std::copy(each[i].A.begin(), each[i].A.end(), A.begin() + i * sa);
          std::copy(each[i].B.begin(), each[i].B.end(), B.begin() + i * sb);
          std::copy(each[i].C.begin(), each[i].C.end(), C.begin() + i * sc);
        }
        gemm_batched<T>(ta, tb, M, N, K, T(1), A.data(), shape.lda(), sa, B.data(),
                        shape.ldb(), sb, T(0.25), C.data(), shape.ldc(), sc, batch);
        for (index_t i = 0; i < batch; ++i) {
          const auto first = C.begin() + i * sc;
          check_result(each[i], std::vector<T>(first, first + M * shape.ldc()));
          for (index_t g = M * shape.ldc(); g < sc; ++g) CHECK(first[g] == T(42));
        }
      }
}

TEST_CASE_TEMPLATE("gemm gives the same bits on one and two threads", T, float, double) {
  ThreadCountGuard guard;
  // Tall (split along M) and wide (split along N) products, both above the threading
  // threshold, with edges that do not fall on a thread boundary.
  const Shape shapes[] = {{301, 203, 97}, {101, 397, 290}};
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (Shape s : shapes) {
        Problem<T> p{.ta = ta, .tb = tb, .M = s.M, .N = s.N, .K = s.K, .beta = T(1)};
        deepprompt::cpu::set_num_threads(1);
        const std::vector<T> one = p.run();
        deepprompt::cpu::set_num_threads(2);
        const std::vector<T> two = p.run();
        CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
      }
}

TEST_CASE("gemm allocates nothing once warmed up") {
  ThreadCountGuard guard;
  deepprompt::cpu::set_num_threads(2);
  Problem<float> f{.M = 257, .N = 300, .K = 280, .beta = 1};
  Problem<double> d{.M = 130, .N = 111, .K = 70, .beta = 1};
  std::vector<float> cf = f.C;
  std::vector<double> cd = d.C;
  const auto calls = [&] {
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        gemm<float>(ta, tb, f.M, f.N, f.K, 1.f, f.A.data(), ta == Trans::No ? f.K : f.M,
                    f.B.data(), tb == Trans::No ? f.N : f.K, 1.f, cf.data(), f.N);
        gemm<double>(ta, tb, d.M, d.N, d.K, 1.0, d.A.data(), ta == Trans::No ? d.K : d.M,
                     d.B.data(), tb == Trans::No ? d.N : d.K, 0.0, cd.data(), d.N);
      }
    // Two matrices per operand, on one thread each.
    gemm_batched<float>(Trans::No, Trans::Yes, 64, 40, 70, 1.f, f.A.data(), 70, 64 * 70,
                        f.B.data(), 70, 40 * 70, 0.f, cf.data(), 40, 64 * 40, 2);
  };
  calls();
  const long long before = dp_test::heap_allocations();
  calls();
  calls();
  CHECK(dp_test::heap_allocations() - before == 0);

  // The counter itself works (a direct call of operator new cannot be optimised away).
  const long long probe = dp_test::heap_allocations();
  ::operator delete(::operator new(16));
  CHECK(dp_test::heap_allocations() == probe + 1);
}

}  // namespace test_gemm
