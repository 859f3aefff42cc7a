// Inputs that crashed a parser (found by the libFuzzer targets of tests/fuzz/, or seen while
// writing them; docs/robustness.md), each kept here, minimised, so that the fix stays. Every
// case must now fail with a deepprompt::Error naming the fault, or succeed.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <span>
#include <iterator>
#include <string>

#include "deepprompt/io/config.hpp"
#include "deepprompt/io/safetensors.hpp"
#include "deepprompt/io/sentencepiece.hpp"
#include "deepprompt/tasks/data/superglue.hpp"
#include "deepprompt/io/unigram.hpp"
#include "deepprompt/io/wordpiece.hpp"

namespace test_fuzz_regressions {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using doctest::Contains;

TEST_CASE("fuzz regression: a single-text template that uses sequence B (null dereference in encode)") {
  // post_processor.single named $B; encode(text) had no second text and read through a null
  // pointer (UBSan: reference binding to null pointer, tokenizer.hpp assemble()).
  const std::string json = R"({"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"a":1}},
    "post_processor":{"type":"TemplateProcessing","special_tokens":{},
                      "single":[{"Sequence":{"id":"B","type_id":0}}],"pair":[]}})";
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_tokenizer_json_text(json, "t.json"),
                       Contains("t.json: post_processor.single: the single-text template uses sequence B"),
                       TokenizerError);
  const std::string unigram = R"({"model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0],["a",-1]]},
    "post_processor":{"type":"TemplateProcessing","special_tokens":{},
                      "single":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],"pair":[]}})";
  CHECK_THROWS_AS(UnigramTokenizer::from_tokenizer_json_text(unigram, "u.json"), TokenizerError);
}

#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
TEST_CASE("fuzz regression: a SentencePiece model whose precompiled charsmap is corrupt (SEGV in the library)") {
  // tests/data/fuzz/sentencepiece_bad_charsmap.model (fuzz_sentencepiece): the library (0.1.97)
  // loads it, then Normalizer::NormalizePrefix walks the corrupt double-array trie out of its
  // buffer while encoding (SEGV when the read lands on unmapped memory, so not every run).
  // The model is now refused at load, before the library ever walks the trie.
  const std::string path = std::string(DEEPPROMPT_TEST_DATA) + "/fuzz/sentencepiece_bad_charsmap.model";
  CHECK_THROWS_WITH_AS(SentencePieceTokenizer::from_file(path), Contains("precompiled_charsmap"), TokenizerError);
  std::ifstream f(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  CHECK_THROWS_WITH_AS(SentencePieceTokenizer::from_serialized(bytes, {}, "m.model"),
                       Contains("m.model: normalizer_spec.precompiled_charsmap"), TokenizerError);
  // tests/data/fuzz/sentencepiece_empty_piece.model (fuzz_sentencepiece): a piece of zero length;
  // the library's trie builder threw Darts::Details::Exception (not a deepprompt::Error) out of
  // the loader.
  CHECK_THROWS_WITH_AS(SentencePieceTokenizer::from_file(std::string(DEEPPROMPT_TEST_DATA) + "/fuzz/sentencepiece_empty_piece.model"),
                       Contains("cannot load SentencePiece model"), TokenizerError);
  // The real model still loads.
  CHECK_NOTHROW(SentencePieceTokenizer::from_file(std::string(DEEPPROMPT_TEST_DATA) + "/tokenizers/tiny_unigram.model"));
}
#endif

TEST_CASE("fuzz regression: a JSON number too large for a double (nlohmann's out_of_range escaped the readers)") {
  // fuzz_superglue, long run: a JSONL line holding 6666e32336. nlohmann reports the overflow as
  // out_of_range (406), not parse_error, and the readers caught only parse_error: the exception
  // left the library as a non-deepprompt type (libFuzzer: uncaught exception -> abort).
  const std::string line = "{\"idx\": 0, \"label\": 6666e32336}\n";
  CHECK_THROWS_WITH_AS(data::parse_superglue<data::CopaExample>(line, "copa.jsonl"),
                       Contains("copa.jsonl:1"), FormatError);
  CHECK_THROWS_WITH_AS(parse_config(R"({"model_type": "bert", "hidden_size": 1e400})", "c.json"),
                       Contains("c.json"), FormatError);
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_tokenizer_json_text(R"({"model": {"type": "WordPiece", "vocab": {"a": -1e999}}})", "t.json"),
                       Contains("t.json"), Error);
  std::string header = R"({"x":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})";
  while (header.size() % 8) header += ' ';
  std::string file(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header + std::string(4, '\0');
  CHECK_THROWS_AS(SafeTensorsFile::from_bytes(std::as_bytes(std::span(file.data(), file.size())), "s.safetensors"), FormatError);
}

}  // namespace test_fuzz_regressions
