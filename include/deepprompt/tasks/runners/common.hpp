#pragma once
// What every task runner shares. A runner represents one task ready to train: a backbone with
// its method (peft/bert_method.hpp), a head (tasks/heads/), the tokenised training and
// evaluation examples, and the metrics of the task; it satisfies train::TrainTask, so that
// train::Trainer drives it, and the ptune command builds one per --task.
//
// load_tokenizer(dir): the tokenizer of a Hugging Face model folder: tokenizer.json (WordPiece)
// when present, else vocab.txt (WordPiece, lower-cased unless tokenizer_config.json says
// do_lower_case: false). IoError when the folder has neither.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "../../io/wordpiece.hpp"

namespace deepprompt::tasks {

struct RunnerOptions {
  index_t max_length = 128;      // tokens per example, special tokens included (longer: truncated)
  index_t eval_batch_size = 32;
  std::uint64_t seed = 11;       // of the head's initial weights and of dropout
};

inline std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (fs::exists(dir / "tokenizer.json"))
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json((dir / "tokenizer.json").string()));
  if (!fs::exists(dir / "vocab.txt"))
    throw IoError(detail::cat("load_tokenizer: '", dir.string(), "' has neither tokenizer.json nor vocab.txt"));
  WordPieceOptions o;
  if (fs::exists(dir / "tokenizer_config.json")) {
    try {
      std::ifstream in(dir / "tokenizer_config.json");
      const auto j = nlohmann::json::parse(in);
      if (j.contains("do_lower_case") && j["do_lower_case"].is_boolean()) o.lowercase = j["do_lower_case"].get<bool>();
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(detail::cat("'", (dir / "tokenizer_config.json").string(), "': ", e.what()));
    }
  }
  return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string(), o));
}

}  // namespace deepprompt::tasks
