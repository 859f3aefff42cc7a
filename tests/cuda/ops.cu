// The autodiff ops on Var<float, R, Cuda> against the same ops on the host (the op suite
// parameterised by device): each op runs on host Parameters and on device copies of them, both
// are seeded with the same output gradient, and the outputs and every input's gradient must
// agree, within 1e-5 (scaled) for element-wise and row-wise ops and 1e-4 for GEMM-based ones
// and the attention. Then the nn modules on the device (an encoder block with a key/value prefix)
// and a P-Tuning v2 layer stack built from the ops, checked the same way; and the optimisers
// (AdamW, SGD, clip_grad_norm) on device parameters. Exits 77 (skipped) without a GPU.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>

#include "device_ops.cuh"
#include "deepprompt/backend/cuda/linear_bf16.cuh"
#include "deepprompt/ops/activation.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/attention.hpp"
#include "deepprompt/ops/concat.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/ops/embedding.hpp"
#include "deepprompt/ops/linear.hpp"
#include "deepprompt/ops/lstm.hpp"
#include "deepprompt/ops/matmul.hpp"
#include "deepprompt/ops/norm.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "deepprompt/ops/shape.hpp"
#include "deepprompt/ops/softmax.hpp"
#include "deepprompt/train/clip_grad.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "ptv2_layer.cuh"
#include "../unit/bert_ptv2_steps.hpp"
#include "deepprompt/models/t5.hpp"
#include "../unit/encoder_block.hpp"

using namespace cuda_test;
using dp::Shape;

