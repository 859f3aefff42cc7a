// tasks/data/conll.hpp: CoNLL-2003 columns (original 4-column IOB1 with -DOCSTART-, and the
// 2-column IOB2 variant with CRLF) on the committed samples, IOB1 -> IOB2, and malformed lines.
#include <doctest/doctest.h>

#include <sstream>

#include "deepprompt/tasks/data/conll.hpp"

namespace test_tasks_data_conll {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using namespace deepprompt::data;
namespace fs = std::filesystem;
using doctest::Contains;
using Strings = std::vector<std::string>;

namespace {
const fs::path kConll = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/conll2003";
const fs::path kBad = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/malformed";
}  // namespace

TEST_CASE("conll: the original 4-column sample (IOB1, -DOCSTART- at the end too)") {
  const auto ds = read_conll(kConll / "eng.testa");
  CHECK(ds.columns == 4);
  REQUIRE(ds.size() == 21);
  CHECK(ds.stats.read == 21);
  CHECK(ds.tokens == 488);
  CHECK(ds.documents == 2);
  const auto& first = ds.examples[0];
  CHECK(first.tokens ==
        Strings{"CRICKET", "-", "LEICESTERSHIRE", "TAKE", "OVER", "AT", "TOP", "AFTER", "INNINGS", "VICTORY", "."});
  CHECK(first.tags == Strings{"O", "O", "I-ORG", "O", "O", "O", "O", "O", "O", "O", "O"});
  CHECK(first.pos[0] == "NNP");
  CHECK(first.chunk[1] == "O");
  CHECK(first.line == 1);
  CHECK(first.document == 0);
  CHECK(ds.examples[16].line == 459);  // first sentence after the -DOCSTART- of line 457
  CHECK(ds.examples[16].document == 1);
  const auto& last = ds.examples[20];
  CHECK(last.line == 498);
  CHECK(last.tokens.front() == "Somerset");
  CHECK(last.tokens.back() == ".");
  CHECK(last.tags == Strings{"I-ORG", "O", "O", "O", "O", "I-PER", "I-PER", "O", "O", "O", "I-ORG", "O", "O"});
}

TEST_CASE("conll: IOB1 -> IOB2 on read equals the 2-column IOB2 sample (CRLF)") {
  const auto iob1 = read_conll(kConll / "eng.testa", {.to_iob2 = true});
  const auto iob2 = read_conll(kConll / "iob2_2col/valid.txt");
  CHECK(iob2.columns == 2);
  CHECK(iob2.documents == 0);
  CHECK(iob2.examples[0].pos.empty());
  REQUIRE(iob1.size() == iob2.size());
  for (std::size_t i = 0; i < iob1.size(); ++i) {
    CHECK(iob1.examples[i].tokens == iob2.examples[i].tokens);
    CHECK(iob1.examples[i].tags == iob2.examples[i].tags);
  }
  CHECK(iob1.examples[20].tags[0] == "B-ORG");
  CHECK(iob2.examples[20].line > 0);

  Strings tags{"I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "B-ORG"};
  iob1_to_iob2(tags);
  CHECK(tags == Strings{"B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "B-ORG"});
  Strings already = tags;
  iob1_to_iob2(already);
  CHECK(already == tags);  // IOB2 is left unchanged
}

TEST_CASE("conll: labels and tag ids") {
  const auto ds = read_conll(kConll / "iob2_2col/valid.txt");
  const auto labels = conll_labels(ds.examples);
  CHECK(labels == Strings{"O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"});
  const auto ids = tag_ids(ds.examples[0], std::span<const std::string_view>(kConll2003Labels));
  CHECK(ids == std::vector<int>{0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0});  // B-ORG is 3 in the HF order
  ConllSentence odd;
  odd.tokens = {"x"};
  odd.tags = {"B-DATE"};
  odd.line = 7;
  CHECK_THROWS_WITH_AS(tag_ids(odd, std::span<const std::string>(labels)),
                       Contains("tag 'B-DATE' of token 0 of the sentence at line 7 is not in the label list"),
                       FormatError);
}

TEST_CASE("conll: malformed lines name the file and line; skip_malformed drops the sentence") {
  CHECK_THROWS_WITH_AS(read_conll(kBad / "conll_missing_column.txt"),
                       Contains("conll_missing_column.txt:14: expected 4 columns, got 3"), FormatError);
  CHECK_THROWS_WITH_AS(read_conll(kBad / "conll_bad_tag.txt"),
                       Contains("conll_bad_tag.txt:21: tag 'X-PER' is not O, B-TYPE or I-TYPE"), FormatError);
  const auto skipped = read_conll(kBad / "conll_bad_tag.txt", {.skip_malformed = true});
  CHECK(skipped.size() == 20);
  CHECK(skipped.stats.skipped == 1);
  CHECK(skipped.stats.reasons.at("bad tag") == 1);
  CHECK(skipped.examples[2].line == 52);  // the sentence of lines 16-50 is gone

  std::istringstream in("EU\tB-ORG\r\nrejects\tO\r\n\r\nPeter\tB-PER\r\n");  // no blank line at the end
  const auto s = read_conll(in, "s.txt");
  REQUIRE(s.size() == 2);
  CHECK(s.examples[1].tokens == Strings{"Peter"});
  CHECK_THROWS_WITH_AS(parse_conll("EU\n", "one.txt"), Contains("one.txt:1: expected at least 2 columns"), FormatError);
  CHECK(parse_conll("\n\n").size() == 0);
}

}  // namespace test_tasks_data_conll
