#pragma once
// Entity (chunk) extraction from tag sequences, exactly as seqeval 1.2 does it, and the IOB1 ->
// IOB2 conversion of CoNLL-2003's tags.
//
// Two modes:
//  - conlleval (seqeval's default, a port of conlleval.pl): lenient. A chunk starts at B-X, at
//    S-X, at an I-X or E-X that follows O (or an E/S), and wherever the type changes; it ends
//    where the next token starts another chunk, is O, or changes type. IOB1 and IOB2 (and IOBES)
//    input all work, and "O I-PER" counts as a PER entity.
//  - strict (seqeval's mode="strict" with an explicit scheme): an entity is only what the scheme
//    allows; for IOB2 a B-X followed by I-X*, so a stray I-X is no entity. Tags whose prefix the
//    scheme does not allow (E-X under IOB2, say) are an error.
// Tags are "O" or PREFIX + "-" + TYPE with a one-letter prefix in front (seqeval's suffix=False).
// An entity is the half-open token range [begin, end) of one sentence and its type.
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "deepprompt/core/error.hpp"

namespace deepprompt::metrics {

/// One entity: its type and tokens [begin, end) of sentence `sentence`.
struct Entity {
  std::string type;
  std::size_t sentence = 0, begin = 0, end = 0;
  auto operator<=>(const Entity&) const = default;
};

/// Tagging schemes of strict mode (seqeval.scheme's IOB1, IOB2, IOE2, IOBES).
enum class TagScheme { iob1, iob2, ioe2, iobes };

/// Sentences of tags: sentences[s][t] is the tag of token t of sentence s.
using TagSentences = std::vector<std::vector<std::string>>;

namespace detail {

/// seqeval's default-mode type of a tag: what follows the first '-' after the prefix letter
/// ("B-PER" -> "PER", "B-I-X" -> "I-X", "BX" -> "X"), "_" when that is empty ("O", "B").
inline std::string conll_type(std::string_view tag) {
  std::string_view rest = tag.substr(1);
  if (const auto dash = rest.find('-'); dash != std::string_view::npos) rest = rest.substr(dash + 1);
  return rest.empty() ? std::string("_") : std::string(rest);
}

inline bool conll_end(char prev_tag, char tag, std::string_view prev_type, std::string_view type) {
  if (prev_tag == 'E' || prev_tag == 'S') return true;
  if ((prev_tag == 'B' || prev_tag == 'I') && (tag == 'B' || tag == 'S' || tag == 'O')) return true;
  return prev_tag != 'O' && prev_tag != '.' && prev_type != type;
}

inline bool conll_start(char prev_tag, char tag, std::string_view prev_type, std::string_view type) {
  if (tag == 'B' || tag == 'S') return true;
  if ((prev_tag == 'E' || prev_tag == 'S' || prev_tag == 'O') && (tag == 'E' || tag == 'I')) return true;
  return tag != 'O' && tag != '.' && prev_type != type;
}

/// Sentence lengths must agree between the gold and the predicted tags.
inline void check_tag_shapes(const TagSentences& y_true, const TagSentences& y_pred, std::string_view what) {
  if (y_true.size() != y_pred.size())
    throw Error(deepprompt::detail::cat("metrics::", what, ": y_true has ", y_true.size(),
                                        " sentences but y_pred has ", y_pred.size()));
  for (std::size_t s = 0; s < y_true.size(); ++s)
    if (y_true[s].size() != y_pred[s].size())
      throw Error(deepprompt::detail::cat("metrics::", what, ": sentence ", s, " has ", y_true[s].size(),
                                          " gold tags but ", y_pred[s].size(), " predicted tags"));
}

// Strict mode: seqeval's pattern tables. A pattern holds when the previous token's prefix is in
// `prev`, the current one's in `cur`, and the types compare as `cond` says.
enum PrefixBit : std::uint8_t { kI = 1, kO = 2, kB = 4, kE = 8, kS = 16, kAny = 31 };
enum class TypeCond : std::uint8_t { any, same, diff };
struct Pattern {
  std::uint8_t prev, cur;
  TypeCond cond;
};
struct SchemeRules {
  std::uint8_t allowed;
  std::vector<Pattern> start, inside, end;
};

inline const SchemeRules& scheme_rules(TagScheme scheme) {
  using C = TypeCond;
  static const SchemeRules iob1{kI | kO | kB,
                                {{kO, kI, C::any}, {kI, kI, C::diff}, {kB, kI, C::any}, {kI, kB, C::same}, {kB, kB, C::same}},
                                {{kB, kI, C::same}, {kI, kI, C::same}},
                                {{kI, kI, C::diff}, {kI, kO, C::any}, {kI, kB, C::any}, {kB, kO, C::any},
                                 {kB, kI, C::diff}, {kB, kB, C::same}}};
  static const SchemeRules iob2{kI | kO | kB,
                                {{kAny, kB, C::any}},
                                {{kB, kI, C::same}, {kI, kI, C::same}},
                                {{kI, kO, C::any}, {kI, kI, C::diff}, {kI, kB, C::any}, {kB, kO, C::any},
                                 {kB, kI, C::diff}, {kB, kB, C::any}}};
  static const SchemeRules ioe2{kI | kO | kE,
                                {{kO, kI, C::any}, {kO, kE, C::any}, {kE, kI, C::any}, {kE, kE, C::any},
                                 {kI, kI, C::diff}, {kI, kE, C::diff}},
                                {{kI, kE, C::same}, {kI, kI, C::same}},
                                {{kE, kAny, C::any}}};
  static const SchemeRules iobes{kAny,
                                 {{kAny, kB, C::any}, {kAny, kS, C::any}},
                                 {{kB, kI, C::same}, {kB, kE, C::same}, {kI, kI, C::same}, {kI, kE, C::same}},
                                 {{kS, kAny, C::any}, {kE, kAny, C::any}}};
  switch (scheme) {
    case TagScheme::iob1: return iob1;
    case TagScheme::iob2: return iob2;
    case TagScheme::ioe2: return ioe2;
    case TagScheme::iobes: return iobes;
  }
  throw Error("metrics: unknown TagScheme");
}

inline std::string_view scheme_name(TagScheme scheme) {
  switch (scheme) {
    case TagScheme::iob1: return "IOB1";
    case TagScheme::iob2: return "IOB2";
    case TagScheme::ioe2: return "IOE2";
    case TagScheme::iobes: return "IOBES";
  }
  return "?";
}

/// A token of strict mode: prefix bit and seqeval's tag (text after the prefix, '-' stripped at
/// both ends, "_" if nothing is left).
struct StrictToken {
  std::uint8_t prefix;
  std::string type;
};

inline StrictToken strict_token(std::string_view tag, const SchemeRules& rules, TagScheme scheme) {
  std::uint8_t bit = 0;
  if (!tag.empty()) {
    switch (tag[0]) {
      case 'I': bit = kI; break;
      case 'O': bit = kO; break;
      case 'B': bit = kB; break;
      case 'E': bit = kE; break;
      case 'S': bit = kS; break;
      default: break;
    }
  }
  if ((bit & rules.allowed) == 0)
    throw Error(deepprompt::detail::cat("metrics: invalid tag '", tag, "' for the ", scheme_name(scheme),
                                        " scheme (strict mode)"));
  std::string_view rest = tag.substr(1);
  while (!rest.empty() && rest.front() == '-') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == '-') rest.remove_suffix(1);
  return {bit, rest.empty() ? std::string("_") : std::string(rest)};
}

inline bool matches(const std::vector<Pattern>& patterns, const StrictToken& prev, const StrictToken& cur) {
  for (const auto& p : patterns) {
    if ((prev.prefix & p.prev) == 0 || (cur.prefix & p.cur) == 0) continue;
    if (p.cond == TypeCond::any || (p.cond == TypeCond::same) == (prev.type == cur.type)) return true;
  }
  return false;
}

}  // namespace detail

