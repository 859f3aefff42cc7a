#pragma once
// Trainer: the training loop with the habits of Hugging Face's Trainer, for any task that
// satisfies TrainTask (tasks/ builds them from a backbone, a method and a data set).
//
//   dp::train::Trainer trainer(task, {.epochs = 3, .batch_size = 16, .lr = 1e-2, .out_dir = "out"});
//   dp::train::Metrics best = trainer.train();
//
// What a run does (each point is an option below):
//   - epochs or max_steps optimiser steps; batches from train/batching.hpp (seeded shuffling,
//     optional length bucketing); the task pads each batch to its longest sequence;
//   - gradient accumulation (each micro-batch's loss divided by the accumulation count, as HF),
//     gradient clipping, AdamW with HF's no-decay groups, linear warm-up then linear decay;
//   - evaluation every N steps (or each epoch), appended to out_dir/eval_log.jsonl; the best
//     model by `metric` saved to out_dir/best (the task's adapter: prompt and head, PEFT layout),
//     early stopping after `patience` evaluations without improvement;
//   - a checkpoint out_dir/checkpoint (trainable parameters, AdamW moments, schedule, dropout
//     generator, counters) written atomically (train/checkpoint.hpp); `resume` continues from it
//     and gives the same parameters, bit for bit, as a run that was never interrupted;
//   - a loss that is NaN or infinite stops the run with an Error naming the step, before any
//     update is applied.
// Progress goes to stderr (a bar on a terminal, plain lines otherwise; train/progress.hpp).
// Data-parallel (options.sync, e.g. train/mpi.hpp's MpiSync): every rank runs this loop over
// the same global batches and takes its shard of each (sync.hpp's shard()); the weighted
// gradients and losses are summed in one fused collective per step, so every rank applies the
// same update; the ranks' parameters are compared every `sync_check_every` steps. Rank 0
// evaluates, logs, saves the best adapter and the checkpoint (with every rank's dropout-stream
// position); rank r's dropout stream is the task's seed + r * 0x9E3779B97F4A7C15.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autodiff/var.hpp"
#include "../io/safetensors.hpp"
#include "batching.hpp"
#include "checkpoint.hpp"
#include "clip_grad.hpp"
#include "optimizer.hpp"
#include "progress.hpp"
#include "schedule.hpp"
#include "sync.hpp"

namespace deepprompt::train {

/// Metric name -> value, as a task's evaluate() reports them.
using Metrics = std::map<std::string, double>;

/// What the trainer needs of a task: its training examples (by index), a loss on a batch of
/// them, an evaluation, its trainable parameters, its dropout generator, train/eval mode, and a
/// way to save what it learnt.
template <class M>
concept TrainTask = requires(M& m, std::span<const index_t> batch, const std::filesystem::path& dir, bool on) {
  { m.train_size() } -> std::convertible_to<index_t>;
  { m.train_lengths() } -> std::convertible_to<std::vector<index_t>>;  // tokens per example, for bucketing
  { m.loss(batch) } -> std::same_as<Var<float, 0>>;                     // mean over the batch, on the tape
  { m.evaluate() } -> std::convertible_to<Metrics>;                      // in eval mode, no tape
  { m.trainable_parameters() } -> std::convertible_to<std::vector<ParamRef<float>>>;
  { m.generator() } -> std::same_as<Generator&>;                        // dropout's random stream
  m.set_training(on);
  m.save(dir);  // the adapter (prompt and head) into an existing, empty folder
};

struct TrainerOptions {
  std::int64_t epochs = 3;               // used when max_steps == 0
  std::int64_t max_steps = 0;            // > 0: this many optimiser steps (the schedule's horizon)
  index_t batch_size = 16;
  index_t grad_accumulation = 1;         // micro-batches per optimiser step
  double lr = 1e-2;
  double weight_decay = 0.01;            // AdamW, not on biases and LayerNorm weights
  double warmup_ratio = 0.0;             // of the total steps, used when warmup_steps == 0
  std::int64_t warmup_steps = 0;
  double max_grad_norm = 1.0;            // 0: no clipping
  std::int64_t eval_every = 0;           // optimiser steps; 0: at the end of each epoch
  std::int64_t patience = 0;             // early stopping after this many evaluations; 0: off
  std::string metric = "accuracy";       // selects the best model
  bool greater_is_better = true;
  std::uint64_t seed = 42;               // shuffling (the task seeds its own initialisation)
  bool bucket_by_length = false;
  std::filesystem::path out_dir;         // required
  bool resume = false;                   // continue from out_dir/checkpoint when it exists
  std::int64_t stop_after = 0;           // > 0: stop (checkpoint saved) after this global step, as an interruption would
  ProgressMode progress = ProgressMode::automatic;
  std::int64_t log_every = 10;
  GradientSync* sync = nullptr;          // data-parallel over these ranks (see the top); not owned
  std::int64_t sync_check_every = 50;    // compare the ranks' parameters every N steps (0: never)
};

template <TrainTask Task>
class Trainer {
 public:
  /// requires: opt.out_dir set, batch_size and grad_accumulation >= 1, the task has examples.
  Trainer(Task& task, TrainerOptions opt) : task_(task), opt_(std::move(opt)) {
    if (opt_.out_dir.empty()) throw Error("Trainer: out_dir is required");
    if (opt_.batch_size < 1 || opt_.grad_accumulation < 1)
      throw Error(detail::cat("Trainer: batch_size and grad_accumulation must be >= 1, got ", opt_.batch_size, " and ",
                              opt_.grad_accumulation));
    if (task_.train_size() < 1) throw Error("Trainer: the task has no training examples");
    if (opt_.max_steps <= 0 && opt_.epochs < 1) throw Error("Trainer: set epochs >= 1 or max_steps >= 1");
  }

