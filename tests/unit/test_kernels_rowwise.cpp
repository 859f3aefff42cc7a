// Row-wise CPU kernels (softmax, log-softmax, LayerNorm, RMSNorm) against scalar long-double
// references, and their backward passes against central finite differences of the forward
// kernels in double precision. Shapes cover a padded tail only (cols 1, 7), SIMD body + tail
// (33, 1000) and the OpenMP path (rows * cols >= 2^15).
#include <deepprompt/backend/cpu/rowwise.hpp>

#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <iomanip>
#include <limits>
#include <random>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif
#include <vector>

namespace test_kernels_rowwise {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace {

namespace cpu = deepprompt::cpu;
using cpu::index_t;
using LD = long double;

struct Shape {
  index_t rows, cols;
};
constexpr Shape kShapes[] = {{1, 1}, {3, 7}, {5, 33}, {4, 1000}, {70, 1000}};
constexpr Shape kFdShapes[] = {{1, 1}, {3, 7}, {2, 33}};  // small: one forward per element

template <class T>
std::vector<T> random_vector(index_t n, double lo, double hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = static_cast<T>(dist(gen));
  return v;
}

template <class T>
constexpr double eps = std::numeric_limits<T>::epsilon();

// The caller of check_close, for its message (clang 14 with libstdc++ lacks source_location).
#if defined(__cpp_lib_source_location)
using Where = std::source_location;
#else
struct Where {
  static Where current() { return {}; }
  unsigned line() const { return 0; }
};
#endif

// Every element must satisfy |got - want| <= atol + rtol |want| (so NaN/inf where `want` is
// finite fails); infinite `want` must be matched exactly. Reports the worst offender.
template <class T, class R>
void check_close(const std::vector<T>& got, const std::vector<R>& want, double rtol, double atol,
                 Where at = Where::current()) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, worst = 0;
  LD worst_ratio = 0;  // error / tolerance
  for (std::size_t i = 0; i < got.size(); ++i) {
    const LD g = got[i], w = want[i];
    const LD err = std::isinf(w) ? (g == w ? 0 : INFINITY) : std::fabs(g - w);
    const LD ratio = err == 0 ? 0 : err / (atol + rtol * std::fabs(w));
    if (ratio <= 1) continue;
    if (bad++ == 0 || ratio > worst_ratio || std::isnan(ratio)) worst_ratio = ratio, worst = i;
  }
  INFO("line " << at.line() << ": " << bad << " of " << got.size() << " bad; worst at " << worst
       << ": got " << std::setprecision(std::numeric_limits<T>::max_digits10)
       << double(got[worst]) << ", want " << double(want[worst]) << ", error/tolerance "
       << double(worst_ratio));
  CHECK(bad == 0);
}

// d/dp of loss() by central differences, perturbing each element of p in turn.
std::vector<double> fd_gradient(std::vector<double>& p, const std::function<LD()>& loss) {
  std::vector<double> g(p.size());
  for (std::size_t j = 0; j < p.size(); ++j) {
    const double saved = p[j], h = 1e-6 * std::max(1.0, std::fabs(saved));
    p[j] = saved + h;
    const LD up = loss();
    p[j] = saved - h;
    const LD down = loss();
    p[j] = saved;
    g[j] = double((up - down) / (2 * LD(h)));
  }
  return g;
}

// sum of w[i] * y[i]: the loss whose gradient with respect to y is w.
LD dot(const std::vector<double>& w, const std::vector<double>& y) {
  LD s = 0;
  for (std::size_t i = 0; i < w.size(); ++i) s += LD(w[i]) * y[i];
  return s;
}

// a + b elementwise, in b's element type.
template <class A, class B>
std::vector<B> plus(const std::vector<A>& a, std::vector<B> b) {
  for (std::size_t i = 0; i < b.size(); ++i) b[i] += a[i];
  return b;
}

// Softmax / log-softmax of one row in long double, as references.
std::vector<LD> softmax_ref(const LD* x, index_t n, bool log) {
  LD m = -INFINITY, s = 0;
  for (index_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  std::vector<LD> y(static_cast<std::size_t>(n));
  if (m == -INFINITY) {
    std::fill(y.begin(), y.end(), log ? -INFINITY : 0);
    return y;
  }
  for (index_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  for (index_t i = 0; i < n; ++i) y[i] = log ? x[i] - m - std::log(s) : std::exp(x[i] - m) / s;
  return y;
}

template <class T>
std::vector<LD> softmax_rows_ref(const std::vector<T>& x, Shape s, bool log) {
  std::vector<LD> y;
  for (index_t r = 0; r < s.rows; ++r) {
    const std::vector<LD> row(x.begin() + r * s.cols, x.begin() + (r + 1) * s.cols);
    const auto yr = softmax_ref(row.data(), s.cols, log);
    y.insert(y.end(), yr.begin(), yr.end());
  }
  return y;
}

// LayerNorm (center = true) or RMSNorm (center = false) of one matrix in long double.
struct NormRef {
  std::vector<LD> y, mean, rstd;
};
template <class T>
NormRef norm_ref(const std::vector<T>& x, const T* gamma, const T* beta, Shape s, LD eps,
                 bool center) {
  NormRef out{std::vector<LD>(x.size()), {}, {}};
  for (index_t r = 0; r < s.rows; ++r) {
    const T* xr = x.data() + r * s.cols;
    LD mu = 0, var = 0;
    if (center) {
      for (index_t c = 0; c < s.cols; ++c) mu += xr[c];
      mu /= s.cols;
    }
    for (index_t c = 0; c < s.cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    const LD rs = 1 / std::sqrt(var / s.cols + eps);
    out.mean.push_back(mu);
    out.rstd.push_back(rs);
    for (index_t c = 0; c < s.cols; ++c)
      out.y[r * s.cols + c] = (xr[c] - mu) * rs * (gamma ? LD(gamma[c]) : 1) + (beta ? LD(beta[c]) : 0);
  }
  return out;
}

// Norm backward in long double from the formulas, as references for the large shapes.
struct NormGradRef {
  std::vector<LD> dx, dgamma, dbeta;
};
template <class T>
NormGradRef norm_grad_ref(const std::vector<T>& x, const T* gamma, const std::vector<T>& dy,
                          Shape s, LD eps, bool center) {
  const NormRef f = norm_ref<T>(x, nullptr, nullptr, s, eps, center);  // y = xhat
  NormGradRef g{std::vector<LD>(x.size()), std::vector<LD>(s.cols), std::vector<LD>(s.cols)};
  for (index_t r = 0; r < s.rows; ++r) {
    LD g_mean = 0, gx_mean = 0;
    for (index_t c = 0; c < s.cols; ++c) {
      const LD gc = dy[r * s.cols + c] * (gamma ? LD(gamma[c]) : 1);
      g_mean += gc / s.cols;
      gx_mean += gc * f.y[r * s.cols + c] / s.cols;
      g.dgamma[c] += dy[r * s.cols + c] * f.y[r * s.cols + c];
      g.dbeta[c] += dy[r * s.cols + c];
    }
    if (!center) g_mean = 0;
    for (index_t c = 0; c < s.cols; ++c) {
      const LD gc = dy[r * s.cols + c] * (gamma ? LD(gamma[c]) : 1);
      g.dx[r * s.cols + c] = f.rstd[r] * (gc - g_mean - f.y[r * s.cols + c] * gx_mean);
    }
  }
  return g;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Softmax and log-softmax.

TEST_CASE_TEMPLATE("softmax_rows and log_softmax_rows match a long-double loop", T, float,
                   double) {
  for (const Shape s : kShapes) {
    CAPTURE(s.rows);
    CAPTURE(s.cols);
    const index_t n = s.rows * s.cols;
    auto x = random_vector<T>(n, -8, 8, 1);
    if (s.rows >= 3) {
      std::fill_n(x.begin() + s.cols, s.cols, -std::numeric_limits<T>::infinity());  // masked row
      for (index_t c = 0; c < s.cols; c += 3) x[2 * s.cols + c] = -std::numeric_limits<T>::infinity();
    }
    std::vector<T> y(x.size());
    cpu::softmax_rows(x.data(), y.data(), s.rows, s.cols);
    check_close(y, softmax_rows_ref(x, s, false), 8 * eps<T>, eps<T>);
    cpu::log_softmax_rows(x.data(), y.data(), s.rows, s.cols);
    check_close(y, softmax_rows_ref(x, s, true), 8 * eps<T>, 16 * eps<T>);

    // In place, and large magnitudes (stable: only differences to the row max matter).
    auto big = x;
    for (auto& v : big) v *= T(1000);
    const auto want = softmax_rows_ref(big, s, false);
    cpu::softmax_rows(big.data(), big.data(), s.rows, s.cols);
    check_close(big, want, 8 * eps<T>, eps<T>);
  }
}

TEST_CASE("softmax_rows: a fully masked row gives zeros, log_softmax_rows gives -inf") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {-inf, -inf, -inf, 1, 2, 3};
  std::vector<float> y(6);
  cpu::softmax_rows(x.data(), y.data(), 2, 3);
  CHECK(y[0] == 0);
  CHECK(y[1] == 0);
  CHECK(y[2] == 0);
  CHECK(y[3] + y[4] + y[5] == doctest::Approx(1));
  cpu::log_softmax_rows(x.data(), y.data(), 2, 3);
  CHECK(y[0] == -inf);
  CHECK(y[2] == -inf);
  std::vector<float> dy = {1, 2, 3, 4, 5, 6}, dx(6, 0.5f);
  cpu::log_softmax_rows_backward(y.data(), dy.data(), dx.data(), 2, 3);
  CHECK(dx[0] == 1.5f);  // exp(-inf) = 0: the gradient passes straight through
  cpu::softmax_rows(x.data(), y.data(), 2, 3);
  std::fill(dx.begin(), dx.end(), 0.5f);
  cpu::softmax_rows_backward(y.data(), dy.data(), dx.data(), 2, 3);
  CHECK(dx[0] == 0.5f);
  CHECK(std::isfinite(dx[4]));
}

TEST_CASE("softmax backward passes match central differences (double)") {
  for (const bool log : {false, true}) {
    for (const Shape s : kFdShapes) {
      CAPTURE(log);
      CAPTURE(s.rows);
      CAPTURE(s.cols);
      const index_t n = s.rows * s.cols;
      auto x = random_vector<double>(n, -3, 3, 2);
      const auto w = random_vector<double>(n, -1, 1, 3);
      const auto dx0 = random_vector<double>(n, -1, 1, 4);
      const auto forward = [&](const std::vector<double>& in, std::vector<double>& out) {
        (log ? cpu::log_softmax_rows<double> : cpu::softmax_rows<double>)(in.data(), out.data(),
                                                                           s.rows, s.cols);
      };
      std::vector<double> y(x.size());
      const auto want = plus(dx0, fd_gradient(x, [&] {
        forward(x, y);
        return dot(w, y);
      }));
      forward(x, y);
      auto dx = dx0;
      auto* backward = log ? cpu::log_softmax_rows_backward<double> : cpu::softmax_rows_backward<double>;
      backward(y.data(), w.data(), dx.data(), s.rows, s.cols);
      check_close(dx, want, 1e-6, 1e-6);
      backward(y.data(), w.data(), nullptr, s.rows, s.cols);  // no gradient wanted: no-op
    }
  }
}

TEST_CASE_TEMPLATE("softmax backward passes match their formulas on large shapes", T, float,
                   double) {
  const Shape s{70, 1000};
  const index_t n = s.rows * s.cols;
  const auto x = random_vector<T>(n, -4, 4, 5);
  const auto dy = random_vector<T>(n, -1, 1, 6);
  const auto dx0 = random_vector<T>(n, -1, 1, 7);
  std::vector<T> y(x.size());
  for (const bool log : {false, true}) {
    CAPTURE(log);
    (log ? cpu::log_softmax_rows<T> : cpu::softmax_rows<T>)(x.data(), y.data(), s.rows, s.cols);
    std::vector<LD> want(x.size());
    for (index_t r = 0; r < s.rows; ++r) {
      LD sum = 0;  // sum(dy * y) for softmax, sum(dy) for log-softmax
      for (index_t c = 0; c < s.cols; ++c) sum += LD(dy[r * s.cols + c]) * (log ? 1 : LD(y[r * s.cols + c]));
      for (index_t c = 0; c < s.cols; ++c) {
        const index_t i = r * s.cols + c;
        want[i] = dx0[i] + (log ? dy[i] - std::exp(LD(y[i])) * sum : y[i] * (dy[i] - sum));
      }
    }
    auto dx = dx0;
    (log ? cpu::log_softmax_rows_backward<T> : cpu::softmax_rows_backward<T>)(
        y.data(), dy.data(), dx.data(), s.rows, s.cols);
    check_close(dx, want, 16 * eps<T>, 64 * eps<T>);
  }
}

// ---------------------------------------------------------------------------------------
// LayerNorm and RMSNorm.

TEST_CASE_TEMPLATE("layer_norm_rows and rms_norm_rows match a long-double loop", T, float,
                   double) {
  const T eps_ln = T(1e-5);
  for (const Shape s : kShapes) {
    for (const bool affine : {true, false}) {
      CAPTURE(s.rows);
      CAPTURE(s.cols);
      CAPTURE(affine);
      const index_t n = s.rows * s.cols;
      auto x = random_vector<T>(n, -3, 5, 8);  // nonzero mean
      const auto gamma = random_vector<T>(s.cols, 0.5, 1.5, 9);
      const auto beta = random_vector<T>(s.cols, -1, 1, 10);
      const T* g = affine ? gamma.data() : nullptr;
      const T* b = affine ? beta.data() : nullptr;
      std::vector<T> y(x.size()), mean(s.rows), rstd(s.rows);
      // Float statistics are summed in float, in 16 lanes: allow for sqrt(cols)-ish growth.
      const double tol = 8 * eps<T> * std::sqrt(double(s.cols));

      const NormRef ln = norm_ref<T>(x, g, b, s, eps_ln, true);
      cpu::layer_norm_rows(x.data(), g, b, y.data(), mean.data(), rstd.data(), s.rows, s.cols, eps_ln);
      check_close(y, ln.y, tol, tol);
      check_close(mean, ln.mean, tol, tol);
      check_close(rstd, ln.rstd, tol, 0);

      const NormRef rms = norm_ref<T>(x, g, nullptr, s, eps_ln, false);
      cpu::rms_norm_rows(x.data(), g, y.data(), rstd.data(), s.rows, s.cols, eps_ln);
      check_close(y, rms.y, tol, tol);
      check_close(rstd, rms.rstd, tol, 0);

      auto inplace = x;  // y may alias x; mean and rstd may be omitted
      cpu::layer_norm_rows(inplace.data(), g, b, inplace.data(), (T*)nullptr, (T*)nullptr,
                           s.rows, s.cols, eps_ln);
      check_close(inplace, ln.y, tol, tol);
    }
  }
}

TEST_CASE("norm backward passes match central differences (double)") {
  const double eps_ln = 1e-5;
  for (const bool center : {true, false}) {    // LayerNorm, RMSNorm
    for (const bool affine : {true, false}) {  // with or without gamma (and beta)
      for (const Shape s : kFdShapes) {
        CAPTURE(center);
        CAPTURE(affine);
        CAPTURE(s.rows);
        CAPTURE(s.cols);
        const index_t n = s.rows * s.cols;
        auto x = random_vector<double>(n, -3, 5, 11);
        auto gamma = random_vector<double>(s.cols, 0.5, 1.5, 12);
        auto beta = random_vector<double>(s.cols, -1, 1, 13);
        const double* g = affine ? gamma.data() : nullptr;
        const auto w = random_vector<double>(n, -1, 1, 14);
        std::vector<double> y(x.size()), mean(s.rows), rstd(s.rows);
        const auto forward = [&] {
          if (center)
            cpu::layer_norm_rows(x.data(), g, affine ? beta.data() : nullptr, y.data(), mean.data(),
                                 rstd.data(), s.rows, s.cols, eps_ln);
          else
            cpu::rms_norm_rows(x.data(), g, y.data(), rstd.data(), s.rows, s.cols, eps_ln);
          return dot(w, y);
        };
        const auto dx0 = random_vector<double>(n, -1, 1, 15);
        const auto dg0 = random_vector<double>(s.cols, -1, 1, 16);
        const auto db0 = random_vector<double>(s.cols, -1, 1, 17);
        const auto want_dx = plus(dx0, fd_gradient(x, forward));
        const auto want_dg = plus(dg0, fd_gradient(gamma, forward));
        const auto want_db = plus(db0, fd_gradient(beta, forward));
        forward();  // mean and rstd of the unperturbed x

        auto backward = [&](double* dx, double* dg, double* db) {
          if (center)
            cpu::layer_norm_rows_backward(x.data(), g, mean.data(), rstd.data(), w.data(), dx, dg,
                                          db, s.rows, s.cols);
          else
            cpu::rms_norm_rows_backward(x.data(), g, rstd.data(), w.data(), dx, dg, s.rows, s.cols);
        };
        auto dx = dx0, dg = dg0, db = db0;
        backward(dx.data(), dg.data(), db.data());
        check_close(dx, want_dx, 1e-6, 1e-6);
        if (affine) check_close(dg, want_dg, 1e-6, 1e-6);
        if (affine && center) check_close(db, want_db, 1e-6, 1e-6);

        // Each gradient output may be skipped; the others are unchanged by that.
        auto dx2 = dx0, dg2 = dg0, db2 = db0;
        backward(nullptr, dg2.data(), nullptr);
        CHECK(dg2 == dg);
        backward(dx2.data(), nullptr, nullptr);
        CHECK(dx2 == dx);
        backward(nullptr, nullptr, db2.data());
        CHECK(db2 == (center ? db : db0));
        backward(nullptr, nullptr, nullptr);
      }
    }
  }
}

TEST_CASE_TEMPLATE("norm backward passes match their formulas on large shapes, deterministically",
                   T, float, double) {
  const Shape s{70, 1000};
  const index_t n = s.rows * s.cols;
  const T eps_ln = T(1e-5);
  const auto x = random_vector<T>(n, -3, 5, 20);
  const auto gamma = random_vector<T>(s.cols, 0.5, 1.5, 21);
  const auto dy = random_vector<T>(n, -1, 1, 22);
  const auto dx0 = random_vector<T>(n, -1, 1, 23);
  const auto dg0 = random_vector<T>(s.cols, -1, 1, 24);
  const auto db0 = random_vector<T>(s.cols, -1, 1, 25);
  for (const bool center : {true, false}) {
    CAPTURE(center);
    std::vector<T> y(x.size()), mean(s.rows), rstd(s.rows);
    if (center)
      cpu::layer_norm_rows(x.data(), gamma.data(), (const T*)nullptr, y.data(), mean.data(),
                           rstd.data(), s.rows, s.cols, eps_ln);
    else
      cpu::rms_norm_rows(x.data(), gamma.data(), y.data(), rstd.data(), s.rows, s.cols, eps_ln);
    const auto run = [&](int threads) {
      omp_set_num_threads(threads);
      auto dx = dx0, dg = dg0, db = db0;
      if (center)
        cpu::layer_norm_rows_backward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(),
                                      dx.data(), dg.data(), db.data(), s.rows, s.cols);
      else
        cpu::rms_norm_rows_backward(x.data(), gamma.data(), rstd.data(), dy.data(), dx.data(),
                                    dg.data(), s.rows, s.cols);
      return std::vector<std::vector<T>>{dx, dg, db};
    };
    const int threads = omp_get_max_threads();
    const auto one = run(1);
    const auto many = run(std::max(2, threads));
    omp_set_num_threads(threads);
    CHECK(one == many);  // bit for bit, whatever the thread count

    const NormGradRef ref = norm_grad_ref<T>(x, gamma.data(), dy, s, eps_ln, center);
    const double tol = 8 * eps<T> * std::sqrt(double(s.cols));
    check_close(many[0], plus(dx0, ref.dx), tol, tol);
    // Column sums over 70 rows, each term off by the forward's rstd error.
    check_close(many[1], plus(dg0, ref.dgamma), tol, s.rows * tol);
    check_close(many[2], center ? plus(db0, ref.dbeta) : plus(db0, std::vector<LD>(s.cols)),
                tol, s.rows * tol);
  }
}

}  // namespace test_kernels_rowwise
