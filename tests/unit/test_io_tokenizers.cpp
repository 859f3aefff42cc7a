// io/ tokenizers: WordPiece (vocab.txt, tokenizer.json), Unigram (tokenizer.json), SentencePiece
// (library, when installed). Expectations in tests/data/tokenizers/ (README there): WordPiece's
// from an independent Python reimplementation of HF's algorithm, Unigram's from the SentencePiece
// library; gen: tests/fixtures/gen_tokenizer_expectations.py. A few outputs of HF itself are
// checked by hand below.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "deepprompt/io/sentencepiece.hpp"
#include "deepprompt/io/unigram.hpp"
#include "deepprompt/io/wordpiece.hpp"

namespace test_io_tokenizers {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using json = nlohmann::json;

namespace {

std::string data(const std::string& name) { return std::string(DEEPPROMPT_TEST_DATA) + "/tokenizers/" + name; }

std::vector<json> load_cases(const std::string& name) {
  std::ifstream f(data(name));
  REQUIRE_MESSAGE(f.good(), "missing tests/data/tokenizers/" << name << " (run tests/fixtures/gen_tokenizer_expectations.py)");
  std::vector<json> out;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

const WordPieceTokenizer& bert_uncased() {
  static const auto t = WordPieceTokenizer::from_vocab_file(data("bert-base-uncased-vocab.txt"));
  return t;
}

Encoding encode_case(const Tokenizer& t, const json& c) {
  EncodeOptions opt;
  opt.max_length = c.value("max_length", std::size_t{0});
  const auto text = c["text"].get<std::string>();
  if (c.contains("text_pair")) return t.encode(text, c["text_pair"].get<std::string>(), opt);
  return t.encode(text, opt);
}

std::vector<std::array<std::size_t, 2>> spans(const std::vector<Offset>& o) {
  std::vector<std::array<std::size_t, 2>> out;
  for (const auto& x : o) out.push_back({x.begin, x.end});
  return out;
}

// Checks one expectation; `full` also compares type ids and both kinds of offsets.
void check_case(const Tokenizer& t, const json& c, bool full) {
  INFO("text: " << c["text"].get<std::string>() << (c.contains("text_pair") ? " || " + c["text_pair"].get<std::string>() : ""));
  const auto e = encode_case(t, c);
  CHECK(e.ids == c["ids"].get<std::vector<std::int32_t>>());
  CHECK(e.tokens == c["tokens"].get<std::vector<std::string>>());
  CHECK(t.decode(e.ids) == c["decoded"].get<std::string>());
  if (full) {
    CHECK(e.type_ids == c["type_ids"].get<std::vector<std::int32_t>>());
    CHECK(spans(e.char_offsets) == c["char_offsets"].get<std::vector<std::array<std::size_t, 2>>>());
    CHECK(spans(e.offsets) == c["offsets"].get<std::vector<std::array<std::size_t, 2>>>());
  }
  CHECK(e.attention_mask == std::vector<std::uint8_t>(e.size(), 1));
}

// A file in the temporary directory, unique to this process; its name ends with `name`.
std::string write_temp(const std::string& name, const std::string& content) {
  static const auto tag = std::to_string(std::random_device{}());
  const auto path = (std::filesystem::temp_directory_path() / ("dp_tok_" + tag + "_" + name)).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

}  // namespace

TEST_CASE("unicode: UTF-8 decoding replaces maximal invalid subparts like Python") {
  auto cps = [](std::string_view s) {
    std::vector<std::uint32_t> v;
    for (auto c : unicode::decode_utf8(s)) v.push_back(c.cp);
    return v;
  };
  using V = std::vector<std::uint32_t>;
  CHECK(cps("\xe2\x82") == V{0xFFFD});
  CHECK(cps("\xf0\x80\x80") == V{0xFFFD, 0xFFFD, 0xFFFD});
  CHECK(cps("\xed\xa0\x80") == V{0xFFFD, 0xFFFD, 0xFFFD});
  CHECK(cps("\xc0\xaf") == V{0xFFFD, 0xFFFD});
  CHECK(cps("a\xff" "b") == V{'a', 0xFFFD, 'b'});
  CHECK(cps("\xf4\x90\x80\x80") == V{0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD});
  CHECK(cps("\xe2\x82\xac") == V{0x20AC});
  CHECK(cps("\xf0\x9f\x98\x80x") == V{0x1F600, 'x'});
  CHECK(unicode::sanitize_utf8("a\xf0\x9f\x98" "b") == "a\xef\xbf\xbd" "b");
  const auto d = unicode::decode_utf8("\xf0\x9f\x98" "b");
  CHECK(d[0].byte_begin == 0);
  CHECK(d[0].byte_end == 3);
  CHECK(d[1].byte_begin == 3);
}

TEST_CASE("unicode: classes, lower case and accent stripping") {
  CHECK(unicode::is_punctuation('$'));         // ASCII range, category Sc
  CHECK(unicode::is_punctuation(0x2014));      // em dash, Pd
  CHECK(unicode::is_punctuation(0x00BF));      // inverted question mark, Po
  CHECK_FALSE(unicode::is_punctuation(0x20AC));  // euro sign, Sc
  CHECK(unicode::is_control(0x200B));          // Cf
  CHECK(unicode::is_control(0xE000));          // Co
  CHECK(unicode::is_control(0xE0080));         // Cn
  CHECK_FALSE(unicode::is_control('\t'));
  CHECK(unicode::is_whitespace(0x3000));
  CHECK(unicode::is_whitespace(0x2028));
  CHECK_FALSE(unicode::is_whitespace(0x200B));
  CHECK(unicode::is_nonspacing_mark(0x0301));
  CHECK(unicode::is_cjk_ideograph(0x4EAC));
  CHECK_FALSE(unicode::is_cjk_ideograph(0xD55C));  // Hangul
  auto lower = [](char32_t c) {
    std::u32string s;
    unicode::to_lower(c, [&](char32_t l) { s += l; });
    return s;
  };
  CHECK(lower(U'A') == U"a");
  CHECK(lower(U'\u00C0') == U"\u00E0");
  CHECK(lower(U'\u0130') == U"i\u0307");
  CHECK(lower(U'\u03A3') == U"\u03C3");  // per character: never the final sigma
  CHECK(lower(U'\u0100') == U"\u0101");
  CHECK(lower(U'\U00010400') == U"\U00010428");
  CHECK(lower(U'\u00DF') == U"\u00DF");
  auto strip = [](char32_t c) {
    std::u32string s;
    unicode::strip_accents(c, [&](char32_t l) { s += l; });
    return s;
  };
  CHECK(strip(U'\u00E9') == U"e");
  CHECK(strip(U'\u1EC7') == U"e");        // e with circumflex and dot below
  CHECK(strip(U'\u2126') == U"\u03A9");   // ohm sign -> omega (singleton)
  CHECK(strip(U'\u0301') == U"");
  CHECK(strip(U'\uD55C') == U"\u1112\u1161\u11AB");  // Hangul syllable -> jamo
  CHECK(strip(U'\u00DF') == U"\u00DF");
}

TEST_CASE("wordpiece: outputs of Hugging Face's bert-base-uncased known by heart") {
  const auto& t = bert_uncased();
  CHECK(t.encode("Hello, my dog is cute").ids == std::vector<std::int32_t>{101, 7592, 1010, 2026, 3899, 2003, 10140, 102});
  CHECK(t.encode("The capital of France is [MASK].").ids ==
        std::vector<std::int32_t>{101, 1996, 3007, 1997, 2605, 2003, 103, 1012, 102});
  CHECK(t.encode("Hello world").ids == std::vector<std::int32_t>{101, 7592, 2088, 102});
  const auto e = t.encode("How old are you?", "I'm 6 years old");
  CHECK(e.tokens == std::vector<std::string>{"[CLS]", "how", "old", "are", "you", "?", "[SEP]", "i", "'", "m", "6", "years", "old", "[SEP]"});
  CHECK(e.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1});
  CHECK(e.sequence_ids == std::vector<std::int32_t>{-1, 0, 0, 0, 0, 0, -1, 1, 1, 1, 1, 1, 1, -1});
  CHECK(e.special_tokens_mask == std::vector<std::uint8_t>{1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1});
  CHECK(t.decode(e.ids) == "how old are you? i'm 6 years old");
  CHECK(t.decode(e.ids, false) == "[CLS] how old are you? [SEP] i'm 6 years old [SEP]");
}

TEST_CASE("wordpiece: >= 100 SST-2 sentences, RTE pairs and hard cases against the Python reimplementation") {
  const auto cases = load_cases("wordpiece_expectations.jsonl");
  REQUIRE(cases.size() >= 200);
  auto cased = WordPieceTokenizer::from_vocab_file(data("bert-base-uncased-vocab.txt"));
  cased.set_lowercase(false);
  for (const auto& c : cases) check_case(c["lowercase"].get<bool>() ? bert_uncased() : cased, c, true);
}

TEST_CASE("wordpiece: tokenizer.json (BertNormalizer without accent stripping) against the Python reimplementation") {
  const auto t = WordPieceTokenizer::from_tokenizer_json(data("wordpiece_small.tokenizer.json"));
  CHECK(t.vocab_size() == 2500);
  CHECK_FALSE(t.options().strip_accents.value_or(true));
  for (const auto& c : load_cases("wordpiece_small_expectations.jsonl")) check_case(t, c, true);

  // The older serialisation has no model.type: the same tokenizer.
  std::ifstream f(data("wordpiece_small.tokenizer.json"));
  auto j = json::parse(f);
  j["model"].erase("type");
  const auto old = WordPieceTokenizer::from_json(j, "old.json");
  CHECK(old.encode("Naïve tests, again!").ids == t.encode("Naïve tests, again!").ids);
}

TEST_CASE("wordpiece: offsets point into the original text, bytes and code points") {
  const auto& t = bert_uncased();
  const std::string text = "Ünïcödé  naïveté [MASK] 北京!";
  const auto e = t.encode(text);
  for (std::size_t i = 0; i < e.size(); ++i) {
    if (e.sequence_ids[i] < 0) continue;
    const auto piece = text.substr(e.offsets[i].begin, e.offsets[i].end - e.offsets[i].begin);
    INFO(e.tokens[i] << " <- " << piece);
    CHECK(!piece.empty());
    CHECK(unicode::decode_utf8(text.substr(0, e.offsets[i].begin)).size() == e.char_offsets[i].begin);
  }
  CHECK(text.substr(e.offsets[1].begin, e.offsets[1].end - e.offsets[1].begin) == "Ünïcödé");
}

TEST_CASE("wordpiece: invalid UTF-8 and arbitrary bytes never crash") {
  const auto& t = bert_uncased();
  const auto e = t.encode("ab\xff" "cd \xf0\x9f x");  // U+FFFD is dropped by clean_text
  CHECK(e.tokens == std::vector<std::string>{"[CLS]", "abc", "##d", "x", "[SEP]"});
  CHECK(e.offsets[1] == Offset{0, 4});   // "ab\xffc": the dropped byte lies inside the piece
  CHECK(e.offsets[3] == Offset{9, 10});
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string s(rng() % 64, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() % 256);
    if (round % 3 == 0) s += "[MASK]" + s;
    const auto x = t.encode(s, s, {.max_length = static_cast<std::size_t>(rng() % 40)});
    for (std::size_t i = 0; i < x.size(); ++i) {
      CHECK(x.offsets[i].begin <= x.offsets[i].end);
      CHECK(x.offsets[i].end <= s.size());
    }
    CHECK_NOTHROW(t.decode(x.ids));
  }
}

TEST_CASE("tokenizer: longest_first truncation and padding") {
  const auto& t = bert_uncased();
  const auto e = t.encode("one two three four five six", "seven eight", {.max_length = 9});
  CHECK(e.tokens == std::vector<std::string>{"[CLS]", "one", "two", "three", "four", "[SEP]", "seven", "eight", "[SEP]"});
  const auto f = t.encode("one two three four five six", "seven eight nine ten eleven", {.max_length = 9});
  CHECK(f.tokens == std::vector<std::string>{"[CLS]", "one", "two", "three", "[SEP]", "seven", "eight", "nine", "[SEP]"});
  CHECK(t.encode("one two three", {.max_length = 1}).tokens == std::vector<std::string>{"[CLS]", "[SEP]"});
  CHECK(t.encode("one two three", {.max_length = 4, .add_special_tokens = false}).size() == 3);
  CHECK(t.encode("one two", "three", {.add_special_tokens = false}).type_ids == std::vector<std::int32_t>{0, 0, 1});
  auto g = t.encode("one two");
  pad(g, 6, 0, "[PAD]");
  CHECK(g.ids == std::vector<std::int32_t>{101, 2028, 2048, 102, 0, 0});
  CHECK(g.attention_mask == std::vector<std::uint8_t>{1, 1, 1, 1, 0, 0});
  CHECK(t.decode(g.ids) == "one two");
}

TEST_CASE("wordpiece: malformed vocab.txt names the file and line") {
  auto throws = [](const std::string& name, const std::string& content, const std::string& what) {
    const auto path = write_temp(name, content);
    CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_vocab_file(path), doctest::Contains(what.c_str()), TokenizerError);
    std::remove(path.c_str());
  };
  throws("empty.txt", "", "empty.txt: empty vocabulary");
  throws("dup.txt", "[UNK]\n[CLS]\n[SEP]\nhello\nhello\n", "dup.txt:5: duplicate token \"hello\" (first at line 4)");
  throws("nounk.txt", "[CLS]\n[SEP]\nhello\n", "nounk.txt: the vocabulary has no unknown token \"[UNK]\"");
  throws("nocls.txt", "[UNK]\n[SEP]\nhello\n", "nocls.txt: the vocabulary has no [CLS] token");
  throws("blank.txt", "[UNK]\n\nhello\n", "blank.txt:2: empty token");
  throws("bad.txt", "[UNK]\nhel\xfflo\n", "bad.txt:2: invalid UTF-8");
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_vocab_file("/nonexistent/vocab.txt"),
                       "/nonexistent/vocab.txt: cannot open file", TokenizerError);
  CHECK_THROWS_AS(bert_uncased().decode(std::vector<std::int32_t>{30522}), TokenizerError);
}

