#pragma once
// Exercises a loaded tokenizer: single and pair encodings with and without truncation and
// special tokens, padding, and decoding of what came out.
#include <string_view>
#include <vector>

#include "deepprompt/io/tokenizer.hpp"

namespace dp_fuzz {

/// Three truncation settings, or only the one `way` (0-2) names (fuzz_tokenize_text picks one per
/// execution: each encoding is a full pass over the input).
inline void exercise(const deepprompt::Tokenizer& t, std::string_view a, std::string_view b, int way = -1) {
  namespace dp = deepprompt;
  auto check = [&](const dp::Encoding& e) {
    // The offsets must lie inside their text.
    for (std::size_t i = 0; i < e.size(); ++i) {
      const auto& text = e.sequence_ids[i] == 1 ? b : a;
      if (e.offsets[i].begin > e.offsets[i].end || e.offsets[i].end > text.size()) __builtin_trap();
    }
    try {
      (void)t.decode(e.ids, true);
      (void)t.decode(e.ids, false);
    } catch (const dp::TokenizerError&) {  // an id the file maps to no token
    }
  };
  // No truncation; truncation that leaves a few tokens; truncation below the special tokens.
  const dp::EncodeOptions options[] = {dp::EncodeOptions{0, true}, dp::EncodeOptions{5, true}, dp::EncodeOptions{1, false}};
  for (int k = 0; k < 3; ++k) {
    if (way >= 0 && k != way % 3) continue;
    const dp::EncodeOptions& opt = options[k];
    check(t.encode(a, opt));
    auto pair = t.encode(a, b, opt);
    check(pair);
    dp::pad(pair, pair.size() + 2, 0, "[PAD]");
  }
  for (std::int32_t id : {0, 1, 2, 100, -1, 1 << 30}) {
    try {
      (void)t.id_to_token(id);
    } catch (const dp::TokenizerError&) {
    }
  }
  (void)t.token_to_id("[UNK]");
  (void)t.vocab_size();
}

}  // namespace dp_fuzz
