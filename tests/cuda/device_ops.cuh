#pragma once
// What the device-parameterised op tests share: run one op (a generic lambda over Vars) on
// host Parameters and on device copies of them, seed both with the same random output gradient,
// and compare the outputs and every input's gradient, the host being the reference.
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "check.cuh"
#include "deepprompt/autodiff/parameter.hpp"
#include "deepprompt/backend/cuda/kernels.cuh"

namespace cuda_test {

template <class T, std::size_t R>
std::vector<double> host_doubles(const dp::Tensor<T, R, dp::Cpu>& t) {
  return std::vector<double>(t.data(), t.data() + t.size());
}
template <class T, std::size_t R>
std::vector<float> floats(const dp::Tensor<T, R, dp::Cpu>& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}
template <class T, std::size_t R, class D>
dp::Tensor<T, R, dp::Cpu> on_host(const dp::Tensor<T, R, D>& t) {
  if constexpr (std::is_same_v<D, dp::Cpu>) return t;
  else return dp::to_host(t);
}
template <class D, class T, std::size_t R>
dp::Tensor<T, R, D> on(const dp::Tensor<T, R, dp::Cpu>& host) {
  if constexpr (std::is_same_v<D, dp::Cpu>) return host.clone();
  else return dp::to_device(host);
}

/// A host tensor of `shape` with uniform values in [lo, hi) from `seed`.
template <std::size_t R>
dp::Tensor<float, R> random_tensor(const dp::Shape<R>& shape, unsigned seed, float lo = -2, float hi = 2) {
  const auto v = random_floats(dp::numel(shape), seed, lo, hi);
  return dp::Tensor<float, R>::from(shape, std::span<const float>(v));
}

/// The output and the inputs' gradients of op on device D.
struct OpRun {
  std::vector<float> y;
  std::vector<std::vector<float>> grads;
};

/// op(vars...) on device D with trainable Parameters holding copies of `inputs`; backward from
/// a random seed gradient (seed 7), or from 1 when the output is a scalar and `unit_seed`.
template <class D, class Op, std::size_t... R>
OpRun run_on(Op& op, bool unit_seed, const dp::Tensor<float, R>&... inputs) {
  auto params = std::make_tuple(dp::Parameter<float, R, D>("input", on<D>(inputs))...);
  auto y = std::apply([&](auto&... p) { return op(p.var()...); }, params);
  if (unit_seed && y.size() == 1) {
    y.backward();
  } else {
    const auto seed = random_tensor(y.shape(), 7);
    y.backward(on<D>(seed));
  }
  OpRun r;
  r.y = floats(on_host(y.value()));
  std::apply([&](auto&... p) { (r.grads.push_back(floats(on_host(p.grad()))), ...); }, params);
  return r;
}

/// Checks op on the GPU against op on the host: the output and each input's gradient, within
/// `tol` (scaled error |gpu - cpu| / max(1, |cpu|)).
template <class Op, std::size_t... R>
void check_op(const std::string& name, double tol, Op op, const dp::Tensor<float, R>&... inputs) {
  const OpRun cpu = run_on<dp::Cpu>(op, true, inputs...);
  const OpRun gpu = run_on<dp::Cuda>(op, true, inputs...);
  expect_close(name + ": output", gpu.y, std::vector<double>(cpu.y.begin(), cpu.y.end()), tol);
  for (std::size_t i = 0; i < cpu.grads.size(); ++i)
    expect_close(name + ": gradient of input " + std::to_string(i), gpu.grads[i],
                 std::vector<double>(cpu.grads[i].begin(), cpu.grads[i].end()), tol);
}

}  // namespace cuda_test