TEST_CASE("tokenizer.json: missing fields and wrong types name the file and the field") {
  std::ifstream f(data("wordpiece_small.tokenizer.json"));
  const auto good = json::parse(f);
  auto fails = [](const json& j, const std::string& what) {
    CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_json(j, "x.json"), doctest::Contains(what.c_str()), TokenizerError);
  };
  auto j = good;
  j.erase("model");
  fails(j, "x.json: (root): missing field \"model\"");
  j = good;
  j["model"]["vocab"] = json::array();
  fails(j, "x.json: model.vocab: expected an object");
  j = good;
  j["model"]["vocab"]["hello"] = "7";
  fails(j, "x.json: model.vocab[\"hello\"]: expected an integer");
  j = good;
  j["model"]["type"] = "BPE";
  fails(j, "x.json: model.type: expected \"WordPiece\"");
  j = good;
  j["normalizer"] = {{"type", "NFKC"}};
  fails(j, "x.json: normalizer.type: only BertNormalizer");
  j = good;
  j["normalizer"]["lowercase"] = "yes";
  fails(j, "x.json: normalizer.lowercase: expected true or false");
  j = good;
  j["post_processor"]["special_tokens"].erase("[SEP]");
  fails(j, "missing field \"[SEP]\"");
  j = good;
  j["model"]["unk_token"] = "<unk>";
  fails(j, "x.json: the vocabulary has no unknown token \"<unk>\"");
  const auto path = write_temp("broken.json", "{\"model\": ");
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_tokenizer_json(path), doctest::Contains("broken.json: invalid JSON"), TokenizerError);
  CHECK_THROWS_WITH_AS(UnigramTokenizer::from_tokenizer_json(path), doctest::Contains("broken.json: invalid JSON"), TokenizerError);
  std::remove(path.c_str());
}

