// models/bert.hpp on a device other than the host (HostDevice of host_device.hpp: host memory,
// the device code paths): the model read onto the device from the PyTorch fixture
// (tests/data/bert), its outputs against PyTorch's, its gradients against the host model's;
// P-Tuning v2 training steps on the device (frozen backbone, prompt rows viewed as per-layer
// key/value prefixes with prefix dropout, a classifier head, clip_grad_norm, AdamW with its
// state on the device) against the same steps on the host; and the copies between devices.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bert_fixture.hpp"
#include "bert_ptv2_steps.hpp"
#include "deepprompt/models/bert.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "deepprompt/peft/deep_prompt_bert.hpp"
#include "host_device.hpp"

namespace test_bert_device {

using namespace bert_fixture;
using dp_test::HostDevice;

template <class D>
using Model = dp::DynamicBert<float, D>;

// The fixture's prefix (L, 2, H, P, D) as per-layer trainable keys and values on device D.
template <class D>
struct Prefix {
  std::vector<dp::Parameter<float, 3, D>> k, v;
  Prefix() {
    const auto all = want<5>("prefix");
    for (index_t l = 0; l < all.extent(0); ++l) {
      k.emplace_back("k", dp::copy_to<D>(all[l][0].clone()));
      v.emplace_back("v", dp::copy_to<D>(all[l][1].clone()));
    }
  }
  std::vector<dp::KVPrefix<float, D>> shared() const {
    std::vector<dp::KVPrefix<float, D>> out;
    for (std::size_t l = 0; l < k.size(); ++l) out.push_back(dp::KVPrefix<float, D>::shared(k[l].var(), v[l].var()));
    return out;
  }
};


// The outputs, then every gradient (parameters in visit order, then the prefix's), of the
// fixture's forward pass with its prefix, seeded with the fixture's R on last_hidden_state.
template <class D>
std::vector<std::vector<float>> outputs_and_grads(Model<D>& model) {
  Prefix<D> prefix;
  auto out = model.forward(ids("input_ids"), ids("attention_mask"), ids("token_type_ids"), {}, prefix.shared());
  std::vector<std::vector<float>> r{dp_test::values(out.last_hidden_state.value()), dp_test::values(out.pooler_output.value())};
  out.last_hidden_state.backward(dp::copy_to<D>(want<3>("R")));
  dp::for_each_parameter(model, [&](const std::string&, auto& p) { r.push_back(dp_test::values(p.grad())); });
  for (std::size_t l = 0; l < prefix.k.size(); ++l) {
    r.push_back(dp_test::values(prefix.k[l].grad()));
    r.push_back(dp_test::values(prefix.v[l].grad()));
  }
  return r;
}

using dp_test::worst_rel;

TEST_CASE("bert on a device: from_pretrained, PyTorch's outputs, the host's gradients") {
  auto dev = Model<HostDevice>::from_pretrained(kDir);
  auto host = Model<dp::Cpu>::from_pretrained(kDir);
  static_assert(std::is_same_v<dp::model_device_t<Model<HostDevice>>, HostDevice>);
  const auto d = outputs_and_grads(dev);
  const auto h = outputs_and_grads(host);
  REQUIRE(d.size() == h.size());
  REQUIRE(d.size() == 2 + 39 + 4);
  // against PyTorch
  const auto last = want<3>("prefix.last_hidden_state");
  const auto pooled = want<2>("prefix.pooler_output");
  CHECK(worst_rel(d[0], std::vector<float>(last.data(), last.data() + last.size())) < 1e-5);
  CHECK(worst_rel(d[1], std::vector<float>(pooled.data(), pooled.data() + pooled.size())) < 1e-5);
  // against the host model (the same kernels but a few loops with the CUDA kernels' contracts)
  for (std::size_t k = 0; k < d.size(); ++k) {
    CAPTURE(k);
    CHECK(worst_rel(d[k], h[k]) <= 1e-6);
  }
}

TEST_CASE("bert on a device: P-Tuning v2 training steps follow the host's") {
  auto dev = Model<HostDevice>::from_pretrained(kDir);
  auto host = Model<dp::Cpu>::from_pretrained(kDir);
  const auto prompt = dp_test::random_tensor<float>(dp::Shape<2>{3, host.cfg.layers * 2 * host.cfg.hidden}, 5);
  const auto d = bert_ptv2::train(dev, ids("input_ids"), ids("attention_mask"), prompt, 4);
  const auto h = bert_ptv2::train(host, ids("input_ids"), ids("attention_mask"), prompt, 4);
  CHECK(worst_rel(d.losses, h.losses) <= 1e-5);
  CHECK(worst_rel(d.prompt, h.prompt) <= 1e-5);
  CHECK(std::abs(d.eval_after - h.eval_after) <= 1e-5);
  CHECK(h.eval_after < h.eval_before);  // it learns
}

// Bert::forward_with_input_prompt (Prompt Tuning / P-Tuning v1's input) on device D: the
// outputs, then the prompt's gradient, for a shared (P, C) prompt.
template <class D>
std::vector<std::vector<float>> input_prompt_run() {
  auto model = Model<D>::from_pretrained(kDir);
  dp::Parameter<float, 2, D> prompt("prompt", dp::copy_to<D>(dp_test::random_tensor<float>(dp::Shape<2>{3, 32}, 17)));
  auto out = model.forward_with_input_prompt(prompt.var(), ids("input_ids"), ids("attention_mask"),
                                             ids("token_type_ids"));
  std::vector<std::vector<float>> r{dp_test::values(out.last_hidden_state.value()), dp_test::values(out.pooler_output.value())};
  dp::mean(out.pooler_output).backward();
  r.push_back(dp_test::values(prompt.grad()));
  return r;
}

TEST_CASE("bert on a device: an input-layer prompt (forward_with_input_prompt) follows the host") {
  const auto d = input_prompt_run<HostDevice>();
  const auto h = input_prompt_run<dp::Cpu>();
  for (std::size_t k = 0; k < d.size(); ++k) {
    CAPTURE(k);
    CHECK(worst_rel(d[k], h[k]) <= 1e-6);
  }
}

// PromptedBert with DeepPrompt<..., D> (Prefix Tuning's projection, THUDM's prefix dropout):
// two AdamW steps on the prompt, then the projection folded and served as constants. Returns
// the training losses, the served last hidden state, and the prompt rows saved by save_peft.
template <class D>
std::vector<std::vector<float>> prompted_run(const fs::path& dir) {
  dp::DeepPromptOptions po;
  po.seed = 3, po.prefix_dropout = 0.1, po.projection = 16;
  dp::PromptedBert model{Model<D>::from_pretrained(kDir), dp::DynamicDeepPrompt<float, D>({2, 3, 32}, po)};
  static_assert(std::is_same_v<typename decltype(model)::device_type, D>);
  model.bert.set_dropout(0.1, 0.1);
  auto params = dp::trainable_parameters<float>(model);  // the projection's four tensors
  CHECK(params.size() == 5);
  dp::AdamW<float, D> opt(params, {.lr = 1e-2});
  dp::Generator gen(9);
  const auto input = ids("input_ids");
  dp::Tensor<std::int64_t, 1> labels({input.extent(0)});
  for (index_t b = 0; b < labels.size(); ++b) labels(b) = 3 * b % 32;
  std::vector<std::vector<float>> r(1);
  for (int step = 0; step < 2; ++step) {
    auto out = model.forward(input, ids("attention_mask"), ids("token_type_ids"), {.training = true, .generator = &gen});
    auto loss = dp::cross_entropy(out.pooler_output, labels);
    loss.backward();
    opt.step();
    opt.zero_grad();
    r[0].push_back(dp_test::values(loss.value())[0]);
  }
  model.prompt.fold();
  auto constants = model.freeze_constants();
  dp::NoGradGuard no_grad;
  r.push_back(dp_test::values(dp::forward_with_prompt(model.bert, constants, input, ids("attention_mask"))
                              .last_hidden_state.value()));
  model.prompt.save_peft(dir);
  r.push_back(dp_test::values(dp::DynamicDeepPrompt<float>::load_peft(dir).prompt_embeddings->value()));
  return r;
}

TEST_CASE("bert on a device: PromptedBert with a DeepPrompt (projection, prefix dropout) follows the host") {
  const auto dir = temp_dir("device_prompt");
  const auto d = prompted_run<HostDevice>(dir / "dev");
  const auto h = prompted_run<dp::Cpu>(dir / "host");
  fs::remove_all(dir);
  REQUIRE(d.size() == 3);
  for (std::size_t k = 0; k < d.size(); ++k) {
    CAPTURE(k);
    CHECK(worst_rel(d[k], h[k]) <= 1e-5);
  }
  // and the adapter saved from the device loads onto the device
  auto host_prompt = dp::DynamicDeepPrompt<float>({2, 3, 32}, dp::DeepPromptOptions{.heads = 4, .seed = 4});
  host_prompt.save_peft(dir / "again");
  auto on_dev = dp::DynamicDeepPrompt<float, HostDevice>::load_peft(dir / "again");
  CHECK(worst_rel(dp_test::values(on_dev.prompt_embeddings->value()), dp_test::values(host_prompt.prompt_embeddings->value())) == 0);
  fs::remove_all(dir);
}

TEST_CASE("bert on a device: copies between devices, checkpoints through the host") {
  auto host = Model<dp::Cpu>::from_pretrained(kDir);
  auto dev = host.to<HostDevice>();
  dp::freeze(dev, "encoder.layer.0.*");
  auto back = dev.to<dp::Cpu>();
  int n = 0;
  dp::for_each_parameter(back, [&](const std::string& name, auto& p) {
    CAPTURE(name);
    CHECK(p.trainable() == (name.rfind("encoder.layer.0.", 0) != 0));
    ++n;
  });
  CHECK(n == 39);
  const auto sd = dev.hf_state_dict();
  const auto want_sd = host.hf_state_dict();
  REQUIRE(sd.size() == want_sd.size());
  for (const auto& [name, t] : want_sd) CHECK(sd.at(name).flat.size() == t.flat.size());
  CHECK(std::equal(sd.at("pooler.dense.weight").flat.begin(), sd.at("pooler.dense.weight").flat.end(),
                   want_sd.at("pooler.dense.weight").flat.begin()));

  // saved from the device, read back on the host: the same bits
  const auto dir = temp_dir("device");
  dev.save_pretrained(dir);
  auto again = Model<dp::Cpu>::from_pretrained(dir);
  auto o1 = again.forward(ids("input_ids"), ids("attention_mask"));
  auto o2 = host.forward(ids("input_ids"), ids("attention_mask"));
  CHECK(same_bits(o1.last_hidden_state.value(), o2.last_hidden_state.value()));
  // loading into a device model
  auto zeroed = Model<HostDevice>(dev.cfg, dp::BertInit{.random_weights = false});
  zeroed.load_weights(dp::SafeTensorsFile::open(dir / "model.safetensors"));
  auto o3 = zeroed.forward(ids("input_ids"), ids("attention_mask"));
  CHECK(max_abs_diff(dp::to_host(o3.last_hidden_state.value()), o2.last_hidden_state.value()) == 0);
  fs::remove_all(dir);

  // models of other parts do not fit each other
  auto no_pooler = Model<HostDevice>(dev.cfg, dp::BertInit{.pooler = false});
  CHECK_THROWS_WITH_AS(dp::copy_parameters<float>(no_pooler, host), doctest::Contains("unexpected (2): pooler.dense"),
                       dp::Error);
}

}  // namespace test_bert_device
