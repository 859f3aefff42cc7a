#pragma once
// ParamRef<T, D>: a light, type-erased handle on a Parameter<T, R, D> of any rank, as optimisers
// and gradient clipping see it: a name, the value and gradient arrays (in D's memory), and their
// length.
//
// ParamGroup<T>: parameters sharing a weight-decay setting (torch's param_groups, restricted to
// the one hyper-parameter that differs between groups in practice). split_weight_decay() builds
// Hugging Face's two groups: no decay on biases and LayerNorm weights.
#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../autodiff/parameter.hpp"

namespace deepprompt {

template <class T, DevicePolicy D = Cpu>
struct ParamRef {
  using device_type = D;
  std::string name;
  T* value = nullptr;  // (size), the parameter's elements, in D's memory
  T* grad = nullptr;   // (size), its gradient (in D's memory); nullptr when frozen
  index_t size = 0;
  bool trainable = false;

  ParamRef() = default;
  /// Refers to `p` (implicit, so that `std::vector<ParamRef<float>>{w, b}` takes parameters of
  /// any rank). A frozen parameter gives a handle without gradient, which optimisers and
  /// clip_grad_norm skip.
  /// The handle stays valid while `p` lives, also when `p` is moved (its buffers do not move),
  /// but not across p.set_trainable(false/true), which replaces the gradient buffer: build the
  /// optimiser again after freezing or unfreezing parameters.
  template <std::size_t R>
  ParamRef(Parameter<T, R, D>& p)  // NOLINT(google-explicit-constructor)
      : name(p.name()),
        value(p.value().data()),
        grad(p.trainable() ? p.grad().data() : nullptr),
        size(p.size()),
        trainable(p.trainable()) {}
};

template <class T, DevicePolicy D = Cpu>
struct ParamGroup {
  std::vector<ParamRef<T, D>> params;
  /// This group's weight decay; nullopt: the optimiser's option.
  std::optional<double> weight_decay = std::nullopt;
};

/// Hugging Face's exclusion rule (run_glue.py & co.: no_decay = ["bias", "LayerNorm.weight"]):
/// true for names containing "bias", or a LayerNorm weight spelled "LayerNorm", "layer_norm" or
/// "layernorm" in any case.
inline bool hf_no_decay(std::string_view name) {
  if (name.find("bias") != std::string_view::npos) return true;
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view key : {"layernorm.weight", "layer_norm.weight"})
    if (lower.find(key) != std::string::npos) return true;
  return false;
}

/// Two groups, as Hugging Face builds them: {params with decay (the optimiser's weight_decay)},
/// {params where no_decay(name) is true, weight_decay = 0}. Order within each group is kept.
template <class T, DevicePolicy D, class Pred = bool (*)(std::string_view)>
std::vector<ParamGroup<T, D>> split_weight_decay(std::vector<ParamRef<T, D>> params, Pred no_decay = hf_no_decay) {
  std::vector<ParamGroup<T, D>> groups(2);
  groups[1].weight_decay = 0.0;
  for (auto& p : params) {
    const bool excluded = no_decay(std::string_view(p.name));
    groups[excluded ? 1 : 0].params.push_back(std::move(p));
  }
  return groups;
}

}  // namespace deepprompt