TEST_CASE("unigram: tokenizer.json against the SentencePiece library (tiny model)") {
  const auto t = UnigramTokenizer::from_tokenizer_json(data("tiny_unigram.tokenizer.json"));
  CHECK(t.vocab_size() == 800);
  const auto cases = load_cases("unigram_expectations.jsonl");
  REQUIRE(cases.size() >= 70);
  for (const auto& c : cases) check_case(t, c, false);
}

TEST_CASE("unigram: offsets, words and arbitrary bytes") {
  const auto t = UnigramTokenizer::from_tokenizer_json(data("tiny_unigram.tokenizer.json"));
  const std::string text = "  the  movie's ending ";
  const auto e = t.encode(text);
  CHECK(e.tokens.back() == "</s>");
  for (std::size_t i = 0; i + 1 < e.size(); ++i) {  // ASCII, identity rules: piece minus its "▁"
    auto tok = e.tokens[i];
    if (tok.starts_with("\xE2\x96\x81")) tok.erase(0, 3);
    CHECK(text.substr(e.offsets[i].begin, e.offsets[i].end - e.offsets[i].begin) == tok);
  }
  const std::string lig = "ﬁne\tﬂour";  // rules: U+FB01 -> "fi", U+FB02 -> "fl", tab -> space
  const auto g = t.encode(lig);
  for (std::size_t i = 0; i + 1 < g.size(); ++i) {
    const auto piece = lig.substr(g.offsets[i].begin, g.offsets[i].end - g.offsets[i].begin);
    INFO(g.tokens[i] << " <- '" << piece << "'");
    CHECK(!piece.empty());
    CHECK(piece.find('\t') == std::string::npos);
  }
  CHECK(e.word_ids.front() == 0);
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    std::string s(rng() % 48, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() % 256);
    const auto x = t.encode(s, "x</s>" + s, {.max_length = static_cast<std::size_t>(rng() % 30)});
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(x.offsets[i].begin <= x.offsets[i].end);
    CHECK_NOTHROW(t.decode(x.ids, false));
  }
}

