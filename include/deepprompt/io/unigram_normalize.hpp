#pragma once
// The normalisers and pre-tokenisers of a Unigram tokenizer.json (T5's and the like), on text
// that remembers where each character came from. Used by unigram.hpp.
//
// Precompiled is SentencePiece's own normaliser (T5: NFKC plus SentencePiece's extra rules): at
// each position the longest key of the precompiled character map is replaced by its value, as
// sentencepiece::Normalizer does (HF matches whole grapheme clusters first; they differ only on
// keys that span a cluster boundary, which SentencePiece's maps do not contain).
#include <algorithm>
#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "deepprompt/io/tokenizer.hpp"
#include "deepprompt/io/unicode.hpp"

namespace deepprompt::tokenizer_detail {

/// A normalised character and the code points [begin, end) of the original text it came from;
/// begin == end for an inserted character (the "▁" Metaspace prepends).
struct SpanChar {
  char32_t cp;
  std::uint32_t begin, end;
};
using SpanText = std::vector<SpanChar>;

inline std::string to_utf8(const SpanText& t, std::size_t b, std::size_t e, std::vector<std::size_t>* at = nullptr) {
  std::string s;
  for (std::size_t i = b; i < e; ++i) {
    if (at) at->push_back(s.size());
    unicode::append_utf8(s, t[i].cp);
  }
  if (at) at->push_back(s.size());
  return s;
}

/// Replaces t[b, e) by the code points of `with`, which inherit the span of what they replace.
inline void replace_range(SpanText& t, std::size_t b, std::size_t e, std::u32string_view with) {
  const std::uint32_t sb = b < e ? t[b].begin : (b < t.size() ? t[b].begin : (t.empty() ? 0 : t.back().end));
  const std::uint32_t se = b < e ? t[e - 1].end : sb;
  SpanText repl;
  for (char32_t c : with) repl.push_back({c, sb, se});
  t.erase(t.begin() + static_cast<std::ptrdiff_t>(b), t.begin() + static_cast<std::ptrdiff_t>(e));
  t.insert(t.begin() + static_cast<std::ptrdiff_t>(b), repl.begin(), repl.end());
}

inline std::string base64_decode(std::string_view in, const JsonFile& f, std::string_view where) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+' || ch == '-') v = 62;
    else if (ch == '/' || ch == '_') v = 63;
    else if (ch == '=' || ch == '\n' || ch == '\r') continue;
    else f.fail(where, "invalid base64");
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

/// SentencePiece's precompiled character map: [uint32 trie size][darts-clone double array]
/// [NUL-terminated replacements]. Every lookup is bounds-checked: a corrupt map cannot crash.
class CharsMap {
 public:
  CharsMap() = default;
  CharsMap(const std::string& blob, const JsonFile& f, std::string_view where) {
    if (blob.empty()) return;
    if (blob.size() < 4) f.fail(where, "truncated precompiled_charsmap");
    const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
    const std::uint32_t trie = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
    if (trie % 4 != 0 || trie > blob.size() - 4) f.fail(where, "corrupt precompiled_charsmap (trie size)");
    units_.resize(trie / 4);
    for (std::size_t i = 0; i < units_.size(); ++i) {
      const auto* u = p + 4 + 4 * i;
      units_[i] = u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<std::uint32_t>(u[3]) << 24);
    }
    pool_ = blob.substr(4 + trie);
  }
  bool empty() const { return units_.empty(); }

  /// The longest key that prefixes `s`: {replacement, bytes consumed}; {"", 0} when none.
  std::pair<std::string_view, std::size_t> match(std::string_view s) const {
    std::pair<std::string_view, std::size_t> best{{}, 0};
    if (units_.empty()) return best;
    std::size_t node = offset(units_[0]);
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      node ^= c;
      if (node >= units_.size()) break;
      const auto unit = units_[node];
      if ((unit & ((1u << 31) | 0xFFu)) != c) break;  // label mismatch
      node ^= offset(unit);
      if ((unit >> 8) & 1u) {  // has a leaf: a key ends here
        if (node >= units_.size()) break;
        const std::size_t v = units_[node] & 0x7FFFFFFFu;
        if (v >= pool_.size()) break;
        const auto end = pool_.find('\0', v);
        best = {std::string_view(pool_).substr(v, (end == std::string::npos ? pool_.size() : end) - v), i + 1};
      }
    }
    return best;
  }

 private:
  static std::size_t offset(std::uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }
  std::vector<std::uint32_t> units_;
  std::string pool_;
};

/// One step of a normalizer (Sequence flattened): Precompiled, Replace, Strip, Lowercase, Prepend.
struct NormalizeStep {
  enum Kind { precompiled, replace_string, replace_regex, strip, lowercase, prepend } kind;
  CharsMap map;
  std::u32string pattern, content;
  std::regex regex;
  bool left = true, right = true;

