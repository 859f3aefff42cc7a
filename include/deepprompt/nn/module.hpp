#pragma once
// Modules: named parameter trees without registration or virtual calls.
//
// A module is any class with a member template `visit(v)` that names its parameters and its
// sub-modules, in the order of the Hugging Face state dict:
//
//   struct Linear {
//     Parameter<float, 2> weight;  Parameter<float, 1> bias;
//     template <class V> void visit(V&& v) { v("weight", weight); v("bias", bias); }
//   };
//   struct Layer {
//     Linear query, key;  std::vector<Linear> experts;
//     template <class V> void visit(V&& v) { v("query", query); v("key", key); v("experts", experts); }
//   };
//
// From that one function come the dotted names ("experts.3.weight"), state_dict(),
// load_state_dict() (strict, with one error listing every problem), freeze()/unfreeze() by
// name pattern, parameter counts and the optimiser's parameter list. Modules stay movable: no
// pointer into a module is stored anywhere.
#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../autodiff/parameter.hpp"
#include "../train/param_ref.hpp"

namespace deepprompt {

/// A parameter's tensor with its rank erased: the shape and a flat view of the elements.
template <class T>
struct AnyTensor {
  std::vector<index_t> shape;
  Tensor<T, 1> flat;  // (numel)

  template <std::size_t R>
  static AnyTensor of(const Tensor<T, R>& t) {
    return {std::vector<index_t>(t.shape().begin(), t.shape().end()), t.template reshape<1>({t.size()})};
  }
};

/// name -> tensor, ordered by name.
template <class T>
using StateDict = std::map<std::string, AnyTensor<T>, std::less<>>;

namespace detail {
template <class X>
struct is_parameter : std::false_type {};
template <class T, std::size_t R, class D>
struct is_parameter<Parameter<T, R, D>> : std::true_type {};
template <class X>
struct is_vector : std::false_type {};
template <class X>
struct is_vector<std::vector<X>> : std::true_type {};
template <class X>
struct is_optional : std::false_type {};
template <class X>
struct is_optional<std::optional<X>> : std::true_type {};

template <class F>
struct Walker {
  F& f;
  std::string prefix;

  template <class X>
  void operator()(std::string_view name, X& x) const {
    const std::string full = prefix + std::string(name);
    if constexpr (is_parameter<std::remove_const_t<X>>::value) {
      f(full, x);
    } else if constexpr (is_vector<std::remove_const_t<X>>::value) {
      for (std::size_t i = 0; i < x.size(); ++i) Walker<F>{f, full + "."}(std::to_string(i), x[i]);
    } else if constexpr (is_optional<std::remove_const_t<X>>::value) {
      if (x) (*this)(name, *x);  // an absent optional part has no parameters
    } else {
      x.visit(Walker<F>{f, full + "."});
    }
  }
};
}  // namespace detail

/// Calls f(full_name, parameter) for every parameter of `m`, in visit order.
template <class M, class F>
void for_each_parameter(M& m, F&& f, std::string prefix = "") {
  m.visit(detail::Walker<std::remove_reference_t<F>>{f, std::move(prefix)});
}

/// Number of scalar parameters (all, or only the trainable ones).
template <class M>
index_t parameter_count(M& m, bool trainable_only = false) {
  index_t n = 0;
  for_each_parameter(m, [&](const std::string&, auto& p) {
    if (!trainable_only || p.trainable()) n += p.size();
  });
  return n;
}

/// Freezes (or unfreezes) every parameter whose full name matches the glob `pattern`
/// ("*" any run of characters, "?" one, "[...]" a set; "*" matches dots too); returns how many
/// matched. Build the optimiser after changing what is trainable.
template <class M>
int set_trainable(M& m, std::string_view pattern, bool trainable) {
  const std::string pat(pattern);
  int matched = 0;
  for_each_parameter(m, [&](const std::string& name, auto& p) {
    if (fnmatch(pat.c_str(), name.c_str(), 0) == 0) {
      p.set_trainable(trainable);
      ++matched;
    }
  });
  return matched;
}
template <class M>
int freeze(M& m, std::string_view pattern = "*") {
  return set_trainable(m, pattern, false);
}
template <class M>
int unfreeze(M& m, std::string_view pattern = "*") {
  return set_trainable(m, pattern, true);
}

namespace detail {
template <class M>
struct model_device {
  using type = Cpu;
};
template <class M>
  requires requires { typename M::device_type; }
struct model_device<M> {
  using type = typename M::device_type;
};
}  // namespace detail

/// Where a model's parameters live: M::device_type when it declares one, else Cpu.
template <class M>
using model_device_t = typename detail::model_device<M>::type;

/// The trainable parameters with their full names, for an optimiser (ParamRef<T, D> on the
/// model's device).
template <class T, class M>
std::vector<ParamRef<T, model_device_t<M>>> trainable_parameters(M& m, std::string prefix = "") {
  std::vector<ParamRef<T, model_device_t<M>>> out;
  for_each_parameter(
      m,
      [&](const std::string& name, auto& p) {
        if (!p.trainable()) return;
        ParamRef<T, model_device_t<M>> r(p);
        r.name = name;
        out.push_back(std::move(r));
      },
      std::move(prefix));
  return out;
}

/// Every parameter's tensor by full name; the tensors share the parameters' buffers.
template <class T, class M>
StateDict<T> state_dict(M& m, std::string prefix = "") {
  StateDict<T> sd;
  for_each_parameter(
      m, [&](const std::string& name, auto& p) { sd.emplace(name, AnyTensor<T>::of(p.value())); }, std::move(prefix));
  return sd;
}

/// What load_state_dict() found; `ok()` when nothing is missing, unexpected or mis-shaped.
struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const {
    std::string s;
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      s += "\n  " + std::string(what) + " (" + std::to_string(names.size()) + "):";
      for (const auto& n : names) s += " " + n;
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("shape mismatch", mismatched);
    return s;
  }
};

