// The CUDA kernels of backend/cuda against plain host references computed in double from the
// same inputs: elementwise and activations (forward, and backward accumulating into a non-zero
// gradient), bias rows, softmax / log-softmax / LayerNorm / RMSNorm rows (with and without
// gamma/beta, a fully masked row, widths below and above the block), dropout (the mask bit for
// bit against core/rng.hpp's words: the CPU's mask), embedding gather / accumulate with repeated
// ids and padding, cross-entropy with ignore_index and label smoothing, GEMM (fp32 in all
// four layouts, TF32, bf16, strided batches). The fused attention: tests/cuda/attention.cu. Bounds: |got - want| <= tol * max(1, |want|),
// tol 1e-5 for fp32 elementwise and row-wise kernels, 1e-4 for fp32 GEMM (the issue's bounds),
// 5e-3 for TF32 and bf16 products (10- and 8-bit mantissas: documented, not hidden).
// Prints one line per check; exits 77 (skipped) without a GPU, 1 on any failure.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.cuh"
#include "deepprompt/backend/cuda/kernels.cuh"
#include "deepprompt/core/rng.hpp"

namespace dp = deepprompt;
namespace cu = deepprompt::cuda;
using dp::index_t;
using dp::Trans;

using namespace cuda_test;

namespace {

void elementwise() {
  const index_t n = 1000;
  const auto a = random_floats(n, 1), b = random_floats(n, 2, 0.5f, 3.0f), g = random_floats(n, 3),
             acc0 = random_floats(n, 4);
  Dev<float> da(a), db(b), dg(g), dy(static_cast<std::size_t>(n));
  auto unary = [&](const char* name, auto kernel, auto f) {
    kernel(da.p, dy.p, n);
    std::vector<double> want(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) want[i] = f(double(a[i]));
    expect_close(name, dy.host(), want, 1e-5);
  };
  auto binary = [&](const char* name, auto kernel, auto f) {
    kernel(da.p, db.p, dy.p, n);
    std::vector<double> want(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) want[i] = f(double(a[i]), double(b[i]));
    expect_close(name, dy.host(), want, 1e-5);
  };
  binary("add", cu::add<float>, [](double x, double y) { return x + y; });
  binary("sub", cu::sub<float>, [](double x, double y) { return x - y; });
  binary("mul", cu::mul<float>, [](double x, double y) { return x * y; });
  binary("div", cu::div<float>, [](double x, double y) { return x / y; });
  unary("scale", [](const float* x, float* y, index_t m) { cu::scale(x, 1.5f, y, m); }, [](double x) { return 1.5 * x; });
  unary("add_scalar", [](const float* x, float* y, index_t m) { cu::add_scalar(x, -0.25f, y, m); },
        [](double x) { return x - 0.25; });
  unary("exp", cu::exp<float>, [](double x) { return std::exp(x); });
  unary("tanh", cu::tanh<float>, [](double x) { return std::tanh(x); });
  unary("sigmoid", cu::sigmoid<float>, [](double x) { return 1 / (1 + std::exp(-x)); });
  unary("relu", cu::relu<float>, [](double x) { return x > 0 ? x : 0.0; });
  unary("gelu_erf", cu::gelu_erf<float>, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); });
  const double k = std::sqrt(2 / M_PI);
  unary("gelu_tanh", cu::gelu_tanh<float>,
        [k](double x) { return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x))); });
  {
    Dev<float> y(acc0);
    cu::axpy(0.5f, da.p, y.p, n);
    std::vector<double> want(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) want[i] = acc0[i] + 0.5 * a[i];
    expect_close("axpy", y.host(), want, 1e-5);
    cu::fill(y.p, 2.5f, n);
    expect_close("fill", y.host(), std::vector<double>(a.size(), 2.5), 0);
  }
  // backward: dx starts at acc0 and must be accumulated into; the derivative at the saved input
  // (relu, gelu) or output (exp, tanh, sigmoid)
  auto backward = [&](const char* name, auto kernel, auto saved, auto derivative) {
    std::vector<float> s(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) s[i] = static_cast<float>(saved(double(a[i])));
    Dev<float> ds(s), dx(acc0);
    kernel(ds.p, dg.p, dx.p, n);
    std::vector<double> want(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) want[i] = acc0[i] + g[i] * derivative(double(a[i]), double(s[i]));
    expect_close(name, dx.host(), want, 1e-5);
    kernel(ds.p, dg.p, static_cast<float*>(nullptr), n);  // a null gradient: no-op, no fault
  };
  auto id = [](double x) { return x; };
  backward("exp_backward", cu::exp_backward<float>, [](double x) { return std::exp(x); }, [](double, double y) { return y; });
  backward("tanh_backward", cu::tanh_backward<float>, [](double x) { return std::tanh(x); },
           [](double, double y) { return 1 - y * y; });
  backward("sigmoid_backward", cu::sigmoid_backward<float>, [](double x) { return 1 / (1 + std::exp(-x)); },
           [](double, double y) { return y * (1 - y); });
  backward("relu_backward", cu::relu_backward<float>, id, [](double x, double) { return x > 0 ? 1.0 : 0.0; });
  backward("gelu_erf_backward", cu::gelu_erf_backward<float>, id, [](double x, double) {
    return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
  });
  backward("gelu_tanh_backward", cu::gelu_tanh_backward<float>, id, [k](double x, double) {
    const double t = std::tanh(k * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
  });
}

