// io/config.hpp: Hugging Face config.json for BERT and T5 (hub-style fixtures, defaults, errors).
#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>

#include "deepprompt/io/config.hpp"

namespace test_io_config {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace fs = std::filesystem;
using doctest::Contains;

namespace {
const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA) / "io";

HfBertConfig bert(std::string_view text) { return std::get<HfBertConfig>(parse_config(text, "test/config.json")); }
HfT5Config t5(std::string_view text) { return std::get<HfT5Config>(parse_config(text, "test/config.json")); }

constexpr std::string_view kBertDims =
    R"("vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16)";
constexpr std::string_view kT5Dims =
    R"("vocab_size": 100, "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 2, "num_heads": 2)";
std::string bert_json(std::string_view extra = "") {
  return detail::cat(R"({"model_type": "bert", )", kBertDims, extra.empty() ? "" : ", ", extra, "}");
}
std::string t5_json(std::string_view extra = "") {
  return detail::cat(R"({"model_type": "t5", )", kT5Dims, extra.empty() ? "" : ", ", extra, "}");
}
}  // namespace

TEST_CASE("config: bert-base-uncased") {
  const auto c = read_bert_config(kData / "bert-base-uncased.config.json");
  CHECK(c.model_type == "bert");
  CHECK(c.vocab_size == 30522);
  CHECK(c.hidden_size == 768);
  CHECK(c.num_hidden_layers == 12);
  CHECK(c.num_attention_heads == 12);
  CHECK(c.intermediate_size == 3072);
  CHECK(c.hidden_act == "gelu");
  CHECK(c.max_position_embeddings == 512);
  CHECK(c.type_vocab_size == 2);
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(c.pad_token_id == 0);
  CHECK(c.hidden_dropout_prob == 0.1);
  CHECK(c.attention_probs_dropout_prob == 0.1);
  CHECK(c.position_embedding_type == "absolute");
  CHECK(!c.classifier_dropout.has_value());
  CHECK(std::holds_alternative<HfBertConfig>(read_config(kData / "bert-base-uncased.config.json")));
}

TEST_CASE("config: t5-small (old hub file: most T5 fields absent) and t5-v1_1-small (gated-gelu)") {
  const auto c = read_t5_config(kData / "t5-small.config.json");
  CHECK(c.model_type == "t5");
  CHECK(c.vocab_size == 32128);
  CHECK(c.d_model == 512);
  CHECK(c.d_kv == 64);
  CHECK(c.d_ff == 2048);
  CHECK(c.num_layers == 6);
  CHECK(c.num_decoder_layers == 6);  // absent: num_layers
  CHECK(c.num_heads == 8);
  CHECK(c.relative_attention_num_buckets == 32);
  CHECK(c.relative_attention_max_distance == 128);  // absent: HF default
  CHECK(c.dropout_rate == 0.1);
  CHECK(c.layer_norm_epsilon == 1e-6);
  CHECK(c.feed_forward_proj == "relu");
  CHECK(!c.is_gated_act);
  CHECK(c.dense_act_fn == "relu");
  CHECK(c.tie_word_embeddings);
  CHECK(c.decoder_start_token_id == 0);
  CHECK(c.eos_token_id == 1);
  CHECK(c.pad_token_id == 0);

  const auto v = read_t5_config(kData / "t5-v1_1-small.config.json");
  CHECK(v.d_ff == 1024);
  CHECK(v.num_layers == 8);
  CHECK(v.num_decoder_layers == 8);
  CHECK(v.num_heads == 6);
  CHECK(v.d_kv * v.num_heads != v.d_model);  // allowed for T5
  CHECK(v.feed_forward_proj == "gated-gelu");
  CHECK(v.is_gated_act);
  CHECK(v.dense_act_fn == "gelu_new");  // as transformers maps it
  CHECK(!v.tie_word_embeddings);
}

