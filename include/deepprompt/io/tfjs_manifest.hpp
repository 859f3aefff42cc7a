#pragma once
// TensorFlow.js model.json: the manifest's types (weights, groups, graph nodes), the bounds on
// what a file may declare, and parse_tfjs_model_json(), which validates the text alone (it is
// what the fuzzer drives). io/tfjs.hpp (TfjsModel) adds the shard files. The format is
// described at the top of io/tfjs.hpp. Every fault raises FormatError naming the file, the
// weight and what is wrong; counts and sizes are bounded before anything is allocated.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "file.hpp"  // printable
#include "limits.hpp"

namespace deepprompt {

/// Bounds on what a model.json may declare, checked before allocating, beside the shared ones
/// of io/limits.hpp (Limits::file_bytes for model.json, json_depth, tensor_rank).
inline constexpr std::size_t kTfjsMaxJsonValues = 4'000'000;  // values in model.json (bounds its DOM)
inline constexpr std::size_t kTfjsMaxWeights = 1'000'000;     // weights, all groups together
inline constexpr std::size_t kTfjsMaxShards = 100'000;        // shard paths, all groups together

/// Element types a TF.js weight can declare that this reader supports.
enum class TfjsDtype : std::uint8_t { Float32, Int32, Bool };
/// How a weight's values are stored in the shards: as declared, or quantized (float32 only).
enum class TfjsQuant : std::uint8_t { None, Uint8, Uint16, Float16 };

inline constexpr std::string_view tfjs_dtype_name(TfjsDtype d) {
  constexpr std::string_view names[] = {"float32", "int32", "bool"};
  return names[static_cast<int>(d)];
}

/// One weight of the manifest: where its bytes are in its group and how to read them.
/// ensures: bytes == count * (stored element size); offset + bytes <= the group's total bytes.
struct TfjsWeight {
  std::string name;
  TfjsDtype dtype{};
  std::vector<index_t> shape;
  TfjsQuant quant = TfjsQuant::None;
  double scale = 1.0, min = 0.0;  // for Uint8/Uint16: value = q * scale + min
  std::size_t group = 0;          // index into TfjsManifest::groups
  std::uint64_t offset = 0;       // in the concatenation of the group's shards
  std::uint64_t count = 0;        // elements
  std::uint64_t bytes = 0;        // stored bytes
};

/// One weight group: its shard files (relative paths) and the bytes its weights fill.
struct TfjsGroup {
  std::vector<std::string> paths;
  std::uint64_t bytes = 0;
};

/// One node of a graph model's topology (attr kept as JSON: TF's AttrValue in proto3 JSON).
struct TfjsNode {
  std::string name, op;
  std::vector<std::string> inputs;
  nlohmann::json attr;
};

/// A validated model.json: weight groups, weights (in manifest order) and the graph nodes (empty
/// when the topology is absent or not a graph).
/// ensures: weight names are unique and non-empty, node names are unique, shard paths are
/// relative, without "..", NUL or duplicates.
struct TfjsManifest {
  std::vector<TfjsGroup> groups;
  std::vector<TfjsWeight> weights;
  std::vector<TfjsNode> nodes;
  nlohmann::json topology;  // "modelTopology" as is (null if absent)
  std::string format, generated_by, converted_by;
};

namespace detail {

struct TfjsParser {
  std::string_view file;

  [[noreturn]] void fail(std::string_view what) const {
    throw FormatError(cat("tfjs model '", file, "': ", what));
  }
  [[noreturn]] void fail_weight(std::string_view name, std::string_view what) const {
    throw FormatError(cat("tfjs model '", file, "': weight \"", printable(std::string(name)), "\": ", what));
  }