/// Entities of `sentences` in seqeval's default (conlleval) mode: the sentences are read as one
/// stream with an "O" after each, as seqeval.metrics.sequence_labeling.get_entities does.
/// Requires: no empty tag string (else Error). Ensures: sorted by sentence, then begin.
inline std::vector<Entity> conll_entities(const TagSentences& sentences) {
  std::vector<Entity> out;
  char prev_tag = 'O';
  std::string prev_type;  // seqeval starts from '' (not the '_' of an "O")
  std::size_t begin_sentence = 0, begin = 0;
  const auto step = [&](char tag, const std::string& type, std::size_t s, std::size_t t) {
    if (detail::conll_end(prev_tag, tag, prev_type, type)) {
      // The chunk that began at (begin_sentence, begin) ends just before (s, t); `end` counts
      // from its first sentence, so a chunk that ran over a sentence boundary stays distinct.
      std::size_t end = t;
      for (std::size_t k = begin_sentence; k < s; ++k) end += sentences[k].size() + 1;
      out.push_back({prev_type, begin_sentence, begin, end});
    }
    if (detail::conll_start(prev_tag, tag, prev_type, type)) begin_sentence = s, begin = t;
    prev_tag = tag;
    prev_type = type;
  };
  for (std::size_t s = 0; s < sentences.size(); ++s) {
    const auto& sent = sentences[s];
    for (std::size_t t = 0; t < sent.size(); ++t) {
      if (sent[t].empty()) throw Error(deepprompt::detail::cat("metrics: empty tag at sentence ", s, ", token ", t));
      step(sent[t][0], detail::conll_type(sent[t]), s, t);
    }
    step('O', "_", s, sent.size());  // the "O" seqeval puts after each sentence
  }
  return out;
}

