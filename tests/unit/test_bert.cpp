// models/bert.hpp: parity with a Hugging Face-structured BertModel in PyTorch
// (tests/fixtures/gen_bert.py -> tests/data/bert/): outputs, every parameter's gradient, with and
// without a key/value prefix; static vs dynamic configurations. Checkpoints (loading, saving,
// strictness): test_bert_checkpoints.cpp.
//
// Compile-time checks: the static_asserts of BertConfig are exercised below on the
// standard aliases. Invalid ones fail to compile with a readable message, e.g.
//   BertConfig<2, 100, 3, 512>   ->  "Heads must divide Hidden (each head gets Hidden / Heads dimensions)"
// (build this file with -DDEEPPROMPT_NEGATIVE_COMPILE_TEST to see it; it must not compile).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

#include "bert_fixture.hpp"
#include "deepprompt/models/bert.hpp"
#include "deepprompt/models/bert_run.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/reduce.hpp"

namespace test_bert {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using bert_fixture::expected;
using bert_fixture::FixtureCfg;
using bert_fixture::ids;
using bert_fixture::kDir;
using bert_fixture::max_abs_diff;
using bert_fixture::same_bits;
using bert_fixture::temp_dir;
using bert_fixture::want;
using dp::index_t;
using dp::Tensor;
using dp::Var;

#ifdef DEEPPROMPT_NEGATIVE_COMPILE_TEST
[[maybe_unused]] dp::BertConfig<2, 100, 3, 512> bad_heads;
[[maybe_unused]] dp::BertConfig<0, 128, 2, 512> bad_layers;
#endif

// The standard sizes, checked at compile time.
static_assert(dp::BertTiny::layers == 2 && dp::BertTiny::hidden == 128 && dp::BertTiny::heads == 2 &&
              dp::BertTiny::intermediate == 512);
static_assert(dp::BertMini::layers == 4 && dp::BertMini::hidden == 256 && dp::BertMini::intermediate == 1024);
static_assert(dp::BertSmall::layers == 4 && dp::BertSmall::hidden == 512 && dp::BertSmall::heads == 8);
static_assert(dp::BertMedium::layers == 8 && dp::BertMedium::intermediate == 2048);
static_assert(dp::BertBase::layers == 12 && dp::BertBase::hidden == 768 && dp::BertBase::head_dim() == 64 &&
              dp::BertBase::vocab == 30522 && dp::BertBase::max_positions == 512 && dp::BertBase::type_vocab == 2);
static_assert(dp::BertLarge::layers == 24 && dp::BertLarge::hidden == 1024 && dp::BertLarge::heads == 16 &&
              dp::BertLarge::intermediate == 4096);
static_assert(dp::BertConfigLike<dp::BertBase> && dp::BertConfigLike<dp::BertDynamicConfig>);
static_assert(dp::BertBase::is_static && !dp::BertDynamicConfig::is_static);

namespace {

// ||a - b|| / ||b|| (norm-wise relative error).
double rel_error(const float* a, const float* b, index_t n) {
  double num = 0, den = 0;
  for (index_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-12);
}
// The scalar loss of the fixture: sum(last * R) + sum(pooler * S).
template <class Out>
Var<float, 0> fixture_loss(const Out& out) {
  return dp::add(dp::sum(dp::mul(out.last_hidden_state, Var<float, 3>(want<3>("R")))),
                 dp::sum(dp::mul(out.pooler_output, Var<float, 2>(want<2>("S")))));
}

// Every parameter's gradient against `tag` + "grad." + name; returns the largest error.
template <class M>
double check_grads(M& model, const std::string& tag) {
  double worst = 0;
  int n = 0;
  dp::for_each_parameter(model, [&](const std::string& name, auto& p) {
    const auto w = want<std::decay_t<decltype(p.value())>::rank>(tag + "grad." + name);
    double norm = 0;
    for (float x : w) norm += double(x) * x;
    if (std::sqrt(norm) < 1e-10) {
      // Exactly zero in exact arithmetic: the key bias without a prefix (adding q . b_k to every
      // score of a softmax row changes nothing). Checked absolutely: float32 rounding leaves
      // ~1e-6, against gradient norms of ~4 for the other biases.
      double got = 0;
      for (float x : p.grad()) got += double(x) * x;
      CHECK_MESSAGE(std::sqrt(got) < 1e-5, name << ": gradient norm " << std::sqrt(got) << ", expected 0");
    } else {
      const double e = rel_error(p.grad().data(), w.data(), w.size());
      CHECK_MESSAGE(e < 1e-4, name << ": relative gradient error " << e);
      worst = std::max(worst, e);
    }
    ++n;
  });
  CHECK(n == 2 * 16 + 5 + 2);
  return worst;
}

// The fixture's prefix (L, 2, H, P, D) as per-layer trainable (H, P, D) keys and values.
struct Prefix {
  std::vector<dp::Parameter<float, 3>> k, v;
  Prefix() {
    const auto all = want<5>("prefix");
    const index_t L = all.extent(0);
    for (index_t l = 0; l < L; ++l) {
      k.emplace_back("k", all[l][0].clone());
      v.emplace_back("v", all[l][1].clone());
    }
  }
  std::vector<dp::KVPrefix<float>> shared() const {
    std::vector<dp::KVPrefix<float>> out;
    for (std::size_t l = 0; l < k.size(); ++l) out.push_back(dp::KVPrefix<float>::shared(k[l].var(), v[l].var()));
    return out;
  }
};

}  // namespace

TEST_CASE("bert: parameter names and shapes are Hugging Face's") {
  dp::DynamicBert<float> model = dp::DynamicBert<float>::from_pretrained(kDir);
  const auto file = dp::SafeTensorsFile::open(kDir / "model.safetensors");
  std::vector<std::string> ours;
  dp::for_each_parameter(model, [&](const std::string& n, auto& p) {
    ours.push_back(n);
    REQUIRE(file.contains(n));
    CHECK(std::equal(p.shape().begin(), p.shape().end(), file.info(n).shape.begin(), file.info(n).shape.end()));
  });
  CHECK(ours.size() == file.size());
  CHECK(ours[0] == "embeddings.word_embeddings.weight");
  CHECK(ours[5] == "encoder.layer.0.attention.self.query.weight");
  CHECK(ours.back() == "pooler.dense.bias");
  CHECK(dp::parameter_count(model) ==
        99 * 32 + 12 * 32 + 2 * 32 + 64 + 2 * (4 * (32 * 32 + 32) + 2 * 64 + 2 * 32 * 64 + 64 + 32) + 32 * 32 + 32);
  CHECK(model.cfg.hidden_act == dp::Activation::gelu);
  CHECK(model.cfg.layer_norm_eps == 1e-12);

  // a fresh model: Hugging Face's initialisation
  dp::Bert<FixtureCfg> fresh(FixtureCfg{}, {.seed = 3});
  CHECK(fresh.embeddings.norm.weight.value()(5) == 1.f);
  CHECK(fresh.encoder.layer[1].output.dense.bias->value()(3) == 0.f);
  CHECK(fresh.embeddings.word_embeddings.weight.value()(0, 7) == 0.f);  // the padding row
  CHECK(fresh.embeddings.word_embeddings.weight.value()(1, 7) != 0.f);
  CHECK(!fresh.cls);
  dp::Bert<FixtureCfg> zeros(FixtureCfg{}, {.random_weights = false});
  CHECK(zeros.encoder.layer[0].attention.self_attention.query.weight.value()(1, 2) == 0.f);
  CHECK(zeros.embeddings.norm.weight.value()(0) == 1.f);
}

TEST_CASE("bert: outputs and every gradient match PyTorch") {
  auto model = dp::DynamicBert<float>::from_pretrained(kDir);
  auto out = model.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"));
  const double e_last = max_abs_diff(out.last_hidden_state.value(), want<3>("last_hidden_state"));
  const double e_pool = max_abs_diff(out.pooler_output.value(), want<2>("pooler_output"));
  MESSAGE("no prefix: max |error| last_hidden_state ", e_last, ", pooler_output ", e_pool);
  CHECK(e_last < 1e-5);
  CHECK(e_pool < 1e-5);
  fixture_loss(out).backward();
  MESSAGE("no prefix: worst relative gradient error ", check_grads(model, ""));

  // the dynamic and the static configuration give the same bits
  auto fixed = dp::Bert<FixtureCfg>::from_pretrained(kDir);
  auto out2 = fixed.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"));
  CHECK(same_bits(out2.last_hidden_state.value(), out.last_hidden_state.value()));
  CHECK(same_bits(out2.pooler_output.value(), out.pooler_output.value()));
}

TEST_CASE("bert: a key/value prefix per layer, as past_key_values (positions shifted by P)") {
  auto model = dp::DynamicBert<float>::from_pretrained(kDir);
  Prefix prefix;
  auto kv = prefix.shared();
  auto out = model.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"), {}, kv);
  const double e_last = max_abs_diff(out.last_hidden_state.value(), want<3>("prefix.last_hidden_state"));
  const double e_pool = max_abs_diff(out.pooler_output.value(), want<2>("prefix.pooler_output"));
  MESSAGE("prefix: max |error| last_hidden_state ", e_last, ", pooler_output ", e_pool);
  CHECK(e_last < 1e-5);
  CHECK(e_pool < 1e-5);
  fixture_loss(out).backward();
  MESSAGE("prefix: worst relative gradient error ", check_grads(model, "prefix."));
  const auto gp = want<5>("prefix.grad.prefix");
  const index_t L = gp.extent(0);
  for (index_t l = 0; l < L; ++l) {
    const double ek = rel_error(prefix.k[l].grad().data(), gp[l][0].data(), gp[l][0].size());
    const double ev = rel_error(prefix.v[l].grad().data(), gp[l][1].data(), gp[l][1].size());
    MESSAGE("prefix gradient, layer ", l, ": relative error keys ", ek, ", values ", ev);
    CHECK(ek < 1e-4);
    CHECK(ev < 1e-4);
  }

  SUBCASE("no position shift") {
    auto o =
        model.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"), {.shift_positions = false}, kv);
    CHECK(max_abs_diff(o.last_hidden_state.value(), want<3>("noshift.last_hidden_state")) < 1e-5);
    CHECK(max_abs_diff(o.pooler_output.value(), want<2>("noshift.pooler_output")) < 1e-5);
    dp::tape().release();
  }
  SUBCASE("a callable, a (B, P + T) mask, and the per-example form give the same values") {
    dp::NoGradGuard no_grad;
    auto fn = [&](index_t l) { return kv[std::size_t(l)]; };
    const auto mask = ids("attention_mask");
    const index_t B = mask.extent(0), T = mask.extent(1), P = prefix.k[0].shape()[1];
    Tensor<std::int64_t, 2> long_mask = Tensor<std::int64_t, 2>::full({B, P + T}, 1);
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T; ++t) long_mask(b, P + t) = mask(b, t);
    auto o1 = model.forward(ids("input_ids"), long_mask, ids("token_type_ids"), {}, fn);
    CHECK(max_abs_diff(o1.last_hidden_state.value(), want<3>("prefix.last_hidden_state")) < 1e-5);

    std::vector<dp::KVPrefix<float>> per_example;
    for (const auto& p : kv) {
      const auto& s = p.k.shape();
      Tensor<float, 4> k({B, s[0], s[1], s[2]}), v({B, s[0], s[1], s[2]});
      for (index_t b = 0; b < B; ++b) k[b].copy_from(p.k.value()), v[b].copy_from(p.v.value());
      per_example.push_back(dp::KVPrefix<float>::per_example(Var<float, 4>(k), Var<float, 4>(v)));
    }
    auto o2 = model.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"), {},
                            std::span<const dp::KVPrefix<float>>(per_example));
    CHECK(max_abs_diff(o2.last_hidden_state.value(), want<3>("prefix.last_hidden_state")) < 1e-5);
  }
}

