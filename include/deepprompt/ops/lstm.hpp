#pragma once
// One step of an LSTM, exactly torch.nn.LSTMCell (gate order i, f, g, o), with a fused
// backward pass. P-Tuning v1's bidirectional LSTM prompt encoder runs it over the prompt.
//
//   gates = x w_ih^T + b_ih + h w_hh^T + b_hh              (B, 4Hd)
//   i = sigmoid(gates[:, 0:Hd]), f = sigmoid(gates[:, Hd:2Hd]),
//   g = tanh(gates[:, 2Hd:3Hd]), o = sigmoid(gates[:, 3Hd:4Hd])
//   c' = f * c + i * g,  h' = o * tanh(c')
//
// On a device other than the host: the GEMMs and bias rows through its kernels, the gates
// through its lstm_gates(act, c0, c1, h1, B, Hd) (act activated in place, c1 and h1 written) and
// lstm_gates_backward(act, c0, c1, dh, dc, dc0, dgates, B, Hd) (dh, dc: nullptr for none; dc0
// accumulated when not nullptr; dgates written when not nullptr), per element as the host's
// loops below.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <string_view>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "../backend/cpu/gemm.hpp"

namespace deepprompt {

template <class T, class D = Cpu>
struct LstmState {
  Var<T, 2, D> h;  // (B, Hd)
  Var<T, 2, D> c;  // (B, Hd)
};

namespace detail {

// The fused backward step of lstm_cell; dh, dc: gradients reaching h' and c' (nullptr: none).
// act: the activated gates (B, 4Hd); c1: c' (B, Hd).
template <class T, class D = Cpu>
struct LstmBackward {
  index_t in;                                     // In
  Tensor<T, 2, D> act, c1, c0, x, h, w_ih, w_hh;  // c0, x, h, w_*: only where a gradient needs them
  VarNode<T, 2, D>*xn, *hn, *cn, *wihn, *whhn;
  VarNode<T, 1, D>*bihn, *bhhn;

  bool want_gates() const { return xn || hn || wihn || whhn || bihn || bhhn; }

