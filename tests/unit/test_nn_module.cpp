// nn/module.hpp: dotted names from visit(), state dicts, strict loading, freezing by pattern.
#include <doctest/doctest.h>

#include "deepprompt/nn/module.hpp"

namespace test_nn_module {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;

namespace {
struct Lin {
  dp::Parameter<float, 2> weight;
  dp::Parameter<float, 1> bias;
  Lin(dp::index_t out, dp::index_t in)
      : weight("weight", dp::Tensor<float, 2>::full({out, in}, 1.f)), bias("bias", dp::Tensor<float, 1>::zeros({out})) {}
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
};
struct Net {
  Lin embed{4, 3};
  std::vector<Lin> layer;
  std::optional<Lin> head;
  Net() {
    layer.emplace_back(2, 4);
    layer.emplace_back(2, 2);
  }
  template <class V>
  void visit(V&& v) {
    v("embed", embed);
    v("layer", layer);
    v("head", head);
  }
};
}  // namespace

TEST_CASE("module: names follow visit order and nest with dots and indices") {
  Net net;
  std::vector<std::string> names;
  dp::for_each_parameter(net, [&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"embed.weight", "embed.bias", "layer.0.weight", "layer.0.bias",
                                          "layer.1.weight", "layer.1.bias"});
  net.head.emplace(1, 2);
  CHECK(dp::parameter_count(net) == 12 + 4 + 8 + 2 + 4 + 2 + 2 + 1);
  auto prefixed = dp::state_dict<float>(net, "bert.");
  CHECK(prefixed.contains("bert.head.weight"));
}

TEST_CASE("module: freeze and unfreeze by glob; trainable parameters carry full names") {
  Net net;
  CHECK(dp::freeze(net) == 6);
  CHECK(dp::parameter_count(net, true) == 0);
  CHECK(dp::unfreeze(net, "layer.*.bias") == 2);
  auto params = dp::trainable_parameters<float>(net);
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "layer.0.bias");
  CHECK(params[1].size == 2);
  CHECK(!net.embed.weight.trainable());
}

TEST_CASE("module: state dict round trip and strict loading lists every problem") {
  Net a, b;
  a.layer[1].weight.value()(0, 1) = 7.f;
  auto sd = dp::state_dict<float>(a);
  CHECK(sd.size() == 6);
  dp::load_state_dict(b, sd);
  CHECK(b.layer[1].weight.value()(0, 1) == 7.f);

  auto bad = sd;
  bad.erase("embed.bias");
  bad["extra.weight"] = dp::AnyTensor<float>::of(dp::Tensor<float, 1>::zeros({3}));
  bad["layer.0.weight"] = dp::AnyTensor<float>::of(dp::Tensor<float, 2>::zeros({4, 2}));
  b.layer[1].weight.value()(0, 1) = 0.f;
  CHECK_THROWS_WITH_AS(dp::load_state_dict(b, bad),
                       doctest::Contains("missing (1): embed.bias"), dp::Error);
  try {
    dp::load_state_dict(b, bad);
  } catch (const dp::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("unexpected (1): extra.weight") != std::string::npos);
    CHECK(msg.find("layer.0.weight (4, 2) vs (2, 4)") != std::string::npos);
  }
  CHECK(b.layer[1].weight.value()(0, 1) == 0.f);  // strict: nothing copied
  auto rep = dp::load_state_dict(b, bad, /*strict=*/false);
  CHECK(!rep.ok());
  CHECK(b.layer[1].weight.value()(0, 1) == 7.f);  // what fits is copied
}

}  // namespace test_nn_module
