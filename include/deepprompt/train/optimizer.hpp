#pragma once
// Optimisers: SGD, Adam, AdamW, each reproducing torch.optim's single-tensor (non-foreach,
// default in torch 1.13) CPU path operation by operation: given the same gradients, float
// results are bit-identical to torch 1.13's AVX2 kernels on targets with FMA instructions
// (tests/unit/test_optim.cpp replays torch trajectories).
//
//   std::vector<dp::ParamRef<float>> params{w, b};              // Parameters of any rank
//   dp::AdamW<float> opt{dp::split_weight_decay(params), {.lr = 1e-2, .weight_decay = 0.01}};
//   loss.backward(); dp::clip_grad_norm(opt.params(), 1.0); opt.step(); opt.zero_grad();
//
// - Frozen parameters (no gradient) are skipped; trainable ones are always updated, also when
//   no gradient reached them (their gradient is zero; torch skips a parameter whose .grad is
//   None, which we cannot tell from a zero gradient).
// - State (momentum / exp_avg / exp_avg_sq / max_exp_avg_sq) lives in one contiguous buffer per
//   kind, allocated once at construction; every parameter's slice starts on a 64-byte boundary.
//   step() and zero_grad() allocate nothing.
// - The step count is global (torch counts per parameter; the same when all are updated).
// - Scalars (lr, bias corrections, 1 - beta, ...) are computed in double as Python does and
//   rounded to T once; element-wise work is in T with xsimd, fused multiply-adds exactly where
//   torch's AVX2 kernels fuse them, and OpenMP over elements for large parameters.
// - Device: Optimizer<T, D> updates parameters in D's memory (ParamRef<T, D>, state there too)
//   through the backend's adam_update / sgd_update (backend/optimizer_args.hpp: the same steps,
//   the same roundings).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../backend/cpu/simd.hpp"
#include "../backend/optimizer_args.hpp"
#include "../core/tensor.hpp"
#include "param_ref.hpp"

namespace deepprompt {

namespace detail {
/// x * y + z with ONE rounding. xsimd 8.1 (Debian 12) has no fma kernel for AVX-512:
/// xsimd::fma there falls back to x * y + z with two roundings (GCC does not contract the
/// AVX-512 intrinsics), whereas torch's AVX2 kernels fuse; so the intrinsic is called directly.
template <class T, class A>
xsimd::batch<T, A> fused_fma(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& y,
                             const xsimd::batch<T, A>& z) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, float>)
    return _mm512_fmadd_ps(x, y, z);
  else if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, double>)
    return _mm512_fmadd_pd(x, y, z);
  else
#endif
    return xsimd::fma(x, y, z);
}

/// x, with the compiler kept from fusing the product that computed it into a following
/// addition (-ffp-contract=fast, GCC's default in GNU mode, does that at -O2): torch rounds
/// there, so must we. An empty asm statement makes the value opaque; it costs nothing.
template <class T, class A>
xsimd::batch<T, A> rounded(const xsimd::batch<T, A>& x) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  auto r = static_cast<typename xsimd::batch<T, A>::register_type>(x);
#if defined(__AVX512F__)
  asm("" : "+v"(r));
#else
  asm("" : "+x"(r));
#endif
  return r;
#else
  return x;  // other targets: rely on -ffp-contract=off for bit-exact parity
#endif
}
/// a * b rounded to double before anything else uses it (see rounded()).
inline double rounded_product(double a, double b) noexcept {
  volatile double p = a * b;
  return p;
}
}  // namespace detail

/// Base of the optimisers: the parameter list, the learning rate, step() and zero_grad().
/// D: where the parameters, their gradients and the optimiser's state live.
template <class T, DevicePolicy D = Cpu>
class Optimizer {
 public:
  using value_type = T;
  using device_type = D;

  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;
  virtual ~Optimizer() = default;

  /// One update of every trainable parameter from its current gradient.
  virtual void step() = 0;
  /// Sets every gradient to zero (torch's zero_grad(set_to_none=False)).
  void zero_grad() {
    for (const auto& s : slots_) {
      if constexpr (std::is_same_v<D, Cpu>)
        std::fill_n(s.grad, s.size, T(0));
      else
        fill(D{}, s.grad, T(0), s.size);
    }
  }