  /// Optimiser steps per epoch (the last one of an epoch may take fewer micro-batches).
  std::int64_t steps_per_epoch() const {
    const std::int64_t batches = (task_.train_size() + opt_.batch_size - 1) / opt_.batch_size;
    return (batches + opt_.grad_accumulation - 1) / opt_.grad_accumulation;
  }
  std::int64_t total_steps() const { return opt_.max_steps > 0 ? opt_.max_steps : opt_.epochs * steps_per_epoch(); }

  /// Runs the training; returns the best evaluation (or the last one without `metric`).
  Metrics train();

  const TrainerState& state() const { return state_; }

 private:
  bool better(double value) const {
    if (state_.best_step < 0) return true;
    return opt_.greater_is_better ? value > state_.best_metric : value < state_.best_metric;
  }
  std::string fingerprint(const std::vector<ParamRef<float>>& params) const {
    std::string f;
    for (const auto& p : params) f += detail::cat(p.name, ":", p.size, ";");
    return f;
  }
  Metrics evaluate_and_log(double epoch, double train_loss, Progress& progress);
  void save_checkpoint(const std::vector<ParamRef<float>>& params, const AdamW<float>& adam);
  void load_checkpoint(const std::vector<ParamRef<float>>& params, AdamW<float>& adam);

