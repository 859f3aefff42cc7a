#pragma once
// What every tokenizer shares: the Encoding handed to a model, the base class that turns pieces
// into an Encoding (truncation, [CLS]/[SEP] or </s> templates, offsets), literal added tokens,
// and the JSON helpers of the tokenizer.json readers.
// Tokenizer files are bounded by limits() (io/limits.hpp): file size, JSON depth, vocabulary
// size and token length; exceeding one raises LimitError naming it.
//
// Offsets: `offsets` are BYTE offsets [begin, end) into the original UTF-8 text (usable with
// std::string::substr); `char_offsets` are CODE POINT offsets, the convention of Hugging Face's
// Python API (an invalid UTF-8 sequence counts as the one U+FFFD that replaces it). For a pair,
// the offsets of the second sequence refer to the second text. Special tokens get (0, 0).
//
// Truncation is HF tokenizers' "longest_first" (right side): with n1 <= n2 the lengths to keep,
// only the longer one is cut when that suffices, else both are cut to max/2 (the first gets
// max/2 rounded down, the second the rest). Overflowing tokens are dropped.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepprompt/core/error.hpp"
#include "deepprompt/io/json.hpp"
#include "deepprompt/io/limits.hpp"
#include "deepprompt/io/unicode.hpp"

namespace deepprompt {

/// A malformed tokenizer file or an unusable configuration; the message names the file.
class TokenizerError : public Error {
 public:
  using Error::Error;
};

/// [begin, end) of a token in its text.
struct Offset {
  std::size_t begin = 0, end = 0;
  friend bool operator==(const Offset&, const Offset&) = default;
};

/// A tokenised sequence or pair, ready for a model. All vectors have size() entries.
struct Encoding {
  std::vector<std::int32_t> ids;
  std::vector<std::int32_t> type_ids;        // token type (segment) ids from the template
  std::vector<std::string> tokens;
  std::vector<Offset> offsets;               // bytes in the original text (see the file comment)
  std::vector<Offset> char_offsets;          // code points in the original text
  std::vector<std::int32_t> sequence_ids;    // 0 first text, 1 second text, -1 special token
  std::vector<std::int32_t> word_ids;        // pre-tokenised word within its text, -1 special
  std::vector<std::uint8_t> special_tokens_mask;
  std::vector<std::uint8_t> attention_mask;  // 1 real, 0 padding
  std::size_t size() const { return ids.size(); }
};

struct EncodeOptions {
  std::size_t max_length = 0;       // 0: no truncation; counts the special tokens
  bool add_special_tokens = true;   // the template's [CLS]/[SEP] (BERT) or </s> (T5)
};

/// Pads `e` on the right to `length` tokens (no-op when already as long).
inline void pad(Encoding& e, std::size_t length, std::int32_t pad_id, const std::string& pad_token) {
  while (e.size() < length) {
    e.ids.push_back(pad_id);
    e.type_ids.push_back(0);
    e.tokens.push_back(pad_token);
    e.offsets.push_back({});
    e.char_offsets.push_back({});
    e.sequence_ids.push_back(-1);
    e.word_ids.push_back(-1);
    e.special_tokens_mask.push_back(1);
    e.attention_mask.push_back(0);
  }
}

/// One token of a text before the template: code-point offsets into that text.
struct Piece {
  std::int32_t id;
  std::string token;
  std::uint32_t begin, end;  // code points
  std::int32_t word;         // -1 for a literal added token
};

/// One item of a post-processing template: a text (0 = A, 1 = B) or special tokens.
struct TemplateItem {
  int sequence = -1;  // -1: special tokens below
  std::vector<std::int32_t> ids;
  std::vector<std::string> tokens;
  std::int32_t type_id = 0;
};

/// HF's TemplateProcessing: e.g. BERT "[CLS] $A [SEP]" and "[CLS] $A [SEP] $B:1 [SEP]:1".
struct PostProcessor {
  std::vector<TemplateItem> single{{0, {}, {}, 0}}, pair{{0, {}, {}, 0}, {1, {}, {}, 1}};
  std::size_t added(bool is_pair) const {
    std::size_t n = 0;
    for (const auto& it : is_pair ? pair : single) n += it.ids.size();
    return n;
  }
};

/// Tokens matched literally in the raw text before normalisation ([CLS], [MASK], </s>, ...).
struct AddedToken {
  std::u32string content;
  std::int32_t id;
  bool special;
};

/// Base of the tokenizers: subclasses split one text into pieces; this class does the rest.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  Encoding encode(std::string_view text, const EncodeOptions& opt = {}) const {
    auto chars = unicode::decode_utf8(text);
    auto a = tokenize(chars);
    truncate(a, nullptr, opt);
    return assemble(a, chars, nullptr, nullptr, post_.single, opt.add_special_tokens);
  }
  /// A pair; without special tokens the template still gives the token types (HF's behaviour).
  Encoding encode(std::string_view text, std::string_view pair, const EncodeOptions& opt = {}) const {
    auto ca = unicode::decode_utf8(text), cb = unicode::decode_utf8(pair);
    auto a = tokenize(ca), b = tokenize(cb);
    truncate(a, &b, opt);
    return assemble(a, ca, &b, &cb, post_.pair, opt.add_special_tokens);
  }

  /// Text of `ids`; skip_special_tokens drops the special added tokens (HF's semantics,
  /// [UNK] included). Throws TokenizerError on an id outside the vocabulary.
  virtual std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = true) const = 0;
  virtual std::size_t vocab_size() const = 0;
  virtual std::optional<std::int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(std::int32_t id) const = 0;

  bool is_special(std::int32_t id) const { return special_ids_.count(id) != 0; }
  const PostProcessor& post_processor() const { return post_; }
  void set_post_processor(PostProcessor p) { post_ = std::move(p); }

 protected:
  /// The pieces of one text (no template, no truncation).
  virtual std::vector<Piece> tokenize(const std::vector<unicode::DecodedChar>& text) const = 0;

  /// Splits chars[begin, end) at literal added tokens: calls text(b, e) for the plain parts and
  /// added(b, e, token) for matches (leftmost, then longest).
  template <class Text, class Added>
  void split_added(const std::vector<unicode::DecodedChar>& chars, Text&& text, Added&& added) const {
    std::size_t start = 0, i = 0;
    while (i < chars.size()) {
      const AddedToken* best = nullptr;
      if (auto it = added_first_.find(chars[i].cp); it != added_first_.end())
        for (std::size_t k : it->second) {
          const auto& t = added_tokens_[k].content;
          if (t.size() > chars.size() - i || (best && t.size() <= best->content.size())) continue;
          std::size_t j = 0;
          while (j < t.size() && chars[i + j].cp == t[j]) ++j;
          if (j == t.size()) best = &added_tokens_[k];
        }
      if (!best) {
        ++i;
        continue;
      }
      if (start < i) text(start, i);
      added(i, i + best->content.size(), *best);
      i += best->content.size();
      start = i;
    }
    if (start < chars.size()) text(start, chars.size());
  }

  void add_token(std::u32string content, std::int32_t id, bool special) {
    if (content.empty()) return;
    added_first_[content[0]].push_back(added_tokens_.size());
    added_tokens_.push_back({std::move(content), id, special});
    if (special) special_ids_.insert(id);
  }

  PostProcessor post_;
  std::vector<AddedToken> added_tokens_;
  std::unordered_map<char32_t, std::vector<std::size_t>> added_first_;
  std::unordered_set<std::int32_t> special_ids_;

 private:
  void truncate(std::vector<Piece>& a, std::vector<Piece>* b, const EncodeOptions& opt) const {
    if (opt.max_length == 0) return;
    const std::size_t specials = opt.add_special_tokens ? post_.added(b != nullptr) : 0;
    const std::size_t max = opt.max_length > specials ? opt.max_length - specials : 0;
    const std::size_t total = a.size() + (b ? b->size() : 0);
    if (total <= max) return;
    if (!b) {
      a.resize(max);
      return;
    }
    std::size_t n1 = a.size(), n2 = b->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    n2 = n1 > max ? n1 : std::max(n1, max - n1);
    if (n1 + n2 > max) {
      n1 = max / 2;
      n2 = n1 + max % 2;
    }
    if (swap) std::swap(n1, n2);
    a.resize(std::min(a.size(), n1));
    b->resize(std::min(b->size(), n2));
  }

  static Encoding assemble(const std::vector<Piece>& a, const std::vector<unicode::DecodedChar>& ca,
                           const std::vector<Piece>* b, const std::vector<unicode::DecodedChar>* cb,
                           const std::vector<TemplateItem>& tmpl, bool specials) {
    Encoding e;
    auto push = [&e](std::int32_t id, std::string tok, std::int32_t type, Offset bytes, Offset cps,
                     std::int32_t seq, std::int32_t word) {
      e.ids.push_back(id);
      e.type_ids.push_back(type);
      e.tokens.push_back(std::move(tok));
      e.offsets.push_back(bytes);
      e.char_offsets.push_back(cps);
      e.sequence_ids.push_back(seq);
      e.word_ids.push_back(word);
      e.special_tokens_mask.push_back(seq < 0 ? 1 : 0);
      e.attention_mask.push_back(1);
    };
    for (const auto& item : tmpl) {
      if (item.sequence < 0) {
        if (specials)
          for (std::size_t k = 0; k < item.ids.size(); ++k) push(item.ids[k], item.tokens[k], item.type_id, {}, {}, -1, -1);
        continue;
      }
      const auto& pieces = item.sequence == 0 ? a : *b;
      const auto& chars = item.sequence == 0 ? ca : *cb;
      for (const auto& p : pieces) {
        Offset bytes{};
        if (p.begin < p.end) bytes = {chars[p.begin].byte_begin, chars[p.end - 1].byte_end};
        else if (p.begin < chars.size()) bytes = {chars[p.begin].byte_begin, chars[p.begin].byte_begin};
        else if (!chars.empty()) bytes = {chars.back().byte_end, chars.back().byte_end};
        push(p.id, p.token, item.type_id, bytes, {p.begin, p.end}, item.sequence, p.word);
      }
    }
    return e;
  }
};

