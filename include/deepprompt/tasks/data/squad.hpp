#pragma once
// SQuAD v1.1 / v2.0 JSON: {"version", "data": [{"title", "paragraphs": [{"context", "qas":
// [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}.
// v2.0's plausible_answers are ignored; v1.1 files have no is_impossible (false).
//
// Offsets: answer_start counts Unicode code points of the context (Python str indices), not
// bytes. Each answer whose answer_start points to its text also gets byte_start, the byte offset
// of the text in the UTF-8 context (context.substr(*byte_start, text.size()) == text).
// Checking them: an answer_start outside the context (negative, or the text would run past the
// end) is malformed. One inside the context that does not point to the answer text is counted,
// not fatal, by default (OffsetCheck::count: the warning "answer_start does not point to the
// answer text", byte_start empty), because rebuilt copies of SQuAD carry estimated offsets;
// OffsetCheck::fail makes it an error, OffsetCheck::relocate moves it to the occurrence of the
// text nearest to it (or the first, when answer_start is absent) and counts that.
//
// A malformed record (missing or mistyped field, answer_start outside the context, an
// impossible question with answers) throws FormatError "SOURCE: data[i].paragraphs[j].qas[k]...:
// what"; invalid JSON throws "SOURCE:LINE: invalid JSON: ...". Kept oddities are counted in
// stats.warnings: answerable questions without answers, answers without answer_start, duplicate ids.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "json_fields.hpp"

