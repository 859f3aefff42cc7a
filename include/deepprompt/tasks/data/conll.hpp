#pragma once
// CoNLL-2003 style column files for NER: one token per line, columns separated by spaces or
// tabs, the NER tag in the last column, a blank line between sentences, and "-DOCSTART-" lines
// between documents. Two layouts are common and both read:
//   - the original release: "token POS chunk NER", IOB1 tags (I-X starts an entity; B-X only
//     between two adjacent entities of the same type), -DOCSTART- lines;
//   - "token<TAB>tag" with IOB2 tags (B-X starts every entity), often without -DOCSTART-.
// Every token line of a file must have the column count of its first token line. A -DOCSTART-
// line ends the sentence before it and counts a document; where it sits does not matter (some
// copies of the original files have the first one at the end of the file instead of the start).
// With to_iob2, IOB1 tags are converted on read (I-X becomes B-X when it follows O or another
// type); the conversion leaves IOB2 tags unchanged.
//
// A token line with another column count, or a tag that is not O, B-TYPE or I-TYPE, throws
// FormatError "SOURCE:LINE: ..."; with skip_malformed the whole sentence holding it is skipped
// and counted (stats.reasons).
#include <algorithm>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace deepprompt::data {

/// One sentence: its tokens and their tags (and, in the 4-column layout, POS and chunk tags).
struct ConllSentence {
  std::vector<std::string> tokens;
  std::vector<std::string> tags;   // the last column (NER)
  std::vector<std::string> pos;    // column 2 when a file has 3 or more columns, else empty
  std::vector<std::string> chunk;  // column 3 when a file has 4 or more columns, else empty
  std::size_t line = 0;            // line of the first token
  std::size_t document = 0;        // -DOCSTART- lines seen before the sentence
};

/// The sentences of a file (`examples`, one per sentence) and its counts.
struct ConllDataset : Dataset<ConllSentence> {
  std::size_t documents = 0;  // -DOCSTART- lines
  std::size_t tokens = 0;     // tokens of the sentences kept
  std::size_t columns = 0;    // columns per token line (0 for a file without tokens)
};

struct ConllOptions {
  bool to_iob2 = false;         // convert IOB1 tags to IOB2 while reading
  bool skip_malformed = false;  // skip (and count) sentences with a malformed line instead of throwing
};

/// The CoNLL-2003 NER labels in IOB2, in the order of Hugging Face's conll2003 dataset.
inline constexpr std::string_view kConll2003Labels[] = {"O",     "B-PER", "I-PER",  "B-ORG", "I-ORG",
                                                        "B-LOC", "I-LOC", "B-MISC", "I-MISC"};

/// True for "O", "B-TYPE" and "I-TYPE" (TYPE non-empty).
inline bool is_iob_tag(std::string_view tag) {
  return tag == "O" || (tag.size() > 2 && (tag[0] == 'B' || tag[0] == 'I') && tag[1] == '-');
}

/// Converts one sentence's IOB1 tags to IOB2 in place (IOB2 input is left unchanged).
inline void iob1_to_iob2(std::vector<std::string>& tags) {
  std::string prev = "O";
  for (auto& t : tags) {
    if (t.starts_with("I-") && (prev == "O" || std::string_view(prev).substr(2) != std::string_view(t).substr(2)))
      t[0] = 'B';
    prev = t;
  }
}

/// The label list of the tags in `sentences`: "O" first, then for each entity type (sorted)
/// B-TYPE and I-TYPE (both, even if one never occurs).
inline std::vector<std::string> conll_labels(std::span<const ConllSentence> sentences) {
  std::set<std::string> types;
  for (const auto& s : sentences)
    for (const auto& t : s.tags)
      if (t != "O") types.insert(t.substr(2));
  std::vector<std::string> labels{"O"};
  for (const auto& type : types) {
    labels.push_back("B-" + type);
    labels.push_back("I-" + type);
  }
  return labels;
}

/// The index in `labels` of each tag of `s`; FormatError naming the sentence's line for a tag
/// not in `labels`.
template <class Label>
std::vector<int> tag_ids(const ConllSentence& s, std::span<const Label> labels) {
  std::vector<int> ids;
  ids.reserve(s.tags.size());
  for (std::size_t i = 0; i < s.tags.size(); ++i) {
    const auto it = std::find(labels.begin(), labels.end(), s.tags[i]);
    if (it == labels.end())
      throw FormatError(detail::cat("tag ", detail::quote(s.tags[i]), " of token ", i, " of the sentence at line ",
                                    s.line, " is not in the label list"));
    ids.push_back(static_cast<int>(it - labels.begin()));
  }
  return ids;
}

/// Reads a CoNLL column text; `source` names it in messages. Throws FormatError (see above).
inline ConllDataset parse_conll(std::string_view text, std::string_view source = "<string>",
                                const ConllOptions& options = {}) {
  using detail::cat;
  ConllDataset ds;
  ds.source = std::string(source);
  ConllSentence cur;
  std::string error;  // the first malformed line of `cur` (skip_malformed)
  std::string reason;
  auto flush = [&] {
    if (!error.empty()) {
      ds.stats.skip(reason, std::move(error));
      error.clear();
    } else if (!cur.tokens.empty()) {
      if (options.to_iob2) iob1_to_iob2(cur.tags);
      ds.tokens += cur.tokens.size();
      ds.examples.push_back(std::move(cur));
    }
    cur = ConllSentence{};
  };
  detail::Lines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t n = lines.number();
    if (detail::is_blank(line)) {
      flush();
      continue;
    }
    const auto fields = detail::split_ws(line);
    if (fields[0] == "-DOCSTART-") {
      flush();
      ++ds.documents;
      continue;
    }
    auto bad = [&](std::string_view why, std::string what) {
      std::string msg = cat(source, ":", n, ": ", what);
      if (!options.skip_malformed) throw FormatError(msg);
      if (error.empty()) {
        error = std::move(msg);
        reason = why;
      }
    };
    if (cur.tokens.empty() && error.empty()) {
      cur.line = n;
      cur.document = ds.documents;
    }
    if (ds.columns == 0 && fields.size() < 2) {
      bad("wrong column count", "expected at least 2 columns (token and tag), got 1");
      continue;
    }
    if (ds.columns == 0) ds.columns = fields.size();
    if (fields.size() != ds.columns) {
      bad("wrong column count", cat("expected ", ds.columns, " columns, got ", fields.size()));
      continue;
    }
    if (!is_iob_tag(fields.back())) {
      bad("bad tag", cat("tag ", detail::quote(fields.back()), " is not O, B-TYPE or I-TYPE"));
      continue;
    }
    cur.tokens.emplace_back(fields[0]);
    cur.tags.emplace_back(fields.back());
    if (ds.columns >= 3) cur.pos.emplace_back(fields[1]);
    if (ds.columns >= 4) cur.chunk.emplace_back(fields[2]);
  }
  flush();
  ds.stats.read = ds.examples.size();
  return ds;
}

/// Reads a CoNLL column file (IoError when it cannot be read).
inline ConllDataset read_conll(const std::filesystem::path& path, const ConllOptions& options = {}) {
  return parse_conll(read_text_file(path), path.string(), options);
}

/// Reads a CoNLL column stream; `source` names it in messages.
inline ConllDataset read_conll(std::istream& in, std::string_view source, const ConllOptions& options = {}) {
  return parse_conll(detail::read_stream(in, source), source, options);
}

}  // namespace deepprompt::data
