// A SentencePiece model (spiece.model, a serialized ModelProto) through Debian's
// libsentencepiece, then encoding a fixed text with it. The library itself is not instrumented:
// coverage counts only our wrapper, crashes inside the library still show.
#include "deepprompt/io/sentencepiece.hpp"
#include "fuzz.hpp"
#include "tokenize_common.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
  try {
    const bool extra = size > 0 && (data[size - 1] & 1);
    const auto t = dp::SentencePieceTokenizer::from_serialized(dp_fuzz::text(data, size),
                                                               {.extra_ids = extra ? 3u : 0u}, "fuzz/spiece.model");
    dp_fuzz::exercise(t, "The house is w\xC3\xB6nderful. <extra_id_0> </s>\xFF", "a  b");
  } catch (const dp::Error&) {
  }
#endif
  return 0;
}
