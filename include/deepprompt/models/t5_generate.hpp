#pragma once
// Greedy and beam search for T5, as Hugging Face's generate() (transformers 4.27-4.35:
// GenerationMixin.greedy_search / beam_search with BeamSearchScorer and BeamHypotheses), with a
// key/value cache for decoder self-attention and the cross-attention keys and values computed
// once. Runs under NoGradGuard, in the model's mode: call eval() first (dropout stays on in
// train() mode, as with Hugging Face).
//
//   dp::T5GenerateOptions opt{.max_new_tokens = 20, .num_beams = 4, .length_penalty = 0.6};
//   dp::Tensor<std::int64_t, 2> out = dp::generate(model, input_ids, attention_mask, opt);
//
// The result is (B, L) with L <= max_new_tokens + 1: the decoder start token, then the tokens,
// as Hugging Face returns them:
//   greedy: rows that emitted EOS continue with pad_token_id; the loop stops when every row has
//     emitted EOS or L reaches max_new_tokens + 1.
//   beam search: log-softmax scores summed along each beam (float T, as torch); each step keeps
//     the 2K best (beam, token) candidates per example; a candidate ending in EOS among the first
//     K becomes a finished hypothesis with score sum_logprobs / len^length_penalty, where len
//     counts the tokens before the EOS including the start token (= generated tokens, EOS
//     included); the K best non-EOS candidates continue. An example is done when K hypotheses
//     are finished and: early_stopping = yes: at once; heuristic (HF's False): when the worst
//     finished score >= best current candidate sum / cur_len^length_penalty (cur_len: tokens so
//     far, start included); never: the same bound with max_length^length_penalty when
//     length_penalty > 0. At the end the unfinished beams of examples not done are scored with
//     their own length (start token included); each row is the best hypothesis, followed by EOS
//     if shorter than max_length, and padded with pad_token_id when lengths differ.
//   (transformers >= 4.36 counts the length of unfinished beams without the start token; for
//   finished ones and the stopping test both counts agree.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "../ops/softmax.hpp"
#include "t5.hpp"

namespace deepprompt {

/// Hugging Face's early_stopping: False (heuristic), True (yes) or "never".
enum class T5EarlyStopping : std::uint8_t { heuristic, yes, never };

struct T5GenerateOptions {
  index_t max_new_tokens = 20;
  index_t num_beams = 1;  // 1: greedy
  double length_penalty = 1.0;
  T5EarlyStopping early_stopping = T5EarlyStopping::heuristic;
  // defaults: the model's config
  std::optional<std::int64_t> eos_token_id{}, pad_token_id{}, decoder_start_token_id{};
};

namespace detail {

// Repeats each row K times (torch.repeat_interleave(K, dim=0)).
template <class X, std::size_t R>
Tensor<X, R> t5_repeat_rows(const Tensor<X, R>& x, index_t K) {
  if (x.empty() || K == 1) return x;
  Shape<R> s = x.shape();
  s[0] *= K;
  Tensor<X, R> y(s);
  const index_t row = x.extent(0) > 0 ? x.size() / x.extent(0) : 0;
  for (index_t b = 0; b < x.extent(0); ++b)
    for (index_t k = 0; k < K; ++k) std::copy_n(x.data() + b * row, row, y.data() + (b * K + k) * row);
  return y;
}

template <class T>
T5Prefix<T> t5_repeat_prefix(const T5Prefix<T>& p, index_t K) {
  auto rep = [&](const std::vector<KVPrefix<T>>& v) {
    std::vector<KVPrefix<T>> out;
    for (const auto& e : v) {
      KVPrefix<T> r;
      r.k = Var<T, 3>(e.k.value()), r.v = Var<T, 3>(e.v.value());
      if (!e.k_batch.value().empty()) {
        r.k_batch = Var<T, 4>(t5_repeat_rows(e.k_batch.value(), K));
        r.v_batch = Var<T, 4>(t5_repeat_rows(e.v_batch.value(), K));
      }
      out.push_back(std::move(r));
    }
    return out;
  };
  return {rep(p.encoder), rep(p.decoder), rep(p.cross)};
}

// BeamHypotheses of transformers 4.27-4.35 (scores in double, as Python floats).
struct T5BeamHypotheses {
  index_t num_beams = 1;
  double length_penalty = 1.0;
  T5EarlyStopping early_stopping = T5EarlyStopping::heuristic;
  index_t max_length = 0;
  std::vector<std::pair<double, std::vector<std::int64_t>>> beams;
  double worst_score = 1e9;