TEST_CASE("config: a folder means its config.json") {
  const auto dir = fs::temp_directory_path() / ("dp_io_config_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kData / "t5-small.config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  CHECK(read_t5_config(dir).d_model == 512);
  fs::remove_all(dir);
}

TEST_CASE("config: absent or null optional fields take Hugging Face's defaults") {
  const auto b = bert(bert_json());
  const HfBertConfig hf;  // the struct's defaults are HfBertConfig()'s
  CHECK(b.hidden_act == hf.hidden_act);
  CHECK(b.max_position_embeddings == 512);
  CHECK(b.type_vocab_size == 2);
  CHECK(b.layer_norm_eps == 1e-12);
  CHECK(b.hidden_dropout_prob == 0.1);
  CHECK(b.position_embedding_type == "absolute");
  CHECK(bert(bert_json(R"("classifier_dropout": null, "pad_token_id": null)")).pad_token_id == 0);
  CHECK(bert(bert_json(R"("classifier_dropout": 0.2, "hidden_act": "gelu_new")")).classifier_dropout == 0.2);
  CHECK(bert(bert_json(R"("hidden_dropout_prob": 0)")).hidden_dropout_prob == 0.0);  // an integer is a number

  const auto t = t5(t5_json(R"("num_decoder_layers": null, "pad_token_id": 3)"));
  CHECK(t.num_decoder_layers == 2);
  CHECK(t.decoder_start_token_id == 3);  // absent: pad_token_id, as T5 shifts right with it
  CHECK(t5(t5_json(R"("num_decoder_layers": 5)")).num_decoder_layers == 5);
  CHECK(t5(t5_json(R"("feed_forward_proj": "gated-silu")")).dense_act_fn == "silu");
  CHECK(std::get<HfT5Config>(parse_config(R"({"model_type": "mt5", )" + std::string(kT5Dims) + "}")).model_type == "mt5");
}

TEST_CASE("config: errors name the file and the field") {
  // missing required field / null required field
  CHECK_THROWS_WITH_AS(bert(R"({"model_type": "bert", "vocab_size": 10})"),
                       Contains("config 'test/config.json': field \"hidden_size\": missing (required)"), FormatError);
  CHECK_THROWS_WITH_AS(t5(R"({"model_type": "t5", "vocab_size": 10, "d_model": null})"),
                       Contains("field \"d_model\": is null"), FormatError);
  CHECK_THROWS_WITH_AS(bert(R"({"vocab_size": 10})"), Contains("field \"model_type\": missing"), FormatError);
  // wrong JSON types
  CHECK_THROWS_WITH_AS(bert(bert_json(R"("max_position_embeddings": "512")")),
                       Contains("field \"max_position_embeddings\": expected an integer, got \"512\""), FormatError);
  CHECK_THROWS_WITH_AS(bert(R"({"model_type": "bert", "vocab_size": 100, "hidden_size": 768.5})"),
                       Contains("field \"hidden_size\": expected an integer, got 768.5"), FormatError);
  CHECK_THROWS_WITH_AS(bert(bert_json(R"("hidden_act": 5)")), Contains("field \"hidden_act\": expected a string"),
                       FormatError);
  CHECK_THROWS_WITH_AS(bert(bert_json(R"("layer_norm_eps": "1e-12")")),
                       Contains("field \"layer_norm_eps\": expected a number"), FormatError);
  CHECK_THROWS_WITH_AS(t5(t5_json(R"("tie_word_embeddings": 1)")),
                       Contains("field \"tie_word_embeddings\": expected true or false, got 1"), FormatError);
  CHECK_THROWS_WITH_AS(bert(bert_json(R"("vocab_size": 18446744073709551615)")), Contains("out of range"), FormatError);
  CHECK_THROWS_WITH_AS(parse_config(R"({"model_type": 5})", "x.json"),
                       Contains("config 'x.json': field \"model_type\": expected a string"), FormatError);
  // unknown model type, not JSON, not an object
  CHECK_THROWS_WITH_AS(parse_config(R"({"model_type": "gpt2"})", "m/config.json"),
                       Contains("config 'm/config.json': field \"model_type\": unknown model_type \"gpt2\""), FormatError);
  CHECK_THROWS_WITH_AS(parse_config("{\"model_type\": ", "c.json"), Contains("config 'c.json': invalid JSON"), FormatError);
  CHECK_THROWS_WITH_AS(parse_config("[1, 2]", "c.json"), Contains("config 'c.json': not a JSON object"), FormatError);
  // inconsistent values
  CHECK_THROWS_WITH_AS(bert(R"({"model_type": "bert", "vocab_size": 10, "hidden_size": 10, "num_hidden_layers": 1,
                                "num_attention_heads": 3, "intermediate_size": 4})"),
                       Contains("field \"num_attention_heads\": 3 does not divide hidden_size 10"), FormatError);
  CHECK_THROWS_WITH_AS(t5(R"({"model_type": "t5", "vocab_size": 10, "d_model": 0})"),
                       Contains("field \"d_model\": must be positive, got 0"), FormatError);
  CHECK_THROWS_WITH_AS(bert(bert_json(R"("hidden_dropout_prob": 1.5)")),
                       Contains("field \"hidden_dropout_prob\": must be in [0, 1)"), FormatError);
  CHECK_THROWS_WITH_AS(bert(bert_json(R"("pad_token_id": 100)")),
                       Contains("field \"pad_token_id\": 100 is not a token id below vocab_size 100"), FormatError);
  CHECK_THROWS_WITH_AS(t5(t5_json(R"("eos_token_id": -1)")), Contains("field \"eos_token_id\""), FormatError);
  CHECK_THROWS_WITH_AS(t5(t5_json(R"("layer_norm_epsilon": 0)")), Contains("field \"layer_norm_epsilon\": must be positive"),
                       FormatError);
  CHECK_THROWS_WITH_AS(t5(t5_json(R"("feed_forward_proj": "gated-foo")")),
                       Contains("field \"feed_forward_proj\": \"gated-foo\" is not"), FormatError);
  CHECK_THROWS_WITH_AS(t5(t5_json(R"("feed_forward_proj": "swiglu-gated")")), Contains("\"feed_forward_proj\""),
                       FormatError);
  // the wrong family, a missing file
  CHECK_THROWS_WITH_AS(read_bert_config(kData / "t5-small.config.json"), Contains("\"t5\" is not a BERT model"),
                       FormatError);
  CHECK_THROWS_WITH_AS(read_t5_config(kData / "bert-base-uncased.config.json"), Contains("\"bert\" is not a T5 model"),
                       FormatError);
  CHECK_THROWS_WITH_AS(read_config(kData / "no-such.config.json"), Contains("no-such.config.json"), IoError);
}

}  // namespace test_io_config
