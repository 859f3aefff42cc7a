// SGEMM throughput at the shapes of a BERT-base layer on a batch of 1024 tokens.
//
//   deepprompt-bench-gemm [--threads=N] [Google Benchmark flags]
//
// Each benchmark is named sgemm/<layout>/<M>x<N>x<K>: "NN" is activations (M,K) times a
// weight stored (K,N); "NT" is activations times a weight stored (N,K), i.e. x W^T as in
// nn.Linear. The "flops" counter is the rate in FLOP/s (2 M N K per call, wall-clock time).
#include <deepprompt/backend/cpu/gemm.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

namespace cpu = deepprompt::cpu;

struct Shape {
  cpu::index_t M, N, K;
};

// The projections (768x768), the feed-forward up (768x3072) and down (3072x768) matmuls.
constexpr Shape kShapes[] = {{1024, 768, 768}, {1024, 3072, 768}, {1024, 768, 3072}};

std::vector<float> random_matrix(cpu::index_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> m(static_cast<std::size_t>(size));
  for (float& x : m) x = dist(rng);
  return m;
}

void bench_sgemm(benchmark::State& state, Shape s, cpu::Trans tb) {
  const auto A = random_matrix(s.M * s.K, 1);
  const auto B = random_matrix(s.K * s.N, 2);
  std::vector<float> C(static_cast<std::size_t>(s.M * s.N));
  const cpu::index_t ldb = tb == cpu::Trans::No ? s.N : s.K;
  for (auto _ : state) {
    cpu::gemm<float>(cpu::Trans::No, tb, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), ldb, 0.f,
                     C.data(), s.N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["flops"] = benchmark::Counter(2.0 * double(s.M) * double(s.N) * double(s.K),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// Removes a leading "--threads=N" style flag from argv (Google Benchmark rejects unknown
// flags) and returns N, or `fallback` if absent.
int take_threads_flag(int& argc, char** argv, int fallback) {
  constexpr const char* kFlag = "--threads=";
  int threads = fallback;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], kFlag, std::strlen(kFlag)) == 0)
      threads = std::atoi(argv[i] + std::strlen(kFlag));
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  return threads;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = take_threads_flag(argc, argv, 2);
  cpu::set_num_threads(threads);
  benchmark::AddCustomContext("deepprompt_threads", std::to_string(cpu::num_threads()));

  for (cpu::Trans tb : {cpu::Trans::No, cpu::Trans::Yes})
    for (Shape s : kShapes) {
      const std::string name = std::string("sgemm/") + (tb == cpu::Trans::No ? "NN/" : "NT/") +
                               std::to_string(s.M) + "x" + std::to_string(s.N) + "x" +
                               std::to_string(s.K);
      benchmark::RegisterBenchmark(name.c_str(), bench_sgemm, s, tb)->UseRealTime();
    }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
