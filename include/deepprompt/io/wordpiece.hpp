#pragma once
// BERT's WordPiece tokenizer, as Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece
// (the "fast" tokenizer AutoTokenizer returns), loaded from a vocab.txt or a tokenizer.json.
//
// Per character, in this order: clean_text drops U+0000, U+FFFD and control characters (C*
// except \t \n \r) and turns whitespace into a space; handle_chinese_chars isolates CJK
// ideographs; strip_accents (default: same as lowercase) applies NFD and drops Mn marks;
// lowercase maps each character alone (so a final sigma stays sigma, as in HF's Rust code).
// Then words split at whitespace, each punctuation character is a word of its own, and every
// word becomes greedy longest-match pieces ("##" continuations), or [UNK] when it has more than
// 100 characters or no segmentation. Literal special tokens in the text ([CLS], [MASK], ...,
// the added_tokens of a tokenizer.json) are matched on the raw text first and kept whole.
// Not done: the NFC pass of the slow Python BasicTokenizer (it changes only decomposed input
// to cased models); added tokens with "normalized": true are matched on the raw text too.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "deepprompt/io/tokenizer.hpp"
#include "deepprompt/io/unicode.hpp"

namespace deepprompt {

struct WordPieceOptions {
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: same as lowercase (HF)
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
  bool cleanup_decoded = true;  // HF's clean_up_tokenization_spaces
};

class WordPieceTokenizer : public Tokenizer {
 public:
  /// One token a line (id = line number - 1); [UNK], [CLS], [SEP] must be present, and
  /// [PAD], [UNK], [CLS], [SEP], [MASK] (those present) are special. TokenizerError naming the
  /// file and line on an empty file, an empty line, invalid UTF-8 or a duplicate token.
  static WordPieceTokenizer from_vocab_file(const std::string& path, WordPieceOptions opt = {}) {
    return from_vocab_text(tokenizer_detail::read_file(path), std::move(opt), path);
  }

  /// The same from the text of a vocab.txt; `path` names it in errors. LimitError when it has
  /// more than limits().vocab_size lines or a token longer than limits().token_bytes.
  static WordPieceTokenizer from_vocab_text(std::string_view text, WordPieceOptions opt = {},
                                            const std::string& path = "vocab.txt") {
    const Limits& lim = limits();
    std::vector<std::string> tokens;
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      auto line = std::string(text.substr(pos, nl - pos));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto where = detail::cat(path, ":", tokens.size() + 1);
      check_limit(where, "token length", line.size(), lim.token_bytes, "token_bytes");
      check_limit(where, "vocabulary size", tokens.size() + 1, lim.vocab_size, "vocab_size");
      if (line.empty()) throw TokenizerError(where + ": empty token");
      if (unicode::sanitize_utf8(line) != line) throw TokenizerError(where + ": invalid UTF-8");
      tokens.push_back(std::move(line));
      pos = nl + 1;
    }
    return from_vocab(std::move(tokens), std::move(opt), path);
  }

