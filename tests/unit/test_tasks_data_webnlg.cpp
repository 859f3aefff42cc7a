// tasks/data/webnlg.hpp: WebNLG 2017 XML (v1.6 enriched) on the committed samples, the T5
// linearisation, and malformed XML. Needs tinyxml2: built only where CMake found it.
#include <doctest/doctest.h>

#ifdef DEEPPROMPT_TEST_TINYXML2

#include "deepprompt/tasks/data/webnlg.hpp"

namespace test_tasks_data_webnlg {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using namespace deepprompt::data;
namespace fs = std::filesystem;
using doctest::Contains;

namespace {
const fs::path kWeb = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/webnlg";
const fs::path kBad = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/malformed";
}  // namespace

TEST_CASE("webnlg: one file of the v1.6 dev sample") {
  const auto ds = read_webnlg(kWeb / "dev/1triples/Airport.xml");
  REQUIRE(ds.size() == 4);
  CHECK(ds.stats.read == 4);
  CHECK(ds.stats.warnings.empty());
  const auto& e = ds.examples[0];
  CHECK(e.category == "Airport");
  CHECK(e.eid == "Id1");
  CHECK(e.size == 1);
  CHECK(e.line == 4);
  REQUIRE(e.original.size() == 1);
  CHECK(e.original[0].at(0).predicate == "leaderName");
  REQUIRE(e.modified.size() == 1);
  CHECK(e.modified[0].subject == "Aarhus");
  CHECK(e.modified[0].object == "Jacob_Bundsgaard");
  REQUIRE(e.lexes.size() == 1);
  CHECK(e.lexes[0].lid == "Id1");
  CHECK(e.lexes[0].comment == "good");
  CHECK(e.lexes[0].text == "The leader of Aarhus is Jacob Bundsgaard.");
  const auto& last = ds.examples[3];
  CHECK(last.eid == "Id4");
  CHECK(last.modified[0].object == "Harrietstown,_New_York");
  REQUIRE(last.lexes.size() == 2);
  CHECK(last.lexes[1].text == "Adirondack Regional Airport is located in Harrietstown, New York.");
}

TEST_CASE("webnlg: a folder of files, empty lex texts counted, pairs and linearisation") {
  const auto ds = read_webnlg_dir(kWeb / "dev");
  REQUIRE(ds.size() == 8);  // 1triples/Airport.xml (4 entries), then 3triples/SportsTeam.xml (4)
  CHECK(ds.examples[4].category == "SportsTeam");
  CHECK(ds.examples[4].file.ends_with("3triples/SportsTeam.xml"));
  const auto& e = ds.examples[7];
  CHECK(e.eid == "Id4");
  CHECK(e.size == 3);
  CHECK(e.original[0][1].object == "\"Isidro Metapán\"@en");
  CHECK(e.modified[1].object == "\"Isidro Metapán\"");
  REQUIRE(e.lexes.size() == 3);
  CHECK(e.lexes[0].comment == "toFix");
  CHECK(e.lexes[0].text.empty());
  CHECK(ds.stats.warning_count("empty lex text") == 3);
  REQUIRE(!ds.stats.notes.empty());
  CHECK(ds.stats.notes[0].find("SportsTeam.xml:245: entry Id4 lex Id1 has no text") != std::string::npos);

  const auto pairs = webnlg_pairs(ds);
  CHECK(pairs.size() == 6 + 12 - 3);
  CHECK(pairs[0].source == "<H> Aarhus <R> leader Name <T> Jacob Bundsgaard");
  CHECK(pairs[0].target == "The leader of Aarhus is Jacob Bundsgaard.");
  CHECK(pairs.back().entry == 6);

  CHECK(linearize(e.modified) ==
        "<H> A.D. Isidro Metapán <R> ground <T> Estadio Jorge Calero Suárez "
        "<H> A.D. Isidro Metapán <R> fullname <T> Isidro Metapán "
        "<H> A.D. Isidro Metapán <R> number Of Members <T> 10000");
  CHECK(
      linearize(e.modified, {.readable = false})
          .starts_with(
              "<H> A.D._Isidro_Metapán <R> ground <T> Estadio_Jorge_Calero_Suárez <H> A.D._Isidro_Metapán <R> fullname "
              "<T> \"Isidro Metapán\""));
  const Triple t{"Harrietstown,_New_York", "ISBNNumber_(x)", "a"};
  CHECK(linearize(std::span(&t, 1)) == "<H> Harrietstown New York <R> ISBN Number x <T> a");
}

TEST_CASE("webnlg: the original release layout (text directly in <lex>), BOM and CRLF") {
  const auto ds = parse_webnlg(
      "\xEF\xBB\xBF<?xml version=\"1.0\" ?>\r\n<benchmark><entries>\r\n"
      "<entry category=\"City\" eid=\"Id9\" size=\"1\"><originaltripleset><otriple>A | b | "
      "C</otriple></originaltripleset>"
      "<modifiedtripleset><mtriple>A | b | C</mtriple></modifiedtripleset>"
      "<lex comment=\"good\" lid=\"Id1\">\r\n  A b C &amp; more.\r\n</lex></entry></entries></benchmark>\r\n",
      "orig.xml");
  REQUIRE(ds.size() == 1);
  CHECK(ds.examples[0].line == 3);
  CHECK(ds.examples[0].lexes.at(0).text == "A b C & more.");
}

TEST_CASE("webnlg: malformed XML names the file and line") {
  CHECK_THROWS_WITH_AS(read_webnlg(kBad / "webnlg_truncated.xml"),
                       Contains("webnlg_truncated.xml:51: XML error XML_ERROR_PARSING"), FormatError);
  CHECK_THROWS_WITH_AS(
      read_webnlg(kBad / "webnlg_bad_triple.xml"),
      Contains("webnlg_bad_triple.xml:9: <mtriple> 'Aarhus | leaderName' is not 'subject | predicate | object'"),
      FormatError);
  const std::string entry =
      "<benchmark><entries>\n<entry category=\"C\" eid=\"Id1\" size=\"2\"><modifiedtripleset>"
      "<mtriple>a | b | c</mtriple></modifiedtripleset></entry></entries></benchmark>";
  CHECK_THROWS_WITH_AS(parse_webnlg(entry, "s.xml"),
                       Contains("s.xml:2: <entry> size is 2 but it has 1 modified triples"), FormatError);
  CHECK_THROWS_WITH_AS(
      parse_webnlg("<benchmark><entries>\n\n<entry eid=\"Id1\" size=\"1\"/></entries></benchmark>", "a.xml"),
      Contains("a.xml:3: <entry> has no attribute category"), FormatError);
  CHECK_THROWS_AS(read_webnlg_dir(kWeb / "absent"), IoError);
  CHECK_THROWS_WITH_AS(read_webnlg_dir(kWeb / "../glue"), Contains("no .xml file under"), IoError);
  CHECK_THROWS_WITH_AS(parse_webnlg("<root/>", "r.xml"), Contains("r.xml:1: the root element is not <benchmark>"),
                       FormatError);
  CHECK_THROWS_WITH_AS(parse_webnlg("<benchmark><entries><entry category=\"C\" eid=\"1\" size=\"1\">\n<lex>", "t.xml"),
                       Contains("t.xml:2: XML error"), FormatError);
}

}  // namespace test_tasks_data_webnlg

#endif  // DEEPPROMPT_TEST_TINYXML2
