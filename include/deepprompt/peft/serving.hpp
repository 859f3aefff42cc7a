#pragma once
// Serving several trained prompts with one frozen backbone: a batch whose row b names its task.
//
//   std::vector<dp::PromptConstants<float>> tasks{sst2.freeze_constants(), rte.freeze_constants()};
//   auto mt  = dp::multi_task_prefix<float>(tasks, {0, 1, 1, 0});        // row b -> task
//   auto out = dp::forward_multi_task(bert, mt, ids, mask);              // peft/deep_prompt_bert.hpp
//
// Per layer, every row gets its task's keys and values, padded with zeros to the longest prompt
// of that layer in the batch, as one per-example prefix (B, H, Pmax_l, D); the padded positions
// are masked out (the attention op takes a mask covering Pmax_l + T columns), so each row's
// output equals running it alone with its own prompt. A layer on which no row's task has a
// prompt gets none; a row whose task has no prompt on a layer gets only masked positions there.
//
// Positions: a task that shifts positions (Hugging Face BERT with past_key_values) numbers its
// row's real tokens from its own layer-0 prompt length, so the offset differs per row; the
// offsets are given here (position_offset) and the BERT multi-task forward applies them per row.
//
// The task prefixes may also be Vars that need gradients (e.g. prompt.prefixes()): the batch
// prefix is built with concat, so gradients reach each task's prompt (multi-task training).
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "../ops/concat.hpp"
#include "../ops/shape.hpp"
#include "deep_prompt.hpp"

namespace deepprompt {

template <class T>
struct MultiTaskPrefix {
  /// Per layer: one prefix per example (B, H, Pmax_l, D), or empty (no task has a prompt there).
  std::vector<KVPrefix<T>> layers;
  /// Per layer: (B, Pmax_l), 1 where row b has a real prompt position, 0 at padding; empty when
  /// the layer has no prefix.
  std::vector<Tensor<std::int64_t, 2>> prefix_mask;
  /// Per row: where its real tokens' positions start (its task's layer-0 prompt length when the
  /// task shifts positions, else 0).
  std::vector<index_t> position_offset;
  /// Per row: its task (-1: none).
  std::vector<index_t> task_of_row;

  index_t batch() const { return static_cast<index_t>(task_of_row.size()); }
  index_t num_layers() const { return static_cast<index_t>(layers.size()); }
};

/// The batch prefix of rows whose tasks are `task_of_row` (an index into `tasks`, or -1 for no
/// prompt). Every task must have the same number of layers, and prefixes shared by the batch
/// (H, P, D) with the same H and D on a layer. Throws ShapeError (sizes) or Error (task index).
template <class T>
MultiTaskPrefix<T> multi_task_prefix(std::span<const PromptConstants<T>> tasks, std::span<const index_t> task_of_row) {
  constexpr const char* op = "multi_task_prefix";
  if (tasks.empty()) throw Error(detail::cat(op, ": no tasks"));
  if (task_of_row.empty()) throw ShapeError(detail::cat(op, ": an empty batch"));
  const index_t L = tasks[0].num_layers();
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    if (tasks[t].num_layers() != L)
      throw ShapeError(detail::cat(op, ": task ", t, " has ", tasks[t].num_layers(), " layers, task 0 has ", L));
    for (const auto& p : tasks[t].layers)
      if (!p.empty() && p.k.value().empty())
        throw ShapeError(detail::cat(op, ": task ", t, " has a per-example prefix ", shape_str(p.k_batch.shape()),
                                     "; give each task's prefixes shared by the batch (H, P, D)"));
  }
  const index_t B = static_cast<index_t>(task_of_row.size());
  for (index_t b = 0; b < B; ++b) {
    const index_t t = task_of_row[static_cast<std::size_t>(b)];
    if (t < -1 || t >= static_cast<index_t>(tasks.size()))
      throw Error(detail::cat(op, ": row ", b, " names task ", t, ", but there are ", tasks.size(),
                              " tasks (-1: no prompt)"));
  }
  auto task = [&](index_t b) -> const PromptConstants<T>* {
    const index_t t = task_of_row[static_cast<std::size_t>(b)];
    return t < 0 ? nullptr : &tasks[static_cast<std::size_t>(t)];
  };

  MultiTaskPrefix<T> mt;
  mt.task_of_row.assign(task_of_row.begin(), task_of_row.end());
  mt.position_offset.resize(static_cast<std::size_t>(B));
  for (index_t b = 0; b < B; ++b) {
    const auto* t = task(b);
    mt.position_offset[static_cast<std::size_t>(b)] = t && t->shift_positions() && L > 0 ? t->length(0) : 0;
  }
  mt.layers.resize(static_cast<std::size_t>(L));
  mt.prefix_mask.resize(static_cast<std::size_t>(L));
  for (index_t l = 0; l < L; ++l) {
    index_t P = 0, H = 0, D = 0;
    for (const auto& t : tasks) {
      const auto& p = t.layers[static_cast<std::size_t>(l)];
      if (p.empty()) continue;
      if (H == 0) H = p.k.extent(0), D = p.k.extent(2);
      if (p.k.extent(0) != H || p.k.extent(2) != D)
        check_shapes(false, op, detail::cat("tasks' prefixes on layer ", l, " differ in heads or head size"),
                     p.k.shape(), Shape<3>{H, p.k.extent(1), D});
      check_shapes(p.v.shape() == p.k.shape(), op, "prefix keys and values differ in shape", p.k.shape(), p.v.shape());
    }
    for (index_t b = 0; b < B; ++b)
      if (const auto* t = task(b)) P = std::max(P, t->length(l));
    if (P == 0) continue;  // no row has a prompt on this layer

    Tensor<std::int64_t, 2> m = Tensor<std::int64_t, 2>::zeros({B, P});
    std::vector<Var<T, 4>> ks, vs;
    ks.reserve(static_cast<std::size_t>(B)), vs.reserve(static_cast<std::size_t>(B));
    const Var<T, 4> none(Tensor<T, 4>::zeros({1, H, P, D}));
    for (index_t b = 0; b < B; ++b) {
      const auto* t = task(b);
      const index_t p = t ? t->length(l) : 0;
      if (p == 0) {
        ks.push_back(none), vs.push_back(none);
        continue;
      }
      for (index_t j = 0; j < p; ++j) m(b, j) = 1;
      const auto& pre = t->layers[static_cast<std::size_t>(l)];
      auto row = [&](const Var<T, 3>& x) {  // (H, p, D) -> (1, H, P, D), zero-padded
        Var<T, 4> r = reshape<4>(x, Shape<4>{1, H, p, D});
        if (p < P) r = concat<T, 4>({r, Var<T, 4>(Tensor<T, 4>::zeros({1, H, P - p, D}))}, 2);
        return r;
      };
      ks.push_back(row(pre.k)), vs.push_back(row(pre.v));
    }
    auto& out = mt.layers[static_cast<std::size_t>(l)];
    out = KVPrefix<T>::per_example(B == 1 ? ks[0] : concat(std::span<const Var<T, 4>>(ks), 0),
                                   B == 1 ? vs[0] : concat(std::span<const Var<T, 4>>(vs), 0));
    mt.prefix_mask[static_cast<std::size_t>(l)] = m;
  }
  return mt;
}

template <class T>
MultiTaskPrefix<T> multi_task_prefix(std::span<const PromptConstants<T>> tasks,
                                     std::initializer_list<index_t> task_of_row) {
  return multi_task_prefix<T>(tasks, std::span<const index_t>(task_of_row.begin(), task_of_row.size()));
}

}  // namespace deepprompt
