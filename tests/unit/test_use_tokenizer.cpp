// io/use_tokenizer.hpp and io/nfkc.hpp: ids and NFKC against the reference TF.js tokenizer and
// JavaScript's normalize("NFKC") (tests/data/use_lite/make_tokenizer_ref.js), the reference's
// quirks on small vocabularies, and malformed vocabularies.
#include <doctest/doctest.h>

#include <fstream>

#include "deepprompt/io/use_tokenizer.hpp"

namespace test_use_tokenizer {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace fs = std::filesystem;
using doctest::Contains;
using nlohmann::json;

namespace {

const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA) / "use_lite";

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

std::string utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) unicode::append_utf8(out, c);
  return out;
}

// A vocabulary: 6 reserved entries ("\uFFFD" first) then `pieces`.
UseTokenizer small_vocab(const std::vector<std::pair<std::string, json>>& pieces) {
  json v = json::array();
  for (const char* r : {"\xEF\xBF\xBD", "<s>", "</s>", "x1", "x2", "x3"}) v.push_back(json::array({r, 0}));
  for (const auto& [piece, score] : pieces) v.push_back(json::array({piece, score}));
  return UseTokenizer::from_json(v.dump(), "small");
}

}  // namespace

TEST_CASE("use tokenizer: the ids of the reference TF.js tokenizer") {
  const auto tok = UseTokenizer::from_file(kData / "vocab.json");
  CHECK(tok.vocab_size() == 8000);
  CHECK(tok.piece(9) == "\xE2\x96\x81the");
  CHECK(tok.score(57) == 0.0);  // null in the file
  const json ref = read_json(kData / "tokenizer_ref.json");
  REQUIRE(ref.size() > 100);
  int mismatches = 0;
  for (const auto& r : ref) {
    const auto text = r["text"].get<std::string>();
    const auto want = r["ids"].get<std::vector<std::int32_t>>();
    const auto got = tok.encode(text);
    if (got != want && ++mismatches <= 10) {
      CAPTURE(text);
      CHECK(got == want);
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("nfkc: JavaScript's normalize(\"NFKC\") on random strings, and fixed cases") {
  const json ref = read_json(kData / "nfkc_ref.json");
  REQUIRE(ref.size() == 400);
  int mismatches = 0;
  for (const auto& r : ref) {
    const auto in = r[0].get<std::string>(), want = r[1].get<std::string>();
    if (unicode::nfkc_utf8(in) != want && ++mismatches <= 10) CHECK(unicode::nfkc_utf8(in) == want);
  }
  CHECK(mismatches == 0);
  CHECK(utf8(unicode::nfkc(U"e\u0301")) == "\xC3\xA9");                           // composed
  CHECK(utf8(unicode::nfkc(U"\uFB01")) == "fi");                                  // ligature
  CHECK(utf8(unicode::nfkc(U"\u1100\u1161\u11A8")) == "\xEA\xB0\x81");            // jamo -> syllable
  CHECK(unicode::nfkc(U"\uAC01") == U"\uAC01");
  CHECK(unicode::nfkc(U"a\u0323\u0307") == U"\u1EA1\u0307");                      // dot below first
  CHECK(unicode::nfkc(U"a\u0307\u0323") == U"\u1EA1\u0307");                      // reordered
  CHECK(unicode::nfkc(U"\u0301e") == U"\u0301e");                                 // leading mark
  CHECK(unicode::nfkc(U"\U0001D400\u00B2\u2460") == U"A21");
  CHECK(unicode::nfkc(U"") == U"");
}

TEST_CASE("use tokenizer: preprocessing") {
  CHECK(UseTokenizer::preprocess("") == u"");
  CHECK(UseTokenizer::preprocess("a b") == u"\u2581a\u2581b");
  CHECK(UseTokenizer::preprocess("a\tb") == u"\u2581a\tb");  // only U+0020 becomes U+2581
  CHECK(UseTokenizer::preprocess("\xEF\xAC\x81") == u"\u2581fi");
  CHECK(UseTokenizer::preprocess("\xFF") == u"\u2581\uFFFD");  // invalid UTF-8
  CHECK(UseTokenizer::preprocess("\xF0\x9F\x98\x80") == u"\u2581\xD83D\xDE00");  // UTF-16 units
}

TEST_CASE("use tokenizer: the reference's rules on a small vocabulary") {
  // pieces: 6 "▁", 7 "a", 8 "b", 9 "ab", 10 "▁ab", 11 "c"
  const auto tok = small_vocab({{"\xE2\x96\x81", -1.0}, {"a", -2.0}, {"b", -2.0}, {"ab", -3.0}, {"\xE2\x96\x81" "ab", -5.0}, {"c", -1.0}});
  CHECK(tok.encode("").empty());
  CHECK(tok.encode("ab") == std::vector<std::int32_t>{6, 9});       // -4 beats "▁ab" -5 and ▁,a,b -5
  CHECK(tok.encode("ab c") == std::vector<std::int32_t>{6, 9, 6, 11});
  CHECK(tok.encode("xyz") == std::vector<std::int32_t>{6, 0});       // unknowns merged
  CHECK(tok.encode("axyb") == std::vector<std::int32_t>{6, 7, 0, 8});
  // Expected ids below are the reference's (run in node on the same vocabularies).
  // Ties go to the later start; here the unknown "b" at an unreached position (score 0) wins.
  const auto tie = small_vocab({{"\xE2\x96\x81", -1.0}, {"ab", -3.0}, {"\xE2\x96\x81" "ab", -4.0}});
  CHECK(tie.encode("ab") == std::vector<std::int32_t>{6, 0});
  // A total of exactly 0 counts as "not reached": a worse candidate replaces it.
  const auto zero = small_vocab({{"\xE2\x96\x81", 0.0}, {"a", 0.0}, {"\xE2\x96\x81" "a", -9.0}});
  CHECK(zero.encode("a") == std::vector<std::int32_t>{6, 7});
  // A duplicate piece keeps its last id; null scores count as 0; an unreachable position
  // (only "▁abc" starts at 0, nothing covers position 1) reads as an unknown of score 0.
  const auto dup = small_vocab({{"a", -1.0}, {"a", nullptr}, {"\xE2\x96\x81" "abc", -50.0}, {"bc", -1.0}, {"\xE2\x96\x81", nullptr}});
  CHECK(dup.encode("a") == std::vector<std::int32_t>{10, 7});
  const auto gap = small_vocab({{"\xE2\x96\x81" "abc", -50.0}, {"bc", -1.0}});
  CHECK(gap.encode("abc") == std::vector<std::int32_t>{0});
  // Outside the BMP the characters are UTF-16 units: the low surrogate starts no piece, is
  // unknown at an unreached position and wins.
  const auto astral = small_vocab({{"\xE2\x96\x81", -1.0}, {"\xF0\x9F\x98\x80", -1.0}});
  CHECK(astral.encode("\xF0\x9F\x98\x80") == std::vector<std::int32_t>{6, 0});
  CHECK(astral.encode("\xF0\x9F\x98\x80\xF0\x9F\x98\x80") == std::vector<std::int32_t>{6, 0});
}

TEST_CASE("use tokenizer: malformed vocabularies") {
  auto bad = [](std::string_view text, const char* part) {
    CHECK_THROWS_WITH_AS(UseTokenizer::from_json(text, "v.json"), Contains(part), FormatError);
  };
  bad("{", "USE vocabulary 'v.json': invalid JSON");
  bad("{}", "not a JSON array");
  bad("[]", "the vocabulary is empty");
  bad("[[\"a\"]]", "entry 0 is not a [piece (string), score (number or null)] pair");
  bad("[[\"a\", 0], [1, 0]]", "entry 1 is not a");
  bad("[[\"a\", 0], [\"b\", \"0\"]]", "entry 1 is not a");
  bad("[[\"\", 0]]", "entry 0 (the unknown piece) is empty");
  bad(std::string(300, '[') + std::string(300, ']'), "exceeds Limits::json_depth");
  Limits small;
  small.vocab_size = 2;
  small.token_bytes = 4;
  ScopedLimits guard(small);
  bad("[[\"a\", 0], [\"b\", 0], [\"c\", 0]]", "vocabulary size 3 exceeds Limits::vocab_size = 2");
  bad("[[\"a\", 0], [\"bbbbb\", 0]]", "entry 1: piece length in bytes 5 exceeds Limits::token_bytes = 4");
  CHECK_THROWS_AS(UseTokenizer::from_file(kData / "no_such_file.json"), IoError);
}

}  // namespace test_use_tokenizer
