#pragma once
// Perplexity of a language model over a set of tokens: exp of the mean negative log-likelihood
// (natural log) per token, the number Hugging Face's examples report as exp(eval_loss).
#include <cmath>
#include <cstddef>

#include "deepprompt/core/error.hpp"

namespace deepprompt::metrics {

/// exp(nll_sum / tokens), nll_sum being the summed negative log-likelihood in nats.
/// Requires: tokens > 0, nll_sum not NaN (else Error). Ensures: >= 1 when nll_sum >= 0; +inf
/// when the mean NLL overflows exp.
inline double perplexity(double nll_sum, std::size_t tokens) {
  if (tokens == 0) throw Error("metrics::perplexity: no tokens (the mean NLL is undefined)");
  if (std::isnan(nll_sum)) throw Error("metrics::perplexity: the summed NLL is NaN");
  return std::exp(nll_sum / static_cast<double>(tokens));
}

}  // namespace deepprompt::metrics
