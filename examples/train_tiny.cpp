// train_tiny: the first example. A two-layer network (Linear -> GELU -> Linear) learns to
// classify points of a synthetic three-class spiral with AdamW, a linear warm-up/decay schedule
// and gradient clipping, and prints its loss falling and its accuracy rising.
#include <cmath>
#include <cstdio>
#include <numbers>

#include <deepprompt/deepprompt.hpp>

namespace dp = deepprompt;

namespace {

constexpr dp::index_t kClasses = 3, kPerClass = 200, kHidden = 64;

struct Data {
  dp::Tensor<float, 2> x;         // (N, 2)
  dp::Tensor<std::int64_t, 1> y;  // (N)
};

// Three interleaved spiral arms with a little noise.
Data spiral(dp::Generator& gen) {
  const dp::index_t n = kClasses * kPerClass;
  Data d{dp::Tensor<float, 2>({n, 2}), dp::Tensor<std::int64_t, 1>({n})};
  for (dp::index_t c = 0; c < kClasses; ++c)
    for (dp::index_t i = 0; i < kPerClass; ++i) {
      const double r = static_cast<double>(i) / kPerClass;
      const double t = 4.0 * c + 4.0 * r + 0.2 * gen.normal();
      d.x(c * kPerClass + i, 0) = static_cast<float>(r * std::sin(t));
      d.x(c * kPerClass + i, 1) = static_cast<float>(r * std::cos(t));
      d.y(c * kPerClass + i) = c;
    }
  return d;
}

}  // namespace

int main() {
  dp::Generator gen(2024);
  const Data data = spiral(gen);

  auto make = [&](const char* name, dp::Shape<2> shape) {
    dp::Tensor<float, 2> w(shape);
    const double bound = 1.0 / std::sqrt(static_cast<double>(shape[1]));  // as nn.Linear
    dp::init::uniform(w, -bound, bound, gen);
    return dp::Parameter<float, 2>(name, w);
  };
  auto fc1_w = make("fc1.weight", {kHidden, 2});
  auto fc2_w = make("fc2.weight", {kClasses, kHidden});
  dp::Parameter<float, 1> fc1_b("fc1.bias", dp::Tensor<float, 1>::zeros({kHidden}));
  dp::Parameter<float, 1> fc2_b("fc2.bias", dp::Tensor<float, 1>::zeros({kClasses}));

  const int steps = 600;
  dp::AdamW<float> opt({fc1_w, fc1_b, fc2_w, fc2_b}, {.lr = 1e-2f, .weight_decay = 1e-4f});
  dp::LRScheduler schedule(opt, dp::schedule::linear_with_warmup(50, steps));

  const dp::Var<float, 2> x(data.x);
  for (int step = 0; step <= steps; ++step) {
    auto h = dp::gelu(dp::linear(x, fc1_w.var(), fc1_b.var()));  // (N, 64)
    auto logits = dp::linear(h, fc2_w.var(), fc2_b.var());       // (N, 3)
    auto loss = dp::cross_entropy(logits, data.y);
    if (step % 100 == 0) {
      int correct = 0;
      for (dp::index_t i = 0; i < logits.extent(0); ++i) {
        dp::index_t best = 0;
        for (dp::index_t c = 1; c < kClasses; ++c)
          if (logits.value()(i, c) > logits.value()(i, best)) best = c;
        correct += best == data.y(i);
      }
      std::printf("step %4d  loss %.4f  accuracy %.3f  lr %.5f\n", step, static_cast<double>(loss.value().item()),
                  static_cast<double>(correct) / static_cast<double>(logits.extent(0)), static_cast<double>(opt.lr()));
    }
    if (step == steps) break;
    opt.zero_grad();
    loss.backward();
    dp::clip_grad_norm(opt.params(), 1.0);
    opt.step();
    schedule.step();
  }
  return 0;
}