  // A first pass over the text without building anything: rejects duplicate keys in any object,
  // nesting deeper than the limit and more values than the limit, so that the DOM built by the
  // second pass is bounded. (nlohmann's parse callback would do it in one pass but is quadratic
  // in the length of an array of objects.)
  struct Checker {
    const TfjsParser* p;
    std::vector<std::optional<std::set<std::string>>> open;  // one entry per open container
    std::size_t values = 0;
    bool value() {
      if (++values > kTfjsMaxJsonValues) p->fail(cat("more than ", kTfjsMaxJsonValues, " JSON values"));
      return true;
    }
    bool push(bool object) {
      value();
      check_limit(cat("tfjs model '", p->file, "'"), "JSON nesting depth", open.size() + 1, limits().json_depth,
                  "json_depth");
      if (object) open.emplace_back(std::in_place);
      else open.emplace_back();
      return true;
    }
    bool null() { return value(); }
    bool boolean(bool) { return value(); }
    bool number_integer(std::int64_t) { return value(); }
    bool number_unsigned(std::uint64_t) { return value(); }
    bool number_float(double, const std::string&) { return value(); }
    bool string(std::string&) { return value(); }
    bool binary(std::vector<std::uint8_t>&) { return value(); }
    bool start_object(std::size_t) { return push(true); }
    bool start_array(std::size_t) { return push(false); }
    bool end_object() { return open.pop_back(), true; }
    bool end_array() { return open.pop_back(), true; }
    bool key(std::string& k) {
      if (!open.back()->insert(k).second) p->fail(cat("JSON key \"", printable(k), "\" appears twice in one object"));
      return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& e) {
      p->fail(cat("invalid JSON: ", printable(e.what())));
    }
  };

  nlohmann::json parse_json(std::string_view text) const {
    Checker checker{this, {}, 0};
    nlohmann::json::sax_parse(text.begin(), text.end(), &checker);
    try {
      return nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::exception& e) {  // not reached: the first pass saw the same text
      fail(cat("invalid JSON: ", printable(e.what())));
    }
  }

  std::string optional_string(const nlohmann::json& obj, const char* key) const {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return {};
    if (!it->is_string()) fail(cat("\"", key, "\" is not a string"));
    return it->get<std::string>();
  }

  void check_path(const std::string& p, std::size_t group) const {
    auto bad = [&](std::string_view why) {
      fail(cat("weightsManifest[", group, "]: shard path \"", printable(p), "\" ", why));
    };
    if (p.empty()) bad("is empty");
    if (p.find('\0') != std::string::npos) bad("contains a NUL character");
    const std::filesystem::path fp(p);
    if (fp.is_absolute() || p.front() == '/') bad("is absolute (paths are relative to model.json)");
    for (const auto& part : fp)
      if (part == "..") bad("leaves the model's folder (\"..\")");
  }

