#pragma once
// SuperGLUE JSONL files (one JSON object per line, as in the official task archives) for RTE, CB,
// BoolQ, COPA, WiC and WSC:
//
//   auto rte = data::read_superglue<data::RteExample>(dir / "val.jsonl");
//
// Each example type names the official fields it reads; other fields ("version"...) are ignored.
// "label" is optional (the test files have none). "idx" is optional too; when absent (BoolQ's
// original release) the example's idx is its 0-based record number. BoolQ also reads its original
// release ({question, title, answer, passage}).
//
// A line that is not valid JSON, a missing or mistyped field, a label outside the task's set, or
// a span outside its sentence (WiC, WSC) throws FormatError "SOURCE:LINE: FIELD: ..."; with
// skip_malformed such a record is skipped and counted (stats.reasons "invalid JSON"/"bad record").
// WSC's span texts do not always match the words at their index in the official files (e.g.
// span "app" on the word "app's"): such records are kept and counted as the warning
// "span text differs from the text at its index".
#include <cctype>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "json_fields.hpp"

namespace deepprompt::data {

namespace detail {
/// Index of the string field `field` in `labels`; nullopt when the field is absent.
inline std::optional<int> string_label(const JsonRecord& r, std::string_view field,
                                       std::span<const std::string_view> labels) {
  const auto value = r.optional_string(field);
  if (!value) return std::nullopt;
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == *value) return static_cast<int>(i);
  std::string allowed;
  for (auto l : labels) allowed += cat(allowed.empty() ? "" : ", ", l);
  r.fail(field, cat(quote(*value), " is not one of ", allowed));
}
inline std::int64_t idx_or(const JsonRecord& r, std::size_t ordinal) {
  return r.optional_integer("idx").value_or(static_cast<std::int64_t>(ordinal));
}
}  // namespace detail

/// SuperGLUE RTE: does the premise entail the hypothesis?
struct RteExample {
  static constexpr std::string_view kTask = "RTE";
  static constexpr std::string_view kLabels[] = {"entailment", "not_entailment"};
  std::int64_t idx = 0;
  std::string premise, hypothesis;
  std::optional<int> label;  // index into kLabels
  std::size_t line = 0;
  static RteExample from_json(const detail::JsonRecord& r, std::size_t ordinal, ReadStats&) {
    return {detail::idx_or(r, ordinal), r.string("premise"), r.string("hypothesis"),
            detail::string_label(r, "label", kLabels)};
  }
};

/// SuperGLUE CB (CommitmentBank): three-way entailment.
struct CbExample {
  static constexpr std::string_view kTask = "CB";
  static constexpr std::string_view kLabels[] = {"entailment", "contradiction", "neutral"};
  std::int64_t idx = 0;
  std::string premise, hypothesis;
  std::optional<int> label;  // index into kLabels
  std::size_t line = 0;
  static CbExample from_json(const detail::JsonRecord& r, std::size_t ordinal, ReadStats&) {
    return {detail::idx_or(r, ordinal), r.string("premise"), r.string("hypothesis"),
            detail::string_label(r, "label", kLabels)};
  }
};

/// SuperGLUE BoolQ: a yes/no question about a passage.
struct BoolqExample {
  static constexpr std::string_view kTask = "BoolQ";
  std::int64_t idx = 0;
  std::string question, passage;
  std::string title;          // original release only (SuperGLUE's passage starts with it)
  std::optional<bool> label;  // SuperGLUE "label", or the original release's "answer"
  std::size_t line = 0;
  static BoolqExample from_json(const detail::JsonRecord& r, std::size_t ordinal, ReadStats&) {
    auto label = r.optional_boolean("label");
    if (!label) label = r.optional_boolean("answer");
    return {detail::idx_or(r, ordinal), r.string("question"), r.string("passage"),
            r.optional_string("title").value_or(""), label};
  }
};

/// SuperGLUE COPA: which choice is the cause (or effect) of the premise?
struct CopaExample {
  static constexpr std::string_view kTask = "COPA";
  std::int64_t idx = 0;
  std::string premise, choice1, choice2;
  std::string question;      // "cause" or "effect"
  std::optional<int> label;  // 0: choice1, 1: choice2
  std::size_t line = 0;
  static CopaExample from_json(const detail::JsonRecord& r, std::size_t ordinal, ReadStats&) {
    CopaExample ex{detail::idx_or(r, ordinal), r.string("premise"),  r.string("choice1"),
                   r.string("choice2"),        r.string("question"), std::nullopt};
    if (ex.question != "cause" && ex.question != "effect")
      r.fail("question", detail::cat(detail::quote(ex.question), " is neither cause nor effect"));
    if (auto l = r.optional_integer("label")) {
      if (*l != 0 && *l != 1) r.fail("label", detail::cat(*l, " is neither 0 nor 1"));
      ex.label = static_cast<int>(*l);
    }
    return ex;
  }
};

/// SuperGLUE WiC: is `word` used in the same sense in both sentences? The spans [start, end)
/// are code point offsets (Python str indices) into sentence1 and sentence2.
struct WicExample {
  static constexpr std::string_view kTask = "WiC";
  std::int64_t idx = 0;
  std::string word, sentence1, sentence2;
  std::int64_t start1 = 0, end1 = 0, start2 = 0, end2 = 0;
  std::optional<bool> label;
  std::size_t line = 0;
  /// The text of the spans (the word as it occurs in each sentence).
  std::string_view span1() const { return span(sentence1, start1, end1); }
  std::string_view span2() const { return span(sentence2, start2, end2); }

