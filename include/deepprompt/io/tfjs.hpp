#pragma once
// TensorFlow.js models (model.json + binary weight shards): read with validation.
//
// model.json is a JSON object with an optional "modelTopology" (for a graph model: {"node":
// [{"name", "op", "input": [...], "attr": {...}}, ...], ...}) and a "weightsManifest": a list of
// groups {"paths": [shard file names], "weights": [{"name", "shape", "dtype", "quantization"?}]}.
// A group's weights lie back to back, in the listed order, in the concatenation of its shards
// (a weight may straddle two shards); paths are relative to the folder of model.json. Values are
// little-endian: float32 and int32 take 4 bytes, bool 1 byte. A quantized float32 weight stores
// uint8 or uint16 codes q (value = q * scale + min) or float16 values.
//
// parse_tfjs_model_json() (io/tfjs_manifest.hpp) validates the text alone (it is what the fuzzer drives);
// TfjsModel::open() adds the shard files, whose total size must be what the manifest implies.
// Every fault raises FormatError (or IoError for a file that cannot be read) naming the file,
// the weight and what is wrong; counts and sizes are bounded before anything is allocated.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/half.hpp"
#include "../core/tensor.hpp"
#include "file.hpp"
#include "limits.hpp"
#include "tfjs_manifest.hpp"

namespace deepprompt {

static_assert(std::endian::native == std::endian::little, "TF.js weight I/O assumes a little-endian host");

/// A validated TF.js model: model.json and its weight shards (memory-mapped); weights are
/// converted when loaded.
class TfjsModel {
 public:
  /// Opens `model_json` and every shard it names. Throws IoError (a file cannot be read) or
  /// FormatError (malformed, or shard sizes that do not add up to the manifest's weights).
  static TfjsModel open(const std::filesystem::path& model_json, bool try_mmap = true) {
    TfjsModel m;
    m.path_ = model_json;
    const std::string file = model_json.string();
    {
      const auto f = MappedFile::open(model_json, try_mmap);
      m.manifest_ = parse_tfjs_model_json(
          std::string_view(reinterpret_cast<const char*>(f.bytes().data()), f.size()), file);
    }
    const auto dir = model_json.has_parent_path() ? model_json.parent_path() : std::filesystem::path(".");
    for (std::size_t g = 0; g < m.manifest_.groups.size(); ++g) {
      const auto& group = m.manifest_.groups[g];
      std::vector<Shard> shards;
      std::uint64_t total = 0;
      for (const auto& p : group.paths) {
        Shard s;
        try {
          s.file = MappedFile::open(dir / p, try_mmap);
        } catch (const IoError& e) {
          throw IoError(detail::cat("tfjs model '", file, "': shard \"", detail::printable(p), "\" of weight group ", g,
                                    m.first_weight(g), ": ", e.what()));
        }
        s.begin = total;
        total = detail::saturating_add(total, s.file.size());
        shards.push_back(std::move(s));
      }
      if (total != group.bytes) m.size_mismatch(g, total);
      m.shards_.push_back(std::move(shards));
    }
    for (std::size_t i = 0; i < m.manifest_.weights.size(); ++i) m.index_.emplace(m.manifest_.weights[i].name, i);
    return m;
  }

  const std::filesystem::path& path() const { return path_; }
  const TfjsManifest& manifest() const { return manifest_; }
  /// The graph's nodes in model.json order (empty if the topology is not a graph).
  const std::vector<TfjsNode>& nodes() const { return manifest_.nodes; }
  /// Weight names in manifest order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& w : manifest_.weights) out.push_back(w.name);
    return out;
  }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  std::size_t size() const { return manifest_.weights.size(); }
  /// What the manifest says about `name`. Throws FormatError if there is no such weight.
  const TfjsWeight& info(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
      throw FormatError(detail::cat("tfjs model '", path_.string(), "': no weight \"", name, "\" (the model has ",
                                    manifest_.weights.size(), " weights)"));
    return manifest_.weights[it->second];
  }

  /// The values of `name`, flat (row-major). T float takes float32 weights (quantized ones are
  /// dequantized as TF.js does: float(q * scale + min)); T int32_t takes int32 and bool weights.
  /// Throws FormatError for a missing name or a dtype that does not fit T.
  template <class T>
  std::vector<T> values(std::string_view name) const {
    const auto& w = checked<T>(name);
    std::vector<T> out(static_cast<std::size_t>(w.count));
    convert_into(w, out.data());
    return out;
  }
  /// A new tensor holding `name`. requires (else FormatError): the weight has rank R.
  template <class T, std::size_t R>
  Tensor<T, R> load(std::string_view name) const {
    const auto& w = checked<T>(name);
    if (w.shape.size() != R)
      throw FormatError(detail::cat("tfjs model '", path_.string(), "': weight \"", name, "\" has shape ",
                                    shape_str(w.shape), " (rank ", w.shape.size(), "), expected rank ", R));
    Shape<R> s{};
    for (std::size_t k = 0; k < R; ++k) s[k] = w.shape[k];
    Tensor<T, R> t(s);
    convert_into(w, t.data());
    return t;
  }
  /// The single value of a weight holding one element (any rank: [], [1], [1, 1]...).
  template <class T>
  T scalar(std::string_view name) const {
    const auto& w = checked<T>(name);
    if (w.count != 1)
      throw FormatError(detail::cat("tfjs model '", path_.string(), "': weight \"", name, "\" has shape ",
                                    shape_str(w.shape), ", not a single value"));
    T v{};
    convert_into(w, &v);
    return v;
  }

