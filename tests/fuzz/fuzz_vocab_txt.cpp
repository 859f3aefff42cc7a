// BERT vocab.txt (one token a line), then encoding a fixed text with it.
#include "deepprompt/io/wordpiece.hpp"
#include "fuzz.hpp"
#include "tokenize_common.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto t = dp::WordPieceTokenizer::from_vocab_text(dp_fuzz::text(data, size), {}, "fuzz/vocab.txt");
    dp_fuzz::exercise(t, "Hello, WORLD! [CLS] unaffable caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC [MASK]", "runs ##ing");
  } catch (const dp::Error&) {
  }
  return 0;
}