  double lr() const { return lr_; }
  /// For schedules. requires: lr >= 0.
  void set_lr(double lr) {
    if (!(lr >= 0)) throw Error(detail::cat("Optimizer::set_lr: invalid learning rate ", lr));
    lr_ = lr;
  }
  /// Steps taken so far.
  std::int64_t steps() const { return steps_; }
  /// The parameters updated (the trainable ones, in the order given).
  std::span<const ParamRef<T, D>> params() const { return params_; }
  /// The weight decay applied to params()[i].
  double weight_decay(std::size_t i) const { return slots_.at(i).weight_decay; }
  /// Elements of each state buffer (the parameters' sizes, each padded to 64 bytes).
  index_t state_size() const { return state_size_; }

 protected:
  struct Slot {
    T* value;
    T* grad;
    index_t size;
    index_t offset;  // into each state buffer
    double weight_decay;
  };

  /// requires: no parameter appears twice.
  Optimizer(std::vector<ParamGroup<T, D>> groups, double lr, double weight_decay, const char* who) : lr_(lr) {
    if (!(lr >= 0)) throw Error(detail::cat(who, ": invalid learning rate ", lr));
    constexpr index_t align = std::max<index_t>(1, 64 / static_cast<index_t>(sizeof(T)));
    std::vector<const T*> seen;
    for (auto& g : groups) {
      const double wd = g.weight_decay.value_or(weight_decay);
      if (!(wd >= 0)) throw Error(detail::cat(who, ": invalid weight_decay value ", wd));
      for (auto& p : g.params) {
        if (!p.trainable || p.grad == nullptr) continue;  // frozen: no gradient, nothing to do
        seen.push_back(p.value);
        slots_.push_back({p.value, p.grad, p.size, state_size_, wd});
        state_size_ += (p.size + align - 1) / align * align;
        params_.push_back(std::move(p));
      }
    }
    std::sort(seen.begin(), seen.end());
    if (std::adjacent_find(seen.begin(), seen.end()) != seen.end())
      throw Error(detail::cat(who, ": some parameters appear more than once in the parameter list"));
  }

  static std::vector<ParamGroup<T, D>> one_group(std::vector<ParamRef<T, D>> p) {
    std::vector<ParamGroup<T, D>> g(1);
    g[0].params = std::move(p);
    return g;
  }
  /// A zeroed state buffer covering every slot.
  Tensor<T, 1, D> make_state() const { return filled<T, 1, D>({state_size_}, T(0)); }

  /// Calls f(i, k) for consecutive batches of k <= lanes elements covering [0, n) (only the
  /// last is partial); threaded over elements when n is large.
  template <class F>
  static void for_batches(index_t n, F&& f) {
    constexpr index_t L = cpu::simd::lanes<T>;
    cpu::simd::for_ranges(n, [&](index_t b, index_t e) {
      index_t i = b;
      for (; i + L <= e; i += L) f(i, L);
      if (i < e) f(i, e - i);
    });
  }

  std::vector<Slot> slots_;
  std::vector<ParamRef<T, D>> params_;
  index_t state_size_ = 0;
  double lr_;
  std::int64_t steps_ = 0;
};

// ---------------------------------------------------------------------------------------------
// SGD

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2, added to the gradient
  bool nesterov = false;    // requires momentum > 0 and dampening == 0
};

/// torch.optim.SGD: d = g + wd p; buf = d (first step) or momentum buf + (1 - dampening) d;
/// d = nesterov ? d + momentum buf : buf; p -= lr d.
template <class T, DevicePolicy D = Cpu>
class SGD final : public Optimizer<T, D> {
  using Base = Optimizer<T, D>;

 public:
  SGD(std::vector<ParamGroup<T, D>> groups, SGDOptions opt = {})
      : Base(std::move(groups), opt.lr, opt.weight_decay, "SGD"), opt_(opt) {
    if (!(opt.momentum >= 0)) throw Error(detail::cat("SGD: invalid momentum value ", opt.momentum));
    check(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
          "SGD: Nesterov momentum requires a momentum and zero dampening");
    if (opt.momentum != 0) momentum_ = this->make_state();
  }
  SGD(std::vector<ParamRef<T, D>> params, SGDOptions opt = {}) : SGD(Base::one_group(std::move(params)), opt) {}

