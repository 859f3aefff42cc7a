#pragma once
// Errors of the library: every failure is an exception derived from deepprompt::Error,
// whose message names what went wrong (the op, the shapes, the file and line).
#include <array>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace deepprompt {

/// Base of every exception the library throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Operands whose shapes do not fit together; the message names the op and both shapes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A tape misuse: backward() on a non-scalar, on a released tape, or on a Var without gradient.
class AutodiffError : public Error {
 public:
  using Error::Error;
};

/// "(2, 3, 4)" for any range of integers.
template <class Extents>
std::string shape_str(const Extents& extents) {
  std::ostringstream os;
  os << '(';
  bool first = true;
  for (auto e : extents) {
    if (!first) os << ", ";
    os << e;
    first = false;
  }
  os << ')';
  return os.str();
}

namespace detail {
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

/// Throws ShapeError("op: what; a (..) vs b (..)") unless `ok`.
template <class A, class B>
void check_shapes(bool ok, std::string_view op, std::string_view what, const A& a, const B& b) {
  if (!ok)
    throw ShapeError(detail::cat(op, ": ", what, "; got ", shape_str(a), " and ", shape_str(b)));
}

/// Throws Error(message) unless `ok`.
inline void check(bool ok, std::string_view message) {
  if (!ok) throw Error(std::string(message));
}

}  // namespace deepprompt
