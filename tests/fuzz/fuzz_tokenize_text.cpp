// The tokenizers' text input: arbitrary bytes (invalid UTF-8, control characters, added tokens)
// through one of the fixed test tokenizers with one truncation setting (dp_fuzz::pick): WordPiece from bert-base-uncased's vocab.txt and from a
// tokenizer.json, Unigram from T5's tokenizer.json, and (with the library) SentencePiece.
#include <memory>

#include "deepprompt/io/sentencepiece.hpp"
#include "deepprompt/io/unigram.hpp"
#include "deepprompt/io/wordpiece.hpp"
#include "fuzz.hpp"
#include "tokenize_common.hpp"

namespace dp = deepprompt;

namespace {
struct Tokenizers {
  dp::WordPieceTokenizer vocab = dp::WordPieceTokenizer::from_vocab_file(dp_fuzz::data_path("tokenizers/bert-base-uncased-vocab.txt"));
  dp::WordPieceTokenizer wordpiece = dp::WordPieceTokenizer::from_tokenizer_json(dp_fuzz::data_path("tokenizers/wordpiece_small.tokenizer.json"));
  dp::UnigramTokenizer unigram = dp::UnigramTokenizer::from_tokenizer_json(dp_fuzz::data_path("tokenizers/tiny_unigram.tokenizer.json"));
#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
  dp::SentencePieceTokenizer spm = dp::SentencePieceTokenizer::from_file(dp_fuzz::data_path("tokenizers/tiny_unigram.model"), {.extra_ids = 100});
#endif
};
std::unique_ptr<Tokenizers> tokenizers;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dp_fuzz::use_fuzz_limits();
  tokenizers = std::make_unique<Tokenizers>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The input is the first text; its second half is also the pair's second text.
  const auto all = dp_fuzz::text(data, size);
  const auto b = all.substr(size / 2);
  const auto& t = *tokenizers;
  const int way = static_cast<int>(dp_fuzz::pick(size / 4, 3));  // one truncation setting per input
  switch (dp_fuzz::pick(size, 4)) {  // one tokenizer per input
    case 0: dp_fuzz::exercise(t.vocab, all, b, way); (void)t.vocab.pre_tokenize(all); break;
    case 1: dp_fuzz::exercise(t.wordpiece, all, b, way); break;
    case 2: dp_fuzz::exercise(t.unigram, all, b, way); break;
    default:
#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
      dp_fuzz::exercise(t.spm, all, b, way);
#else
      dp_fuzz::exercise(t.unigram, all, b, way);
#endif
      break;
  }
  return 0;
}
