// io/limits.hpp: every bound of Limits is enforced by the readers that allocate for it, before
// they allocate, and exceeding one throws LimitError whose message names the bound
// ("Limits::<field>"). Each test tightens one bound with ScopedLimits (or, where a file is cheap
// to make, exceeds the default).
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "deepprompt/io/config.hpp"
#include "deepprompt/io/limits.hpp"
#include "deepprompt/io/safetensors.hpp"
#include "deepprompt/io/sentencepiece.hpp"
#include "deepprompt/io/unigram.hpp"
#include "deepprompt/io/wordpiece.hpp"
#include "deepprompt/peft/peft_io.hpp"
#include "deepprompt/tasks/data/glue.hpp"
#include "deepprompt/tasks/data/squad.hpp"
#include "deepprompt/tasks/data/superglue.hpp"

namespace test_io_limits {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using doctest::Contains;

namespace {

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}
/// A safetensors file: the header (padded to 8 bytes), then `data_bytes` bytes.
std::string safetensors(std::string header, std::size_t data_bytes) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}
SafeTensorsFile open_bytes(const std::string& bytes) {
  return SafeTensorsFile::from_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "mem.safetensors");
}
std::string nested(std::size_t depth, std::string_view inner = "1") {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}
Limits with(auto&& set) {
  Limits l;
  set(l);
  return l;
}

struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& contents, std::string_view name = "f") {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / detail::cat("dp_limits_", rd(), "_", name);
    std::ofstream(path, std::ios::binary) << contents;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

const char* kBert = R"({"model_type": "bert", "vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "intermediate_size": 16})";

}  // namespace

TEST_CASE("limits: the defaults, ScopedLimits nests and restores, LimitError is a FormatError") {
  const Limits d;
  CHECK(d.safetensors_header_bytes == 100'000'000);
  CHECK(kSafeTensorsMaxHeader == d.safetensors_header_bytes);
  CHECK(limits().json_depth == d.json_depth);
  {
    ScopedLimits a(with([](Limits& l) { l.json_depth = 10; }));
    CHECK(limits().json_depth == 10);
    {
      ScopedLimits b(with([](Limits& l) { l.json_depth = 3; }));
      CHECK(limits().json_depth == 3);
    }
    CHECK(limits().json_depth == 10);
  }
  CHECK(limits().json_depth == d.json_depth);
  CHECK_THROWS_WITH_AS(check_limit("src", "size", 11, 10, "file_bytes"), "src: size 11 exceeds Limits::file_bytes = 10",
                       FormatError);
  CHECK_NOTHROW(check_limit("src", "size", 10, 10, "file_bytes"));
}

TEST_CASE("limits: safetensors_header_bytes") {
  const auto file = safetensors(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 2);
  CHECK(open_bytes(file).size() == 1);
  ScopedLimits guard(with([](Limits& l) { l.safetensors_header_bytes = 16; }));
  CHECK_THROWS_WITH_AS(open_bytes(file), Contains("Limits::safetensors_header_bytes = 16"), LimitError);
  // The default: a length field past 100 MB is refused before anything is read or allocated.
  ScopedLimits defaults(Limits{});
  CHECK_THROWS_WITH_AS(open_bytes(le64(100'000'001) + "{}"), Contains("Limits::safetensors_header_bytes = 100000000"),
                       LimitError);
}

TEST_CASE("limits: safetensors_tensors (the metadata does not count)") {
  const auto file = safetensors(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                R"("b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                2);
  {
    ScopedLimits guard(with([](Limits& l) { l.safetensors_tensors = 2; }));
    CHECK(open_bytes(file).size() == 2);
  }
  ScopedLimits guard(with([](Limits& l) { l.safetensors_tensors = 1; }));
  CHECK_THROWS_WITH_AS(open_bytes(file), Contains("tensor count 2 exceeds Limits::safetensors_tensors = 1"), LimitError);
}

TEST_CASE("limits: tensor_rank") {
  const auto file = safetensors(R"({"a":{"dtype":"U8","shape":[1,1,1],"data_offsets":[0,1]}})", 1);
  CHECK(open_bytes(file).size() == 1);
  ScopedLimits guard(with([](Limits& l) { l.tensor_rank = 2; }));
  CHECK_THROWS_WITH_AS(open_bytes(file), Contains("tensor \"a\": rank 3 exceeds Limits::tensor_rank = 2"), LimitError);
  // The default (64): a shape of 65 ones.
  ScopedLimits defaults(Limits{});
  std::string shape = "[1";
  for (int i = 0; i < 64; ++i) shape += ",1";
  shape += "]";
  CHECK_THROWS_WITH_AS(open_bytes(safetensors(R"({"a":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":[0,1]}})", 1)),
                       Contains("Limits::tensor_rank = 64"), LimitError);
}

