#pragma once
// GLUE TSV files (train.tsv / dev.tsv / test.tsv as distributed by GLUE's download script) for
// CoLA, SST-2, MRPC, QQP, STS-B, MNLI (matched and mismatched), QNLI, RTE and WNLI.
//
// Columns are found by the header's names (glue_spec(task)), so MNLI's train (12 columns), dev
// (16) and test (10) files all read. CoLA's train/dev files have no header: "source, label,
// original annotation, sentence"; its test file has the header "index\tsentence". A file whose
// header lacks the label column is an unlabelled test set: every example has no label.
// Fields are split on TAB only, with no quoting (as pandas' QUOTE_NONE): texts are kept as they
// are, including SST-2's space before the tab. Every row must have the header's number of columns.
//
// A malformed row (wrong column count, label not in the task's list, score not a number, blank
// line inside the file) throws FormatError "SOURCE:LINE: ..."; with skip_malformed it is skipped
// and counted in stats.reasons instead.
#include <charconv>
#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common.hpp"

namespace deepprompt::data {

enum class GlueTask { cola, sst2, mrpc, qqp, stsb, mnli, mnli_mismatched, qnli, rte, wnli };

/// How a task's TSV files are laid out: header names of the text, label and id columns.
struct GlueTaskSpec {
  std::string_view name;                     // "sst2"
  std::string_view text_a;                   // column of the first text
  std::string_view text_b;                   // column of the second text; empty for single-text tasks
  std::string_view label;                    // column of the label (absent in test files)
  std::span<const std::string_view> labels;  // the label strings; the example's label is an index
                                             // into it; empty for STS-B (a float score)
  std::string_view id;                       // column of the example id ("index"/"id"), if any
  bool has_header = true;                    // false: CoLA train/dev (fixed columns, see above)
};

namespace detail {
inline constexpr std::string_view kGlueBinary[] = {"0", "1"};
inline constexpr std::string_view kGlueNli2[] = {"entailment", "not_entailment"};
inline constexpr std::string_view kGlueMnli[] = {"contradiction", "entailment", "neutral"};
}  // namespace detail

/// The layout of `task`. The label orders are those of Hugging Face's GLUE processors.
inline const GlueTaskSpec& glue_spec(GlueTask task) {
  using namespace detail;
  static const GlueTaskSpec specs[] = {
      {"cola", "sentence", "", "label", kGlueBinary, "index", false},
      {"sst2", "sentence", "", "label", kGlueBinary, "index", true},
      {"mrpc", "#1 String", "#2 String", "Quality", kGlueBinary, "index", true},
      {"qqp", "question1", "question2", "is_duplicate", kGlueBinary, "id", true},
      {"stsb", "sentence1", "sentence2", "score", {}, "index", true},
      {"mnli", "sentence1", "sentence2", "gold_label", kGlueMnli, "index", true},
      {"mnli_mismatched", "sentence1", "sentence2", "gold_label", kGlueMnli, "index", true},
      {"qnli", "question", "sentence", "label", kGlueNli2, "index", true},
      {"rte", "sentence1", "sentence2", "label", kGlueNli2, "index", true},
      {"wnli", "sentence1", "sentence2", "label", kGlueBinary, "index", true},
  };
  return specs[static_cast<int>(task)];
}

/// The task named `name` ("sst2", "SST-2", "sst-2", "mnli-mm", "STS-B"...); nullopt if unknown.
inline std::optional<GlueTask> glue_task_from_name(std::string_view name) {
  std::string n;
  for (char c : name)
    if (c != '-' && c != '_') n += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (n == "mnlimm" || n == "mnlimismatched") return GlueTask::mnli_mismatched;
  if (n == "mnlim" || n == "mnlimatched") return GlueTask::mnli;
  for (int t = 0; t <= static_cast<int>(GlueTask::wnli); ++t) {
    std::string spec;
    for (char c : glue_spec(static_cast<GlueTask>(t)).name)
      if (c != '_') spec += c;
    if (n == spec) return static_cast<GlueTask>(t);
  }
  return std::nullopt;
}

/// One row of a GLUE file.
struct GlueExample {
  std::string guid;  // the id column's value, else the 0-based row number
  std::string text_a;
  std::optional<std::string> text_b;  // pair tasks only
  std::optional<int> label;           // index into glue_spec(task).labels; none when unlabelled
  std::optional<float> score;         // STS-B only: the similarity (0 to 5); none when unlabelled
  std::size_t line = 0;               // 1-based line in the source
};
using GlueDataset = Dataset<GlueExample>;

struct GlueOptions {
  bool skip_malformed = false;  // skip (and count) malformed rows instead of throwing
};

/// Reads a GLUE TSV text; `source` names it in messages. Throws FormatError (see the file comment).
inline GlueDataset parse_glue(GlueTask task, std::string_view text, std::string_view source = "<string>",
                              const GlueOptions& options = {}) {
  using detail::cat;
  constexpr std::size_t npos = std::string_view::npos;
  const GlueTaskSpec& spec = glue_spec(task);
  GlueDataset ds;
  ds.source = std::string(source);
  detail::Lines lines(text);
  std::string_view line;

  // Column positions: from the header, or CoLA's fixed layout.
  std::size_t columns = 4, col_a = 3, col_b = npos, col_label = 1, col_id = npos;
  bool first_is_header = spec.has_header;
  std::vector<std::string_view> header;
  if (!lines.next(line)) return ds;
  if (!spec.has_header && line == "index\tsentence") first_is_header = true;  // CoLA test.tsv
  if (first_is_header) {
    header = detail::split(line, '\t');
    auto find = [&](std::string_view name) {
      for (std::size_t i = 0; i < header.size(); ++i)
        if (header[i] == name) return i;
      return npos;
    };
    columns = header.size();
    col_a = find(spec.text_a);
    col_b = spec.text_b.empty() ? npos : find(spec.text_b);
    col_label = find(spec.label);
    col_id = find(spec.id);
    if (col_a == npos || (!spec.text_b.empty() && col_b == npos))
      detail::fail_at(source, lines.number(),
                      cat(spec.name, ": the header has no column '", col_a == npos ? spec.text_a : spec.text_b,
                          "' (header: ", detail::quote(line), ")"));
  }

  bool more = first_is_header ? lines.next(line) : true;
  for (; more; more = lines.next(line)) {
    const std::size_t n = lines.number();
    auto bad = [&](std::string_view reason, std::string what) {
      std::string msg = cat(source, ":", n, ": ", spec.name, ": ", what);
      if (!options.skip_malformed) throw FormatError(msg);
      ds.stats.skip(std::string(reason), std::move(msg));
    };
    if (detail::is_blank(line)) {
      bad("blank line", "blank line inside the file");
      continue;
    }
    const auto fields = detail::split(line, '\t');
    if (fields.size() != columns) {
      bad("wrong column count", cat("expected ", columns, " tab-separated columns, got ", fields.size()));
      continue;
    }
    GlueExample ex;
    ex.line = n;
    ex.guid = col_id != npos ? std::string(fields[col_id]) : std::to_string(ds.examples.size() + ds.stats.skipped);
    ex.text_a = std::string(fields[col_a]);
    if (col_b != npos) ex.text_b = std::string(fields[col_b]);
    if (col_label != npos) {
      const std::string_view value = fields[col_label];
      if (spec.labels.empty()) {
        float score = 0;
        const auto r = std::from_chars(value.data(), value.data() + value.size(), score);
        if (r.ec != std::errc() || r.ptr != value.data() + value.size() || !std::isfinite(score)) {
          bad("bad label", cat("score ", detail::quote(value), " is not a number"));
          continue;
        }
        ex.score = score;
      } else {
        int index = -1;
        for (std::size_t i = 0; i < spec.labels.size(); ++i)
          if (spec.labels[i] == value) index = static_cast<int>(i);
        if (index < 0) {
          std::string allowed;
          for (auto l : spec.labels) allowed += cat(allowed.empty() ? "" : ", ", l);
          bad("bad label", cat("label ", detail::quote(value), " is not one of ", allowed));
          continue;
        }
        ex.label = index;
      }
    }
    ds.examples.push_back(std::move(ex));
  }
  ds.stats.read = ds.examples.size();
  return ds;
}

/// Reads a GLUE TSV file (IoError when it cannot be read).
inline GlueDataset read_glue(GlueTask task, const std::filesystem::path& path, const GlueOptions& options = {}) {
  return parse_glue(task, read_text_file(path), path.string(), options);
}

/// Reads a GLUE TSV stream; `source` names it in messages.
inline GlueDataset read_glue(GlueTask task, std::istream& in, std::string_view source,
                             const GlueOptions& options = {}) {
  return parse_glue(task, detail::read_stream(in, source), source, options);
}

}  // namespace deepprompt::data