TEST_CASE("unigram: malformed tokenizer.json names the file and the field") {
  std::ifstream f(data("tiny_unigram.tokenizer.json"));
  const auto good = json::parse(f);
  auto fails = [](const json& j, const std::string& what) {
    CHECK_THROWS_WITH_AS(UnigramTokenizer::from_json(j, "t5.json"), doctest::Contains(what.c_str()), TokenizerError);
  };
  auto j = good;
  j["model"]["vocab"][5] = "piece";
  fails(j, "t5.json: model.vocab[5]: expected [piece, score]");
  j = good;
  j["model"]["vocab"][5][1] = "high";
  fails(j, "t5.json: model.vocab[5]: expected a number");
  j = good;
  j["model"]["unk_id"] = 5000;
  fails(j, "t5.json: model.unk_id: outside the vocabulary");
  j = good;
  j["model"].erase("type");
  fails(j, "t5.json: model: missing field \"type\"");
  j = good;
  j["normalizer"]["normalizers"][0]["precompiled_charsmap"] = "AAAA!!";
  fails(j, "t5.json: precompiled_charsmap: invalid base64");
  j = good;
  j["normalizer"]["normalizers"][0]["precompiled_charsmap"] = "/////w==";
  fails(j, "corrupt precompiled_charsmap");
  j = good;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  fails(j, "t5.json: pre_tokenizer.type: unsupported pre-tokenizer \"ByteLevel\"");
  j = good;
  j["model"]["vocab"][7][0] = j["model"]["vocab"][6][0];
  fails(j, "t5.json: model.vocab[7]: duplicate piece");
}

