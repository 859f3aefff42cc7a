// deepprompt-bench: BERT workloads as a user runs them, timed for the side-by-side comparison
// with PyTorch (bench/reference_pytorch.py runs the same workloads; bench/compare.sh runs both;
// docs/performance.md, "Against PyTorch").
//
//   deepprompt-bench --workload forward|ptv2-step|full-step|infer-folded
//       [--batch 8] [--seq 128] [--lengths a,b,...] [--layers 12] [--hidden 768] [--heads 12]
//       [--ffn 3072] [--vocab 30522] [--prefix 100] [--labels 2] [--dropout 0.1] [--threads 2]
//       [--dtype f32|bf16] [--runs 3] [--warmup 1] [--seed 0] [--unpadded 1]
//       [--first-token-only 1] [--packed 0|1] [--device cpu|cuda] [--tf32 0|1]
//   (flags as "--name value" or "--name=value")
// --device cuda (forward, ptv2-step; fp32, --tf32 1 for TF32 tensor cores): the model on the GPU
// (bench/device_bench.hpp; the binary has it when configured with -DDEEPPROMPT_CUDA=ON). The
// padded layout runs there (--unpadded and --first-token-only are host optimisations); the JSON
// line adds the GPU's name and the device memory held. --threads still sets the host's threads.
// --dtype bf16 (forward, infer-folded, ptv2-step): the backbone is frozen and its Linear weights
// held in bfloat16 (nn/linear.hpp use_bf16_weights: AVX512-BF16 products, fp32 accumulation;
// the prompt, the head and AdamW's state stay fp32).
// --packed 1 (forward, infer-folded, ptv2-step; fp32): the frozen backbone's Linear weights are
// packed once for their forward GEMM (nn/linear.hpp use_packed_weights: the same bits, no packing
// of W per call, as much memory again as the weights). Default: 1 for the inference workloads,
// 0 for ptv2-step (whose memory is one of its targets).
//
// Workloads (BERT-base shapes by default, random weights with Hugging Face's initialisation):
//   forward       eval mode, no tape: embeddings, layers, pooler.
//   infer-folded  as forward, with a trained prompt folded into per-layer key/value constants
//                 (DeepPrompt::freeze_constants) of --prefix tokens; positions shifted as HF.
//   ptv2-step     P-Tuning v2 training step: backbone frozen, DeepPrompt of --prefix key/value
//                 tokens per layer, dropout --dropout, classification head, cross-entropy,
//                 backward, AdamW (bench/bench_common.hpp, Trainer).
//   full-step     the same model, no prefix, everything trainable.
//   gemm-peak     the machine's SGEMM rate (our cpu::gemm, x W^T at BERT-base's three matmul
//                 shapes on 1024 rows, --threads): the best GFLOP/s of them in "gflops" (the
//                 denominator of a step's share of the peak; compare.sh runs it in the same run).
// The batch: row b has seq - b * (seq / batch) real tokens (128, 112, ..., 16 for 8 x 128), or
// --lengths. --unpadded 1 (default) runs the layers on the real tokens only (BertRun::unpadded);
// 0 computes the padded positions too, as PyTorch does. --first-token-only 1 (default; steps
// only) tells the model that the loss reads each row's [CLS] only (BertRun::first_token_only, as
// the library's sequence classifier does): the last layer's queries, attention output and
// feed-forward run on B rows instead of N. The useful FLOPs are counted as if every row went
// through it (the same count as PyTorch's work).
//
// One JSON line on stdout: ms_median / ms_min / ms_max of the timed calls after --warmup untimed
// ones, peak_rss_mib (getrusage), useful_gflop and gflops = useful_gflop / median seconds, where
// the useful FLOPs count the matmuls on real tokens only (the same formula as
// reference_pytorch.py; n_b real lengths, P prefix, C hidden, I ffn, L layers):
//   linear = L * sum_b 2 n_b C (4C + 2I) + 2 B C C (pooler) [+ 2 B C labels (head, steps only)]
//   attention = L * sum_b 4 n_b (P + n_b) C
//   forward, infer-folded: linear + attention;  ptv2-step: 2 linear + 3 attention;
//   full-step: 3 linear + 3 attention (P = 0 for forward and full-step).
#include <deepprompt/deepprompt.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "device_bench.hpp"
#include "flags.hpp"

