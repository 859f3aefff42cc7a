// tasks/heads on text, on hand-built cases whose answers are worked out in the comments: word /
// sub-token label alignment and predictions per word (token_classification.hpp), QA windows with
// a stride and answer positions per window, and span decoding (qa_postprocess.hpp): known logits
// -> known text, max_answer_length, context-only spans, stitching over windows (an answer across a
// window boundary), SQuAD v2's null answer and threshold, byte vs code-point offsets.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "deepprompt/io/wordpiece.hpp"
#include "deepprompt/tasks/heads/qa_postprocess.hpp"
#include "deepprompt/tasks/heads/token_classification.hpp"

namespace test_tasks_heads_text {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace tasks = deepprompt::tasks;
using dp::index_t;
using dp::Tensor;

namespace {

// ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then the words in order.
const dp::WordPieceTokenizer& tok() {
  static const auto t = dp::WordPieceTokenizer::from_vocab(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "new", "york", "##er", "u", ".", "n", "sat",  // 5..12
       "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "where", "is", "?", "cafe", "au", "lait"},       // 13..28
      {});
  return t;
}

tasks::QaExample letters(std::vector<tasks::QaAnswer> answers = {{"d e", 6}}) {
  return {"ex", "  where is d ?", "a b c d e f g h i j", std::move(answers)};  // question: 4 tokens
}

/// Logit rows for the features: `fill` everywhere, then the given (feature, position, value).
struct Logits {
  std::vector<std::vector<double>> start, end;
  Logits(const std::vector<tasks::QaFeature>& f, double fill = 0) {
    for (const auto& x : f) {
      start.emplace_back(x.encoding.size(), fill);
      end.emplace_back(x.encoding.size(), fill);
    }
  }
};

}  // namespace

// --- token classification -----------------------------------------------------------------------

TEST_CASE("tasks heads: labels go to the first sub-token of each word; -100 elsewhere and on specials") {
  const std::vector<std::string> words{"The", "New", "Yorker", "U.N.", "sat"};
  const auto e = tasks::encode_words(tok(), words);
  // [CLS] the new york ##er u . n . sat [SEP]
  CHECK(e.tokens == std::vector<std::string>{"[CLS]", "the", "new", "york", "##er", "u", ".", "n", ".", "sat", "[SEP]"});
  CHECK(e.word_ids == std::vector<std::int32_t>{-1, 0, 1, 2, 2, 3, 3, 3, 3, 4, -1});
  const std::vector<std::int64_t> labels{0, 1, 2, 3, 0};
  CHECK(tasks::align_word_labels(e, labels) ==
        std::vector<std::int64_t>{-100, 0, 1, 2, -100, 3, -100, -100, -100, 0, -100});
  CHECK(tasks::align_word_labels(e, labels, true) == std::vector<std::int64_t>{-100, 0, 1, 2, 2, 3, 3, 3, 3, 0, -100});
  CHECK_THROWS_WITH_AS(tasks::align_word_labels(e, std::vector<std::int64_t>{0, 1}), doctest::Contains("word 2"),
                       dp::Error);
  // rows padded with -100
  const auto rows = tasks::label_rows(std::vector<std::vector<std::int64_t>>{{1, 2}, {3}}, 3);
  CHECK(rows(0, 2) == -100);
  CHECK(rows(1, 0) == 3);
  CHECK(rows(1, 1) == -100);
}

TEST_CASE("tasks heads: predictions per word read each word's first sub-token; cut words get -1") {
  const std::vector<std::string> words{"The", "New", "Yorker", "U.N.", "sat"};
  const auto e = tasks::encode_words(tok(), words);
  Tensor<float, 2> logits = Tensor<float, 2>::zeros({12, 3});  // one row more than tokens (padding)
  // first sub-tokens: the -> 1, new -> 2, york -> 0, u -> 1, sat -> 2; other sub-tokens say otherwise
  for (auto [t, k] : {std::pair{1, 1}, {2, 2}, {3, 0}, {4, 2}, {5, 1}, {6, 0}, {7, 2}, {8, 0}, {9, 2}, {0, 2}, {10, 1}})
    logits(t, k) = 5;
  CHECK(tasks::word_predictions(e.word_ids, logits, words.size()) == std::vector<std::int64_t>{1, 2, 0, 1, 2});
  // truncated to 6 tokens: [CLS] the new york ##er [SEP]: U.N. and sat have no token
  const auto cut = tasks::encode_words(tok(), words, {.max_length = 6});
  CHECK(cut.word_ids == std::vector<std::int32_t>{-1, 0, 1, 2, 2, -1});
  CHECK(tasks::word_predictions(cut.word_ids, logits, words.size()) == std::vector<std::int64_t>{1, 2, 0, -1, -1});
  CHECK_THROWS_AS(tasks::word_predictions(e.word_ids, Tensor<float, 2>::zeros({5, 3}), 5), dp::ShapeError);
  // a word of only spaces gives no token; the words after it keep their indices
  const auto gap = tasks::encode_words(tok(), std::vector<std::string>{"a", " ", "b"});
  CHECK(gap.word_ids == std::vector<std::int32_t>{-1, 0, 2, -1});
}

// --- QA windows ------------------------------------------------------------------------------------

TEST_CASE("tasks heads: QA windows of W = max_length - |question| - 3 context tokens, stride shared") {
  // question "where is d ?" (4 tokens, left-stripped); context a..j (10 tokens);
  // max_length 11 -> W = 11 - 4 - 3 = 4; doc_stride 2 -> windows start every 2 tokens:
  // [a b c d] [c d e f] [e f g h] [g h i j] (the last reaches the end)
  const std::vector<tasks::QaExample> ex{letters()};
  const auto f = tasks::make_qa_features(tok(), ex, {.max_length = 11, .doc_stride = 2});
  REQUIRE(f.size() == 4);
  CHECK(f[0].encoding.tokens ==
        std::vector<std::string>{"[CLS]", "where", "is", "d", "?", "[SEP]", "a", "b", "c", "d", "[SEP]"});
  CHECK(f[1].encoding.tokens ==
        std::vector<std::string>{"[CLS]", "where", "is", "d", "?", "[SEP]", "c", "d", "e", "f", "[SEP]"});
  CHECK(f[3].encoding.tokens[6] == "g");
  CHECK(f[1].encoding.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1});
  CHECK(f[1].encoding.sequence_ids == std::vector<std::int32_t>{-1, 0, 0, 0, 0, -1, 1, 1, 1, 1, -1});
  CHECK(f[1].encoding.offsets[6] == dp::Offset{4, 5});  // "c" in the context
  for (const auto& x : f) CHECK(x.example == 0);
  // the answer "d e" (chars 6..9): window 0 holds d but not e -> [CLS]; window 1 holds both: d at
  // 7, e at 8; windows 2 and 3 do not hold d -> [CLS]
  CHECK(f[0].start_position == 0);
  CHECK(f[0].end_position == 0);
  CHECK(f[1].start_position == 7);
  CHECK(f[1].end_position == 8);
  CHECK(f[2].start_position == 0);
  CHECK(f[3].end_position == 0);
  // unanswerable (SQuAD v2): [CLS] everywhere
  const std::vector<tasks::QaExample> none{letters({})};
  for (const auto& x : tasks::make_qa_features(tok(), none, {.max_length = 11, .doc_stride = 2}))
    CHECK((x.start_position == 0 && x.end_position == 0));
  // an answer in the last context token of a window: window 0 [a b c d], answer "d"
  const std::vector<tasks::QaExample> last{letters({{"d", 6}})};
  const auto g = tasks::make_qa_features(tok(), last, {.max_length = 11, .doc_stride = 2});
  CHECK(g[0].start_position == 9);
  CHECK(g[0].end_position == 9);
}