// Needs -lsentencepiece: the build defines DEEPPROMPT_TEST_SENTENCEPIECE when it links the library.
#if defined(DEEPPROMPT_HAS_SENTENCEPIECE) && defined(DEEPPROMPT_TEST_SENTENCEPIECE)
TEST_CASE("sentencepiece: the library on the tiny model agrees with the expectations and the tokenizer.json") {
  const auto sp = SentencePieceTokenizer::from_file(data("tiny_unigram.model"));
  const auto uni = UnigramTokenizer::from_tokenizer_json(data("tiny_unigram.tokenizer.json"));
  for (const auto& c : load_cases("unigram_expectations.jsonl")) {
    check_case(sp, c, false);
    const auto a = encode_case(sp, c), b = encode_case(uni, c);
    INFO(c["text"].get<std::string>());
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)  // the library gives an expansion
      if (a.char_offsets[i].begin < a.char_offsets[i].end)      // (U+FB01 -> "fi") to its last piece
        CHECK_MESSAGE(a.char_offsets[i] == b.char_offsets[i], i << ": " << a.tokens[i] << " " << a.char_offsets[i].begin << "-" << a.char_offsets[i].end << " vs " << b.char_offsets[i].begin << "-" << b.char_offsets[i].end);
    CHECK(a.word_ids == b.word_ids);
  }
  const auto t5 = SentencePieceTokenizer::from_file(data("tiny_unigram.model"), {.extra_ids = 100});
  CHECK(t5.vocab_size() == 900);
  CHECK(t5.token_to_id("<extra_id_0>") == 899);
  const auto e = t5.encode("the <extra_id_0> movie");
  CHECK(e.ids[e.size() - 3] == 899);
  CHECK(t5.decode(e.ids, false).find("<extra_id_0>") != std::string::npos);
  CHECK_THROWS_WITH_AS(SentencePieceTokenizer::from_file("/nonexistent/spiece.model"),
                       doctest::Contains("/nonexistent/spiece.model: cannot load"), TokenizerError);
}
#endif

}  // namespace test_io_tokenizers
