#pragma once
// The element-wise updates of train/optimizer.hpp as a contract between the optimisers and the
// backends of devices other than Cpu (the host runs its own xsimd loops, bit-identical to
// torch's AVX2 kernels). A device offers
//   adam_update(D, AdamUpdate<T>)   and   sgd_update(D, SgdUpdate<T>)
// computing, per element i, with fma(a, b, c) = a * b + c rounded once and every other
// operation rounded on its own (no contraction), exactly these steps:
//
// Adam / AdamW (t: the step; the constants are rounded to T from doubles by the optimiser):
//   g = grad[i];  p = value[i]
//   if l2:        g = fma(p, wd, g)                        // Adam's weight decay
//   if decoupled: p = p * decay                             // AdamW: decay = 1 - lr * wd
//   m = fma(g, one_minus_beta1, m[i] * beta1)
//   v = fma(one_minus_beta2 * g, g, v[i] * beta2)
//   if amsgrad:   v = vmax[i] >= v ? vmax[i] : v;  vmax[i] = v
//   value[i] = p + (neg_step_size * m) / (sqrt(v) / bc2_sqrt + eps)
// SGD:
//   d = grad[i];  p = value[i]
//   if decay:     d = fma(p, wd, d)
//   if momentum:  b = first ? d : fma(d, one_minus_dampening, buf[i] * momentum);  buf[i] = b
//                 d = nesterov ? fma(b, momentum, d) : b
//   value[i] = fma(d, neg_lr, p)
#include "../core/tensor.hpp"

namespace deepprompt {

template <class T>
struct AdamUpdate {
  T* value = nullptr;       // (n) the parameter, updated in place
  const T* grad = nullptr;  // (n)
  T* m = nullptr;           // (n) exp_avg
  T* v = nullptr;           // (n) exp_avg_sq
  T* vmax = nullptr;        // (n) max_exp_avg_sq; used only with amsgrad
  index_t n = 0;
  T beta1{}, one_minus_beta1{}, beta2{}, one_minus_beta2{}, bc2_sqrt{}, eps{}, neg_step_size{};
  T wd{};          // with l2
  T decay{1};      // with decoupled
  bool l2 = false, decoupled = false, amsgrad = false;
};

template <class T>
struct SgdUpdate {
  T* value = nullptr;       // (n)
  const T* grad = nullptr;  // (n)
  T* buf = nullptr;         // (n) momentum buffer; used only with momentum
  index_t n = 0;
  T wd{}, momentum_factor{}, one_minus_dampening{}, neg_lr{};
  bool decay = false, momentum = false, nesterov = false, first = false;
};

}  // namespace deepprompt
