#pragma once
// WebnlgRunner: data-to-text on WebNLG with T5 for train::Trainer: a T5Method (P-Tuning v2 or
// full fine-tuning), the training pairs tokenised once, teacher-forced training (labels as in
// tasks/heads/seq2seq.hpp: padding -> -100), generation scored with corpus BLEU and ROUGE-L.
//
// Data folder (read_webnlg_task): train/ and dev/, each holding WebNLG XML at any depth (as
// v1.6_en/{train,dev}/{1..7}triples/*.xml; data/webnlg.hpp reads them).
//   training pairs   one per lexicalisation with a text: source = linearised modified triples
//                    (data::linearize, readable), target = the text;
//   evaluation       one item per distinct source of dev (entries with the same linearised
//                    triples are merged), its references = all its non-empty texts; an entry
//                    without any text is skipped and counted in eval_stats ("no reference").
// evaluate() -> {"bleu": sacreBLEU corpus score (0..100), "rouge_l": mean ROUGE-L F-measure x 100
// (0..100, as HF's run_summarization reports it)}; generation is greedy by default.
//
// T5Method (the T5 counterpart of peft/bert_method.hpp): methods ptv2 (a T5DeepPrompt on encoder
// self-, decoder self- and cross-attention, `tokens` each; the T5 frozen) and full (every T5
// weight trainable); the others throw Error("method X is not available for T5 (ptv2, full)").
// Files written by save(dir):
//   full   config.json + model.safetensors (T5::save_pretrained); load() reads the folder back.
//   ptv2   adapter_config.json + adapter_model.safetensors. PEFT's seq2seq prefix tuning has no
//          encoder prefix and shares one prefix between decoder self- and cross-attention, so no
//          PEFT layout holds our three prompts exactly; the file uses PEFT's PREFIX_TUNING config
//          fields (peft_type "PREFIX_TUNING", task_type "SEQ_2_SEQ_LM", num_virtual_tokens,
//          token_dim = num_heads * d_kv, num_attention_heads, num_layers = encoder layers,
//          num_transformer_submodules 2, prefix_projection false) plus our own
//          "num_decoder_layers" and "deepprompt_t5_parts" (e.g. ["encoder", "decoder", "cross"]),
//          and one tensor per part named "<part>.prompt_embeddings", (num_virtual_tokens,
//          layers * 2 * token_dim) in DeepPrompt's row layout (layer, key/value, head, head_dim).
//          PEFT itself will not load it (it looks for "prompt_embeddings"); load() does.
#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../../autodiff/tape.hpp"
#include "../../io/unigram.hpp"
#include "../../peft/bert_method.hpp"  // Method, MethodOptions
#include "../../peft/peft_io.hpp"
#include "../../train/trainer.hpp"
#include "../data/webnlg.hpp"
#include "../heads/seq2seq.hpp"
#include "../metrics/bleu.hpp"
#include "../metrics/rouge.hpp"
#include "common.hpp"

namespace deepprompt::tasks {

/// The T5 tokenizer of a Hugging Face model folder: tokenizer.json through io/unigram.hpp.
/// IoError without it.
inline std::unique_ptr<Tokenizer> load_t5_tokenizer(const std::filesystem::path& dir) {
  const auto file = dir / "tokenizer.json";
  if (!std::filesystem::exists(file))
    throw IoError(detail::cat("load_t5_tokenizer: '", dir.string(),
                              "' has no tokenizer.json (spiece.model alone is not read here)"));
  return std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_tokenizer_json(file.string()));
}

// --- data ---------------------------------------------------------------------------------------

struct Seq2SeqPair {
  std::string source, target;
};
struct Seq2SeqReference {
  std::string source;
  std::vector<std::string> references;  // at least one, none empty
};
struct WebnlgSplits {
  std::vector<Seq2SeqPair> train;       // one per lexicalisation with a text
  std::vector<Seq2SeqReference> eval;   // one per distinct dev source
  data::ReadStats train_stats, eval_stats;  // the readers' counts; eval: "no reference" skips
};