  void step() override {
    ++this->steps_;
    const bool first = this->steps_ == 1;
    for (const auto& s : this->slots_) {
      if constexpr (!std::is_same_v<D, Cpu>) {
        SgdUpdate<T> u;
        u.value = s.value, u.grad = s.grad, u.n = s.size;
        u.buf = opt_.momentum != 0 ? momentum_.data() + s.offset : nullptr;
        u.wd = T(s.weight_decay), u.momentum_factor = T(opt_.momentum);
        u.one_minus_dampening = T(1 - opt_.dampening), u.neg_lr = T(-this->lr_);
        u.decay = s.weight_decay != 0, u.momentum = opt_.momentum != 0, u.nesterov = opt_.nesterov, u.first = first;
        sgd_update(D{}, u);
      } else if (opt_.momentum == 0)
        update<false, false>(s, first);
      else if (opt_.nesterov)
        update<true, true>(s, first);
      else
        update<true, false>(s, first);
    }
  }

  const SGDOptions& options() const { return opt_; }
  /// The momentum buffers (state_size() elements; empty without momentum).
  const Tensor<T, 1, D>& momentum_buffer() const { return momentum_; }

 private:
  template <bool kMomentum, bool kNesterov>
  void update(const typename Base::Slot& s, bool first) {
    using B = cpu::simd::batch<T>;
    using cpu::simd::load_n, cpu::simd::store_n;
    const bool decay = s.weight_decay != 0;
    const B wd(T(s.weight_decay)), mom(T(opt_.momentum)), damp1(T(1 - opt_.dampening)), neg_lr(T(-this->lr_));
    T* buf = kMomentum ? momentum_.data() + s.offset : nullptr;
    this->for_batches(s.size, [&](index_t i, index_t k) {
      B p = load_n(s.value + i, k), d = load_n(s.grad + i, k);
      if (decay) d = detail::fused_fma(p, wd, d);  // d_p.add(param, alpha=wd)
      if constexpr (kMomentum) {
        B b = first ? d : detail::fused_fma(d, damp1, load_n(buf + i, k) * mom);  // buf.mul_(m).add_(d, 1-damp)
        store_n(buf + i, b, k);
        d = kNesterov ? detail::fused_fma(b, mom, d) : b;  // d_p.add(buf, alpha=momentum)
      }
      store_n(s.value + i, detail::fused_fma(d, neg_lr, p), k);  // param.add_(d_p, alpha=-lr)
    });
  }

  SGDOptions opt_;
  Tensor<T, 1, D> momentum_;
};

template <class T, class D>
SGD(std::vector<ParamRef<T, D>>, SGDOptions = {}) -> SGD<T, D>;
template <class T, class D>
SGD(std::vector<ParamGroup<T, D>>, SGDOptions = {}) -> SGD<T, D>;

// ---------------------------------------------------------------------------------------------
// Adam and AdamW

struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;  // Adam: L2 added to the gradient; AdamW: decoupled
  bool amsgrad = false;
};
/// AdamW's defaults differ from Adam's only in the weight decay (torch: 1e-2). A separate
/// aggregate, so that designated initializers work: `{.lr = 1e-2}`.
struct AdamWOptions {
  double lr = 1e-3;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled
  bool amsgrad = false;
  operator AdamOptions() const { return {lr, betas, eps, weight_decay, amsgrad}; }  // NOLINT
};

namespace detail {

/// The shared implementation. kDecoupled: AdamW (p *= 1 - lr wd before the update), else Adam
/// (g += wd p). Then, with t the step count,
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v) (amsgrad)
///   p += -(lr / (1 - beta1^t)) m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)
template <class T, bool kDecoupled, DevicePolicy D>
class AdamBase : public Optimizer<T, D> {
  using Base = Optimizer<T, D>;