TEST_CASE("bert: P-Tuning v2 with a frozen backbone: only the prefix learns") {
  auto model = dp::DynamicBert<float>::from_pretrained(kDir);
  CHECK(dp::freeze(model) == 39);
  CHECK(dp::parameter_count(model, true) == 0);
  Prefix prefix;
  auto out = model.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"), {}, prefix.shared());
  fixture_loss(out).backward();
  const auto gp = want<5>("prefix.grad.prefix");
  CHECK(rel_error(prefix.k[1].grad().data(), gp[1][0].data(), gp[1][0].size()) < 1e-4);
  CHECK(rel_error(prefix.v[0].grad().data(), gp[0][1].data(), gp[0][1].size()) < 1e-4);
}

TEST_CASE("bert: prepending hidden vectors equals their key/value prefix") {
  // The seed formulation of deep prompts: P hidden vectors in front of layer l's input, run the
  // layer, drop their outputs == the layer with the prefix K = key(h), V = value(h).
  auto model = dp::DynamicBert<double>::from_pretrained(kDir);
  dp::NoGradGuard no_grad;
  const index_t B = 2, T = 5, P = 3, C = 32;
  dp::Generator gen(9);
  Tensor<double, 3> x({B, T, C});
  Tensor<double, 2> h({P, C});
  dp::init::normal(x, 0, 1, gen);
  dp::init::normal(h, 0, 1, gen);
  auto mask01 = Tensor<std::int64_t, 2>::from({B, T}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  const auto& layer = model.encoder.layer[1];
  auto y = layer.forward(Var<double, 3>(x), dp::attention_mask<double>(mask01),
                         layer.attention.self_attention.prefix_from_hidden(Var<double, 2>(h)), nullptr, false);

  Tensor<double, 3> xh({B, P + T, C});
  Tensor<std::int64_t, 2> mask_h = Tensor<std::int64_t, 2>::full({B, P + T}, 1);
  for (index_t b = 0; b < B; ++b) {
    xh[b].slice(0, P).copy_from(h);
    xh[b].slice(P, P + T).copy_from(x[b]);
    for (index_t t = 0; t < T; ++t) mask_h(b, P + t) = mask01(b, t);
  }
  auto yh = layer.forward(Var<double, 3>(xh), dp::attention_mask<double>(mask_h), {}, nullptr, false);
  auto ys = dp::slice(yh, 1, P, P + T).value();
  double m = 0;
  for (index_t i = 0; i < ys.size(); ++i) m = std::max(m, std::abs(ys.data()[i] - y.value().data()[i]));
  CHECK(m < 1e-12);
}

TEST_CASE("bert: bad inputs give clear errors") {
  auto model = dp::DynamicBert<float>::from_pretrained(kDir);
  dp::NoGradGuard no_grad;
  const auto in = ids("input_ids");
  CHECK_THROWS_WITH_AS(model.forward(in, Tensor<std::int64_t, 2>::full({2, 6}, 1)),
                       doctest::Contains("attention_mask must be (B, T)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(model.forward(in, {}, Tensor<std::int64_t, 2>::zeros({1, 7})),
                       doctest::Contains("token_type_ids must have input_ids' shape"), dp::ShapeError);
  auto bad = in.clone();
  bad(1, 2) = 99;
  CHECK_THROWS_WITH_AS(model.forward(bad), doctest::Contains("id 99 at position (1, 2)"), dp::Error);
  CHECK_THROWS_WITH_AS(model.forward(Tensor<std::int64_t, 2>::full({1, 13}, 5)),
                       doctest::Contains("13 tokens need 13 positions but the model has max_position_embeddings = 12"),
                       dp::ShapeError);
  Prefix prefix;
  auto kv = prefix.shared();
  CHECK_THROWS_WITH_AS(model.forward(Tensor<std::int64_t, 2>::full({1, 10}, 5), {}, {}, {}, kv),
                       doctest::Contains("after a prefix of 3"), dp::ShapeError);
  kv.pop_back();
  CHECK_THROWS_WITH_AS(model.forward(in, {}, {}, {}, kv),
                       doctest::Contains("1 key/value prefixes given for a model of 2 layers"), dp::ShapeError);
  auto mask = ids("attention_mask").clone();
  mask(0, 0) = 2;
  CHECK_THROWS_WITH_AS(model.forward(in, mask), doctest::Contains("mask values must lie in [0, 1]"), dp::Error);
}

TEST_CASE("bert: dropout in training is reproducible from the generator and off in evaluation") {
  auto model = dp::DynamicBert<float>::from_pretrained(kDir);
  dp::NoGradGuard no_grad;
  const auto in = ids("input_ids"), mask = ids("attention_mask");
  auto eval = model.forward(in, mask).last_hidden_state.value();
  dp::Generator g1(5), g2(5);
  auto t1 = model.forward(in, mask, {}, {.training = true, .generator = &g1}).last_hidden_state.value();
  auto t2 = model.forward(in, mask, {}, {.training = true, .generator = &g2}).last_hidden_state.value();
  CHECK(same_bits(t1, t2));
  CHECK(max_abs_diff(t1, eval) > 1e-2);
  CHECK(g1.offset() > 0);
  auto own = model.forward(in, mask, {}, {.training = true}).last_hidden_state.value();  // the model's generator
  CHECK(max_abs_diff(own, eval) > 1e-2);
}

TEST_CASE("bert: run_bert (deepprompt-run's BERT path) writes the reference outputs") {
  const auto dir = temp_dir("run");
  dp::run_bert(kDir, kDir / "input.json", dir / "out.safetensors");
  const auto out = dp::SafeTensorsFile::open(dir / "out.safetensors");
  CHECK(out.size() == 2);
  CHECK(max_abs_diff(out.load<float, 3>("last_hidden_state"), want<3>("last_hidden_state")) < 1e-5);
  CHECK(max_abs_diff(out.load<float, 2>("pooler_output"), want<2>("pooler_output")) < 1e-5);

  auto write = [&](const std::string& text) {
    std::ofstream(dir / "in.json") << text;
    return dir / "in.json";
  };
  CHECK_THROWS_WITH_AS(dp::run_bert(kDir, write(R"({"input_ids": [[1, 2], [3]]})"), dir / "o"),
                       doctest::Contains("field \"input_ids\": row 1 has 1 entries but row 0 has 2"), dp::FormatError);
  CHECK_THROWS_WITH_AS(dp::run_bert(kDir, write(R"({"input_ids": [[1, 2]], "token_type_ids": [[0, 2]]})"), dir / "o"),
                       doctest::Contains("[0][1] = 2 is not in [0, 2) (type_vocab_size)"), dp::FormatError);
  CHECK_THROWS_WITH_AS(dp::run_bert(kDir, write(R"({"input_ids": [[1, 2.5]]})"), dir / "o"),
                       doctest::Contains("[0][1] = 2.5 is not an integer"), dp::FormatError);
  CHECK_THROWS_WITH_AS(dp::run_bert(kDir, write(R"({"labels": [[1]]})"), dir / "o"),
                       doctest::Contains("unknown field \"labels\" for a bert model"), dp::FormatError);
  CHECK_THROWS_WITH_AS(dp::run_bert(kDir, write(R"({"attention_mask": [[1]]})"), dir / "o"),
                       doctest::Contains("field \"input_ids\": missing (required)"), dp::FormatError);
  fs::remove_all(dir);
}

TEST_CASE("bert: dynamic configurations are validated; static ones convert") {
  dp::BertDynamicConfig c = dp::to_dynamic(FixtureCfg{});
  CHECK(c.hidden == 32);
  CHECK(c.head_dim() == 8);
  c.heads = 5;
  CHECK_THROWS_WITH_AS(dp::DynamicBert<float>{c}, doctest::Contains("heads 5 does not divide hidden 32"), dp::Error);
  c.heads = 4;
  c.layers = 0;
  CHECK_THROWS_WITH_AS(dp::DynamicBert<float>{c}, doctest::Contains("every size must be positive"), dp::Error);
  auto hf = dp::read_bert_config(kDir);
  hf.hidden_act = "quick_gelu";
  CHECK_THROWS_WITH_AS(dp::BertDynamicConfig::from(hf, "x/config.json"),
                       doctest::Contains("field \"hidden_act\": \"quick_gelu\" is not supported"), dp::FormatError);
  hf.hidden_act = "gelu_new";
  CHECK(dp::BertDynamicConfig::from(hf).hidden_act == dp::Activation::gelu_new);
  hf.position_embedding_type = "relative_key";
  CHECK_THROWS_AS(dp::BertDynamicConfig::from(hf), dp::FormatError);
}

}  // namespace test_bert