void bias_rows() {
  const index_t R = 33, C = 70;
  const auto x = random_floats(R * C, 5), bias = random_floats(C, 6), db0 = random_floats(C, 7);
  Dev<float> dx(x), dbias(bias), dy(static_cast<std::size_t>(R * C)), ddb(db0);
  cu::add_rows(dx.p, dbias.p, dy.p, R, C);
  std::vector<double> want(x.size()), sums(db0.begin(), db0.end());
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < C; ++c) want[r * C + c] = double(x[r * C + c]) + bias[c], sums[c] += x[r * C + c];
  expect_close("add_rows", dy.host(), want, 1e-5);
  cu::sum_rows_accumulate(dx.p, ddb.p, R, C);
  expect_close("sum_rows_accumulate", ddb.host(), sums, 1e-5);
}

void rows(index_t R, index_t C) {
  const std::string tag = " (" + std::to_string(R) + " x " + std::to_string(C) + ")";
  auto x = random_floats(R * C, 8);
  for (index_t c = 0; c < C; ++c) x[c] = -INFINITY;  // row 0 fully masked (softmax only)
  const auto g = random_floats(R * C, 9), acc0 = random_floats(R * C, 10), gamma = random_floats(C, 11),
             beta = random_floats(C, 12);
  Dev<float> dx(x), dg(g), dy(static_cast<std::size_t>(R * C));
  // softmax and log-softmax
  std::vector<double> sm(x.size()), lsm(x.size());
  for (index_t r = 0; r < R; ++r) {
    double m = -INFINITY, s = 0;
    for (index_t c = 0; c < C; ++c) m = std::fmax(m, x[r * C + c]);
    for (index_t c = 0; c < C; ++c) s += std::isinf(m) ? 0 : std::exp(x[r * C + c] - m);
    for (index_t c = 0; c < C; ++c) {
      sm[r * C + c] = std::isinf(m) ? 0 : std::exp(x[r * C + c] - m) / s;
      lsm[r * C + c] = std::isinf(m) ? -INFINITY : (x[r * C + c] - m) - std::log(s);
    }
  }
  cu::softmax_rows(dx.p, dy.p, R, C);
  const auto y = dy.host();
  expect_close("softmax_rows" + tag, y, sm, 1e-5);
  {
    Dev<float> dgrad(acc0);
    cu::softmax_rows_backward(dy.p, dg.p, dgrad.p, R, C);
    std::vector<double> want(acc0.begin(), acc0.end());
    for (index_t r = 0; r < R; ++r) {
      double dot = 0;
      for (index_t c = 0; c < C; ++c) dot += double(y[r * C + c]) * g[r * C + c];
      for (index_t c = 0; c < C; ++c) want[r * C + c] += double(y[r * C + c]) * (g[r * C + c] - dot);
    }
    expect_close("softmax_rows_backward" + tag, dgrad.host(), want, 1e-5);
  }
  cu::log_softmax_rows(dx.p, dy.p, R, C);
  const auto ly = dy.host();
  expect_close("log_softmax_rows" + tag, ly, lsm, 1e-5);
  {
    std::vector<float> lyf(ly);
    for (index_t c = 0; c < C; ++c) lyf[c] = -1;  // a finite saved output for the masked row
    Dev<float> dly(lyf), dgrad(acc0);
    cu::log_softmax_rows_backward(dly.p, dg.p, dgrad.p, R, C);
    std::vector<double> want(acc0.begin(), acc0.end());
    for (index_t r = 0; r < R; ++r) {
      double s = 0;
      for (index_t c = 0; c < C; ++c) s += g[r * C + c];
      for (index_t c = 0; c < C; ++c) want[r * C + c] += g[r * C + c] - std::exp(double(lyf[r * C + c])) * s;
    }
    expect_close("log_softmax_rows_backward" + tag, dgrad.host(), want, 1e-5);
  }
  // LayerNorm and RMSNorm on finite rows
  const auto xf = random_floats(R * C, 13);
  Dev<float> dxf(xf), dgamma(gamma), dbeta(beta), dmean(static_cast<std::size_t>(R)), drstd(static_cast<std::size_t>(R));
  for (const bool affine : {true, false}) {
    const std::string t = tag + (affine ? " gamma, beta" : " plain");
    const float eps = 1e-5f;
    cu::layer_norm_rows(dxf.p, affine ? dgamma.p : nullptr, affine ? dbeta.p : nullptr, dy.p, dmean.p, drstd.p, R, C,
                        eps);
    std::vector<double> want(xf.size()), mu(R), rs(R), dxw(acc0.begin(), acc0.end()), dgw(C), dbw(C);
    for (index_t r = 0; r < R; ++r) {
      double s = 0, v = 0;
      for (index_t c = 0; c < C; ++c) s += xf[r * C + c];
      mu[r] = s / C;
      for (index_t c = 0; c < C; ++c) v += (xf[r * C + c] - mu[r]) * (xf[r * C + c] - mu[r]);
      rs[r] = 1 / std::sqrt(v / C + eps);
      double gm = 0, gxm = 0;
      for (index_t c = 0; c < C; ++c) {
        const double xh = (xf[r * C + c] - mu[r]) * rs[r], gg = g[r * C + c] * (affine ? gamma[c] : 1.0f);
        want[r * C + c] = affine ? xh * gamma[c] + beta[c] : xh;
        gm += gg / C, gxm += gg * xh / C;
        dgw[c] += g[r * C + c] * xh, dbw[c] += g[r * C + c];
      }
      for (index_t c = 0; c < C; ++c) {
        const double xh = (xf[r * C + c] - mu[r]) * rs[r], gg = g[r * C + c] * (affine ? gamma[c] : 1.0f);
        dxw[r * C + c] += rs[r] * (gg - gm - xh * gxm);
      }
    }
    expect_close("layer_norm_rows" + t, dy.host(), want, 1e-5);
    expect_close("layer_norm_rows mean" + t, dmean.host(), mu, 1e-5);
    expect_close("layer_norm_rows rstd" + t, drstd.host(), rs, 1e-5);
    Dev<float> ddx(acc0), ddg(static_cast<std::size_t>(C)), ddb(static_cast<std::size_t>(C));
    cu::layer_norm_rows_backward(dxf.p, affine ? dgamma.p : nullptr, dmean.p, drstd.p, dg.p, ddx.p, ddg.p, ddb.p, R, C);
    expect_close("layer_norm_rows_backward dx" + t, ddx.host(), dxw, 1e-5);
    expect_close("layer_norm_rows_backward dgamma" + t, ddg.host(), dgw, 1e-5);
    expect_close("layer_norm_rows_backward dbeta" + t, ddb.host(), dbw, 1e-5);

    cu::rms_norm_rows(dxf.p, affine ? dgamma.p : nullptr, dy.p, drstd.p, R, C, eps);
    std::vector<double> rwant(xf.size()), rrs(R), rdx(acc0.begin(), acc0.end()), rdg(C);
    for (index_t r = 0; r < R; ++r) {
      double ms = 0;
      for (index_t c = 0; c < C; ++c) ms += double(xf[r * C + c]) * xf[r * C + c] / C;
      rrs[r] = 1 / std::sqrt(ms + eps);
      double gxm = 0;
      for (index_t c = 0; c < C; ++c) {
        const double xh = xf[r * C + c] * rrs[r], gg = g[r * C + c] * (affine ? gamma[c] : 1.0f);
        rwant[r * C + c] = affine ? xh * gamma[c] : xh;
        gxm += gg * xh / C;
        rdg[c] += g[r * C + c] * xh;
      }
      for (index_t c = 0; c < C; ++c) {
        const double xh = xf[r * C + c] * rrs[r], gg = g[r * C + c] * (affine ? gamma[c] : 1.0f);
        rdx[r * C + c] += rrs[r] * (gg - xh * gxm);
      }
    }
    expect_close("rms_norm_rows" + t, dy.host(), rwant, 1e-5);
    Dev<float> rdxd(acc0), rdgd(static_cast<std::size_t>(C));
    cu::rms_norm_rows_backward(dxf.p, affine ? dgamma.p : nullptr, drstd.p, dg.p, rdxd.p, rdgd.p, R, C);
    expect_close("rms_norm_rows_backward dx" + t, rdxd.host(), rdx, 1e-5);
    expect_close("rms_norm_rows_backward dgamma" + t, rdgd.host(), rdg, 1e-5);
  }
}

