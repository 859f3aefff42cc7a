// nn modules with their parameters on a device other than the host (HostDevice of
// host_device.hpp: host memory, the device code paths). A block built from the same generator on
// Cpu and on HostDevice (embedding, multi-head attention with a P-Tuning v2 key/value prefix,
// feed-forward, layer norms, cross-entropy) must give the same loss and the same gradient for
// every parameter, with the backbone trainable and frozen.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "encoder_block.hpp"
#include "host_device.hpp"

namespace test_nn_device {

namespace dp = deepprompt;
using dp::index_t;
using dp_test::HostDevice;


template <class D>
std::vector<std::vector<float>> loss_and_grads(bool frozen_backbone) {
  return encoder_block::loss_and_grads<D>(frozen_backbone, [](const auto& t) { return dp_test::values(t); });
}

TEST_CASE("nn on a device: an encoder block with a P-Tuning v2 prefix agrees with the host") {
  for (bool frozen : {false, true}) {
    CAPTURE(frozen);
    const auto cpu = loss_and_grads<dp::Cpu>(frozen);
    const auto dev = loss_and_grads<HostDevice>(frozen);
    REQUIRE(cpu.size() == dev.size());
    REQUIRE(cpu.size() == 1 + 1 + 8 + 4 + 4 + 2);  // loss, embed, attn q/k/v/o, ff wi/wo, two norms, prefix
    for (std::size_t k = 0; k < cpu.size(); ++k) {
      CAPTURE(k);
      REQUIRE(dev[k].size() == cpu[k].size());
      // the same kernels but cross-entropy's backward (a loop with the CUDA kernel's rounding)
      double worst = 0;
      for (std::size_t i = 0; i < cpu[k].size(); ++i)
        worst = std::max(worst, std::abs(double(dev[k][i]) - cpu[k][i]) / std::max(1.0, std::abs(double(cpu[k][i]))));
      CHECK(worst <= 1e-6);
      if (frozen && k > 0 && k + 2 < cpu.size()) CHECK(cpu[k].empty());
    }
    CHECK(!cpu.back().empty());
  }
}

TEST_CASE("nn on a device: host-only features say so") {
  dp::Generator g(1);
  dp::Linear<float, HostDevice> lin(4, 3, true, g);
  lin.weight.set_trainable(false);
  CHECK_THROWS_WITH_AS(lin.use_bf16(), doctest::Contains("host kernels"), dp::Error);
  CHECK_THROWS_WITH_AS(lin.use_packed(), doctest::Contains("host kernels"), dp::Error);
  dp::MultiHeadAttention<float, HostDevice> attn(8, 2, 4, true, g);
  dp::Var<float, 3, HostDevice> x(dp::copy_to<HostDevice>(dp_test::random_tensor<float>(dp::Shape<3>{1, 3, 8}, 2)));
  const std::vector<index_t> offsets{0, 3};
  dp::AttentionCall<float, HostDevice> call;
  call.offsets = offsets;
  CHECK_THROWS_WITH_AS(attn.forward(x, call), doctest::Contains("host layout"), dp::Error);
}

}  // namespace test_nn_device
