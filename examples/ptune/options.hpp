#pragma once
// ptune's command line: sub-commands, options, and the per-task defaults.
//
// Defaults follow the official P-tuning-v2 run scripts (THUDM/P-tuning-v2, run_script/*.sh;
// their models are BERT/RoBERTa-large, so batch sizes may need lowering on a small machine):
//   task     lr     tokens  batch  epochs  max_length  seed   source
//   sst2     1e-2   20      32     10      128         11     (no official script: RTE's settings, 10 epochs)
//   rte      1e-2   20      32     60      128         11     run_rte_bert.sh
//   wsc      5e-3   20      16     80      128         44     run_wsc_bert.sh
//   conll03  3e-2   11      16     30      152         11     run_conll03_roberta.sh
//   squad    5e-3   16       8     30      384         11     run_squad_roberta.sh (stride 128)
//   webnlg   5e-3   10       8     10      256         11     (no official script)
// Every script uses hidden_dropout_prob 0.1 (SQuAD 0.2), no weight decay, no warm-up, a linear
// decay, gradient clipping at 1.0 (Hugging Face Trainer's defaults), evaluation every epoch.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptune {

struct TaskDefaults {
  double lr;
  long tokens, batch, epochs, max_length;
  std::uint64_t seed;
  double dropout;
  const char* metric;
};

inline const std::map<std::string, TaskDefaults>& task_defaults() {
  static const std::map<std::string, TaskDefaults> d{
      {"sst2", {1e-2, 20, 32, 10, 128, 11, 0.1, "accuracy"}},  {"rte", {1e-2, 20, 32, 60, 128, 11, 0.1, "accuracy"}},
      {"wsc", {5e-3, 20, 16, 80, 128, 44, 0.1, "accuracy"}},   {"conll03", {3e-2, 11, 16, 30, 152, 11, 0.1, "f1"}},
      {"squad", {5e-3, 16, 8, 30, 384, 11, 0.2, "f1"}},        {"webnlg", {5e-3, 10, 8, 10, 256, 11, 0.1, "bleu"}}};
  return d;
}

/// The options each sub-command accepts.
inline const std::vector<std::string> kTrainOptions{
    "task", "method", "model", "data", "out", "tokens", "lr", "epochs", "max-steps", "batch", "grad-accum",
    "max-length", "seed", "weight-decay", "warmup-ratio", "max-grad-norm", "dropout", "prefix-dropout",
    "eval-every", "patience", "max-train", "max-eval", "bucket", "resume", "threads", "doc-stride", "distributed", "lora-r", "lora-alpha",
    "lora-dropout", "stop-after", "bf16"};
inline const std::vector<std::string> kEvalOptions{"task",     "model",      "adapter",    "data",   "max-eval",
                                                   "max-length", "doc-stride", "threads", "bf16"};
inline const std::vector<std::string> kPredictOptions{"task",       "model",      "adapter", "input",
                                                      "max-length", "doc-stride", "threads", "bf16"};

/// A usage error: printed with the sub-command's help hint, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// "--key value" pairs and "--flag" switches after the sub-command.
class Args {
 public:
  Args(int argc, char** argv, int first, const std::vector<std::string>& flags) {
    for (int i = first; i < argc; ++i) {
      std::string k = argv[i];
      if (k.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + k + "'");
      k = k.substr(2);
      if (k == "help" || std::find(flags.begin(), flags.end(), k) != flags.end()) {
        values_[k] = "1";
        continue;
      }
      if (i + 1 >= argc) throw UsageError("--" + k + " needs a value");
      values_[k] = argv[++i];
    }
  }
  bool has(const std::string& k) const { return values_.count(k) > 0; }
  std::string str(const std::string& k, const std::string& def = "") const {
    auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  std::string required(const std::string& k) const {
    if (!has(k)) throw UsageError("--" + k + " is required");
    return str(k);
  }
  template <class T>
  T num(const std::string& k, T def) const {
    if (!has(k)) return def;
    const std::string v = str(k);
    try {
      std::size_t pos = 0;
      T out;
      if constexpr (std::is_floating_point_v<T>) out = static_cast<T>(std::stod(v, &pos));
      else out = static_cast<T>(std::stoll(v, &pos));
      if (pos != v.size()) throw std::invalid_argument(v);
      return out;
    } catch (const std::exception&) {
      throw UsageError("--" + k + " expects a number, got '" + v + "'");
    }
  }
  /// Throws UsageError naming the first option that is not in `known` (a typo).
  void check_known(const std::vector<std::string>& known) const {
    for (const auto& [k, v] : values_)
      if (std::find(known.begin(), known.end(), k) == known.end() && k != "help")
        throw UsageError("unknown option --" + k);
  }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace ptune