void dropout() {
  const index_t n = 1000;
  const std::uint64_t seed = 1234, first = 4 * 37 + 2;  // first not block-aligned, as attention rows
  const float p = 0.1f, scale = 1 / (1 - p);
  const auto threshold = static_cast<std::uint64_t>(std::ceil(static_cast<long double>(p) * 4294967296.0L));
  const auto x = random_floats(n, 14), g = random_floats(n, 15), acc0 = random_floats(n, 16);
  Dev<float> dx(x), dy(static_cast<std::size_t>(n)), dg(g), dgrad(acc0);
  Dev<std::uint64_t> mask(static_cast<std::size_t>((n + 63) / 64));
  cu::dropout_forward(dx.p, dy.p, mask.p, n, seed, first, threshold, scale);
  const dp::Generator gen(seed);
  std::vector<double> want(x.size()), want_dx(acc0.begin(), acc0.end());
  std::vector<float> bits_ok(1, 1.0f);
  const auto bits = mask.host();
  for (index_t i = 0; i < n; ++i) {
    const bool keep = gen.word_at(first + static_cast<std::uint64_t>(i)) >= threshold;
    want[i] = keep ? double(x[i]) * scale : 0.0;
    want_dx[i] += keep ? double(g[i]) * scale : 0.0;
    if (bool((bits[i / 64] >> (i % 64)) & 1u) != keep) bits_ok[0] = 0;
  }
  expect_close("dropout_forward (values)", dy.host(), want, 1e-6);
  expect_close("dropout_forward (mask bits == the CPU's words)", bits_ok, {1.0}, 0);
  cu::dropout_backward(mask.p, dg.p, dgrad.p, n, scale);
  expect_close("dropout_backward", dgrad.host(), want_dx, 1e-6);
}

