// Hugging Face config.json (BERT, T5, mT5).
#include "deepprompt/io/config.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto c = dp::parse_config(dp_fuzz::text(data, size), "fuzz/config.json");
    if (const auto* b = std::get_if<dp::HfBertConfig>(&c)) (void)(b->hidden_size / b->num_attention_heads);
  } catch (const dp::Error&) {
  }
  return 0;
}