namespace {

template <class V>
using DeviceOf = typename V::device_type;

void elementwise_and_rowwise() {
  const auto x = random_tensor(Shape<2>{7, 131}, 1);
  check_op("gelu", 1e-5, [](auto v) { return dp::gelu(v); }, x);
  check_op("gelu_tanh", 1e-5, [](auto v) { return dp::gelu_tanh(v); }, x);
  check_op("relu", 1e-5, [](auto v) { return dp::relu(v); }, x);
  check_op("tanh", 1e-5, [](auto v) { return dp::tanh(v); }, x);
  check_op("sigmoid", 1e-5, [](auto v) { return dp::sigmoid(v); }, x);
  check_op("exp", 1e-5, [](auto v) { return dp::exp(v); }, x);
  const auto x3 = random_tensor(Shape<3>{3, 5, 67}, 2, -6, 6);
  check_op("softmax", 1e-5, [](auto v) { return dp::softmax(v); }, x3);
  check_op("log_softmax", 1e-5, [](auto v) { return dp::log_softmax(v); }, x3);
  const auto gamma = random_tensor(Shape<1>{67}, 3);
  const auto beta = random_tensor(Shape<1>{67}, 4);
  check_op("layer_norm", 1e-5, [](auto v, auto g, auto b) { return dp::layer_norm(v, g, b, 1e-12f); }, x3, gamma,
           beta);
  check_op("layer_norm without affine", 1e-5, [](auto v) { return dp::layer_norm(v, 1e-5f); }, x3);
  check_op("rms_norm", 1e-5, [](auto v, auto g) { return dp::rms_norm(v, g, 1e-6f); }, x3, gamma);
}

void arithmetic_and_shape() {
  const auto a = random_tensor(Shape<3>{4, 6, 33}, 5);
  const auto b = random_tensor(Shape<3>{4, 6, 33}, 6, 0.5f, 2.0f);
  const auto bias = random_tensor(Shape<1>{33}, 7);
  check_op("add", 1e-5, [](auto u, auto v) { return u + v; }, a, b);
  check_op("add, broadcast bias", 1e-5, [](auto u, auto v) { return u + v; }, a, bias);
  check_op("sub", 1e-5, [](auto u, auto v) { return u - v; }, a, b);
  check_op("mul", 1e-5, [](auto u, auto v) { return u * v; }, a, b);
  check_op("div", 1e-5, [](auto u, auto v) { return u / v; }, a, b);
  check_op("scale, add_scalar", 1e-5, [](auto u) { return 0.5f * u + 3.0f; }, a);
  check_op("reshape, permute", 1e-5,
           [](auto u) { return dp::permute(dp::reshape(u, Shape<4>{4, 6, 3, 11}), {0, 2, 1, 3}); }, a);
  check_op("transpose (no block stays)", 1e-5, [](auto u) { return dp::transpose(u, 0, 2); }, a);
  check_op("slice along axis 1 (a copy)", 1e-5, [](auto u) { return dp::slice(u, 1, 2, 5); }, a);
  check_op("repeat_rows", 1e-5, [](auto u) { return dp::repeat_rows(dp::reshape(u, Shape<2>{24, 33}), 5); }, a);
  check_op("concat along axis 1", 1e-5, [](auto u, auto v) { return dp::concat({u, v, u}, 1); }, a, b);
  check_op("sum (all)", 1e-5, [](auto u) { return dp::sum(u); }, a);
  check_op("mean (all)", 1e-5, [](auto u) { return dp::mean(u); }, a);
  check_op("sum, mean along an axis", 1e-5, [](auto u) { return dp::sum(u, 1) * 2.0f + dp::mean(u, 1); }, a);
  check_op("sum along the last axis (one block per row)", 1e-5, [](auto u) { return dp::sum(u, -1); }, a);
  const auto x = random_tensor(Shape<2>{5, 64}, 8);
  check_op("dropout p = 0.3 (same mask on both devices)", 1e-5, [](auto u) {
    dp::Generator gen(1234, 77);
    return dp::dropout(u, 0.3f, gen, true);
  }, x);
}

void gemm_and_lookup() {
  const auto x = random_tensor(Shape<3>{4, 64, 96}, 9);
  const auto w = random_tensor(Shape<2>{80, 96}, 10, -0.2f, 0.2f);
  const auto b = random_tensor(Shape<1>{80}, 11);
  check_op("linear", 1e-4, [](auto u, auto v, auto c) { return dp::linear(u, v, c); }, x, w, b);
  check_op("linear without bias", 1e-4, [](auto u, auto v) { return dp::linear(u, v); }, x, w);
  const auto ma = random_tensor(Shape<2>{19, 40}, 43), mb = random_tensor(Shape<2>{23, 40}, 44);
  check_op("matmul (b transposed)", 1e-4,
           [](auto u, auto v) { return dp::matmul(u, v, dp::Trans::No, dp::Trans::Yes); }, ma, mb);
  const auto ba = random_tensor(Shape<3>{3, 12, 7}, 41), bb = random_tensor(Shape<3>{3, 12, 5}, 42);
  check_op("matmul, batched (a transposed)", 1e-4,
           [](auto u, auto v) { return dp::matmul(u, v, dp::Trans::Yes, dp::Trans::No); }, ba, bb);
  const auto lx = random_tensor(Shape<2>{6, 10}, 45), lh = random_tensor(Shape<2>{6, 8}, 46),
             lc = random_tensor(Shape<2>{6, 8}, 47), wih = random_tensor(Shape<2>{32, 10}, 48),
             whh = random_tensor(Shape<2>{32, 8}, 49);
  const auto bih = random_tensor(Shape<1>{32}, 50), bhh = random_tensor(Shape<1>{32}, 51);
  check_op("lstm_cell (h' and c')", 1e-4,
           [](auto x, auto h, auto c, auto wi, auto wh, auto bi, auto bh) {
             const auto s = dp::lstm_cell(x, h, c, wi, wh, bi, bh);
             return s.h * 2.0f + s.c;
           },
           lx, lh, lc, wih, whh, bih, bhh);
  // the frozen bf16 weight: the same roundings (x, W and dy to bf16, nearest even) on both devices
  check_op("linear_bf16", 1e-4, [](auto u, auto v, auto c) {
    if constexpr (std::is_same_v<DeviceOf<decltype(u)>, dp::Cpu>)
      return dp::linear_bf16(u, std::make_shared<const dp::Bf16LinearWeight>(v.value()), &c);
    else
      return dp::linear_bf16(u, std::make_shared<const dp::CudaBf16Weight>(v.value()), &c);
  }, x, w, b);

  const auto table = random_tensor(Shape<2>{50, 24}, 12);
  auto ids = dp::Tensor<std::int64_t, 2>::from({3, 7}, {1, 0, 5, 5, 49, 2, 0, 7, 7, 7, 3, 1, 0, 9, 11, 12, 5, 0, 48, 1, 2});
  check_op("embedding (repeated ids, padding_idx 0)", 1e-5, [&](auto t) { return dp::embedding(t, ids, 0); }, table);

  const auto logits = random_tensor(Shape<2>{11, 13}, 13, -4, 4);
  auto targets = dp::Tensor<std::int64_t, 1>::from({11}, {0, 12, 3, -100, 5, 5, 1, 2, 11, -100, 7});
  check_op("cross_entropy (ignore_index)", 1e-5, [&](auto l) { return dp::cross_entropy(l, targets); }, logits);
  check_op("cross_entropy (label smoothing 0.1)", 1e-5,
           [&](auto l) { return dp::cross_entropy(l, targets, -100, 0.1f); }, logits);
  const auto logits3 = random_tensor(Shape<3>{2, 5, 9}, 14, -4, 4);
  auto targets2 = dp::Tensor<std::int64_t, 2>::from({2, 5}, {0, 8, 3, 3, -100, 1, 2, 7, 6, 5});
  check_op("cross_entropy (B, T, C)", 1e-5, [&](auto l) { return dp::cross_entropy(l, targets2); }, logits3);
}

void attention() {
  const index_t B = 2, H = 3, T = 9, D = 16, P = 4;
  const auto q = random_tensor(Shape<4>{B, H, T, D}, 15);
  const auto k = random_tensor(Shape<4>{B, H, T, D}, 16);
  const auto v = random_tensor(Shape<4>{B, H, T, D}, 17);
  const auto pk = random_tensor(Shape<3>{H, P, D}, 18);
  const auto pv = random_tensor(Shape<3>{H, P, D}, 19);
  auto pad = dp::Tensor<int, 2>::from({B, T}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0});
  const auto mask = dp::attention_mask<float>(pad);  // (B, T)
  check_op("attention", 1e-4, [](auto a, auto b, auto c) { return dp::scaled_dot_product_attention(a, b, c); }, q, k,
           v);
  check_op("attention, shared prefix and padding mask", 1e-4,
           [&](auto a, auto b, auto c, auto pkv, auto pvv) {
             dp::AttentionOptions<float, DeviceOf<decltype(a)>> o;
             o.mask = on<DeviceOf<decltype(a)>>(mask);
             o.prefix_k = pkv, o.prefix_v = pvv;
             return dp::scaled_dot_product_attention(a, b, c, o);
           },
           q, k, v, pk, pv);
  const auto bias = random_tensor(Shape<4>{1, H, T, T}, 20);
  check_op("attention, causal, bias, dropout 0.2", 1e-4,
           [&](auto a, auto b, auto c, auto bv) {
             dp::Generator gen(99);
             dp::AttentionOptions<float, DeviceOf<decltype(a)>> o;
             o.bias = bv, o.causal = true, o.dropout = 0.2f, o.generator = &gen;
             return dp::scaled_dot_product_attention(a, b, c, o);
           },
           q, k, v, bias);
}

