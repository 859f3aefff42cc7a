// bert_embed: tokenises a text (or takes token ids), runs a BERT checkpoint and prints the
// [CLS] vector (last_hidden_state[0, 0, :]) or, with --pooled, the pooler output.
//
//   bert_embed --model DIR [--vocab VOCAB.txt|tokenizer.json] [--no-lowercase] [--pooled] TEXT [TEXT_PAIR]
//   bert_embed --model DIR --ids 101,7592,2088,102 [--pooled]
//
// DIR: config.json + model.safetensors (Hugging Face). The tokenizer defaults to DIR/vocab.txt,
// else DIR/tokenizer.json (WordPiece, io/wordpiece.hpp). Output: one line "tokens: ...", then
// the C values of the vector, one line, space-separated.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/io/wordpiece.hpp"
#include "deepprompt/models/bert.hpp"

namespace dp = deepprompt;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage =
    "usage: bert_embed --model DIR [--vocab PATH] [--no-lowercase] [--pooled] (TEXT [TEXT_PAIR] | --ids I,J,...)";

std::vector<std::int64_t> parse_ids(const std::string& s) {
  std::vector<std::int64_t> ids;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const auto comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0') throw dp::Error("--ids: \"" + item + "\" is not an integer");
    ids.push_back(v);
    pos = comma + 1;
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string model, vocab, ids_arg;
    std::vector<std::string> texts;
    bool pooled = false, lowercase = true, lowercase_given = false;
    for (int i = 1; i < argc; ++i) {
      const std::string_view a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw dp::Error(std::string(a) + " needs a value");
        return argv[++i];
      };
      if (a == "--model")
        model = value();
      else if (a == "--vocab")
        vocab = value();
      else if (a == "--ids")
        ids_arg = value();
      else if (a == "--pooled")
        pooled = true;
      else if (a == "--no-lowercase")
        lowercase = false, lowercase_given = true;
      else if (a == "--help" || a == "-h") {
        std::cout << kUsage << "\n";
        return 0;
      } else if (a.rfind("--", 0) == 0) {
        throw dp::Error("unknown argument \"" + std::string(a) + "\"");
      } else {
        texts.emplace_back(a);
      }
    }
    if (model.empty() || (texts.empty() == ids_arg.empty()) || texts.size() > 2)
      throw dp::Error(std::string("give --model and either one or two texts or --ids; ") + kUsage);

    std::vector<std::int64_t> ids, types;
    std::vector<std::string> tokens;
    if (!ids_arg.empty()) {
      ids = parse_ids(ids_arg);
      types.assign(ids.size(), 0);
    } else {
      if (vocab.empty())
        vocab = fs::exists(fs::path(model) / "vocab.txt") ? (fs::path(model) / "vocab.txt").string()
                                                          : (fs::path(model) / "tokenizer.json").string();
      dp::WordPieceTokenizer tok = [&] {
        if (vocab.size() >= 5 && vocab.compare(vocab.size() - 5, 5, ".json") == 0) {
          auto t = dp::WordPieceTokenizer::from_tokenizer_json(vocab);
          if (lowercase_given) t.set_lowercase(lowercase);
          return t;
        }
        dp::WordPieceOptions opt;
        opt.lowercase = lowercase;
        return dp::WordPieceTokenizer::from_vocab_file(vocab, opt);
      }();
      const auto e = texts.size() == 2 ? tok.encode(texts[0], texts[1]) : tok.encode(texts[0]);
      ids.assign(e.ids.begin(), e.ids.end());
      types.assign(e.type_ids.begin(), e.type_ids.end());
      tokens = e.tokens;
    }

    auto bert = dp::DynamicBert<float>::from_pretrained(model);
    if (pooled && !bert.pooler) throw dp::Error("--pooled: the checkpoint has no pooler");
    const auto T = static_cast<dp::index_t>(ids.size());
    auto input = dp::Tensor<std::int64_t, 2>::from({1, T}, ids);
    auto type_ids = dp::Tensor<std::int64_t, 2>::from({1, T}, types);
    dp::NoGradGuard no_grad;
    const auto out = bert.forward(input, {}, type_ids);

    std::cout << "tokens:";
    for (std::size_t i = 0; i < ids.size(); ++i)
      std::cout << ' ' << (tokens.empty() ? std::to_string(ids[i]) : tokens[i]);
    std::cout << '\n';
    const float* v =
        pooled ? out.pooler_output.value().data() : out.last_hidden_state.value().data();  // row 0, token 0
    for (dp::index_t c = 0; c < bert.cfg.hidden; ++c) std::printf(c ? " %.6f" : "%.6f", static_cast<double>(v[c]));
    std::printf("\n");
  } catch (const std::exception& e) {
    std::cerr << "bert_embed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
