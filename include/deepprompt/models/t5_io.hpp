#pragma once
// T5's checkpoint I/O on the host (models/t5.hpp calls these; a model on a device goes through a
// host copy): reading a Hugging Face safetensors file by the model's parameter names, with the
// aliases of the shared embedding, and writing config.json + model.safetensors.
#include <algorithm>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/file.hpp"
#include "../io/safetensors.hpp"
#include "../nn/module.hpp"
#include "t5_config.hpp"

namespace deepprompt::t5 {

/// T5::load_safetensors on the host: `model`'s parameters from `path` (its shared.weight also
/// found as encoder/decoder.embed_tokens.weight, and as lm_head.weight when `dims.tied`).
template <class M>
LoadReport load_safetensors(M& model, const T5Dims& dims, const std::filesystem::path& path, bool strict) {
  const auto f = SafeTensorsFile::open(path);
  LoadReport rep;
  std::set<std::string, std::less<>> used;
  auto source = [&](const std::string& name) -> std::string {
    if (f.contains(name)) return name;
    if (name == "shared.weight")
      for (const char* alias : {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"})
        if ((dims.tied || std::string_view(alias) != "lm_head.weight") && f.contains(alias)) return alias;
    return {};
  };
  for_each_parameter(model, [&](const std::string& name, auto& p) {
    const std::string src = source(name);
    if (src.empty()) return rep.missing.push_back(name);
    used.insert(src);
    const auto& shape = f.info(src).shape;
    if (!std::equal(shape.begin(), shape.end(), p.shape().begin(), p.shape().end()))
      rep.mismatched.push_back(detail::cat(src, " ", shape_str(shape), " vs ", shape_str(p.shape())));
  });
  for (const auto& name : f.names()) {
    if (used.contains(name)) continue;
    const bool alias = name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight" ||
                       (dims.tied && name == "lm_head.weight") ||
                       name == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";
    if (!alias) rep.unexpected.push_back(name);
  }
  if (strict && !rep.ok())
    throw Error(detail::cat("T5: the checkpoint '", path.string(), "' does not fit the model:", rep.str()));
  for_each_parameter(model, [&](const std::string& name, auto& p) {
    const std::string src = source(name);
    if (src.empty()) return;
    const auto& shape = f.info(src).shape;
    if (std::equal(shape.begin(), shape.end(), p.shape().begin(), p.shape().end())) f.load_into(src, p.value());
  });
  return rep;
}

/// T5::save_pretrained on the host: `config` as config.json, the parameters as model.safetensors
/// (with the shared embedding's aliases when asked).
template <class M, class T>
void save_pretrained(M& model, const Parameter<T, 2>& shared, const nlohmann::json& config, bool tied,
                     const std::filesystem::path& dir, bool with_tied_aliases) {
  std::filesystem::create_directories(dir);
  const std::string cfg = config.dump(2) + "\n";
  write_file_atomic(dir / "config.json", std::as_bytes(std::span(cfg.data(), cfg.size())));
  std::vector<TensorEntry> entries;
  for_each_parameter(model, [&](const std::string& name, auto& p) { entries.push_back(entry(name, p.value())); });
  if (with_tied_aliases) {
    entries.push_back(entry("encoder.embed_tokens.weight", shared.value()));
    entries.push_back(entry("decoder.embed_tokens.weight", shared.value()));
    if (tied) entries.push_back(entry("lm_head.weight", shared.value()));
  }
  save_safetensors(dir / "model.safetensors", entries, {{"format", "pt"}});
}

}  // namespace deepprompt::t5