namespace tokenizer_detail {

/// Reads a whole file; TokenizerError naming it if it cannot be opened, LimitError when it is
/// larger than limits().file_bytes.
inline std::string read_file(const std::string& path) {
  std::error_code ec;
  if (const auto size = std::filesystem::file_size(path, ec); !ec)
    check_limit(path, "file size", size, limits().file_bytes, "file_bytes");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw TokenizerError(path + ": cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// A tokenizer.json being read: every error names the file and the JSON path.
struct JsonFile {
  std::string path;
  [[noreturn]] void fail(std::string_view where, std::string_view what) const {
    throw TokenizerError(detail::cat(path, ": ", where, ": ", what));
  }
  const nlohmann::json& at(const nlohmann::json& obj, const char* key, std::string_view where) const {
    if (!obj.is_object()) fail(where, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(where, detail::cat("missing field \"", key, "\""));
    return *it;
  }
  std::string str(const nlohmann::json& v, std::string_view where) const {
    if (!v.is_string()) fail(where, "expected a string");
    return v.get<std::string>();
  }
  /// A token's text, at most limits().token_bytes long (LimitError otherwise).
  std::string token(const nlohmann::json& v, std::string_view where) const {
    auto s = str(v, where);
    check_limit(detail::cat(path, ": ", where), "token length", s.size(), limits().token_bytes, "token_bytes");
    return s;
  }
  /// A token id: an integer in [0, limits().vocab_size) (TokenizerError / LimitError otherwise).
  std::int32_t token_id(const nlohmann::json& v, std::string_view where) const {
    const auto id = integer(v, where);
    if (id < 0 || id > 0x7FFFFFFF) fail(where, detail::cat("id ", id, " out of range"));
    if (static_cast<std::uint64_t>(id) >= limits().vocab_size)
      throw LimitError(detail::cat(path, ": ", where, ": token id ", id, " is not below Limits::vocab_size = ",
                                   limits().vocab_size));
    return static_cast<std::int32_t>(id);
  }
  std::int64_t integer(const nlohmann::json& v, std::string_view where) const {
    if (!v.is_number_integer()) fail(where, "expected an integer");
    return v.get<std::int64_t>();
  }
  bool boolean(const nlohmann::json& v, std::string_view where) const {
    if (!v.is_boolean()) fail(where, "expected true or false");
    return v.get<bool>();
  }
  double number(const nlohmann::json& v, std::string_view where) const {
    if (!v.is_number()) fail(where, "expected a number");
    return v.get<double>();
  }
  /// obj[key] as a bool, `fallback` when absent or null.
  bool flag(const nlohmann::json& obj, const char* key, bool fallback, std::string_view where) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? fallback : boolean(*it, detail::cat(where, ".", key));
  }
};

/// Parses the text of a tokenizer.json; TokenizerError naming the file on a syntax error,
/// LimitError when it nests deeper than limits().json_depth.
inline nlohmann::json parse_json(std::string_view text, const JsonFile& f) {
  try {
    return detail::parse_json_limited(text, f.path);
  } catch (const nlohmann::json::exception& e) {
    f.fail("invalid JSON", e.what());
  }
}

/// post_processor of a tokenizer.json (TemplateProcessing, BertProcessing or null) as a template;
/// `fallback` when null.
inline PostProcessor parse_post_processor(const nlohmann::json& root, const JsonFile& f, PostProcessor fallback) {
  auto it = root.find("post_processor");
  if (it == root.end() || it->is_null()) return fallback;
  const auto& pp = *it;
  const auto type = f.str(f.at(pp, "type", "post_processor"), "post_processor.type");
  PostProcessor out;
  if (type == "BertProcessing") {
    auto special = [&](const char* key) {
      const auto& v = f.at(pp, key, "post_processor");
      if (!v.is_array() || v.size() != 2) f.fail(detail::cat("post_processor.", key), "expected [token, id]");
      return TemplateItem{-1, {f.token_id(v[1], key)}, {f.token(v[0], key)}, 0};
    };
    auto cls = special("cls"), sep = special("sep"), sep1 = sep;
    sep1.type_id = 1;
    out.single = {cls, {0, {}, {}, 0}, sep};
    out.pair = {cls, {0, {}, {}, 0}, sep, {1, {}, {}, 1}, sep1};
    return out;
  }
  if (type != "TemplateProcessing") f.fail("post_processor.type", detail::cat("unsupported \"", type, "\""));
  const auto& specials = f.at(pp, "special_tokens", "post_processor");
  auto parse = [&](const char* key) {
    std::vector<TemplateItem> items;
    const auto& arr = f.at(pp, key, "post_processor");
    const std::string where = detail::cat("post_processor.", key);
    if (!arr.is_array()) f.fail(where, "expected an array");
    for (const auto& e : arr) {
      TemplateItem item;
      if (e.contains("Sequence")) {
        const auto& s = e["Sequence"];
        const auto id = f.str(f.at(s, "id", where), where);
        if (id != "A" && id != "B") f.fail(where, detail::cat("unknown sequence id \"", id, "\""));
        item.sequence = id == "A" ? 0 : 1;
        item.type_id = static_cast<std::int32_t>(f.integer(f.at(s, "type_id", where), where));
      } else if (e.contains("SpecialToken")) {
        const auto& s = e["SpecialToken"];
        const auto id = f.str(f.at(s, "id", where), where);
        const auto& def = f.at(specials, id.c_str(), "post_processor.special_tokens");
        const auto& ids = f.at(def, "ids", where);
        const auto& toks = f.at(def, "tokens", where);
        if (!ids.is_array() || !toks.is_array() || ids.size() != toks.size())
          f.fail(where, detail::cat("special token \"", id, "\" needs equal-length ids and tokens arrays"));
        for (std::size_t k = 0; k < ids.size(); ++k) {
          item.ids.push_back(f.token_id(ids[k], where));
          item.tokens.push_back(f.token(toks[k], where));
        }
        item.type_id = static_cast<std::int32_t>(f.integer(f.at(s, "type_id", where), where));
      } else {
        f.fail(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
      items.push_back(std::move(item));
    }
    return items;
  };
  out.single = parse("single");
  out.pair = parse("pair");
  // encode(text) has no second text for a $B to take (it was a null dereference).
  for (const auto& item : out.single)
    if (item.sequence == 1) f.fail("post_processor.single", "the single-text template uses sequence B");
  return out;
}

}  // namespace tokenizer_detail
}  // namespace deepprompt