void device_parameters() {
  // a device Parameter's gradient starts at zero, accumulates over two passes, and zero_grad clears it
  auto host = random_tensor(Shape<2>{3, 5}, 21);
  dp::Parameter<float, 2, dp::Cuda> p("p", dp::to_device(host));
  for (int pass = 0; pass < 2; ++pass) dp::reshape(p.var() * 2.0f, Shape<1>{15}).backward(dp::to_device(
      dp::Tensor<float, 1>::full({15}, 1.0f)));
  expect_close("Parameter<Cuda>: two passes accumulate", floats(dp::to_host(p.grad())), std::vector<double>(15, 4.0), 0);
  p.zero_grad();
  expect_close("Parameter<Cuda>: zero_grad", floats(dp::to_host(p.grad())), std::vector<double>(15, 0.0), 0);
}

// The optimisers with their state on the GPU (backend/cuda/optimizer.cuh) against the host's,
// fed the same gradients, with clip_grad_norm before each step: 2-norm clipping + AdamW with
// decay groups, and infinity-norm clipping + Nesterov SGD. Sizes above the kernels' grid and the
// host's threading threshold. Expected to agree to the bit (explicitly rounded intrinsics);
// checked within 1e-6.
template <class D, class Opt>
std::vector<float> trajectory(double max_norm, double norm_type, std::vector<float>& norms) {
  dp::Parameter<float, 1, D> w("layer.weight", on<D>(random_tensor(Shape<1>{300007}, 31)));
  dp::Parameter<float, 1, D> b("layer.bias", on<D>(random_tensor(Shape<1>{1000}, 32)));
  std::unique_ptr<dp::Optimizer<float, D>> opt;
  std::vector<dp::ParamRef<float, D>> refs{w, b};
  if constexpr (std::is_same_v<Opt, dp::SGDOptions>)
    opt = std::make_unique<dp::SGD<float, D>>(refs, dp::SGDOptions{.lr = 0.05, .momentum = 0.8, .nesterov = true});
  else
    opt = std::make_unique<dp::AdamW<float, D>>(dp::split_weight_decay(refs), dp::AdamWOptions{.lr = 1e-2, .weight_decay = 0.1});
  for (int step = 0; step < 4; ++step) {
    const auto gw = random_tensor(Shape<1>{300007}, 40 + step, -0.01f, 0.01f);
    const auto gb = random_tensor(Shape<1>{1000}, 50 + step, -1.0f, 1.0f);
    for (auto [param, g] : {std::pair{&w, &gw}, std::pair{&b, &gb}}) {
      if constexpr (std::is_same_v<D, dp::Cpu>)
        std::copy_n(g->data(), g->size(), param->grad().data());
      else
        dp::upload(dp::Cuda{}, g->data(), param->grad().data(), g->size());
    }
    norms.push_back(dp::clip_grad_norm(opt->params(), max_norm, norm_type));
    opt->step();
  }
  auto out = floats(on_host(w.value()));
  const auto bv = floats(on_host(b.value()));
  out.insert(out.end(), bv.begin(), bv.end());
  return out;
}