namespace {

using namespace bench;

struct Options {
  std::string workload;
  index_t batch = 8, seq = 128, layers = 12, hidden = 768, heads = 12, ffn = 3072, vocab = 30522, prefix = 100,
          labels = 2;
  std::vector<index_t> lengths;
  double dropout = 0.1;
  int threads = 2, runs = 3, warmup = 1;
  std::uint64_t seed = 0;
  std::string dtype = "f32";
  bool unpadded = true;
  bool first_token_only = true;  // ptv2-step, full-step: the loss reads [CLS] only (BertRun)
  int packed = -1;                // pre-packed frozen weights; -1: the workload's default
  std::string device = "cpu";
  bool tf32 = false;              // --device cuda: TF32 GEMMs
};

Options parse(int argc, char** argv) {
  Options o;
  Flags f("deepprompt-bench",
          "deepprompt-bench --workload forward|ptv2-step|full-step|infer-folded|gemm-peak\n"
          "         [--batch N] [--seq N] [--lengths a,b,...] [--layers N] [--hidden N] [--heads N]\n"
          "         [--ffn N] [--vocab N] [--prefix N] [--labels N] [--dropout P] [--threads N]\n"
          "         [--dtype f32|bf16] [--runs N] [--warmup N] [--seed N] [--unpadded 0|1]\n"
          "         [--first-token-only 0|1] [--packed 0|1] [--device cpu|cuda] [--tf32 0|1]");
  shape_flags(f, o);
  f.choice("--workload", o.workload, {"forward", "ptv2-step", "full-step", "infer-folded", "gemm-peak"});
  f.integers("--lengths", o.lengths, 2).choice("--dtype", o.dtype, {"f32", "bf16"});
  f.boolean("--first-token-only", o.first_token_only);
  f.integer("--packed", o.packed, 0);
  f.choice("--device", o.device, {"cpu", "cuda"}).boolean("--tf32", o.tf32);
  f.parse(argc, argv);
  if (o.device == "cuda") {
#ifndef DEEPPROMPT_BENCH_CUDA
    f.usage("--device cuda: this deepprompt-bench was built without the CUDA backend (configure with "
            "-DDEEPPROMPT_CUDA=ON)");
#endif
    if (o.workload != "forward" && o.workload != "ptv2-step")
      f.usage("--device cuda runs the forward and ptv2-step workloads");
    if (o.dtype != "f32" || o.packed == 1) f.usage("--device cuda: fp32 weights (--tf32 1 for tensor cores)");
    o.packed = 0, o.unpadded = false, o.first_token_only = false;  // the padded layout on the device
  } else if (o.tf32) {
    f.usage("--tf32 is a --device cuda setting");
  }
  if (o.packed > 1) f.usage("--packed takes 0 or 1");
  if (o.packed < 0) o.packed = o.workload == "forward" || o.workload == "infer-folded" ? 1 : 0;
  if (o.packed && (o.workload == "full-step" || o.dtype == "bf16"))
    f.usage("--packed 1: packs fp32 frozen weights (not with full-step or --dtype bf16)");
  if (o.workload.empty()) f.usage("--workload is required");
  if (o.dtype == "bf16" && o.workload == "full-step")
    f.usage("--dtype bf16: bf16 weights are for a frozen backbone; full-step trains every weight (fp32)");
  if (o.hidden % o.heads != 0) f.usage("--heads must divide --hidden");
  if (!o.lengths.empty()) {
    if (static_cast<index_t>(o.lengths.size()) != o.batch)
      f.usage("--lengths gives " + std::to_string(o.lengths.size()) + " lengths for --batch " + std::to_string(o.batch));
    for (index_t n : o.lengths)
      if (n > o.seq) f.usage("--lengths: " + std::to_string(n) + " is longer than --seq " + std::to_string(o.seq));
  }
  return o;
}

/// The useful FLOPs of the workload (matmuls on real tokens; see the top of the file).
double useful_flops(const Options& o, const std::vector<index_t>& lengths) {
  const bool step = o.workload == "ptv2-step" || o.workload == "full-step";
  const double P = o.workload == "ptv2-step" || o.workload == "infer-folded" ? double(o.prefix) : 0.0;
  const double C = double(o.hidden), I = double(o.ffn), B = double(o.batch);
  double linear = 0, attention = 0;
  for (index_t n : lengths) {
    linear += 2.0 * double(n) * C * (4 * C + 2 * I);
    attention += 4.0 * double(n) * (P + double(n)) * C;
  }
  linear = double(o.layers) * linear + 2 * B * C * C + (step ? 2 * B * C * double(o.labels) : 0.0);
  attention *= double(o.layers);
  if (o.workload == "ptv2-step") return 2 * linear + 3 * attention;
  if (o.workload == "full-step") return 3 * linear + 3 * attention;
  return linear + attention;
}

/// Times `call` (warmup untimed calls, then runs timed ones), in ms.
template <class F>
std::vector<double> time_calls(const Options& o, F&& call) {
  std::vector<double> ms;
  for (int it = 0; it < o.warmup + o.runs; ++it) {
    const auto t0 = Clock::now();
    call();
    const double t = ms_since(t0);
    if (it >= o.warmup) ms.push_back(t);
    std::fprintf(stderr, "%s: %s %d: %.1f ms\n", o.workload.c_str(), it < o.warmup ? "warm-up" : "run",
                 it < o.warmup ? it : it - o.warmup, t);
  }
  return ms;
}

std::vector<double> run_inference(const Options& o, const Batch& in) {
  dp::DynamicBert<float> bert(bert_config(o), dp::BertInit{.seed = o.seed});
  if (o.dtype == "bf16") {
    dp::freeze(bert);
    std::fprintf(stderr, "%s: %d Linear layers on bf16 weights\n", o.workload.c_str(), dp::use_bf16_weights(bert));
  }
  if (o.packed) {
    dp::freeze(bert);
    std::fprintf(stderr, "%s: %d Linear layers on pre-packed weights\n", o.workload.c_str(), dp::use_packed_weights(bert));
  }
  dp::BertRun run;
  run.unpadded = o.unpadded;
  dp::NoGradGuard no_grad;
  if (o.workload == "forward")
    return time_calls(o, [&] { (void)bert.forward(in.ids, in.mask, {}, run); });
  dp::DeepPromptOptions po;
  po.seed = o.seed + 5;
  po.heads = o.heads;
  const dp::DynamicDeepPrompt<float> prompt({o.layers, o.prefix, o.hidden}, po);
  const dp::PromptConstants<float> folded = prompt.freeze_constants();
  return time_calls(o, [&] { (void)dp::forward_with_prompt(bert, folded, in.ids, in.mask, {}, run); });
}

/// The best SGEMM rate over BERT-base's matmul shapes (1024 rows), GFLOP/s; each shape timed
/// for at least 0.3 s after a warm-up call.
double gemm_peak() {
  const index_t M = 1024;
  double best = 0;
  for (const auto& [N, K] : {std::pair<index_t, index_t>{768, 768}, {3072, 768}, {768, 3072}}) {
    std::vector<float> a(static_cast<std::size_t>(M * K), 0.5f), w(static_cast<std::size_t>(N * K), 0.25f),
        c(static_cast<std::size_t>(M * N));
    auto call = [&] {
      cpu::gemm(cpu::Trans::No, cpu::Trans::Yes, M, N, K, 1.0f, a.data(), K, w.data(), K, 0.0f, c.data(), N);
    };
    call();
    int calls = 0;
    const auto t0 = Clock::now();
    while (ms_since(t0) < 300 || calls < 3) call(), ++calls;
    best = std::max(best, 2.0 * double(M * N * K) * calls / (ms_since(t0) * 1e-3) * 1e-9);
  }
  return best;
}

std::vector<double> run_step(const Options& o) {
  Trainer<Options> tr(o, o.workload == "ptv2-step");
  return time_calls(o, [&] { (void)tr.step(); });
}

#ifdef DEEPPROMPT_BENCH_CUDA
/// The workload on the GPU (bench/device_bench.cu); `extra` gets the GPU's name and memory.
std::vector<double> run_on_cuda(const Options& o, const Batch& in, json& extra) {
  DeviceWorkload w;
  w.workload = o.workload, w.cfg = bert_config(o), w.prefix = o.prefix, w.labels = o.labels;
  w.dropout = o.dropout, w.tf32 = o.tf32, w.runs = o.runs, w.warmup = o.warmup, w.seed = o.seed;
  const DeviceTimes t = run_cuda_workload(w, in.ids, in.mask, in.labels);
  extra = json{{"gpu", t.device}, {"device_memory_mib", round3(t.memory_mib)}, {"tf32", o.tf32}};
  return t.ms;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    cpu::set_num_threads(o.threads);
    if (o.workload == "gemm-peak") {
      const double g = gemm_peak();
      std::printf("%s\n", json{{"impl", "deepprompt"}, {"workload", "gemm-peak"}, {"gflops", round3(g)},
                               {"threads", o.threads}, {"omp_wait_policy", omp_wait_policy()}}
                               .dump()
                               .c_str());
      return 0;
    }
    const Batch in = make_batch(o);
    json device_info = json::object();
    std::vector<double> ms;
    if (o.device == "cuda") {
#ifdef DEEPPROMPT_BENCH_CUDA
      ms = run_on_cuda(o, in, device_info);
#endif
    } else {
      ms = o.workload == "forward" || o.workload == "infer-folded" ? run_inference(o, in) : run_step(o);
    }
    const Stats s = stats(ms);
    const double flops = useful_flops(o, in.lengths);
    json j;
    j["impl"] = "deepprompt";
    j["workload"] = o.workload;
    j["device"] = o.device;
    j["ms_median"] = round3(s.median);
    j["ms_min"] = round3(s.min);
    j["ms_max"] = round3(s.max);
    j["peak_rss_mib"] = round3(peak_rss_mib());
    j["useful_gflop"] = round3(1e-9 * flops);
    j["gflops"] = round3(1e-9 * flops / (s.median * 1e-3));
    j.update(json{{"batch", o.batch}, {"seq", o.seq}, {"lengths", in.lengths}, {"layers", o.layers},
                  {"hidden", o.hidden}, {"heads", o.heads}, {"ffn", o.ffn}, {"vocab", o.vocab}, {"prefix", o.prefix},
                  {"labels", o.labels}, {"dropout", o.dropout}, {"threads", o.threads}, {"dtype", o.dtype},
                  {"runs", o.runs}, {"warmup", o.warmup}, {"seed", o.seed}, {"unpadded", o.unpadded},
                  {"first_token_only", o.first_token_only}, {"packed", o.packed == 1},
                  {"omp_wait_policy", omp_wait_policy()}});
    j.update(device_info);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deepprompt-bench: %s\n", e.what());
    return 1;
  }
}
