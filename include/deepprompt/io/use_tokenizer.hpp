#pragma once
// The tokenizer of the Universal Sentence Encoder (Lite) for TF.js: a SentencePiece-style
// vocabulary of [piece, score] pairs (vocab.json) and the Viterbi segmentation of the reference
// implementation, @tensorflow-models/universal-sentence-encoder 1.3.3 (src/tokenizer), id for id.
//
// What the reference does, and so what encode() does:
//  - the text is NFKC-normalised; if not empty, U+2581 ("▁") is put in front and every space
//    U+0020 (only that character) becomes U+2581;
//  - pieces are the vocabulary entries from index 6 on (0 is the unknown piece "\uFFFD", 1-5
//    are reserved and never produced); a piece listed twice keeps its last index and score;
//    a null score counts as 0;
//  - at each position the candidates are the pieces that start there; where none does, the
//    single character is a candidate with score 0 and id 0 (unknown);
//  - best[end] is the best total score of a segmentation of the first `end` characters, and 0
//    also means "not reached yet": a candidate replaces it when best[end] == 0 or its score is
//    >= best[end] (so ties go to the later start, i.e. the shorter last piece), candidates are
//    tried by increasing start;
//  - a position that no candidate reaches keeps best 0 and id 0 (and so beats every real
//    segmentation, whose scores are negative); the backward pass steps back by the length of
//    the chosen piece's text (of "\uFFFD" for id 0);
//  - runs of consecutive unknown ids are merged into one.
// Characters are UTF-16 code units, as in the reference (its TypeScript for-of over a string is
// compiled to an index loop): a character outside the BMP is two characters (its surrogates),
// matched against pieces split the same way, and the backward pass steps by these units.
// Scores are summed in double.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "file.hpp"
#include "json.hpp"
#include "limits.hpp"
#include "nfkc.hpp"
#include "unicode.hpp"

namespace deepprompt {

/// A loaded USE vocabulary and its tokenizer (see the file comment for the exact rules).
/// ensures: encode() gives the ids of the reference TF.js tokenizer, each in [0, vocab_size()).
class UseTokenizer {
 public:
  /// Entries 0..kReserved-1 are special and are not matched in text.
  static constexpr std::size_t kReserved = 6;

  /// Reads vocab.json. Throws IoError (cannot read) or FormatError (malformed; a LimitError when
  /// a bound of io/limits.hpp is exceeded).
  static UseTokenizer from_file(const std::filesystem::path& vocab_json) {
    const auto f = MappedFile::open(vocab_json, /*try_mmap=*/true);
    check_limit(detail::cat("USE vocabulary '", vocab_json.string(), "'"), "file size", f.size(), limits().file_bytes,
                "file_bytes");
    return from_json(std::string_view(reinterpret_cast<const char*>(f.bytes().data()), f.size()), vocab_json.string());
  }

  /// Parses the text of a vocab.json: a JSON array of [piece (string), score (number or null)],
  /// at least one entry, entry 0 (the unknown piece) not empty. `source` names it in messages.
  static UseTokenizer from_json(std::string_view text, std::string_view source = "<memory>") {
    const std::string ctx = detail::cat("USE vocabulary '", source, "'");
    auto fail = [&](std::string_view what) -> void { throw FormatError(detail::cat(ctx, ": ", what)); };
    nlohmann::json doc;
    try {
      doc = detail::parse_json_limited(text, ctx);
    } catch (const nlohmann::json::exception& e) {
      fail(detail::cat("invalid JSON: ", detail::printable(e.what())));
    }
    if (!doc.is_array()) fail("not a JSON array of [piece, score] pairs");
    if (doc.empty()) fail("the vocabulary is empty (entry 0, the unknown piece, is required)");
    check_limit(ctx, "vocabulary size", doc.size(), limits().vocab_size, "vocab_size");
    UseTokenizer t;
    t.pieces_.reserve(doc.size());
    for (std::size_t i = 0; i < doc.size(); ++i) {
      const auto& e = doc[i];
      if (!e.is_array() || e.size() < 2 || !e[0].is_string() || !(e[1].is_number() || e[1].is_null()))
        fail(detail::cat("entry ", i, " is not a [piece (string), score (number or null)] pair"));
      Piece p;
      p.text = e[0].get<std::string>();
      check_limit(detail::cat(ctx, ": entry ", i), "piece length in bytes", p.text.size(), limits().token_bytes,
                  "token_bytes");
      p.score = e[1].is_null() ? 0.0 : e[1].get<double>();
      std::u16string units = to_utf16(unicode::to_u32(p.text));
      p.utf16_length = units.size();
      if (i >= kReserved && !units.empty()) {
        t.max_piece_ = std::max(t.max_piece_, units.size());
        t.index_.insert_or_assign(std::move(units), static_cast<std::int32_t>(i));
      }
      t.pieces_.push_back(std::move(p));
    }
    if (t.pieces_[0].utf16_length == 0) fail("entry 0 (the unknown piece) is empty");
    return t;
  }

