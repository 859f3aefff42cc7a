// deepprompt-bench-allreduce: the communication of data-parallel training at BERT-base shapes
// (hidden 768, 12 layers, vocab 30522, 2 labels), run under mpirun -np N: one fused allreduce
// of each method's trainable gradients (the buffer train::Trainer sums once per optimiser step,
// train/mpi.hpp), timed over repetitions; prints one JSON line per method (rank 0).
//   mpirun -np 2 deepprompt-bench-allreduce [--reps 20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "deepprompt/train/mpi.hpp"

int main(int argc, char** argv) {
  deepprompt::train::MpiSession mpi(&argc, &argv);
  deepprompt::train::MpiSync sync;
  const int reps = argc > 2 && std::string(argv[1]) == "--reps" ? std::atoi(argv[2]) : 20;
  const long H = 768, L = 12, V = 30522, F = 3072, P = 512, labels = 2, prefix = 100;
  const long head = labels * H + labels;
  // every BERT-base weight (embeddings, 12 layers, pooler) + the head
  const long layer = 4 * (H * H + H) + (H * F + F) + (F * H + H) + 2 * 2 * H;
  const long full = V * H + P * H + 2 * H + 2 * H + L * layer + H * H + H + head;
  struct Method {
    const char* name;
    long floats;
  } methods[] = {{"ptv2 (prefix 100)", L * 2 * prefix * H + head},
                 {"lora (r 8, query+value)", L * 2 * 2 * 8 * H + head},
                 {"full", full}};
  for (const auto& m : methods) {
    std::vector<float> buf(static_cast<std::size_t>(m.floats), 1.0f);
    sync.allreduce_sum(buf.data(), buf.size());  // warm-up
    std::vector<double> times;
    for (int r = 0; r < reps; ++r) {
      const double before = sync.seconds_in_collectives();
      sync.allreduce_sum(buf.data(), buf.size());
      times.push_back(sync.seconds_in_collectives() - before);
    }
    std::sort(times.begin(), times.end());
    if (sync.rank() == 0)
      std::printf("{\"method\":\"%s\",\"ranks\":%d,\"floats\":%ld,\"bytes\":%ld,\"median_ms\":%.3f,\"min_ms\":%.3f,"
                  "\"GB_per_s\":%.2f}\n",
                  m.name, sync.size(), m.floats, m.floats * 4, 1e3 * times[times.size() / 2], 1e3 * times.front(),
                  double(m.floats) * 4 / times[times.size() / 2] / 1e9);
  }
  return 0;
}
