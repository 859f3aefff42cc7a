#pragma once
// SentencePiece's Unigram model read from a Hugging Face tokenizer.json (model.type "Unigram",
// vocab [[piece, score], ...], unk_id), e.g. T5's: normalizer (Precompiled, Replace, ...),
// pre-tokenizer (WhitespaceSplit, Metaspace "▁" with add_prefix_space / prepend_scheme),
// the best segmentation of each word by Viterbi, template (T5: "$A </s>"), decoder (Metaspace).
//
// Viterbi exactly as SentencePiece's EncodeOptimized and HF's Unigram: forward over character
// positions, a candidate replaces the best path into its end only when strictly better (ties
// keep the earlier start), with SentencePiece's mixed arithmetic (path scores kept in float, a
// candidate formed and compared in double; HF sums in double, so a near-tie between two orders
// of the same pieces may fall differently there); a position with no one-character piece gets
// the unknown piece with
// score min_score - 10; consecutive unknowns fuse into one; byte_fallback emits <0xXX> pieces.
// Offsets of a piece span the original characters it came from; an inserted "▁" spans nothing.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "deepprompt/io/tokenizer.hpp"
#include "deepprompt/io/unigram_normalize.hpp"

namespace deepprompt {

class UnigramTokenizer : public Tokenizer {
 public:
  static UnigramTokenizer from_tokenizer_json(const std::string& path) {
    const tokenizer_detail::JsonFile f{path};
    return from_json(tokenizer_detail::parse_json(tokenizer_detail::read_file(path), f), path);
  }

  /// The same from the text of a tokenizer.json; `source` names it in errors.
  static UnigramTokenizer from_tokenizer_json_text(std::string_view text, const std::string& source = "tokenizer.json") {
    return from_json(tokenizer_detail::parse_json(text, tokenizer_detail::JsonFile{source}), source);
  }