  /// The same from tokens in id order; `source` names them in errors.
  static WordPieceTokenizer from_vocab(std::vector<std::string> tokens, WordPieceOptions opt,
                                       const std::string& source = "vocabulary") {
    if (tokens.empty()) throw TokenizerError(source + ": empty vocabulary");
    check_limit(source, "vocabulary size", tokens.size(), limits().vocab_size, "vocab_size");
    WordPieceTokenizer t;
    t.opt_ = std::move(opt);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      auto [it, fresh] = t.vocab_.emplace(tokens[i], static_cast<std::int32_t>(i));
      if (!fresh)
        throw TokenizerError(detail::cat(source, ":", i + 1, ": duplicate token \"", tokens[i],
                                         "\" (first at line ", it->second + 1, ")"));
    }
    for (const auto& tok : tokens) t.note_token(tok, source);
    t.id_to_token_ = std::move(tokens);
    t.has_id_.assign(t.id_to_token_.size(), true);
    t.check_unk(source);
    for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
      if (auto id = t.token_to_id(s)) t.add_token(unicode::to_u32(s), *id, true);
    auto special = [&](const char* s, std::int32_t type) {
      auto id = t.token_to_id(s);
      if (!id) throw TokenizerError(detail::cat(source, ": the vocabulary has no ", s, " token"));
      return TemplateItem{-1, {*id}, {s}, type};
    };
    t.post_.single = {special("[CLS]", 0), {0, {}, {}, 0}, special("[SEP]", 0)};
    t.post_.pair = {special("[CLS]", 0), {0, {}, {}, 0}, special("[SEP]", 0), {1, {}, {}, 1}, special("[SEP]", 1)};
    return t;
  }

  /// The same from the text of a tokenizer.json; `source` names it in errors.
  static WordPieceTokenizer from_tokenizer_json_text(std::string_view text, const std::string& source = "tokenizer.json") {
    return from_json(tokenizer_detail::parse_json(text, tokenizer_detail::JsonFile{source}), source);
  }

  /// A Hugging Face tokenizer.json whose model is WordPiece (model.type "WordPiece", or no type
  /// with a WordPiece-shaped model as older files have) and whose normalizer is BertNormalizer.
  static WordPieceTokenizer from_tokenizer_json(const std::string& path) {
    const tokenizer_detail::JsonFile f{path};
    return from_json(tokenizer_detail::parse_json(tokenizer_detail::read_file(path), f), path);
  }

  static WordPieceTokenizer from_json(const nlohmann::json& root, const std::string& source) {
    const tokenizer_detail::JsonFile f{source};
    const auto& model = f.at(root, "model", "(root)");
    if (auto it = model.find("type"); it != model.end() && f.str(*it, "model.type") != "WordPiece")
      f.fail("model.type", detail::cat("expected \"WordPiece\", got \"", it->get<std::string>(), "\""));
    WordPieceTokenizer t;
    auto& o = t.opt_;
    if (auto it = model.find("unk_token"); it != model.end()) o.unk_token = f.str(*it, "model.unk_token");
    if (auto it = model.find("continuing_subword_prefix"); it != model.end() && !it->is_null())
      o.continuing_subword_prefix = f.str(*it, "model.continuing_subword_prefix");
    if (auto it = model.find("max_input_chars_per_word"); it != model.end())
      o.max_input_chars_per_word = static_cast<std::size_t>(f.integer(*it, "model.max_input_chars_per_word"));
    const auto& vocab = f.at(model, "vocab", "model");
    if (!vocab.is_object()) f.fail("model.vocab", "expected an object {token: id}");
    if (vocab.empty()) f.fail("model.vocab", "empty vocabulary");
    check_limit(detail::cat(source, ": model.vocab"), "vocabulary size", vocab.size(), limits().vocab_size, "vocab_size");
    for (const auto& [tok, idj] : vocab.items()) {
      const auto where = "model.vocab[\"" + tok + "\"]";
      check_limit(detail::cat(source, ": ", where), "token length", tok.size(), limits().token_bytes, "token_bytes");
      const auto id = f.token_id(idj, where);
      t.set_id(static_cast<std::size_t>(id), tok, f);
      t.vocab_.emplace(tok, id);
      t.note_token(tok, source);
    }
    t.check_unk(source);
    t.read_normalizer(root, f);
    if (auto it = root.find("pre_tokenizer"); it != root.end() && !it->is_null()) {
      const auto type = f.str(f.at(*it, "type", "pre_tokenizer"), "pre_tokenizer.type");
      if (type != "BertPreTokenizer") f.fail("pre_tokenizer.type", "only BertPreTokenizer is supported, got \"" + type + "\"");
    }
    if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
      if (!it->is_array()) f.fail("added_tokens", "expected an array");
      for (const auto& a : *it) {
        const auto content = f.token(f.at(a, "content", "added_tokens[]"), "added_tokens[].content");
        const auto id = f.token_id(f.at(a, "id", "added_tokens[]"), "added_tokens[].id");
        if (t.vocab_.emplace(content, id).second) {
          t.set_id(static_cast<std::size_t>(id), content, f);
          t.note_token(content, source);
        }
        t.add_token(unicode::to_u32(content), id, f.flag(a, "special", false, "added_tokens[]"));
      }
    }
    if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
      o.cleanup_decoded = f.flag(*it, "cleanup", true, "decoder");
      if (auto p = it->find("prefix"); p != it->end()) o.continuing_subword_prefix = f.str(*p, "decoder.prefix");
    }
    t.post_ = tokenizer_detail::parse_post_processor(root, f, PostProcessor{});
    return t;
  }

  const WordPieceOptions& options() const { return opt_; }
  /// Changes lower-casing (and accent stripping, unless it was set explicitly).
  void set_lowercase(bool on) { opt_.lowercase = on; }

  std::size_t vocab_size() const override { return id_to_token_.size(); }
  std::optional<std::int32_t> token_to_id(std::string_view token) const override {
    auto it = vocab_.find(std::string(token));
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  std::string id_to_token(std::int32_t id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() || !has_id_[static_cast<std::size_t>(id)])
      throw TokenizerError(detail::cat("WordPieceTokenizer: id ", id, " is not in the vocabulary (size ", id_to_token_.size(), ")"));
    return id_to_token_[static_cast<std::size_t>(id)];
  }

  /// Tokens joined with spaces, "##" continuations glued, then HF's clean-up of the spaces
  /// before . ? ! , and English contractions ('s 're 've 'm n't).
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = true) const override {
    std::string out;
    bool first = true;
    const auto& prefix = opt_.continuing_subword_prefix;
    for (auto id : ids) {
      auto tok = id_to_token(id);
      if (skip_special_tokens && is_special(id)) continue;
      if (!first && !prefix.empty() && tok.compare(0, prefix.size(), prefix) == 0) {
        out.append(tok, prefix.size());
      } else {
        if (!first) out += ' ';
        out += tok;
      }
      first = false;
    }
    if (opt_.cleanup_decoded)
      for (auto [from, to] : {std::pair{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                              {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
        replace_all(out, from, to);
    return out;
  }

  /// The words of BertNormalizer + BertPreTokenizer (tests and debugging).
  std::vector<std::string> pre_tokenize(std::string_view text) const {
    std::vector<std::string> words;
    auto chars = unicode::decode_utf8(text);
    for_each_word(chars, 0, chars.size(), [&](const std::vector<NChar>& w) {
      std::string s;
      for (const auto& c : w) unicode::append_utf8(s, c.cp);
      words.push_back(std::move(s));
    });
    return words;
  }

 protected:
  std::vector<Piece> tokenize(const std::vector<unicode::DecodedChar>& chars) const override {
    std::vector<Piece> out;
    std::int32_t word = 0;
    split_added(
        chars,
        [&](std::size_t b, std::size_t e) {
          for_each_word(chars, b, e, [&](const std::vector<NChar>& w) { word_pieces(w, word++, out); });
        },
        [&](std::size_t b, std::size_t e, const AddedToken& tok) {
          out.push_back({tok.id, id_to_token(tok.id), static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e), word++});
        });
    return out;
  }

 private:
  struct NChar {
    char32_t cp;
    std::uint32_t src;  // index of the original code point
  };

  static void replace_all(std::string& s, std::string_view from, std::string_view to) {
    std::string out;
    std::size_t pos = 0;
    for (auto hit = s.find(from); hit != std::string::npos; hit = s.find(from, pos)) {
      out.append(s, pos, hit - pos).append(to);
      pos = hit + from.size();
    }
    out.append(s, pos);
    s = std::move(out);
  }

  // Keeps the length of the longest token (WordPiece tries no longer candidate).
  void note_token(const std::string& tok, const std::string&) { max_token_bytes_ = std::max(max_token_bytes_, tok.size()); }

  void check_unk(const std::string& source) const {
    if (!token_to_id(opt_.unk_token))
      throw TokenizerError(detail::cat(source, ": the vocabulary has no unknown token \"", opt_.unk_token, "\""));
  }

  void set_id(std::size_t id, const std::string& tok, const tokenizer_detail::JsonFile& f) {
    if (id >= id_to_token_.size()) {
      id_to_token_.resize(id + 1);
      has_id_.resize(id + 1, false);
    }
    if (has_id_[id] && id_to_token_[id] != tok)
      f.fail("model.vocab", detail::cat("id ", id, " given to both \"", id_to_token_[id], "\" and \"", tok, "\""));
    id_to_token_[id] = tok;
    has_id_[id] = true;
  }

  void read_normalizer(const nlohmann::json& root, const tokenizer_detail::JsonFile& f) {
    auto it = root.find("normalizer");
    if (it == root.end() || it->is_null()) {
      opt_.lowercase = opt_.clean_text = opt_.handle_chinese_chars = false;
      return;
    }
    const auto type = f.str(f.at(*it, "type", "normalizer"), "normalizer.type");
    if (type != "BertNormalizer") f.fail("normalizer.type", "only BertNormalizer is supported, got \"" + type + "\"");
    opt_.clean_text = f.flag(*it, "clean_text", true, "normalizer");
    opt_.handle_chinese_chars = f.flag(*it, "handle_chinese_chars", true, "normalizer");
    opt_.lowercase = f.flag(*it, "lowercase", true, "normalizer");
    if (auto s = it->find("strip_accents"); s != it->end() && !s->is_null())
      opt_.strip_accents = f.boolean(*s, "normalizer.strip_accents");
  }

  // BertNormalizer on chars[b, e), then BertPreTokenizer: calls on_word(word) for each word.
  template <class OnWord>
  void for_each_word(const std::vector<unicode::DecodedChar>& chars, std::size_t b, std::size_t e, OnWord&& on_word) const {
    const bool strip = opt_.strip_accents.value_or(opt_.lowercase);
    std::vector<NChar> word;
    auto flush = [&] {
      if (!word.empty()) on_word(word);
      word.clear();
    };
    auto emit = [&](char32_t c, std::uint32_t src) {  // pre-tokenizer on one normalised char
      if (unicode::is_whitespace(c)) {
        flush();
      } else if (unicode::is_punctuation(c)) {
        flush();
        word.push_back({c, src});
        flush();
      } else {
        word.push_back({c, src});
      }
    };
    auto lower = [&](char32_t c, std::uint32_t src) {
      if (opt_.lowercase) unicode::to_lower(c, [&](char32_t l) { emit(l, src); });
      else emit(c, src);
    };
    for (std::size_t i = b; i < e; ++i) {
      char32_t c = chars[i].cp;
      const auto src = static_cast<std::uint32_t>(i);
      if (opt_.clean_text) {
        if (c == 0 || c == unicode::kReplacement || unicode::is_control(c)) continue;
        if (unicode::is_whitespace(c)) c = ' ';
      }
      const bool cjk = opt_.handle_chinese_chars && unicode::is_cjk_ideograph(c);
      if (cjk) flush();
      if (strip) unicode::strip_accents(c, [&](char32_t s) { lower(s, src); });
      else lower(c, src);
      if (cjk) flush();
    }
    flush();
  }

  // WordPiece of one word: greedy longest match, or the unknown token for the whole word.
  void word_pieces(const std::vector<NChar>& w, std::int32_t word, std::vector<Piece>& out) const {
    std::string utf8;
    std::vector<std::size_t> at;  // byte position of each char in utf8, then the total
    for (const auto& c : w) {
      at.push_back(utf8.size());
      unicode::append_utf8(utf8, c.cp);
    }
    at.push_back(utf8.size());
    const auto n = w.size();
    const auto first_out = out.size();
    bool bad = n > opt_.max_input_chars_per_word;
    std::string key;
    for (std::size_t start = 0; !bad && start < n;) {
      // A candidate longer than the longest token cannot match: start at the longest that may
      // (keeps a word O(n * longest token) instead of O(n^2)).
      std::size_t end = static_cast<std::size_t>(
          std::upper_bound(at.begin() + static_cast<std::ptrdiff_t>(start), at.end(), at[start] + max_token_bytes_) -
          at.begin()) - 1;
      std::optional<std::int32_t> id;
      for (; end > start; --end) {
        key.assign(start > 0 ? opt_.continuing_subword_prefix : std::string());
        key.append(utf8, at[start], at[end] - at[start]);
        if (auto it = vocab_.find(key); it != vocab_.end()) {
          id = it->second;
          break;
        }
      }
      if (!id) {
        bad = true;
        break;
      }
      out.push_back({*id, key, w[start].src, w[end - 1].src + 1, word});
      start = end;
    }
    if (bad) {
      out.resize(first_out);
      out.push_back({*token_to_id(opt_.unk_token), opt_.unk_token, w.front().src, w.back().src + 1, word});
    }
  }

  WordPieceOptions opt_;
  std::unordered_map<std::string, std::int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::size_t max_token_bytes_ = 0;
};

}  // namespace deepprompt
