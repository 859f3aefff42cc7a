// models/t5.hpp: Hugging Face parity of a tiny T5 v1.0 (ReLU, tied) and v1.1 (gated-GELU,
// untied) written by tests/fixtures/gen_t5.py: outputs, loss, every gradient, key/value
// prefixes; checkpoint loading with and without tied aliases; relative position buckets;
// compile-time configurations.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unistd.h>

#include "deepprompt/models/t5.hpp"

namespace test_t5 {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Tensor;

namespace {

const std::filesystem::path kData = std::filesystem::path(DEEPPROMPT_TEST_DATA) / "t5";

// The tiny fixture configurations as compile-time specs.
using TinyV10 = dp::T5Config<16, 4, 32, 2, 2, 4, 40, dp::T5Act::relu, false, true, 16, 20>;
using TinyV11 = dp::T5Config<16, 6, 24, 2, 3, 3, 40, dp::T5Act::gelu_new, true, false, 8, 12>;

template <class A, class B, std::size_t R>
double max_abs_diff(const Tensor<A, R>& a, const Tensor<B, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}
// ||a - b|| / ||b||
template <class A, class B, std::size_t R>
double rel_norm_diff(const Tensor<A, R>& a, const Tensor<B, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double num = 0, den = 0;
  for (index_t i = 0; i < a.size(); ++i) {
    const double x = double(a.data()[i]), y = double(b.data()[i]);
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

struct Fixture {
  dp::SafeTensorsFile expected, grads;
  Tensor<std::int64_t, 2> ids, mask, labels, dec_in;
  explicit Fixture(const std::string& name)
      : expected(dp::SafeTensorsFile::open(kData / name / "expected.safetensors")),
        grads(dp::SafeTensorsFile::open(kData / name / "grads.safetensors")) {
    ids = expected.load<std::int64_t, 2>("input_ids");
    mask = expected.load<std::int64_t, 2>("attention_mask");
    labels = expected.load<std::int64_t, 2>("labels");
    dec_in = expected.load<std::int64_t, 2>("decoder_input_ids");
  }
};

// The prefixes of the fixture (encoder: shared on every layer; decoder self-attention: per
// example on layer 0; cross-attention: shared on the last layer), as trainable Vars.
template <class T>
struct FixturePrefix {
  std::vector<dp::Parameter<T, 3>> shared;
  std::vector<dp::Parameter<T, 4>> batched;
  std::vector<std::string> shared_names, batched_names;
  dp::T5Prefix<T> prefix;

  FixturePrefix(const dp::SafeTensorsFile& f, const dp::T5Dims& d) {
    prefix.encoder.resize(d.num_layers);
    prefix.decoder.resize(d.num_decoder_layers);
    prefix.cross.resize(d.num_decoder_layers);
    shared.reserve(16);
    batched.reserve(16);
    auto add = [&](const std::string& kind, std::vector<dp::KVPrefix<T>>& v, index_t i) {
      const std::string base = "prefix." + kind + "." + std::to_string(i) + ".";
      if (!f.contains(base + "k")) return;
      if (f.info(base + "k").shape.size() == 3) {
        for (const char* kv : {"k", "v"}) {
          shared.emplace_back(base + kv, f.load<T, 3>(base + kv));
          shared_names.push_back(base + kv);
        }
        v[i].k = shared[shared.size() - 2].var();
        v[i].v = shared.back().var();
      } else {
        for (const char* kv : {"k", "v"}) {
          batched.emplace_back(base + kv, f.load<T, 4>(base + kv));
          batched_names.push_back(base + kv);
        }
        v[i].k_batch = batched[batched.size() - 2].var();
        v[i].v_batch = batched.back().var();
      }
    };
    for (index_t i = 0; i < d.num_layers; ++i) add("encoder", prefix.encoder, i);
    for (index_t i = 0; i < d.num_decoder_layers; ++i) {
      add("decoder", prefix.decoder, i);
      add("cross", prefix.cross, i);
    }
  }
};

template <class T>
void check_parity(const std::string& name, double out_tol, double grad_tol) {
  CAPTURE(name);
  Fixture fx(name);
  auto model = dp::T5<dp::T5DynamicConfig, T>::from_pretrained(kData / name);
  // forward without labels equals forward with labels; the loss
  auto plain = model.forward(fx.ids, fx.mask, fx.dec_in);
  dp::tape().release();
  CHECK(max_abs_diff(plain.logits.value(), fx.expected.load<double, 3>("logits")) < out_tol);
  auto out = model.forward({.input_ids = fx.ids, .attention_mask = fx.mask, .labels = fx.labels});
  CHECK(max_abs_diff(out.logits.value(), fx.expected.load<double, 3>("logits")) < out_tol);
  CHECK(max_abs_diff(out.encoder_last_hidden_state.value(), fx.expected.load<double, 3>("encoder_last_hidden_state")) <
        out_tol);
  REQUIRE(out.loss);
  CHECK(std::abs(double(out.loss->value().item()) - fx.expected.load<double, 1>("loss")(0)) < out_tol);

  // gradients of every parameter (the tied lm_head's gradient is part of shared.weight's)
  dp::for_each_parameter(model, [](const std::string&, auto& p) { p.zero_grad(); });
  out.loss->backward();
  std::set<std::string> names;
  int checked = 0;
  dp::for_each_parameter(model, [&](const std::string& pname, auto& p) {
    CAPTURE(pname);
    names.insert(pname);
    REQUIRE(fx.grads.contains(pname));
    constexpr std::size_t R = std::tuple_size_v<std::remove_cvref_t<decltype(p.shape())>>;
    const auto ref = fx.grads.load<double, R>(pname);
    CHECK(rel_norm_diff(p.grad(), ref) < grad_tol);
    ++checked;
  });
  CHECK(names.size() == fx.grads.size());  // every HF parameter and nothing else
  CHECK(checked == static_cast<int>(fx.grads.size()));
}

template <class T>
void check_prefix_parity(const std::string& name, double out_tol, double grad_tol) {
  CAPTURE(name);
  Fixture fx(name);
  auto model = dp::T5<dp::T5DynamicConfig, T>::from_pretrained(kData / name);
  dp::freeze(model);
  dp::unfreeze(model, "*relative_attention_bias*");
  dp::unfreeze(model, "shared.weight");
  FixturePrefix<T> pf(fx.expected, model.dims());
  REQUIRE(pf.shared.size() == 2 * (model.dims().num_layers + 1));
  REQUIRE(pf.batched.size() == 2);
  auto out = model.forward({.input_ids = fx.ids, .attention_mask = fx.mask, .labels = fx.labels}, &pf.prefix);
  CHECK(max_abs_diff(out.logits.value(), fx.expected.load<double, 3>("prefix.logits")) < out_tol);
  CHECK(max_abs_diff(out.encoder_last_hidden_state.value(),
                     fx.expected.load<double, 3>("prefix.encoder_last_hidden_state")) < out_tol);
  CHECK(std::abs(double(out.loss->value().item()) - fx.expected.load<double, 1>("prefix.loss")(0)) < out_tol);
  out.loss->backward();
  for (std::size_t i = 0; i < pf.shared.size(); ++i) {
    CAPTURE(pf.shared_names[i]);
    CHECK(rel_norm_diff(pf.shared[i].grad(), fx.expected.load<double, 3>("grad." + pf.shared_names[i])) < grad_tol);
  }
  for (std::size_t i = 0; i < pf.batched.size(); ++i) {
    CAPTURE(pf.batched_names[i]);
    CHECK(rel_norm_diff(pf.batched[i].grad(), fx.expected.load<double, 4>("grad." + pf.batched_names[i])) < grad_tol);
  }
  int checked = 0;
  dp::for_each_parameter(model, [&](const std::string& pname, auto& p) {
    if (!p.trainable()) return;
    CAPTURE(pname);
    constexpr std::size_t R = std::tuple_size_v<std::remove_cvref_t<decltype(p.shape())>>;
    CHECK(rel_norm_diff(p.grad(), fx.expected.load<double, R>("grad." + pname)) < grad_tol);
    ++checked;
  });
  CHECK(checked == 3);
}

std::filesystem::path temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("dp_t5_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

template <class M>
std::map<std::string, std::vector<float>> values(M& m) {
  std::map<std::string, std::vector<float>> out;
  dp::for_each_parameter(m, [&](const std::string& n, auto& p) {
    out[n] = std::vector<float>(p.value().data(), p.value().data() + p.size());
  });
  return out;
}

}  // namespace

TEST_CASE("t5: relative position buckets match Hugging Face's _relative_position_bucket") {
  std::ifstream in(kData / "buckets.json");
  REQUIRE(in);
  const auto tables = nlohmann::json::parse(in);
  REQUIRE(tables.size() >= 10);
  int mismatches = 0, checked = 0;
  for (const auto& t : tables) {
    const auto nb = t["num_buckets"].get<std::int64_t>(), md = t["max_distance"].get<std::int64_t>();
    const bool bidir = t["bidirectional"].get<bool>();
    const auto first = t["first"].get<std::int64_t>();
    const auto& b = t["buckets"];
    for (std::size_t i = 0; i < b.size(); ++i) {
      const std::int64_t rel = first + static_cast<std::int64_t>(i);
      const auto got = dp::t5_relative_position_bucket(rel, bidir, nb, md);
      if (got != b[i].get<std::int64_t>()) {
        if (++mismatches < 5)
          MESSAGE("bucket(", rel, ", bidirectional=", bidir, ", ", nb, ", ", md, ") = ", got, ", HF ", b[i]);
      }
      ++checked;
    }
  }
  CHECK(mismatches == 0);
  CHECK(checked > 8000);
}

TEST_CASE("t5: v1.0 (ReLU, tied) outputs, loss and every gradient match Hugging Face") {
  check_parity<float>("v1_0", 1e-5, 1e-4);
  check_parity<double>("v1_0", 1e-10, 1e-6);  // gradients stored as F32
}

TEST_CASE("t5: v1.1 (gated-GELU, untied, H * d_kv != d_model, 3 decoder layers) matches Hugging Face") {
  check_parity<float>("v1_1", 1e-5, 1e-4);
  check_parity<double>("v1_1", 1e-10, 1e-6);
}

TEST_CASE("t5: key/value prefixes (encoder, decoder self, cross; shared and per example) match the reference") {
  check_prefix_parity<float>("v1_0", 1e-5, 1e-4);
  check_prefix_parity<double>("v1_0", 1e-10, 1e-6);
  check_prefix_parity<float>("v1_1", 1e-5, 1e-4);
}

TEST_CASE("t5: shift_right and the HF parameter names") {
  Fixture fx("v1_0");
  auto model = dp::DynamicT5<>::from_pretrained(kData / "v1_0");
  const auto shifted = model.shift_right(fx.labels);
  CHECK(max_abs_diff(shifted, fx.dec_in) == 0);
  std::vector<std::string> names;
  dp::for_each_parameter(model, [&](const std::string& n, auto&) { names.push_back(n); });
  REQUIRE(names.size() >= 6);
  CHECK(names[0] == "shared.weight");
  CHECK(names[1] == "encoder.block.0.layer.0.SelfAttention.q.weight");
  CHECK(names[5] == "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  CHECK(names.back() == "decoder.final_layer_norm.weight");  // tied: no lm_head
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  CHECK(has("encoder.block.1.layer.1.DenseReluDense.wi.weight"));
  CHECK(has("decoder.block.1.layer.1.EncDecAttention.o.weight"));
  CHECK(has("decoder.block.1.layer.2.DenseReluDense.wo.weight"));
  CHECK(has("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"));
  CHECK(!has("decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));
  CHECK(!has("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"));

  auto v11 = dp::DynamicT5<>::from_pretrained(kData / "v1_1");
  names.clear();
  dp::for_each_parameter(v11, [&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names.back() == "lm_head.weight");
  CHECK(has("decoder.block.2.layer.2.DenseReluDense.wi_0.weight"));
  CHECK(has("decoder.block.2.layer.2.DenseReluDense.wi_1.weight"));
  CHECK(!has("decoder.block.2.layer.2.DenseReluDense.wi.weight"));
}

TEST_CASE("t5: checkpoints load with and without the tied aliases; save -> load is exact") {
  // v1_0 on disk carries encoder/decoder.embed_tokens and lm_head (torch's state_dict());
  // v1_1 on disk has shared.weight and lm_head.weight only (save_pretrained).
  auto a = dp::DynamicT5<>::from_pretrained(kData / "v1_0");
  auto b = dp::DynamicT5<>::from_pretrained(kData / "v1_1");
  {
    auto f = dp::SafeTensorsFile::open(kData / "v1_0" / "model.safetensors");
    CHECK(f.contains("encoder.embed_tokens.weight"));
    CHECK(f.contains("lm_head.weight"));
    auto g = dp::SafeTensorsFile::open(kData / "v1_1" / "model.safetensors");
    CHECK(!g.contains("encoder.embed_tokens.weight"));
  }
  const auto dir = temp_dir("aliases");
  a.save_pretrained(dir / "v1_0_plain");
  b.save_pretrained(dir / "v1_1_aliases", /*with_tied_aliases=*/true);
  {
    auto f = dp::SafeTensorsFile::open(dir / "v1_0_plain" / "model.safetensors");
    CHECK(!f.contains("encoder.embed_tokens.weight"));
    CHECK(!f.contains("lm_head.weight"));
    auto g = dp::SafeTensorsFile::open(dir / "v1_1_aliases" / "model.safetensors");
    CHECK(g.contains("decoder.embed_tokens.weight"));
  }
  auto a2 = dp::DynamicT5<>::from_pretrained(dir / "v1_0_plain");
  auto b2 = dp::DynamicT5<>::from_pretrained(dir / "v1_1_aliases");
  CHECK(values(a2) == values(a));
  CHECK(values(b2) == values(b));
  CHECK(a2.config_json()["feed_forward_proj"] == "relu");
  CHECK(b2.config_json()["feed_forward_proj"] == "gated-gelu");

  // an embedding that exists only as an alias (old checkpoints) is found
  {
    auto f = dp::SafeTensorsFile::open(kData / "v1_1" / "model.safetensors");
    std::vector<dp::TensorEntry> entries;
    for (const auto& n : f.names()) {
      const std::string name = n == "shared.weight" ? "encoder.embed_tokens.weight" : n;
      entries.push_back(dp::entry(name, f.info(n).shape.size() == 2 ? dp::AnyTensor<float>::of(f.load<float, 2>(n)).flat
                                                                    : dp::AnyTensor<float>::of(f.load<float, 1>(n)).flat));
      entries.back().shape = f.info(n).shape;
    }
    std::filesystem::create_directories(dir / "alias_only");
    std::filesystem::copy_file(kData / "v1_1" / "config.json", dir / "alias_only" / "config.json");
    dp::save_safetensors(dir / "alias_only" / "model.safetensors", entries);
    auto c = dp::DynamicT5<>::from_pretrained(dir / "alias_only");
    CHECK(values(c) == values(b));
  }

  // missing, unexpected and mis-shaped tensors are all listed; nothing is copied
  {
    auto f = dp::SafeTensorsFile::open(kData / "v1_1" / "model.safetensors");
    std::vector<dp::TensorEntry> entries;
    for (const auto& n : f.names()) {
      if (n == "decoder.block.1.layer.0.SelfAttention.k.weight") continue;
      auto t = f.info(n).shape.size() == 2 ? dp::AnyTensor<float>::of(f.load<float, 2>(n))
                                           : dp::AnyTensor<float>::of(f.load<float, 1>(n));
      entries.push_back(dp::entry(n, t.flat));
      entries.back().shape = t.shape;
      if (n == "encoder.final_layer_norm.weight") entries.back().shape = {4, 4};
    }
    entries.push_back(dp::entry("pooler.dense.weight", Tensor<float, 1>::zeros({3})));
    const auto file = dir / "broken.safetensors";
    dp::save_safetensors(file, entries);
    auto m = dp::DynamicT5<>::from_pretrained(kData / "v1_1");
    auto before = values(m);
    try {
      m.load_safetensors(file);
      FAIL("no error");
    } catch (const dp::Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("missing (1): decoder.block.1.layer.0.SelfAttention.k.weight") != std::string::npos);
      CHECK(msg.find("unexpected (1): pooler.dense.weight") != std::string::npos);
      CHECK(msg.find("encoder.final_layer_norm.weight (4, 4) vs (16)") != std::string::npos);
    }
    CHECK(values(m) == before);
    auto rep = m.load_safetensors(file, /*strict=*/false);
    CHECK(rep.missing.size() == 1);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("t5: compile-time configurations load matching checkpoints and reject others") {
  auto a = dp::T5<TinyV10>::from_pretrained(kData / "v1_0");
  auto b = dp::T5<TinyV11, double>::from_pretrained(kData / "v1_1");
  CHECK(a.dims().tied);
  CHECK(!b.dims().tied);
  CHECK(b.dims().num_decoder_layers == 3);
  CHECK_THROWS_WITH_AS(dp::T5<TinyV10>::from_pretrained(kData / "v1_1"),
                       doctest::Contains("d_kv 6 (expected 4)"), dp::Error);
  CHECK_THROWS_WITH_AS(dp::T5<dp::T5Small>::from_pretrained(kData / "v1_0"),
                       doctest::Contains("does not match the compile-time configuration"), dp::Error);
  static_assert(dp::T5Small::d_model == 512 && dp::T5Base::num_layers == 12 && dp::T5Large::num_heads == 16);
  static_assert(dp::T5v1_1Small::gated && !dp::T5v1_1Small::tied && dp::T5v1_1Small::num_heads == 6);
  static_assert(dp::T5v1_1Large::d_ff == 2816 && dp::T5v1_1Base::act == dp::T5Act::gelu_new);
  // a static model of the standard sizes builds (randomly initialised) and has t5-small's size
  // t5-small: shared 32128 x 512; per encoder layer 4 x 512^2 + 2 x 512 x 2048 + 2 x 512; per
  // decoder layer 8 x 512^2 + 2 x 512 x 2048 + 3 x 512; two 32 x 8 bias tables; two final norms
  dp::T5<dp::T5Small> small(1);
  CHECK(dp::parameter_count(small) ==
        32128 * 512 + 6 * (4 * 512 * 512 + 2 * 512 * 2048 + 2 * 512) +
            6 * (8 * 512 * 512 + 2 * 512 * 2048 + 3 * 512) + 2 * 32 * 8 + 2 * 512);
  // t5-v1_1-small: untied lm_head, inner 6 x 64 = 384, gated d_ff 1024, 8 + 8 layers
  dp::T5<dp::T5v1_1Small> small11(1);
  CHECK(dp::parameter_count(small11) == 76961152);
}

TEST_CASE("t5: dynamic configuration from io's HfT5Config; validation errors") {
  dp::HfT5Config c;
  c.vocab_size = 40, c.d_model = 16, c.d_kv = 4, c.d_ff = 32, c.num_layers = 1, c.num_decoder_layers = 2,
  c.num_heads = 4;
  dp::T5<dp::T5DynamicConfig, double> m(c, 3);
  CHECK(m.dims().num_decoder_layers == 2);
  c.relative_attention_num_buckets = 2;
  CHECK_THROWS_WITH_AS(dp::T5<dp::T5DynamicConfig>{c}, doctest::Contains("relative_attention_num_buckets = 2"), dp::Error);

  // bad inputs are reported with the field
  auto ids = Tensor<std::int64_t, 2>::from({1, 3}, {5, 40, 2});
  auto mask = Tensor<std::int64_t, 2>::full({1, 3}, 1);
  CHECK_THROWS_WITH_AS(m.forward(ids, mask, ids), doctest::Contains("input_ids holds id 40"), dp::Error);
  ids(0, 1) = 4;
  CHECK_THROWS_WITH_AS(m.forward(dp::T5Batch{.input_ids = ids, .attention_mask = mask}),
                       doctest::Contains("give decoder_input_ids or labels"), dp::Error);
  auto bad_mask = Tensor<std::int64_t, 2>::full({1, 2}, 1);
  CHECK_THROWS_AS(m.forward(ids, bad_mask, ids), dp::ShapeError);
  dp::T5Prefix<double> p;
  p.encoder.resize(3);
  CHECK_THROWS_WITH_AS(m.forward(ids, mask, ids, &p), doctest::Contains("3 encoder prefixes for 1 layers"), dp::Error);
  dp::tape().release();
}

TEST_CASE("t5: dropout in train() mode is reproducible and off in eval()") {
  auto m = dp::DynamicT5<>::from_pretrained(kData / "v1_0");
  Fixture fx("v1_0");
  dp::NoGradGuard ng;
  const auto eval = m.forward(fx.ids, fx.mask, fx.dec_in).logits.value().clone();
  m.train();
  m.generator().set_state(7, 0);
  const auto t1 = m.forward(fx.ids, fx.mask, fx.dec_in).logits.value().clone();
  m.generator().set_state(7, 0);
  const auto t2 = m.forward(fx.ids, fx.mask, fx.dec_in).logits.value().clone();
  CHECK(max_abs_diff(t1, t2) == 0);
  CHECK(max_abs_diff(t1, eval) > 1e-3);
  m.eval();
  CHECK(max_abs_diff(m.forward(fx.ids, fx.mask, fx.dec_in).logits.value(), eval) == 0);
}

TEST_CASE("t5: a training step with dropout reaches every parameter; a frozen backbone trains only the prefix") {
  auto m = dp::DynamicT5<>::from_pretrained(kData / "v1_1");
  Fixture fx("v1_1");
  m.train();
  auto loss = m.loss(fx.ids, fx.mask, fx.labels);
  CHECK(std::isfinite(loss.value().item()));
  loss.backward();
  int nonzero = 0, total = 0;
  dp::for_each_parameter(m, [&](const std::string&, auto& p) {
    double s = 0;
    for (auto g : p.grad().span()) s += std::abs(g);
    nonzero += s > 0;
    ++total;
  });
  CHECK(nonzero == total);

  dp::freeze(m);
  FixturePrefix<float> pf(fx.expected, m.dims());
  auto l2 = m.loss(fx.ids, fx.mask, fx.labels, &pf.prefix);
  l2.backward();
  for (auto& p : pf.shared) CHECK(std::isfinite(p.grad()(0, 0, 0)));
  CHECK(dp::tape().size() == 0);
}

}  // namespace test_t5
