#pragma once
// What the dataset readers (namespace deepprompt::data) share: the Dataset/ReadStats result, the
// text of a source (a path, a string or a stream), line splitting that drops a UTF-8 BOM, the
// '\r' of CRLF endings and the trailing empty lines, error messages that name the place, and
// conversions between Unicode code point offsets (Python str indices) and UTF-8 byte offsets.
//
// Errors: a malformed line or record raises FormatError (a deepprompt::Error) whose message
// starts with "SOURCE:LINE: " for line formats (TSV, JSONL, CoNLL, XML) and "SOURCE: PATH: " for
// JSON documents (PATH like data[3].paragraphs[1].qas[0], in JSON Pointer-ish dotted form).
// SOURCE is the file's path, or the name the caller gave for a string or stream.
// A file larger than limits().file_bytes, or JSON nested deeper than limits().json_depth, raises
// LimitError (io/limits.hpp), a FormatError naming the bound.
// Nothing is dropped silently: a reader skips a record only when its options ask for it
// (skip_malformed), and then counts it in ReadStats::skipped with the reason.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../../core/error.hpp"
#include "../../io/file.hpp"

namespace deepprompt::data {

/// The counts of one read: records returned, records skipped (by reason) and records kept
/// with an oddity worth reporting (by kind), plus the first few messages with their place.
struct ReadStats {
  static constexpr std::size_t kMaxNotes = 20;
  std::size_t read = 0;
  std::size_t skipped = 0;
  std::map<std::string, std::size_t> reasons;   // why records were skipped -> how many
  std::map<std::string, std::size_t> warnings;  // oddities in kept records -> how many
  std::vector<std::string> notes;               // the first kMaxNotes skip/warning messages

  /// Counts one skipped record; `note` is the full message with its place.
  void skip(const std::string& reason, std::string note) {
    ++skipped;
    ++reasons[reason];
    add_note(std::move(note));
  }
  /// Counts one oddity of a kept record.
  void warn(const std::string& kind, std::string note) {
    ++warnings[kind];
    add_note(std::move(note));
  }
  std::size_t warning_count(const std::string& kind) const {
    auto it = warnings.find(kind);
    return it == warnings.end() ? 0 : it->second;
  }
  /// "read 872, skipped 2 (bad label: 2); warnings: empty text: 1".
  std::string summary() const {
    std::string s = detail::cat("read ", read, ", skipped ", skipped);
    auto list = [](const std::map<std::string, std::size_t>& m) {
      std::string out;
      for (const auto& [k, n] : m) out += detail::cat(out.empty() ? "" : ", ", k, ": ", n);
      return out;
    };
    if (!reasons.empty()) s += " (" + list(reasons) + ")";
    if (!warnings.empty()) s += "; warnings: " + list(warnings);
    return s;
  }

 private:
  void add_note(std::string note) {
    if (notes.size() < kMaxNotes) notes.push_back(std::move(note));
  }
};

/// The records of one source and what happened while reading them.
template <class Example>
struct Dataset {
  std::string source;  // the path, or the name given for a string or stream
  std::vector<Example> examples;
  ReadStats stats;
  std::size_t size() const { return examples.size(); }
};

namespace detail {

using deepprompt::detail::cat;
using deepprompt::detail::printable;

/// Throws FormatError("SOURCE:LINE: what").
[[noreturn]] inline void fail_at(std::string_view source, std::size_t line, std::string_view what) {
  throw FormatError(cat(source, ":", line, ": ", what));
}

/// The whole stream as a string; IoError naming `source` when the stream fails, LimitError
/// when it holds more than limits().file_bytes.
inline std::string read_stream(std::istream& in, std::string_view source) {
  const std::uint64_t max = limits().file_bytes;
  std::string text;
  char chunk[65536];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    check_limit(cat("'", source, "'"), "stream size", text.size() + static_cast<std::uint64_t>(in.gcount()), max,
                "file_bytes");
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw IoError(cat("cannot read '", source, "'"));
  return text;
}

/// `text` without a leading UTF-8 byte order mark.
inline std::string_view strip_bom(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  return text;
}

inline bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

inline std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

/// The lines of a text: LF or CRLF endings (the '\r' is removed), a UTF-8 BOM dropped, and
/// the blank lines at the end of the text never returned (blank lines elsewhere are).
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(strip_bom(text)) {
    // End of content: just after the last line that is not blank.
    std::size_t end = text_.size();
    while (end > 0) {
      const std::size_t start = text_.rfind('\n', end - 1);
      const std::size_t b = start == std::string_view::npos ? 0 : start + 1;
      if (!is_blank(text_.substr(b, end - b))) break;
      end = start == std::string_view::npos ? 0 : start;
    }
    text_ = text_.substr(0, end);
    done_ = text_.empty();
  }
  /// The next line into `line`; false at the end.
  bool next(std::string_view& line) {
    if (done_) return false;
    const std::size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) {
      line = text_.substr(pos_);
      done_ = true;
    } else {
      line = text_.substr(pos_, nl - pos_);
      pos_ = nl + 1;
    }
    if (line.ends_with('\r')) line.remove_suffix(1);
    ++number_;
    return true;
  }
  /// 1-based number of the line last returned.
  std::size_t number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
  bool done_ = false;
};

/// Splits on every `sep` (empty fields kept).
inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t b = 0;
  for (;;) {
    const std::size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) return out;
    b = e + 1;
  }
}

/// Splits on runs of spaces and tabs (no empty fields).
inline std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    const std::size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > b) out.push_back(s.substr(b, i - b));
  }
  return out;
}

/// `s` quoted for a message, shortened to 60 bytes, control and non-ASCII bytes as '?'.
inline std::string quote(std::string_view s) {
  const bool cut = s.size() > 60;
  return cat("'", printable(std::string(s.substr(0, 60))), cut ? "...'" : "'");
}

}  // namespace detail

/// Number of Unicode code points in UTF-8 `text` (Python's len(str)): the bytes that are not
/// continuation bytes (10xxxxxx). Exact for valid UTF-8.
inline std::size_t codepoint_count(std::string_view text) {
  std::size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

/// Byte offset in UTF-8 `text` of code point `index` (Python str index); `index` equal to the
/// number of code points gives text.size(). Returns std::string_view::npos past the end.
inline std::size_t codepoint_to_byte(std::string_view text, std::size_t index) {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (seen == index) return i;
    ++seen;
  }
  return seen == index ? text.size() : std::string_view::npos;
}

/// Code point index of byte offset `byte` in UTF-8 `text` (a byte inside a multi-byte
/// character counts as that character). `byte` past the end is clamped to text.size().
inline std::size_t byte_to_codepoint(std::string_view text, std::size_t byte) {
  return codepoint_count(text.substr(0, byte)) -
         (byte < text.size() && (static_cast<unsigned char>(text[byte]) & 0xC0) == 0x80 ? 1 : 0);
}

}  // namespace deepprompt::data
