// Hugging Face tokenizer.json with a Unigram model (T5), then encoding a fixed text with it.
#include "deepprompt/io/unigram.hpp"
#include "fuzz.hpp"
#include "tokenize_common.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto t = dp::UnigramTokenizer::from_tokenizer_json_text(dp_fuzz::text(data, size), "fuzz/tokenizer.json");
    dp_fuzz::exercise(t, "translate English to German:  The  house\xE2\x80\x94 is </s> w\xC3\xB6nderful\t2", "<pad>x y");
  } catch (const dp::Error&) {
  }
  return 0;
}
