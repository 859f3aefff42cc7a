// Hugging Face tokenizer.json with a WordPiece model (BERT), then encoding a fixed text with it.
#include "deepprompt/io/wordpiece.hpp"
#include "fuzz.hpp"
#include "tokenize_common.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto t = dp::WordPieceTokenizer::from_tokenizer_json_text(dp_fuzz::text(data, size), "fuzz/tokenizer.json");
    dp_fuzz::exercise(t, "Hello, WORLD! [CLS] caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC [MASK]x", "isn't it?");
  } catch (const dp::Error&) {
  }
  return 0;
}
