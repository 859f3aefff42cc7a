#pragma once
// Element-wise arithmetic on Vars: add, sub, mul, div with broadcasting over leading axes,
// scale and add_scalar, and the operators + - * / (Var op Var, Var op scalar).
//
// Broadcasting: op(a, b) with a: (..., S trailing axes) of rank R and b of rank S <= R whose
// shape equals a's trailing S axes, e.g. (B, T, C) + (C) (a bias), (B, T, C) * (T, C), or the
// same shape. The result has a's shape. Seen as a: (rows, cols), b: (cols), b's gradient is
// dy's contribution summed over the rows (the leading axes).
//
// Devices: every op here runs on the host; on another device (Var<T, R, Cuda>) add, sub, mul, div
// of equal shapes, add of a broadcast b, scale and add_scalar run through the device's kernels,
// and sub/mul/div with broadcasting throw Error (not yet offered there).
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"

namespace deepprompt {

namespace detail {

enum class Arith { Add, Sub, Mul, Div };

template <Arith Op>
constexpr const char* arith_name() {
  if constexpr (Op == Arith::Add) return "add";
  if constexpr (Op == Arith::Sub) return "sub";
  if constexpr (Op == Arith::Mul) return "mul";
  return "div";
}

// The number of times b repeats over a (the product of a's leading R - S extents).
// Throws ShapeError naming `op` and both shapes unless b's shape is a's trailing axes.
template <std::size_t R, std::size_t S>
index_t arith_rows(const Shape<R>& a, const Shape<S>& b, const char* op) {
  bool ok = true;
  for (std::size_t i = 0; i < S; ++i) ok = ok && a[R - S + i] == b[i];
  check_shapes(ok, op, R == S ? "shapes differ" : "b's shape must equal the trailing axes of a's shape", a, b);
  index_t rows = 1;
  for (std::size_t i = 0; i + S < R; ++i) rows *= a[i];
  return rows;
}

// a, y: (rows, cols); b: (cols).  ensures: y[r, c] = f(a[r, c], b[c]) (f maps batches).
template <class T, class F>
void arith_broadcast_map(const T* a, const T* b, T* y, index_t rows, index_t cols, F f) {
  if (rows == 1) return cpu::simd::map(cols, y, f, a, b);
  cpu::simd::for_rows(rows, cols, [&](index_t r) { cpu::simd::apply(cols, y + r * cols, f, a + r * cols, b); });
}

// dy, a: (rows, cols); b, db: (cols); db must not alias the others.
// ensures: db[c] += post(sum over r of f(dy[r, c], a[r, c]), b[c]), summed in row order.
template <class T, class F, class Post>
void arith_reduce_rows(const T* dy, const T* a, const T* b, T* db, index_t rows, index_t cols, F f, Post post) {
  namespace simd = cpu::simd;
  simd::for_column_blocks<T>(rows, cols, [&](index_t c, index_t k) {
    simd::batch<T> acc(T(0));
    for (index_t r = 0; r < rows; ++r) acc += f(simd::load_n(dy + r * cols + c, k), simd::load_n(a + r * cols + c, k));
    simd::store_n(db + c, simd::load_n(db + c, k) + post(acc, simd::load_n(b + c, k)), k);
  });
}


// The same ops on a device other than the host, through its elementwise kernels (see the top).
template <Arith Op, class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> arith_device(const Var<T, R, D>& a, const Var<T, S, D>& b, index_t rows, index_t cols) {
  const index_t n = rows * cols;
  if (rows != 1 && Op != Arith::Add)
    throw Error(detail::cat(arith_name<Op>(), ": broadcasting b ", shape_str(b.shape()), " over a ",
                            shape_str(a.shape()), " is not offered on device ", D::name, " yet (only add broadcasts)"));
  Tensor<T, R, D> y(a.shape());  // y, a: (rows, cols); b: (cols)
  const T* av = a.value().data();
  const T* bv = b.value().data();
  if constexpr (Op == Arith::Add) {
    if (rows == 1) add(D{}, av, bv, y.data(), n);
    else add_rows(D{}, av, bv, y.data(), rows, cols);
  } else if constexpr (Op == Arith::Sub) {
    sub(D{}, av, bv, y.data(), n);
  } else if constexpr (Op == Arith::Mul) {
    mul(D{}, av, bv, y.data(), n);
  } else {
    div(D{}, av, bv, y.data(), n);
  }
  auto out = Var<T, R, D>::result(y, a.requires_grad() || b.requires_grad());
  if (!out.requires_grad()) return out;
  constexpr bool uses_values = Op == Arith::Mul || Op == Arith::Div;
  tape().record(out.node(), [rows, n, an = a.node(), bn = b.node(), av = uses_values ? a.value() : Tensor<T, R, D>(),
                             bv = uses_values ? b.value() : Tensor<T, S, D>()](const Tensor<T, R, D>& dy) {
    const T* g = dy.data();
    Tensor<T, 1, D> t;  // (n) scratch for mul / div
    if (uses_values) t = Tensor<T, 1, D>({n});
    if (an) {
      T* da = an->accumulator().data();
      if constexpr (Op == Arith::Mul) {  // da += g b
        mul(D{}, g, bv.data(), t.data(), n);
        g = t.data();
      } else if constexpr (Op == Arith::Div) {  // da += g / b
        div(D{}, g, bv.data(), t.data(), n);
        g = t.data();
      }
      axpy(D{}, T(1), g, da, n);
      g = dy.data();
    }
    if (bn) {
      T* db = bn->accumulator().data();
      if constexpr (Op == Arith::Add) {
        if (rows == 1) axpy(D{}, T(1), g, db, n);
        else sum_rows_accumulate(D{}, g, db, rows, n / rows);
      } else if constexpr (Op == Arith::Sub) {
        axpy(D{}, T(-1), g, db, n);
      } else if constexpr (Op == Arith::Mul) {  // db += g a
        mul(D{}, g, av.data(), t.data(), n);
        axpy(D{}, T(1), t.data(), db, n);
      } else {  // db += -(g a / b) / b
        mul(D{}, g, av.data(), t.data(), n);
        div(D{}, t.data(), bv.data(), t.data(), n);
        div(D{}, t.data(), bv.data(), t.data(), n);
        axpy(D{}, T(-1), t.data(), db, n);
      }
    }
  });
  return out;
}

template <Arith Op, class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> arith(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  static_assert(S <= R,
                "add/sub/mul/div(a, b): b broadcasts over a's leading axes, so b's rank must not exceed a's "
                "(write op(x, bias), not op(bias, x))");
  using B = cpu::simd::batch<T>;
  const index_t rows = arith_rows(a.shape(), b.shape(), arith_name<Op>());
  const index_t cols = b.size();
  if constexpr (!std::is_same_v<D, Cpu>) return arith_device<Op>(a, b, rows, cols);
  else {
    Tensor<T, R> y(a.shape());  // y, a: (rows, cols); b: (cols)
    const auto fwd = [](B u, B v) {
      if constexpr (Op == Arith::Add) return u + v;
      if constexpr (Op == Arith::Sub) return u - v;
      if constexpr (Op == Arith::Mul) return u * v;
      if constexpr (Op == Arith::Div) return u / v;
    };
    arith_broadcast_map(a.value().data(), b.value().data(), y.data(), rows, cols, fwd);

    auto out = Var<T, R>::result(y, a.requires_grad() || b.requires_grad());
    if (!out.requires_grad()) return out;
    // mul: da needs b, db needs a; div: da needs b, db needs a and b; add/sub need neither
    constexpr bool uses_values = Op == Arith::Mul || Op == Arith::Div;
    const bool keep_a = uses_values && b.requires_grad();
    const bool keep_b = uses_values && (a.requires_grad() || (Op == Arith::Div && b.requires_grad()));
    tape().record(out.node(), [rows, cols, an = a.node(), bn = b.node(), av = keep_a ? a.value() : Tensor<T, R>(),
                               bv = keep_b ? b.value() : Tensor<T, S>()](const Tensor<T, R>& dy) {
      const T* g = dy.data();
      if (an) {
        T* da = an->accumulator().data();
        if constexpr (Op == Arith::Add || Op == Arith::Sub) {
          cpu::add<T>(da, g, da, rows * cols);
        } else {
          const auto step = [](B gg, B vb, B acc) {
            if constexpr (Op == Arith::Mul) return xsimd::fma(gg, vb, acc);
            else return acc + gg / vb;
          };
          const T* vb = bv.data();
          if (rows == 1)
            cpu::simd::map(cols, da, step, g, vb, da);
          else
            cpu::simd::for_rows(rows, cols, [&](index_t r) {
              cpu::simd::apply(cols, da + r * cols, step, g + r * cols, vb, da + r * cols);
            });
        }
      }
      if (bn) {
        T* db = bn->accumulator().data();
        if constexpr (Op == Arith::Add) {
          cpu::sum_rows_accumulate<T>(g, db, rows, cols);
        } else if constexpr (Op == Arith::Sub) {
          arith_reduce_rows<T>(g, g, g, db, rows, cols, [](B gg, B) { return gg; }, [](B s, B) { return -s; });
        } else if constexpr (Op == Arith::Mul) {
          arith_reduce_rows<T>(g, av.data(), g, db, rows, cols, [](B gg, B u) { return gg * u; },
                                    [](B s, B) { return s; });
        } else {  // d(a / b)/db = -a / b^2
          arith_reduce_rows<T>(g, av.data(), bv.data(), db, rows, cols, [](B gg, B u) { return gg * u; },
                                    [](B s, B v) { return -s / (v * v); });
        }
      }
    });
    return out;
  }
}

}  // namespace detail

/// a + b.  a: (..., *b.shape()); b: a's trailing axes (or a's shape); y: a's shape.
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> add(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return detail::arith<detail::Arith::Add>(a, b);
}
/// a - b, broadcasting as add.
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> sub(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return detail::arith<detail::Arith::Sub>(a, b);
}
/// a * b (element-wise), broadcasting as add.
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> mul(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return detail::arith<detail::Arith::Mul>(a, b);
}
/// a / b (element-wise, IEEE division), broadcasting as add.
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> div(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return detail::arith<detail::Arith::Div>(a, b);
}

/// s * x.  x, y: any shape.
template <class T, std::size_t R, class D>
Var<T, R, D> scale(const Var<T, R, D>& x, std::type_identity_t<T> s) {
  Tensor<T, R, D> y(x.shape());
  scale(D{}, x.value().data(), s, y.data(), y.size());
  auto out = Var<T, R, D>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [s, xn = x.node()](const Tensor<T, R, D>& dy) {
      axpy(D{}, s, dy.data(), xn->accumulator().data(), dy.size());
    });
  return out;
}

