#pragma once
// ptune's sub-commands: build the task's runner (tasks/runners/) from the options, then train it
// with train::Trainer, evaluate it, or predict with it.
//   sst2, rte, wsc  ClassificationRunner (BERT)     conll03  NerRunner (BERT)
//   squad           QaRunner (BERT)                 webnlg   WebnlgRunner (T5; ptv2 and full)
//   sst2, rte, wsc with a TF.js USE Lite folder (model.json, vocab.json): UseClassificationRunner
//                   (ptv2, ptv2-hidden, prefix, prompt, ptuning, probe, lora, full; use_defaults() below)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include <deepprompt/peft/bert_method.hpp>
#include <deepprompt/peft/report.hpp>
#include <deepprompt/tasks/runners/classification.hpp>
#include <deepprompt/tasks/runners/question_answering.hpp>
#include <deepprompt/tasks/runners/token_classification.hpp>
#include <deepprompt/tasks/runners/use_classification.hpp>
#include <deepprompt/train/trainer.hpp>
#ifdef DEEPPROMPT_HAVE_TINYXML2
#include <deepprompt/tasks/runners/seq2seq.hpp>
#endif

#include "options.hpp"

namespace ptune {

/// The data-parallel communicator of `ptune train --distributed` (ptune.cpp sets it), or null.
inline deepprompt::train::GradientSync* g_sync = nullptr;
inline int rank() { return g_sync ? g_sync->rank() : 0; }

namespace fs = std::filesystem;
namespace dp = deepprompt;
namespace tasks = deepprompt::tasks;

inline const TaskDefaults& defaults_of(const std::string& task) {
  const auto it = task_defaults().find(task);
  if (it == task_defaults().end())
    throw UsageError("unknown task '" + task + "' (sst2, rte, wsc, conll03, squad, webnlg)");
  return it->second;
}

inline bool is_text_task(const std::string& t) { return t == "sst2" || t == "rte" || t == "wsc"; }

/// Defaults on USE Lite (2 layers, 7M weights: a few minutes on 2 cores for 2,000 SST-2
/// sentences): a shorter prefix and run than BERT's P-Tuning v2 settings, measured on SST-2.
inline TaskDefaults use_defaults(const std::string& task) {
  TaskDefaults d = defaults_of(task);
  d.lr = 1e-2, d.tokens = 16, d.batch = 32, d.epochs = 3;
  return d;
}
inline TaskDefaults defaults_for(const std::string& task, const std::string& model) {
  if (!model.empty() && is_text_task(task) && tasks::is_use_lite_dir(model)) return use_defaults(task);
  return defaults_of(task);
}

inline fs::path existing_dir(const Args& a, const char* key) {
  const fs::path p = a.required(key);
  if (!fs::is_directory(p)) throw dp::IoError(std::string("--") + key + " '" + p.string() + "' is not a readable folder");
  return p;
}

template <class T>
void keep_first(std::vector<T>& v, long n) {
  if (n > 0 && static_cast<std::size_t>(n) < v.size()) v.resize(static_cast<std::size_t>(n));
}

/// The task's splits, cut to --max-train / --max-eval.
template <class Splits>
Splits cut(Splits s, const Args& a) {
  keep_first(s.train, a.num<long>("max-train", 0));
  keep_first(s.eval, a.num<long>("max-eval", 0));
  return s;
}

/// What a runner needs besides its data: the parsed common options.
struct Setup {
  std::string task;
  fs::path model_dir;
  dp::tasks::RunnerOptions ro;
  double dropout = 0.1;
};

inline Setup setup(const Args& a) {
  Setup s;
  s.task = a.required("task");
  const TaskDefaults& d = defaults_of(s.task);
  s.model_dir = existing_dir(a, "model");
  s.ro = {.max_length = a.num<long>("max-length", d.max_length), .seed = a.num<std::uint64_t>("seed", d.seed)};
  s.dropout = a.num<double>("dropout", d.dropout);
  return s;
}

/// --bf16: the backbone's frozen Linear weights in bfloat16 (nn/linear.hpp, use_bf16_weights:
/// AVX512-BF16 products, fp32 accumulation); the method's own parameters stay fp32. Otherwise,
/// for eval and predict (`train` false), the frozen weights are pre-packed for their forward
/// GEMM (use_packed_weights: the same results, no per-call packing, twice the weights' memory).
template <class Backbone>
void with_weights(const Args& a, Backbone& backbone, bool train) {
  if (a.has("bf16"))
    std::fprintf(stderr, "ptune: %d frozen Linear layers on bf16 weights\n", dp::use_bf16_weights(backbone));
  else if (!train)
    if (const int n = dp::use_packed_weights(backbone); n > 0)
      std::fprintf(stderr, "ptune: %d frozen Linear layers on pre-packed weights\n", n);
}

inline dp::BertMethod bert_method(const Setup& s, const Args& a, bool train) {
  auto bert = dp::DynamicBert<float>::from_pretrained(s.model_dir);
  bert.set_dropout(s.dropout, bert.cfg.attention_probs_dropout_prob);
  if (!train) {
    dp::BertMethod loaded = dp::BertMethod::load(std::move(bert), existing_dir(a, "adapter"));
    with_weights(a, loaded.bert, false);
    return loaded;
  }
  const std::string name = a.str("method", "ptv2");
  const auto m = dp::method_from_name(name);
  if (!m) throw UsageError("unknown method '" + name + "' (" + std::string(dp::kMethodNames) + ")");
  const dp::MethodOptions mo{.tokens = a.num<long>("tokens", defaults_of(s.task).tokens),
                             .prefix_dropout = a.num<double>("prefix-dropout", 0.0),
                             .lora_r = a.num<long>("lora-r", 8),
                             .lora_alpha = a.num<double>("lora-alpha", 16.0),
                             .lora_dropout = a.num<double>("lora-dropout", 0.1),
                             .seed = s.ro.seed};
  dp::BertMethod method = dp::BertMethod::create(std::move(bert), *m, mo);
  with_weights(a, method.bert, true);
  return method;
}

/// The USE Lite runner of a text task: --method from dp::kUseMethodNames when training, else
/// the adapter of --adapter.
template <class F>
int with_use_runner(const Args& a, bool train, const Setup& s, const fs::path& data, F&& f) {
  const auto tok = dp::UseTokenizer::from_file(s.model_dir / "vocab.json");
  auto model = dp::UseLite<float>::from_tfjs(s.model_dir / "model.json");
  tasks::TextSplits d = data.empty() ? tasks::TextSplits{{}, {}, tasks::read_text_labels(s.task)}
                                     : cut(tasks::read_text_task(s.task, data), a);
  if (!train) {
    d.train.clear();
    tasks::UseClassifier loaded = tasks::load_use_adapter(std::move(model), existing_dir(a, "adapter"));
    with_weights(a, loaded.backbone.use, false);
    tasks::UseClassificationRunner r(std::move(loaded), tok, std::move(d), s.ro);
    return f(r);
  }
  const std::string name = a.str("method", "ptv2");
  const auto m = dp::use_method_from_name(name);
  if (!m) throw UsageError("unknown method '" + name + "' for USE Lite (" + std::string(dp::kUseMethodNames) + ")");
  const TaskDefaults def = defaults_for(s.task, s.model_dir.string());
  const dp::UseMethodOptions mo{.tokens = a.num<long>("tokens", def.tokens),
                                .lora_r = a.num<long>("lora-r", 8),
                                .lora_alpha = a.num<double>("lora-alpha", 16.0),
                                .lora_dropout = a.num<double>("lora-dropout", 0.1),
                                .seed = s.ro.seed};
  dp::UseLiteMethod method = dp::UseLiteMethod::create(std::move(model), *m, mo);
  with_weights(a, method.use, true);
  tasks::UseClassificationRunner r(std::move(method), tok, std::move(d), s.ro, s.dropout);
  return f(r);
}

/// Runs `f(runner)` with the task's runner: `train` builds the method from --method (else it
/// loads --adapter and its head); `need_train` reads the training split.
template <class F>
int with_runner(const Args& a, bool train, F&& f) {
  const Setup s = setup(a);
  const fs::path data = train || a.has("data") ? existing_dir(a, "data") : fs::path();
  if (is_text_task(s.task) && tasks::is_use_lite_dir(s.model_dir)) return with_use_runner(a, train, s, data, f);
  if (is_text_task(s.task) || s.task == "conll03" || s.task == "squad") {
    const auto tok = tasks::load_tokenizer(s.model_dir);
    if (is_text_task(s.task)) {
      tasks::TextSplits d = data.empty() ? tasks::TextSplits{{}, {}, tasks::read_text_labels(s.task)}
                                         : cut(tasks::read_text_task(s.task, data), a);
      if (!train) d.train.clear();
      tasks::ClassificationRunner r(bert_method(s, a, train), *tok, std::move(d), s.ro, s.dropout);
      if (!train) r.model.load_peft_head(a.str("adapter"), false);
      return f(r);
    }
    if (s.task == "conll03") {
      tasks::NerSplits d = data.empty() ? tasks::NerSplits{{}, {}, tasks::conll2003_labels()}
                                        : cut(tasks::read_ner_task(data), a);
      if (!train) d.train.clear();
      tasks::NerRunner r(bert_method(s, a, train), *tok, std::move(d), s.ro, s.dropout);
      if (!train) r.model.load_peft_head(a.str("adapter"), false);
      return f(r);
    }
    tasks::QaSplits d = data.empty() ? tasks::QaSplits{} : cut(tasks::read_qa_task(data), a);
    if (!train) d.train.clear();
    const tasks::QaOptions qa{.doc_stride = static_cast<std::size_t>(a.num<long>("doc-stride", 128))};
    tasks::QaRunner r(bert_method(s, a, train), *tok, std::move(d), s.ro, s.dropout, qa);
    if (!train) r.model.load_peft_head(a.str("adapter"), false);
    return f(r);
  }
#ifdef DEEPPROMPT_HAVE_TINYXML2
  const auto tok = tasks::load_t5_tokenizer(s.model_dir);
  tasks::WebnlgSplits d = data.empty() ? tasks::WebnlgSplits{} : cut(tasks::read_webnlg_task(data, train), a);
  auto t5 = dp::DynamicT5<float>::from_pretrained(s.model_dir);
  tasks::T5Method method = [&] {
    if (!train) return tasks::T5Method::load(std::move(t5), existing_dir(a, "adapter"));
    const std::string name = a.str("method", "ptv2");
    const auto m = dp::method_from_name(name);
    if (!m) throw UsageError("unknown method '" + name + "' (" + std::string(dp::kMethodNames) + ")");
    return tasks::T5Method::create(std::move(t5), *m,
                                   {.tokens = a.num<long>("tokens", defaults_of(s.task).tokens),
                                    .prefix_dropout = a.num<double>("prefix-dropout", 0.0), .seed = s.ro.seed});
  }();
  tasks::WebnlgRunner r(std::move(method), *tok, std::move(d), s.ro);
  return f(r);
#else
  throw dp::Error("task webnlg: this ptune was built without tinyxml2 (Debian libtinyxml2-dev), which reads WebNLG's XML");
#endif
}

inline int train(const Args& a) {
  const std::string task = a.required("task");
  const TaskDefaults d = defaults_for(task, a.str("model"));
  const bool use_lite = is_text_task(task) && tasks::is_use_lite_dir(a.str("model"));
  const auto seed = a.num<std::uint64_t>("seed", d.seed);
  dp::train::TrainerOptions to{.epochs = a.num<long>("epochs", d.epochs),
                               .max_steps = a.num<long>("max-steps", 0),
                               .batch_size = a.num<long>("batch", d.batch),
                               .grad_accumulation = a.num<long>("grad-accum", 1),
                               .lr = a.num<double>("lr", d.lr),
                               .weight_decay = a.num<double>("weight-decay", 0.0),
                               .warmup_ratio = a.num<double>("warmup-ratio", 0.0),
                               .max_grad_norm = a.num<double>("max-grad-norm", 1.0),
                               .eval_every = a.num<long>("eval-every", 0),
                               .patience = a.num<long>("patience", 0),
                               .metric = d.metric,
                               .seed = seed,
                               .bucket_by_length = a.has("bucket") || use_lite,  // USE Lite: padding is most of the work
                               .out_dir = a.required("out"),
                               .resume = a.has("resume"),
                               .stop_after = a.num<long>("stop-after", 0),
                               .sync = g_sync};
  const std::string method = a.str("method", "ptv2");
  const long tokens = a.num<long>("tokens", d.tokens);
  return with_runner(a, true, [&](auto& runner) {
    fs::create_directories(to.out_dir);
    if (rank() > 0) {  // rank 0 reports and writes
      dp::train::Trainer(runner, to).train();
      return 0;
    }
    const nlohmann::json config = {{"task", task},       {"method", method},      {"model", a.str("model")},
                                   {"data", a.str("data")}, {"tokens", tokens},   {"lr", to.lr},
                                   {"epochs", to.epochs}, {"max_steps", to.max_steps}, {"batch", to.batch_size},
                                   {"seed", seed},         {"metric", to.metric},
                                   {"ranks", g_sync ? g_sync->size() : 1}};
    const std::string text = config.dump(2) + "\n";
    dp::write_file_atomic(to.out_dir / "ptune_config.json", std::as_bytes(std::span(text.data(), text.size())));
    std::cerr << "ptune train: " << task << ", " << method << ", " << runner.train_size() << " training examples\n"
              << dp::parameter_report(runner.model, method) << "\n";
    dp::train::Trainer trainer(runner, to);
    std::cout << nlohmann::json(trainer.train()).dump() << "\n";
    return 0;
  });
}

inline int eval(const Args& a) {
  a.required("data");
  return with_runner(a, false, [&](auto& runner) {
    runner.set_training(false);
    std::cout << nlohmann::json(runner.evaluate()).dump() << "\n";
    return 0;
  });
}

/// The input lines (CRLF accepted, empty lines skipped) with their line numbers.
inline std::vector<std::pair<std::size_t, std::string>> input_lines(const fs::path& input) {
  std::ifstream in(input);
  if (!in) throw dp::IoError("--input '" + input.string() + "' cannot be read");
  std::vector<std::pair<std::size_t, std::string>> out;
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.emplace_back(n, line);
  }
  return out;
}

