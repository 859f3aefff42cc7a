// deepprompt-tokenize: tokenises a JSONL file with a BERT or T5 tokenizer.
//
//   deepprompt-tokenize --tokenizer PATH [--max-length N] [--lowercase|--no-lowercase]
//                       --input IN.jsonl --out OUT.jsonl
//
// PATH: a vocab.txt (WordPiece; lower-cased unless --no-lowercase), a tokenizer.json (model
// WordPiece or Unigram) or a SentencePiece .model (T5, with 100 <extra_id_N> sentinels; needs the
// SentencePiece library at build time). Each input line {"text": ..., "text_pair": ... (optional)}
// gives one output line {"input_ids", "token_type_ids", "tokens", "decoded"} (decoded without
// special tokens). --max-length truncates longest-first, special tokens included. Any error exits
// non-zero with one line on stderr naming the file and line. Invalid UTF-8 in the input becomes
// U+FFFD before the line is parsed.
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "deepprompt/io/sentencepiece.hpp"
#include "deepprompt/io/unigram.hpp"
#include "deepprompt/io/wordpiece.hpp"

namespace dp = deepprompt;
using json = nlohmann::json;

namespace {

constexpr const char* kUsage =
    "usage: deepprompt-tokenize --tokenizer PATH [--max-length N] [--lowercase|--no-lowercase] "
    "--input IN.jsonl --out OUT.jsonl";

struct Args {
  std::string tokenizer, input, out;
  std::size_t max_length = 0;
  int lowercase = -1;  // -1: the tokenizer's own setting
};

struct UsageError {
  std::string what;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{std::string(arg) + " needs a value"};
      return argv[++i];
    };
    if (arg == "--tokenizer") a.tokenizer = value();
    else if (arg == "--input") a.input = value();
    else if (arg == "--out") a.out = value();
    else if (arg == "--lowercase") a.lowercase = 1;
    else if (arg == "--no-lowercase") a.lowercase = 0;
    else if (arg == "--max-length") {
      const auto v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1) throw UsageError{"--max-length must be a positive integer, got \"" + v + "\""};
      a.max_length = static_cast<std::size_t>(n);
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << "\n";
      std::exit(0);
    } else {
      throw UsageError{"unknown argument \"" + std::string(arg) + "\""};
    }
  }
  if (a.tokenizer.empty() || a.input.empty() || a.out.empty()) throw UsageError{"--tokenizer, --input and --out are required"};
  return a;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<dp::Tokenizer> load(const Args& a) {
  if (ends_with(a.tokenizer, ".json")) {
    const dp::tokenizer_detail::JsonFile f{a.tokenizer};
    const auto root = dp::tokenizer_detail::parse_json(dp::tokenizer_detail::read_file(a.tokenizer), f);
    const auto& model = f.at(root, "model", "(root)");
    if (model.value("type", std::string("WordPiece")) == "Unigram") {
      if (a.lowercase >= 0) throw UsageError{"--lowercase/--no-lowercase apply to WordPiece tokenizers only"};
      return std::make_unique<dp::UnigramTokenizer>(dp::UnigramTokenizer::from_json(root, a.tokenizer));
    }
    auto t = std::make_unique<dp::WordPieceTokenizer>(dp::WordPieceTokenizer::from_json(root, a.tokenizer));
    if (a.lowercase >= 0) t->set_lowercase(a.lowercase == 1);
    return t;
  }
  if (ends_with(a.tokenizer, ".model")) {
    if (a.lowercase >= 0) throw UsageError{"--lowercase/--no-lowercase apply to WordPiece tokenizers only"};
#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
    return std::make_unique<dp::SentencePieceTokenizer>(dp::SentencePieceTokenizer::from_file(a.tokenizer, {.extra_ids = 100}));
#else
    throw dp::TokenizerError(a.tokenizer + ": built without the SentencePiece library; use the model's tokenizer.json");
#endif
  }
  dp::WordPieceOptions opt;
  if (a.lowercase >= 0) opt.lowercase = a.lowercase == 1;
  return std::make_unique<dp::WordPieceTokenizer>(dp::WordPieceTokenizer::from_vocab_file(a.tokenizer, opt));
}

// One input line -> one output line; throws std::runtime_error with the reason.
std::string process(const dp::Tokenizer& t, const std::string& line, std::size_t max_length) {
  json in;
  try {
    in = json::parse(line);
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("invalid JSON: ") + e.what());
  }
  if (!in.is_object()) throw std::runtime_error("expected a JSON object");
  auto text = in.find("text");
  if (text == in.end() || !text->is_string()) throw std::runtime_error("missing string field \"text\"");
  auto pair = in.find("text_pair");
  if (pair != in.end() && !pair->is_null() && !pair->is_string()) throw std::runtime_error("\"text_pair\" must be a string");
  const dp::EncodeOptions opt{.max_length = max_length};
  const auto e = pair != in.end() && pair->is_string() ? t.encode(text->get<std::string>(), pair->get<std::string>(), opt)
                                                      : t.encode(text->get<std::string>(), opt);
  json out = {{"input_ids", e.ids}, {"token_type_ids", e.type_ids}, {"tokens", e.tokens}, {"decoded", t.decode(e.ids)}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "deepprompt-tokenize: " << e.what << "\n" << kUsage << "\n";
    return 2;
  }
  try {
    const auto tok = load(args);
    std::ifstream in(args.input, std::ios::binary);
    if (!in) throw dp::Error(args.input + ": cannot open file");
    std::ofstream out(args.out, std::ios::binary);
    if (!out) throw dp::Error(args.out + ": cannot open file for writing");
    std::size_t lineno = 0;
    for (std::string line; std::getline(in, line);) {
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      line = dp::unicode::sanitize_utf8(line);  // invalid UTF-8 -> U+FFFD, as the tokenizers do
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      try {
        out << process(*tok, line, args.max_length) << '\n';
      } catch (const std::exception& e) {
        throw dp::Error(args.input + ":" + std::to_string(lineno) + ": " + e.what());
      }
    }
    if (!out.flush()) throw dp::Error(args.out + ": write failed");
  } catch (const UsageError& e) {
    std::cerr << "deepprompt-tokenize: " << e.what << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "deepprompt-tokenize: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
