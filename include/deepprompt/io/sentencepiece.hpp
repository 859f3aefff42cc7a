#pragma once
// A SentencePiece model file (T5's spiece.model) through the SentencePiece library, an OPTIONAL
// dependency: this header declares SentencePieceTokenizer only when <sentencepiece_processor.h>
// is found (Debian: libsentencepiece-dev), and a program that uses it links -lsentencepiece.
// Without the library, load the same tokenizer from its tokenizer.json with unigram.hpp.
// Define DEEPPROMPT_NO_SENTENCEPIECE to leave it out even where the header exists; where it is
// in, DEEPPROMPT_HAS_SENTENCEPIECE is defined.
//
// As Hugging Face's T5 tokenizer: the control and unknown pieces (<pad>, </s>, <unk>) and
// the optional <extra_id_N> sentinels are matched literally in the text first; the template
// appends </s> ("$A </s>", "$A </s> $B </s>", token types all 0). Offsets come from the
// library's byte spans, with the whitespace a "▁" stands for trimmed off (as HF reports them).
// decode() is the library's: control pieces give nothing, an unknown piece gives " ⁇ ".
#if __has_include(<sentencepiece_processor.h>) && !defined(DEEPPROMPT_NO_SENTENCEPIECE)
#define DEEPPROMPT_HAS_SENTENCEPIECE 1
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/io/tokenizer.hpp"
#include "deepprompt/io/unicode.hpp"

namespace deepprompt {

struct SentencePieceOptions {
  std::size_t extra_ids = 0;  // T5: 100 sentinels <extra_id_0> = size-1 ... <extra_id_99> = size-100
  bool add_eos = true;        // the template's </s>
};

namespace tokenizer_detail {

/// The precompiled_charsmap bytes of a serialized ModelProto's normalizer_spec (field 3) and
/// denormalizer_spec (field 5), NormalizerSpec field 2, read from the protobuf wire format with
/// every length checked (the last occurrence wins, as protobuf merges). False when the bytes
/// are not a wire-format message this scanner can walk.
inline bool model_charsmaps(std::string_view proto, std::string_view& normalizer, std::string_view& denormalizer) {
  auto varint = [](std::string_view& in, std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in.empty()) return false;
      const auto b = static_cast<unsigned char>(in[0]);
      in.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  // Calls on(field, bytes) for each length-delimited field of `msg`; skips the others.
  auto walk = [&](std::string_view msg, auto&& on) {
    while (!msg.empty()) {
      std::uint64_t key = 0, v = 0;
      if (!varint(msg, key)) return false;
      switch (key & 7) {
        case 0: if (!varint(msg, v)) return false; break;
        case 1: if (msg.size() < 8) return false; msg.remove_prefix(8); break;
        case 5: if (msg.size() < 4) return false; msg.remove_prefix(4); break;
        case 2:
          if (!varint(msg, v) || v > msg.size()) return false;
          on(key >> 3, msg.substr(0, v));
          msg.remove_prefix(v);
          break;
        default: return false;  // groups (deprecated) and invalid wire types
      }
    }
    return true;
  };
  bool ok = true;
  const bool top = walk(proto, [&](std::uint64_t field, std::string_view sub) {
    if (field != 3 && field != 5) return;
    ok = ok && walk(sub, [&](std::uint64_t f, std::string_view bytes) {
      if (f == 2) (field == 3 ? normalizer : denormalizer) = bytes;
    });
  });
  return top && ok;
}

/// Why SentencePiece's own normalizer would read outside `blob` (a precompiled_charsmap:
/// [uint32 trie bytes][darts-clone double array][NUL-terminated replacements]), or "" when every
/// lookup stays inside it: each node reachable from the root must have its 256 children in the
/// array, and each leaf's value must point into the replacements.
inline std::string check_charsmap(std::string_view blob) {
  if (blob.empty()) return {};
  if (blob.size() <= 4) return "truncated";
  const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
  auto u32 = [&](std::size_t at) {
    return p[at] | (p[at + 1] << 8) | (p[at + 2] << 16) | (static_cast<std::uint32_t>(p[at + 3]) << 24);
  };
  const std::uint32_t trie = u32(0);
  if (trie > blob.size() - 4) return "its trie size runs past its end";
  const std::size_t n = trie / 4, pool = blob.size() - 4 - trie;
  if (n == 0) return "empty trie";
  auto unit = [&](std::size_t i) { return u32(4 + 4 * i); };
  auto offset = [](std::uint32_t u) -> std::size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  std::vector<bool> seen(n, false);
  std::vector<std::size_t> todo{offset(unit(0))};
  while (!todo.empty()) {
    const std::size_t base = todo.back();
    todo.pop_back();
    if ((base | 0xFF) >= n) return detail::cat("a node's children (unit ", base, ") lie past the trie's ", n, " units");
    if (seen[base]) continue;
    seen[base] = true;
    for (std::size_t c = 0; c < 256; ++c) {
      const std::uint32_t u = unit(base ^ c);
      if ((u & ((1u << 31) | 0xFFu)) != c) continue;
      const std::size_t next = (base ^ c) ^ offset(u);
      if ((u >> 8) & 1u) {
        if (next >= n) return detail::cat("a leaf (unit ", next, ") lies past the trie's ", n, " units");
        if ((unit(next) & 0x7FFFFFFFu) >= pool) return "a replacement offset lies past the replacements";
      }
      todo.push_back(next);
    }
  }
  return {};
}

}  // namespace tokenizer_detail

class SentencePieceTokenizer : public Tokenizer {
 public:
  /// Loads a model file (LimitError when it is larger than limits().file_bytes).
  static SentencePieceTokenizer from_file(const std::string& path, SentencePieceOptions opt = {}) {
    std::error_code ec;
    if (const auto size = std::filesystem::file_size(path, ec); !ec)
      check_limit(path, "file size", size, limits().file_bytes, "file_bytes");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw TokenizerError(path + ": cannot load SentencePiece model: cannot open the file");
    const std::string bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    return from_serialized(bytes, std::move(opt), path);
  }

