// train/ on a device other than the host (HostDevice of host_device.hpp): SGD, Adam and AdamW
// with their state in device memory (the backend's adam_update / sgd_update) and
// clip_grad_norm through the backend's grad_norm_partial / scale, against the host's optimisers
// fed the same gradients. On a target with fused multiply-adds the host's xsimd loops and the
// device contract (backend/optimizer_args.hpp) round alike, so the trajectories agree bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "deepprompt/train/clip_grad.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "host_device.hpp"

namespace test_train_device {

namespace dp = deepprompt;
using dp::index_t;
using dp_test::HostDevice;

#if defined(__FMA__) || defined(__AVX512F__)
constexpr double kTol = 0;  // the same roundings
#else
constexpr double kTol = 1e-6;  // xsimd's fma rounds twice without FMA instructions
#endif

// Two trainable parameters (a bias-like and a weight-like name, for the decay groups) and a
// frozen one, on device D, from fixed values.
template <class D>
struct Params {
  dp::Parameter<float, 2, D> w{"layer.weight", dp::copy_to<D>(dp_test::random_tensor<float>(dp::Shape<2>{7, 5}, 1))};
  dp::Parameter<float, 1, D> b{"layer.bias", dp::copy_to<D>(dp_test::random_tensor<float>(dp::Shape<1>{37}, 2))};
  dp::Parameter<float, 1, D> frozen{"frozen.weight", dp::copy_to<D>(dp_test::random_tensor<float>(dp::Shape<1>{3}, 3))};
  Params() { frozen.set_trainable(false); }
  std::vector<dp::ParamRef<float, D>> refs() { return {w, b, frozen}; }
  // this step's gradients (the same on both devices), scaled so that clipping acts on some steps
  void set_grads(int step) {
    const float s = step % 2 ? 3.0f : 0.05f;
    auto gw = dp_test::random_tensor<float>(dp::Shape<2>{7, 5}, 100 + step);
    auto gb = dp_test::random_tensor<float>(dp::Shape<1>{37}, 200 + step);
    for (index_t i = 0; i < gw.size(); ++i) gw.data()[i] *= s;
    for (index_t i = 0; i < gb.size(); ++i) gb.data()[i] *= s;
    std::memcpy(w.grad().data(), gw.data(), sizeof(float) * gw.size());  // HostDevice memory is host memory
    std::memcpy(b.grad().data(), gb.data(), sizeof(float) * gb.size());
  }
  std::vector<float> values() const {
    std::vector<float> v(w.value().data(), w.value().data() + w.size());
    v.insert(v.end(), b.value().data(), b.value().data() + b.size());
    return v;
  }
};

using dp_test::worst_rel;

// Six steps of make(refs) on each device with clip_grad_norm(max_norm) before each step (0: no
// clipping); the parameters and the returned norms must agree.
template <class Make>
void check_trajectory(Make make, double max_norm, double norm_type = 2.0) {
  Params<dp::Cpu> host;
  Params<HostDevice> dev;
  auto oh = make(host.refs());
  auto od = make(dev.refs());
  for (int step = 0; step < 6; ++step) {
    CAPTURE(step);
    host.set_grads(step);
    dev.set_grads(step);
    if (max_norm > 0) {
      const float nh = dp::clip_grad_norm(oh->params(), max_norm, norm_type);
      const float nd = dp::clip_grad_norm(od->params(), max_norm, norm_type);
      CHECK(std::abs(double(nh) - nd) <= 1e-6 * std::abs(double(nh)));
    }
    oh->step();
    od->step();
    CHECK(worst_rel(host.values(), dev.values()) <= kTol);
    oh->zero_grad();
    od->zero_grad();
    CHECK(dev.w.grad().data()[3] == 0.0f);
  }
  CHECK(dev.frozen.value().data()[0] == host.frozen.value().data()[0]);  // untouched on both
}

TEST_CASE("optimisers on a device: the same trajectory as on the host") {
  SUBCASE("AdamW, Hugging Face's decay groups, clipped") {
    check_trajectory([](auto refs) {
      using R = typename decltype(refs)::value_type;
      return std::make_unique<dp::AdamW<float, typename R::device_type>>(
          dp::split_weight_decay(std::move(refs)), dp::AdamWOptions{.lr = 3e-2, .weight_decay = 0.1});
    }, 1.0);
  }
  SUBCASE("AdamW with amsgrad") {
    check_trajectory([](auto refs) { return std::make_unique<dp::AdamW<float, typename decltype(refs)::value_type::device_type>>(
                                         std::move(refs), dp::AdamWOptions{.lr = 1e-2, .amsgrad = true}); },
                     0.0);
  }
  SUBCASE("Adam with L2 weight decay") {
    check_trajectory([](auto refs) { return std::make_unique<dp::Adam<float, typename decltype(refs)::value_type::device_type>>(
                                         std::move(refs), dp::AdamOptions{.lr = 1e-2, .weight_decay = 0.05}); },
                     0.5, 1.0);
  }
  SUBCASE("SGD with momentum, dampening and weight decay") {
    check_trajectory([](auto refs) { return std::make_unique<dp::SGD<float, typename decltype(refs)::value_type::device_type>>(
                                         std::move(refs), dp::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}); },
                     0.0);
  }
  SUBCASE("SGD, Nesterov, clipped by the infinity norm") {
    check_trajectory([](auto refs) { return std::make_unique<dp::SGD<float, typename decltype(refs)::value_type::device_type>>(
                                         std::move(refs), dp::SGDOptions{.lr = 0.05, .momentum = 0.8, .nesterov = true}); },
                     0.7, std::numeric_limits<double>::infinity());
  }
  SUBCASE("plain SGD, clipped by a 3-norm") {
    check_trajectory([](auto refs) { return std::make_unique<dp::SGD<float, typename decltype(refs)::value_type::device_type>>(
                                         std::move(refs), dp::SGDOptions{.lr = 0.1}); },
                     0.3, 3.0);
  }
}

