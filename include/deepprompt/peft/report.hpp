#pragma once
// The parameter-efficiency table, computed from the model rather than quoted: trainable and
// total parameters, their percentage, and the memory of the trainable state (parameters,
// gradients and AdamW's two moments) of any module tree; and full fine-tuning in the same API.
//
//   auto r = dp::parameter_report(model, "P-Tuning v2");              // any module
//   auto r = dp::parameter_report(std::tie(model, head), "LoRA r=8"); // several, as one model
//   std::cout << r;   // "LoRA r=8: trainable 296,450 / 109,778,690 parameters (0.270%); ..."
//
// Trainable-state bytes = sizeof(T) * (trainable parameters (values) + their gradients + AdamW's
// exp_avg and exp_avg_sq, each moment laid out as train/optimizer.hpp does: every parameter's
// slice padded to 64 bytes). Frozen parameters hold no gradient and no optimiser state: they
// count only in parameter_bytes.
#include <algorithm>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "../nn/module.hpp"

namespace deepprompt {

struct ParameterReport {
  std::string method;
  index_t trainable = 0;                 // scalars with a gradient
  index_t total = 0;                     // all scalars
  index_t trainable_tensors = 0, tensors = 0;
  std::size_t parameter_bytes = 0;       // every parameter's values
  std::size_t gradient_bytes = 0;        // the trainable ones' gradients
  std::size_t optimizer_bytes = 0;       // AdamW's exp_avg + exp_avg_sq (padded as the optimiser)

  double percent() const { return total > 0 ? 100.0 * double(trainable) / double(total) : 0.0; }
  std::size_t trainable_value_bytes = 0;  // the trainable ones' values

  /// Trainable parameters' values + gradients + AdamW moments.
  std::size_t trainable_state_bytes() const { return trainable_value_bytes + gradient_bytes + optimizer_bytes; }

  /// One line, e.g. "LoRA: trainable 1,536 / 44,482 parameters (3.453%); trainable state
  /// 24,576 B (24.0 KiB: values 6,144 + gradients 6,144 + AdamW moments 12,288); all values 177,928 B".
  std::string str() const {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(3);
    s << method << ": trainable " << grouped(trainable) << " / " << grouped(total) << " parameters (" << percent()
      << "%); trainable state " << grouped(index_t(trainable_state_bytes())) << " B (" << human(trainable_state_bytes())
      << ": values " << grouped(index_t(trainable_value_bytes)) << " + gradients " << grouped(index_t(gradient_bytes))
      << " + AdamW moments " << grouped(index_t(optimizer_bytes)) << "); all values "
      << grouped(index_t(parameter_bytes)) << " B";
    return s.str();
  }

  static std::string grouped(index_t n) {
    std::string d = std::to_string(n < 0 ? -n : n), out;
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
      out += d[i];
    }
    return n < 0 ? "-" + out : out;
  }
  static std::string human(std::size_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(bytes);
    int u = 0;
    while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(u == 0 ? 0 : 1);
    s << v << " " << units[u];
    return s.str();
  }
};

inline std::ostream& operator<<(std::ostream& os, const ParameterReport& r) { return os << r.str(); }

namespace report_detail {
template <class X>
struct is_tuple : std::false_type {};
template <class... X>
struct is_tuple<std::tuple<X...>> : std::true_type {};

template <class M>
void add(ParameterReport& r, M& model) {
  for_each_parameter(model, [&](const std::string&, auto& p) {
    using T = std::remove_cvref_t<decltype(*p.value().data())>;
    constexpr index_t align = std::max<index_t>(1, 64 / static_cast<index_t>(sizeof(T)));  // as the optimiser
    const index_t n = p.size();
    r.total += n;
    ++r.tensors;
    r.parameter_bytes += sizeof(T) * static_cast<std::size_t>(n);
    if (!p.trainable()) return;
    r.trainable += n;
    ++r.trainable_tensors;
    r.trainable_value_bytes += sizeof(T) * static_cast<std::size_t>(n);
    r.gradient_bytes += sizeof(T) * static_cast<std::size_t>(n);
    r.optimizer_bytes += 2 * sizeof(T) * static_cast<std::size_t>((n + align - 1) / align * align);
  });
}
}  // namespace report_detail

/// The report of `model` (a module, or a std::tuple of references to modules, e.g.
/// std::tie(bert, prompt, head), counted together) under the label `method`.
template <class M>
ParameterReport parameter_report(M&& model, std::string_view method) {
  ParameterReport r;
  r.method = std::string(method);
  using D = std::remove_cvref_t<M>;
  if constexpr (report_detail::is_tuple<D>::value)
    std::apply([&](auto&... parts) { (report_detail::add(r, parts), ...); }, model);
  else
    report_detail::add(r, model);
  return r;
}

/// Full fine-tuning in the same API as the parameter-efficient methods: every parameter of
/// `model` trainable. Returns the number of parameter tensors (build the optimiser afterwards).
template <class M>
int full_finetuning(M& model) {
  return unfreeze(model);
}

}  // namespace deepprompt