 public:
  const AdamOptions& options() const { return opt_; }
  const Tensor<T, 1, D>& exp_avg() const { return m_; }
  const Tensor<T, 1, D>& exp_avg_sq() const { return v_; }
  /// Empty unless amsgrad.
  const Tensor<T, 1, D>& max_exp_avg_sq() const { return vmax_; }

  /// Restores a saved state (a resumed run continues bit for bit): the step count and copies of
  /// the moment buffers. requires: the same parameters in the same order as when saved; the
  /// buffers of state_size() elements (vmax empty unless amsgrad), host tensors whatever D is.
  /// Throws Error otherwise.
  void restore_state(std::int64_t steps, const Tensor<T, 1>& m, const Tensor<T, 1>& v, const Tensor<T, 1>& vmax = {}) {
    const index_t n = this->state_size_;
    auto fits = [n](const Tensor<T, 1>& t) { return !t.empty() && t.size() == n; };
    if (steps < 0 || !fits(m) || !fits(v) || (opt_.amsgrad && !fits(vmax)))
      throw Error(detail::cat("restore_state: expected ", n, "-element moment buffers", opt_.amsgrad ? " (3, amsgrad)" : "",
                              " and a step count >= 0; got ", m.empty() ? 0 : m.size(), ", ", v.empty() ? 0 : v.size(),
                              " elements and step ", steps, " (another model or method?)"));
    this->steps_ = steps;
    if constexpr (std::is_same_v<D, Cpu>) {
      std::copy_n(m.data(), n, m_.data());
      std::copy_n(v.data(), n, v_.data());
      if (opt_.amsgrad) std::copy_n(vmax.data(), n, vmax_.data());
    } else {
      upload(D{}, m.data(), m_.data(), n);
      upload(D{}, v.data(), v_.data(), n);
      if (opt_.amsgrad) upload(D{}, vmax.data(), vmax_.data(), n);
    }
  }

  void step() override {
    ++this->steps_;
    const double t = static_cast<double>(this->steps_);
    const auto [b1, b2] = opt_.betas;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    Consts c{T(b1), T(1 - b1), T(b2), T(1 - b2), T(std::sqrt(bc2)), T(opt_.eps), T(-(this->lr_ / bc1)), T(0), T(1)};
    for (const auto& s : this->slots_) {
      if constexpr (kDecoupled)
        c.decay = T(1 - detail::rounded_product(this->lr_, s.weight_decay));  // Python: 1 - lr * wd
      else
        c.wd = T(s.weight_decay);
      const bool l2 = !kDecoupled && s.weight_decay != 0;
      if constexpr (!std::is_same_v<D, Cpu>)
        device_update(s, c, l2);
      else if (opt_.amsgrad && l2)
        update<true, true>(s, c);
      else if (opt_.amsgrad)
        update<false, true>(s, c);
      else if (l2)
        update<true, false>(s, c);
      else
        update<false, false>(s, c);
    }
  }

 protected:
  AdamBase(std::vector<ParamGroup<T, D>> groups, const AdamOptions& opt, const char* who)
      : Base(std::move(groups), opt.lr, opt.weight_decay, who), opt_(opt) {
    if (!(opt.eps >= 0)) throw Error(detail::cat(who, ": invalid epsilon value ", opt.eps));
    for (int i = 0; i < 2; ++i)
      if (!(opt.betas[i] >= 0 && opt.betas[i] < 1))
        throw Error(detail::cat(who, ": invalid beta parameter at index ", i, ": ", opt.betas[i]));
    m_ = this->make_state();
    v_ = this->make_state();
    if (opt.amsgrad) vmax_ = this->make_state();
  }

 private:
  struct Consts {
    T beta1, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size, wd, decay;
  };

  void device_update(const typename Base::Slot& s, const Consts& c, bool l2) {
    AdamUpdate<T> u;
    u.value = s.value, u.grad = s.grad, u.n = s.size;
    u.m = m_.data() + s.offset, u.v = v_.data() + s.offset;
    u.vmax = opt_.amsgrad ? vmax_.data() + s.offset : nullptr;
    u.beta1 = c.beta1, u.one_minus_beta1 = c.one_minus_beta1, u.beta2 = c.beta2, u.one_minus_beta2 = c.one_minus_beta2;
    u.bc2_sqrt = c.bc2_sqrt, u.eps = c.eps, u.neg_step_size = c.neg_step_size, u.wd = c.wd, u.decay = c.decay;
    u.l2 = l2, u.decoupled = kDecoupled, u.amsgrad = opt_.amsgrad;
    adam_update(D{}, u);
  }

