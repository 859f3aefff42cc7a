// models/bert.hpp: parity with a Hugging Face-structured BertModel in PyTorch
// (tests/fixtures/gen_bert.py -> tests/data/bert/): outputs, every parameter's gradient, with and
// without a key/value prefix; checkpoint loading (prefix `bert.`, ignored tensors, strictness),
// load -> save -> load bit-exact, static vs dynamic configurations.
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

#include "deepprompt/models/bert.hpp"
#include "deepprompt/models/bert_run.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/reduce.hpp"

namespace test_bert {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
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

using FixtureCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json

const fs::path kDir = fs::path(DEEPPROMPT_TEST_DATA) / "bert";

const dp::SafeTensorsFile& expected() {
  static const dp::SafeTensorsFile f = dp::SafeTensorsFile::open(kDir / "expected.safetensors");
  return f;
}
template <std::size_t R>
Tensor<float, R> want(const std::string& name) {
  return expected().load<float, R>(name);
}
Tensor<std::int64_t, 2> ids(const std::string& name) { return expected().load<std::int64_t, 2>(name); }

template <std::size_t R>
double max_abs_diff(const Tensor<float, R>& a, const Tensor<float, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}
// ||a - b|| / ||b|| (norm-wise relative error).
double rel_error(const float* a, const float* b, index_t n) {
  double num = 0, den = 0;
  for (index_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-12);
}
template <std::size_t R>
bool same_bits(const Tensor<float, R>& a, const Tensor<float, R>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * std::size_t(a.size())) == 0;
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

fs::path temp_dir(const std::string& tag) {
  auto d = fs::temp_directory_path() / ("dp_test_bert_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

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