inline std::pair<std::string, std::string> split_tab(const fs::path& file, std::size_t line_no, const std::string& line,
                                                     const char* what) {
  const auto tab = line.find('\t');
  if (tab == std::string::npos)
    throw dp::FormatError(file.string() + ":" + std::to_string(line_no) + ": expected " + what);
  return {line.substr(0, tab), line.substr(tab + 1)};
}

inline int predict(const Args& a) {
  const fs::path input = a.required("input");
  const std::string task = a.required("task");
  const auto lines = input_lines(input);
  return with_runner(a, false, [&](auto& runner) {
    runner.set_training(false);
    using R = std::decay_t<decltype(runner)>;
    if constexpr (std::is_same_v<R, tasks::ClassificationRunner> || std::is_same_v<R, tasks::UseClassificationRunner>) {
      std::vector<tasks::TextExample> xs;
      for (const auto& [n, l] : lines) {
        if (task == "sst2") xs.push_back({l, std::nullopt});
        else {
          auto [x, y] = split_tab(input, n, l, "text<TAB>text");
          xs.push_back({x, y});
        }
      }
      for (auto p : runner.predict(xs)) std::cout << runner.labels()[static_cast<std::size_t>(p)] << "\n";
    } else if constexpr (std::is_same_v<R, tasks::NerRunner>) {
      for (const auto& [n, l] : lines) {
        std::istringstream words(l);
        std::vector<std::string> ws{std::istream_iterator<std::string>(words), {}};
        std::string out;
        for (const auto& t : runner.predict(ws)) out += (out.empty() ? "" : " ") + t;
        std::cout << out << "\n";
      }
    } else if constexpr (std::is_same_v<R, tasks::QaRunner>) {
      for (const auto& [n, l] : lines) {
        auto [q, c] = split_tab(input, n, l, "question<TAB>context");
        std::cout << runner.predict(q, c) << "\n";
      }
    } else {
      std::vector<std::string> sources;
      for (const auto& [n, l] : lines) sources.push_back(l);
      for (const auto& t : runner.predict(sources)) std::cout << t << "\n";
    }
    return 0;
  });
}

}  // namespace ptune
