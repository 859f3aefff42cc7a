#pragma once
// HostDevice: a device policy for tests whose memory is host memory and whose kernels are the
// CPU ones (or loops with the CUDA kernels' contracts where the host has none), so that the ops'
// and modules' code paths for devices other than Cpu run without a GPU; and check_op, which runs
// one op on Cpu and on HostDevice from the same inputs and seed gradient and compares the
// outputs and every input's gradient. tests/cuda/device_ops.cuh does the same with Cuda.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <tuple>
#include <vector>

#include "deepprompt/autodiff/parameter.hpp"
#include "deepprompt/backend/cpu/attention_kernels.hpp"
#include "deepprompt/backend/dispatch.hpp"
#include "deepprompt/backend/optimizer_args.hpp"
#include "testing.hpp"

namespace dp_test {
struct HostDevice {
  static constexpr const char* name = "host-device";
};
}  // namespace dp_test

template <>
struct deepprompt::is_device_policy<dp_test::HostDevice> : std::true_type {};

namespace dp_test {

using deepprompt::index_t;

// --- HostDevice's memory and kernels (found by argument-dependent lookup) ---------------------
inline deepprompt::MemoryPool& device_pool(HostDevice) {
  static deepprompt::MemoryPool* pool = new deepprompt::MemoryPool(deepprompt::MemoryPool::Backing{
      [](std::size_t bytes) -> void* { return ::operator new(bytes, std::align_val_t{deepprompt::kAlignment}); },
      [](void* p) { ::operator delete(p, std::align_val_t{deepprompt::kAlignment}); }});  // 64-byte aligned, as the host pool
  return *pool;
}
template <class T>
void upload(HostDevice, const T* host, T* device, index_t n) {
  std::memcpy(device, host, sizeof(T) * static_cast<std::size_t>(n));
}
template <class T>
void download(HostDevice, const T* device, T* host, index_t n) {
  std::memcpy(host, device, sizeof(T) * static_cast<std::size_t>(n));
}
// every CPU kernel under this device's tag (backend/cuda/kernels.cuh offers the same names)
template <class... A>
void fill(HostDevice, A&&... a) {
  deepprompt::fill(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void add(HostDevice, A&&... a) {
  deepprompt::add(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void sub(HostDevice, A&&... a) {
  deepprompt::sub(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void mul(HostDevice, A&&... a) {
  deepprompt::mul(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void div(HostDevice, A&&... a) {
  deepprompt::div(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void scale(HostDevice, A&&... a) {
  deepprompt::scale(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void add_scalar(HostDevice, A&&... a) {
  deepprompt::add_scalar(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void axpy(HostDevice, A&&... a) {
  deepprompt::axpy(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void add_rows(HostDevice, A&&... a) {
  deepprompt::add_rows(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void sum_rows_accumulate(HostDevice, A&&... a) {
  deepprompt::sum_rows_accumulate(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void gelu_erf(HostDevice, A&&... a) {
  deepprompt::gelu_erf(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void gelu_erf_backward(HostDevice, A&&... a) {
  deepprompt::gelu_erf_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void tanh(HostDevice, A&&... a) {
  deepprompt::tanh(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void tanh_backward(HostDevice, A&&... a) {
  deepprompt::tanh_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void softmax_rows(HostDevice, A&&... a) {
  deepprompt::softmax_rows(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void softmax_rows_backward(HostDevice, A&&... a) {
  deepprompt::softmax_rows_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void log_softmax_rows(HostDevice, A&&... a) {
  deepprompt::log_softmax_rows(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void layer_norm_rows(HostDevice, A&&... a) {
  deepprompt::layer_norm_rows(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void layer_norm_rows_backward(HostDevice, A&&... a) {
  deepprompt::layer_norm_rows_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void rms_norm_rows(HostDevice, A&&... a) {
  deepprompt::rms_norm_rows(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void rms_norm_rows_backward(HostDevice, A&&... a) {
  deepprompt::rms_norm_rows_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void dropout_forward(HostDevice, A&&... a) {
  deepprompt::dropout_forward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void dropout_backward(HostDevice, A&&... a) {
  deepprompt::dropout_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void gemm(HostDevice, A&&... a) {
  deepprompt::gemm(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void gemm_batched(HostDevice, A&&... a) {
  deepprompt::gemm_batched(deepprompt::Cpu{}, std::forward<A>(a)...);
}

template <class... A>
void exp(HostDevice, A&&... a) {
  deepprompt::exp(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void sigmoid(HostDevice, A&&... a) {
  deepprompt::sigmoid(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void relu(HostDevice, A&&... a) {
  deepprompt::relu(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void gelu_tanh(HostDevice, A&&... a) {
  deepprompt::gelu_tanh(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void exp_backward(HostDevice, A&&... a) {
  deepprompt::exp_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void sigmoid_backward(HostDevice, A&&... a) {
  deepprompt::sigmoid_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void relu_backward(HostDevice, A&&... a) {
  deepprompt::relu_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void gelu_tanh_backward(HostDevice, A&&... a) {
  deepprompt::gelu_tanh_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}
template <class... A>
void log_softmax_rows_backward(HostDevice, A&&... a) {
  deepprompt::log_softmax_rows_backward(deepprompt::Cpu{}, std::forward<A>(a)...);
}

// The CUDA attention's contract: no workspace argument, no saved keep bits.
template <class T>
void attention_forward(HostDevice, const deepprompt::cpu::AttentionArgs<T>& a, T* out, T* stats) {
  REQUIRE(a.keep_bits == nullptr);
  std::vector<T> ws(static_cast<std::size_t>(deepprompt::cpu::attention_workspace_size(a, false)));
  deepprompt::cpu::attention_forward(a, out, stats, ws.data());
}
template <class T>
void attention_backward(HostDevice, const deepprompt::cpu::AttentionArgs<T>& a, const T* dout, const T* stats,
                        const deepprompt::cpu::AttentionGrads<T>& g) {
  std::vector<T> ws(static_cast<std::size_t>(deepprompt::cpu::attention_workspace_size(a, true)));
  deepprompt::cpu::attention_backward(a, dout, stats, g, ws.data());
}
// backend/cuda/lookup.cuh's contracts, as loops
template <class T>
void embedding_forward(HostDevice, const T* w, const std::int64_t* ids, T* y, index_t n, index_t C) {
  for (index_t i = 0; i < n * C; ++i) y[i] = w[ids[i / C] * C + i % C];
}
template <class T>
void embedding_backward(HostDevice, const std::int64_t* ids, const T* dy, T* dw, index_t n, index_t C,
                        std::int64_t pad) {
  for (index_t p = 0; p < n; ++p)
    if (ids[p] != pad)
      for (index_t c = 0; c < C; ++c) dw[ids[p] * C + c] += dy[p * C + c];
}
template <class T>
void cross_entropy_forward(HostDevice, const T* logp, const std::int64_t* tg, index_t N, index_t C, std::int64_t ignore,
                           T eps, T* out) {
  double total = 0, kept = 0;
  for (index_t i = 0; i < N; ++i) {
    if (tg[i] == ignore) continue;
    double s = 0;
    for (index_t c = 0; c < C; ++c) s += logp[i * C + c];
    total += -(1 - double(eps)) * logp[i * C + tg[i]] - double(eps) / double(C) * s;
    kept += 1;
  }
  out[0] = T(total / kept), out[1] = T(kept);
}
template <class T>
void cross_entropy_backward(HostDevice, const T* logp, const std::int64_t* tg, index_t N, index_t C,
                            std::int64_t ignore, T eps, const T* dloss, const T* fwd, T* dx) {
  for (index_t i = 0; i < N * C; ++i) {
    const index_t r = i / C, c = i % C;
    if (tg[r] == ignore || fwd[1] == T(0)) continue;
    dx[i] += dloss[0] / fwd[1] * (std::exp(logp[i]) - ((c == tg[r] ? T(1) - eps : T(0)) + eps / T(C)));
  }
}
template <class T, std::size_t R>
void permute_copy(HostDevice, bool accumulate, const std::array<index_t, R>& shape,
                  const std::array<index_t, R>& stride,
                  std::size_t lead, index_t block, index_t n, T* x, T* y) {
  for (index_t j = 0; j < n; ++j) {
    index_t rem = j / block, off = j % block;
    for (std::size_t i = lead; i-- > 0;) off += (rem % shape[i]) * stride[i], rem /= shape[i];
    if (accumulate) x[off] += y[j];
    else y[j] = x[off];
  }
}

// the LSTM gates' contract (backend/cuda/lstm.cuh), per (row, unit)
template <class T>
void lstm_gates(HostDevice, T* act, const T* c0, T* c1, T* h1, index_t B, index_t Hd) {
  const auto sig = [](T x) { return T(1) / (T(1) + std::exp(-x)); };
  for (index_t j = 0; j < B * Hd; ++j) {
    T* a = act + j / Hd * 4 * Hd;
    const index_t u = j % Hd;
    const T i = a[u] = sig(a[u]), f = a[Hd + u] = sig(a[Hd + u]);
    const T g = a[2 * Hd + u] = std::tanh(a[2 * Hd + u]), o = a[3 * Hd + u] = sig(a[3 * Hd + u]);
    c1[j] = f * c0[j] + i * g;
    h1[j] = o * std::tanh(c1[j]);
  }
}
template <class T>
void lstm_gates_backward(HostDevice, const T* act, const T* c0, const T* c1, const T* dh, const T* dc, T* dc0,
                         T* dgates, index_t B, index_t Hd) {
  for (index_t j = 0; j < B * Hd; ++j) {
    const T* a = act + j / Hd * 4 * Hd;
    const index_t u = j % Hd;
    const T i = a[u], f = a[Hd + u], g = a[2 * Hd + u], o = a[3 * Hd + u], tc = std::tanh(c1[j]);
    const T gh = dh ? dh[j] : T(0), gc = (dc ? dc[j] : T(0)) + gh * o * (T(1) - tc * tc);
    if (dc0) dc0[j] += gc * f;
    if (!dgates) continue;
    T* dg = dgates + j / Hd * 4 * Hd;
    dg[u] = gc * g * i * (T(1) - i), dg[Hd + u] = gc * c0[j] * f * (T(1) - f);
    dg[2 * Hd + u] = gc * i * (T(1) - g * g), dg[3 * Hd + u] = gh * tc * o * (T(1) - o);
  }
}
// the reductions' contract (backend/cuda/reduce.cuh): x (outer, n, inner), in double
template <class T>
void sum_axis(HostDevice, const T* x, T* y, index_t outer, index_t n, index_t inner, double scale) {
  for (index_t o = 0; o < outer; ++o)
    for (index_t i = 0; i < inner; ++i) {
      double s = 0;
      for (index_t k = 0; k < n; ++k) s += static_cast<double>(x[(o * n + k) * inner + i]);
      y[o * inner + i] = static_cast<T>(s * scale);
    }
}
template <class T>
void sum_axis_backward(HostDevice, const T* dy, T* dx, index_t outer, index_t n, index_t inner, T scale) {
  for (index_t j = 0; j < outer * n * inner; ++j) dx[j] += scale * dy[j / (n * inner) * inner + j % inner];
}
// the optimisers' contract (backend/optimizer_args.hpp), element by element as the CUDA kernels
template <class T>
void adam_update(HostDevice, const deepprompt::AdamUpdate<T>& u) {
  for (index_t i = 0; i < u.n; ++i) {
    T p = u.value[i], g = u.grad[i];
    if (u.l2) g = std::fma(p, u.wd, g);
    if (u.decoupled) p = p * u.decay;
    const T m = std::fma(g, u.one_minus_beta1, u.m[i] * u.beta1);
    T v = std::fma(u.one_minus_beta2 * g, g, u.v[i] * u.beta2);
    u.m[i] = m, u.v[i] = v;
    if (u.amsgrad) v = u.vmax[i] = u.vmax[i] >= v ? u.vmax[i] : v;
    const T denom = std::sqrt(v) / u.bc2_sqrt + u.eps;
    u.value[i] = p + (u.neg_step_size * m) / denom;
  }
}
template <class T>
void sgd_update(HostDevice, const deepprompt::SgdUpdate<T>& u) {
  for (index_t i = 0; i < u.n; ++i) {
    T d = u.grad[i];
    if (u.decay) d = std::fma(u.value[i], u.wd, d);
    if (u.momentum) {
      const T b = u.first ? d : std::fma(d, u.one_minus_dampening, u.buf[i] * u.momentum_factor);
      u.buf[i] = b;
      d = u.nesterov ? std::fma(b, u.momentum_factor, d) : b;
    }
    u.value[i] = std::fma(d, u.neg_lr, u.value[i]);
  }
}
template <class T>
double grad_norm_partial(HostDevice, const T* x, index_t n, double p) {  // sum |x|^p, or max |x| (NaN wins)
  double acc = 0;
  for (index_t i = 0; i < n; ++i) {
    const double a = std::abs(static_cast<double>(x[i]));
    if (!std::isinf(p)) acc += p == 2 ? a * a : p == 1 ? a : std::pow(a, p);
    else if (a != a || acc != acc) acc = std::numeric_limits<double>::quiet_NaN();
    else acc = std::max(acc, a);
  }
  return acc;
}

// --- running an op on both devices ------------------------------------------------------------
template <class D, std::size_t R>
deepprompt::Tensor<float, R, D> on(const deepprompt::Tensor<float, R>& h) {
  deepprompt::Tensor<float, R, D> t(h.shape());
  std::memcpy(t.data(), h.data(), sizeof(float) * static_cast<std::size_t>(h.size()));
  return t;
}
/// A tensor's elements on the host, from any device (core/tensor.hpp's to_host).
template <class D, std::size_t R>
std::vector<float> values(const deepprompt::Tensor<float, R, D>& t) {
  const auto h = deepprompt::to_host(t);
  return std::vector<float>(h.data(), h.data() + h.size());
}

template <class D, class Op, std::size_t... R>
std::vector<std::vector<float>> run(Op& op, const deepprompt::Tensor<float, R>&... inputs) {
  auto params = std::make_tuple(deepprompt::Parameter<float, R, D>("input", on<D>(inputs))...);
  auto y = std::apply([&](auto&... p) { return op(p.var()...); }, params);
  if (y.size() == 1) y.backward();  // filled<D>(1) as the seed
  else y.backward(on<D>(random_tensor<float>(y.shape(), 7)));
  std::vector<std::vector<float>> out{values(y.value())};
  std::apply([&](auto&... p) { (out.push_back(values(p.grad())), ...); }, params);
  return out;
}

/// The largest |got - want| / max(1, |want|) (sizes must match).
inline double worst_rel(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / std::max(1.0, std::abs(double(want[i]))));
  return worst;
}

/// op on HostDevice against op on Cpu: output and every gradient within `tol` (scaled).
template <class Op, std::size_t... R>
void check_op(Op op, double tol, const deepprompt::Tensor<float, R>&... inputs) {
  const auto cpu = run<deepprompt::Cpu>(op, inputs...);
  const auto dev = run<HostDevice>(op, inputs...);
  REQUIRE(cpu.size() == dev.size());
  for (std::size_t k = 0; k < cpu.size(); ++k) {
    INFO("output 0 / gradient of input k: ", k);
    CHECK(worst_rel(dev[k], cpu[k]) <= tol);
  }
}

}  // namespace dp_test