  /// From a parsed tokenizer.json; `source` names it in errors.
  static UnigramTokenizer from_json(const nlohmann::json& root, const std::string& source) {
    const tokenizer_detail::JsonFile f{source};
    const auto& model = f.at(root, "model", "(root)");
    const auto type = f.str(f.at(model, "type", "model"), "model.type");
    if (type != "Unigram") f.fail("model.type", "expected \"Unigram\", got \"" + type + "\"");
    UnigramTokenizer t;
    const auto& vocab = f.at(model, "vocab", "model");
    if (!vocab.is_array() || vocab.empty()) f.fail("model.vocab", "expected a non-empty array of [piece, score]");
    check_limit(detail::cat(source, ": model.vocab"), "vocabulary size", vocab.size(), limits().vocab_size, "vocab_size");
    t.min_score_ = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < vocab.size(); ++i) {
      const auto where = detail::cat("model.vocab[", i, "]");
      const auto& e = vocab[i];
      if (!e.is_array() || e.size() != 2) f.fail(where, "expected [piece, score]");
      auto piece = f.token(e[0], where);
      const double score = f.number(e[1], where);
      if (!t.index_.emplace(piece, static_cast<std::int32_t>(i)).second) f.fail(where, "duplicate piece \"" + piece + "\"");
      t.max_piece_bytes_ = std::max(t.max_piece_bytes_, piece.size());
      t.min_score_ = std::min(t.min_score_, score);
      t.pieces_.push_back(std::move(piece));
      t.scores_.push_back(score);
    }
    if (auto it = model.find("unk_id"); it != model.end() && !it->is_null()) {
      const auto id = f.integer(*it, "model.unk_id");
      if (id < 0 || static_cast<std::size_t>(id) >= t.pieces_.size()) f.fail("model.unk_id", "outside the vocabulary");
      t.unk_id_ = static_cast<std::int32_t>(id);
    }
    t.byte_fallback_ = f.flag(model, "byte_fallback", false, "model");
    if (auto it = root.find("normalizer"); it != root.end()) tokenizer_detail::parse_normalizer(*it, f, t.normalize_);
    if (auto it = root.find("pre_tokenizer"); it != root.end()) tokenizer_detail::parse_pre_tokenizer(*it, f, t.pre_);
    if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
      if (!it->is_array()) f.fail("added_tokens", "expected an array");
      for (const auto& a : *it) {
        auto content = f.token(f.at(a, "content", "added_tokens[]"), "added_tokens[].content");
        const auto id = f.token_id(f.at(a, "id", "added_tokens[]"), "added_tokens[].id");
        t.add_token(unicode::to_u32(content), id, f.flag(a, "special", false, "added_tokens[]"));
        if (static_cast<std::size_t>(id) >= t.pieces_.size()) t.extra_[id] = std::move(content);
      }
    }
    if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
      const auto dtype = f.str(f.at(*it, "type", "decoder"), "decoder.type");
      if (dtype != "Metaspace") f.fail("decoder.type", "only Metaspace is supported, got \"" + dtype + "\"");
      std::vector<tokenizer_detail::PreTokenizeStep> d;
      tokenizer_detail::parse_pre_tokenizer(*it, f, d);
      t.decode_replacement_ = d[0].replacement;
      t.decode_strip_first_ = d[0].prepend != 0;
    }
    t.post_ = tokenizer_detail::parse_post_processor(root, f, PostProcessor{});
    return t;
  }

  std::size_t vocab_size() const override {
    return extra_.empty() ? pieces_.size() : std::max(pieces_.size(), static_cast<std::size_t>(extra_.rbegin()->first) + 1);
  }
  std::optional<std::int32_t> token_to_id(std::string_view token) const override {
    if (auto it = index_.find(std::string(token)); it != index_.end()) return it->second;
    for (const auto& [id, s] : extra_)
      if (s == token) return id;
    return std::nullopt;
  }
  std::string id_to_token(std::int32_t id) const override {
    if (id >= 0 && static_cast<std::size_t>(id) < pieces_.size()) return pieces_[static_cast<std::size_t>(id)];
    if (auto it = extra_.find(id); it != extra_.end()) return it->second;
    throw TokenizerError(detail::cat("UnigramTokenizer: id ", id, " is not in the vocabulary (size ", vocab_size(), ")"));
  }
  double score(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= scores_.size()) id_to_token(id);  // throws for ids past the model
    return static_cast<std::size_t>(id) < scores_.size() ? scores_[static_cast<std::size_t>(id)] : 0.0;
  }

  /// Pieces concatenated, the replacement character turned back into spaces; when the
  /// pre-tokenizer prepends it, the one that starts the text is dropped (SentencePiece's rule:
  /// pieces that decode to nothing, like a lone "▁", do not end the start; HF's Metaspace
  /// decoder looks at the first piece only).
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = true) const override {
    std::string out;
    for (auto id : ids) {
      auto tok = id_to_token(id);
      if (skip_special_tokens && is_special(id)) continue;
      bool lead = out.empty() && decode_strip_first_;
      for (const auto& c : unicode::decode_utf8(tok)) {
        if (c.cp != decode_replacement_) unicode::append_utf8(out, c.cp);
        else if (!lead) out += ' ';
        lead = false;
      }
    }
    return out;
  }

  /// The pieces of one word (already normalised and pre-tokenised), as SentencePiece would
  /// cut it: {id, byte begin, byte end} in `word`. `running`, when given, is the float score of
  /// the words before in the same text and is advanced: SentencePiece runs one lattice over the
  /// whole text, so its float rounding (and hence its choice between near-tied segmentations)
  /// depends on that prefix.
  struct Cut {
    std::int32_t id;
    std::size_t begin, end;
  };
  std::vector<Cut> viterbi(std::string_view word, float* running = nullptr) const {
    struct Node {
      float score = 0;  // SentencePiece's arithmetic, so that near-ties resolve the same way
      std::size_t start = 0;
      std::int32_t id = -1;
      bool reached = false;
    };
    const std::size_t n = word.size();
    std::vector<Node> best(n + 1);
    best[0].reached = true;
    best[0].score = running ? *running : 0.0f;
    const float unk_score = static_cast<float>(min_score_) - 10.0f;
    auto char_len = [&](std::size_t pos) {
      std::size_t l = 1;
      while (pos + l < n && (static_cast<unsigned char>(word[pos + l]) & 0xC0) == 0x80) ++l;
      return l;
    };
    std::string key;
    for (std::size_t pos = 0; pos < n; pos += char_len(pos)) {
      if (!best[pos].reached) continue;
      const std::size_t one = char_len(pos);
      bool has_single = false;
      auto relax = [&](std::size_t end, double s, std::int32_t id) {  // compared in double, kept as float
        if (!best[end].reached || s > static_cast<double>(best[end].score)) best[end] = {static_cast<float>(s), pos, id, true};
      };
      for (std::size_t end = pos + one; end <= n && end - pos <= max_piece_bytes_; end += char_len(end)) {
        key.assign(word.substr(pos, end - pos));
        if (auto it = index_.find(key); it != index_.end()) {
          relax(end, static_cast<double>(static_cast<float>(scores_[static_cast<std::size_t>(it->second)])) + best[pos].score, it->second);
          if (end == pos + one) has_single = true;
        }
        if (end == n) break;
      }
      if (!has_single) relax(pos + one, static_cast<double>(unk_score + best[pos].score), unk_id_.value_or(-1));  // float sum
    }
    if (running) *running = best[n].score;
    std::vector<Cut> cuts;
    for (std::size_t end = n; end > 0; end = best[end].start) cuts.push_back({best[end].id, best[end].start, end});
    std::reverse(cuts.begin(), cuts.end());
    std::vector<Cut> fused;  // consecutive unknown pieces fuse into one
    for (const auto& c : cuts) {
      const bool unk = c.id < 0 || (unk_id_ && c.id == *unk_id_);
      if (unk && !fused.empty() && (fused.back().id < 0 || (unk_id_ && fused.back().id == *unk_id_)))
        fused.back().end = c.end;
      else
        fused.push_back(c);
    }
    return fused;
  }

 protected:
  std::vector<Piece> tokenize(const std::vector<unicode::DecodedChar>& chars) const override {
    std::vector<Piece> out;
    std::int32_t word = 0;
    split_added(
        chars,
        [&](std::size_t b, std::size_t e) {
          tokenizer_detail::SpanText text;
          for (std::size_t i = b; i < e; ++i) text.push_back({chars[i].cp, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i + 1)});
          for (const auto& step : normalize_) step.apply(text);
          std::vector<tokenizer_detail::SpanText> words{std::move(text)};
          for (const auto& step : pre_) step.apply(words);
          float running = 0;
          for (const auto& w : words)
            if (!w.empty()) word_pieces(w, word++, out, running);
        },
        [&](std::size_t b, std::size_t e, const AddedToken& tok) {
          out.push_back({tok.id, id_to_token(tok.id), static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e), word++});
        });
    return out;
  }

 private:
  void word_pieces(const tokenizer_detail::SpanText& w, std::int32_t word, std::vector<Piece>& out, float& running) const {
    std::vector<std::size_t> at;
    const auto s = tokenizer_detail::to_utf8(w, 0, w.size(), &at);
    auto span = [&](std::size_t bb, std::size_t be) {  // original code points of bytes [bb, be)
      const auto cb = static_cast<std::size_t>(std::upper_bound(at.begin(), at.end(), bb) - at.begin()) - 1;
      const auto ce = static_cast<std::size_t>(std::lower_bound(at.begin(), at.end(), be) - at.begin());
      std::uint32_t lo = std::numeric_limits<std::uint32_t>::max(), hi = 0;
      for (std::size_t k = cb; k < ce; ++k)
        if (w[k].begin < w[k].end) lo = std::min(lo, w[k].begin), hi = std::max(hi, w[k].end);
      if (lo > hi) lo = hi = w[cb].begin;
      return std::pair{lo, hi};
    };
    for (const auto& c : viterbi(s, &running)) {
      const auto [lo, hi] = span(c.begin, c.end);
      const auto piece = s.substr(c.begin, c.end - c.begin);
      const bool unk = c.id < 0 || (unk_id_ && c.id == *unk_id_);
      if (unk && byte_fallback_) {
        std::vector<Piece> bytes;
        for (unsigned char b : piece) {
          static constexpr char hex[] = "0123456789ABCDEF";
          const std::string name{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
          if (auto id = token_to_id(name)) bytes.push_back({*id, name, lo, hi, word});
        }
        if (bytes.size() == piece.size()) {
          out.insert(out.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      if (unk && !unk_id_)
        throw TokenizerError("UnigramTokenizer: \"" + piece + "\" has no piece and the model has no unk_id");
      out.push_back({c.id, piece, lo, hi, word});  // an unknown piece keeps its text, as in HF and SentencePiece
    }
  }

  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  std::unordered_map<std::string, std::int32_t> index_;
  std::map<std::int32_t, std::string> extra_;  // added tokens past the model's vocabulary
  std::size_t max_piece_bytes_ = 0;
  double min_score_ = 0;
  std::optional<std::int32_t> unk_id_;
  bool byte_fallback_ = false;
  std::vector<tokenizer_detail::NormalizeStep> normalize_;
  std::vector<tokenizer_detail::PreTokenizeStep> pre_;
  char32_t decode_replacement_ = U'\u2581';
  bool decode_strip_first_ = true;
};

}  // namespace deepprompt