  void parse_weight(const nlohmann::json& w, std::size_t group, std::uint64_t& offset, TfjsManifest& m) const {
    if (!w.is_object()) fail(cat("weightsManifest[", group, "]: a weight entry is not a JSON object"));
    const auto nm = w.find("name");
    if (nm == w.end() || !nm->is_string() || nm->get_ref<const std::string&>().empty())
      fail(cat("weightsManifest[", group, "]: weight ", m.weights.size(), " has no name (a non-empty string)"));
    TfjsWeight out;
    out.name = nm->get<std::string>();
    out.group = group;
    const auto dt = w.find("dtype");
    if (dt == w.end() || !dt->is_string()) fail_weight(out.name, "\"dtype\" is missing or not a string");
    const auto& ds = dt->get_ref<const std::string&>();
    if (ds == "float32") out.dtype = TfjsDtype::Float32;
    else if (ds == "int32") out.dtype = TfjsDtype::Int32;
    else if (ds == "bool") out.dtype = TfjsDtype::Bool;
    else if (ds == "string" || ds == "complex64")
      fail_weight(out.name, cat("dtype \"", ds, "\" is not supported (only float32, int32 and bool)"));
    else fail_weight(out.name, cat("unknown dtype \"", printable(ds), "\""));

    const auto sh = w.find("shape");
    if (sh == w.end() || !sh->is_array()) fail_weight(out.name, "\"shape\" is missing or not an array");
    check_limit(cat("tfjs model '", file, "': weight \"", printable(out.name), "\""), "rank", sh->size(),
                limits().tensor_rank, "tensor_rank");
    std::uint64_t count = 1;
    bool overflow = false;
    for (const auto& e : *sh) {
      if (!e.is_number_integer()) fail_weight(out.name, cat("shape ", sh->dump(), " has an entry that is not an integer"));
      if (!e.is_number_unsigned() && e.get<std::int64_t>() < 0)
        fail_weight(out.name, cat("shape ", sh->dump(), " has a negative extent"));
      const auto x = e.is_number_unsigned() ? e.get<std::uint64_t>() : 0;
      overflow = overflow || x > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(count, x, &count);
      out.shape.push_back(static_cast<index_t>(x));
    }
    std::uint64_t elem = out.dtype == TfjsDtype::Bool ? 1 : 4;

    if (const auto q = w.find("quantization"); q != w.end() && !q->is_null()) {
      if (!q->is_object()) fail_weight(out.name, "\"quantization\" is not a JSON object");
      const auto qd = q->find("dtype");
      if (qd == q->end() || !qd->is_string()) fail_weight(out.name, "quantization \"dtype\" is missing or not a string");
      const auto& qs = qd->get_ref<const std::string&>();
      if (out.dtype != TfjsDtype::Float32)
        fail_weight(out.name, cat("quantized ", tfjs_dtype_name(out.dtype), " weights are not supported (only float32)"));
      if (qs == "uint8") out.quant = TfjsQuant::Uint8, elem = 1;
      else if (qs == "uint16") out.quant = TfjsQuant::Uint16, elem = 2;
      else if (qs == "float16") out.quant = TfjsQuant::Float16, elem = 2;
      else fail_weight(out.name, cat("quantization dtype \"", printable(qs), "\" is not supported (uint8, uint16, float16)"));
      if (out.quant != TfjsQuant::Float16) {
        const auto sc = q->find("scale"), mn = q->find("min");
        if (sc == q->end() || !sc->is_number() || mn == q->end() || !mn->is_number())
          fail_weight(out.name, cat("quantization ", qs, " needs numbers \"scale\" and \"min\""));
        out.scale = sc->get<double>();
        out.min = mn->get<double>();
      }
    }
    if (overflow || __builtin_mul_overflow(count, elem, &out.bytes))
      fail_weight(out.name, cat("the size of shape ", sh->dump(), " overflows"));
    out.count = count;
    out.offset = offset;
    if (__builtin_add_overflow(offset, out.bytes, &offset) || offset > static_cast<std::uint64_t>(INT64_MAX))
      fail_weight(out.name, cat("weight group ", group, " would need 2^63 bytes or more"));
    m.weights.push_back(std::move(out));
  }

  void parse_nodes(const nlohmann::json& topo, TfjsManifest& m) const {
    if (!topo.is_object()) fail("\"modelTopology\" is not a JSON object");
    const auto nodes = topo.find("node");
    if (nodes == topo.end()) return;  // not a graph model (e.g. a layers model)
    if (!nodes->is_array()) fail("\"modelTopology\".\"node\" is not an array");
    std::set<std::string_view> seen;
    m.nodes.reserve(nodes->size());
    for (const auto& n : *nodes) {
      const std::size_t i = m.nodes.size();
      if (!n.is_object()) fail(cat("graph node ", i, " is not a JSON object"));
      TfjsNode out;
      const auto nm = n.find("name"), op = n.find("op");
      if (nm == n.end() || !nm->is_string() || nm->get_ref<const std::string&>().empty())
        fail(cat("graph node ", i, " has no name (a non-empty string)"));
      out.name = nm->get<std::string>();
      if (op == n.end() || !op->is_string())
        fail(cat("graph node \"", printable(out.name), "\": \"op\" is missing or not a string"));
      out.op = op->get<std::string>();
      if (const auto in = n.find("input"); in != n.end()) {
        if (!in->is_array()) fail(cat("graph node \"", printable(out.name), "\": \"input\" is not an array"));
        for (const auto& s : *in) {
          if (!s.is_string()) fail(cat("graph node \"", printable(out.name), "\": an input is not a string"));
          out.inputs.push_back(s.get<std::string>());
        }
      }
      if (const auto at = n.find("attr"); at != n.end()) {
        if (!at->is_object()) fail(cat("graph node \"", printable(out.name), "\": \"attr\" is not a JSON object"));
        out.attr = *at;
      }
      m.nodes.push_back(std::move(out));
      if (!seen.insert(m.nodes.back().name).second)
        fail(cat("graph node name \"", printable(m.nodes.back().name), "\" appears twice"));
    }
  }

