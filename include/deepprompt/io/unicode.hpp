#pragma once
// Unicode support of the tokenizers: UTF-8 decoding that never fails, the character classes
// BERT's normaliser needs, per-character lower case and accent stripping (NFD minus Mn).
// The data come from the generated unicode_tables.hpp (Python's unicodedata, Unicode 14.0);
// no compiled library is needed.
//
// Invalid UTF-8: every ill-formed sequence is replaced by U+FFFD following Unicode's "maximal
// subpart" practice (the same as Python's bytes.decode("utf-8", errors="replace")): a bad lead
// byte gives one U+FFFD, a truncated sequence gives one U+FFFD for its valid prefix.
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/io/unicode_tables.hpp"

namespace deepprompt::unicode {

inline constexpr char32_t kReplacement = 0xFFFD;

/// One decoded code point and the bytes [byte_begin, byte_end) it came from.
struct DecodedChar {
  char32_t cp;
  std::uint32_t byte_begin, byte_end;
};

/// Decodes `text`; never throws. Invalid sequences become U+FFFD (see the file comment).
inline std::vector<DecodedChar> decode_utf8(std::string_view text) {
  std::vector<DecodedChar> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned b0 = s[i];
    const auto start = static_cast<std::uint32_t>(i);
    if (b0 < 0x80) {
      out.push_back({b0, start, start + 1});
      ++i;
      continue;
    }
    int len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    char32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1F;
    else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0F, lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07, lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    std::size_t j = i + 1;  // ends at the first byte that does not continue the sequence
    bool ok = len > 0;
    for (int k = 1; ok && k < len; ++k) {
      const unsigned lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xBF;
      if (j >= n || s[j] < lo_k || s[j] > hi_k) {
        ok = false;
      } else {
        cp = (cp << 6) | (s[j] & 0x3F);
        ++j;
      }
    }
    if (!ok) {
      out.push_back({kReplacement, start, static_cast<std::uint32_t>(j)});
    } else {
      out.push_back({cp, start, static_cast<std::uint32_t>(j)});
    }
    i = j;
  }
  return out;
}

/// Appends the UTF-8 encoding of `cp` (surrogates and values past U+10FFFF become U+FFFD).
inline void append_utf8(std::string& out, char32_t cp) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = kReplacement;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// `text` with every invalid sequence replaced by U+FFFD.
inline std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const auto& c : decode_utf8(text)) append_utf8(out, c.cp);
  return out;
}

/// The code points of valid UTF-8 `text` (invalid sequences as U+FFFD).
inline std::u32string to_u32(std::string_view text) {
  std::u32string out;
  for (const auto& c : decode_utf8(text)) out += c.cp;
  return out;
}

enum class CharClass : std::uint8_t { none = 0, punctuation = 1, other = 2, nonspacing_mark = 3 };

/// Class of `cp` among Unicode P*, C* (Cc Cf Cn Co Cs) and Mn; none for everything else.
inline CharClass char_class(char32_t cp) {
  if (cp > 0x10FFFF) return CharClass::other;
  const auto& t = tables::kClassRanges;
  const auto key = (static_cast<std::uint32_t>(cp) << 2) | 3u;
  const auto* it = std::upper_bound(std::begin(t), std::end(t), key);
  return static_cast<CharClass>(*(it - 1) & 3u);  // kClassRanges[0] starts at U+0000
}

/// HF/BERT punctuation: ASCII 33-47, 58-64, 91-96, 123-126, or any Unicode P* character.
inline bool is_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return true;
  return char_class(cp) == CharClass::punctuation;
}

/// BERT's whitespace: tab, newline, carriage return and the White_Space property (Zs, U+000B,
/// U+000C, U+0085, U+2028, U+2029) -- Rust's char::is_whitespace, as HF tokenizers uses.
inline bool is_whitespace(char32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return true;
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/// BERT's control characters: any C* category except tab, newline and carriage return.
inline bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return char_class(cp) == CharClass::other;
}

inline bool is_nonspacing_mark(char32_t cp) { return char_class(cp) == CharClass::nonspacing_mark; }

/// The CJK Unified Ideograph blocks BERT isolates (not Hangul, Hiragana or Katakana).
inline bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/// Lower case of one character (Python's chr(cp).lower(), Rust's char::to_lowercase): calls
/// emit(c) once per resulting code point (twice for U+0130, which gives "i" U+0307).
template <class Emit>
void to_lower(char32_t cp, Emit&& emit) {
  if (cp < 0x80) {
    emit(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  if (cp == 0x130) {
    emit(char32_t{'i'});
    emit(char32_t{0x307});
    return;
  }
  const auto& runs = tables::kLowerRuns;
  const auto* it = std::upper_bound(std::begin(runs), std::end(runs), static_cast<std::uint32_t>(cp),
                                    [](std::uint32_t c, const tables::LowerRun& r) { return c < r.lo; });
  if (it != std::begin(runs)) {
    const auto& r = *(it - 1);
    if (cp <= r.hi && (cp - r.lo) % r.stride == 0) {
      emit(static_cast<char32_t>(static_cast<std::int64_t>(cp) + r.delta));
      return;
    }
  }
  emit(cp);
}

/// Accent stripping of one character: its canonical decomposition (NFD, Hangul syllables to
/// jamo) with every non-spacing mark (Mn) dropped; emit(c) for each code point kept. The
/// canonical reordering of NFD is not applied across characters: it only moves combining marks,
/// and those with a non-zero combining class that are not Mn are a handful of musical symbols.
template <class Emit>
void strip_accents(char32_t cp, Emit&& emit) {
  if (cp < 0xC0) {
    emit(cp);
    return;
  }
  if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllable: L V (T), all kept (Lo)
    const char32_t s = cp - 0xAC00;
    emit(0x1100 + s / 588);
    emit(0x1161 + (s % 588) / 28);
    if (s % 28 != 0) emit(0x11A7 + s % 28);
    return;
  }
  const auto& single = tables::kStripSingle;
  const std::uint64_t key = static_cast<std::uint64_t>(cp) << 32;
  const auto* it = std::lower_bound(std::begin(single), std::end(single), key);
  if (it != std::end(single) && (*it >> 32) == cp) {
    emit(static_cast<char32_t>(*it & 0xFFFFFFFFu));
    return;
  }
  const auto& multi = tables::kStripMulti;
  const auto* m = std::lower_bound(std::begin(multi), std::end(multi), static_cast<std::uint32_t>(cp),
                                   [](const tables::StripMulti& e, std::uint32_t c) { return e.cp < c; });
  if (m != std::end(multi) && m->cp == cp) {
    for (std::uint32_t k = 0; k < m->count; ++k) emit(static_cast<char32_t>(tables::kStripPool[m->offset + k]));
    return;
  }
  if (!is_nonspacing_mark(cp)) emit(cp);
}

}  // namespace deepprompt::unicode