TEST_CASE("tasks heads: QA window counts, padding and errors") {
  const std::vector<tasks::QaExample> ex{letters()};
  // W = 14 - 7 = 7, stride 2: windows start at 0 and 5: [a..g] [f..j]
  const auto p = tasks::make_qa_features(tok(), ex, {.max_length = 14, .doc_stride = 2, .pad_to_max_length = true});
  REQUIRE(p.size() == 2);
  CHECK(p[1].encoding.tokens[6] == "f");
  CHECK(p[1].encoding.size() == 14);
  CHECK(p[1].encoding.attention_mask.back() == 0);
  CHECK(p[0].start_position == 9);  // d at 6 + 3
  const auto batch = tasks::make_qa_batch(p, 0);
  CHECK(batch.input_ids.shape() == dp::Shape<2>{2, 14});
  CHECK(batch.start_positions(0) == 9);
  CHECK(batch.end_positions(0) == 10);
  CHECK(batch.start_positions(1) == 0);
  CHECK(batch.token_type_ids(0, 6) == 1);
  // a context that fits: one window
  CHECK(tasks::make_qa_features(tok(), ex, {.max_length = 64, .doc_stride = 8}).size() == 1);
  // W = 4 <= doc_stride 4: HF refuses too
  CHECK_THROWS_WITH_AS(tasks::make_qa_features(tok(), ex, {.max_length = 11, .doc_stride = 4}),
                       doctest::Contains("leaves 4 context tokens"), dp::Error);
}

