#pragma once
// WebNLG XML (the 2017 challenge data, original or "enriched" v1.6 release):
//   <benchmark><entries><entry category="Airport" eid="Id1" size="2">
//     <originaltripleset><otriple>subj | pred | obj</otriple>...</originaltripleset>
//     <modifiedtripleset><mtriple>subj | pred | obj</mtriple>...</modifiedtripleset>
//     <lex comment="good" lid="Id1"><text>...</text>...</lex>...     (v1.6: a <text> child)
//     <lex comment="good" lid="Id1">...</lex>                        (original: the text itself)
// The modified triples are the input of data-to-text; the lex texts are its references. Other
// children (sortedtripleset, references, template, entitymap) are ignored.
//
// Parsing uses tinyxml2 (Debian libtinyxml2-dev; link -ltinyxml2): only this header needs it.
//
// Errors: XML that does not parse (truncated, mismatched tags) throws FormatError
// "SOURCE:LINE: XML error: ..."; a missing attribute, a size that is not the number of modified
// triples, or a triple without exactly three " | "-separated parts throws "SOURCE:LINE: ...".
// A lex with an empty text (dev has six) is kept and counted as the warning "empty lex text";
// webnlg_pairs() leaves it out.
//
// Linearisation for T5 (linearize): "<H> subject <R> predicate <T> object" for each triple,
// joined by spaces, as in Ribeiro et al. 2021 ("Investigating Pretrained Language Models for
// Graph-to-Text Generation", github.com/UKPLab/plms-graph2text, webnlg/data/
// generate_input_webnlg.py). With `readable` (default) the strings are cleaned as there:
// entities lose ( ) and ", their ',' and '_' become spaces; predicates lose ( ), are split at
// camelCase boundaries and at '_' ("cityServed" -> "city Served"); whitespace is collapsed.
// Unlike that script, non-ASCII letters are kept (no unidecode). readable = false keeps the
// DBpedia strings as they are ("<H> Abilene,_Texas <R> isPartOf <T> Texas").
#include <tinyxml2.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace deepprompt::data {

struct Triple {
  std::string subject, predicate, object;
};

struct WebnlgLex {
  std::string lid;      // "Id1"
  std::string comment;  // "good", "toFix", "bad"
  std::string text;     // the reference text, whitespace-trimmed; may be empty
};

struct WebnlgEntry {
  std::string category;                       // "Airport"
  std::string eid;                            // "Id1" (unique within a file, not across files)
  int size = 0;                               // number of triples
  std::vector<std::vector<Triple>> original;  // each <originaltripleset> (one in the 2017 data)
  std::vector<Triple> modified;               // <modifiedtripleset>: the data-to-text input
  std::vector<WebnlgLex> lexes;
  std::string file;      // the source it came from
  std::size_t line = 0;  // line of <entry>
};
using WebnlgDataset = Dataset<WebnlgEntry>;

struct LinearizeOptions {
  bool readable = true;  // clean the strings as Ribeiro et al. do (see the file comment)
};

