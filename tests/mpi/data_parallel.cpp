// Data-parallel training over MPI (train/mpi.hpp), run by tests/mpi/run.sh under mpirun -np 2.
//
//   deepprompt_mpi_test same OUT_DIR   global batch 16 split over the ranks (8 each), gradient
//                                      accumulation 2, no dropout: rank 0 also trains alone with
//                                      batch 16 and the weights must agree within float
//                                      reduction-order tolerance; the ranks stay in sync; a
//                                      rank whose parameters differ is detected.
//   deepprompt_mpi_test hang           rank 1 stops taking part; rank 0 must abort with a message
//                                      after its 1 s timeout instead of waiting forever.
// Exit status 0 when every check holds.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>

#include "deepprompt/train/mpi.hpp"
#include "../unit/toy_task.hpp"

namespace dp = deepprompt;

namespace {

int same(const std::string& out, dp::train::MpiSync& sync) {
  auto options = [&](const std::string& dir) {
    return dp::train::TrainerOptions{.epochs = 3, .batch_size = 16, .grad_accumulation = 2, .lr = 0.05,
                                     .warmup_ratio = 0.1, .out_dir = dir, .progress = dp::train::ProgressMode::off,
                                     .sync_check_every = 2};
  };
  dp_test::ToyTask task;
  task.drop = 0;
  auto o = options(out + "/parallel");
  o.sync = &sync;
  dp::train::Trainer(task, o).train();
  int failures = 0;
  if (sync.rank() == 0) {
    dp_test::ToyTask alone;
    alone.drop = 0;
    dp::train::Trainer(alone, options(out + "/alone")).train();
    double diff = 0, scale = 0;
    for (dp::index_t i = 0; i < task.w.size(); ++i) {
      diff = std::max(diff, double(std::abs(task.w.value().data()[i] - alone.w.value().data()[i])));
      scale = std::max(scale, double(std::abs(alone.w.value().data()[i])));
    }
    std::printf("rank 0: max |w_parallel - w_alone| = %.3g (max |w| %.3g), %.0f bytes reduced, %.4f s in collectives\n",
                diff, scale, double(sync.bytes_reduced()), sync.seconds_in_collectives());
    if (!(diff <= 1e-5 * std::max(1.0, scale))) std::printf("FAIL: the data-parallel weights differ\n"), ++failures;
    if (!std::filesystem::exists(out + "/parallel/best/adapter_model.safetensors"))
      std::printf("FAIL: rank 0 saved no best adapter\n"), ++failures;
  }
  // a rank that computed something else is caught
  if (sync.rank() == 1) task.w.value().data()[0] += 1.0f;
  try {
    dp::train::check_in_sync(sync, task.trainable_parameters(), 99);
    std::printf("FAIL: rank %d: diverged parameters not detected\n", sync.rank()), ++failures;
  } catch (const dp::Error& e) {
    if (std::string(e.what()).find("diverged at step 99") == std::string::npos)
      std::printf("FAIL: rank %d: message '%s'\n", sync.rank(), e.what()), ++failures;
  }
  double f = failures;
  sync.allreduce_max(&f, 1);
  return f > 0 ? 1 : 0;
}

int hang(dp::train::MpiSync& sync) {
  if (sync.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(20));  // a rank that hangs
    return 0;
  }
  float x = 1;
  sync.allreduce_sum(&x, 1);  // never completes: the timeout aborts the job
  std::printf("FAIL: the allreduce returned\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  dp::train::MpiSession mpi(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "same" && argc > 2) {
      dp::train::MpiSync sync;
      return same(argv[2], sync);
    }
    if (mode == "hang") {
      dp::train::MpiSync sync(MPI_COMM_WORLD, 1.0);
      return hang(sync);
    }
    std::fprintf(stderr, "usage: deepprompt_mpi_test same OUT_DIR | hang\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deepprompt_mpi_test: %s\n", e.what());
    return 1;
  }
}
