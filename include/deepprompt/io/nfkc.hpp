#pragma once
// Unicode normalisation form NFKC (UAX #15): full compatibility decomposition, canonical
// ordering, canonical composition. The data (nfkc_tables.hpp) are generated from Python's
// unicodedata by tests/fixtures/use_lite/gen_nfkc_tables.py; Hangul syllables are decomposed and composed
// algorithmically. Matches JavaScript's String.prototype.normalize("NFKC") for every code point
// assigned in that Unicode version (code points assigned later pass through unchanged).
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "nfkc_tables.hpp"
#include "unicode.hpp"

namespace deepprompt::unicode {

namespace detail_nfkc {
inline constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
inline constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                          kSCount = kLCount * kNCount;

/// The canonical combining class of `cp` (0 for starters).
inline unsigned ccc(char32_t cp) {
  using namespace nfkc_data;
  const std::uint64_t key = (std::uint64_t{cp} << 32) | 0xFFFFFFFFull;
  const auto* end = std::end(kCccRanges);
  auto it = std::upper_bound(std::begin(kCccRanges), end, key);  // first range starting after cp
  if (it == std::begin(kCccRanges)) return 0;
  --it;
  const auto last = static_cast<char32_t>((*it >> 8) & 0xFFFFFF);
  return cp <= last ? static_cast<unsigned>(*it & 0xFF) : 0;
}

/// Appends the full compatibility decomposition of `cp` to `out`.
inline void decompose(char32_t cp, std::u32string& out) {
  using namespace nfkc_data;
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const std::uint64_t key = std::uint64_t{cp} << 20;
  auto it = std::lower_bound(std::begin(kNfkdEntries), std::end(kNfkdEntries), key);
  if (it == std::end(kNfkdEntries) || (*it >> 20) != cp) {
    out.push_back(cp);
    return;
  }
  const auto offset = static_cast<std::size_t>((*it >> 5) & 0x7FFF), len = static_cast<std::size_t>(*it & 0x1F);
  out.append(kNfkdPool + offset, kNfkdPool + offset + len);
}

/// The primary composite of `a` and `b`, or 0 when there is none.
inline char32_t compose(char32_t a, char32_t b) {
  using namespace nfkc_data;
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  if (a >= (1u << 21) || b >= (1u << 21)) return 0;
  const std::uint64_t key = (std::uint64_t{a} << 42) | (std::uint64_t{b} << 21);
  auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), key);
  if (it == std::end(kCompositions) || (*it >> 21) != (key >> 21)) return 0;
  return static_cast<char32_t>(*it & 0x1FFFFF);
}
}  // namespace detail_nfkc

/// NFKC of a sequence of code points.
/// ensures: the result is in NFKC; ASCII-only input is returned unchanged.
inline std::u32string nfkc(std::u32string_view in) {
  using namespace detail_nfkc;
  if (std::all_of(in.begin(), in.end(), [](char32_t c) { return c < 0x80; })) return std::u32string(in);
  std::u32string s;
  s.reserve(in.size());
  for (char32_t c : in) decompose(c, s);
  // Canonical ordering: a stable sort by combining class of each run of non-starters.
  for (std::size_t i = 0; i < s.size();) {
    if (ccc(s[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && ccc(s[j]) != 0) ++j;
    std::stable_sort(s.begin() + static_cast<std::ptrdiff_t>(i), s.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  // Canonical composition (UAX #15's reference algorithm).
  if (s.empty()) return s;
  std::size_t starter = 0, out = 1;
  unsigned last_class = ccc(s[0]) ? 256 : 0;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char32_t c = s[i];
    const unsigned cls = ccc(c);
    const char32_t composite = compose(s[starter], c);
    if (composite && (last_class < cls || last_class == 0)) {
      s[starter] = composite;
      continue;
    }
    if (cls == 0) starter = out;
    last_class = cls;
    s[out++] = c;
  }
  s.resize(out);
  return s;
}

/// NFKC of UTF-8 text (invalid sequences become U+FFFD first, see unicode.hpp), as UTF-8.
inline std::string nfkc_utf8(std::string_view text) {
  std::string out;
  for (char32_t c : nfkc(to_u32(text))) append_utf8(out, c);
  return out;
}

}  // namespace deepprompt::unicode
