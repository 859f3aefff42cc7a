// models/t5.hpp on a device other than the host (HostDevice of host_device.hpp: host memory,
// the device code paths): the Hugging Face fixtures (tests/data/t5) read onto the device give
// PyTorch's logits and loss, and the host's gradients; a training step with key/value prefixes
// and AdamW on the device follows the host's; the copies between devices and the checkpoints.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "deepprompt/models/t5.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "host_device.hpp"

namespace test_t5_device {

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp_test::HostDevice;
using dp_test::worst_rel;

const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA) / "t5";


struct Inputs {
  dp::SafeTensorsFile expected;
  dp::Tensor<std::int64_t, 2> ids, mask, labels;
  explicit Inputs(const std::string& name) : expected(dp::SafeTensorsFile::open(kData / name / "expected.safetensors")) {
    ids = expected.load<std::int64_t, 2>("input_ids");
    mask = expected.load<std::int64_t, 2>("attention_mask");
    labels = expected.load<std::int64_t, 2>("labels");
  }
};

// The fixture's forward pass with labels on device D, with a shared key/value prefix on every
// kind of attention (seeds 5, 6, 7): the logits and loss, then every gradient.
template <class D>
std::vector<std::vector<float>> run(const std::string& name, const Inputs& in, bool with_prefix) {
  auto model = dp::DynamicT5<float, D>::from_pretrained(kData / name);
  static_assert(std::is_same_v<dp::model_device_t<decltype(model)>, D>);
  const auto& d = model.dims();
  std::vector<dp::Parameter<float, 3, D>> pk, pv;
  dp::T5Prefix<float, D> prefix;
  if (with_prefix) {
    for (int kind = 0; kind < 3; ++kind) {
      pk.emplace_back("k", dp::copy_to<D>(dp_test::random_tensor<float>(dp::Shape<3>{d.num_heads, 2, d.d_kv}, 5 + kind)));
      pv.emplace_back("v", dp::copy_to<D>(dp_test::random_tensor<float>(dp::Shape<3>{d.num_heads, 2, d.d_kv}, 8 + kind)));
    }
    prefix.encoder.assign(d.num_layers, dp::KVPrefix<float, D>::shared(pk[0].var(), pv[0].var()));
    prefix.decoder.assign(d.num_decoder_layers, dp::KVPrefix<float, D>::shared(pk[1].var(), pv[1].var()));
    prefix.cross.assign(d.num_decoder_layers, dp::KVPrefix<float, D>::shared(pk[2].var(), pv[2].var()));
  }
  auto out = model.forward({.input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels},
                           with_prefix ? &prefix : nullptr);
  std::vector<std::vector<float>> r{dp_test::values(out.logits.value()), dp_test::values(out.loss->value())};
  out.loss->backward();
  dp::for_each_parameter(model, [&](const std::string&, auto& p) { r.push_back(dp_test::values(p.grad())); });
  for (std::size_t i = 0; i < pk.size(); ++i) r.push_back(dp_test::values(pk[i].grad())), r.push_back(dp_test::values(pv[i].grad()));
  return r;
}

TEST_CASE("t5 on a device: the fixtures' logits and loss match PyTorch, gradients match the host") {
  for (const std::string name : {"v1_0", "v1_1"}) {
    CAPTURE(name);
    const Inputs in(name);
    const auto dev = run<HostDevice>(name, in, false);
    const auto host = run<dp::Cpu>(name, in, false);
    const auto logits = in.expected.load<float, 3>("logits");
    CHECK(worst_rel(dev[0], std::vector<float>(logits.data(), logits.data() + logits.size())) < 1e-4);
    CHECK(std::abs(dev[1][0] - in.expected.load<float, 1>("loss")(0)) < 1e-4);
    REQUIRE(dev.size() == host.size());
    for (std::size_t k = 0; k < dev.size(); ++k) {
      CAPTURE(k);
      CHECK(worst_rel(dev[k], host[k]) <= 1e-5);
    }
  }
  SUBCASE("with key/value prefixes on encoder, decoder and cross-attention") {
    const Inputs in("v1_1");
    const auto dev = run<HostDevice>("v1_1", in, true);
    const auto host = run<dp::Cpu>("v1_1", in, true);
    REQUIRE(dev.size() == host.size());
    for (std::size_t k = 0; k < dev.size(); ++k) {
      CAPTURE(k);
      CHECK(worst_rel(dev[k], host[k]) <= 1e-5);
    }
  }
}

// Three steps with dropout (train mode) and AdamW on every parameter, on device D: the losses.
template <class D>
std::vector<float> train(const Inputs& in) {
  auto model = dp::DynamicT5<float, D>(dp::DynamicT5<float>::from_pretrained(kData / "v1_0").dims(), 4);
  model.train();
  auto params = dp::trainable_parameters<float>(model);
  dp::AdamW<float, D> opt(params, {.lr = 1e-2});
  std::vector<float> losses;
  for (int step = 0; step < 3; ++step) {
    auto loss = model.loss(in.ids, in.mask, in.labels);
    loss.backward();
    opt.step();
    opt.zero_grad();
    losses.push_back(dp_test::values(loss.value())[0]);
  }
  return losses;
}

TEST_CASE("t5 on a device: training steps with dropout and AdamW follow the host") {
  const Inputs in("v1_0");
  const auto d = train<HostDevice>(in);
  const auto h = train<dp::Cpu>(in);
  CHECK(worst_rel(d, h) <= 1e-5);
  CHECK(h.back() < h.front());
}

TEST_CASE("t5 on a device: copies between devices and checkpoints through the host") {
  auto host = dp::DynamicT5<>::from_pretrained(kData / "v1_1");
  auto dev = host.to<HostDevice>();
  const auto dir = fs::temp_directory_path() / ("dp_test_t5_device_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  dev.save_pretrained(dir);
  auto back = dp::DynamicT5<>::from_pretrained(dir);
  const Inputs in("v1_1");
  const dp::T5Batch batch{.input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
  dp::NoGradGuard no_grad;
  CHECK(worst_rel(dp_test::values(back.forward(batch).logits.value()), dp_test::values(host.forward(batch).logits.value())) == 0);
  dp::DynamicT5<float, HostDevice> loaded(host.dims(), 1);
  loaded.load_safetensors(dir / "model.safetensors");
  CHECK(worst_rel(dp_test::values(loaded.forward(batch).logits.value()), dp_test::values(host.forward(batch).logits.value())) <= 1e-6);
  fs::remove_all(dir);
}

}  // namespace test_t5_device
