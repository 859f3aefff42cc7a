#pragma once
// Evaluation metrics of the four task families, each matching the reference implementation
// people report numbers with (namespace deepprompt::metrics):
//   classification.hpp  accuracy, macro-F1, binary F1, Matthews correlation (scikit-learn)
//   regression.hpp      Pearson and Spearman correlation (scipy.stats)
//   entities.hpp        entity extraction (conlleval / strict schemes), IOB1 -> IOB2
//   seqeval.hpp         entity-level precision / recall / F1 and report (seqeval)
//   squad.hpp           exact match and token F1, SQuAD v1.1 and v2.0 (official scripts)
//   bleu.hpp            corpus BLEU with 13a tokenisation (sacreBLEU)
//   rouge.hpp           ROUGE-L (rouge_score)
//   perplexity.hpp      exp(mean NLL)
// All work on std::vector / std::string / std::span and throw deepprompt::Error on bad input.
#include "deepprompt/tasks/metrics/bleu.hpp"
#include "deepprompt/tasks/metrics/classification.hpp"
#include "deepprompt/tasks/metrics/entities.hpp"
#include "deepprompt/tasks/metrics/perplexity.hpp"
#include "deepprompt/tasks/metrics/regression.hpp"
#include "deepprompt/tasks/metrics/rouge.hpp"
#include "deepprompt/tasks/metrics/seqeval.hpp"
#include "deepprompt/tasks/metrics/squad.hpp"