namespace detail {

[[noreturn]] inline void xml_fail(std::string_view source, const tinyxml2::XMLNode* node, std::string_view what) {
  fail_at(source, node ? static_cast<std::size_t>(node->GetLineNum()) : 0, what);
}

inline std::string required_attribute(std::string_view source, const tinyxml2::XMLElement* e, const char* name) {
  const char* v = e->Attribute(name);
  if (!v) xml_fail(source, e, cat("<", e->Name(), "> has no attribute ", name));
  return v;
}

inline Triple parse_triple(std::string_view source, const tinyxml2::XMLElement* e) {
  const char* raw = e->GetText();
  const std::string_view t = trim(raw ? raw : "");
  std::vector<std::string_view> parts;
  std::size_t b = 0;
  for (auto p = t.find(" | "); p != std::string_view::npos; p = t.find(" | ", b)) {
    parts.push_back(t.substr(b, p - b));
    b = p + 3;
  }
  parts.push_back(t.substr(b));
  if (parts.size() != 3)
    xml_fail(source, e, cat("<", e->Name(), "> ", quote(t), " is not 'subject | predicate | object'"));
  return {std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

inline std::vector<Triple> parse_triples(std::string_view source, const tinyxml2::XMLElement* set, const char* child) {
  std::vector<Triple> out;
  for (auto* t = set->FirstChildElement(child); t; t = t->NextSiblingElement(child))
    out.push_back(parse_triple(source, t));
  return out;
}

inline WebnlgEntry parse_entry(std::string_view source, const tinyxml2::XMLElement* e, ReadStats& stats) {
  WebnlgEntry entry;
  entry.file = std::string(source);
  entry.line = static_cast<std::size_t>(e->GetLineNum());
  entry.category = required_attribute(source, e, "category");
  entry.eid = required_attribute(source, e, "eid");
  const std::string size = required_attribute(source, e, "size");
  const auto r = std::from_chars(size.data(), size.data() + size.size(), entry.size);
  if (r.ec != std::errc() || r.ptr != size.data() + size.size())
    xml_fail(source, e, cat("<entry> size ", quote(size), " is not an integer"));
  for (auto* s = e->FirstChildElement("originaltripleset"); s; s = s->NextSiblingElement("originaltripleset"))
    entry.original.push_back(parse_triples(source, s, "otriple"));
  const auto* mset = e->FirstChildElement("modifiedtripleset");
  if (!mset) xml_fail(source, e, "<entry> has no <modifiedtripleset>");
  entry.modified = parse_triples(source, mset, "mtriple");
  if (entry.modified.size() != static_cast<std::size_t>(entry.size))
    xml_fail(source, e,
             cat("<entry> size is ", entry.size, " but it has ", entry.modified.size(), " modified triples"));
  for (auto* l = e->FirstChildElement("lex"); l; l = l->NextSiblingElement("lex")) {
    WebnlgLex lex;
    lex.lid = l->Attribute("lid") ? l->Attribute("lid") : "";
    lex.comment = l->Attribute("comment") ? l->Attribute("comment") : "";
    const auto* text = l->FirstChildElement("text");
    const char* raw = text ? text->GetText() : l->GetText();
    lex.text = std::string(trim(raw ? raw : ""));
    if (lex.text.empty())
      stats.warn("empty lex text",
                 cat(source, ":", l->GetLineNum(), ": entry ", entry.eid, " lex ", lex.lid, " has no text"));
    entry.lexes.push_back(std::move(lex));
  }
  return entry;
}

// Ribeiro et al.'s cleaning: entities lose ( ) ", ',' and '_' become spaces; predicates lose
// ( ) and are split at camelCase and '_'. Whitespace is collapsed.
inline std::string collapse_spaces(std::string_view s) {
  std::string out;
  for (const auto w : split_ws(s)) out += cat(out.empty() ? "" : " ", w);
  return out;
}
inline std::string readable_entity(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '(' || c == ')' || c == '"') continue;
    out += (c == ',' || c == '_') ? ' ' : c;
  }
  return collapse_spaces(out);
}
inline std::string readable_predicate(std::string_view s) {
  std::string out;
  const auto up = [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; };
  const auto low = [](char c) { return std::islower(static_cast<unsigned char>(c)) != 0; };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '(' || c == ')') continue;
    if (i > 0 && up(c) && (low(s[i - 1]) || (up(s[i - 1]) && i + 1 < s.size() && low(s[i + 1])))) out += ' ';
    out += c == '_' ? ' ' : c;
  }
  return collapse_spaces(out);
}

}  // namespace detail

