// peft/use_lite_method.hpp and tasks/runners/use_classification.hpp on a tiny random
// USE-Lite-shaped model (tests/unit/use_lite_tiny.hpp) with the real tokenizer's vocabulary
// (tests/data/use_lite/vocab.json): what each method trains, that training leaves the frozen
// encoder bit for bit as it was, and that a saved adapter reads back to the same predictions.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "deepprompt/tasks/runners/use_classification.hpp"
#include "use_lite_tiny.hpp"

namespace test_use_method {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace fs = std::filesystem;

namespace {

UseLite<float> tiny() { return dp_test::tiny_use_lite<float>(3, 0.2, 8002); }

const UseTokenizer& tokenizer() {
  static const UseTokenizer t = UseTokenizer::from_file(fs::path(DEEPPROMPT_TEST_DATA) / "use_lite" / "vocab.json");
  return t;
}

tasks::TextSplits toy_data() {
  tasks::TextSplits s;
  s.labels = {"negative", "positive"};
  const char* pos[] = {"a good film", "great fun", "wonderful and good", "I loved it", "good good", "a great movie"};
  const char* neg[] = {"a bad film", "awful", "terrible and bad", "I hated it", "bad bad", "a boring movie"};
  for (int i = 0; i < 6; ++i) {
    s.train.push_back({pos[i], std::nullopt, 1});
    s.train.push_back({neg[i], std::nullopt, 0});
  }
  s.eval = s.train;
  return s;
}

// Every parameter's bytes by name (a copy).
std::map<std::string, std::vector<float>> snapshot(UseLite<float>& m) {
  std::map<std::string, std::vector<float>> out;
  for_each_parameter(m, [&](const std::string& n, auto& p) {
    out[n].assign(p.value().data(), p.value().data() + p.value().size());
  });
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dp_use_method_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

}  // namespace

TEST_CASE("use lite method: what each method trains") {
  CHECK(use_method_from_name("ptv2") == UseMethod::ptv2);
  CHECK(use_method_from_name("ptv2-hidden") == UseMethod::ptv2_hidden);
  CHECK(!use_method_from_name("prefix-tuning"));
  for (const auto m : {UseMethod::ptv2, UseMethod::ptv2_hidden, UseMethod::prefix, UseMethod::prompt, UseMethod::ptuning,
                       UseMethod::probe, UseMethod::lora, UseMethod::full})
    CHECK(use_method_from_name(use_method_name(m)) == m);
  auto ptv2 = UseLiteMethod::create(tiny(), UseMethod::ptv2, {.tokens = 4});
  CHECK(parameter_count(ptv2, true) == 4 * (16 + 32));
  auto hidden = UseLiteMethod::create(tiny(), UseMethod::ptv2_hidden, {.tokens = 4});
  CHECK(parameter_count(hidden, true) == 4 * (8 + 16));  // each layer's input width
  auto prefix = UseLiteMethod::create(tiny(), UseMethod::prefix, {.tokens = 4, .projection = 6});
  CHECK(parameter_count(prefix, true) == 4 * 16 + (6 * 16 + 6) + (48 * 6 + 48));
  auto prompt = UseLiteMethod::create(tiny(), UseMethod::prompt, {.tokens = 4, .seed = 3});
  REQUIRE(prompt.input_prompt);
  CHECK(parameter_count(prompt, true) == 4 * 8);  // the embedding width
  // Sampled from the vocabulary: every row is a row of the embedding table.
  const auto& table = prompt.use.embeddings.weight.value();
  for (index_t i = 0; i < 4; ++i) {
    bool found = false;
    for (index_t v = 0; v < table.extent(0) && !found; ++v)
      found = std::memcmp(&table(v, 0), &prompt.input_prompt->embedding.value()(i, 0), 8 * sizeof(float)) == 0;
    CHECK(found);
  }
  auto ptuning = UseLiteMethod::create(tiny(), UseMethod::ptuning, {.tokens = 4});
  CHECK(parameter_count(ptuning, true) == 4 * 8 + 3 * (8 * 8 + 8));  // embedding + MLP 8 -> 8 -> 8 -> 8
  auto probe = UseLiteMethod::create(tiny(), UseMethod::probe);
  CHECK(parameter_count(probe, true) == 0);
  auto lora = UseLiteMethod::create(tiny(), UseMethod::lora, {.lora_r = 2});
  REQUIRE(lora.lora);
  CHECK(lora.lora->modules == std::vector<std::string>{"layer.0.attention.q", "layer.0.attention.v",
                                                       "layer.1.attention.q", "layer.1.attention.v"});
  CHECK(parameter_count(lora, true) == 2 * 2 * (8 + 8) + 2 * 2 * (16 + 16));
  auto full = UseLiteMethod::create(tiny(), UseMethod::full);
  CHECK(parameter_count(full, true) == parameter_count(full));
  // LoRA starts as the base model (B = 0); the prefix changes the output.
  const std::vector<std::vector<std::int32_t>> ids{{10, 20, 30}, {40}};
  const auto base = probe.forward(ids, false).value();
  const auto with_lora = lora.forward(ids, false).value();
  CHECK(std::memcmp(base.data(), with_lora.data(), sizeof(float) * base.size()) == 0);
  for (auto* m : {&ptv2, &hidden, &prefix, &prompt, &ptuning}) {
    CAPTURE(use_method_name(m->method()));
    const auto with_prompt = m->forward(ids, false).value();
    float diff = 0;
    for (index_t i = 0; i < base.size(); ++i) diff = std::max(diff, std::abs(base.data()[i] - with_prompt.data()[i]));
    CHECK(diff > 1e-4f);
  }
}

TEST_CASE("use lite runner: training changes only the method and the head; the adapter reads back") {
  for (const auto method : {UseMethod::ptv2, UseMethod::ptv2_hidden, UseMethod::prefix, UseMethod::prompt,
                            UseMethod::ptuning, UseMethod::probe, UseMethod::lora, UseMethod::full}) {
    CAPTURE(use_method_name(method));
    const fs::path out = fresh_dir(use_method_name(method));
    tasks::UseClassificationRunner runner(UseLiteMethod::create(tiny(), method, {.tokens = 3, .projection = 4, .lora_r = 2}), tokenizer(),
                                          toy_data(), {.max_length = 6, .eval_batch_size = 5, .seed = 1}, 0.1);
    const auto before = snapshot(runner.model.backbone.use);
    const auto head_before = runner.model.head.classifier.weight.value().clone();
    std::vector<float> prefix_before;
    if (method == UseMethod::ptv2) {
      const auto& r = runner.model.backbone.prompt->rows[1].value();
      prefix_before.assign(r.data(), r.data() + r.size());
    }
    train::Trainer trainer(runner, {.epochs = 4, .batch_size = 4, .lr = 3e-2, .weight_decay = 0.0, .seed = 2,
                                    .out_dir = out, .progress = train::ProgressMode::off});
    const auto best = trainer.train();
    CHECK(best.at("accuracy") >= 0.5);
    const auto after = snapshot(runner.model.backbone.use);
    int changed = 0;
    for (const auto& [name, v] : before) {
      const bool lora_param = name.find("lora_") != std::string::npos;
      if (!same_bits(v, after.at(name))) {
        ++changed;
        if (method != UseMethod::full) CHECK_MESSAGE(lora_param, name);
      }
    }
    if (method == UseMethod::full || method == UseMethod::lora) CHECK(changed > 0);
    if (method != UseMethod::full && method != UseMethod::lora) CHECK(changed == 0);
    if (method == UseMethod::ptv2) {
      const auto& r = runner.model.backbone.prompt->rows[1].value();
      CHECK(!same_bits(prefix_before, std::vector<float>(r.data(), r.data() + r.size())));
    }
    // Every trainable parameter of the method moved (no dead path to a prompt).
    for_each_parameter(runner.model.backbone, [&](const std::string& n, auto& p) {
      if (!p.trainable() || n.rfind("use.", 0) == 0) return;
      const auto* d = p.grad().data();
      bool any = false;
      for (index_t i = 0; i < p.grad().size() && !any; ++i) any = d[i] != 0.0f;
      CHECK_MESSAGE(any, n);
    });
    CHECK(runner.model.head.classifier.weight.value()(0, 0) != head_before(0, 0));

    // The saved adapter (the last epoch's state, written again here) gives the same predictions.
    runner.set_training(false);
    const fs::path dir = out / "final";
    runner.save(dir);
    const auto want = runner.predict(toy_data().eval);
    tasks::UseClassificationRunner again(tasks::load_use_adapter(tiny(), dir), tokenizer(),
                                         {{}, toy_data().eval, {"negative", "positive"}}, {.max_length = 6});
    CHECK(parameter_count(again.model, true) == 0);
    if (method == UseMethod::prefix) {  // saved folded: the prefix rows, not the MLP
      REQUIRE(again.model.backbone.prompt);
      CHECK(!again.model.backbone.prompt->projected());
      CHECK(parameter_count(again.model.backbone) == parameter_count(again.model.backbone.use) + 3 * (16 + 32));
      CHECK(!SafeTensorsFile::open(dir / "adapter_model.safetensors").contains("prompt.projection.embedding.weight"));
    }
    CHECK(again.predict(toy_data().eval) == want);
    CHECK(again.evaluate().at("accuracy") == runner.evaluate().at("accuracy"));
    fs::remove_all(out);
  }
}

TEST_CASE("use lite runner: a bad adapter folder is refused with the file's name") {
  const fs::path dir = fresh_dir("bad");
  CHECK_THROWS_AS(tasks::load_use_adapter(tiny(), dir), IoError);
  fs::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << R"({"peft_type": "PREFIX_TUNING"})";
  CHECK_THROWS_WITH_AS(tasks::load_use_adapter(tiny(), dir), doctest::Contains("adapter_config.json"), FormatError);
  std::ofstream(dir / "adapter_config.json") << R"({"peft_type": "DEEPPROMPT_USE_LITE", "method": "ptv2", "num_labels": 2})";
  save_safetensors(dir / "adapter_model.safetensors", std::vector<TensorEntry>{});
  CHECK_THROWS_WITH_AS(tasks::load_use_adapter(tiny(), dir), doctest::Contains("prompt.layer.0"), FormatError);
  fs::remove_all(dir);
}

}  // namespace test_use_method
