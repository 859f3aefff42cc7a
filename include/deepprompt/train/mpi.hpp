#pragma once
// train::GradientSync over MPI (Open MPI: Debian libopenmpi-dev; link MPI::MPI_CXX). Optional:
// only a program that includes this header needs MPI.
//
//   dp::train::MpiSession mpi(&argc, &argv);        // MPI_Init / MPI_Finalize
//   dp::train::MpiSync sync;                        // MPI_COMM_WORLD, 300 s timeout
//   options.sync = &sync;                           // train::Trainer then trains data-parallel
//
// Every collective is non-blocking (MPI_Iallreduce, MPI_Ibcast, ...) and polled until done: when
// a peer has died or hangs, no progress within `timeout_s` prints "rank R: no progress in OP for
// T s (a peer rank died or hangs)" and calls MPI_Abort, so that the job ends instead of hanging.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "sync.hpp"

namespace deepprompt::train {

/// MPI_Init_thread (funneled) on construction unless MPI is already initialised, MPI_Finalize
/// on destruction when it did the initialisation.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw Error("MpiSession: MPI_Init_thread failed");
      owner_ = true;
    }
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }

 private:
  bool owner_ = false;
};

class MpiSync final : public GradientSync {
 public:
  /// requires: MPI initialised (MpiSession). timeout_s > 0.
  explicit MpiSync(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 300.0) : comm_(comm), timeout_(timeout_s) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(float* buf, std::size_t n) override {
    MPI_Request r;
    bytes_ += n * sizeof(float);
    MPI_Iallreduce(MPI_IN_PLACE, buf, count(n), MPI_FLOAT, MPI_SUM, comm_, &r);
    wait(r, "allreduce (gradients)");
  }
  void allreduce_max(double* buf, std::size_t n) override {
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, buf, count(n), MPI_DOUBLE, MPI_MAX, comm_, &r);
    wait(r, "allreduce (checksum)");
  }
  void broadcast(double* buf, std::size_t n, int root) override {
    MPI_Request r;
    MPI_Ibcast(buf, count(n), MPI_DOUBLE, root, comm_, &r);
    wait(r, "broadcast");
  }
  void allgather(std::uint64_t v, std::uint64_t* out) override {
    MPI_Request r;
    MPI_Iallgather(&v, 1, MPI_UINT64_T, out, 1, MPI_UINT64_T, comm_, &r);
    wait(r, "allgather");
  }

  /// Seconds spent in collectives so far (for the communication share of a step).
  double seconds_in_collectives() const { return seconds_; }
  /// Bytes this rank handed to allreduce_sum so far.
  std::uint64_t bytes_reduced() const { return bytes_; }

 private:
  static int count(std::size_t n) {
    if (n > static_cast<std::size_t>(INT32_MAX)) throw Error("MpiSync: a buffer of more than 2^31 elements");
    return static_cast<int>(n);
  }
  void wait(MPI_Request& r, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    int done = 0;
    for (long spins = 0;; ++spins) {
      MPI_Test(&r, &done, MPI_STATUS_IGNORE);
      if (done) break;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (s > timeout_) {
        std::fprintf(stderr, "rank %d: no progress in %s for %.0f s (a peer rank died or hangs); aborting\n", rank_, what,
                     timeout_);
        std::fflush(stderr);
        MPI_Abort(comm_, 3);
      }
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  MPI_Comm comm_;
  double timeout_;
  int rank_ = 0, size_ = 1;
  double seconds_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace deepprompt::train
