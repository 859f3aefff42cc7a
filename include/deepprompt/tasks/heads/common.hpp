#pragma once
// What the task heads share (namespace deepprompt::tasks):
//   - BertBackbone: anything that turns (input_ids, attention_mask, token_type_ids, BertRun) into a
//     BertOutput<T>: a Bert (full fine-tuning), a PromptedBert (P-Tuning v2, Prompt Tuning, ...),
//     a LoraBert, or a plain callable with that signature;
//   - EncodedBatch and pad_encodings(): token ids of a batch padded to its longest row;
//   - the HeadOptions of every head, and what a head reads from its backbone (hidden size,
//     dropout, initializer range);
//   - PEFT's names for task heads (modules_to_save: `<base>.classifier.*`, `<base>.qa_outputs.*`,
//     with <base> "base_model." for prompt learning and "base_model.model." for LoRA; see
//     peft/peft_io.hpp) for saving and loading a head with its adapter.
//
// Naming (visit): a plain Bert backbone is visited as "bert" (BertForSequenceClassification's
// names: bert.encoder..., classifier.weight); a wrapper (PromptedBert: "bert", "prompt"; LoraBert:
// "bert") is visited through its own visit(); a callable has no parameters.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../io/safetensors.hpp"
#include "../../io/tokenizer.hpp"
#include "../../models/bert.hpp"
#include "../../nn/linear.hpp"
#include "../../nn/module.hpp"
#include "../../ops/concat.hpp"
#include "../../peft/deep_prompt_bert.hpp"
#include "../../peft/input_prompt_bert.hpp"
#include "../../peft/peft_io.hpp"