  void add(std::vector<std::int64_t> hyp, double sum_logprobs) {
    const double score = sum_logprobs / std::pow(static_cast<double>(hyp.size()), length_penalty);
    if (static_cast<index_t>(beams.size()) < num_beams || score > worst_score) {
      beams.emplace_back(score, std::move(hyp));
      if (static_cast<index_t>(beams.size()) > num_beams) {
        // sorted([(s, idx)]): ties between scores fall back to the index
        std::vector<std::pair<double, std::size_t>> sorted;
        for (std::size_t i = 0; i < beams.size(); ++i) sorted.emplace_back(beams[i].first, i);
        std::sort(sorted.begin(), sorted.end());
        beams.erase(beams.begin() + static_cast<std::ptrdiff_t>(sorted[0].second));
        worst_score = sorted[1].first;
      } else {
        worst_score = std::min(score, worst_score);
      }
    }
  }

  bool is_done(double best_sum_logprobs, index_t cur_len) const {
    if (static_cast<index_t>(beams.size()) < num_beams) return false;
    if (early_stopping == T5EarlyStopping::yes) return true;
    double bound;
    if (early_stopping == T5EarlyStopping::never && length_penalty > 0.0)
      bound = best_sum_logprobs / std::pow(static_cast<double>(max_length), length_penalty);
    else
      bound = best_sum_logprobs / std::pow(static_cast<double>(cur_len), length_penalty);
    return worst_score >= bound;
  }
};

}  // namespace detail

/// Greedy (num_beams == 1) or beam search from encoder inputs (B, Ts) with a 0/1 mask (or
/// empty); returns (B, L) int64, L <= max_new_tokens + 1, starting with the decoder start token.
/// Throws Error for invalid options (num_beams < 1, max_new_tokens < 0, token ids outside the
/// vocabulary). Candidates of equal score are ranked by (beam, token) index; torch.topk leaves
/// that order unspecified, which matters only for exact ties (e.g. the -1e9 start scores of the
/// beams other than the first when the vocabulary has fewer than 2 * num_beams tokens).
template <class Spec, class T>
Tensor<std::int64_t, 2> generate(T5<Spec, T>& model, const Tensor<std::int64_t, 2>& input_ids,
                                 const Tensor<std::int64_t, 2>& attention_mask, const T5GenerateOptions& opt = {},
                                 const T5Prefix<T>* prefix = nullptr) {
  const T5Dims& d = model.dims();
  const std::int64_t eos = opt.eos_token_id.value_or(d.eos_token_id);
  const std::int64_t pad = opt.pad_token_id.value_or(d.pad_token_id);
  const std::int64_t start = opt.decoder_start_token_id.value_or(d.decoder_start_token_id);
  const index_t K = opt.num_beams, V = d.vocab_size, N = opt.max_new_tokens;
  if (K < 1) throw Error(detail::cat("T5 generate: num_beams must be >= 1, got ", K));
  if (N < 0) throw Error(detail::cat("T5 generate: max_new_tokens must be >= 0, got ", N));
  for (auto [what, id] : {std::pair{"eos_token_id", eos}, std::pair{"pad_token_id", pad},
                          std::pair{"decoder_start_token_id", start}})
    if (id < 0 || id >= V) throw Error(detail::cat("T5 generate: ", what, " ", id, " is outside the vocabulary [0, ", V, ")"));
  if (K > 1 && V < 2)
    throw Error(detail::cat("T5 generate: beam search needs a vocabulary of at least 2 tokens, got ", V));
  if (input_ids.empty() || input_ids.extent(1) == 0)
    throw ShapeError(detail::cat("T5 generate: input_ids is empty (shape ", shape_str(input_ids.shape()), ")"));

  NoGradGuard no_grad;
  const index_t B = input_ids.extent(0);
  const index_t max_length = N + 1;
  auto start_ids = [&](index_t rows) { return Tensor<std::int64_t, 2>::full({rows, 1}, start); };
  if (N == 0) return start_ids(B);

  auto enc = model.encode(input_ids, attention_mask, prefix);  // (B, Ts, C)
  auto enc_mask = model.additive_mask(attention_mask, input_ids);
  const index_t rows = B * K;
  std::optional<T5Prefix<T>> expanded;
  if (prefix && K > 1) expanded = detail::t5_repeat_prefix(*prefix, K);
  const T5Prefix<T>* dec_prefix = expanded ? &*expanded : prefix;
  if (K > 1) {
    enc = Var<T, 3>(detail::t5_repeat_rows(enc.value(), K));
    enc_mask = detail::t5_repeat_rows(enc_mask, K);
  }
  T5Cache<T> cache;
  std::vector<std::vector<std::int64_t>> seqs(static_cast<std::size_t>(rows), std::vector<std::int64_t>{start});
  Tensor<std::int64_t, 2> step_ids({rows, 1});
  // the logits of the last position of every row, for the ids in step_ids: (rows, V)
  auto next_logits = [&]() {
    for (index_t r = 0; r < rows; ++r) step_ids(r, 0) = seqs[static_cast<std::size_t>(r)].back();
    auto logits = model.lm_logits(model.decode(step_ids, enc, enc_mask, dec_prefix, &cache));  // (rows, 1, V)
    return logits.value().template reshape<2>({rows, V});
  };
  auto to_tensor = [](const std::vector<std::vector<std::int64_t>>& s, index_t len) {
    Tensor<std::int64_t, 2> out({static_cast<index_t>(s.size()), len});
    for (std::size_t i = 0; i < s.size(); ++i) std::copy_n(s[i].begin(), len, out.data() + static_cast<index_t>(i) * len);
    return out;
  };

  if (K == 1) {  // greedy_search
    std::vector<bool> unfinished(static_cast<std::size_t>(B), true);
    index_t len = 1;
    while (true) {
      const auto logits = next_logits();
      bool any = false;
      for (index_t b = 0; b < B; ++b) {
        const T* row = logits.data() + b * V;
        const std::int64_t best = std::max_element(row, row + V) - row;  // torch.argmax: the first maximum
        const std::int64_t tok = unfinished[static_cast<std::size_t>(b)] ? best : pad;
        seqs[static_cast<std::size_t>(b)].push_back(tok);
        if (tok == eos) unfinished[static_cast<std::size_t>(b)] = false;
        any = any || unfinished[static_cast<std::size_t>(b)];
      }
      ++len;
      if (!any || len >= max_length) break;
    }
    return to_tensor(seqs, len);
  }

  // beam_search
  std::vector<detail::T5BeamHypotheses> hyps(static_cast<std::size_t>(B));
  for (auto& h : hyps) h.num_beams = K, h.length_penalty = opt.length_penalty, h.early_stopping = opt.early_stopping,
                       h.max_length = max_length;
  std::vector<bool> done(static_cast<std::size_t>(B), false);
  std::vector<T> beam_scores(static_cast<std::size_t>(rows), T(0));
  for (index_t b = 0; b < B; ++b)
    for (index_t k = 1; k < K; ++k) beam_scores[static_cast<std::size_t>(b * K + k)] = T(-1e9);
  index_t cur_len = 1;
  Tensor<T, 2> scores({rows, V});
  std::vector<index_t> order(static_cast<std::size_t>(K * V));
  while (true) {
    const auto logits = next_logits();
    cpu::log_softmax_rows(logits.data(), scores.data(), rows, V);
    for (index_t r = 0; r < rows; ++r) {
      T* s = scores.data() + r * V;
      const T add = beam_scores[static_cast<std::size_t>(r)];
      for (index_t v = 0; v < V; ++v) s[v] = s[v] + add;
    }
    std::vector<T> next_scores(static_cast<std::size_t>(rows));
    std::vector<std::int64_t> next_tokens(static_cast<std::size_t>(rows));
    std::vector<index_t> next_rows(static_cast<std::size_t>(rows));
    for (index_t b = 0; b < B; ++b) {
      const auto bi = static_cast<std::size_t>(b);
      if (done[bi]) {  // pad the example
        for (index_t k = 0; k < K; ++k) {
          const auto r = static_cast<std::size_t>(b * K + k);
          next_scores[r] = T(0), next_tokens[r] = pad, next_rows[r] = 0;
        }
        continue;
      }
      // torch.topk(2K) over the K * V candidates of this example, best first (ties: lower index)
      const T* s = scores.data() + b * K * V;
      std::iota(order.begin(), order.end(), index_t{0});
      std::partial_sort(order.begin(), order.begin() + 2 * K, order.end(), [s](index_t x, index_t y) {
        return s[x] > s[y] || (s[x] == s[y] && x < y);
      });
      index_t beam = 0;
      for (index_t rank = 0; rank < 2 * K; ++rank) {
        const index_t flat = order[static_cast<std::size_t>(rank)];
        const index_t src = b * K + flat / V;
        const std::int64_t tok = flat % V;
        const T sc = s[flat];
        if (tok == eos) {
          if (rank >= K) continue;  // an EOS outside the top K is not a hypothesis
          hyps[bi].add(seqs[static_cast<std::size_t>(src)], static_cast<double>(sc));
        } else {
          const auto r = static_cast<std::size_t>(b * K + beam);
          next_scores[r] = sc, next_tokens[r] = tok, next_rows[r] = src;
          ++beam;
        }
        if (beam == K) break;
      }
      // beam < K cannot happen: at most K of the 2K candidates are EOS (one per beam)
      const double best = static_cast<double>(s[order[0]]);
      done[bi] = done[bi] || hyps[bi].is_done(best, cur_len);
    }
    std::vector<std::vector<std::int64_t>> next(static_cast<std::size_t>(rows));
    for (index_t r = 0; r < rows; ++r) {
      const auto ri = static_cast<std::size_t>(r);
      next[ri] = seqs[static_cast<std::size_t>(next_rows[ri])];
      next[ri].push_back(next_tokens[ri]);
      beam_scores[ri] = next_scores[ri];
    }
    seqs = std::move(next);
    cache.reorder(next_rows);
    ++cur_len;
    if (std::all_of(done.begin(), done.end(), [](bool x) { return x; }) || cur_len >= max_length) break;
  }

  // finalize
  for (index_t b = 0; b < B; ++b) {
    if (done[static_cast<std::size_t>(b)]) continue;
    for (index_t k = 0; k < K; ++k) {
      const auto r = static_cast<std::size_t>(b * K + k);
      hyps[static_cast<std::size_t>(b)].add(seqs[r], static_cast<double>(beam_scores[r]));
    }
  }
  std::vector<std::vector<std::int64_t>> best(static_cast<std::size_t>(B));
  index_t longest = 0, shortest = std::numeric_limits<index_t>::max();
  for (index_t b = 0; b < B; ++b) {
    auto& beams = hyps[static_cast<std::size_t>(b)].beams;
    // sorted(beams, key=score).pop(): the last among equal maxima in a stable sort
    std::size_t pick = 0;
    for (std::size_t i = 1; i < beams.size(); ++i)
      if (beams[i].first >= beams[pick].first) pick = i;
    best[static_cast<std::size_t>(b)] = beams[pick].second;
    longest = std::max<index_t>(longest, static_cast<index_t>(beams[pick].second.size()));
    shortest = std::min<index_t>(shortest, static_cast<index_t>(beams[pick].second.size()));
  }
  const index_t out_len = std::min(longest + 1, max_length);
  Tensor<std::int64_t, 2> out = Tensor<std::int64_t, 2>::full({B, out_len}, pad);  // torch.new(): garbage where unset
  for (index_t b = 0; b < B; ++b) {
    const auto& h = best[static_cast<std::size_t>(b)];
    const auto n = static_cast<index_t>(h.size());
    std::copy_n(h.begin(), n, out.data() + b * out_len);
    if (n < out_len) out(b, n) = eos;
  }
  (void)shortest;
  return out;
}

}  // namespace deepprompt
