#pragma once
// Entity-level precision, recall and F1 of sequence labelling (NER), as seqeval 1.2 computes
// them: an entity counts as correct when its type and token range both match. Per type, over the
// sorted union of the gold and predicted types: P = correct / predicted, R = correct / gold,
// F1 = 2PR / (P + R), each 0 when its denominator is 0 (zero_division="warn" acts as 0); the
// micro average sums the counts over types, the macro average is the mean over types, the
// weighted one weighs them by support (gold count).
//
//   dp::metrics::TagSentences gold{{"O", "B-PER", "I-PER"}}, pred{{"O", "B-PER", "O"}};
//   auto r = dp::metrics::entity_report(gold, pred);                    // conlleval mode
//   auto s = dp::metrics::entity_report(gold, pred, dp::metrics::EntityMode::strict,
//                                       dp::metrics::TagScheme::iob2);  // mode="strict"
//   r.micro.f1;  // seqeval.metrics.f1_score(gold, pred)
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "deepprompt/core/error.hpp"
#include "deepprompt/tasks/metrics/entities.hpp"

namespace deepprompt::metrics {

/// seqeval's default (conlleval-compatible) mode, or mode="strict" with a TagScheme.
enum class EntityMode { conlleval, strict };

/// Scores of one entity type or one average.
struct EntityScores {
  std::string name;               // the type, or "micro avg" / "macro avg" / "weighted avg"
  double precision = 0.0, recall = 0.0, f1 = 0.0;
  std::size_t support = 0;        // gold entities (for averages: over all types)
  std::size_t predicted = 0;      // predicted entities (micro: total; 0 for macro/weighted)
  std::size_t correct = 0;        // predicted entities that match a gold one (idem)
};

/// seqeval's classification_report(output_dict=True) as a struct.
struct EntityReport {
  std::vector<EntityScores> per_type;  // sorted by type name
  EntityScores micro, macro, weighted;
};

namespace detail {

inline double safe_div(std::size_t num, std::size_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

inline double f1_of(double p, double r) { return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r); }

inline std::vector<Entity> mode_entities(const TagSentences& tags, EntityMode mode, TagScheme scheme) {
  return mode == EntityMode::conlleval ? conll_entities(tags) : strict_entities(tags, scheme);
}

}  // namespace detail

/// Entity-level report of predicted tags against gold tags.
/// `scheme` matters in strict mode only (seqeval needs one there: IOB2 for most data, IOB1 for
/// raw CoNLL-2003 tags). Requires: as many sentences and, sentence by sentence, as many tags in
/// y_pred as in y_true; tags valid for the mode (else Error).
/// Ensures: per_type covers every type found in either; with no entity at all, every score is 0
/// (seqeval's macro average would be NaN there).
inline EntityReport entity_report(const TagSentences& y_true, const TagSentences& y_pred,
                                  EntityMode mode = EntityMode::conlleval, TagScheme scheme = TagScheme::iob2) {
  detail::check_tag_shapes(y_true, y_pred, "entity_report");
  const auto gold = detail::mode_entities(y_true, mode, scheme);
  const auto pred = detail::mode_entities(y_pred, mode, scheme);
  std::map<std::string, std::set<Entity>> gold_by_type, pred_by_type;
  for (const auto& e : gold) gold_by_type[e.type].insert(e);
  for (const auto& e : pred) pred_by_type[e.type].insert(e);
  std::set<std::string> types;
  for (const auto& [t, _] : gold_by_type) types.insert(t);
  for (const auto& [t, _] : pred_by_type) types.insert(t);

  EntityReport rep;
  rep.micro.name = "micro avg";
  rep.macro.name = "macro avg";
  rep.weighted.name = "weighted avg";
  double wp = 0.0, wr = 0.0, wf = 0.0;
  for (const auto& type : types) {
    static const std::set<Entity> kNone;
    const auto g = gold_by_type.find(type), p = pred_by_type.find(type);
    const auto& gs = g == gold_by_type.end() ? kNone : g->second;
    const auto& ps = p == pred_by_type.end() ? kNone : p->second;
    EntityScores s;
    s.name = type;
    s.support = gs.size();
    s.predicted = ps.size();
    for (const auto& e : ps) s.correct += gs.count(e);
    s.precision = detail::safe_div(s.correct, s.predicted);
    s.recall = detail::safe_div(s.correct, s.support);
    s.f1 = detail::f1_of(s.precision, s.recall);
    rep.micro.support += s.support;
    rep.micro.predicted += s.predicted;
    rep.micro.correct += s.correct;
    rep.macro.precision += s.precision;
    rep.macro.recall += s.recall;
    rep.macro.f1 += s.f1;
    wp += s.precision * static_cast<double>(s.support);
    wr += s.recall * static_cast<double>(s.support);
    wf += s.f1 * static_cast<double>(s.support);
    rep.per_type.push_back(std::move(s));
  }
  rep.micro.precision = detail::safe_div(rep.micro.correct, rep.micro.predicted);
  rep.micro.recall = detail::safe_div(rep.micro.correct, rep.micro.support);
  rep.micro.f1 = detail::f1_of(rep.micro.precision, rep.micro.recall);
  rep.macro.support = rep.weighted.support = rep.micro.support;
  if (!types.empty()) {
    const auto n = static_cast<double>(types.size());
    rep.macro.precision /= n, rep.macro.recall /= n, rep.macro.f1 /= n;
  }
  if (rep.micro.support > 0) {
    const auto n = static_cast<double>(rep.micro.support);
    rep.weighted.precision = wp / n, rep.weighted.recall = wr / n, rep.weighted.f1 = wf / n;
  }
  return rep;
}

/// Micro-averaged entity F1 (seqeval.metrics.f1_score with the same mode and scheme).
inline double entity_f1(const TagSentences& y_true, const TagSentences& y_pred,
                        EntityMode mode = EntityMode::conlleval, TagScheme scheme = TagScheme::iob2) {
  return entity_report(y_true, y_pred, mode, scheme).micro.f1;
}

/// Token-level accuracy over all sentences (seqeval.metrics.accuracy_score).
/// Requires: matching shapes and at least one token (else Error).
inline double token_accuracy(const TagSentences& y_true, const TagSentences& y_pred) {
  detail::check_tag_shapes(y_true, y_pred, "token_accuracy");
  std::size_t n = 0, correct = 0;
  for (std::size_t s = 0; s < y_true.size(); ++s)
    for (std::size_t t = 0; t < y_true[s].size(); ++t, ++n) correct += y_true[s][t] == y_pred[s][t] ? 1 : 0;
  if (n == 0) throw Error("metrics::token_accuracy: no tokens");
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// The report as seqeval's classification_report returns it: a header and a blank line, one row
/// per type, a blank line, the micro/macro/weighted rows; `digits` decimals.
inline std::string format_report(const EntityReport& rep, int digits = 2) {
  std::size_t width = std::string_view("weighted avg").size();
  for (const auto& s : rep.per_type) width = std::max(width, s.name.size());
  width = std::max(width, static_cast<std::size_t>(std::max(digits, 0)));
  const int w = static_cast<int>(width);
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%*s  %9s %9s %9s %9s\n\n", w, "", "precision", "recall", "f1-score", "support");
  out += buf;
  const auto row = [&](const EntityScores& s) {
    std::string name = s.name;
    if (name.size() < width) name.insert(0, width - name.size(), ' ');
    std::snprintf(buf, sizeof buf, "  %9.*f %9.*f %9.*f %9zu\n", digits, s.precision, digits, s.recall, digits,
                  s.f1, s.support);
    out += name;
    out += buf;
  };
  for (const auto& s : rep.per_type) row(s);
  out += '\n';
  row(rep.micro);
  row(rep.macro);
  row(rep.weighted);
  return out;
}

}  // namespace deepprompt::metrics
