#pragma once
// The pieces of Python's str semantics that the reference text metrics (SQuAD's evaluate script,
// sacreBLEU, rouge_score) rely on, on code points: str.isspace(), str.isalnum() (the word
// characters of re's \b), str.lower() and str.split(). Text comes in as UTF-8; invalid sequences
// decode to U+FFFD, as Python's errors="replace" does.
//
// str.lower() is applied per character (deepprompt::unicode::to_lower, Python's own tables); the
// one context rule of str.lower(), a final Greek capital sigma becoming U+03C2, is not applied.
#include <algorithm>
#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/io/unicode.hpp"
#include "deepprompt/tasks/metrics/python_alnum.hpp"

namespace deepprompt::metrics::detail {

/// Python's str.isspace() of one character (the characters str.split() splits on).
inline bool py_isspace(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/// Python's str.isalnum() of one character.
inline bool py_isalnum(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  const auto* end = kPyAlnumRanges + kPyAlnumRangeCount;
  const auto* it = std::upper_bound(kPyAlnumRanges, end, c, [](char32_t v, const char32_t(&r)[2]) { return v < r[0]; });
  return it != kPyAlnumRanges && c <= (*(it - 1))[1];
}

/// A word character of Python's re module on str patterns (\w): alphanumeric or '_'.
inline bool py_isword(char32_t c) { return c == '_' || py_isalnum(c); }

/// ASCII digit, the [0-9] of a regex.
inline bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }

/// One of Python's string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
inline bool is_ascii_punctuation(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

/// The code points of UTF-8 text.
inline std::u32string decode(std::string_view utf8) { return unicode::to_u32(utf8); }

/// UTF-8 of code points.
inline std::string encode(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) unicode::append_utf8(out, c);
  return out;
}

/// str.lower() (see the file comment for the final-sigma rule).
inline std::u32string py_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) unicode::to_lower(c, [&](char32_t l) { out += l; });
  return out;
}

/// str.split(): the maximal runs of non-whitespace characters.
inline std::vector<std::u32string> py_split(std::u32string_view s) {
  std::vector<std::u32string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && py_isspace(s[i])) ++i;
    const std::size_t b = i;
    while (i < s.size() && !py_isspace(s[i])) ++i;
    if (i > b) out.emplace_back(s.substr(b, i - b));
  }
  return out;
}

/// str.rstrip(): s without trailing whitespace.
inline std::u32string_view py_rstrip(std::u32string_view s) {
  while (!s.empty() && py_isspace(s.back())) s.remove_suffix(1);
  return s;
}

/// str.replace(from, to): every non-overlapping occurrence, left to right.
inline std::u32string py_replace(std::u32string_view s, std::u32string_view from, std::u32string_view to) {
  std::u32string out;
  std::size_t i = 0;
  while (true) {
    const std::size_t j = s.find(from, i);
    if (j == std::u32string_view::npos) break;
    out.append(s.substr(i, j - i));
    out.append(to);
    i = j + from.size();
  }
  out.append(s.substr(i));
  return out;
}

/// ' '.join(tokens).
inline std::u32string join_spaces(const std::vector<std::u32string>& tokens) {
  std::u32string out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out += U' ';
    out += tokens[i];
  }
  return out;
}

}  // namespace deepprompt::metrics::detail