/// Reads dir/train (unless !need_train) and dir/dev (see the top). IoError naming the missing
/// folder; FormatError from the XML reader naming file and line.
inline WebnlgSplits read_webnlg_task(const std::filesystem::path& dir, bool need_train = true,
                                     const data::LinearizeOptions& lin = {}) {
  auto need = [&](const char* name) {
    const auto p = dir / name;
    if (!std::filesystem::is_directory(p))
      throw IoError(detail::cat("task webnlg: '", p.string(),
                                "' is not a folder (--data should hold train/ and dev/ with WebNLG XML)"));
    return p;
  };
  WebnlgSplits s;
  if (need_train) {
    const auto ds = data::read_webnlg_dir(need("train"));
    s.train_stats = ds.stats;
    for (auto& p : data::webnlg_pairs(ds, lin)) s.train.push_back({std::move(p.source), std::move(p.target)});
  }
  const auto dev = data::read_webnlg_dir(need("dev"));
  s.eval_stats = dev.stats;
  std::map<std::string, std::size_t> index;  // source -> position in s.eval
  for (const auto& e : dev.examples) {
    std::vector<std::string> refs;
    for (const auto& l : e.lexes)
      if (!l.text.empty()) refs.push_back(l.text);
    if (refs.empty()) s.eval_stats.skip("no reference", detail::cat(e.file, ":", e.line, ": entry ", e.eid, " has no text"));
    if (refs.empty()) continue;
    std::string src = data::linearize(e.modified, lin);
    if (auto it = index.find(src); it != index.end()) {
      auto& r = s.eval[it->second].references;
      r.insert(r.end(), refs.begin(), refs.end());
      s.eval_stats.warn("same triples merged", detail::cat(e.file, ":", e.line, ": entry ", e.eid,
                                                           " repeats the triples of an earlier entry"));
      continue;
    }
    index.emplace(src, s.eval.size());
    s.eval.push_back({std::move(src), std::move(refs)});
  }
  return s;
}

// --- the method ---------------------------------------------------------------------------------

namespace seq2seq_detail {
inline std::string method_name(Method m) {  // the name method_from_name() maps to m
  const std::string_view all = kMethodNames;
  for (std::size_t b = 0, e = 0; b <= all.size(); b = e + 1) {
    e = std::min(all.find('|', b), all.size());
    if (method_from_name(all.substr(b, e - b)) == m) return std::string(all.substr(b, e - b));
  }
  return "?";
}
inline constexpr std::array<std::string_view, 3> kParts{"encoder", "decoder", "cross"};
}  // namespace seq2seq_detail

/// A T5 (run-time sizes) with its method: ptv2 (prompt trainable, T5 frozen) or full.
class T5Method {
 public:
  using value_type = float;
  using Model = DynamicT5<float>;
  using Prompt = DynamicT5DeepPrompt<float>;

  Model t5;
  std::optional<Prompt> prompt;  // ptv2 only

  /// ptv2: new prompts of o.tokens rows on the three attention kinds (seeds o.seed, +1, +2;
  /// o.prefix_dropout), the T5 frozen; full: every T5 parameter trainable. Error otherwise.
  static T5Method create(Model t5, Method m, const MethodOptions& o = {}) {
    if (m != Method::ptv2 && m != Method::full)
      throw Error(detail::cat("method ", seq2seq_detail::method_name(m), " is not available for T5 (ptv2, full)"));
    T5Method r(std::move(t5), m);
    if (m == Method::full) {
      unfreeze(r.t5);
      return r;
    }
    if (o.tokens < 1) throw Error(detail::cat("T5Method: --tokens must be >= 1, got ", o.tokens));
    const T5Dims& d = r.t5.dims();
    auto part = [&](index_t layers, std::uint64_t k) {
      return Prompt::Part(PromptSizes{layers, o.tokens, d.inner()},
                          DeepPromptOptions{.seed = o.seed + k, .prefix_dropout = o.prefix_dropout});
    };
    r.prompt.emplace(part(d.num_layers, 0), part(d.num_decoder_layers, 1), part(d.num_decoder_layers, 2));
    attach(r.t5, *r.prompt);
    return r;
  }

  /// What save() wrote, every parameter frozen: a folder with adapter_config.json is a ptv2
  /// adapter for `t5`; one with config.json and model.safetensors only is a fully fine-tuned T5
  /// (it replaces `t5`). IoError / FormatError naming the file and field.
  static T5Method load(Model t5, const std::filesystem::path& dir);