/// Reads a WebNLG XML text; `source` names it in messages. stats.read counts entries.
inline WebnlgDataset parse_webnlg(std::string_view text, std::string_view source = "<string>") {
  using detail::cat;
  WebnlgDataset ds;
  ds.source = std::string(source);
  text = detail::strip_bom(text);
  tinyxml2::XMLDocument doc;
  if (doc.Parse(text.data(), text.size()) != tinyxml2::XML_SUCCESS) {
    // ErrorStr() is "Error=NAME ErrorID=.. Line number=N[: details]": keep the name and details.
    const std::string_view full = doc.ErrorStr() ? doc.ErrorStr() : "";
    const auto details = full.find(": ", full.find("Line number="));
    detail::fail_at(
        source, static_cast<std::size_t>(std::max(doc.ErrorLineNum(), 1)),
        cat("XML error ", doc.ErrorName(), details == std::string_view::npos ? "" : full.substr(details),
            doc.ErrorID() == tinyxml2::XML_ERROR_PARSING ? " (an element is not closed: truncated file?)" : ""));
  }
  const auto* root = doc.RootElement();
  if (!root || std::string_view(root->Name()) != "benchmark")
    detail::xml_fail(source, root, "the root element is not <benchmark>");
  const auto* entries = root->FirstChildElement("entries");
  if (!entries) detail::xml_fail(source, root, "<benchmark> has no <entries>");
  for (auto* e = entries->FirstChildElement("entry"); e; e = e->NextSiblingElement("entry"))
    ds.examples.push_back(detail::parse_entry(source, e, ds.stats));
  ds.stats.read = ds.examples.size();
  return ds;
}

/// Reads a WebNLG XML file (IoError when it cannot be read).
inline WebnlgDataset read_webnlg(const std::filesystem::path& path) {
  return parse_webnlg(read_text_file(path), path.string());
}

/// Reads every *.xml file under `dir` (e.g. v1.6_en/dev with its 1triples..7triples folders), in
/// the order of their sorted paths, into one dataset (source: the folder). IoError when the
/// folder cannot be listed or holds no .xml file.
inline WebnlgDataset read_webnlg_dir(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); !ec && it != decltype(it){}; it.increment(ec))
    if (it->is_regular_file() && it->path().extension() == ".xml") files.push_back(it->path());
  if (ec) throw IoError(detail::cat("cannot list '", dir.string(), "': ", ec.message()));
  if (files.empty()) throw IoError(detail::cat("no .xml file under '", dir.string(), "'"));
  std::sort(files.begin(), files.end());
  WebnlgDataset all;
  all.source = dir.string();
  for (const auto& f : files) {
    auto ds = read_webnlg(f);
    for (auto& e : ds.examples) all.examples.push_back(std::move(e));
    for (const auto& [k, n] : ds.stats.warnings) all.stats.warnings[k] += n;
    for (auto& note : ds.stats.notes)
      if (all.stats.notes.size() < ReadStats::kMaxNotes) all.stats.notes.push_back(std::move(note));
  }
  all.stats.read = all.examples.size();
  return all;
}

/// "<H> s1 <R> p1 <T> o1 <H> s2 ..." (see the file comment for `readable`).
inline std::string linearize(std::span<const Triple> triples, const LinearizeOptions& options = {}) {
  std::string out;
  for (const auto& t : triples) {
    if (!out.empty()) out += ' ';
    if (options.readable)
      out += detail::cat("<H> ", detail::readable_entity(t.subject), " <R> ", detail::readable_predicate(t.predicate),
                         " <T> ", detail::readable_entity(t.object));
    else
      out += detail::cat("<H> ", t.subject, " <R> ", t.predicate, " <T> ", t.object);
  }
  return out;
}

/// One (linearised modified triples, reference text) pair per lex with a non-empty text.
struct WebnlgPair {
  std::string source;
  std::string target;
  std::size_t entry = 0;  // index into the dataset's examples
};

inline std::vector<WebnlgPair> webnlg_pairs(const WebnlgDataset& ds, const LinearizeOptions& options = {}) {
  std::vector<WebnlgPair> out;
  for (std::size_t i = 0; i < ds.examples.size(); ++i) {
    const std::string src = linearize(ds.examples[i].modified, options);
    for (const auto& lex : ds.examples[i].lexes)
      if (!lex.text.empty()) out.push_back({src, lex.text, i});
  }
  return out;
}

}  // namespace deepprompt::data