/// Copies `sd` into the parameters of `m` by full name. Strict (default): throws one Error that
/// lists every missing, unexpected and mis-shaped tensor, and copies nothing unless all fit.
/// Not strict: copies what fits and returns the report.
template <class T, class M>
LoadReport load_state_dict(M& m, const StateDict<T>& sd, bool strict = true, std::string prefix = "") {
  LoadReport rep;
  std::map<std::string, bool, std::less<>> seen;
  for (const auto& [name, _] : sd) seen[name] = false;
  auto fits = [&](const std::string& name, const auto& p) -> const AnyTensor<T>* {
    auto it = sd.find(name);
    if (it == sd.end()) return nullptr;
    seen[name] = true;
    if (!std::equal(it->second.shape.begin(), it->second.shape.end(), p.shape().begin(), p.shape().end())) {
      return nullptr;
    }
    return &it->second;
  };
  for_each_parameter(
      m,
      [&](const std::string& name, auto& p) {
        if (!sd.contains(name))
          rep.missing.push_back(name);
        else if (!fits(name, p))
          rep.mismatched.push_back(name + " " + shape_str(sd.find(name)->second.shape) + " vs " + shape_str(p.shape()));
      },
      prefix);
  for (const auto& [name, used] : seen)
    if (!used) rep.unexpected.push_back(name);
  if (strict && !rep.ok()) throw Error("load_state_dict: the state dict does not fit the model:" + rep.str());
  for_each_parameter(
      m,
      [&](const std::string& name, auto& p) {
        auto it = sd.find(name);
        if (it == sd.end()) return;
        if (!std::equal(it->second.shape.begin(), it->second.shape.end(), p.shape().begin(), p.shape().end())) return;
        std::copy(it->second.flat.begin(), it->second.flat.end(), p.value().data());
      },
      prefix);
  return rep;
}

/// Copies every parameter of `src` into the parameter of `dst` with the same full name, and its
/// trainable flag, between the host and a device either way (the backend's upload / download;
/// host to host: a copy). Works on any modules (each parameter's own device decides). requires:
/// the same names and shapes, and no copy from one device straight to another; throws one Error
/// listing every difference otherwise, and copies nothing then.
template <class T, class Dst, class Src>
void copy_parameters(Dst& dst, Src& src) {
  struct Source {
    std::vector<index_t> shape;
    const T* data;
    bool trainable;
    void (*fetch)(const T*, T*, index_t);  // device -> host copy; nullptr: data is host memory
  };
  std::map<std::string, Source, std::less<>> from;
  for_each_parameter(src, [&](const std::string& name, auto& p) {
    using PD = typename std::remove_cvref_t<decltype(p.value())>::device_type;
    void (*fetch)(const T*, T*, index_t) = nullptr;
    if constexpr (!std::is_same_v<PD, Cpu>) fetch = +[](const T* d, T* h, index_t n) { download(PD{}, d, h, n); };
    from.emplace(name, Source{{p.shape().begin(), p.shape().end()}, p.value().data(), p.trainable(), fetch});
  });
  LoadReport rep;
  std::map<std::string, bool, std::less<>> seen;
  for_each_parameter(dst, [&](const std::string& name, auto& p) {
    using PD = typename std::remove_cvref_t<decltype(p.value())>::device_type;
    seen[name] = true;
    auto it = from.find(name);
    if (it == from.end())
      rep.missing.push_back(name);
    else if (!std::equal(it->second.shape.begin(), it->second.shape.end(), p.shape().begin(), p.shape().end()))
      rep.mismatched.push_back(name + " " + shape_str(it->second.shape) + " vs " + shape_str(p.shape()));
    else if (!std::is_same_v<PD, Cpu> && it->second.fetch)
      rep.mismatched.push_back(name + " (from one device to another: copy through the host)");
  });
  for (const auto& [name, _] : from)
    if (!seen.contains(name)) rep.unexpected.push_back(name);
  if (!rep.ok()) throw Error("copy_parameters: the two models differ:" + rep.str());
  for_each_parameter(dst, [&](const std::string& name, auto& p) {
    using PD = typename std::remove_cvref_t<decltype(p.value())>::device_type;
    const Source& s = from.find(name)->second;
    T* out = p.value().data();
    if constexpr (!std::is_same_v<PD, Cpu>)
      upload(PD{}, s.data, out, p.size());
    else if (s.fetch)
      s.fetch(s.data, out, p.size());
    else
      std::copy_n(s.data, p.size(), out);
    p.set_trainable(s.trainable);
  });
}

}  // namespace deepprompt
