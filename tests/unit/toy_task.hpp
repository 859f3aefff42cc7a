#pragma once
// A toy train::TrainTask for the trainer's tests (unit and MPI): a linear classifier with input
// dropout on two Gaussian blobs in 8 dimensions (label = which blob).
#include "deepprompt/io/safetensors.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/ops/linear.hpp"
#include "deepprompt/train/trainer.hpp"

#include <filesystem>
#include <span>
#include <vector>

namespace dp_test {

namespace dp = deepprompt;
using dp::index_t;

// Two Gaussian blobs in 8 dimensions; label = which blob.
struct ToyTask {
  float drop = 0.2f;  // input dropout
  static constexpr index_t N = 96, F = 8, C = 2;
  dp::Tensor<float, 2> x{{N, F}};
  dp::Tensor<std::int64_t, 1> y{{N}};
  dp::Parameter<float, 2> w{"classifier.weight", dp::Tensor<float, 2>::zeros({C, F})};
  dp::Parameter<float, 1> b{"classifier.bias", dp::Tensor<float, 1>::zeros({C})};
  dp::Generator gen{7};
  bool training = true;
  float poison = 0;  // added to the loss input: NaN makes the loss NaN
  int evaluations = 0;
  std::vector<double> scripted;  // evaluate() returns these accuracies in turn when set

  ToyTask() {
    dp::Generator g(3);
    for (index_t i = 0; i < N; ++i) {
      y(i) = i % 2;
      for (index_t f = 0; f < F; ++f) x(i, f) = static_cast<float>(g.normal() + (i % 2 ? 1.0 : -1.0) * (f < 2));
    }
  }
  index_t train_size() const { return N; }
  std::vector<index_t> train_lengths() const {
    std::vector<index_t> l(N);
    for (index_t i = 0; i < N; ++i) l[i] = 1 + (i * 7) % 13;
    return l;
  }
  dp::Var<float, 0> loss(std::span<const index_t> batch) {
    const auto n = static_cast<index_t>(batch.size());
    dp::Tensor<float, 2> xb({n, F});
    dp::Tensor<std::int64_t, 1> yb({n});
    for (index_t r = 0; r < n; ++r) {
      for (index_t f = 0; f < F; ++f) xb(r, f) = x(batch[r], f) + poison;
      yb(r) = y(batch[r]);
    }
    auto h = dp::dropout(dp::Var<float, 2>(xb), drop, gen, training);
    return dp::cross_entropy(dp::linear(h, w.var(), b.var()), yb);
  }
  dp::train::Metrics evaluate() {
    if (!scripted.empty()) return {{"accuracy", scripted.at(static_cast<std::size_t>(evaluations++))}};
    dp::NoGradGuard guard;
    index_t right = 0;
    for (index_t i = 0; i < N; ++i) {
      float s[C];
      for (index_t c = 0; c < C; ++c) {
        s[c] = b.value()(c);
        for (index_t f = 0; f < F; ++f) s[c] += w.value()(c, f) * x(i, f);
      }
      right += (s[1] > s[0]) == (y(i) == 1);
    }
    ++evaluations;
    return {{"accuracy", double(right) / double(N)}};
  }
  std::vector<dp::ParamRef<float>> trainable_parameters() { return {w, b}; }
  dp::Generator& generator() { return gen; }
  void set_training(bool on) { training = on; }
  void save(const std::filesystem::path& dir) {
    dp::save_safetensors(dir / "adapter_model.safetensors", {dp::entry("classifier.weight", w.value()),
                                                             dp::entry("classifier.bias", b.value())});
  }
};

}  // namespace dp_test
