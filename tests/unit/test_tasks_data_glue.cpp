// tasks/data/glue.hpp and common.hpp: GLUE TSV on the committed SST-2 samples, the other tasks'
// layouts on small hand-written files with the official headers, and malformed input.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "deepprompt/tasks/data/glue.hpp"

namespace test_tasks_data_glue {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using namespace deepprompt::data;
namespace fs = std::filesystem;
using doctest::Contains;

namespace {
const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA) / "datasets";

// The data lines of a TSV file, split on tabs (the header dropped), read independently.
std::vector<std::vector<std::string>> raw_rows(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  std::vector<std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, '\t');) f.push_back(x);
    rows.push_back(f);
  }
  return rows;
}
}  // namespace

TEST_CASE("data: lines drop a BOM, CRLF and trailing blank lines, keep inner blank lines") {
  data::detail::Lines lines(
      "\xEF\xBB\xBF"
      "a\r\n\r\nb\n \r\n\n");
  std::string_view l;
  std::vector<std::string> got;
  while (lines.next(l)) got.emplace_back(l);
  CHECK(got == std::vector<std::string>{"a", "", "b"});
  CHECK(lines.number() == 3);
  data::detail::Lines empty("\n\n");
  CHECK(!empty.next(l));
  data::detail::Lines no_end("x");
  CHECK((no_end.next(l) && l == "x" && !no_end.next(l)));
}

TEST_CASE("data: code point and byte offsets (Python str indices)") {
  const std::string s = "a\u00e9\u20ac\U0001F600b";  // 1 + 2 + 3 + 4 + 1 bytes
  CHECK(codepoint_count(s) == 5);
  CHECK(codepoint_to_byte(s, 0) == 0);
  CHECK(codepoint_to_byte(s, 2) == 3);
  CHECK(codepoint_to_byte(s, 4) == 10);
  CHECK(codepoint_to_byte(s, 5) == s.size());
  CHECK(codepoint_to_byte(s, 6) == std::string_view::npos);
  CHECK(byte_to_codepoint(s, 3) == 2);
  CHECK(byte_to_codepoint(s, 4) == 2);  // inside the euro sign
  CHECK(byte_to_codepoint(s, s.size()) == 5);
}

TEST_CASE("data: ReadStats counts skips and warnings") {
  ReadStats st;
  st.read = 3;
  st.skip("bad label", "f:2: bad");
  st.warn("odd", "f:3: odd");
  st.warn("odd", "f:4: odd");
  CHECK(st.skipped == 1);
  CHECK(st.warning_count("odd") == 2);
  CHECK(st.notes.size() == 3);
  CHECK(st.summary() == "read 3, skipped 1 (bad label: 1); warnings: odd: 2");
}

TEST_CASE("glue: SST-2 dev and train samples against the raw files") {
  for (const char* name : {"dev.tsv", "train.tsv"}) {
    const fs::path p = kData / "glue/sst2" / name;
    const auto ds = read_glue(GlueTask::sst2, p);
    const auto raw = raw_rows(p);
    REQUIRE(ds.size() == raw.size());
    CHECK(ds.stats.read == raw.size());
    CHECK(ds.stats.skipped == 0);
    for (std::size_t i : {std::size_t{0}, raw.size() - 1}) {
      CHECK(ds.examples[i].text_a == raw[i][0]);
      CHECK(ds.examples[i].label == std::stoi(raw[i][1]));
      CHECK(ds.examples[i].line == i + 2);
      CHECK(ds.examples[i].guid == std::to_string(i));
      CHECK(!ds.examples[i].text_b);
    }
  }
  const auto dev = read_glue(GlueTask::sst2, kData / "glue/sst2/dev.tsv");
  CHECK(dev.size() == 30);
  CHECK(dev.examples[0].text_a == "it 's a charming and often affecting journey . ");  // GLUE's space kept
  CHECK(dev.examples[0].label == 1);
  CHECK(dev.examples[29].text_a == "i had to look away - this was god awful . ");
  CHECK(dev.examples[29].label == 0);
  CHECK(std::count_if(dev.examples.begin(), dev.examples.end(), [](const auto& e) { return e.label == 1; }) == 13);
  CHECK(glue_spec(GlueTask::sst2).labels[1] == "1");
}

TEST_CASE("glue: CRLF, BOM, trailing blank lines, stream input and an unlabelled test file") {
  const auto ds =
      parse_glue(GlueTask::sst2, "\xEF\xBB\xBFsentence\tlabel\r\ngood \t1\r\nbad \t0\r\n\r\n\r\n", "crlf.tsv");
  REQUIRE(ds.size() == 2);
  CHECK(ds.examples[1].text_a == "bad ");
  CHECK(ds.examples[1].label == 0);
  std::istringstream in("index\tsentence\n0\tuplifting\n1\tdreary\n");
  const auto test = read_glue(GlueTask::sst2, in, "test.tsv");
  REQUIRE(test.size() == 2);
  CHECK(test.examples[1].guid == "1");
  CHECK(test.examples[1].text_a == "dreary");
  CHECK(!test.examples[1].label);
}