  Task& task_;
  TrainerOptions opt_;
  TrainerState state_;
  Metrics best_, last_;
};

template <TrainTask Task>
Metrics Trainer<Task>::train() {
  namespace fs = std::filesystem;
  fs::create_directories(opt_.out_dir);
  std::vector<ParamRef<float>> params = task_.trainable_parameters();
  if (params.empty()) throw Error("Trainer: the task has no trainable parameters");
  AdamW<float> adam(split_weight_decay(params), {.lr = opt_.lr, .weight_decay = opt_.weight_decay});
  const std::int64_t total = total_steps();
  const std::int64_t warmup =
      opt_.warmup_steps > 0 ? opt_.warmup_steps : static_cast<std::int64_t>(opt_.warmup_ratio * double(total));
  LRScheduler schedule(adam, schedule::linear_with_warmup(warmup, total));

  state_ = {};
  state_.data_seed = opt_.seed;
  state_.total_steps = total;
  state_.fingerprint = fingerprint(params);
  GradientSync* const sync = opt_.sync && opt_.sync->size() > 1 ? opt_.sync : nullptr;
  const int rank = sync ? sync->rank() : 0, ranks = sync ? sync->size() : 1;
  if (rank > 0)  // each rank its own dropout masks
    task_.generator().set_state(task_.generator().seed() + 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(rank),
                                task_.generator().offset());
  state_.rng_seed = task_.generator().seed();
  if (opt_.resume && recover_folder(opt_.out_dir / "checkpoint")) {
    load_checkpoint(params, adam);
    schedule.restore(state_.global_step);
  }

  const std::vector<index_t> lengths = task_.train_lengths();
  Progress progress(rank == 0 ? opt_.progress : ProgressMode::off, total, opt_.log_every);
  std::vector<float> fused;  // the data-parallel gradient buffer
  if (state_.global_step > 0)
    progress.message(detail::cat("resumed from ", (opt_.out_dir / "checkpoint").string(), " at step ", state_.global_step));
  double loss_sum = state_.loss_sum;  // since the last evaluation (a resumed run logs what an uninterrupted one would)
  std::int64_t loss_steps = state_.loss_steps;
  bool stop = state_.global_step >= total;
  while (!stop) {
    const auto batches = epoch_batches(task_.train_size(), opt_.batch_size, state_.data_seed,
                                       static_cast<std::uint64_t>(state_.epoch), lengths, opt_.bucket_by_length);
    const auto nb = static_cast<std::int64_t>(batches.size());
    task_.set_training(true);
    while (state_.batches_in_epoch < nb && !stop) {
      adam.zero_grad();
      double step_loss = 0;
      std::int64_t samples = 0;
      const std::int64_t micro = std::min<std::int64_t>(opt_.grad_accumulation, nb - state_.batches_in_epoch);
      double nans = 0, infs = 0;  // micro-batches whose loss is NaN / infinite (summed over the ranks)
      std::int64_t bad_batch = 0;
      for (std::int64_t k = 0; k < micro; ++k) {
        const auto& gb = batches[static_cast<std::size_t>(state_.batches_in_epoch + k)];
        const std::span<const index_t> b = shard(std::span<const index_t>(gb), rank, ranks);
        samples += static_cast<std::int64_t>(gb.size());
        if (b.empty()) continue;
        const double share = double(b.size()) / double(gb.size());  // of the global batch
        Var<float, 0> loss = task_.loss(b);
        const double value = loss.value().data()[0];
        if (!std::isfinite(value)) {
          (std::isnan(value) ? nans : infs) += 1;
          if (bad_batch == 0) bad_batch = k + 1;
          if (!sync) break;  // alone: stop before the backward pass
        }
        loss.backward(Tensor<float, 0>::full({}, static_cast<float>(share / double(micro))));
        step_loss += value * share / static_cast<double>(micro);
      }
      if (sync) {  // sum the weighted gradients, losses and failure counts of all ranks
        float extra[3] = {static_cast<float>(step_loss), static_cast<float>(nans), static_cast<float>(infs)};
        sync_gradients(*sync, adam.params(), extra, fused);
        step_loss = extra[0], nans = extra[1], infs = extra[2];
      }
      if (nans + infs > 0)
        throw Error(detail::cat("training stopped: the loss is ", nans > 0 ? "nan" : "inf", " at step ",
                                state_.global_step + 1, " (epoch ", state_.epoch + 1,
                                bad_batch > 0 ? detail::cat(", batch ", state_.batches_in_epoch + bad_batch) : "",
                                sync ? detail::cat(", on ", nans + infs, " rank-batches") : "", ", learning rate ",
                                adam.lr(), "); nothing of this step was applied. Lower the learning rate or check the data."));
      if (opt_.max_grad_norm > 0) clip_grad_norm(adam.params(), opt_.max_grad_norm);
      adam.step();
      schedule.step();
      state_.batches_in_epoch += micro;
      ++state_.global_step;
      if (sync && opt_.sync_check_every > 0 && state_.global_step % opt_.sync_check_every == 0)
        check_in_sync(*sync, adam.params(), state_.global_step);
      loss_sum += step_loss, ++loss_steps;
      const double epoch_pos = double(state_.epoch) + double(state_.batches_in_epoch) / double(nb);
      progress.update(state_.global_step, epoch_pos, step_loss, adam.lr(), samples);

      const bool epoch_done = state_.batches_in_epoch >= nb;
      const bool last = state_.global_step >= total;
      const bool eval_now = opt_.eval_every > 0 ? state_.global_step % opt_.eval_every == 0 || last : epoch_done || last;
      if (epoch_done) state_.epoch += 1, state_.batches_in_epoch = 0;
      if (eval_now) {
        if (rank == 0) evaluate_and_log(epoch_pos, loss_steps ? loss_sum / double(loss_steps) : 0.0, progress);
        if (sync) {  // rank 0's bookkeeping, so that every rank stops together
          double b[3] = {state_.best_metric, double(state_.best_step), double(state_.evals_without_improvement)};
          sync->broadcast(b, 3, 0);
          state_.best_metric = b[0], state_.best_step = static_cast<std::int64_t>(b[1]);
          state_.evals_without_improvement = static_cast<std::int64_t>(b[2]);
        }
        loss_sum = 0, loss_steps = 0;
        task_.set_training(true);
        if (opt_.patience > 0 && state_.evals_without_improvement >= opt_.patience) {
          progress.message(detail::cat("early stopping: no improvement of ", opt_.metric, " in ", opt_.patience,
                                       " evaluations"));
          stop = true;
        }
      }
      if (last) stop = true;
      const bool interrupted = opt_.stop_after > 0 && state_.global_step >= opt_.stop_after;
      if (eval_now || interrupted || stop) {
        state_.rng_offset = task_.generator().offset();
        state_.loss_sum = loss_sum, state_.loss_steps = loss_steps;
        state_.rng_offsets.assign(static_cast<std::size_t>(ranks), state_.rng_offset);
        if (sync) sync->allgather(state_.rng_offset, state_.rng_offsets.data());
        if (rank == 0) save_checkpoint(params, adam);
      }
      if (interrupted) return best_.empty() ? last_ : best_;
      if (epoch_done) break;  // the next epoch draws its own order
    }
  }
  return best_.empty() ? last_ : best_;
}

template <TrainTask Task>
Metrics Trainer<Task>::evaluate_and_log(double epoch, double train_loss, Progress& progress) {
  task_.set_training(false);
  Metrics m = task_.evaluate();
  last_ = m;
  nlohmann::json record = {{"step", state_.global_step}, {"epoch", epoch}, {"train_loss", train_loss}};
  std::string line = detail::cat("eval at step ", state_.global_step, ":");
  for (const auto& [k, v] : m) {
    record[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    line += detail::cat(" ", k, " ", v);
  }
  const auto it = m.find(opt_.metric);
  if (it == m.end() && !m.empty()) {
    std::string names;
    for (const auto& [k, v] : m) names += " " + k;
    throw Error(detail::cat("Trainer: the evaluation has no metric \"", opt_.metric, "\" (it has:", names, ")"));
  }
  if (it != m.end() && std::isfinite(it->second) && better(it->second)) {
    state_.best_metric = it->second, state_.best_step = state_.global_step, state_.evals_without_improvement = 0;
    best_ = m;
    AtomicDir best(opt_.out_dir / "best");
    task_.save(best.path());
    best.commit();
    record["best"] = true;
    line += " (best so far, saved)";
  } else {
    ++state_.evals_without_improvement;
  }
  EvalLog(opt_.out_dir / "eval_log.jsonl").append(record);
  progress.message(line);
  return m;
}

template <TrainTask Task>
void Trainer<Task>::save_checkpoint(const std::vector<ParamRef<float>>& params, const AdamW<float>& adam) {
  AtomicDir dir(opt_.out_dir / "checkpoint");
  std::vector<TensorEntry> entries;
  for (const auto& p : params)
    entries.push_back({p.name, Dtype::F32, {p.size}, p.value, static_cast<std::size_t>(p.size) * sizeof(float), nullptr});
  save_safetensors(dir.path() / "trainable.safetensors", entries);
  save_safetensors(dir.path() / "optimizer.safetensors",
                   {entry("exp_avg", adam.exp_avg()), entry("exp_avg_sq", adam.exp_avg_sq())},
                   {{"steps", std::to_string(adam.steps())}});
  const std::string js = state_.to_json().dump(2);
  write_file_atomic(dir.path() / "trainer_state.json", std::as_bytes(std::span(js.data(), js.size())));
  dir.commit();
}

template <TrainTask Task>
void Trainer<Task>::load_checkpoint(const std::vector<ParamRef<float>>& params, AdamW<float>& adam) {
  const auto dir = opt_.out_dir / "checkpoint";
  const auto state_file = dir / "trainer_state.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(state_file));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(detail::cat("'", state_file.string(), "': ", e.what()));
  }
  const TrainerState saved = TrainerState::from_json(j, state_file);
  if (saved.fingerprint != state_.fingerprint)
    throw Error(detail::cat("cannot resume from '", dir.string(),
                            "': its trainable parameters differ from this run's (another method, model or task?)"));
  if (saved.total_steps != state_.total_steps || saved.data_seed != state_.data_seed)
    throw Error(detail::cat("cannot resume from '", dir.string(), "': it was made with ", saved.total_steps,
                            " total steps and seed ", saved.data_seed, ", this run has ", state_.total_steps, " and ",
                            state_.data_seed, " (change them back, or start a new out_dir)"));
  auto weights = SafeTensorsFile::open(dir / "trainable.safetensors");
  for (const auto& p : params) {
    const auto t = weights.template load<float, 1>(p.name);
    if (t.size() != p.size) throw FormatError(detail::cat("'", (dir / "trainable.safetensors").string(), "': \"", p.name, "\" size"));
    std::copy_n(t.data(), p.size, p.value);
  }
  auto moments = SafeTensorsFile::open(dir / "optimizer.safetensors");
  adam.restore_state(saved.global_step, moments.template load<float, 1>("exp_avg"),
                     moments.template load<float, 1>("exp_avg_sq"));
  const int ranks = opt_.sync ? opt_.sync->size() : 1, rank = opt_.sync ? opt_.sync->rank() : 0;
  if (ranks > 1 || saved.rng_offsets.size() > 1) {
    if (saved.rng_offsets.size() != static_cast<std::size_t>(ranks))
      throw Error(detail::cat("cannot resume from '", dir.string(), "': it was made by ", saved.rng_offsets.size(),
                              " ranks, this run has ", ranks));
    task_.generator().set_state(task_.generator().seed(), saved.rng_offsets[static_cast<std::size_t>(rank)]);
  } else {
    task_.generator().set_state(saved.rng_seed, saved.rng_offset);
  }
  state_ = saved;
}

}  // namespace deepprompt::train