  Method method() const { return method_; }

  /// T5::forward (train mode = `training`) with the prompt's prefixes; `gen`: the prefix
  /// dropout's stream (nullptr: each part's own).
  T5Output<float> forward(const T5Batch& b, bool training = false, Generator* gen = nullptr) {
    t5.train(training);
    if (!prompt) return t5.forward(b);
    return forward_with_prompt(t5, *prompt, b, gen);
  }

  /// Generated ids (B, L), decoder start token first, in eval mode (the mode is restored).
  Tensor<std::int64_t, 2> generate(const Tensor<std::int64_t, 2>& ids, const Tensor<std::int64_t, 2>& mask,
                                   const T5GenerateOptions& g = {}) {
    const bool was = t5.training();
    t5.eval();
    Tensor<std::int64_t, 2> out;
    if (prompt) {
      const T5Prefix<float> p = prompt->freeze_constants();
      out = deepprompt::generate(t5, ids, mask, g, &p);
    } else {
      out = deepprompt::generate(t5, ids, mask, g);
    }
    t5.train(was);
    return out;
  }

  /// Writes the files of the top into `dir` (created).
  void save(const std::filesystem::path& dir, const std::string& base_model_name_or_path = {}) {
    if (!prompt) return t5.save_pretrained(dir);
    std::vector<TensorEntry> entries;
    std::vector<Tensor<float, 2>> rows;  // kept alive until written
    nlohmann::json parts = nlohmann::json::array();
    NoGradGuard no_grad;
    const std::pair<const char*, std::optional<Prompt::Part>*> all[] = {
        {"encoder", &prompt->encoder}, {"decoder", &prompt->decoder}, {"cross", &prompt->cross}};
    for (auto [name, part] : all)
      if (*part) rows.push_back((*part)->rows().value()), parts.push_back(name);
    for (std::size_t i = 0; i < rows.size(); ++i)
      entries.push_back(entry(parts[i].get<std::string>() + ".prompt_embeddings", rows[i]));
    const T5Dims& d = t5.dims();
    nlohmann::json j = peft_io::common_config("PREFIX_TUNING", "SEQ_2_SEQ_LM", base_model_name_or_path);
    j["deepprompt_t5_parts"] = parts;
    j["encoder_hidden_size"] = d.inner();
    j["num_attention_heads"] = d.num_heads;
    j["num_decoder_layers"] = d.num_decoder_layers;
    j["num_layers"] = d.num_layers;
    j["num_transformer_submodules"] = 2;
    j["num_virtual_tokens"] = tokens();
    j["prefix_projection"] = false;
    j["token_dim"] = d.inner();
    peft_io::write_adapter(dir, entries, j);
  }

  /// Prompt rows per part (0 for full).
  index_t tokens() const {
    if (prompt)
      for (const auto* p : {&prompt->encoder, &prompt->decoder, &prompt->cross})
        if (*p) return (*p)->tokens();
    return 0;
  }

  /// T5's Hugging Face names (shared.weight, encoder.block.0...), then prompt.encoder... .
  template <class V>
  void visit(V&& v) {
    t5.visit(v);
    v("prompt", prompt);
  }
  std::vector<ParamRef<float>> trainable_parameters() { return deepprompt::trainable_parameters<float>(*this); }

 private:
  T5Method(Model m, Method method) : t5(std::move(m)), method_(method) { freeze(t5); }

  Method method_;
};