void lookup() {
  const index_t V = 11, C = 37, n = 50;
  const auto w = random_floats(V * C, 17), g = random_floats(n * C, 18), dw0 = random_floats(V * C, 19);
  std::vector<std::int64_t> ids(n);
  for (index_t i = 0; i < n; ++i) ids[i] = (i * 7) % V;  // repeated ids
  Dev<float> dw(w), dy(static_cast<std::size_t>(n * C)), dg(g), ddw(dw0);
  Dev<std::int64_t> dids(ids);
  cu::embedding_forward(dw.p, dids.p, dy.p, n, C);
  std::vector<double> want(static_cast<std::size_t>(n * C)), wgrad(dw0.begin(), dw0.end());
  const std::int64_t pad = 3;
  for (index_t p = 0; p < n; ++p)
    for (index_t c = 0; c < C; ++c) {
      want[p * C + c] = w[ids[p] * C + c];
      if (ids[p] != pad) wgrad[ids[p] * C + c] += g[p * C + c];
    }
  expect_close("embedding_forward", dy.host(), want, 0);
  cu::embedding_backward(dids.p, dg.p, ddw.p, n, C, pad);
  expect_close("embedding_backward (padding_idx 3)", ddw.host(), wgrad, 1e-5);

  // cross-entropy on log-probabilities, two rows ignored, label smoothing 0.1
  const index_t N = 20, K = 7;
  const auto logits = random_floats(N * K, 20);
  std::vector<std::int64_t> t(N);
  for (index_t i = 0; i < N; ++i) t[i] = i % 9 == 4 ? -100 : (i * 3) % K;
  Dev<float> dl(logits), dlogp(static_cast<std::size_t>(N * K)), out(2), dloss(std::vector<float>{2.0f}),
      dgrad(static_cast<std::size_t>(N * K));
  Dev<std::int64_t> dt(t);
  cu::log_softmax_rows(dl.p, dlogp.p, N, K);
  const float eps = 0.1f;
  cu::cross_entropy_forward(dlogp.p, dt.p, N, K, -100, eps, out.p);
  double loss = 0, kept = 0;
  std::vector<double> gw(static_cast<std::size_t>(N * K));
  std::vector<std::vector<double>> lp(N, std::vector<double>(K));
  for (index_t i = 0; i < N; ++i) {
    double m = -INFINITY, s = 0;
    for (index_t c = 0; c < K; ++c) m = std::fmax(m, logits[i * K + c]);
    for (index_t c = 0; c < K; ++c) s += std::exp(logits[i * K + c] - m);
    for (index_t c = 0; c < K; ++c) lp[i][c] = logits[i * K + c] - m - std::log(s);
    if (t[i] == -100) continue;
    double sum = 0;
    for (index_t c = 0; c < K; ++c) sum += lp[i][c];
    loss += -(1 - eps) * lp[i][t[i]] - eps / K * sum, kept += 1;
  }
  for (index_t i = 0; i < N; ++i)
    for (index_t c = 0; c < K; ++c)
      if (t[i] != -100) gw[i * K + c] = 2.0 / kept * (std::exp(lp[i][c]) - ((c == t[i] ? 1 - eps : 0) + eps / K));
  expect_close("cross_entropy_forward (ignore, smoothing)", out.host(), {loss / kept, kept}, 1e-5);
  cu::cross_entropy_backward(dlogp.p, dt.p, N, K, -100, eps, dloss.p, out.p, dgrad.p);
  expect_close("cross_entropy_backward", dgrad.host(), gw, 1e-5);
}

