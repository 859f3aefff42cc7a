#pragma once
// The task heads (namespace deepprompt::tasks): sequence classification and regression, token
// classification (NER) with word/sub-token alignment, extractive QA with windows and span
// decoding, and T5 sequence-to-sequence. Each works on any backbone that yields a BertOutput
// (Bert, PromptedBert, LoraBert, a callable) or, for seq2seq, on a T5 with an optional prompt.
#include "heads/common.hpp"
#include "heads/qa_postprocess.hpp"
#include "heads/question_answering.hpp"
#include "heads/seq2seq.hpp"
#include "heads/sequence_classification.hpp"
#include "heads/token_classification.hpp"
