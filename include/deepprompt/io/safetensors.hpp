#pragma once
// safetensors files (Hugging Face): read with validation, write atomically.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str} (optional), "name": {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// padded with spaces, then the data section; offsets are relative to the data section, tensors
// are row-major and little-endian, and their ranges tile the data section exactly.
//
// SafeTensorsFile::open() validates the whole header before anything is allocated for a tensor:
// a malformed or hostile file raises FormatError naming the file, the tensor and the fault, and
// one beyond the bounds of limits() (io/limits.hpp: header bytes, tensor count, rank, JSON depth)
// raises LimitError naming the bound. from_bytes() reads the same format from memory.
// save_safetensors() writes what the Python library writes, byte for byte: tensors ordered by
// dtype (descending, in the library's enum order) then by name, compact JSON with
// "__metadata__" first, header padded with spaces to a multiple of 8.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/half.hpp"
#include "../core/tensor.hpp"
#include "file.hpp"
#include "json.hpp"
#include "limits.hpp"

namespace deepprompt {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

/// Element types of the format, in the Python library's order (the writer sorts by it).
enum class Dtype : std::uint8_t { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

inline constexpr std::string_view dtype_name(Dtype d) {
  constexpr std::string_view names[] = {"BOOL", "U8",   "I8",  "F8_E5M2", "F8_E4M3", "I16", "U16", "F16",
                                        "BF16", "I32",  "U32", "F32",     "F64",     "I64", "U64"};
  return names[static_cast<int>(d)];
}
inline constexpr std::size_t dtype_size(Dtype d) {
  constexpr std::size_t sizes[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
  return sizes[static_cast<int>(d)];
}
inline constexpr bool dtype_is_float(Dtype d) {
  return d == Dtype::F16 || d == Dtype::BF16 || d == Dtype::F32 || d == Dtype::F64;
}
inline constexpr bool dtype_is_integer(Dtype d) {
  return d == Dtype::BOOL || d == Dtype::U8 || d == Dtype::I8 || d == Dtype::I16 || d == Dtype::U16 ||
         d == Dtype::I32 || d == Dtype::U32 || d == Dtype::I64 || d == Dtype::U64;
}
/// The Dtype named `s` ("F32"...), or false.
inline bool parse_dtype(std::string_view s, Dtype& out) {
  for (int i = 0; i <= static_cast<int>(Dtype::U64); ++i)
    if (dtype_name(static_cast<Dtype>(i)) == s) return out = static_cast<Dtype>(i), true;
  return false;
}

/// The Dtype that stores a C++ element type exactly.
template <class T>
inline constexpr Dtype dtype_of = [] {
  if constexpr (std::is_same_v<T, float>) return Dtype::F32;
  else if constexpr (std::is_same_v<T, double>) return Dtype::F64;
  else if constexpr (std::is_same_v<T, bf16>) return Dtype::BF16;
  else if constexpr (std::is_same_v<T, fp16>) return Dtype::F16;
  else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::I64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::I32;
  else if constexpr (std::is_same_v<T, std::int16_t>) return Dtype::I16;
  else if constexpr (std::is_same_v<T, std::int8_t>) return Dtype::I8;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return Dtype::U8;
  else if constexpr (std::is_same_v<T, bool>) return Dtype::BOOL;
  else static_assert(sizeof(T) == 0, "no safetensors dtype for this element type");
}();

/// What the header says about one tensor; begin/end are offsets in the data section.
struct TensorInfo {
  Dtype dtype{};
  std::vector<index_t> shape;
  std::uint64_t begin = 0, end = 0;
};

/// A validated safetensors file, memory-mapped; tensors are converted when loaded.
class SafeTensorsFile {
 public:
  /// Opens and validates `path`. Throws IoError (cannot read) or FormatError (malformed).
  static SafeTensorsFile open(const std::filesystem::path& path, bool try_mmap = true);
  /// Validates a copy of `bytes` (a whole file held in memory); `name` stands for the path in
  /// messages and path(). Throws FormatError (malformed) or LimitError.
  static SafeTensorsFile from_bytes(std::span<const std::byte> bytes, std::string name = "<memory>");

  const std::filesystem::path& path() const { return path_; }
  /// Tensor names in byte order (as Python's safe_open(...).keys()).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(infos_.size());
    for (const auto& [name, info] : infos_) out.push_back(name);
    return out;
  }
  bool contains(std::string_view name) const { return infos_.find(name) != infos_.end(); }
  std::size_t size() const { return infos_.size(); }
  /// The dtype, shape and offsets of `name`. Throws FormatError if there is no such tensor.
  const TensorInfo& info(std::string_view name) const {
    auto it = infos_.find(name);
    if (it == infos_.end())
      throw FormatError(detail::cat("safetensors '", path_.string(), "': no tensor \"", name, "\" (the file has ",
                                    infos_.size(), " tensors)"));
    return it->second;
  }
  /// The "__metadata__" entries (empty if none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The raw little-endian bytes of `name` (valid while this object lives).
  std::span<const std::byte> bytes(std::string_view name) const {
    const auto& i = info(name);
    return file_.bytes().subspan(data_start_ + i.begin, i.end - i.begin);
  }
  bool is_mapped() const { return file_.is_mapped(); }

  /// A new tensor holding `name`. T float/double accept F16, BF16, F32, F64; T int64_t accepts
  /// every integer dtype; any T accepts the dtype that stores it exactly (bf16 <- BF16...).
  /// Throws FormatError when the name is missing, the rank is not R or the dtype does not fit.
  template <class T, std::size_t R>
  Tensor<T, R> load(std::string_view name) const {
    const auto& i = checked(name, R, dtype_of<T>);
    Shape<R> s{};
    for (std::size_t k = 0; k < R; ++k) s[k] = i.shape[k];
    Tensor<T, R> t(s);
    convert_into(i, t.data());
    return t;
  }
  /// Copies `name` into an existing tensor of the same shape (e.g. a model parameter).
  template <class T, std::size_t R>
  void load_into(std::string_view name, const Tensor<T, R>& dst) const {
    const auto& i = checked(name, R, dtype_of<T>);
    if (!std::equal(i.shape.begin(), i.shape.end(), dst.shape().begin()))
      throw FormatError(detail::cat("safetensors '", path_.string(), "': tensor \"", name, "\" has shape ",
                                    shape_str(i.shape), " but the destination has shape ", shape_str(dst.shape())));
    convert_into(i, dst.data());
  }

 private:
  const TensorInfo& checked(std::string_view name, std::size_t rank, Dtype want) const {
    const auto& i = info(name);
    if (i.shape.size() != rank)
      throw FormatError(detail::cat("safetensors '", path_.string(), "': tensor \"", name, "\" has shape ",
                                    shape_str(i.shape), " (rank ", i.shape.size(), "), expected rank ", rank));
    const bool to_float = (want == Dtype::F32 || want == Dtype::F64) && dtype_is_float(i.dtype);
    const bool to_int64 = want == Dtype::I64 && dtype_is_integer(i.dtype);
    if (i.dtype != want && !to_float && !to_int64)
      throw FormatError(detail::cat("safetensors '", path_.string(), "': tensor \"", name, "\" of dtype ",
                                    dtype_name(i.dtype), " cannot be loaded as ", dtype_name(want)));
    return i;
  }

  template <class Src, class T, class F>
  void convert_each(const TensorInfo& i, T* dst, F f) const {
    const std::byte* src = file_.bytes().data() + data_start_ + i.begin;
    const std::size_t n = (i.end - i.begin) / sizeof(Src);
    for (std::size_t k = 0; k < n; ++k) {
      Src v;
      std::memcpy(&v, src + k * sizeof(Src), sizeof(Src));  // the data may be unaligned
      dst[k] = f(v);
    }
  }

  template <class T>
  void convert_into(const TensorInfo& i, T* dst) const {
    if constexpr (std::is_same_v<T, bool>) {  // a byte other than 0 or 1 is not a valid bool
      return convert_each<std::uint8_t>(i, dst, [](std::uint8_t v) { return v != 0; });
    }
    if (i.dtype == dtype_of<T>) {
      if (i.end > i.begin) std::memcpy(dst, file_.bytes().data() + data_start_ + i.begin, i.end - i.begin);
      return;
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      switch (i.dtype) {
        case Dtype::F16: return convert_each<std::uint16_t>(i, dst, [](std::uint16_t b) { return T(fp16::to_float(b)); });
        case Dtype::BF16: return convert_each<std::uint16_t>(i, dst, [](std::uint16_t b) { return T(float(bf16::from_bits(b))); });
        case Dtype::F32: return convert_each<float>(i, dst, [](float v) { return T(v); });
        case Dtype::F64: return convert_each<double>(i, dst, [](double v) { return T(v); });
        default: break;
      }
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      auto as = [](auto v) { return static_cast<std::int64_t>(v); };
      switch (i.dtype) {
        case Dtype::BOOL: return convert_each<std::uint8_t>(i, dst, [](std::uint8_t v) { return std::int64_t{v != 0}; });
        case Dtype::U8: return convert_each<std::uint8_t>(i, dst, as);
        case Dtype::I8: return convert_each<std::int8_t>(i, dst, as);
        case Dtype::I16: return convert_each<std::int16_t>(i, dst, as);
        case Dtype::U16: return convert_each<std::uint16_t>(i, dst, as);
        case Dtype::I32: return convert_each<std::int32_t>(i, dst, as);
        case Dtype::U32: return convert_each<std::uint32_t>(i, dst, as);
        case Dtype::U64:
          return convert_each<std::uint64_t>(i, dst, [&](std::uint64_t v) {
            if (v > static_cast<std::uint64_t>(INT64_MAX))
              throw FormatError(detail::cat("safetensors '", path_.string(), "': a U64 value ", v, " does not fit in int64"));
            return static_cast<std::int64_t>(v);
          });
        default: break;
      }
    }
    throw FormatError(detail::cat("safetensors '", path_.string(), "': no conversion from ", dtype_name(i.dtype)));
  }

  void parse_header();
  [[noreturn]] void fail(std::string_view what) const {
    throw FormatError(detail::cat("safetensors '", path_.string(), "': ", what));
  }
  [[noreturn]] void fail(std::string_view tensor, std::string_view what) const {
    throw FormatError(detail::cat("safetensors '", path_.string(), "': tensor \"", tensor, "\": ", what));
  }

  std::filesystem::path path_;
  MappedFile file_;
  std::size_t data_start_ = 0;
  std::map<std::string, TensorInfo, std::less<>> infos_;
  std::map<std::string, std::string> metadata_;
};

/// The largest header the reference implementation accepts (the default of
/// Limits::safetensors_header_bytes; the writer refuses to write a larger one).
inline constexpr std::uint64_t kSafeTensorsMaxHeader = Limits{}.safetensors_header_bytes;

inline SafeTensorsFile SafeTensorsFile::open(const std::filesystem::path& path, bool try_mmap) {
  SafeTensorsFile f;
  f.path_ = path;
  f.file_ = MappedFile::open(path, try_mmap);
  f.parse_header();
  return f;
}

inline SafeTensorsFile SafeTensorsFile::from_bytes(std::span<const std::byte> bytes, std::string name) {
  SafeTensorsFile f;
  f.path_ = std::move(name);
  f.file_ = MappedFile::copy_of(bytes);
  f.parse_header();
  return f;
}

inline void SafeTensorsFile::parse_header() {
  using nlohmann::json;
  const auto bytes = file_.bytes();
  if (bytes.size() < 8)
    fail(detail::cat("file is ", bytes.size(), " bytes, too short for the 8-byte header length (truncated?)"));
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const Limits& lim = limits();
  if (n > lim.safetensors_header_bytes)
    throw LimitError(detail::cat("safetensors '", path_.string(), "': header length ", n,
                                 " is larger than the limit Limits::safetensors_header_bytes = ",
                                 lim.safetensors_header_bytes));
  if (n > bytes.size() - 8)
    fail(detail::cat("header length ", n, " exceeds the ", bytes.size() - 8,
                     " bytes that follow the length field (truncated file?)"));
  data_start_ = 8 + n;
  const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
  if (n == 0 || text[0] != '{') fail("the header is not a JSON object (it does not start with '{')");

  // Duplicate top-level keys would silently keep only the last one: reject them.
  // The tensor count is checked as the keys arrive, before their entries are built.
  std::vector<std::string> keys;
  std::uint64_t tensors = 0;
  json header;
  const std::string context = detail::cat("safetensors '", path_.string(), "'");
  try {
    header = detail::parse_json_limited(std::string_view(text, n), context, [&](const std::string& key) {
      keys.push_back(key);
      if (key != "__metadata__") check_limit(context, "tensor count", ++tensors, lim.safetensors_tensors, "safetensors_tensors");
    });
  } catch (const json::exception& e) {
    fail(detail::cat("the header is invalid JSON: ", detail::printable(e.what())));
  }
  if (!header.is_object()) fail("the header is not a JSON object");
  std::sort(keys.begin(), keys.end());
  if (auto d = std::adjacent_find(keys.begin(), keys.end()); d != keys.end()) fail(*d, "the name appears twice");

  const std::uint64_t data_size = bytes.size() - data_start_;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("\"__metadata__\" is not a JSON object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(detail::cat("\"__metadata__\" value of \"", k, "\" is not a string"));
        metadata_.emplace(k, v.get<std::string>());
      }
      continue;
    }
    if (!entry.is_object()) fail(name, "the entry is not a JSON object");
    TensorInfo info;
    const auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) fail(name, "\"dtype\" is missing or not a string");
    if (!parse_dtype(dt->get_ref<const std::string&>(), info.dtype))
      fail(name, detail::cat("unknown dtype \"", dt->get<std::string>(), "\""));

    const auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) fail(name, "\"shape\" is missing or not an array");
    check_limit(detail::cat(context, ": tensor \"", name, "\""), "rank", sh->size(), lim.tensor_rank, "tensor_rank");
    std::uint64_t count = 1;
    bool overflow = false;
    for (const auto& e : *sh) {
      if (!e.is_number_integer()) fail(name, detail::cat("shape ", sh->dump(), " has an entry that is not an integer"));
      if (!e.is_number_unsigned() && e.get<std::int64_t>() < 0)
        fail(name, detail::cat("shape ", sh->dump(), " has a negative extent"));
      const auto x = e.is_number_unsigned() ? e.get<std::uint64_t>() : 0;  // "-0" is 0
      overflow = overflow || x > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(count, x, &count);
      info.shape.push_back(static_cast<index_t>(x));
    }
    std::uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(count, dtype_size(info.dtype), &nbytes))
      fail(name, detail::cat("the size of shape ", sh->dump(), " overflows"));

    const auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(name, "\"data_offsets\" is not a pair of non-negative integers");
    info.begin = (*off)[0].get<std::uint64_t>();
    info.end = (*off)[1].get<std::uint64_t>();
    if (info.begin > info.end) fail(name, detail::cat("data_offsets ", off->dump(), " end before they begin"));
    if (info.end > data_size)
      fail(name, detail::cat("data_offsets ", off->dump(), " run past the end of the ", data_size,
                             "-byte data section (truncated file?)"));
    if (info.end - info.begin != nbytes)
      fail(name, detail::cat("shape ", sh->dump(), " of ", dtype_name(info.dtype), " needs ", nbytes,
                             " bytes but data_offsets ", off->dump(), " hold ", info.end - info.begin));
    infos_.emplace(name, std::move(info));
  }

  // The ranges must tile [0, data_size): sorted by (begin, end), each starts where the last ended.
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& [name, info] : infos_) order.emplace_back(&name, &info);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  std::uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < pos)
      fail(*name, detail::cat("bytes [", info->begin, ", ", info->end, ") overlap tensor \"", *prev, "\" (ends at ", pos, ")"));
    if (info->begin > pos)
      fail(*name, detail::cat("gap in the data section: bytes [", pos, ", ", info->begin, ") before it belong to no tensor"));
    pos = info->end;
    prev = name;
  }
  if (pos != data_size)
    fail(detail::cat("gap in the data section: its last ", data_size - pos, " bytes (from offset ", pos,
                     ") belong to no tensor"));
}

