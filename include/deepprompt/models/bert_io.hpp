#pragma once
// Bert's checkpoint I/O on the host (models/bert.hpp calls these; a model on a device goes
// through a host copy): reading a Hugging Face safetensors file by the model's parameter names,
// the Hugging Face state dict, and writing it.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../io/safetensors.hpp"
#include "../nn/module.hpp"
#include "bert_config.hpp"

namespace deepprompt::bert_detail {

/// True for the tensors of adapters attached to Linear modules (LoRA's lora_A / lora_B).
inline bool is_adapter_name(std::string_view name) {
  return name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight");
}

/// Whether a checkpoint names the backbone's tensors with a `bert.` prefix (task checkpoints).
inline bool uses_bert_prefix(const SafeTensorsFile& file) {
  if (file.contains("bert.embeddings.word_embeddings.weight")) return true;
  if (file.contains("embeddings.word_embeddings.weight")) return false;
  for (const auto& n : file.names())
    if (n.rfind("bert.", 0) == 0) return true;
  return false;
}

/// Bert::load_weights on the host (documented there).
template <class M>
void load_weights(M& model, const SafeTensorsFile& file, bool strict, std::vector<std::string>* ignored) {
  using T = typename M::value_type;
  const bool prefixed = uses_bert_prefix(file);
  StateDict<T> shapes;                        // model name -> the file's shape (no data)
  std::map<std::string, std::string> source;  // model name -> the file's name
  const bool has_cls_bias = file.contains("cls.predictions.bias");
  for (const std::string& n : file.names()) {
    std::string m = n;
    bool ignore = false;
    if (n.rfind("cls.", 0) == 0) {
      if (!model.cls || n.rfind("cls.predictions.", 0) != 0 || n == "cls.predictions.decoder.weight")
        ignore = true;
      else if (n == "cls.predictions.decoder.bias")
        ignore = has_cls_bias, m = "cls.predictions.bias";  // the same tensor, tied
    } else if (prefixed) {
      if (n.rfind("bert.", 0) == 0)
        m = n.substr(5);
      else
        ignore = true;  // a task head: classifier.*, qa_outputs.* ...
    }
    if (m == "embeddings.position_ids" || m == "embeddings.token_type_ids") ignore = true;
    if (ignore) {
      if (ignored) ignored->push_back(n);
      continue;
    }
    const auto& info = file.info(n);
    shapes.emplace(m, AnyTensor<T>{info.shape, Tensor<T, 1>()});
    source.emplace(m, n);
  }
  for_each_parameter(model, [&](const std::string& name, auto& p) {  // adapters are not in the file
    if (is_adapter_name(name))
      shapes.emplace(name, AnyTensor<T>{std::vector<index_t>(p.shape().begin(), p.shape().end()), Tensor<T, 1>()});
  });
  try {
    load_state_dict(model, shapes, strict);  // validates; copies nothing (no data)
  } catch (const Error& e) {
    const std::string_view msg = e.what();
    const auto at = msg.find("the model:");
    throw Error(detail::cat("Bert: '", file.path().string(), "' does not fit the model",
                            bert_shape_note<typename M::config_type>(), ":",
                            at == std::string_view::npos ? msg : msg.substr(at + 10)));
  }
  for_each_parameter(model, [&](const std::string& name, auto& p) {
    auto it = source.find(name);
    if (it == source.end()) return;
    const auto& info = file.info(it->second);
    if (!std::equal(info.shape.begin(), info.shape.end(), p.shape().begin(), p.shape().end())) return;
    file.load_into(it->second, p.value());
  });
}

/// Bert::hf_state_dict on the host.
template <class M>
StateDict<typename M::value_type> hf_state_dict(M& model) {
  using T = typename M::value_type;
  StateDict<T> sd;
  const std::string prefix = model.cls ? "bert." : "";
  for_each_parameter(model, [&](const std::string& name, auto& p) {
    if (is_adapter_name(name)) return;
    sd.emplace(name.rfind("cls.", 0) == 0 ? name : prefix + name, AnyTensor<T>::of(p.value()));
  });
  return sd;
}

/// Bert::save on the host.
template <class M>
void save(M& model, const std::filesystem::path& file) {
  std::vector<TensorEntry> entries;
  const std::string prefix = model.cls ? "bert." : "";
  for_each_parameter(model, [&](const std::string& name, auto& p) {
    if (is_adapter_name(name)) return;
    entries.push_back(entry(name.rfind("cls.", 0) == 0 ? name : prefix + name, p.value()));
  });
  save_safetensors(file, entries, {{"format", "pt"}});
}

}  // namespace deepprompt::bert_detail