TEST_CASE("limits: json_depth, in every JSON reader") {
  // The default (256): 256 levels read, 257 do not.
  CHECK_THROWS_WITH_AS(parse_config(nested(256), "c.json"), Contains("not a JSON object"), FormatError);
  CHECK_THROWS_WITH_AS(parse_config(nested(257), "c.json"),
                       "config 'c.json': JSON nesting depth 257 exceeds Limits::json_depth = 256", LimitError);
  // Deep enough to overflow a recursive printer's stack, were it not bounded first.
  CHECK_THROWS_AS(parse_config(nested(200'000), "c.json"), LimitError);

  ScopedLimits guard(with([](Limits& l) { l.json_depth = 2; }));
  const std::string deep = R"({"a": [[1]]})";  // depth 3
  CHECK_NOTHROW(parse_config(kBert, "c.json"));
  CHECK_THROWS_WITH_AS(parse_config(deep, "c.json"), Contains("Limits::json_depth = 2"), LimitError);
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_tokenizer_json_text(deep, "t.json"),
                       "t.json: JSON nesting depth 3 exceeds Limits::json_depth = 2", LimitError);
  CHECK_THROWS_WITH_AS(UnigramTokenizer::from_tokenizer_json_text(deep, "t.json"), Contains("Limits::json_depth"),
                       LimitError);
  CHECK_THROWS_WITH_AS(peft_io::AdapterConfig::parse(deep, "adapter_config.json"),
                       "adapter config 'adapter_config.json': JSON nesting depth 3 exceeds Limits::json_depth = 2",
                       LimitError);
  CHECK_THROWS_WITH_AS(data::parse_superglue<data::RteExample>(R"({"premise": "a", "hypothesis": "b"})" "\n" + deep + "\n", "rte.jsonl"),
                       "rte.jsonl:2: JSON nesting depth 3 exceeds Limits::json_depth = 2", LimitError);
  CHECK_THROWS_WITH_AS(data::parse_squad(deep, "squad.json"),
                       "squad.json: JSON nesting depth 3 exceeds Limits::json_depth = 2", LimitError);
  const auto st = safetensors(R"({"__metadata__":{"x":{"y":"z"}}})", 0);
  CHECK_THROWS_WITH_AS(open_bytes(st), Contains("safetensors 'mem.safetensors': JSON nesting depth 3 exceeds Limits::json_depth"),
                       LimitError);
}

TEST_CASE("limits: file_bytes, for every file read whole") {
  const TempFile config(kBert, "config.json");
  CHECK(std::holds_alternative<HfBertConfig>(read_config(config.path)));
  ScopedLimits guard(with([](Limits& l) { l.file_bytes = 16; }));
  const std::string name = config.path.string();
  const std::string named = "'" + name + "': file size";
  CHECK_THROWS_WITH_AS(read_text_file(config.path), Contains(named.c_str()), LimitError);
  CHECK_THROWS_WITH_AS(read_config(config.path), Contains("exceeds Limits::file_bytes = 16"), LimitError);
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_vocab_file(name), Contains("Limits::file_bytes"), LimitError);
  CHECK_THROWS_WITH_AS(UnigramTokenizer::from_tokenizer_json(name), Contains("Limits::file_bytes"), LimitError);
  CHECK_THROWS_WITH_AS(data::read_glue(data::GlueTask::sst2, config.path), Contains("Limits::file_bytes"), LimitError);
  std::istringstream stream(std::string(100'000, 'x'));
  CHECK_THROWS_WITH_AS(data::read_glue(data::GlueTask::sst2, stream, "stdin"),
                       Contains("'stdin': stream size"), LimitError);
#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
  CHECK_THROWS_WITH_AS(SentencePieceTokenizer::from_file(name), Contains("Limits::file_bytes = 16"), LimitError);
#endif
}

TEST_CASE("limits: vocab_size") {
  const std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
  CHECK(WordPieceTokenizer::from_vocab_text(vocab).vocab_size() == 5);
  {
    ScopedLimits guard(with([](Limits& l) { l.vocab_size = 4; }));
    CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_vocab_text(vocab, {}, "v.txt"),
                         "v.txt:5: vocabulary size 5 exceeds Limits::vocab_size = 4", LimitError);
    CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_vocab({"[UNK]", "[CLS]", "[SEP]", "a", "b"}, {}),
                         Contains("Limits::vocab_size = 4"), LimitError);
    CHECK_THROWS_WITH_AS(UnigramTokenizer::from_tokenizer_json_text(
                             R"({"model":{"type":"Unigram","vocab":[["a",0],["b",0],["c",0],["d",0],["e",0]]}})", "u.json"),
                         "u.json: model.vocab: vocabulary size 5 exceeds Limits::vocab_size = 4", LimitError);
  }
  // A token id sizes WordPiece's id table: an id past the bound is refused before the table is
  // made (here, with the default bound, an id that would ask for 2^31 entries).
  const std::string wp = R"({"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"x":2147483647}}})";
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_tokenizer_json_text(wp, "w.json"),
                       "w.json: model.vocab[\"x\"]: token id 2147483647 is not below Limits::vocab_size = 16777216",
                       LimitError);
  const std::string added =
      R"({"model":{"type":"Unigram","vocab":[["a",0]]},"added_tokens":[{"content":"<x>","id":20000000}]})";
  CHECK_THROWS_WITH_AS(UnigramTokenizer::from_tokenizer_json_text(added, "u.json"),
                       Contains("added_tokens[].id: token id 20000000 is not below Limits::vocab_size"), LimitError);