/// A tensor to be saved: name, dtype, shape and bytes, type-erased. `owner` keeps a Tensor's
/// buffer alive; entries made from borrowed memory must not outlive it.
struct TensorEntry {
  std::string name;
  Dtype dtype{};
  std::vector<index_t> shape;
  const void* data = nullptr;
  std::size_t bytes = 0;
  std::shared_ptr<const void> owner;
};

/// An entry for `t` (float, double, bf16, fp16, int64, int32, ... of any rank), stored exactly.
template <class T, std::size_t R>
TensorEntry entry(std::string name, const Tensor<T, R>& t) {
  return {std::move(name), dtype_of<T>, std::vector<index_t>(t.shape().begin(), t.shape().end()), t.data(),
          static_cast<std::size_t>(t.size()) * sizeof(T), std::make_shared<const Tensor<T, R>>(t)};
}

/// Writes `entries` and `metadata` to `path` atomically (see AtomicFile). Throws FormatError for
/// invalid entries (duplicate or reserved name, bytes that do not match the shape, a name that
/// is not UTF-8) before touching the disk, IoError when writing fails.
inline void save_safetensors(const std::filesystem::path& path, std::span<const TensorEntry> entries,
                             const std::map<std::string, std::string>& metadata = {}) {
  using nlohmann::json;
  auto fail = [&](std::string_view name, std::string_view what) {
    throw FormatError(detail::cat("save_safetensors '", path.string(), "': tensor \"", name, "\": ", what));
  };
  auto quoted = [&](const std::string& s, std::string_view what) {
    try {
      return json(s).dump();
    } catch (const json::exception&) {
      throw FormatError(detail::cat("save_safetensors '", path.string(), "': ", what, " is not valid UTF-8"));
    }
  };
  std::vector<const TensorEntry*> order;
  for (const auto& e : entries) {
    if (e.name == "__metadata__") fail(e.name, "the name is reserved for the metadata");
    std::uint64_t count = 1;
    for (auto x : e.shape)
      if (x < 0 || __builtin_mul_overflow(count, static_cast<std::uint64_t>(x), &count))
        fail(e.name, detail::cat("invalid shape ", shape_str(e.shape)));
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(count, dtype_size(e.dtype), &nbytes) || nbytes != e.bytes || (e.bytes && !e.data))
      fail(e.name, detail::cat(e.bytes, " bytes do not hold shape ", shape_str(e.shape), " of ", dtype_name(e.dtype)));
    order.push_back(&e);
  }
  std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->dtype != b->dtype ? a->dtype > b->dtype : a->name < b->name;
  });
  if (auto d = std::adjacent_find(order.begin(), order.end(), [](auto a, auto b) { return a->name == b->name; });
      d != order.end())
    fail((*d)->name, "the name appears twice");

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (header.back() != '{') header += ',';
      header += quoted(k, "a metadata key") + ':' + quoted(v, detail::cat("the metadata value of \"", k, "\""));
    }
    header += '}';
  }
  std::uint64_t offset = 0;
  for (const TensorEntry* e : order) {
    if (header.size() > 1) header += ',';
    header += quoted(e->name, "a tensor name");
    header += detail::cat(":{\"dtype\":\"", dtype_name(e->dtype), "\",\"shape\":[");
    for (std::size_t k = 0; k < e->shape.size(); ++k) header += detail::cat(k ? "," : "", e->shape[k]);
    header += detail::cat("],\"data_offsets\":[", offset, ",", offset + e->bytes, "]}");
    offset += e->bytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kSafeTensorsMaxHeader)
    throw FormatError(detail::cat("save_safetensors '", path.string(), "': the header would be ", header.size(),
                                  " bytes, more than readers accept"));

  AtomicFile out(path);
  const std::uint64_t n = header.size();
  out.write(&n, 8);
  out.write(header.data(), header.size());
  for (const TensorEntry* e : order) out.write(e->data, e->bytes);
  out.commit();
}

inline void save_safetensors(const std::filesystem::path& path, std::initializer_list<TensorEntry> entries,
                             const std::map<std::string, std::string>& metadata = {}) {
  save_safetensors(path, std::span<const TensorEntry>(entries.begin(), entries.size()), metadata);
}

}  // namespace deepprompt