namespace deepprompt::tasks {

/// The inputs of a BERT backbone for one batch. input_ids (B, T); attention_mask (B, T) of 0/1 or
/// empty (all ones); token_type_ids (B, T) or empty (all 0).
struct EncodedBatch {
  Tensor<std::int64_t, 2> input_ids{}, attention_mask{}, token_type_ids{};  // (B, T) each
};

/// Settings shared by the heads. Unset values come from the backbone's configuration when it is
/// reachable (a Bert, or a wrapper with a `bert` member), else from HF's defaults.
struct HeadOptions {
  std::optional<double> dropout{};   // HF classifier_dropout; unset: hidden_dropout_prob (0.1)
  index_t hidden = 0;                // 0: the backbone's hidden size (required for callables)
  std::optional<double> init_std{};  // weight ~ Normal(0, init_std), bias 0; unset: initializer_range
  std::uint64_t seed = 0;            // of the head's weights; seed + 1: its dropout stream
};

namespace heads_detail {

template <class X>
struct bert_output_value {};
template <class T>
struct bert_output_value<BertOutput<T>> {
  using type = T;
};

template <class B>
concept has_forward = requires(B& b, const Tensor<std::int64_t, 2>& t, const BertRun& r) { b.forward(t, t, t, r); };
template <class B>
concept has_call = requires(B& b, const Tensor<std::int64_t, 2>& t, const BertRun& r) { b(t, t, t, r); };

/// b.forward(ids, mask, types, run), or b(ids, mask, types, run) for a callable.
template <class B>
  requires has_forward<B> || has_call<B>
auto run_backbone(B& b, const Tensor<std::int64_t, 2>& ids, const Tensor<std::int64_t, 2>& mask,
                  const Tensor<std::int64_t, 2>& types, const BertRun& run) {
  if constexpr (has_forward<B>)
    return b.forward(ids, mask, types, run);
  else
    return b(ids, mask, types, run);
}

template <class X>
struct is_bert : std::false_type {};
template <class Cfg, class T>
struct is_bert<Bert<Cfg, T>> : std::true_type {};

/// The Bert inside a backbone: the backbone itself, its `bert` member, or nullptr.
template <class B>
auto* underlying_bert(B& b) {
  if constexpr (is_bert<std::remove_cv_t<B>>::value)
    return &b;
  else if constexpr (requires { b.bert.cfg.hidden; })
    return &b.bert;
  else
    return static_cast<const void*>(nullptr);
}

}  // namespace heads_detail

/// A backbone the heads accept: forward(ids, mask, types, run) (or a call with those arguments)
/// returning BertOutput<T>.
template <class B>
concept BertBackbone = requires(B& b, const Tensor<std::int64_t, 2>& t, const BertRun& r) {
  typename heads_detail::bert_output_value<decltype(heads_detail::run_backbone(b, t, t, t, r))>::type;
};

/// The element type T of a backbone's BertOutput<T>.
template <BertBackbone B>
using backbone_value_t = typename heads_detail::bert_output_value<decltype(heads_detail::run_backbone(
    std::declval<B&>(), std::declval<const Tensor<std::int64_t, 2>&>(), std::declval<const Tensor<std::int64_t, 2>&>(),
    std::declval<const Tensor<std::int64_t, 2>&>(), std::declval<const BertRun&>()))>::type;

/// What a head reads from the backbone, with `o`'s values first.
struct ResolvedHeadOptions {
  index_t hidden = 0;
  double dropout = 0.1, init_std = 0.02;
};
template <class B>
ResolvedHeadOptions resolve_head_options(B& backbone, const HeadOptions& o, const char* who) {
  ResolvedHeadOptions r;
  const auto* bert = heads_detail::underlying_bert(backbone);
  if constexpr (!std::is_same_v<decltype(bert), const void*>) {
    r.hidden = bert->cfg.hidden;
    r.dropout = bert->cfg.hidden_dropout_prob;
    r.init_std = bert->cfg.initializer_range;
    if (o.hidden > 0 && o.hidden != r.hidden)
      throw ShapeError(detail::cat(who, ": HeadOptions::hidden = ", o.hidden, " but the backbone's hidden size is ",
                                   r.hidden));
  }
  if (o.hidden > 0) r.hidden = o.hidden;
  if (r.hidden <= 0)
    throw Error(detail::cat(who, ": the backbone's hidden size is unknown; set HeadOptions::hidden"));
  if (o.dropout) r.dropout = *o.dropout;
  if (o.init_std) r.init_std = *o.init_std;
  return r;
}

/// Visits a backbone's parameters under Hugging Face's names (see the top).
template <class B, class V>
void visit_backbone(B& backbone, V&& v) {
  if constexpr (heads_detail::is_bert<B>::value)
    v("bert", backbone);
  else if constexpr (requires { backbone.visit(v); })
    backbone.visit(v);
}

/// The last T rows of a backbone's hidden states: input-layer prompts (Prompt Tuning, P-Tuning)
/// put P virtual tokens in front, whose outputs the token-level heads drop.
/// hidden: (B, P + T, C) with P >= 0 -> (B, T, C). ShapeError when it has fewer than T rows.
template <class T>
Var<T, 3> real_token_rows(const Var<T, 3>& hidden, index_t tokens, const char* who) {
  const index_t rows = hidden.extent(1);
  if (rows == tokens) return hidden;
  if (rows < tokens)
    throw ShapeError(detail::cat(who, ": the backbone returned hidden states ", shape_str(hidden.shape()), " for ",
                                 tokens, " input tokens"));
  return slice(hidden, 1, rows - tokens, rows);
}

/// Checks that `t` is (B) (rank 1) or (B, T) (rank 2) for input_ids (B, T).
template <class X, std::size_t R>
void check_label_shape(const Tensor<X, R>& t, const Shape<2>& ids, const char* who, const char* what) {
  bool ok = t.extent(0) == ids[0];
  if constexpr (R == 2) ok = ok && t.extent(1) == ids[1];
  if (!ok || t.empty())
    check_shapes(false, who, detail::cat(what, R == 1 ? " must be (B) for input_ids (B, T)" : " must be (B, T) as input_ids"),
                 t.shape(), ids);
}

namespace heads_detail {
// pad_encodings over B rows, row b being row(b).
template <class Row>
EncodedBatch pad_rows(index_t B, Row row, std::int64_t pad_id) {
  if (B == 0) throw Error("pad_encodings: no encodings");
  std::size_t T = 1;
  for (index_t b = 0; b < B; ++b) T = std::max(T, row(b).size());
  const index_t L = static_cast<index_t>(T);
  EncodedBatch out{Tensor<std::int64_t, 2>::full({B, L}, pad_id), Tensor<std::int64_t, 2>::zeros({B, L}),
                   Tensor<std::int64_t, 2>::zeros({B, L})};
  for (index_t b = 0; b < B; ++b) {
    const Encoding& e = row(b);
    for (std::size_t t = 0; t < e.size(); ++t) {
      const index_t j = static_cast<index_t>(t);
      out.input_ids(b, j) = e.ids[t];
      out.attention_mask(b, j) = t < e.attention_mask.size() ? e.attention_mask[t] : 1;
      out.token_type_ids(b, j) = t < e.type_ids.size() ? e.type_ids[t] : 0;
    }
  }
  return out;
}
}  // namespace heads_detail

/// Pads the encodings (one per row) on the right to the longest: input_ids (pad_id), attention_mask
/// (0) and token_type_ids (0), each (B, T). Throws Error for an empty list.
inline EncodedBatch pad_encodings(std::span<const Encoding> rows, std::int64_t pad_id = 0) {
  return heads_detail::pad_rows(
      static_cast<index_t>(rows.size()), [&](index_t b) -> const Encoding& { return rows[static_cast<std::size_t>(b)]; },
      pad_id);
}

/// The same for the rows `pick` of `all` (a batch of a tokenised data set, without copying it).
inline EncodedBatch pad_encodings(std::span<const Encoding> all, std::span<const index_t> pick, std::int64_t pad_id) {
  return heads_detail::pad_rows(
      static_cast<index_t>(pick.size()),
      [&](index_t b) -> const Encoding& { return all[static_cast<std::size_t>(pick[static_cast<std::size_t>(b)])]; },
      pad_id);
}

/// The pad id of a tokenizer: [PAD], else <pad>, else 0.
inline std::int64_t pad_id_of(const Tokenizer& tok) {
  if (auto id = tok.token_to_id("[PAD]")) return *id;
  if (auto id = tok.token_to_id("<pad>")) return *id;
  return 0;
}

// --- PEFT files ---------------------------------------------------------------------------------

/// The entries of a head Linear under PEFT's modules_to_save names: <base><module>.weight / .bias,
/// <base> = peft_io::head_prefix(peft_type) ("base_model." or "base_model.model.").
template <class T>
std::vector<TensorEntry> peft_head_entries(const Linear<T>& head, std::string_view module, std::string_view peft_type) {
  const std::string p = peft_io::head_prefix(peft_type) + std::string(module) + ".";
  std::vector<TensorEntry> out{entry(p + "weight", head.weight.value())};
  if (head.bias) out.push_back(entry(p + "bias", head.bias->value()));
  return out;
}

/// The head Linear `module` stored in an adapter file (either base prefix, also the unstripped
/// "<module>.modules_to_save.default." spelling), or nullopt. Frozen unless `trainable`.
/// FormatError when its bias does not fit its weight.
template <class T>
std::optional<Linear<T>> load_peft_head(const SafeTensorsFile& file, std::string_view module, bool trainable = false) {
  const std::string m(module);
  for (const char* base : {"base_model.", "base_model.model."}) {
    for (const std::string& mid : {m + ".", m + ".modules_to_save.default."}) {
      const std::string w = base + mid + "weight", b = base + mid + "bias";
      if (!file.contains(w)) continue;
      Linear<T> head;
      head.weight = Parameter<T, 2>("weight", file.load<T, 2>(w), trainable);
      if (file.contains(b)) {
        head.bias.emplace("bias", file.load<T, 1>(b), trainable);
        if (head.bias->shape()[0] != head.weight.shape()[0])
          throw FormatError(detail::cat("adapter '", file.path().string(), "': ", b, " has shape ",
                                        shape_str(head.bias->shape()), " but ", w, " has ",
                                        shape_str(head.weight.shape())));
      }
      return head;
    }
  }
  return std::nullopt;
}

/// Replaces `linear` (a head's Linear) by the `module` stored in the adapter folder `dir`
/// (adapter_model.safetensors, see load_peft_head). FormatError when the file has no such head,
/// ShapeError naming `who` when its weight's shape is not `linear`'s.
template <class T>
void load_head_into(Linear<T>& linear, const std::filesystem::path& dir, std::string_view module, bool trainable,
                    std::string_view who) {
  const auto file = SafeTensorsFile::open(dir / "adapter_model.safetensors");
  auto h = load_peft_head<T>(file, module, trainable);
  if (!h) throw FormatError(detail::cat("adapter '", file.path().string(), "' has no ", module, " head"));
  check_shapes(h->weight.shape() == linear.weight.shape(), who,
               detail::cat("the stored ", module, " weight must have the model's shape"), h->weight.shape(),
               linear.weight.shape());
  linear = std::move(*h);
}

/// The PEFT type whose file the backbone writes, as far as it decides the head's base prefix:
/// the backbone's own peft_type() when it has one (BertMethod), "PREFIX_TUNING" for a
/// prompt-learning backbone (it has a `prompt`: PromptedBert), "LORA" otherwise (LoraBert).
template <class B>
std::string peft_family(const B& b) {
  if constexpr (requires { { b.peft_type() } -> std::convertible_to<std::string>; })
    return b.peft_type();
  else if constexpr (requires { b.prompt; })
    return "PREFIX_TUNING";
  else
    return "LORA";
}

/// Writes the backbone's PEFT adapter (its prompt's save_peft, or its own: LoraBert) with
/// `head_entries` added and `task_type` set. Error for a backbone with no PEFT files.
template <class B>
void save_backbone_peft(B& backbone, const std::filesystem::path& dir, PeftSaveOptions o,
                        std::vector<TensorEntry> head_entries, std::string task_type) {
  o.task_type = std::move(task_type);
  o.extra.insert(o.extra.end(), head_entries.begin(), head_entries.end());
  if constexpr (requires { backbone.prompt.save_peft(dir, o); })
    backbone.prompt.save_peft(dir, o);
  else if constexpr (requires { backbone.save_peft(dir, o); })
    backbone.save_peft(dir, o);
  else
    throw Error("save_peft: this backbone has no PEFT adapter (use a PromptedBert or a LoraBert)");
}

}  // namespace deepprompt::tasks