  std::size_t vocab_size() const { return pieces_.size(); }
  /// The text and score of entry `id`. requires: 0 <= id < vocab_size().
  const std::string& piece(std::int32_t id) const { return pieces_.at(static_cast<std::size_t>(id)).text; }
  double score(std::int32_t id) const { return pieces_.at(static_cast<std::size_t>(id)).score; }

  /// The text after the reference's preprocessing (NFKC, "▁" in front, spaces as "▁"), as
  /// UTF-16 code units. Invalid UTF-8 becomes U+FFFD first.
  static std::u16string preprocess(std::string_view utf8) {
    std::u32string s = unicode::nfkc(unicode::to_u32(utf8));
    if (s.empty()) return {};
    std::replace(s.begin(), s.end(), char32_t{' '}, kSeparator);
    s.insert(s.begin(), kSeparator);
    return to_utf16(s);
  }

  /// `s` as UTF-16 code units.
  static std::u16string to_utf16(std::u32string_view s) {
    std::u16string out;
    out.reserve(s.size());
    for (char32_t c : s) {
      if (c > 0xFFFF) {
        out.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
        out.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
      } else {
        out.push_back(static_cast<char16_t>(c));
      }
    }
    return out;
  }

  /// The ids of `utf8` (see the file comment). Time O(characters * longest piece).
  std::vector<std::int32_t> encode(std::string_view utf8) const {
    const std::u16string s = preprocess(utf8);
    const std::size_t n = s.size();
    // matches[i]: (length, id) of the pieces starting at i, by increasing length; id -1 marks
    // the unknown single character of a position where no piece starts.
    std::vector<std::vector<std::pair<std::size_t, std::int32_t>>> matches(n);
    std::u16string key;
    for (std::size_t i = 0; i < n; ++i) {
      key.clear();
      for (std::size_t len = 1; len <= max_piece_ && i + len <= n; ++len) {
        key.push_back(s[i + len - 1]);
        if (auto it = index_.find(key); it != index_.end()) matches[i].emplace_back(len, it->second);
      }
      if (matches[i].empty()) matches[i].emplace_back(1, -1);
    }
    std::vector<double> best(n + 1, 0.0);
    std::vector<std::int32_t> words(n + 1, 0);
    const std::size_t span = std::max<std::size_t>(max_piece_, 1);
    for (std::size_t end = 1; end <= n; ++end) {
      for (std::size_t start = end > span ? end - span : 0; start < end; ++start) {
        for (const auto& [len, id] : matches[start]) {
          if (start + len != end) continue;
          const double score = (id < 0 ? 0.0 : pieces_[static_cast<std::size_t>(id)].score) + best[start];
          if (best[end] == 0.0 || score >= best[end]) {
            best[end] = score;
            words[end] = id < 0 ? 0 : id;
          }
        }
      }
    }
    std::vector<std::int32_t> out;
    for (std::ptrdiff_t at = static_cast<std::ptrdiff_t>(n); at > 0;) {
      const std::int32_t id = words[static_cast<std::size_t>(at)];
      if (!(id == 0 && !out.empty() && out.back() == 0)) out.push_back(id);
      at -= static_cast<std::ptrdiff_t>(pieces_[static_cast<std::size_t>(id)].utf16_length);
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

 private:
  static constexpr char32_t kSeparator = 0x2581;
  struct Piece {
    std::string text;
    double score = 0.0;
    std::size_t utf16_length = 0;
  };
  std::vector<Piece> pieces_;
  std::unordered_map<std::u16string, std::int32_t> index_;  // piece (UTF-16) -> id
  std::size_t max_piece_ = 0;
};

}  // namespace deepprompt