namespace deepprompt::data {

struct SquadAnswer {
  std::string text;
  std::optional<std::int64_t> answer_start;  // code points into the context, as in the file
  std::optional<std::size_t> byte_start;     // set when answer_start points to `text` (see above)
};

struct SquadQuestion {
  std::string id;
  std::string question;
  std::vector<SquadAnswer> answers;  // empty for impossible (v2.0) questions
  bool is_impossible = false;
};

struct SquadParagraph {
  std::string context;
  std::vector<SquadQuestion> qas;
};

struct SquadArticle {
  std::string title;
  std::vector<SquadParagraph> paragraphs;
};

/// A SQuAD file, nested as in the JSON; stats.read counts questions.
struct SquadDataset {
  std::string source;
  std::string version;  // "1.1", "v2.0"... ("" when absent)
  std::vector<SquadArticle> articles;
  ReadStats stats;
};

/// One question with its paragraph, for the QA task (see squad_examples).
struct SquadExample {
  std::string id, title, context, question;
  std::vector<SquadAnswer> answers;
  bool is_impossible = false;
};

enum class OffsetCheck { count, fail, relocate };

struct SquadOptions {
  OffsetCheck offsets = OffsetCheck::count;
};

namespace detail {

inline void squad_answer_offsets(const JsonRecord& a, SquadAnswer& ans, std::string_view context,
                                 const std::vector<std::size_t>& cp_to_byte, const SquadOptions& options,
                                 ReadStats& stats) {
  const std::int64_t n_cp = static_cast<std::int64_t>(cp_to_byte.size()) - 1;
  if (ans.answer_start) {
    const std::int64_t s = *ans.answer_start;
    const auto len = static_cast<std::int64_t>(codepoint_count(ans.text));
    if (s < 0 || s + len > n_cp)
      a.fail("answer_start",
             cat(s, " puts the answer (", len, " code points) outside the context (", n_cp, " code points)"));
    const std::size_t b = cp_to_byte[static_cast<std::size_t>(s)];
    if (context.substr(b, ans.text.size()) == ans.text) {
      ans.byte_start = b;
      return;
    }
    const std::string note = cat(a.where(), ".answer_start: ", s, " points to ",
                                 quote(context.substr(b, ans.text.size())), ", not to ", quote(ans.text));
    if (options.offsets == OffsetCheck::fail) throw FormatError(note);
    if (options.offsets == OffsetCheck::count) {
      stats.warn("answer_start does not point to the answer text", note);
      return;
    }
  } else {
    stats.warn("answer_start missing", cat(a.where(), ": no answer_start"));
    if (options.offsets != OffsetCheck::relocate) return;
  }
  // Relocate: the occurrence nearest to answer_start (the first one when it is absent).
  std::optional<std::size_t> best;
  const std::int64_t want = ans.answer_start.value_or(0);
  for (auto p = context.find(ans.text); p != std::string_view::npos && !ans.text.empty();
       p = context.find(ans.text, p + 1)) {
    const auto d = std::abs(static_cast<std::int64_t>(byte_to_codepoint(context, p)) - want);
    if (!best || d < std::abs(static_cast<std::int64_t>(byte_to_codepoint(context, *best)) - want)) best = p;
  }
  if (!best) {
    stats.warn("answer text not in the context", cat(a.where(), ": ", quote(ans.text), " does not occur"));
    return;
  }
  ans.byte_start = *best;
  ans.answer_start = static_cast<std::int64_t>(byte_to_codepoint(context, *best));
  stats.warn("answer_start relocated", cat(a.where(), ": answer_start set to ", *ans.answer_start));
}

}  // namespace detail

/// Reads a SQuAD JSON text; `source` names it in messages. Throws FormatError (see above).
inline SquadDataset parse_squad(std::string_view text, std::string_view source = "<string>",
                                const SquadOptions& options = {}) {
  using detail::cat;
  using detail::JsonRecord;
  SquadDataset ds;
  ds.source = std::string(source);
  const nlohmann::json doc = detail::parse_json(detail::strip_bom(text), source);
  const JsonRecord top(doc, source, 0, "");
  ds.version = top.optional_string("version").value_or("");
  if (!top.find("data")) top.fail("data", "missing");
  std::unordered_set<std::string> ids;
  for (std::size_t i = 0; i < top.array("data").size(); ++i) {
    const JsonRecord art = top.element("data", i);
    SquadArticle& article = ds.articles.emplace_back();
    article.title = art.optional_string("title").value_or("");
    for (std::size_t j = 0; j < art.array("paragraphs").size(); ++j) {
      const JsonRecord par = art.element("paragraphs", j);
      SquadParagraph& paragraph = article.paragraphs.emplace_back();
      paragraph.context = par.string("context");
      std::vector<std::size_t> cp_to_byte;  // byte offset of every code point, and the end
      for (std::size_t b = 0; b < paragraph.context.size(); ++b)
        if ((static_cast<unsigned char>(paragraph.context[b]) & 0xC0) != 0x80) cp_to_byte.push_back(b);
      cp_to_byte.push_back(paragraph.context.size());
      for (std::size_t k = 0; k < par.array("qas").size(); ++k) {
        const JsonRecord qa = par.element("qas", k);
        SquadQuestion& q = paragraph.qas.emplace_back();
        q.id = qa.string("id");
        q.question = qa.string("question");
        q.is_impossible = qa.optional_boolean("is_impossible").value_or(false);
        if (!ids.insert(q.id).second) ds.stats.warn("duplicate question id", cat(qa.where(), ": id ", q.id));
        const std::size_t n_answers = qa.array("answers").size();
        if (q.is_impossible && n_answers > 0)
          qa.fail("answers", cat("an impossible question (id ", q.id, ") has ", n_answers, " answers"));
        if (!q.is_impossible && n_answers == 0)
          ds.stats.warn("answerable question without answers", cat(qa.where(), ": id ", q.id));
        for (std::size_t l = 0; l < n_answers; ++l) {
          const JsonRecord a = qa.element("answers", l);
          SquadAnswer& ans = q.answers.emplace_back();
          ans.text = a.string("text");
          ans.answer_start = a.optional_integer("answer_start");
          detail::squad_answer_offsets(a, ans, paragraph.context, cp_to_byte, options, ds.stats);
        }
        ++ds.stats.read;
      }
    }
  }
  return ds;
}

/// Reads a SQuAD JSON file (IoError when it cannot be read).
inline SquadDataset read_squad(const std::filesystem::path& path, const SquadOptions& options = {}) {
  return parse_squad(read_text_file(path), path.string(), options);
}

/// Reads a SQuAD JSON stream; `source` names it in messages.
inline SquadDataset read_squad(std::istream& in, std::string_view source, const SquadOptions& options = {}) {
  return parse_squad(detail::read_stream(in, source), source, options);
}

/// One SquadExample per question, in file order (contexts and titles copied).
inline std::vector<SquadExample> squad_examples(const SquadDataset& ds) {
  std::vector<SquadExample> out;
  out.reserve(ds.stats.read);
  for (const auto& a : ds.articles)
    for (const auto& p : a.paragraphs)
      for (const auto& q : p.qas) out.push_back({q.id, a.title, p.context, q.question, q.answers, q.is_impossible});
  return out;
}

}  // namespace deepprompt::data
