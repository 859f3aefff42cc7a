#pragma once
// run_t5: the T5 part of the `deepprompt-run` parity tool.
//
//   run_t5(model_dir, input, out_path, generate_n, beams)
//
// model_dir: a Hugging Face checkpoint folder (config.json with model_type "t5"/"mt5",
//   model.safetensors). input: a JSON object of integer arrays
//     input_ids [B, Ts] (required), attention_mask [B, Ts] (optional, default all ones),
//     decoder_input_ids [B, S] (optional), labels [B, S] (optional, -100 = ignored).
//   Decoder inputs are decoder_input_ids, else the labels shifted right (as Hugging Face), else
//   one decoder start token per row (logits [B, 1, V]).
// out_path: a safetensors file with F32 `logits` [B, S, V] and `encoder_last_hidden_state`
//   [B, Ts, d_model], `loss` [1] when labels are given, and I64 `generated` [B, <= N + 1] (the
//   decoder start token first) when generate_n = N > 0: beam search with `beams` beams when
//   beams > 1 (length_penalty 1, early_stopping False: Hugging Face's defaults), else greedy.
// Returns 0. Bad input throws deepprompt::Error (or IoError / FormatError) with a one-line message.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/safetensors.hpp"
#include "t5.hpp"
#include "t5_generate.hpp"

namespace deepprompt {

namespace detail {

// input[field] as a (B, T) int64 tensor; empty when absent (or null) and not required.
inline Tensor<std::int64_t, 2> t5_run_matrix(const nlohmann::json& input, const char* field, bool required) {
  const auto it = input.find(field);
  if (it == input.end() || it->is_null()) {
    if (required) throw Error(detail::cat("input: \"", field, "\" is missing (a [B, T] array of integer arrays)"));
    return {};
  }
  const auto& rows = *it;
  auto bad = [&](const std::string& why) -> Error {
    return Error(detail::cat("input: \"", field, "\" must be a non-empty [B, T] array of integer arrays: ", why));
  };
  if (!rows.is_array() || rows.empty()) throw bad("got " + std::string(rows.type_name()) + (rows.is_array() ? " (empty)" : ""));
  const auto B = static_cast<index_t>(rows.size());
  if (!rows[0].is_array() || rows[0].empty()) throw bad("row 0 is not a non-empty array");
  const auto T = static_cast<index_t>(rows[0].size());
  Tensor<std::int64_t, 2> out({B, T});
  for (index_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<std::size_t>(b)];
    if (!r.is_array() || static_cast<index_t>(r.size()) != T)
      throw bad(detail::cat("row ", b, " has ", r.is_array() ? std::to_string(r.size()) : std::string("no"),
                            " entries, row 0 has ", T));
    for (index_t t = 0; t < T; ++t) {
      const auto& v = r[static_cast<std::size_t>(t)];
      if (!v.is_number_integer()) throw bad(detail::cat("entry [", b, "][", t, "] is ", v.dump(), ", not an integer"));
      out(b, t) = v.get<std::int64_t>();
    }
  }
  return out;
}

}  // namespace detail

inline int run_t5(const std::string& model_dir, const nlohmann::json& input, const std::string& out_path,
                  int generate_n, int beams) {
  if (!input.is_object()) throw Error("input: expected a JSON object with \"input_ids\" (got " + std::string(input.type_name()) + ")");
  if (generate_n < 0) throw Error(detail::cat("--generate N needs N >= 0, got ", generate_n));
  if (beams < 1) throw Error(detail::cat("--beams K needs K >= 1, got ", beams));
  T5Batch batch;
  batch.input_ids = detail::t5_run_matrix(input, "input_ids", true);
  batch.attention_mask = detail::t5_run_matrix(input, "attention_mask", false);
  batch.decoder_input_ids = detail::t5_run_matrix(input, "decoder_input_ids", false);
  batch.labels = detail::t5_run_matrix(input, "labels", false);
  const index_t B = batch.input_ids.extent(0);
  auto same_shape = [](const char* a, const Tensor<std::int64_t, 2>& x, const char* b, const Tensor<std::int64_t, 2>& y) {
    if (!x.empty() && !y.empty() && x.shape() != y.shape())
      throw Error(detail::cat("input: \"", a, "\" has shape ", shape_str(x.shape()), " but \"", b, "\" has shape ",
                              shape_str(y.shape())));
  };
  same_shape("attention_mask", batch.attention_mask, "input_ids", batch.input_ids);
  same_shape("labels", batch.labels, "decoder_input_ids", batch.decoder_input_ids);
  for (const auto* t : {&batch.decoder_input_ids, &batch.labels})
    if (!t->empty() && t->extent(0) != B)
      throw Error(detail::cat("input: the decoder inputs have ", t->extent(0), " rows but input_ids has ", B));
  for (index_t i = 0; i < batch.attention_mask.size(); ++i)
    if (batch.attention_mask.data()[i] != 0 && batch.attention_mask.data()[i] != 1)
      throw Error(detail::cat("input: \"attention_mask\" must hold 0 or 1, got ", batch.attention_mask.data()[i]));

  auto model = DynamicT5<float>::from_pretrained(model_dir);
  const auto& d = model.dims();
  auto check_range = [&](const char* field, const Tensor<std::int64_t, 2>& t, bool labels) {
    for (index_t i = 0; i < t.size(); ++i) {
      const auto v = t.data()[i];
      if ((v < 0 || v >= d.vocab_size) && !(labels && v == -100))
        throw Error(detail::cat("input: \"", field, "\" holds ", v, ", outside the vocabulary [0, ", d.vocab_size, ")",
                                labels ? " (and not -100)" : ""));
    }
  };
  check_range("input_ids", batch.input_ids, false);
  check_range("decoder_input_ids", batch.decoder_input_ids, false);
  check_range("labels", batch.labels, true);
  if (batch.decoder_input_ids.empty() && batch.labels.empty())
    batch.decoder_input_ids = Tensor<std::int64_t, 2>::full({B, 1}, d.decoder_start_token_id);

  std::vector<TensorEntry> out;
  {
    NoGradGuard no_grad;
    auto r = model.forward(batch);
    out.push_back(entry("logits", r.logits.value()));
    out.push_back(entry("encoder_last_hidden_state", r.encoder_last_hidden_state.value()));
    if (r.loss) out.push_back(entry("loss", r.loss->value().template reshape<1>({1})));
  }
  if (generate_n > 0) {
    T5GenerateOptions opt;
    opt.max_new_tokens = generate_n;
    opt.num_beams = beams;
    out.push_back(entry("generated", generate(model, batch.input_ids, batch.attention_mask, opt)));
  }
  save_safetensors(out_path, out);
  return 0;
}

}  // namespace deepprompt
