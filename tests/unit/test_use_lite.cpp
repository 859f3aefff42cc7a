// models/use_lite.hpp: parity with the TF.js model run by @tensorflow/tfjs
// (tests/fixtures/use_lite/embed_ref.js -> tests/data/use_lite/embeddings_ref.json). The model's weights
// are not in the repository: the parity test runs when DEEPPROMPT_USE_LITE (the folder of
// model.json) or /work/shared/use-lite/package/dist holds them, and is skipped otherwise.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "deepprompt/io/use_tokenizer.hpp"
#include "deepprompt/models/use_lite.hpp"

namespace test_use_lite {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path model_dir() {
  if (const char* e = std::getenv("DEEPPROMPT_USE_LITE")) return e;
  return "/work/shared/use-lite/package/dist";
}

}  // namespace

TEST_CASE("use lite: embeddings match the TF.js model") {
  const fs::path dir = model_dir();
  if (!fs::exists(dir / "model.json")) {
    MESSAGE("skipped: no USE Lite model at ", dir.string(), " (set DEEPPROMPT_USE_LITE)");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto model = UseLite<float>::from_tfjs(dir / "model.json");
  const auto t1 = std::chrono::steady_clock::now();
  CHECK(model.layers.size() == 2);
  CHECK(model.config.vocab == 8002);
  CHECK(model.config.embed == 256);
  CHECK(model.config.hidden == 512);
  CHECK(model.config.ffn == 1536);
  CHECK(model.config.heads == 4);
  CHECK(model.config.max_tokens == 128);
  CHECK(model.layers[1].attention.heads == 4);

  const auto tok = UseTokenizer::from_file(fs::path(DEEPPROMPT_TEST_DATA) / "use_lite" / "vocab.json");
  std::ifstream f(fs::path(DEEPPROMPT_TEST_DATA) / "use_lite" / "embeddings_ref.json");
  const json ref = json::parse(f);
  std::vector<std::vector<std::int32_t>> ids;
  for (const auto& r : ref) {
    ids.push_back(tok.encode(r["text"].get<std::string>()));
    CHECK(ids.back() == r["ids"].get<std::vector<std::int32_t>>());
  }
  const auto t2 = std::chrono::steady_clock::now();
  const Tensor<float, 2> e = model.embed(ids);
  const auto t3 = std::chrono::steady_clock::now();
  MESSAGE("load ", std::chrono::duration<double, std::milli>(t1 - t0).count(), " ms, batch of ", ids.size(),
          " forward ", std::chrono::duration<double, std::milli>(t3 - t2).count(), " ms");
  REQUIRE(e.extent(0) == static_cast<index_t>(ref.size()));
  REQUIRE(e.extent(1) == 512);
  double worst = 1.0, worst_diff = 0.0;
  for (index_t i = 0; i < e.extent(0); ++i) {
    const auto want = ref[static_cast<std::size_t>(i)]["embedding"].get<std::vector<double>>();
    double dot = 0, na = 0, nb = 0, maxdiff = 0;
    for (index_t j = 0; j < 512; ++j) {
      dot += e(i, j) * want[j];
      na += e(i, j) * e(i, j);
      nb += want[j] * want[j];
      maxdiff = std::max(maxdiff, std::abs(e(i, j) - want[j]));
    }
    const double cosine = dot / std::sqrt(na * nb);
    worst = std::min(worst, cosine);
    worst_diff = std::max(worst_diff, maxdiff);
    CAPTURE(i);
    CHECK(cosine >= 0.99999);
    CHECK(maxdiff < 1e-4);
  }
  MESSAGE("worst cosine 1 - ", 1.0 - worst, ", largest difference ", worst_diff);
  // One sentence alone gives what it gives in the batch (padding does not leak).
  const Tensor<float, 2> one = model.embed({ids[8]});
  for (index_t j = 0; j < 512; ++j) CHECK(std::abs(one(0, j) - e(8, j)) < 1e-6);
}

}  // namespace test_use_lite