inline T5Method T5Method::load(Model t5, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (!fs::exists(dir / "adapter_config.json") && fs::exists(dir / "config.json") &&
      fs::exists(dir / "model.safetensors"))
    return T5Method(Model::from_pretrained(dir), Method::full);
  const auto cfg = peft_io::AdapterConfig::read(dir, "T5Method::load");
  cfg.require_type("PREFIX_TUNING", "T5Method::load");
  if (!cfg.has("deepprompt_t5_parts"))
    cfg.fail("deepprompt_t5_parts",
             "is missing: not a T5 prompt written by T5Method::save (PEFT's own seq2seq prefix layout is not read)");
  const auto& list = cfg.field("deepprompt_t5_parts");
  if (!list.is_array() || list.empty()) cfg.fail("deepprompt_t5_parts", "must be a non-empty list of part names");
  const T5Dims& d = t5.dims();
  const index_t N = cfg.positive("num_virtual_tokens"), C = cfg.positive("token_dim"),
                H = cfg.positive("num_attention_heads"), Le = cfg.positive("num_layers"),
                Ld = cfg.positive("num_decoder_layers");
  auto expect = [&](const char* field, index_t file, index_t model, const char* what) {
    if (file != model) cfg.fail(field, detail::cat("is ", file, " but the T5 has ", model, " ", what));
  };
  expect("token_dim", C, d.inner(), "as num_heads * d_kv");
  expect("num_attention_heads", H, d.num_heads, "heads");
  expect("num_layers", Le, d.num_layers, "encoder layers");
  expect("num_decoder_layers", Ld, d.num_decoder_layers, "decoder layers");
  const auto file = SafeTensorsFile::open(cfg.weights_path);
  T5Method r(std::move(t5), Method::ptv2);
  std::optional<Prompt::Part> parts[3];
  for (const auto& name : list) {
    const auto& all = seq2seq_detail::kParts;
    const auto* it = name.is_string() ? std::find(all.begin(), all.end(), name.get<std::string>()) : all.end();
    if (it == all.end())
      cfg.fail("deepprompt_t5_parts", detail::cat("holds ", name.dump(), "; parts are encoder, decoder and cross"));
    const auto k = static_cast<std::size_t>(it - all.begin());
    const index_t layers = k == 0 ? Le : Ld;
    const std::string tensor = name.get<std::string>() + ".prompt_embeddings";
    if (!file.contains(tensor))
      throw FormatError(detail::cat("adapter '", cfg.weights_path.string(), "': no tensor \"", tensor, "\""));
    const std::vector<index_t> want{N, layers * 2 * C};
    if (file.info(tensor).shape != want)
      throw FormatError(detail::cat("adapter '", cfg.weights_path.string(), "': ", tensor, " has shape ",
                                    shape_str(file.info(tensor).shape), ", but the config says ", shape_str(want),
                                    " (num_virtual_tokens, layers * 2 * token_dim)"));
    parts[k].emplace(PromptSizes{layers, N, C}, DeepPromptOptions{.heads = H, .init = PromptInit::zeros});
    file.load_into(tensor, parts[k]->prompt_embeddings->value());
  }
  r.prompt.emplace(std::move(parts[0]), std::move(parts[1]), std::move(parts[2]));
  attach(r.t5, *r.prompt);
  freeze(r);
  return r;
}

// --- the runner ---------------------------------------------------------------------------------

struct Seq2SeqOptions {
  index_t max_target_length = 128;  // target tokens, </s> included (longer: truncated)
  index_t max_new_tokens = 128;     // generation (evaluate, predict)
  index_t num_beams = 1;            // 1: greedy
  std::string source_prefix{};      // put before every source, e.g. "translate Graph to English: "
};

class WebnlgRunner {
 public:
  T5Method model;

  /// `tok` must outlive the runner. o.max_length bounds the source tokens; o.seed + 7 seeds the
  /// dropout stream (T5's and the prompt's). Error when a training pair tokenises to nothing.
  WebnlgRunner(T5Method method, const Tokenizer& tok, WebnlgSplits data, const RunnerOptions& o = {},
               const Seq2SeqOptions& so = {})
      : model(std::move(method)), tok_(&tok), opt_(o), so_(so), eval_(std::move(data.eval)) {
    pad_ = pad_id_of(tok);
    model.t5.generator().set_state(o.seed + 7, 0);
    for (const auto& p : data.train) {
      src_.push_back(tok.encode(so_.source_prefix + p.source, {.max_length = static_cast<std::size_t>(opt_.max_length)}));
      tgt_.push_back(tok.encode(p.target, {.max_length = static_cast<std::size_t>(so_.max_target_length)}).ids);
      if (src_.back().ids.empty() || tgt_.back().empty())
        throw Error(detail::cat("WebnlgRunner: the training pair (\"", p.source, "\", \"", p.target,
                                "\") has no tokens"));
    }
  }

