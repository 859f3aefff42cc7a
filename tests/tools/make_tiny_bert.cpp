// make_tiny_bert: writes a randomly initialised BERT as a Hugging Face model folder (config.json,
// model.safetensors, vocab.txt copied from VOCAB), for end-to-end tests of the command-line tools
// on a model small enough to train in seconds. No pretrained weights are involved.
//
//   make_tiny_bert VOCAB.txt OUT_DIR [hidden layers heads intermediate seed]
// Weights are drawn with std 0.2 (initializer_range; BERT's own 0.02 leaves a random model's
// pooled outputs nearly constant, so that a test could not see a prompt learn).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <deepprompt/models/bert.hpp>

namespace dp = deepprompt;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_tiny_bert VOCAB.txt OUT_DIR [hidden layers heads intermediate seed]\n");
    return 2;
  }
  try {
    const std::filesystem::path vocab = argv[1], out = argv[2];
    auto arg = [&](int i, long def) { return argc > i ? std::atol(argv[i]) : def; };
    std::ifstream in(vocab);
    if (!in) throw dp::IoError("cannot read '" + vocab.string() + "'");
    long lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    dp::BertDynamicConfig cfg;
    cfg.hidden = arg(3, 32), cfg.layers = arg(4, 2), cfg.heads = arg(5, 4), cfg.intermediate = arg(6, 64);
    cfg.vocab = lines, cfg.max_positions = 512;
    cfg.initializer_range = 0.2;
    cfg.validate();
    dp::DynamicBert<float> bert(cfg, dp::BertInit{.seed = static_cast<std::uint64_t>(arg(7, 1))});
    bert.save_pretrained(out);
    std::filesystem::copy_file(vocab, out / "vocab.txt", std::filesystem::copy_options::overwrite_existing);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_tiny_bert: %s\n", e.what());
    return 1;
  }
}
