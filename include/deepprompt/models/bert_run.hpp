#pragma once
// What `deepprompt-run` does for a BERT checkpoint, as a function (tests and other tools call
// it too):
//
//   run_bert(model_dir, "input.json", "out.safetensors");
//
// INPUT.json: {"input_ids": [[...], ...] (B, T), "attention_mask": (B, T) of 0/1 (optional:
// all ones), "token_type_ids": (B, T) (optional: all zeros)}. OUT.safetensors (F32):
// last_hidden_state (B, T, C) and pooler_output (B, C) (absent when the checkpoint has no
// pooler). Every fault (file, JSON, shape, id range) throws deepprompt::Error naming the file
// and the field.
//
// run_detail::int_matrix reads a rectangular integer matrix from such a JSON object; the T5
// runner can reuse it.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autodiff/tape.hpp"
#include "../io/file.hpp"
#include "../io/safetensors.hpp"
#include "bert.hpp"

namespace deepprompt {

namespace run_detail {

/// Parses an INPUT.json file into a JSON object (FormatError naming the file otherwise).
inline nlohmann::json read_input(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(detail::cat("input '", path.string(), "': invalid JSON: ", detail::printable(e.what())));
  }
  if (!j.is_object()) throw FormatError(detail::cat("input '", path.string(), "': expected a JSON object"));
  return j;
}

/// Throws FormatError naming the first key of `j` not in `allowed`.
inline void only_keys(const nlohmann::json& j, std::initializer_list<std::string_view> allowed, std::string_view source,
                      std::string_view model) {
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (auto a : allowed) ok = ok || a == k;
    if (!ok) throw FormatError(detail::cat("input '", source, "': unknown field \"", k, "\" for a ", model, " model"));
  }
}

/// j[key] as a (rows, cols) int64 matrix: a non-empty array of equally long, non-empty arrays of
/// integers. Absent (or null) and not required: an empty tensor.
inline Tensor<std::int64_t, 2> int_matrix(const nlohmann::json& j, std::string_view key, std::string_view source,
                                          bool required) {
  auto fail = [&](const std::string& what) -> void {
    throw FormatError(detail::cat("input '", source, "': field \"", key, "\": ", what));
  };
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) fail("missing (required)");
    return {};
  }
  const auto& m = *it;
  if (!m.is_array() || m.empty()) fail("expected a non-empty array of arrays of integers [B][T]");
  const std::size_t rows = m.size();
  if (!m[0].is_array() || m[0].empty()) fail("row 0 is not a non-empty array of integers");
  const std::size_t cols = m[0].size();
  Tensor<std::int64_t, 2> t({static_cast<index_t>(rows), static_cast<index_t>(cols)});
  for (std::size_t r = 0; r < rows; ++r) {
    if (!m[r].is_array()) fail(detail::cat("row ", r, " is not an array"));
    if (m[r].size() != cols) fail(detail::cat("row ", r, " has ", m[r].size(), " entries but row 0 has ", cols));
    for (std::size_t c = 0; c < cols; ++c) {
      const auto& v = m[r][c];
      if (!v.is_number_integer()) fail(detail::cat("[", r, "][", c, "] = ", v.dump(), " is not an integer"));
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        fail(detail::cat("[", r, "][", c, "] = ", v.dump(), " is out of range"));
      t(r, c) = v.get<std::int64_t>();
    }
  }
  return t;
}

/// requires lo <= every value < hi; FormatError naming the first offender otherwise.
inline void check_range(const Tensor<std::int64_t, 2>& t, std::int64_t lo, std::int64_t hi, std::string_view key,
                        std::string_view source, std::string_view what) {
  for (index_t r = 0; r < t.extent(0); ++r)
    for (index_t c = 0; c < t.extent(1); ++c)
      if (t(r, c) < lo || t(r, c) >= hi)
        throw FormatError(detail::cat("input '", source, "': field \"", key, "\": [", r, "][", c, "] = ", t(r, c),
                                      " is not in [", lo, ", ", hi, ") (", what, ")"));
}

inline void check_same_shape(const Tensor<std::int64_t, 2>& t, const Tensor<std::int64_t, 2>& ids, std::string_view key,
                             std::string_view source) {
  if (!t.empty() && t.shape() != ids.shape())
    throw FormatError(detail::cat("input '", source, "': field \"", key, "\" has shape ", shape_str(t.shape()),
                                  " but input_ids has ", shape_str(ids.shape())));
}

}  // namespace run_detail

/// The inputs of a BERT run: input_ids (B, T), attention_mask and token_type_ids ((B, T) or empty).
struct BertRunInputs {
  Tensor<std::int64_t, 2> ids, mask, types;
};

/// Reads INPUT.json (see the top); FormatError naming the file and the field.
inline BertRunInputs read_bert_inputs(const std::filesystem::path& input_json) {
  namespace rd = run_detail;
  const auto j = rd::read_input(input_json);
  const std::string src = input_json.string();
  rd::only_keys(j, {"input_ids", "attention_mask", "token_type_ids"}, src, "bert");
  BertRunInputs in{rd::int_matrix(j, "input_ids", src, true), rd::int_matrix(j, "attention_mask", src, false),
                   rd::int_matrix(j, "token_type_ids", src, false)};
  rd::check_same_shape(in.mask, in.ids, "attention_mask", src);
  rd::check_same_shape(in.types, in.ids, "token_type_ids", src);
  return in;
}

/// Checks the inputs' values against the model (id ranges, 0/1 masks, sequence length);
/// FormatError naming the file and the field.
template <class Cfg, class T>
void check_bert_inputs(const BertRunInputs& in, const Bert<Cfg, T>& model, const std::filesystem::path& input_json) {
  namespace rd = run_detail;
  const std::string src = input_json.string();
  rd::check_range(in.ids, 0, model.cfg.vocab, "input_ids", src, "vocab_size");
  if (!in.mask.empty()) rd::check_range(in.mask, 0, 2, "attention_mask", src, "0 or 1");
  if (!in.types.empty()) rd::check_range(in.types, 0, model.cfg.type_vocab, "token_type_ids", src, "type_vocab_size");
  if (in.ids.extent(1) > model.cfg.max_positions)
    throw FormatError(detail::cat("input '", src, "': field \"input_ids\": ", in.ids.extent(1),
                                  " tokens per row, more than max_position_embeddings = ", model.cfg.max_positions));
}

/// Runs the BERT checkpoint in `model_dir` on `input_json` and writes `out` (see the top).
inline void run_bert(const std::filesystem::path& model_dir, const std::filesystem::path& input_json,
                     const std::filesystem::path& out) {
  const BertRunInputs in = read_bert_inputs(input_json);
  auto model = DynamicBert<float>::from_pretrained(model_dir);
  check_bert_inputs(in, model, input_json);

  NoGradGuard no_grad;
  const auto o = model.forward(in.ids, in.mask, in.types);
  std::vector<TensorEntry> entries{entry("last_hidden_state", o.last_hidden_state.value())};
  if (model.pooler) entries.push_back(entry("pooler_output", o.pooler_output.value()));
  save_safetensors(out, entries);
}

}  // namespace deepprompt