 private:
  struct Shard {
    MappedFile file;
    std::uint64_t begin = 0;  // offset of this shard in its group's concatenation
  };

  std::string first_weight(std::size_t g) const {
    for (const auto& w : manifest_.weights)
      if (w.group == g) return detail::cat(" (first weight \"", detail::printable(w.name), "\")");
    return {};
  }

  [[noreturn]] void size_mismatch(std::size_t g, std::uint64_t total) const {
    std::string detail_msg;
    for (const auto& w : manifest_.weights)
      if (w.group == g && w.offset + w.bytes > total) {
        detail_msg = detail::cat("; weight \"", detail::printable(w.name), "\" (bytes ", w.offset, " to ",
                                 w.offset + w.bytes, ") runs past the end (truncated shard?)");
        break;
      }
    if (detail_msg.empty()) {
      const TfjsWeight* last = nullptr;
      for (const auto& w : manifest_.weights)
        if (w.group == g) last = &w;
      detail_msg = detail::cat("; ", total - manifest_.groups[g].bytes, " bytes follow the last weight",
                               last ? detail::cat(" \"", detail::printable(last->name), "\"") : std::string());
    }
    throw FormatError(detail::cat("tfjs model '", path_.string(), "': the shards of weight group ", g, " hold ",
                                  total, " bytes but its weights need ", manifest_.groups[g].bytes, detail_msg));
  }

  template <class T>
  const TfjsWeight& checked(std::string_view name) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>,
                  "TfjsModel loads float (float32 weights) or int32_t (int32 and bool weights)");
    const auto& w = info(name);
    const bool ok = std::is_same_v<T, float> ? w.dtype == TfjsDtype::Float32 : w.dtype != TfjsDtype::Float32;
    if (!ok)
      throw FormatError(detail::cat("tfjs model '", path_.string(), "': weight \"", name, "\" of dtype ",
                                    tfjs_dtype_name(w.dtype), " cannot be loaded as ",
                                    std::is_same_v<T, float> ? "float" : "int32"));
    return w;
  }

  // Copies bytes [offset, offset + n) of group g's concatenated shards to dst.
  void copy_bytes(std::size_t g, std::uint64_t offset, std::uint64_t n, std::byte* dst) const {
    const auto& shards = shards_[g];
    auto it = std::upper_bound(shards.begin(), shards.end(), offset,
                               [](std::uint64_t off, const Shard& s) { return off < s.begin; });
    for (--it; n > 0; ++it) {
      const std::uint64_t in = offset - it->begin;
      const std::uint64_t take = std::min<std::uint64_t>(n, it->file.size() - in);
      if (take) std::memcpy(dst, it->file.bytes().data() + in, take);
      dst += take;
      offset += take;
      n -= take;
    }
  }

  template <class T>
  void convert_into(const TfjsWeight& w, T* dst) const {
    if (w.count == 0) return;
    const std::size_t n = static_cast<std::size_t>(w.count);
    if (w.quant == TfjsQuant::None && w.dtype != TfjsDtype::Bool)
      return copy_bytes(w.group, w.offset, w.bytes, reinterpret_cast<std::byte*>(dst));
    std::vector<std::byte> raw(static_cast<std::size_t>(w.bytes));
    copy_bytes(w.group, w.offset, w.bytes, raw.data());
    if constexpr (std::is_same_v<T, std::int32_t>) {  // bool
      for (std::size_t i = 0; i < n; ++i) dst[i] = raw[i] != std::byte{0};
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        if (w.quant == TfjsQuant::Uint8) {
          dst[i] = static_cast<float>(static_cast<double>(std::to_integer<std::uint8_t>(raw[i])) * w.scale + w.min);
        } else {
          std::uint16_t b;
          std::memcpy(&b, raw.data() + 2 * i, 2);
          dst[i] = w.quant == TfjsQuant::Float16 ? fp16::to_float(b) : static_cast<float>(b * w.scale + w.min);
        }
      }
    }
  }

  std::filesystem::path path_;
  TfjsManifest manifest_;
  std::vector<std::vector<Shard>> shards_;  // per group
  std::map<std::string, std::size_t, std::less<>> index_;
};

}  // namespace deepprompt