TEST_CASE("tasks heads: QA offsets are bytes of the context, answer positions code points (SQuAD)") {
  // "café au lait": é is 2 bytes; "au" starts at code point 5, byte 6
  const std::vector<tasks::QaExample> ex{{"c", "where is a ?", "café au lait", {{"au", 5}}}};
  const auto f = tasks::make_qa_features(tok(), ex, {.max_length = 32, .doc_stride = 4});
  REQUIRE(f.size() == 1);
  CHECK(f[0].encoding.tokens[6] == "cafe");
  CHECK(f[0].start_position == 7);
  CHECK(f[0].end_position == 7);
  Logits l(f);
  l.start[0][7] = l.end[0][8] = 3;  // "au lait"
  const auto p = tasks::decode_qa_predictions(ex, f, l.start, l.end);
  CHECK(p[0].text == "au lait");
  CHECK(p[0].n_best[0].offsets == dp::Offset{6, 13});
}

// --- span decoding --------------------------------------------------------------------------------

TEST_CASE("tasks heads: span decoding: known logits -> known text; only context spans with end >= start") {
  const std::vector<tasks::QaExample> ex{letters()};
  const auto f = tasks::make_qa_features(tok(), ex, {.max_length = 64, .doc_stride = 8});  // one window
  // positions: [CLS] 0, question 1..4, [SEP] 5, a 6, b 7, c 8, d 9, e 10, f 11, ... j 15, [SEP] 16
  Logits l(f);
  l.start[0][9] = 4, l.end[0][10] = 5;  // "d e": score 9
  l.start[0][0] = 9, l.end[0][0] = 9;   // [CLS]: not a context token (v1: no null answer)
  l.start[0][2] = 8, l.end[0][3] = 8;   // inside the question: ignored
  l.start[0][12] = 7, l.end[0][11] = 4.5;  // g .. f: end before start; (d, f) scores 8.5
  auto p = tasks::decode_qa_predictions(ex, f, l.start, l.end);
  REQUIRE(p.size() == 1);
  CHECK(p[0].id == "ex");
  CHECK(p[0].text == "d e");
  CHECK(p[0].n_best[0].score == 9);
  double total = 0;
  for (const auto& c : p[0].n_best) total += c.probability;
  CHECK(total == doctest::Approx(1.0));
  CHECK(p[0].n_best.size() <= 20);
  // max_answer_length: start c (10), end f (10) is 4 tokens
  Logits m(f);
  m.start[0][8] = 10, m.start[0][9] = 5;
  m.end[0][11] = 10, m.end[0][9] = 4;
  CHECK(tasks::decode_qa_predictions(ex, f, m.start, m.end)[0].text == "c d e f");  // score 20
  // at most 2 tokens: (c, d) 14 beats (d, d) 9; (c, f) and (d, f) are too long
  CHECK(tasks::decode_qa_predictions(ex, f, m.start, m.end, {.max_answer_length = 2})[0].text == "c d");
  // n_best = 1 keeps only the top start and end: (c, f) too long -> no candidate -> ""
  const auto one = tasks::decode_qa_predictions(ex, f, m.start, m.end, {.n_best = 1, .max_answer_length = 2});
  CHECK(one[0].text.empty());
  CHECK(one[0].n_best.empty());
}