/// Entities of one sentence (index `sentence`) in strict mode under `scheme` (seqeval.scheme
/// Tokens(...).entities).
/// Requires: every tag's prefix allowed by the scheme (else Error naming the tag).
inline std::vector<Entity> strict_entities(const std::vector<std::string>& tags, TagScheme scheme,
                                           std::size_t sentence = 0) {
  const auto& rules = detail::scheme_rules(scheme);
  std::vector<detail::StrictToken> tok;
  tok.reserve(tags.size() + 1);
  for (const auto& t : tags) tok.push_back(detail::strict_token(t, rules, scheme));
  const detail::StrictToken outside{detail::kO, "_"};
  tok.push_back(outside);  // sentinel
  std::vector<Entity> out;
  std::size_t i = 0;
  const detail::StrictToken* prev = &outside;
  while (i < tok.size()) {
    if (detail::matches(rules.start, *prev, tok[i])) {
      std::size_t j = i + 1;  // extend while the next token continues the chunk
      while (j < tok.size() && detail::matches(rules.inside, tok[j - 1], tok[j])) ++j;
      if (j == tok.size()) j = tok.size() - 1;  // not reached: the sentinel O never continues one
      // A chunk that the next token may not follow (B-X then B-Y under IOB1, say) is dropped,
      // and the scan goes on from where it stopped, as seqeval does.
      if (detail::matches(rules.end, tok[j - 1], tok[j])) out.push_back({tok[i].type, sentence, i, j});
      i = j;
    } else {
      ++i;
    }
    prev = &tok[i - 1];
  }
  return out;
}

/// Strict-mode entities of every sentence, in order.
inline std::vector<Entity> strict_entities(const TagSentences& sentences, TagScheme scheme) {
  std::vector<Entity> out;
  for (std::size_t s = 0; s < sentences.size(); ++s) {
    auto e = strict_entities(sentences[s], scheme, s);
    out.insert(out.end(), std::make_move_iterator(e.begin()), std::make_move_iterator(e.end()));
  }
  return out;
}

/// IOB1 -> IOB2 for one sentence: an I-X that starts an entity (first token, after O, or after
/// a tag of another type) becomes B-X; everything else is kept.
/// Requires: every tag "O", "B-TYPE" or "I-TYPE" (else Error). Ensures: same length.
inline std::vector<std::string> iob1_to_iob2(const std::vector<std::string>& tags) {
  std::vector<std::string> out;
  out.reserve(tags.size());
  std::string_view prev_type;  // empty: before the sentence or after an O
  for (std::size_t i = 0; i < tags.size(); ++i) {
    const std::string& tag = tags[i];
    if (tag == "O") {
      out.push_back(tag);
      prev_type = {};
      continue;
    }
    if (tag.size() < 3 || (tag[0] != 'B' && tag[0] != 'I') || tag[1] != '-')
      throw Error(deepprompt::detail::cat("metrics::iob1_to_iob2: tag '", tag, "' at token ", i,
                                          " is not O, B-TYPE or I-TYPE"));
    const std::string_view type = std::string_view(tag).substr(2);
    out.push_back(tag[0] == 'I' && type != prev_type ? "B-" + std::string(type) : tag);
    prev_type = type;
  }
  return out;
}

}  // namespace deepprompt::metrics