  TfjsManifest parse(std::string_view text) const {
    using nlohmann::json;
    check_limit(cat("tfjs model '", file, "'"), "model.json size", text.size(), limits().file_bytes, "file_bytes");
    const json doc = parse_json(text);
    if (!doc.is_object()) fail("model.json is not a JSON object");
    TfjsManifest m;
    m.format = optional_string(doc, "format");
    m.generated_by = optional_string(doc, "generatedBy");
    m.converted_by = optional_string(doc, "convertedBy");
    if (const auto t = doc.find("modelTopology"); t != doc.end() && !t->is_null()) {
      parse_nodes(*t, m);
      m.topology = *t;
    }
    const auto wm = doc.find("weightsManifest");
    if (wm == doc.end() || !wm->is_array()) fail("\"weightsManifest\" is missing or not an array");
    std::size_t n_weights = 0, n_paths = 0;
    for (const auto& g : *wm) {
      if (!g.is_object()) fail(cat("weightsManifest[", m.groups.size(), "] is not a JSON object"));
      const auto ps = g.find("paths"), ws = g.find("weights");
      if (ps == g.end() || !ps->is_array()) fail(cat("weightsManifest[", m.groups.size(), "]: \"paths\" is missing or not an array"));
      if (ws == g.end() || !ws->is_array()) fail(cat("weightsManifest[", m.groups.size(), "]: \"weights\" is missing or not an array"));
      n_weights += ws->size();
      n_paths += ps->size();
      if (n_weights > kTfjsMaxWeights) fail(cat("more than ", kTfjsMaxWeights, " weights"));
      if (n_paths > kTfjsMaxShards) fail(cat("more than ", kTfjsMaxShards, " shard paths"));
    }
    m.weights.reserve(n_weights);
    std::set<std::string> paths;
    for (const auto& g : *wm) {
      const std::size_t gi = m.groups.size();
      TfjsGroup group;
      for (const auto& p : g["paths"]) {
        if (!p.is_string()) fail(cat("weightsManifest[", gi, "]: a shard path is not a string"));
        group.paths.push_back(p.get<std::string>());
        check_path(group.paths.back(), gi);
        if (!paths.insert(std::filesystem::path(group.paths.back()).lexically_normal().string()).second)
          fail(cat("weightsManifest[", gi, "]: shard path \"", printable(group.paths.back()), "\" is listed twice"));
      }
      for (const auto& w : g["weights"]) parse_weight(w, gi, group.bytes, m);
      if (group.bytes > 0 && group.paths.empty())
        fail(cat("weightsManifest[", gi, "]: ", group.bytes, " bytes of weights but no shard paths"));
      m.groups.push_back(std::move(group));
    }
    std::vector<std::string_view> names;
    names.reserve(m.weights.size());
    for (const auto& w : m.weights) names.push_back(w.name);
    std::sort(names.begin(), names.end());
    if (auto d = std::adjacent_find(names.begin(), names.end()); d != names.end())
      fail_weight(*d, "the name appears twice in the manifest");
    return m;
  }
};

}  // namespace detail

/// Parses and validates the text of a model.json (no shard is read). `file` names the source in
/// messages. Throws FormatError.
inline TfjsManifest parse_tfjs_model_json(std::string_view text, std::string_view file = "<memory>") {
  return detail::TfjsParser{file}.parse(text);
}

}  // namespace deepprompt