TEST_CASE("tasks heads: window stitching: the best span over all windows; across a window boundary") {
  const std::vector<tasks::QaExample> ex{letters()};
  const auto f = tasks::make_qa_features(tok(), ex, {.max_length = 11, .doc_stride = 2});
  REQUIRE(f.size() == 4);
  // each window's logits peak at its training positions ([CLS] where it does not hold "d e"):
  // only window 1 holds the whole answer, which crosses window 0's end
  Logits l(f);
  for (std::size_t k = 0; k < f.size(); ++k) {
    l.start[k][static_cast<std::size_t>(f[k].start_position)] += 6;
    l.end[k][static_cast<std::size_t>(f[k].end_position)] += 6;
  }
  auto p = tasks::decode_qa_predictions(ex, f, l.start, l.end);
  CHECK(p[0].text == "d e");
  CHECK(p[0].n_best[0].feature == 1);
  // a better span in window 3 ("i j", 7 + 7) wins over window 1's (6 + 6)
  l.start[3][8] = 7, l.end[3][9] = 7;
  p = tasks::decode_qa_predictions(ex, f, l.start, l.end);
  CHECK(p[0].text == "i j");
  CHECK(p[0].n_best[0].feature == 3);
  // the same span seen in two windows ("d" is in windows 0 and 1) maps to the same text
  Logits d(f);
  d.start[0][9] = d.end[0][9] = 3;  // window 0: d at 9
  d.start[1][7] = d.end[1][7] = 2;  // window 1: d at 7
  p = tasks::decode_qa_predictions(ex, f, d.start, d.end);
  CHECK(p[0].n_best[0].text == "d");
  CHECK(p[0].n_best[1].text == "d");
  CHECK(p[0].n_best[0].feature == 0);
  // two examples: features are grouped by example
  const std::vector<tasks::QaExample> two{letters(), {"other", "where is a ?", "h i", {}}};
  const auto f2 = tasks::make_qa_features(tok(), two, {.max_length = 11, .doc_stride = 2});
  REQUIRE(f2.size() == 5);
  CHECK(f2[4].example == 1);
  Logits l2(f2);
  l2.start[4][6] = l2.end[4][7] = 1;
  const auto p2 = tasks::decode_qa_predictions(two, f2, l2.start, l2.end);
  CHECK(p2[1].text == "h i");
  CHECK_THROWS_AS(tasks::decode_qa_predictions(two, f2, l.start, l.end), dp::ShapeError);
}

TEST_CASE("tasks heads: SQuAD v2: the smallest null score over windows against the best span, with a threshold") {
  const std::vector<tasks::QaExample> ex{letters({})};
  const auto f = tasks::make_qa_features(tok(), ex, {.max_length = 11, .doc_stride = 2});
  Logits l(f);
  for (std::size_t k = 0; k < f.size(); ++k) l.start[k][0] = l.end[k][0] = 5;  // null 10 in each window...
  l.start[2][0] = l.end[2][0] = 2;                                              // ...but 4 in window 2
  l.start[1][7] = 1.5, l.end[1][8] = 1.5;                                       // best span "d e": 3
  auto p = tasks::decode_qa_predictions(ex, f, l.start, l.end, {.version_2_with_negative = true});
  CHECK(p[0].null_score_diff == doctest::Approx(4 - 3));
  CHECK(p[0].text.empty());  // 1 > threshold 0
  const auto nul = std::find_if(p[0].n_best.begin(), p[0].n_best.end(), [](const auto& c) { return c.null; });
  REQUIRE(nul != p[0].n_best.end());
  CHECK(nul->score == 4);
  CHECK(nul->feature == 2);
  CHECK(nul->text.empty());
  p = tasks::decode_qa_predictions(ex, f, l.start, l.end, {.version_2_with_negative = true, .null_score_diff_threshold = 1.5});
  CHECK(p[0].text == "d e");
  // v1 ignores the null answer
  CHECK(tasks::decode_qa_predictions(ex, f, l.start, l.end)[0].text == "d e");
  // the null answer is kept in the n-best list even when it ranks below n_best
  for (std::size_t k = 0; k < f.size(); ++k) l.start[k][0] = l.end[k][0] = -50;  // null -100
  p = tasks::decode_qa_predictions(ex, f, l.start, l.end, {.n_best = 1, .version_2_with_negative = true});
  CHECK(p[0].n_best.size() == 2);
  CHECK(p[0].n_best.back().null);
  CHECK(p[0].text == "d e");
}