TEST_CASE("optimisers on a device: state restore, and the state lives on the device") {
  Params<dp::Cpu> host;
  Params<HostDevice> dev;
  dp::AdamW<float> oh(host.refs());
  dp::AdamW<float, HostDevice> od(dev.refs());
  for (int step = 0; step < 2; ++step) {
    host.set_grads(step), dev.set_grads(step);
    oh.step(), od.step();
  }
  // a resumed device optimiser continues from the host's saved state (host tensors)
  Params<HostDevice> resumed;
  std::memcpy(resumed.w.value().data(), host.w.value().data(), sizeof(float) * host.w.size());
  std::memcpy(resumed.b.value().data(), host.b.value().data(), sizeof(float) * host.b.size());
  dp::AdamW<float, HostDevice> orr(resumed.refs());
  orr.restore_state(oh.steps(), oh.exp_avg(), oh.exp_avg_sq());
  const dp::Tensor<float, 1, HostDevice>& m = orr.exp_avg();
  CHECK(m.size() == oh.state_size());
  host.set_grads(2), resumed.set_grads(2);
  oh.step(), orr.step();
  CHECK(worst_rel(host.values(), resumed.values()) <= kTol);
  CHECK(dp::to_host(orr.exp_avg_sq()).data()[1] == oh.exp_avg_sq().data()[1]);
  CHECK_THROWS_AS(orr.restore_state(1, dp::Tensor<float, 1>::zeros({3}), oh.exp_avg_sq()), dp::Error);
}

TEST_CASE("clip_grad_norm on a device: frozen, empty and non-finite gradients") {
  Params<HostDevice> dev;
  Params<dp::Cpu> host;
  dev.set_grads(1), host.set_grads(1);
  CHECK(dp::clip_grad_norm(std::vector<dp::ParamRef<float, HostDevice>>{dev.frozen}, 1.0) == 0.0f);
  CHECK(dp::clip_grad_norm(std::vector<dp::ParamRef<float, HostDevice>>{}, 1.0) == 0.0f);
  dev.b.grad().data()[4] = std::numeric_limits<float>::quiet_NaN();
  host.b.grad().data()[4] = std::numeric_limits<float>::quiet_NaN();
  for (double order : {2.0, std::numeric_limits<double>::infinity()}) {
    CAPTURE(order);
    const float before = dev.w.grad().data()[0];
    CHECK(std::isnan(dp::clip_grad_norm(dev.refs(), 1.0, order)));
    CHECK(std::isnan(dp::clip_grad_norm(host.refs(), 1.0, order)));
    CHECK(dev.w.grad().data()[0] == before);  // nothing clipped
  }
  CHECK_THROWS_AS(dp::clip_grad_norm(dev.refs(), 1.0, -1.0), dp::Error);
}

}  // namespace test_train_device