/// x + s.  x, y: any shape.
template <class T, std::size_t R, class D>
Var<T, R, D> add_scalar(const Var<T, R, D>& x, std::type_identity_t<T> s) {
  Tensor<T, R, D> y(x.shape());
  add_scalar(D{}, x.value().data(), s, y.data(), y.size());
  auto out = Var<T, R, D>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [xn = x.node()](const Tensor<T, R, D>& dy) {
      T* dx = xn->accumulator().data();
      add(D{}, dx, dy.data(), dx, dy.size());
    });
  return out;
}

// --- operators (the functions above; Var op Var broadcasts the right operand) ----------------
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> operator+(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return add(a, b);
}
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> operator-(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return sub(a, b);
}
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> operator*(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return mul(a, b);
}
template <class T, std::size_t R, std::size_t S, class D>
Var<T, R, D> operator/(const Var<T, R, D>& a, const Var<T, S, D>& b) {
  return div(a, b);
}
template <class T, std::size_t R, class D>
Var<T, R, D> operator*(const Var<T, R, D>& x, std::type_identity_t<T> s) {
  return scale(x, s);
}
template <class T, std::size_t R, class D>
Var<T, R, D> operator*(std::type_identity_t<T> s, const Var<T, R, D>& x) {
  return scale(x, s);
}
/// x * (1 / s): one rounding more than a true division.
template <class T, std::size_t R, class D>
Var<T, R, D> operator/(const Var<T, R, D>& x, std::type_identity_t<T> s) {
  return scale(x, T(1) / s);
}
template <class T, std::size_t R, class D>
Var<T, R, D> operator+(const Var<T, R, D>& x, std::type_identity_t<T> s) {
  return add_scalar(x, s);
}
template <class T, std::size_t R, class D>
Var<T, R, D> operator-(const Var<T, R, D>& x, std::type_identity_t<T> s) {
  return add_scalar(x, -s);
}
template <class T, std::size_t R, class D>
Var<T, R, D> operator-(const Var<T, R, D>& x) {
  return scale(x, T(-1));
}

}  // namespace deepprompt