#ifdef DEEPPROMPT_HAS_SENTENCEPIECE
  ScopedLimits guard(with([](Limits& l) { l.vocab_size = 100; }));
  CHECK_THROWS_WITH_AS(SentencePieceTokenizer::from_file(std::string(DEEPPROMPT_TEST_DATA) + "/tokenizers/tiny_unigram.model"),
                       Contains("exceeds Limits::vocab_size = 100"), LimitError);
#endif
}

TEST_CASE("limits: token_bytes") {
  const std::string vocab = "[UNK]\n[CLS]\n[SEP]\n" + std::string(40, 'a') + "\n";
  CHECK(WordPieceTokenizer::from_vocab_text(vocab).vocab_size() == 4);
  ScopedLimits guard(with([](Limits& l) { l.token_bytes = 32; }));
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_vocab_text(vocab, {}, "v.txt"),
                       "v.txt:4: token length 40 exceeds Limits::token_bytes = 32", LimitError);
  const std::string long_piece = R"({"model":{"type":"Unigram","vocab":[[")" + std::string(33, 'b') + R"(",0]]}})";
  CHECK_THROWS_WITH_AS(UnigramTokenizer::from_tokenizer_json_text(long_piece, "u.json"),
                       "u.json: model.vocab[0]: token length 33 exceeds Limits::token_bytes = 32", LimitError);
  const std::string wp = R"({"model":{"type":"WordPiece","vocab":{"[UNK]":0,")" + std::string(33, 'c') + R"(":1}}})";
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_tokenizer_json_text(wp, "w.json"), Contains("Limits::token_bytes = 32"),
                       LimitError);
}

TEST_CASE("limits: model_parameters, with products that would overflow") {
  // bert-base: 1.1e8 parameters, far below the default.
  CHECK_NOTHROW(read_config(std::string(DEEPPROMPT_TEST_DATA) + "/io/bert-base-uncased.config.json"));
  CHECK_NOTHROW(read_config(std::string(DEEPPROMPT_TEST_DATA) + "/io/t5-small.config.json"));
  const std::string huge = R"({"model_type": "bert", "vocab_size": 10000000, "hidden_size": 1000000,
                               "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 1})";
  CHECK_THROWS_WITH_AS(parse_config(huge, "c.json"),
                       Contains("config 'c.json': the parameter count implied by the dimensions"), LimitError);
  CHECK_THROWS_WITH_AS(parse_config(huge, "c.json"), Contains("exceeds Limits::model_parameters = 1000000000000"),
                       LimitError);
  // Dimensions whose product overflows 64 bits saturate and are refused.
  const std::string overflow = R"({"model_type": "t5", "vocab_size": 4611686018427387904, "d_model": 4611686018427387904,
                                   "d_kv": 1, "d_ff": 1, "num_layers": 1, "num_heads": 1})";
  CHECK_THROWS_WITH_AS(parse_config(overflow, "c.json"), Contains("18446744073709551615 exceeds Limits::model_parameters"),
                       LimitError);
  ScopedLimits guard(with([](Limits& l) { l.model_parameters = 1000; }));
  CHECK_THROWS_WITH_AS(parse_config(kBert, "c.json"), Contains("Limits::model_parameters = 1000"), LimitError);
}

}  // namespace test_io_limits