  template <bool kL2, bool kAmsgrad>
  void update(const typename Base::Slot& s, const Consts& c) {
    using B = cpu::simd::batch<T>;
    using cpu::simd::load_n, cpu::simd::store_n;
    const B b1(c.beta1), c1(c.one_minus_beta1), b2(c.beta2), c2(c.one_minus_beta2), bc2s(c.bc2_sqrt),
        eps(c.eps), neg_step(c.neg_step_size), wd(c.wd), decay(c.decay);
    T* m = m_.data() + s.offset;
    T* v = v_.data() + s.offset;
    T* vmax = kAmsgrad ? vmax_.data() + s.offset : nullptr;
    this->for_batches(s.size, [&](index_t i, index_t k) {
      B p = load_n(s.value + i, k), g = load_n(s.grad + i, k);
      if constexpr (kL2) g = detail::fused_fma(p, wd, g);  // grad.add(param, alpha=weight_decay)
      if constexpr (kDecoupled) p = detail::rounded(p * decay);  // param.mul_(1 - lr * wd), rounded
      const B mi = detail::fused_fma(g, c1, load_n(m + i, k) * b1);       // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      B vi = detail::fused_fma(c2 * g, g, load_n(v + i, k) * b2);          // exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2)
      store_n(m + i, mi, k);
      store_n(v + i, vi, k);
      if constexpr (kAmsgrad) {
        const B prev = load_n(vmax + i, k);
        vi = xsimd::select(prev >= vi, prev, vi);  // torch.maximum (NaN in v propagates)
        store_n(vmax + i, vi, k);
      }
      const B denom = xsimd::sqrt(vi) / bc2s + eps;                 // (v.sqrt() / bc2_sqrt).add_(eps)
      store_n(s.value + i, p + (neg_step * mi) / denom, k);        // param.addcdiv_(m, denom, -step_size)
    });
  }

  AdamOptions opt_;
  Tensor<T, 1, D> m_, v_, vmax_;
};

}  // namespace detail

/// torch.optim.Adam: weight decay is L2 regularisation added to the gradient.
template <class T, DevicePolicy D = Cpu>
class Adam final : public detail::AdamBase<T, false, D> {
  using Base = detail::AdamBase<T, false, D>;

 public:
  Adam(std::vector<ParamGroup<T, D>> groups, AdamOptions opt = {}) : Base(std::move(groups), opt, "Adam") {}
  Adam(std::vector<ParamRef<T, D>> params, AdamOptions opt = {}) : Adam(Base::one_group(std::move(params)), opt) {}
};

/// torch.optim.AdamW: decoupled weight decay, p *= 1 - lr * weight_decay before the Adam update.
template <class T, DevicePolicy D = Cpu>
class AdamW final : public detail::AdamBase<T, true, D> {
  using Base = detail::AdamBase<T, true, D>;

 public:
  AdamW(std::vector<ParamGroup<T, D>> groups, AdamWOptions opt = {}) : Base(std::move(groups), opt, "AdamW") {}
  AdamW(std::vector<ParamRef<T, D>> params, AdamWOptions opt = {}) : AdamW(Base::one_group(std::move(params)), opt) {}
};

template <class T, class D>
Adam(std::vector<ParamRef<T, D>>, AdamOptions = {}) -> Adam<T, D>;
template <class T, class D>
Adam(std::vector<ParamGroup<T, D>>, AdamOptions = {}) -> Adam<T, D>;
template <class T, class D>
AdamW(std::vector<ParamRef<T, D>>, AdamWOptions = {}) -> AdamW<T, D>;
template <class T, class D>
AdamW(std::vector<ParamGroup<T, D>>, AdamWOptions = {}) -> AdamW<T, D>;

}  // namespace deepprompt
