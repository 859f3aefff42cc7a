#pragma once
// What the bench programs share: the machine's counters (peak RSS, CPU time, load, other
// processes' share of the CPU), step statistics, GEMM counters, the synthetic BERT batch, the
// classification head and one training setup (P-Tuning v2 or full fine-tuning) with its step.
// The functions taking an options object `o` read its fields batch, seq, layers, hidden, heads,
// ffn, vocab, prefix, labels, dropout, seed (and, when present, lengths, prefix_dropout,
// unfreeze, unpadded, first_token_only, dtype and packed).
#include <deepprompt/deepprompt.hpp>

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace bench {

namespace dp = deepprompt;
namespace cpu = deepprompt::cpu;
using dp::index_t;
using dp::Tensor;
using dp::Var;
using json = nlohmann::json;

// --- the machine -----------------------------------------------------------------------------

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

/// The tensor memory pool's counters (core/storage.hpp), MiB.
double mib(std::size_t bytes) { return std::round(static_cast<double>(bytes) / (1024.0 * 1024.0)); }
dp::PoolStats pool_stats() { return dp::MemoryPool::cpu().stats(); }

std::array<double, 3> load_average() {
  std::array<double, 3> l{0, 0, 0};
  std::ifstream f("/proc/loadavg");
  f >> l[0] >> l[1] >> l[2];
  return l;
}

/// CPU time of the whole machine (busy and total, in clock ticks) and of this process.
struct CpuSample {
  double busy = 0, total = 0, self = 0;
  static CpuSample now() {
    CpuSample s;
    std::ifstream f("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    s.busy = user + nice + system + irq + softirq + steal;
    s.total = s.busy + idle + iowait;
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const double secs = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                        1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    s.self = secs * static_cast<double>(sysconf(_SC_CLK_TCK));
    return s;
  }
};

/// The share of all CPU time between a and b that other processes used.
double others_share(const CpuSample& a, const CpuSample& b) {
  const double total = b.total - a.total;
  if (total <= 0) return 0;
  return std::clamp((b.busy - a.busy - (b.self - a.self)) / total, 0.0, 1.0);
}

/// CPU time of this process (all threads), in milliseconds.
double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return 1e3 * static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-3 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string omp_wait_policy() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  return p ? p : "unset";
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}
double round3(double x) { return std::round(x * 1000.0) / 1000.0; }
json stats_json(const std::vector<double>& v) {
  const Stats s = stats(v);
  return {{"median", round3(s.median)}, {"min", round3(s.min)}, {"max", round3(s.max)}};
}

struct Gemms {
  long long calls = 0, flops = 0;
  static Gemms now() {
    return {cpu::counters().gemm_calls.load(), cpu::counters().gemm_flops.load()};
  }
  Gemms operator-(const Gemms& o) const { return {calls - o.calls, flops - o.flops}; }
  Gemms& operator+=(const Gemms& o) {
    calls += o.calls, flops += o.flops;
    return *this;
  }
  bool operator==(const Gemms&) const = default;
};
json gemms_json(const Gemms& g) { return {{"calls", g.calls}, {"gflop", round3(1e-9 * double(g.flops))}}; }

// --- the data --------------------------------------------------------------------------------

struct Batch {
  Tensor<std::int64_t, 2> ids, mask, types;  // (B, T)
  Tensor<std::int64_t, 1> labels;            // (B)
  std::vector<index_t> lengths;
};

template <class O>
Batch make_batch(const O& o) {
  Batch b{Tensor<std::int64_t, 2>::zeros({o.batch, o.seq}), Tensor<std::int64_t, 2>::zeros({o.batch, o.seq}),
          Tensor<std::int64_t, 2>::zeros({o.batch, o.seq}), Tensor<std::int64_t, 1>::zeros({o.batch}), {}};
  std::mt19937_64 rng(o.seed + 7);
  std::uniform_int_distribution<std::int64_t> token(std::min<index_t>(1000, o.vocab / 2), o.vocab - 1);
  std::uniform_int_distribution<std::int64_t> label(0, o.labels - 1);
  const index_t step = o.seq / o.batch;
  for (index_t r = 0; r < o.batch; ++r) {
    index_t len = std::max<index_t>(2, o.seq - r * step);  // 128, 112, ..., 16 for 8 x 128
    if constexpr (requires { o.lengths; })
      if (!o.lengths.empty()) len = o.lengths[static_cast<std::size_t>(r)];
    b.lengths.push_back(len);
    for (index_t t = 0; t < len; ++t) {
      b.ids(r, t) = t == 0 ? 101 : t == len - 1 ? 102 : token(rng);  // [CLS] ... [SEP]
      b.mask(r, t) = 1;
    }
    b.labels(r) = label(rng);
  }
  return b;
}

template <class O>
dp::BertDynamicConfig bert_config(const O& o) {
  dp::BertDynamicConfig c;
  c.layers = o.layers, c.hidden = o.hidden, c.heads = o.heads, c.intermediate = o.ffn, c.vocab = o.vocab;
  c.max_positions = std::max<index_t>(512, o.prefix + o.seq);
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = o.dropout;
  return c;
}

/// BertForSequenceClassification's head: dropout on the pooled output, then a Linear.
struct ClassifierHead {
  dp::Dropout dropout;
  dp::Linear<float> classifier;

  template <class O>
  ClassifierHead(const O& o, dp::Generator& gen)
      : dropout(o.dropout), classifier(o.labels, o.hidden, true, gen, 0.02) {}
  Var<float, 2> forward(const Var<float, 2>& pooled, dp::Generator* gen, bool training) const {
    return classifier(dropout.forward(pooled, gen, training));
  }
  template <class V>
  void visit(V&& v) {
    v("classifier", classifier);
  }
};

// --- ptv2 and full -----------------------------------------------------------------------------

/// One training setup (ptv2 or full) and its step. Not movable: the optimiser refers to the
/// parameters.
template <class O>
class Trainer {
 public:
  struct Step {
    double all = 0, fwd = 0, bwd = 0, opt = 0, cpu = 0, others = 0, loss = 0;
    Gemms fwd_g, bwd_g, opt_g;
  };

  Trainer(const O& o, bool prompted)
      : o_(o), prompted_(prompted), batch_(make_batch(o)), head_gen_(o.seed + 3), drop_gen_(o.seed + 4),
        head_(o, head_gen_) {
    dp::BertInit init;
    init.seed = o.seed;
    std::vector<dp::ParamRef<float>> params;
    if (prompted) {
      dp::DeepPromptOptions po;
      po.seed = o.seed + 5;
      if constexpr (requires { o.prefix_dropout; }) po.prefix_dropout = o.prefix_dropout;
      ptv2_.emplace(dp::DynamicBert<float>(bert_config(o), init), Prompt({o.layers, o.prefix, o.hidden}, po));
      if constexpr (requires { o.unfreeze; }) {
        if (!o.unfreeze.empty())
          std::fprintf(stderr,
                       "ptv2-step: --unfreeze '%s': %d backbone parameters made trainable (the GEMM check must fail)\n",
                       o.unfreeze.c_str(), dp::unfreeze(ptv2_->bert, o.unfreeze));
      }
      if constexpr (requires { o.dtype; })
        if (o.dtype == "bf16")
          std::fprintf(stderr, "ptv2-step: %d frozen Linear layers on bf16 weights\n", dp::use_bf16_weights(ptv2_->bert));
      if constexpr (requires { o.packed; })
        if (o.packed == 1)
          std::fprintf(stderr, "ptv2-step: %d frozen Linear layers on pre-packed weights\n",
                       dp::use_packed_weights(ptv2_->bert));
      params = dp::trainable_parameters<float>(*ptv2_);
      total_params = dp::parameter_count(*ptv2_);
    } else {
      full_.emplace(bert_config(o), init);
      params = dp::trainable_parameters<float>(*full_);
      total_params = dp::parameter_count(*full_);
    }
    for (auto& p : dp::trainable_parameters<float>(head_, "classifier_head.")) params.push_back(std::move(p));
    total_params += dp::parameter_count(head_);
    for (const auto& p : params) trainable += p.size;
    dp::AdamWOptions ao;
    ao.lr = prompted ? 1e-2 : 2e-5;
    ao.weight_decay = 0.01;
    opt_.emplace(dp::split_weight_decay(params), ao);
  }
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const char* name() const { return prompted_ ? "ptv2-step" : "full-step"; }

  /// One step: zero_grad, forward, loss, backward, AdamW. `pool_after_forward`: set to the
  /// tensor memory held right after the forward pass.
  Step step(double* pool_after_forward = nullptr) {
    Step r;
    const CpuSample c0 = CpuSample::now();
    const double cpu0 = process_cpu_ms();
    const auto t0 = Clock::now();
    const Gemms g0 = Gemms::now();
    opt_->zero_grad();
    dp::BertRun run{.training = true, .shift_positions = true, .generator = &drop_gen_};
    if constexpr (requires { o_.unpadded; }) run.unpadded = o_.unpadded;
    if constexpr (requires { o_.first_token_only; }) run.first_token_only = o_.first_token_only;
    dp::BertOutput<float> out = prompted_ ? ptv2_->forward(batch_.ids, batch_.mask, {}, run)
                                          : full_->forward(batch_.ids, batch_.mask, {}, run);
    Var<float, 0> loss = dp::cross_entropy(head_.forward(out.pooler_output, &drop_gen_, true), batch_.labels);
    r.fwd = ms_since(t0);
    const Gemms g1 = Gemms::now();
    if (pool_after_forward) *pool_after_forward = mib(pool_stats().bytes_in_use);
    loss.backward();
    const double t_bwd = ms_since(t0);
    const Gemms g2 = Gemms::now();
    opt_->step();
    r.all = ms_since(t0);
    const Gemms g3 = Gemms::now();
    r.cpu = process_cpu_ms() - cpu0;
    r.others = others_share(c0, CpuSample::now());
    r.bwd = t_bwd - r.fwd;
    r.opt = r.all - t_bwd;
    r.loss = static_cast<double>(loss.value().item());
    r.fwd_g = g1 - g0, r.bwd_g = g2 - g1, r.opt_g = g3 - g2;
    return r;
  }

  index_t total_params = 0, trainable = 0;

 private:
  using Prompt = dp::DynamicDeepPrompt<float>;
  const O& o_;
  bool prompted_;
  Batch batch_;
  dp::Generator head_gen_, drop_gen_;
  ClassifierHead head_;
  std::optional<dp::PromptedBert<dp::BertDynamicConfig, Prompt>> ptv2_;
  std::optional<dp::DynamicBert<float>> full_;
  std::optional<dp::AdamW<float>> opt_;
};

}  // namespace bench
