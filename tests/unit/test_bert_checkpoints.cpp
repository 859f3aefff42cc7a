// models/bert.hpp's checkpoints against the fixture of tests/data/bert: load -> save -> load
// bit-exact, config.json against a static configuration, task checkpoints (prefix `bert.`,
// heads and buffers ignored as Hugging Face does), strict loading and its one error listing
// every problem.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

#include "bert_fixture.hpp"
#include "deepprompt/models/bert.hpp"

namespace test_bert_checkpoints {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using bert_fixture::FixtureCfg;
using bert_fixture::ids;
using bert_fixture::kDir;
using bert_fixture::max_abs_diff;
using bert_fixture::same_bits;
using bert_fixture::temp_dir;
using bert_fixture::want;
using dp::index_t;
using dp::Tensor;

namespace {

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Writes dir/config.json (the fixture's) and dir/model.safetensors with the fixture's tensors
// renamed by `rename` (empty result: dropped) plus `extra` entries.
template <class F>
void write_variant(const fs::path& dir, F rename, std::vector<dp::TensorEntry> extra = {}) {
  fs::copy_file(kDir / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  const auto src = dp::SafeTensorsFile::open(kDir / "model.safetensors");
  std::vector<dp::TensorEntry> entries = std::move(extra);
  for (const auto& n : src.names()) {
    const std::string m = rename(n);
    if (m.empty()) continue;
    const auto& info = src.info(n);
    const auto bytes = src.bytes(n);
    auto copy = std::make_shared<std::vector<std::byte>>(bytes.begin(), bytes.end());
    entries.push_back({m, info.dtype, info.shape, copy->data(), copy->size(), copy});
  }
  dp::save_safetensors(dir / "model.safetensors", entries);
}

}  // namespace

TEST_CASE("bert: load -> save -> load is bit-exact; save writes the same bytes as the fixture") {
  auto model = dp::DynamicBert<float>::from_pretrained(kDir);
  const auto dir = temp_dir("roundtrip");
  model.save_pretrained(dir);
  CHECK(file_bytes(dir / "model.safetensors") == file_bytes(kDir / "model.safetensors"));
  auto again = dp::DynamicBert<float>::from_pretrained(dir);
  auto a = dp::state_dict<float>(model), b = dp::state_dict<float>(again);
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) CHECK_MESSAGE(same_bits(t.flat, b.at(name).flat), name);
  const auto cfg = dp::read_bert_config(dir / "config.json");
  CHECK(cfg.hidden_size == 32);
  CHECK(cfg.max_position_embeddings == 12);
  CHECK(cfg.hidden_act == "gelu");
  fs::remove_all(dir);
}

TEST_CASE("bert: a static configuration rejects a config.json of other sizes, naming both") {
  CHECK_THROWS_WITH_AS(dp::Bert<dp::BertTiny>::from_pretrained(kDir),
                       doctest::Contains("hidden_size is 32 there but 128 (Hidden)"), dp::FormatError);
  try {
    dp::Bert<dp::BertConfig<2, 32, 4, 64, 99, 512, 2>>::from_pretrained(kDir);
    FAIL("no error");
  } catch (const dp::FormatError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("max_position_embeddings is 12 there but 512 (MaxPositions)") != std::string::npos);
    CHECK(msg.find("BertConfig<2, 32, 4, 64, 99, 512, 2>") != std::string::npos);
    CHECK(msg.find("config.json") != std::string::npos);
    CHECK(msg.find("hidden_size") == std::string::npos);  // only what differs
  }
  CHECK_THROWS_WITH_AS(dp::DynamicBert<float>::from_pretrained(kDir / "nowhere"), doctest::Contains("not a directory"),
                       dp::IoError);
}

TEST_CASE("bert: task checkpoints (bert. prefix), heads and buffers are loaded as Hugging Face does") {
  const auto dir = temp_dir("variants");
  const auto exp = dp::SafeTensorsFile::open(kDir / "expected.safetensors");
  std::vector<dp::TensorEntry> extra;
  auto pos_ids = Tensor<std::int64_t, 2>({1, 12});
  for (index_t i = 0; i < 12; ++i) pos_ids(0, i) = i;
  extra.push_back(dp::entry("bert.embeddings.position_ids", pos_ids));
  extra.push_back(dp::entry("classifier.weight", Tensor<float, 2>::zeros({2, 32})));
  extra.push_back(dp::entry("cls.seq_relationship.weight", Tensor<float, 2>::zeros({2, 32})));
  for (const char* n : {"cls.predictions.transform.dense.weight"}) extra.push_back(dp::entry(n, exp.load<float, 2>(n)));
  for (const char* n : {"cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
                        "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias"})
    extra.push_back(dp::entry(n, exp.load<float, 1>(n)));
  write_variant(
      dir, [](const std::string& n) { return "bert." + n; }, extra);

  std::vector<std::string> ignored;
  auto plain = dp::DynamicBert<float>::from_pretrained(dir, {.ignored = &ignored});
  CHECK(!plain.cls);
  CHECK(plain.pooler);
  CHECK(ignored.size() == 8);  // position_ids, classifier, seq_relationship, 5 x cls.predictions
  auto out = plain.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"));
  CHECK(max_abs_diff(out.last_hidden_state.value(), want<3>("last_hidden_state")) < 1e-5);

  auto mlm = dp::DynamicBert<float>::from_pretrained(dir, {.mlm_head = dp::BertPart::automatic});
  REQUIRE(mlm.cls);
  {
    dp::NoGradGuard no_grad;
    auto h = mlm.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids")).last_hidden_state;
    const double e = max_abs_diff(mlm.mlm_logits(h).value(), want<3>("mlm.logits"));
    MESSAGE("masked-LM logits: max |error| ", e);
    CHECK(e < 1e-5);
  }
  // saved with the head: bert.-prefixed, no tied decoder; loads back bit-exact
  const auto dir2 = temp_dir("mlm_save");
  mlm.save_pretrained(dir2);
  const auto saved = dp::SafeTensorsFile::open(dir2 / "model.safetensors");
  CHECK(saved.contains("bert.encoder.layer.1.output.LayerNorm.weight"));
  CHECK(saved.contains("cls.predictions.bias"));
  CHECK(!saved.contains("cls.predictions.decoder.weight"));
  auto mlm2 = dp::DynamicBert<float>::from_pretrained(dir2, {.mlm_head = dp::BertPart::yes});
  CHECK(same_bits(mlm2.cls->predictions.bias.value(), mlm.cls->predictions.bias.value()));
  CHECK(mlm2.config_json()["architectures"][0] == "BertForMaskedLM");

  // a head asked for but absent: strict loading lists its tensors
  CHECK_THROWS_WITH_AS(
      dp::DynamicBert<float>::from_pretrained(kDir, {.mlm_head = dp::BertPart::yes}),
      doctest::Contains("missing (5): cls.predictions.transform.dense.weight cls.predictions.transform.dense.bias"),
      dp::Error);
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST_CASE("bert: strict loading lists every missing, unexpected and mis-shaped tensor; the pooler is optional") {
  const auto dir = temp_dir("strict");
  std::vector<dp::TensorEntry> extra;
  extra.push_back(dp::entry("encoder.layer.2.output.dense.weight", Tensor<float, 2>::zeros({32, 64})));
  write_variant(
      dir,
      [](const std::string& n) -> std::string {
        if (n == "encoder.layer.0.attention.self.key.bias") return "";
        return n;
      },
      extra);
  try {
    dp::DynamicBert<float>::from_pretrained(dir);
    FAIL("no error");
  } catch (const dp::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("model.safetensors' does not fit the model") != std::string::npos);
    CHECK(msg.find("missing (1): encoder.layer.0.attention.self.key.bias") != std::string::npos);
    CHECK(msg.find("unexpected (1): encoder.layer.2.output.dense.weight") != std::string::npos);
  }
  auto loose = dp::DynamicBert<float>::from_pretrained(dir, {.strict = false});
  CHECK(loose.encoder.layer[0].attention.self_attention.key.bias->value()(0) == 0.f);  // left at its init

  // no pooler in the file: none in the model (automatic), an error when required
  write_variant(dir, [](const std::string& n) { return n.rfind("pooler.", 0) == 0 ? std::string() : n; });
  auto nopool = dp::DynamicBert<float>::from_pretrained(dir);
  CHECK(!nopool.pooler);
  auto out = nopool.forward(ids("input_ids"), ids("attention_mask"));
  CHECK(out.pooler_output.value().empty());
  CHECK_THROWS_WITH_AS(dp::DynamicBert<float>::from_pretrained(dir, {.pooler = dp::BertPart::yes}),
                       doctest::Contains("missing (2): pooler.dense.weight pooler.dense.bias"), dp::Error);
  dp::tape().release();
  fs::remove_all(dir);
}

}  // namespace test_bert_checkpoints
