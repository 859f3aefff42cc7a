// Includes the umbrella header of an installed DeepPrompt and trains one step of a tiny model.
#include <deepprompt/deepprompt.hpp>

#include <cstdio>

namespace dp = deepprompt;

int main() {
  dp::Generator gen(1);
  auto x = dp::Tensor<float, 2>({4, 3});
  dp::init::normal(x, 0.0, 1.0, gen);
  dp::Parameter<float, 2> w("w", dp::Tensor<float, 2>::zeros({2, 3}));
  auto loss = dp::mean(dp::linear(dp::Var<float, 2>(x), w.var()));
  loss.backward();
  std::printf("consumer ok: loss %.3f, |dw| %zu entries\n", static_cast<double>(loss.value().item()),
              static_cast<std::size_t>(w.grad().size()));
  return 0;
}