TEST_CASE("glue: pair tasks, STS-B scores, MNLI dev columns, CoLA without header") {
  // Hand-written rows under the official GLUE headers.
  const auto mrpc = parse_glue(
      GlueTask::mrpc, "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tHe said.\tHe stated.\n");
  REQUIRE(mrpc.size() == 1);
  CHECK(mrpc.examples[0].text_a == "He said.");
  CHECK(mrpc.examples[0].text_b == "He stated.");
  CHECK(mrpc.examples[0].label == 1);

  const auto stsb =
      parse_glue(GlueTask::stsb,
                 "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                 "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tAn air plane.\t5.000\n"
                 "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man.\tA woman.\t0.75\n");
  REQUIRE(stsb.size() == 2);
  CHECK(stsb.examples[1].score == doctest::Approx(0.75f));
  CHECK(!stsb.examples[1].label);
  CHECK(stsb.examples[1].text_b == "A woman.");

  const std::string mnli_header =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
      "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
  const auto mnli = parse_glue(GlueTask::mnli_mismatched,
                               mnli_header +
                                   "7\t1\t1n\tfiction\t(b)\t(b)\t(p)\t(p)\tPremise.\tHypo.\tneutral\tneutral\t"
                                   "entailment\tneutral\tneutral\tneutral\n");
  REQUIRE(mnli.size() == 1);
  CHECK(mnli.examples[0].guid == "7");
  CHECK(mnli.examples[0].text_a == "Premise.");
  CHECK(mnli.examples[0].label == 2);  // contradiction, entailment, neutral

  const auto qnli = parse_glue(GlueTask::qnli, "index\tquestion\tsentence\tlabel\n0\tWho?\tHim.\tnot_entailment\n");
  CHECK(qnli.examples.at(0).label == 1);
  const auto qqp =
      parse_glue(GlueTask::qqp, "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n9\t1\t2\tA?\tB?\t0\n");
  CHECK(qqp.examples.at(0).guid == "9");
  const auto wnli = parse_glue(GlueTask::wnli, "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\t1\n");
  CHECK(wnli.examples.at(0).label == 1);
  const auto rte = parse_glue(GlueTask::rte, "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n");
  CHECK(rte.examples.at(0).label == 0);

  const auto cola =
      parse_glue(GlueTask::cola, "gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThey drank the pub.\n");
  REQUIRE(cola.size() == 2);
  CHECK(cola.examples[1].text_a == "They drank the pub.");
  CHECK(cola.examples[1].label == 0);
  CHECK(cola.examples[1].line == 2);
  const auto cola_test = parse_glue(GlueTask::cola, "index\tsentence\n0\tBill whistled.\n");
  CHECK(cola_test.examples.at(0).text_a == "Bill whistled.");
  CHECK(!cola_test.examples.at(0).label);

  CHECK(glue_task_from_name("SST-2") == GlueTask::sst2);
  CHECK(glue_task_from_name("sts-b") == GlueTask::stsb);
  CHECK(glue_task_from_name("mnli-mm") == GlueTask::mnli_mismatched);
  CHECK(glue_task_from_name("MNLI") == GlueTask::mnli);
  CHECK(!glue_task_from_name("squad"));
}

TEST_CASE("glue: malformed rows name the file and line; skip_malformed counts them") {
  const auto missing = kData / "malformed/sst2_missing_column.tsv";
  CHECK_THROWS_WITH_AS(read_glue(GlueTask::sst2, missing),
                       Contains("sst2_missing_column.tsv:5: sst2: expected 2 tab-separated columns, got 1"),
                       FormatError);
  const auto bad = kData / "malformed/sst2_bad_label.tsv";
  CHECK_THROWS_WITH_AS(read_glue(GlueTask::sst2, bad),
                       Contains("sst2_bad_label.tsv:7: sst2: label 'positive' is not one of 0, 1"), FormatError);
  const auto skipped = read_glue(GlueTask::sst2, bad, {.skip_malformed = true});
  CHECK(skipped.size() == 29);
  CHECK(skipped.stats.skipped == 1);
  CHECK(skipped.stats.reasons.at("bad label") == 1);
  REQUIRE(skipped.stats.notes.size() == 1);
  CHECK(skipped.stats.notes[0].find("sst2_bad_label.tsv:7:") != std::string::npos);

  CHECK_THROWS_WITH_AS(parse_glue(GlueTask::sst2, "sentence\tlabel\na\t1\n\nb\t0\n", "mid.tsv"),
                       Contains("mid.tsv:3: sst2: blank line"), FormatError);
  CHECK_THROWS_WITH_AS(parse_glue(GlueTask::stsb, "sentence1\tsentence2\tscore\na\tb\tx1\n", "s.tsv"),
                       Contains("s.tsv:2: stsb: score 'x1' is not a number"), FormatError);
  CHECK_THROWS_WITH_AS(parse_glue(GlueTask::rte, "index\tsentence1\tlabel\n", "r.tsv"),
                       Contains("r.tsv:1: rte: the header has no column 'sentence2'"), FormatError);
  CHECK_THROWS_AS(read_glue(GlueTask::sst2, kData / "glue/sst2/absent.tsv"), IoError);
}

}  // namespace test_tasks_data_glue
