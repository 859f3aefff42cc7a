#pragma once
// One step of an LSTM, exactly torch.nn.LSTMCell (gate order i, f, g, o), with a fused
// backward pass. P-Tuning v1's bidirectional LSTM prompt encoder runs it over the prompt.
//
//   gates = x w_ih^T + b_ih + h w_hh^T + b_hh              (B, 4Hd)
//   i = sigmoid(gates[:, 0:Hd]), f = sigmoid(gates[:, Hd:2Hd]),
//   g = tanh(gates[:, 2Hd:3Hd]), o = sigmoid(gates[:, 3Hd:4Hd])
//   c' = f * c + i * g,  h' = o * tanh(c')
#include <algorithm>
#include <string_view>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "../backend/cpu/gemm.hpp"

namespace deepprompt {

template <class T>
struct LstmState {
  Var<T, 2> h;  // (B, Hd)
  Var<T, 2> c;  // (B, Hd)
};

namespace detail {

// The fused backward step of lstm_cell; dh, dc: gradients reaching h' and c' (nullptr: none).
// act: the activated gates (B, 4Hd); c1: c' (B, Hd).
template <class T>
struct LstmBackward {
  index_t in;                                  // In
  Tensor<T, 2> act, c1, c0, x, h, w_ih, w_hh;  // c0, x, h, w_*: only where a gradient needs them
  VarNode<T, 2>*xn, *hn, *cn, *wihn, *whhn;
  VarNode<T, 1>*bihn, *bhhn;

  bool want_gates() const { return xn || hn || wihn || whhn || bihn || bhhn; }

  void operator()(const T* dh, const T* dc) const {
    const index_t Bn = act.extent(0), G = act.extent(1), Hd = G / 4, In = in;
    const bool want_gates = this->want_gates();
    Tensor<T, 2> dgates = want_gates ? Tensor<T, 2>({Bn, G}) : Tensor<T, 2>();  // (B, 4Hd)
    T* dc0 = cn ? cn->accumulator().data() : nullptr;
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
    if (!want_gates) return;
    using cpu::Trans;
    const T* dG = dgates.data();
    if (xn) cpu::gemm(Trans::No, Trans::No, Bn, In, G, T(1), dG, G, w_ih.data(), In, T(1), xn->accumulator().data(), In);
    if (hn) cpu::gemm(Trans::No, Trans::No, Bn, Hd, G, T(1), dG, G, w_hh.data(), Hd, T(1), hn->accumulator().data(), Hd);
    if (wihn) cpu::gemm(Trans::Yes, Trans::No, G, In, Bn, T(1), dG, G, x.data(), In, T(1), wihn->accumulator().data(), In);
    if (whhn) cpu::gemm(Trans::Yes, Trans::No, G, Hd, Bn, T(1), dG, G, h.data(), Hd, T(1), whhn->accumulator().data(), Hd);
    if (bihn) cpu::sum_rows_accumulate(dG, bihn->accumulator().data(), Bn, G);
    if (bhhn) cpu::sum_rows_accumulate(dG, bhhn->accumulator().data(), Bn, G);
  }
};

}  // namespace detail

/// torch.nn.LSTMCell: returns {h', c'}. x: (B, In); h, c: (B, Hd); w_ih: (4Hd, In);
/// w_hh: (4Hd, Hd); b_ih, b_hh: (4Hd), or empty Vars for a cell without bias.
template <class T>
LstmState<T> lstm_cell(const Var<T, 2>& x, const Var<T, 2>& h, const Var<T, 2>& c, const Var<T, 2>& w_ih,
                       const Var<T, 2>& w_hh, const Var<T, 1>& b_ih, const Var<T, 1>& b_hh) {
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

  using cpu::Trans;
  Tensor<T, 2> act({Bn, G});  // gates (B, 4Hd), activated in place
  cpu::gemm(Trans::No, Trans::Yes, Bn, G, In, T(1), x.value().data(), In, w_ih.value().data(), In, T(0), act.data(), G);
  cpu::gemm(Trans::No, Trans::Yes, Bn, G, Hd, T(1), h.value().data(), Hd, w_hh.value().data(), Hd, T(1), act.data(), G);
  if (has_bih) cpu::add_rows(act.data(), b_ih.value().data(), act.data(), Bn, G);
  if (has_bhh) cpu::add_rows(act.data(), b_hh.value().data(), act.data(), Bn, G);
  Tensor<T, 2> c1({Bn, Hd}), h1({Bn, Hd});
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

  auto* xn = x.node();
  auto* hn = h.node();
  auto* cn = c.node();
  auto* wihn = w_ih.node();
  auto* whhn = w_hh.node();
  auto* bihn = has_bih ? b_ih.node() : nullptr;
  auto* bhhn = has_bhh ? b_hh.node() : nullptr;
  const bool needs = xn || hn || cn || wihn || whhn || bihn || bhhn;
  LstmState<T> out{Var<T, 2>::result(h1, needs), Var<T, 2>::result(c1, needs)};
  if (out.h.requires_grad()) {
    // One fused backward, recorded on both outputs: the step of h' runs first (it was recorded
    // last); it takes c's gradient too (every consumer of c' has run by then) and consumes it,
    // so that the step of c' runs only when no gradient reached h'.
    detail::LstmBackward<T> bw{In, act, c1, Tensor<T, 2>(),
                               wihn ? x.value() : Tensor<T, 2>(),
                               whhn ? h.value() : Tensor<T, 2>(),
                               xn ? w_ih.value() : Tensor<T, 2>(),
                               hn ? w_hh.value() : Tensor<T, 2>(),
                               xn, hn, cn, wihn, whhn, bihn, bhhn};
    if (bw.want_gates()) bw.c0 = c.value();
    auto* c_node = out.c.node();
    tape().record(c_node, [bw](const Tensor<T, 2>& dc) { bw(nullptr, dc.data()); });
    tape().record(out.h.node(), [bw, c_node](const Tensor<T, 2>& dh) {
      bw(dh.data(), c_node->grad.empty() ? nullptr : c_node->grad.data());
      c_node->grad = Tensor<T, 2>();  // consumed: the step of c' is skipped
    });
  }
  return out;
}

}  // namespace deepprompt