  static WicExample from_json(const detail::JsonRecord& r, std::size_t ordinal, ReadStats&) {
    WicExample ex{detail::idx_or(r, ordinal), r.string("word"),    r.string("sentence1"),
                  r.string("sentence2"),      r.integer("start1"), r.integer("end1"),
                  r.integer("start2"),        r.integer("end2"),   r.optional_boolean("label")};
    check_span(r, "start1", "end1", ex.start1, ex.end1, ex.sentence1);
    check_span(r, "start2", "end2", ex.start2, ex.end2, ex.sentence2);
    return ex;
  }

 private:
  static std::string_view span(std::string_view s, std::int64_t b, std::int64_t e) {
    const auto bb = codepoint_to_byte(s, static_cast<std::size_t>(b));
    return s.substr(bb, codepoint_to_byte(s, static_cast<std::size_t>(e)) - bb);
  }
  static void check_span(const detail::JsonRecord& r, std::string_view fs, std::string_view fe, std::int64_t b,
                         std::int64_t e, std::string_view sentence) {
    const auto n = static_cast<std::int64_t>(codepoint_count(sentence));
    if (b < 0 || b > e || e > n)
      r.fail(fe, detail::cat("span [", fs, ", ", fe, ") = [", b, ", ", e, ") is not inside its sentence (", n,
                             " code points)"));
  }
};

/// SuperGLUE WSC: does the pronoun span2 refer to span1? Span indices count the words of
/// `text` split on whitespace.
struct WscExample {
  static constexpr std::string_view kTask = "WSC";
  std::int64_t idx = 0;
  std::string text;
  std::string span1_text;
  std::int64_t span1_index = 0;
  std::string span2_text;
  std::int64_t span2_index = 0;
  std::optional<bool> label;
  std::size_t line = 0;

  static WscExample from_json(const detail::JsonRecord& r, std::size_t ordinal, ReadStats& stats) {
    const auto target = r.object("target");
    WscExample ex{detail::idx_or(r, ordinal),  r.string("text"),
                  target.string("span1_text"), target.integer("span1_index"),
                  target.string("span2_text"), target.integer("span2_index"),
                  r.optional_boolean("label")};
    const auto words = detail::split_ws(ex.text);
    check(r, target, stats, words, "span1", ex.span1_text, ex.span1_index);
    check(r, target, stats, words, "span2", ex.span2_text, ex.span2_index);
    return ex;
  }

 private:
  static std::string key(std::string_view w) {  // lower case, ASCII punctuation trimmed
    std::string s;
    for (char c : w) s += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    const auto punct = [](char c) { return c > 0 && c < 0x7f && !std::isalnum(static_cast<unsigned char>(c)); };
    while (!s.empty() && punct(s.back())) s.pop_back();
    std::size_t b = 0;
    while (b < s.size() && punct(s[b])) ++b;
    return s.substr(b);
  }
  static void check(const detail::JsonRecord& r, const detail::JsonRecord& target, ReadStats& stats,
                    const std::vector<std::string_view>& words, std::string_view span, const std::string& text,
                    std::int64_t index) {
    using detail::cat;
    const auto index_field = cat(span, "_index");
    if (index < 0 || index >= static_cast<std::int64_t>(words.size()))
      target.fail(index_field, cat(index, " is not a word index of the text (", words.size(), " words)"));
    const auto first = detail::split_ws(text);
    if (first.empty()) target.fail(cat(span, "_text"), "empty");
    if (!key(words[static_cast<std::size_t>(index)]).starts_with(key(first[0])))
      stats.warn("span text differs from the text at its index",
                 cat(r.where(), ": ", target.field_path(cat(span, "_text")), " ", detail::quote(text), " but word ",
                     index, " is ", detail::quote(words[static_cast<std::size_t>(index)])));
  }
};

struct JsonlOptions {
  bool skip_malformed = false;  // skip (and count) malformed records instead of throwing
};

/// Reads a JSONL text of `Example`s (RteExample, CbExample, BoolqExample, CopaExample,
/// WicExample, WscExample); `source` names it in messages. Blank lines at the end are ignored;
/// a blank line elsewhere is a malformed record.
template <class Example>
Dataset<Example> parse_superglue(std::string_view text, std::string_view source = "<string>",
                                 const JsonlOptions& options = {}) {
  Dataset<Example> ds;
  ds.source = std::string(source);
  detail::Lines lines(text);
  std::string_view line;
  std::size_t ordinal = 0;
  while (lines.next(line)) {
    const std::size_t n = lines.number();
    const std::size_t record = ordinal++;
    if (detail::is_blank(line)) {
      std::string msg = detail::cat(source, ":", n, ": blank line inside the file");
      if (!options.skip_malformed) throw FormatError(msg);
      ds.stats.skip("blank line", std::move(msg));
      continue;
    }
    bool json_ok = false;
    try {
      const nlohmann::json j = detail::parse_json(line, source, n);
      json_ok = true;
      Example ex = Example::from_json(detail::JsonRecord(j, source, n, ""), record, ds.stats);
      ex.line = n;
      ds.examples.push_back(std::move(ex));
    } catch (const FormatError& e) {
      if (!options.skip_malformed) throw;
      ds.stats.skip(json_ok ? "bad record" : "invalid JSON", e.what());
    }
  }
  ds.stats.read = ds.examples.size();
  return ds;
}

/// Reads a SuperGLUE JSONL file (IoError when it cannot be read).
template <class Example>
Dataset<Example> read_superglue(const std::filesystem::path& path, const JsonlOptions& options = {}) {
  return parse_superglue<Example>(read_text_file(path), path.string(), options);
}

/// Reads a SuperGLUE JSONL stream; `source` names it in messages.
template <class Example>
Dataset<Example> read_superglue(std::istream& in, std::string_view source, const JsonlOptions& options = {}) {
  return parse_superglue<Example>(detail::read_stream(in, source), source, options);
}

}  // namespace deepprompt::data