void gemms() {
  const index_t M = 67, N = 45, K = 131;
  const auto a = random_floats(M * K, 21, -1, 1), b = random_floats(K * N, 22, -1, 1), c0 = random_floats(M * N, 23);
  Dev<float> da(a), db(b);
  for (const Trans ta : {Trans::No, Trans::Yes})
    for (const Trans tb : {Trans::No, Trans::Yes})
      for (const auto math : {cu::GemmMath::fp32, cu::GemmMath::tf32}) {
        // A is (M, K) or stored (K, M); B is (K, N) or stored (N, K): the same numbers read either way
        const index_t lda = ta == Trans::Yes ? M : K, ldb = tb == Trans::Yes ? K : N;
        auto A = [&](index_t i, index_t k) { return double(ta == Trans::Yes ? a[k * M + i] : a[i * K + k]); };
        auto B = [&](index_t k, index_t j) { return double(tb == Trans::Yes ? b[j * K + k] : b[k * N + j]); };
        Dev<float> dc(c0);
        cu::gemm(ta, tb, M, N, K, 0.5f, da.p, lda, db.p, ldb, 2.0f, dc.p, N, math);
        std::vector<double> want(c0.size());
        for (index_t i = 0; i < M; ++i)
          for (index_t j = 0; j < N; ++j) {
            double s = 0;
            for (index_t k = 0; k < K; ++k) s += A(i, k) * B(k, j);
            want[i * N + j] = 0.5 * s + 2.0 * c0[i * N + j];
          }
        const std::string name = std::string("gemm ") + (math == cu::GemmMath::tf32 ? "tf32" : "fp32") +
                                 " ta=" + (ta == Trans::Yes ? "T" : "N") + " tb=" + (tb == Trans::Yes ? "T" : "N");
        expect_close(name, dc.host(), want, math == cu::GemmMath::tf32 ? 5e-3 : 1e-4);
      }
  {  // bf16 inputs, fp32 accumulation, against the product of the bf16-rounded inputs
    Dev<__nv_bfloat16> ha(static_cast<std::size_t>(M * K)), hb(static_cast<std::size_t>(K * N));
    cu::to_bf16(da.p, ha.p, M * K);
    cu::to_bf16(db.p, hb.p, K * N);
    Dev<float> dc(static_cast<std::size_t>(M * N));
    cu::gemm_bf16(Trans::No, Trans::No, M, N, K, 1.0f, ha.p, K, hb.p, N, 0.0f, dc.p, N);
    std::vector<double> want(static_cast<std::size_t>(M * N));
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        double s = 0;
        for (index_t k = 0; k < K; ++k) s += double(bf16_round(a[i * K + k])) * bf16_round(b[k * N + j]);
        want[i * N + j] = s;
      }
    expect_close("gemm_bf16 (vs the bf16-rounded inputs)", dc.host(), want, 1e-4);
  }
  {  // strided batches: 3 products of (M, K) x (K, N)
    const index_t batch = 3;
    const auto ab = random_floats(batch * M * K, 24, -1, 1), bb = random_floats(batch * K * N, 25, -1, 1);
    Dev<float> dab(ab), dbb(bb), dc(static_cast<std::size_t>(batch * M * N));
    cu::gemm_strided_batched(Trans::No, Trans::No, M, N, K, 1.0f, dab.p, K, M * K, dbb.p, N, K * N, 0.0f, dc.p, N,
                             M * N, batch);
    std::vector<double> want(static_cast<std::size_t>(batch * M * N));
    for (index_t q = 0; q < batch; ++q)
      for (index_t i = 0; i < M; ++i)
        for (index_t j = 0; j < N; ++j) {
          double s = 0;
          for (index_t k = 0; k < K; ++k) s += double(ab[q * M * K + i * K + k]) * bb[q * K * N + k * N + j];
          want[q * M * N + i * N + j] = s;
        }
    expect_close("gemm_strided_batched (3)", dc.host(), want, 1e-4);
  }
}


}  // namespace

int main() {
  if (cu::device_count() == 0) {
    std::printf("skipped: no CUDA device on this machine (the CUDA kernels were compiled, not run)\n");
    return 77;
  }
  try {
    elementwise();
    bias_rows();
    rows(37, 300);   // wider than a block
    rows(5, 7);      // narrower than a warp
    rows(3, 1000);
    dropout();
    lookup();
    gemms();
    cu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d failed\n", g_failed ? "FAILED" : "all CUDA kernel checks passed", g_failed);
  return g_failed ? 1 : 0;
}