  void operator()(const T* dh, const T* dc) const {
    const index_t Bn = act.extent(0), G = act.extent(1), Hd = G / 4, In = in;
    const bool want_gates = this->want_gates();
    Tensor<T, 2, D> dgates = want_gates ? Tensor<T, 2, D>({Bn, G}) : Tensor<T, 2, D>();  // (B, 4Hd)
    T* dc0 = cn ? cn->accumulator().data() : nullptr;
    if constexpr (!std::is_same_v<D, Cpu>) {
      lstm_gates_backward(D{}, static_cast<const T*>(act.data()), static_cast<const T*>(want_gates ? c0.data() : nullptr),
                          static_cast<const T*>(c1.data()), dh, dc, dc0, want_gates ? dgates.data() : nullptr, Bn, Hd);
    } else {
    for (index_t b = 0; b < Bn; ++b) {
      const T* a = act.data() + b * G;
      const T* cp = want_gates ? c0.data() + b * Hd : nullptr;
      const T* cn1 = c1.data() + b * Hd;
      T* dg = want_gates ? dgates.data() + b * G : nullptr;
      for (index_t u = 0; u < Hd; ++u) {
        const T i = a[u], f = a[Hd + u], g = a[2 * Hd + u], o = a[3 * Hd + u];
        const T tc = std::tanh(cn1[u]);
        const T gh = dh ? dh[b * Hd + u] : T(0);
        const T gc = (dc ? dc[b * Hd + u] : T(0)) + gh * o * (T(1) - tc * tc);
        if (dc0) dc0[b * Hd + u] += gc * f;
        if (dg) {
          dg[u] = gc * g * i * (T(1) - i);
          dg[Hd + u] = gc * cp[u] * f * (T(1) - f);
          dg[2 * Hd + u] = gc * i * (T(1) - g * g);
          dg[3 * Hd + u] = gh * tc * o * (T(1) - o);
        }
      }
    }
    }
    if (!want_gates) return;
    const T* dG = dgates.data();
    if (xn) gemm(D{}, Trans::No, Trans::No, Bn, In, G, T(1), dG, G, static_cast<const T*>(w_ih.data()), In, T(1),
                 xn->accumulator().data(), In);
    if (hn) gemm(D{}, Trans::No, Trans::No, Bn, Hd, G, T(1), dG, G, static_cast<const T*>(w_hh.data()), Hd, T(1),
                 hn->accumulator().data(), Hd);
    if (wihn) gemm(D{}, Trans::Yes, Trans::No, G, In, Bn, T(1), dG, G, static_cast<const T*>(x.data()), In, T(1),
                   wihn->accumulator().data(), In);
    if (whhn) gemm(D{}, Trans::Yes, Trans::No, G, Hd, Bn, T(1), dG, G, static_cast<const T*>(h.data()), Hd, T(1),
                   whhn->accumulator().data(), Hd);
    if (bihn) sum_rows_accumulate(D{}, dG, bihn->accumulator().data(), Bn, G);
    if (bhhn) sum_rows_accumulate(D{}, dG, bhhn->accumulator().data(), Bn, G);
  }
};

}  // namespace detail

/// torch.nn.LSTMCell: returns {h', c'}. x: (B, In); h, c: (B, Hd); w_ih: (4Hd, In);
/// w_hh: (4Hd, Hd); b_ih, b_hh: (4Hd), or empty Vars for a cell without bias.
template <class T, class D>
LstmState<T, D> lstm_cell(const Var<T, 2, D>& x, const Var<T, 2, D>& h, const Var<T, 2, D>& c,
                          const Var<T, 2, D>& w_ih, const Var<T, 2, D>& w_hh, const Var<T, 1, D>& b_ih,
                          const Var<T, 1, D>& b_hh) {
  constexpr std::string_view op = "lstm_cell";
  const index_t Bn = x.extent(0), In = x.extent(1), Hd = h.extent(1), G = 4 * Hd;
  check_shapes(h.shape() == c.shape(), op, "h and c differ in shape", h.shape(), c.shape());
  check_shapes(h.extent(0) == Bn, op, "x (B, In) and h (B, Hd) differ in batch size", x.shape(), h.shape());
  check_shapes(w_ih.shape() == Shape<2>{G, In}, op, "w_ih must be (4 * Hd, In) for x (B, In) and h (B, Hd); got w_ih and (Hd, In)",
               w_ih.shape(), Shape<2>{Hd, In});
  check_shapes(w_hh.shape() == Shape<2>{G, Hd}, op, "w_hh must be (4 * Hd, Hd) for h (B, Hd)", w_hh.shape(), h.shape());
  const bool has_bih = !b_ih.value().empty(), has_bhh = !b_hh.value().empty();
  if (has_bih) check_shapes(b_ih.extent(0) == G, op, "b_ih must be (4 * Hd) for h (B, Hd)", b_ih.shape(), h.shape());
  if (has_bhh) check_shapes(b_hh.extent(0) == G, op, "b_hh must be (4 * Hd) for h (B, Hd)", b_hh.shape(), h.shape());

  Tensor<T, 2, D> act({Bn, G});  // gates (B, 4Hd), activated in place
  gemm(D{}, Trans::No, Trans::Yes, Bn, G, In, T(1), static_cast<const T*>(x.value().data()), In,
       static_cast<const T*>(w_ih.value().data()), In, T(0), act.data(), G);
  gemm(D{}, Trans::No, Trans::Yes, Bn, G, Hd, T(1), static_cast<const T*>(h.value().data()), Hd,
       static_cast<const T*>(w_hh.value().data()), Hd, T(1), act.data(), G);
  if (has_bih) add_rows(D{}, static_cast<const T*>(act.data()), static_cast<const T*>(b_ih.value().data()), act.data(), Bn, G);
  if (has_bhh) add_rows(D{}, static_cast<const T*>(act.data()), static_cast<const T*>(b_hh.value().data()), act.data(), Bn, G);
  Tensor<T, 2, D> c1({Bn, Hd}), h1({Bn, Hd});
  if constexpr (!std::is_same_v<D, Cpu>) {
    lstm_gates(D{}, act.data(), static_cast<const T*>(c.value().data()), c1.data(), h1.data(), Bn, Hd);
  } else {
  for (index_t b = 0; b < Bn; ++b) {
    T* a = act.data() + b * G;
    cpu::sigmoid(a, a, 2 * Hd);
    cpu::tanh(a + 2 * Hd, a + 2 * Hd, Hd);
    cpu::sigmoid(a + 3 * Hd, a + 3 * Hd, Hd);
    const T* cp = c.value().data() + b * Hd;
    T* cr = c1.data() + b * Hd;
    T* hr = h1.data() + b * Hd;
    for (index_t u = 0; u < Hd; ++u) cr[u] = a[Hd + u] * cp[u] + a[u] * a[2 * Hd + u];
    cpu::tanh(cr, hr, Hd);
    for (index_t u = 0; u < Hd; ++u) hr[u] *= a[3 * Hd + u];
  }
  }

  auto* xn = x.node();
  auto* hn = h.node();
  auto* cn = c.node();
  auto* wihn = w_ih.node();
  auto* whhn = w_hh.node();
  auto* bihn = has_bih ? b_ih.node() : nullptr;
  auto* bhhn = has_bhh ? b_hh.node() : nullptr;
  const bool needs = xn || hn || cn || wihn || whhn || bihn || bhhn;
  LstmState<T, D> out{Var<T, 2, D>::result(h1, needs), Var<T, 2, D>::result(c1, needs)};
  if (out.h.requires_grad()) {
    // One fused backward, recorded on both outputs: the step of h' runs first (it was recorded
    // last); it takes c's gradient too (every consumer of c' has run by then) and consumes it,
    // so that the step of c' runs only when no gradient reached h'.
    detail::LstmBackward<T, D> bw{In, act, c1, Tensor<T, 2, D>(),
                                  wihn ? x.value() : Tensor<T, 2, D>(),
                                  whhn ? h.value() : Tensor<T, 2, D>(),
                                  xn ? w_ih.value() : Tensor<T, 2, D>(),
                                  hn ? w_hh.value() : Tensor<T, 2, D>(),
                                  xn, hn, cn, wihn, whhn, bihn, bhhn};
    if (bw.want_gates()) bw.c0 = c.value();
    auto* c_node = out.c.node();
    tape().record(c_node, [bw](const Tensor<T, 2, D>& dc) { bw(nullptr, dc.data()); });
    tape().record(out.h.node(), [bw, c_node](const Tensor<T, 2, D>& dh) {
      bw(dh.data(), c_node->grad.empty() ? nullptr : c_node->grad.data());
      c_node->grad = Tensor<T, 2, D>();  // consumed: the step of c' is skipped
    });
  }
  return out;
}

}  // namespace deepprompt