  void apply(SpanText& t) const {
    switch (kind) {
      case precompiled: return apply_map(t);
      case replace_string:
        for (std::size_t i = 0; !pattern.empty() && i + pattern.size() <= t.size();) {
          std::size_t k = 0;
          while (k < pattern.size() && t[i + k].cp == pattern[k]) ++k;
          if (k < pattern.size()) {
            ++i;
            continue;
          }
          replace_range(t, i, i + pattern.size(), content);
          i += content.size();
        }
        return;
      case replace_regex: return apply_regex(t);
      case strip: {
        std::size_t b = 0, e = t.size();
        while (left && b < e && unicode::is_whitespace(t[b].cp)) ++b;
        while (right && e > b && unicode::is_whitespace(t[e - 1].cp)) --e;
        t = SpanText(t.begin() + static_cast<std::ptrdiff_t>(b), t.begin() + static_cast<std::ptrdiff_t>(e));
        return;
      }
      case lowercase: {
        SpanText out;
        for (const auto& c : t) unicode::to_lower(c.cp, [&](char32_t l) { out.push_back({l, c.begin, c.end}); });
        t = std::move(out);
        return;
      }
      case prepend:
        if (!t.empty()) replace_range(t, 0, 0, content);
        return;
    }
  }

 private:
  void apply_map(SpanText& t) const {
    std::vector<std::size_t> at;
    const auto s = to_utf8(t, 0, t.size(), &at);
    SpanText out;
    for (std::size_t i = 0; i < t.size();) {
      auto [repl, used] = map.match(std::string_view(s).substr(at[i]));
      std::size_t j = i;
      while (j < t.size() && at[j] < at[i] + used) ++j;
      if (used == 0 || at[j] != at[i] + used) {  // no key, or one ending inside a character
        out.push_back(t[i++]);
        continue;
      }
      for (const auto& d : unicode::decode_utf8(repl)) out.push_back({d.cp, t[i].begin, t[j - 1].end});
      i = j;
    }
    t = std::move(out);
  }

  void apply_regex(SpanText& t) const {
    std::vector<std::size_t> at;
    const auto s = to_utf8(t, 0, t.size(), &at);
    auto char_at = [&](std::size_t byte) {  // first character starting at or after `byte`
      return static_cast<std::size_t>(std::lower_bound(at.begin(), at.end(), byte) - at.begin());
    };
    std::vector<std::pair<std::size_t, std::size_t>> hits;
    for (auto it = std::sregex_iterator(s.begin(), s.end(), regex); it != std::sregex_iterator(); ++it)
      if (it->length(0) > 0) hits.emplace_back(char_at(static_cast<std::size_t>(it->position(0))),
                                               char_at(static_cast<std::size_t>(it->position(0) + it->length(0))));
    for (auto h = hits.rbegin(); h != hits.rend(); ++h) replace_range(t, h->first, h->second, content);
  }
};

/// One pre-tokenizer step (Sequence flattened): WhitespaceSplit or Metaspace.
struct PreTokenizeStep {
  enum Kind { whitespace_split, metaspace } kind;
  char32_t replacement = U'\u2581';
  int prepend = 1;  // 0 never, 1 always, 2 first pre-token only
  bool split = true;

  /// Splits each word of `words` further.
  void apply(std::vector<SpanText>& words) const {
    std::vector<SpanText> out;
    for (std::size_t w = 0; w < words.size(); ++w) {
      auto& t = words[w];
      if (kind == whitespace_split) {
        SpanText cur;
        for (const auto& c : t) {
          if (!unicode::is_whitespace(c.cp)) cur.push_back(c);
          else if (!cur.empty()) out.push_back(std::exchange(cur, {}));
        }
        if (!cur.empty()) out.push_back(std::move(cur));
        continue;
      }
      for (auto& c : t)
        if (c.cp == ' ') c.cp = replacement;
      if ((prepend == 1 || (prepend == 2 && w == 0)) && !t.empty() && t[0].cp != replacement)
        t.insert(t.begin(), SpanChar{replacement, t[0].begin, t[0].begin});
      if (!split) {
        if (!t.empty()) out.push_back(std::move(t));
        continue;
      }
      SpanText cur;
      for (const auto& c : t) {
        if (c.cp == replacement && !cur.empty()) out.push_back(std::exchange(cur, {}));
        cur.push_back(c);
      }
      if (!cur.empty()) out.push_back(std::move(cur));
    }
    words = std::move(out);
  }
};