  // --- train::TrainTask ---
  index_t train_size() const { return static_cast<index_t>(src_.size()); }
  std::vector<index_t> train_lengths() const {  // source + target tokens
    std::vector<index_t> l;
    for (std::size_t i = 0; i < src_.size(); ++i) l.push_back(static_cast<index_t>(src_[i].size() + tgt_[i].size()));
    return l;
  }
  /// Teacher-forced mean cross-entropy over the target tokens of the batch.
  Var<float, 0> loss(std::span<const index_t> batch) {
    std::size_t S = 1;
    for (index_t i : batch) S = std::max(S, tgt_.at(static_cast<std::size_t>(i)).size());
    const EncodedBatch e = pad_encodings(src_, batch, pad_);
    const auto B = static_cast<index_t>(batch.size());
    auto labels = Tensor<std::int64_t, 2>::full({B, static_cast<index_t>(S)}, -100);  // (B, S)
    for (index_t b = 0; b < B; ++b) {
      const auto& ids = tgt_[static_cast<std::size_t>(batch[static_cast<std::size_t>(b)])];
      for (std::size_t t = 0; t < ids.size(); ++t) labels(b, static_cast<index_t>(t)) = ids[t] == pad_ ? -100 : ids[t];
    }
    const T5Batch tb{.input_ids = e.input_ids, .attention_mask = e.attention_mask, .labels = labels};
    return *model.forward(tb, training_, &model.t5.generator()).loss;
  }
  /// {"bleu", "rouge_l"} on the evaluation items (empty without any).
  train::Metrics evaluate() {
    if (eval_.empty()) return {};
    std::vector<std::string> sources;
    std::vector<std::vector<std::string>> refs;  // references[i] of sources[i]
    for (const auto& e : eval_) sources.push_back(e.source), refs.push_back(e.references);
    const auto hyps = predict(sources);
    return {{"bleu", metrics::corpus_bleu(hyps, refs).score},
            {"rouge_l", 100.0 * metrics::mean_rouge_l(hyps, refs).fmeasure}};
  }
  std::vector<ParamRef<float>> trainable_parameters() { return model.trainable_parameters(); }
  Generator& generator() { return model.t5.generator(); }
  void set_training(bool on) { training_ = on; }
  void save(const std::filesystem::path& dir) { model.save(dir); }

  /// The generated text of each source (linearised triples; the source prefix is added), in eval
  /// mode without a tape, o.eval_batch_size at a time.
  std::vector<std::string> predict(const std::vector<std::string>& sources) {
    NoGradGuard no_grad;
    std::vector<std::string> out;
    const Seq2SeqEncodeOptions eo{.max_source_length = static_cast<std::size_t>(opt_.max_length),
                                  .source_prefix = so_.source_prefix};
    const T5GenerateOptions g{.max_new_tokens = so_.max_new_tokens, .num_beams = so_.num_beams};
    const auto step = static_cast<std::size_t>(std::max<index_t>(1, opt_.eval_batch_size));
    for (std::size_t b = 0; b < sources.size(); b += step) {
      const std::span<const std::string> chunk(sources.data() + b, std::min(step, sources.size() - b));
      const Seq2SeqBatch enc = encode_seq2seq(*tok_, chunk, {}, eo);
      const Tensor<std::int64_t, 2> ids = model.generate(enc.input_ids, enc.attention_mask, g);  // (B, L)
      for (index_t r = 0; r < ids.extent(0); ++r) {
        std::vector<std::int32_t> row;
        for (index_t t = 0; t < ids.extent(1); ++t) row.push_back(static_cast<std::int32_t>(ids(r, t)));
        out.push_back(tok_->decode(row, true));
      }
    }
    return out;
  }
  const std::vector<Seq2SeqReference>& eval_items() const { return eval_; }  // what evaluate() scores

 private:
  const Tokenizer* tok_;
  RunnerOptions opt_;
  Seq2SeqOptions so_;
  std::int64_t pad_ = 0;
  bool training_ = true;
  std::vector<Encoding> src_;
  std::vector<std::vector<std::int32_t>> tgt_;
  std::vector<Seq2SeqReference> eval_;
};
static_assert(train::TrainTask<WebnlgRunner>);

}  // namespace deepprompt::tasks
