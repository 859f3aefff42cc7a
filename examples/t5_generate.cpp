// t5_generate: loads a Hugging Face T5 checkpoint folder and generates from token ids.
//
//   t5_generate MODEL_DIR [--max-new-tokens N] [--beams K] [--length-penalty X]
//               [--early-stopping true|false|never] ID [ID ...]
//
// MODEL_DIR holds config.json and model.safetensors. The ids are one encoder input (for t5-small,
// "translate English to German: Hello" is 13959 1566 12 2968 10 8774 1 with T5's spiece.model;
// deepprompt-tokenize produces them). Prints the generated ids, the decoder start token first,
// on one line. Greedy unless --beams K > 1. Any error: one line on stderr, exit status 1.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/models/t5_generate.hpp"

namespace dp = deepprompt;

namespace {

constexpr const char* kUsage =
    "usage: t5_generate MODEL_DIR [--max-new-tokens N] [--beams K] [--length-penalty X] "
    "[--early-stopping true|false|never] ID [ID ...]";

long long to_int(std::string_view what, const std::string& s) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') throw dp::Error(std::string(what) + ": \"" + s + "\" is not an integer");
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 3) throw dp::Error(kUsage);
    const std::string dir = argv[1];
    dp::T5GenerateOptions opt;
    std::vector<std::int64_t> ids;
    for (int i = 2; i < argc; ++i) {
      const std::string_view arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw dp::Error(std::string(arg) + " needs a value; " + kUsage);
        return argv[++i];
      };
      if (arg == "--max-new-tokens") {
        opt.max_new_tokens = to_int(arg, value());
      } else if (arg == "--beams") {
        opt.num_beams = to_int(arg, value());
      } else if (arg == "--length-penalty") {
        const std::string v = value();
        char* end = nullptr;
        opt.length_penalty = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0') throw dp::Error("--length-penalty: \"" + v + "\" is not a number");
      } else if (arg == "--early-stopping") {
        const std::string v = value();
        if (v == "true") opt.early_stopping = dp::T5EarlyStopping::yes;
        else if (v == "false") opt.early_stopping = dp::T5EarlyStopping::heuristic;
        else if (v == "never") opt.early_stopping = dp::T5EarlyStopping::never;
        else throw dp::Error("--early-stopping: expected true, false or never, got \"" + v + "\"");
      } else if (arg.starts_with("--")) {
        throw dp::Error("unknown option " + std::string(arg) + "; " + kUsage);
      } else {
        ids.push_back(to_int("token id", std::string(arg)));
      }
    }
    if (ids.empty()) throw dp::Error(std::string("no input ids; ") + kUsage);

    auto model = dp::DynamicT5<>::from_pretrained(dir);
    const auto n = static_cast<dp::index_t>(ids.size());
    const auto input = dp::Tensor<std::int64_t, 2>::from({1, n}, std::span<const std::int64_t>(ids));
    const auto out = dp::generate(model, input, dp::Tensor<std::int64_t, 2>::full({1, n}, 1), opt);
    for (dp::index_t t = 0; t < out.extent(1); ++t) std::cout << (t ? " " : "") << out(0, t);
    std::cout << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "t5_generate: " << e.what() << "\n";
    return 1;
  }
}
