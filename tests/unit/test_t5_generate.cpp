// models/t5_generate.hpp and models/t5_run.hpp: greedy and beam search ids identical to the
// transcription of Hugging Face's generate() in tests/fixtures/gen_t5.py (with and without key/value
// prefixes), cached decoding against full recomputation, and the deepprompt-run T5 path.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "deepprompt/models/t5_run.hpp"

namespace test_t5_generate {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Tensor;

namespace {

const std::filesystem::path kData = std::filesystem::path(DEEPPROMPT_TEST_DATA) / "t5";

template <class A, class B, std::size_t R>
double max_abs_diff(const Tensor<A, R>& a, const Tensor<B, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}

std::string ids_str(const Tensor<std::int64_t, 2>& t) {
  std::string s;
  for (index_t b = 0; b < t.extent(0); ++b) {
    s += "[";
    for (index_t i = 0; i < t.extent(1); ++i) s += (i ? " " : "") + std::to_string(t(b, i));
    s += "]";
  }
  return s;
}

// The fixture's prefixes (see gen_t5.py make_prefix) as constants.
template <class T>
dp::T5Prefix<T> fixture_prefix(const dp::SafeTensorsFile& f, const dp::T5Dims& d) {
  dp::T5Prefix<T> p;
  p.encoder.resize(d.num_layers);
  p.decoder.resize(d.num_decoder_layers);
  p.cross.resize(d.num_decoder_layers);
  auto add = [&](const std::string& kind, std::vector<dp::KVPrefix<T>>& v, index_t i) {
    const std::string base = "prefix." + kind + "." + std::to_string(i) + ".";
    if (!f.contains(base + "k")) return;
    if (f.info(base + "k").shape.size() == 3) {
      v[i].k = dp::Var<T, 3>(f.load<T, 3>(base + "k"));
      v[i].v = dp::Var<T, 3>(f.load<T, 3>(base + "v"));
    } else {
      v[i].k_batch = dp::Var<T, 4>(f.load<T, 4>(base + "k"));
      v[i].v_batch = dp::Var<T, 4>(f.load<T, 4>(base + "v"));
    }
  };
  for (index_t i = 0; i < d.num_layers; ++i) add("encoder", p.encoder, i);
  for (index_t i = 0; i < d.num_decoder_layers; ++i) {
    add("decoder", p.decoder, i);
    add("cross", p.cross, i);
  }
  return p;
}

template <class T>
void check_generation(const std::string& name) {
  CAPTURE(name);
  const auto f = dp::SafeTensorsFile::open(kData / name / "expected.safetensors");
  std::ifstream in(kData / "generation.json");
  const auto meta = nlohmann::json::parse(in);
  auto model = dp::T5<dp::T5DynamicConfig, T>::from_pretrained(kData / name);
  const auto ids = f.load<std::int64_t, 2>("input_ids");
  const auto mask = f.load<std::int64_t, 2>("attention_mask");
  const index_t N = meta["max_new_tokens"].get<index_t>();
  auto expect_ids = [&](const std::string& what, const Tensor<std::int64_t, 2>& got) {
    CAPTURE(what);
    const auto want = f.load<std::int64_t, 2>("generated." + what);
    CHECK(ids_str(got) == ids_str(want));
  };
  expect_ids("greedy", dp::generate(model, ids, mask, {.max_new_tokens = N}));
  for (const auto& b : meta["beams"]) {
    dp::T5GenerateOptions opt;
    opt.max_new_tokens = N;
    opt.num_beams = b["num_beams"].get<index_t>();
    opt.length_penalty = b["length_penalty"].get<double>();
    const auto es = b["early_stopping"].get<std::string>();
    opt.early_stopping = es == "true" ? dp::T5EarlyStopping::yes
                         : es == "never" ? dp::T5EarlyStopping::never
                                         : dp::T5EarlyStopping::heuristic;
    expect_ids(b["name"].get<std::string>(), dp::generate(model, ids, mask, opt));
  }
  const auto prefix = fixture_prefix<T>(f, model.dims());
  expect_ids("greedy_prefix", dp::generate(model, ids, mask, {.max_new_tokens = N}, &prefix));
  expect_ids("beam_prefix",
             dp::generate(model, ids, mask, {.max_new_tokens = N, .num_beams = 3, .length_penalty = 2.0}, &prefix));
  CHECK(dp::tape().size() == 0);  // generation records nothing
}

std::filesystem::path temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("dp_t5g_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace

TEST_CASE("t5 generate: greedy and beam search ids equal Hugging Face's (v1.0 and v1.1, float and double)") {
  check_generation<float>("v1_0");
  check_generation<float>("v1_1");
  check_generation<double>("v1_0");
  check_generation<double>("v1_1");
}

TEST_CASE("t5 generate: cached step-by-step decoding gives the logits of full recomputation") {
  for (const char* name : {"v1_0", "v1_1"}) {
    CAPTURE(name);
    const auto f = dp::SafeTensorsFile::open(kData / name / "expected.safetensors");
    auto model = dp::DynamicT5<>::from_pretrained(kData / name);
    const auto ids = f.load<std::int64_t, 2>("input_ids");
    const auto mask = f.load<std::int64_t, 2>("attention_mask");
    const auto dec = f.load<std::int64_t, 2>("decoder_input_ids");
    const index_t B = dec.extent(0), S = dec.extent(1), V = model.dims().vocab_size;
    for (bool with_prefix : {false, true}) {
      CAPTURE(with_prefix);
      const auto prefix = fixture_prefix<float>(f, model.dims());
      const auto* p = with_prefix ? &prefix : nullptr;
      dp::NoGradGuard ng;
      auto enc = model.encode(ids, mask, p);
      const auto enc_mask = model.additive_mask(mask, ids);
      const auto full = model.lm_logits(model.decode(dec, enc, enc_mask, p)).value();  // (B, S, V)
      dp::T5Cache<float> cache;
      double worst = 0;
      // one token, then two at once, then one at a time: the cache takes any step size
      index_t t = 0;
      for (index_t step : {1, 2, 1, 1, 1, 1}) {
        if (t >= S) break;
        step = std::min(step, S - t);
        Tensor<std::int64_t, 2> part({B, step});
        for (index_t b = 0; b < B; ++b)
          for (index_t i = 0; i < step; ++i) part(b, i) = dec(b, t + i);
        const auto got = model.lm_logits(model.decode(part, enc, enc_mask, p, &cache)).value();
        CHECK(cache.length == t + step);
        for (index_t b = 0; b < B; ++b)
          for (index_t i = 0; i < step; ++i)
            for (index_t v = 0; v < V; ++v)
              worst = std::max(worst, double(std::abs(got(b, i, v) - full(b, t + i, v))));
        t += step;
      }
      CHECK(t == S);
      CHECK(worst < 1e-5);
    }
  }
}

TEST_CASE("t5 generate: option errors and max_new_tokens = 0") {
  auto model = dp::DynamicT5<>::from_pretrained(kData / "v1_0");
  auto ids = Tensor<std::int64_t, 2>::from({1, 3}, {5, 7, 1});
  auto mask = Tensor<std::int64_t, 2>::full({1, 3}, 1);
  auto none = dp::generate(model, ids, mask, {.max_new_tokens = 0});
  CHECK(none.shape() == dp::Shape<2>{1, 1});
  CHECK(none(0, 0) == 0);
  CHECK_THROWS_WITH_AS(dp::generate(model, ids, mask, {.num_beams = 0}), doctest::Contains("num_beams must be >= 1"),
                       dp::Error);
  CHECK_THROWS_WITH_AS(dp::generate(model, ids, mask, {.max_new_tokens = -1}),
                       doctest::Contains("max_new_tokens must be >= 0"), dp::Error);
  // more beams than the vocabulary holds: valid (the -1e9 start scores fill the candidates)
  auto many = dp::generate(model, ids, mask, {.max_new_tokens = 3, .num_beams = 25});
  CHECK(many.extent(0) == 1);
  CHECK_THROWS_WITH_AS(dp::generate(model, ids, mask, {.eos_token_id = 40}), doctest::Contains("eos_token_id 40"),
                       dp::Error);
  // greedy without a mask equals greedy with an all-ones mask; a custom EOS stops the rows
  auto a = dp::generate(model, ids, Tensor<std::int64_t, 2>(), {.max_new_tokens = 5});
  auto b = dp::generate(model, ids, mask, {.max_new_tokens = 5});
  CHECK(ids_str(a) == ids_str(b));
  const std::int64_t first = b(0, 1);
  auto c = dp::generate(model, ids, mask, {.max_new_tokens = 5, .eos_token_id = first});
  CHECK(c.shape() == dp::Shape<2>{1, 2});
}

TEST_CASE("t5 run: deepprompt-run's T5 path writes logits, encoder output, loss and generated ids") {
  const auto f = dp::SafeTensorsFile::open(kData / "v1_0" / "expected.safetensors");
  std::ifstream in(kData / "v1_0" / "input.json");
  const auto input = nlohmann::json::parse(in);
  const auto dir = temp_dir("run");
  const auto out = (dir / "out.safetensors").string();

  CHECK(dp::run_t5((kData / "v1_0").string(), input, out, 10, 1) == 0);
  {
    const auto r = dp::SafeTensorsFile::open(out);
    CHECK(r.info("logits").dtype == dp::Dtype::F32);
    CHECK(max_abs_diff(r.load<float, 3>("logits"), f.load<double, 3>("logits")) < 1e-5);
    CHECK(max_abs_diff(r.load<float, 3>("encoder_last_hidden_state"), f.load<double, 3>("encoder_last_hidden_state")) <
          1e-5);
    CHECK(r.info("loss").shape == std::vector<index_t>{1});
    CHECK(std::abs(r.load<float, 1>("loss")(0) - f.load<double, 1>("loss")(0)) < 1e-5);
    CHECK(r.info("generated").dtype == dp::Dtype::I64);
    CHECK(ids_str(r.load<std::int64_t, 2>("generated")) == ids_str(f.load<std::int64_t, 2>("generated.greedy")));
  }
  CHECK(dp::run_t5((kData / "v1_0").string(), input, out, 10, 3) == 0);
  {
    const auto r = dp::SafeTensorsFile::open(out);
    CHECK(ids_str(r.load<std::int64_t, 2>("generated")) == ids_str(f.load<std::int64_t, 2>("generated.beam_default")));
  }
  // without labels and decoder inputs: one decoder start token, no loss, no generation
  {
    nlohmann::json j = {{"input_ids", input["input_ids"]}};
    CHECK(dp::run_t5((kData / "v1_1").string(), j, out, 0, 1) == 0);
    const auto r = dp::SafeTensorsFile::open(out);
    CHECK(r.info("logits").shape == std::vector<index_t>{3, 1, 40});
    CHECK(!r.contains("loss"));
    CHECK(!r.contains("generated"));
  }
  // bad input: one clear line each
  auto fails = [&](nlohmann::json j, const std::string& model, const std::string& what) {
    CAPTURE(what);
    try {
      dp::run_t5(model, j, out, 0, 1);
      FAIL("no error");
    } catch (const dp::Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find(what) != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
  };
  const std::string m10 = (kData / "v1_0").string();
  fails(nlohmann::json::object(), m10, "\"input_ids\" is missing");
  fails(nlohmann::json::array(), m10, "expected a JSON object");
  fails({{"input_ids", {{1, 2}, {3}}}}, m10, "row 1 has 1 entries, row 0 has 2");
  fails({{"input_ids", {{1, 2.5}}}}, m10, "entry [0][1] is 2.5");
  fails({{"input_ids", {{1, 2}}}, {"attention_mask", {{1, 2}}}}, m10, "must hold 0 or 1");
  fails({{"input_ids", {{1, 2}}}, {"attention_mask", {{1, 1, 1}}}}, m10, "\"attention_mask\" has shape (1, 3)");
  fails({{"input_ids", {{1, 99}}}}, m10, "holds 99, outside the vocabulary [0, 40)");
  fails({{"input_ids", {{1, 2}}}, {"labels", {{1, -5}}}}, m10, "holds -5");
  fails({{"input_ids", {{1, 2}}}, {"labels", {{1, 2}, {3, 4}}}}, m10, "the decoder inputs have 2 rows");
  fails({{"input_ids", {{1, 2}}}}, (dir / "nowhere").string(), "nowhere");
  std::filesystem::remove_all(dir);
}

}  // namespace test_t5_generate