TEST_CASE("tasks heads: to_qa_examples reads SQuAD-like records (optional answer_start, is_impossible)") {
  struct Answer {
    std::string text;
    std::optional<std::int64_t> answer_start;
  };
  struct Record {
    std::string id, title, context, question;
    std::vector<Answer> answers;
    bool is_impossible = false;
  };
  const std::vector<Record> records{{"q1", "t", "a b c", "where is b ?", {{"b", 2}, {"c", std::nullopt}}, false},
                                    {"q2", "t", "a b c", "where is d ?", {{"b", 2}}, true}};
  const auto ex = tasks::to_qa_examples(records);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].id == "q1");
  CHECK(ex[0].question == "where is b ?");
  REQUIRE(ex[0].answers.size() == 1);  // the answer without answer_start is left out
  CHECK(ex[0].answers[0].answer_start == 2);
  CHECK(ex[1].answers.empty());  // impossible
  const auto f = tasks::make_qa_features(tok(), ex, {.max_length = 32, .doc_stride = 4});
  CHECK(f[0].start_position == 7);  // [CLS] where is b ? [SEP] a b
  CHECK(f[1].start_position == 0);
}

TEST_CASE("tasks heads: pad_encodings pads to the longest row; the picked-rows form equals padding copies") {
  auto enc = [](std::vector<std::int32_t> ids, std::vector<std::int32_t> types) {
    dp::Encoding e;
    e.ids = ids, e.type_ids = types, e.attention_mask.assign(ids.size(), 1);
    return e;
  };
  const std::vector<dp::Encoding> all{enc({2, 5, 3}, {0, 0, 0}), enc({2, 7, 8, 9, 3}, {0, 0, 1, 1, 1}), enc({2, 3}, {0, 0})};
  const auto b = dp::tasks::pad_encodings(all, 0);
  CHECK(b.input_ids.shape()[1] == 5);
  CHECK(b.input_ids(0, 3) == 0);          // padded with the pad id
  CHECK(b.attention_mask(0, 2) == 1);
  CHECK(b.attention_mask(0, 3) == 0);
  CHECK(b.token_type_ids(1, 2) == 1);
  const std::vector<dp::index_t> pick{2, 0};
  const auto p = dp::tasks::pad_encodings(all, pick, 9);
  const std::vector<dp::Encoding> copies{all[2], all[0]};
  const auto q = dp::tasks::pad_encodings(copies, 9);
  CHECK(p.input_ids.shape() == q.input_ids.shape());
  CHECK(std::equal(p.input_ids.data(), p.input_ids.data() + p.input_ids.size(), q.input_ids.data()));
  CHECK(std::equal(p.attention_mask.data(), p.attention_mask.data() + p.attention_mask.size(), q.attention_mask.data()));
  CHECK(p.input_ids(0, 2) == 9);
  CHECK_THROWS_WITH_AS(dp::tasks::pad_encodings(all, std::vector<dp::index_t>{}, 0), "pad_encodings: no encodings", dp::Error);
}

}  // namespace test_tasks_heads_text