  /// Loads a model from its bytes (a serialized ModelProto, the contents of spiece.model);
  /// `path` names it in errors. LimitError when it has more than limits().vocab_size pieces or
  /// more than limits().vocab_size ids with the extra ids.
  static SentencePieceTokenizer from_serialized(std::string_view bytes, SentencePieceOptions opt = {},
                                                const std::string& path = "spiece.model") {
    SentencePieceTokenizer t;
    t.proc_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
    sentencepiece::util::Status st;
    try {  // the library's trie builder throws its own exceptions for some broken models
      st = t.proc_->LoadFromSerializedProto(absl::string_view(bytes.data(), bytes.size()));
    } catch (const std::exception& e) {
      throw TokenizerError(path + ": cannot load SentencePiece model: " + e.what());
    }
    if (!st.ok()) throw TokenizerError(path + ": cannot load SentencePiece model: " + st.ToString());
    // The library trusts the charsmaps' tries and reads out of them when they are corrupt.
    std::string_view norm, denorm;
    if (!tokenizer_detail::model_charsmaps(bytes, norm, denorm))
      throw TokenizerError(path + ": cannot load SentencePiece model: not a protobuf message");
    for (auto [name, blob] : {std::pair{"normalizer_spec", norm}, std::pair{"denormalizer_spec", denorm}})
      if (const auto why = tokenizer_detail::check_charsmap(blob); !why.empty())
        throw TokenizerError(detail::cat(path, ": ", name, ".precompiled_charsmap is corrupt: ", why));
    t.init(opt, path);
    return t;
  }

