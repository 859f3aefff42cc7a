// make_tiny_model: writes a randomly initialised model as a Hugging Face folder, for end-to-end
// tests of the command-line tools on a model small enough to train in seconds. No pretrained
// weights are involved.
//
//   make_tiny_model bert VOCAB.txt OUT_DIR [hidden layers heads intermediate seed]
//       config.json, model.safetensors, vocab.txt (copied). Weights are drawn with std 0.2
//       (initializer_range; BERT's own 0.02 leaves a random model's pooled outputs nearly
//       constant, so that a test could not see a prompt learn).
//   make_tiny_model t5 TOKENIZER.json OUT_DIR [seed]
//       config.json, model.safetensors, tokenizer.json (copied): d_model 32, 4 heads of 8,
//       2 + 2 layers, as many pieces as the tokenizer has.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <deepprompt/io/unigram.hpp>
#include <deepprompt/models/bert.hpp>
#include <deepprompt/models/t5.hpp>

namespace dp = deepprompt;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: make_tiny_model bert VOCAB.txt OUT_DIR [hidden layers heads intermediate seed]\n"
                         "       make_tiny_model t5 TOKENIZER.json OUT_DIR [seed]\n");
    return 2;
  }
  try {
    const std::string kind = argv[1];
    const std::filesystem::path src = argv[2], out = argv[3];
    auto arg = [&](int i, long def) { return argc > i ? std::atol(argv[i]) : def; };
    if (kind == "bert") {
      std::ifstream in(src);
      if (!in) throw dp::IoError("cannot read '" + src.string() + "'");
      long lines = 0;
      for (std::string l; std::getline(in, l);) ++lines;
      dp::BertDynamicConfig cfg;
      cfg.hidden = arg(4, 32), cfg.layers = arg(5, 2), cfg.heads = arg(6, 4), cfg.intermediate = arg(7, 64);
      cfg.vocab = lines, cfg.max_positions = 512, cfg.initializer_range = 0.2;
      cfg.validate();
      dp::DynamicBert<float> bert(cfg, dp::BertInit{.seed = static_cast<std::uint64_t>(arg(8, 1))});
      bert.save_pretrained(out);
      std::filesystem::copy_file(src, out / "vocab.txt", std::filesystem::copy_options::overwrite_existing);
    } else if (kind == "t5") {
      const auto tok = dp::UnigramTokenizer::from_tokenizer_json(src.string());
      dp::T5Dims d;
      d.d_model = 32, d.d_kv = 8, d.d_ff = 64, d.num_layers = 2, d.num_decoder_layers = 2, d.num_heads = 4;
      d.vocab_size = static_cast<dp::index_t>(tok.vocab_size()), d.buckets = 16, d.max_distance = 20;
      dp::DynamicT5<float> t5(d, static_cast<std::uint64_t>(arg(4, 1)));
      t5.save_pretrained(out);
      std::filesystem::copy_file(src, out / "tokenizer.json", std::filesystem::copy_options::overwrite_existing);
    } else {
      throw dp::Error("unknown model kind '" + kind + "' (bert, t5)");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_tiny_model: %s\n", e.what());
    return 1;
  }
}
