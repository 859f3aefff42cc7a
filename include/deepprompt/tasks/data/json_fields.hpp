#pragma once
// JSON access shared by the JSON readers (SuperGLUE JSONL, SQuAD), through nlohmann-json:
// parsing whose syntax errors name the line, and typed field access whose errors name the place
// as "SOURCE:LINE: PATH: what" (JSONL: one record per line) or "SOURCE: PATH: what" (a JSON
// document: PATH like data[3].paragraphs[1].qas[0].answers[2].answer_start).
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "../../io/json.hpp"
#include "common.hpp"

namespace deepprompt::data::detail {

/// Parses one JSON value. A syntax error throws FormatError "SOURCE:LINE: invalid JSON: ...",
/// LINE being `first_line` plus the line breaks before the error; nesting deeper than
/// limits().json_depth throws LimitError "SOURCE:LINE: ..." (a JSONL record, `first_line` > 0)
/// or "SOURCE: ..." (a whole document, `first_line` 0, whose lines count from 1).
inline nlohmann::json parse_json(std::string_view text, std::string_view source, std::size_t first_line = 0) {
  try {
    return deepprompt::detail::parse_json_limited(text, first_line > 0 ? cat(source, ":", first_line) : std::string(source));
  } catch (const nlohmann::json::parse_error& e) {
    const auto upto = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    const auto line = std::max<std::size_t>(first_line, 1) + static_cast<std::size_t>(std::count(text.begin(), text.begin() + upto, '\n'));
    std::string what = e.what();
    // Keep nlohmann's explanation, not its position inside the piece (which is not the file's).
    const auto at = what.find("parse error");
    const auto colon = at == std::string::npos ? std::string::npos : what.find(": ", at);
    if (colon != std::string::npos) what = what.substr(colon + 2);
    if (what.size() > 200) what = what.substr(0, 197) + "...";  // "last read: '<a long line>'"
    fail_at(source, line, cat("invalid JSON: ", printable(what)));
  }
}

/// One JSON object and its place, with typed access to its fields.
class JsonRecord {
 public:
  /// `line` 0 means a JSON document (the place is then "SOURCE: PATH").
  JsonRecord(const nlohmann::json& j, std::string_view source, std::size_t line, std::string path)
      : j_(j), source_(source), line_(line), path_(std::move(path)) {
    if (!j_.is_object()) fail_here(cat("expected a JSON object, got ", describe(j_)));
  }

  const std::string& path() const { return path_; }
  /// "SOURCE:LINE" or "SOURCE: PATH" (for notes).
  std::string where() const { return line_ > 0 ? cat(source_, ":", line_) : cat(source_, ": ", path_); }
  /// PATH.field (or field when the record is the top level).
  std::string field_path(std::string_view field) const {
    return path_.empty() ? std::string(field) : cat(path_, ".", field);
  }

  [[noreturn]] void fail(std::string_view field, std::string_view what) const {
    throw FormatError(cat(prefix(), field_path(field), ": ", what));
  }
  [[noreturn]] void fail_here(std::string_view what) const {
    throw FormatError(cat(prefix(), path_.empty() ? "record" : path_, ": ", what));
  }

  /// The field's value; nullptr when absent or null.
  const nlohmann::json* find(std::string_view field) const {
    auto it = j_.find(field);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  const nlohmann::json& required(std::string_view field) const {
    const auto* v = find(field);
    if (!v) fail(field, "missing");
    return *v;
  }

  std::string string(std::string_view field) const { return as_string(field, required(field)); }
  std::optional<std::string> optional_string(std::string_view field) const {
    const auto* v = find(field);
    return v ? std::optional(as_string(field, *v)) : std::nullopt;
  }
  std::int64_t integer(std::string_view field) const { return as_integer(field, required(field)); }
  std::optional<std::int64_t> optional_integer(std::string_view field) const {
    const auto* v = find(field);
    return v ? std::optional(as_integer(field, *v)) : std::nullopt;
  }
  std::optional<bool> optional_boolean(std::string_view field) const {
    const auto* v = find(field);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) fail(field, cat("expected true or false, got ", describe(*v)));
    return v->get<bool>();
  }
  /// The field as an array; an absent or null field gives an empty array.
  const nlohmann::json& array(std::string_view field) const {
    static const nlohmann::json empty = nlohmann::json::array();
    const auto* v = find(field);
    if (!v) return empty;
    if (!v->is_array()) fail(field, cat("expected an array, got ", describe(*v)));
    return *v;
  }
  JsonRecord object(std::string_view field) const {
    return JsonRecord(required(field), source_, line_, field_path(field));
  }
  /// Element `i` of the array `field`, as a record with path PATH.field[i].
  JsonRecord element(std::string_view field, std::size_t i) const {
    return JsonRecord(array(field).at(i), source_, line_, cat(field_path(field), "[", i, "]"));
  }

  /// "number 3", "string 'abc'", "array [...]" for messages.
  static std::string describe(const nlohmann::json& v) { return cat(v.type_name(), " ", quote(v.dump())); }

 private:
  std::string prefix() const { return line_ > 0 ? cat(source_, ":", line_, ": ") : cat(source_, ": "); }
  std::string as_string(std::string_view field, const nlohmann::json& v) const {
    if (!v.is_string()) fail(field, cat("expected a string, got ", describe(v)));
    return v.get<std::string>();
  }
  std::int64_t as_integer(std::string_view field, const nlohmann::json& v) const {
    if (!v.is_number_integer()) fail(field, cat("expected an integer, got ", describe(v)));
    return v.get<std::int64_t>();
  }

  const nlohmann::json& j_;
  std::string_view source_;
  std::size_t line_;
  std::string path_;
};

}  // namespace deepprompt::data::detail