void optimisers() {
  const double inf = std::numeric_limits<double>::infinity();
  for (bool sgd : {false, true}) {
    std::vector<float> cpu_norms, gpu_norms;
    const auto cpu = sgd ? trajectory<dp::Cpu, dp::SGDOptions>(0.5, inf, cpu_norms)
                         : trajectory<dp::Cpu, dp::AdamWOptions>(1.0, 2.0, cpu_norms);
    const auto gpu = sgd ? trajectory<dp::Cuda, dp::SGDOptions>(0.5, inf, gpu_norms)
                         : trajectory<dp::Cuda, dp::AdamWOptions>(1.0, 2.0, gpu_norms);
    const std::string name = sgd ? "SGD (Nesterov), inf-norm clipping" : "AdamW, 2-norm clipping";
    expect_close(name + ": norms", gpu_norms, std::vector<double>(cpu_norms.begin(), cpu_norms.end()), 1e-6);
    expect_close(name + ": parameters after 4 steps", gpu, std::vector<double>(cpu.begin(), cpu.end()), 1e-6);
  }
}

// The modules on the device: tests/unit/encoder_block.hpp's block (embedding, attention with a
// P-Tuning v2 prefix, feed-forward, layer norms) built on both devices from the same generator.
template <class D>
std::vector<std::vector<float>> block_loss_and_grads(bool frozen_backbone) {
  return encoder_block::loss_and_grads<D>(frozen_backbone, [](const auto& t) { return floats(on_host(t)); });
}

void modules() {
  for (bool frozen : {false, true}) {
    const auto cpu = block_loss_and_grads<dp::Cpu>(frozen);
    const auto gpu = block_loss_and_grads<dp::Cuda>(frozen);
    const std::string name = frozen ? "encoder block, frozen backbone" : "encoder block, all trainable";
    if (cpu.size() != gpu.size()) ++g_failed;
    for (std::size_t i = 0; i < cpu.size() && i < gpu.size(); ++i)
      expect_close(name + (i == 0 ? ": loss" : ": gradient " + std::to_string(i)), gpu[i],
                   std::vector<double>(cpu[i].begin(), cpu[i].end()), 1e-4);
  }
}

// Work on a stream of one's own (cuda::StreamGuard): the encoder block's loss and gradients come
// out the same as on the default stream, and the guard restores the thread's stream.
void streams() {
  const auto plain = block_loss_and_grads<dp::Cuda>(false);
  std::vector<std::vector<float>> on_stream;
  dp::cuda::Stream stream;
  {
    dp::cuda::StreamGuard guard(stream.get());
    if (dp::cuda::current_stream() != stream.get()) ++g_failed, std::printf("FAIL StreamGuard did not set the stream\n");
    on_stream = block_loss_and_grads<dp::Cuda>(false);
  }
  if (dp::cuda::current_stream() != nullptr) ++g_failed, std::printf("FAIL StreamGuard did not restore the stream\n");
  for (std::size_t i = 0; i < plain.size() && i < on_stream.size(); ++i)
    expect_close("encoder block on a stream of its own: output " + std::to_string(i), on_stream[i],
                 std::vector<double>(plain[i].begin(), plain[i].end()), 0);
}