  std::size_t vocab_size() const override { return pieces_ + extra_ids_; }
  std::optional<std::int32_t> token_to_id(std::string_view token) const override {
    for (std::size_t k = 0; k < extra_ids_; ++k)
      if (token == extra_name(k)) return static_cast<std::int32_t>(vocab_size() - 1 - k);
    const int id = proc_->PieceToId(std::string(token));
    if (id < 0 || proc_->IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  std::string id_to_token(std::int32_t id) const override {
    if (id >= 0 && static_cast<std::size_t>(id) < pieces_) return proc_->IdToPiece(id);
    if (id >= 0 && static_cast<std::size_t>(id) < vocab_size()) return extra_name(vocab_size() - 1 - static_cast<std::size_t>(id));
    throw TokenizerError(detail::cat("SentencePieceTokenizer: id ", id, " is not in the vocabulary (size ", vocab_size(), ")"));
  }
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = true) const override {
    std::string out;
    std::vector<int> run;  // library-decoded runs, broken by the <extra_id_N> sentinels
    auto flush = [&] {
      if (!run.empty()) out += proc_->DecodeIds(run);
      run.clear();
    };
    for (auto id : ids) {
      auto tok = id_to_token(id);  // range check
      if (skip_special_tokens && is_special(id)) continue;
      if (static_cast<std::size_t>(id) < pieces_) {
        run.push_back(id);
      } else {
        flush();
        out += tok;
      }
    }
    flush();
    return out;
  }

 private:
  // What both loaders do once the library holds the model.
  void init(const SentencePieceOptions& opt, const std::string& path) {
    check_limit(path, "vocabulary size (with the extra ids)",
                detail::saturating_add(static_cast<std::uint64_t>(proc_->GetPieceSize()), opt.extra_ids),
                limits().vocab_size, "vocab_size");
    pieces_ = static_cast<std::size_t>(proc_->GetPieceSize());
    extra_ids_ = opt.extra_ids;
    for (int id = 0; id < static_cast<int>(pieces_); ++id)
      if (proc_->IsControl(id) || proc_->IsUnknown(id)) add_token(unicode::to_u32(proc_->IdToPiece(id)), id, true);
    for (std::size_t k = 0; k < opt.extra_ids; ++k)
      add_token(unicode::to_u32(extra_name(k)), static_cast<std::int32_t>(vocab_size() - 1 - k), true);
    const int eos = proc_->eos_id();
    if (opt.add_eos) {
      if (eos < 0) throw TokenizerError(path + ": the model has no </s> (eos) piece to append");
      const TemplateItem e{-1, {eos}, {proc_->IdToPiece(eos)}, 0};
      post_.single = {{0, {}, {}, 0}, e};
      post_.pair = {{0, {}, {}, 0}, e, {1, {}, {}, 0}, e};
    } else {
      post_.pair = {{0, {}, {}, 0}, {1, {}, {}, 0}};
    }
  }

 protected:
  std::vector<Piece> tokenize(const std::vector<unicode::DecodedChar>& chars) const override {
    std::vector<Piece> out;
    std::int32_t word = -1;
    split_added(
        chars,
        [&](std::size_t b, std::size_t e) {
          std::string s;
          std::vector<std::size_t> at;  // byte of each character in s
          for (std::size_t i = b; i < e; ++i) {
            at.push_back(s.size());
            unicode::append_utf8(s, chars[i].cp);
          }
          at.push_back(s.size());
          const auto spt = proc_->EncodeAsImmutableProto(s);
          for (const auto& p : spt.pieces()) {
            auto cb = static_cast<std::size_t>(std::upper_bound(at.begin(), at.end(), p.begin()) - at.begin()) - 1;
            auto ce = static_cast<std::size_t>(std::lower_bound(at.begin(), at.end(), p.end()) - at.begin());
            while (cb < ce && unicode::is_whitespace(chars[b + cb].cp)) ++cb;
            while (ce > cb && unicode::is_whitespace(chars[b + ce - 1].cp)) --ce;
            if (word < 0 || p.piece().rfind("\xE2\x96\x81", 0) == 0) ++word;
            out.push_back({static_cast<std::int32_t>(p.id()), p.piece(), static_cast<std::uint32_t>(b + cb),
                           static_cast<std::uint32_t>(b + ce), word});
          }
        },
        [&](std::size_t b, std::size_t e, const AddedToken& tok) {
          out.push_back({tok.id, id_to_token(tok.id), static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e), ++word});
        });
    return out;
  }

 private:
  static std::string extra_name(std::size_t k) { return "<extra_id_" + std::to_string(k) + ">"; }

  std::shared_ptr<sentencepiece::SentencePieceProcessor> proc_;
  std::size_t pieces_ = 0, extra_ids_ = 0;
};

}  // namespace deepprompt
#endif  // DEEPPROMPT_HAS_SENTENCEPIECE