/// normalizer of a tokenizer.json, flattened into `steps`.
inline void parse_normalizer(const nlohmann::json& n, const JsonFile& f, std::vector<NormalizeStep>& steps) {
  if (n.is_null()) return;
  const auto type = f.str(f.at(n, "type", "normalizer"), "normalizer.type");
  if (type == "Sequence") {
    const auto& list = f.at(n, "normalizers", "normalizer");
    if (!list.is_array()) f.fail("normalizer.normalizers", "expected an array");
    for (const auto& m : list) parse_normalizer(m, f, steps);
  } else if (type == "Precompiled") {
    const auto& b64 = f.at(n, "precompiled_charsmap", "normalizer");
    const auto blob = b64.is_null() ? std::string() : base64_decode(f.str(b64, "precompiled_charsmap"), f, "precompiled_charsmap");
    steps.push_back({NormalizeStep::precompiled, CharsMap(blob, f, "normalizer.precompiled_charsmap"), {}, {}, {}});
  } else if (type == "Replace") {
    const auto& pat = f.at(n, "pattern", "normalizer(Replace)");
    const auto content = unicode::to_u32(f.str(f.at(n, "content", "normalizer(Replace)"), "Replace.content"));
    if (pat.contains("String")) {
      steps.push_back({NormalizeStep::replace_string, {}, unicode::to_u32(f.str(pat["String"], "Replace.pattern")), content, {}});
    } else if (pat.contains("Regex")) {
      const auto re = f.str(pat["Regex"], "Replace.pattern.Regex");
      try {
        steps.push_back({NormalizeStep::replace_regex, {}, {}, content, std::regex(re)});
      } catch (const std::regex_error& e) {
        f.fail("normalizer(Replace).pattern.Regex", detail::cat("unsupported regular expression \"", re, "\": ", e.what()));
      }
    } else {
      f.fail("normalizer(Replace).pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
    }
  } else if (type == "Strip") {
    NormalizeStep s{NormalizeStep::strip, {}, {}, {}, {}};
    s.left = f.flag(n, "strip_left", true, "normalizer(Strip)");
    s.right = f.flag(n, "strip_right", true, "normalizer(Strip)");
    steps.push_back(std::move(s));
  } else if (type == "Lowercase") {
    steps.push_back({NormalizeStep::lowercase, {}, {}, {}, {}});
  } else if (type == "Prepend") {
    steps.push_back({NormalizeStep::prepend, {}, {}, unicode::to_u32(f.str(f.at(n, "prepend", "normalizer(Prepend)"), "Prepend.prepend")), {}});
  } else {
    f.fail("normalizer.type", detail::cat("unsupported normalizer \"", type,
                                  "\" (supported: Sequence, Precompiled, Replace, Strip, Lowercase, Prepend)"));
  }
}

/// pre_tokenizer of a tokenizer.json, flattened into `steps`.
inline void parse_pre_tokenizer(const nlohmann::json& p, const JsonFile& f, std::vector<PreTokenizeStep>& steps) {
  if (p.is_null()) return;
  const auto type = f.str(f.at(p, "type", "pre_tokenizer"), "pre_tokenizer.type");
  if (type == "Sequence") {
    const auto& list = f.at(p, "pretokenizers", "pre_tokenizer");
    if (!list.is_array()) f.fail("pre_tokenizer.pretokenizers", "expected an array");
    for (const auto& m : list) parse_pre_tokenizer(m, f, steps);
  } else if (type == "WhitespaceSplit") {
    steps.push_back({PreTokenizeStep::whitespace_split});
  } else if (type == "Metaspace") {
    PreTokenizeStep s{PreTokenizeStep::metaspace};
    const auto r = unicode::to_u32(f.str(f.at(p, "replacement", "pre_tokenizer(Metaspace)"), "Metaspace.replacement"));
    if (r.size() != 1) f.fail("pre_tokenizer(Metaspace).replacement", "expected one character");
    s.replacement = r[0];
    s.prepend = f.flag(p, "add_prefix_space", true, "pre_tokenizer(Metaspace)") ? 1 : 0;
    if (auto it = p.find("prepend_scheme"); it != p.end() && !it->is_null()) {
      const auto scheme = f.str(*it, "Metaspace.prepend_scheme");
      if (scheme != "always" && scheme != "never" && scheme != "first")
        f.fail("pre_tokenizer(Metaspace).prepend_scheme", "expected always, never or first");
      s.prepend = scheme == "always" ? 1 : scheme == "never" ? 0 : 2;
    }
    s.split = f.flag(p, "split", true, "pre_tokenizer(Metaspace)");
    steps.push_back(s);
  } else {
    f.fail("pre_tokenizer.type", detail::cat("unsupported pre-tokenizer \"", type, "\" (supported: Sequence, WhitespaceSplit, Metaspace)"));
  }
}

}  // namespace deepprompt::tokenizer_detail