// BERT on the GPU (models/bert.hpp with Dev = Cuda): a small random model copied to the device
// (Bert::to), four P-Tuning v2 steps with prefix dropout, clipping and AdamW on the device
// (tests/unit/bert_ptv2_steps.hpp) against the same steps on the host.
void bert_steps() {
  using Cfg = dp::BertConfig<2, 32, 4, 64, 99, 24, 2>;
  dp::Bert<Cfg> host(Cfg{}, dp::BertInit{.seed = 3});
  auto gpu = host.to<dp::Cuda>();
  const index_t B = 4, T = 10;
  dp::Tensor<std::int64_t, 2> ids({B, T}), mask({B, T});
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) ids(b, t) = 1 + (7 * b + 3 * t) % 98, mask(b, t) = t < T - b ? 1 : 0;
  const auto prompt = random_tensor(Shape<2>{3, 2 * 2 * 32}, 61);
  const auto h = bert_ptv2::train(host, ids, mask, prompt, 4);
  const auto g = bert_ptv2::train(gpu, ids, mask, prompt, 4);
  expect_close("Bert<Cuda>, P-Tuning v2 steps: losses", g.losses, std::vector<double>(h.losses.begin(), h.losses.end()), 1e-4);
  expect_close("Bert<Cuda>, P-Tuning v2 steps: prompt", g.prompt, std::vector<double>(h.prompt.begin(), h.prompt.end()), 1e-4);
  expect_close("Bert<Cuda>, P-Tuning v2 steps: evaluation loss", std::vector<float>{g.eval_before, g.eval_after},
               std::vector<double>{h.eval_before, h.eval_after}, 1e-4);
}

// T5 on the GPU: a tiny random v1.0 model copied to the device (T5::to), the teacher-forced loss
// and every gradient against the host's.
void t5_model() {
  using Tiny = dp::T5Config<16, 4, 32, 2, 2, 4, 40, dp::T5Act::relu, false, true, 16, 20>;
  dp::T5<Tiny> host(3);
  auto gpu = host.to<dp::Cuda>();
  const index_t B = 2, Ts = 7, S = 5;
  dp::Tensor<std::int64_t, 2> ids({B, Ts}), mask({B, Ts}), labels({B, S});
  for (index_t b = 0; b < B; ++b) {
    for (index_t t = 0; t < Ts; ++t) ids(b, t) = 1 + (5 * b + 3 * t) % 39, mask(b, t) = t < Ts - 2 * b ? 1 : 0;
    for (index_t t = 0; t < S; ++t) labels(b, t) = t == S - 1 && b == 1 ? -100 : 1 + (7 * b + t) % 39;
  }
  auto run = [&](auto& model) {
    auto loss = model.loss(ids, mask, labels);
    loss.backward();
    std::vector<std::vector<float>> r{floats(on_host(loss.value()))};
    dp::for_each_parameter(model, [&](const std::string&, auto& p) { r.push_back(floats(on_host(p.grad()))); });
    return r;
  };
  const auto h = run(host);
  const auto g = run(gpu);
  if (h.size() != g.size()) ++g_failed;
  for (std::size_t i = 0; i < h.size() && i < g.size(); ++i)
    expect_close(i == 0 ? std::string("T5<Cuda>: loss") : "T5<Cuda>: gradient " + std::to_string(i), g[i],
                 std::vector<double>(h[i].begin(), h[i].end()), 1e-4);
}

}  // namespace

int main() {
  if (dp::cuda::device_count() == 0) {
    std::printf("skipped: no CUDA device on this machine (the device ops were compiled, not run)\n");
    return 77;
  }
  elementwise_and_rowwise();
  arithmetic_and_shape();
  gemm_and_lookup();
  attention();
  device_parameters();
  modules();
  streams();
  optimisers();
  bert_steps();
  t5_model();
  ptv2_layer_check();
  std::printf("%s: %d failed checks\n", g_failed ? "FAIL" : "ok", g_failed);
  return g_failed ? 1 : 0;
}
