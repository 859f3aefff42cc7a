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

class SentencePieceTokenizer : public Tokenizer {
 public:
  static SentencePieceTokenizer from_file(const std::string& path, SentencePieceOptions opt = {}) {
    SentencePieceTokenizer t;
    t.proc_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
    if (const auto st = t.proc_->Load(path); !st.ok())
      throw TokenizerError(path + ": cannot load SentencePiece model: " + st.ToString());
    t.pieces_ = static_cast<std::size_t>(t.proc_->GetPieceSize());
    t.extra_ids_ = opt.extra_ids;
    for (int id = 0; id < static_cast<int>(t.pieces_); ++id)
      if (t.proc_->IsControl(id) || t.proc_->IsUnknown(id)) t.add_token(unicode::to_u32(t.proc_->IdToPiece(id)), id, true);
    for (std::size_t k = 0; k < opt.extra_ids; ++k)
      t.add_token(unicode::to_u32(t.extra_name(k)), static_cast<std::int32_t>(t.vocab_size() - 1 - k), true);
    const int eos = t.proc_->eos_id();
    if (opt.add_eos) {
      if (eos < 0) throw TokenizerError(path + ": the model has no </s> (eos) piece to append");
      const TemplateItem e{-1, {eos}, {t.proc_->IdToPiece(eos)}, 0};
      t.post_.single = {{0, {}, {}, 0}, e};
      t.post_.pair = {{0, {}, {}, 0}, e, {1, {}, {}, 0}, e};
    } else {
      t.post_.pair = {{0, {}, {}, 0}, {1, {}, {}, 0}};
    }
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
