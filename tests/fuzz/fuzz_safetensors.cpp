// safetensors: header (JSON, offsets, shapes, dtypes) and data (every tensor loaded and converted).
#include <cstdint>
#include <span>

#include "deepprompt/io/safetensors.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

namespace {
template <class T, std::size_t R>
void load(const dp::SafeTensorsFile& f, const std::string& name) {
  try {
    auto t = f.load<T, R>(name);
    volatile T sink = t.size() ? t.data()[t.size() - 1] : T{};
    (void)sink;
  } catch (const dp::FormatError&) {  // a dtype that does not convert to T
  }
}
template <class T>
void load_any_rank(const dp::SafeTensorsFile& f, const std::string& name, std::size_t rank) {
  switch (rank) {
    case 0: return load<T, 0>(f, name);
    case 1: return load<T, 1>(f, name);
    case 2: return load<T, 2>(f, name);
    case 3: return load<T, 3>(f, name);
    case 4: return load<T, 4>(f, name);
    default: return;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = dp::SafeTensorsFile::from_bytes(std::as_bytes(std::span(data, size)), "fuzz.safetensors");
    for (const auto& [k, v] : f.metadata()) (void)(k.size() + v.size());
    for (const auto& name : f.names()) {
      const auto& info = f.info(name);
      (void)f.bytes(name);
      if (info.end - info.begin > (1u << 20)) continue;  // keep one execution fast
      load_any_rank<float>(f, name, info.shape.size());
      load_any_rank<double>(f, name, info.shape.size());
      load_any_rank<std::int64_t>(f, name, info.shape.size());
      load_any_rank<dp::bf16>(f, name, info.shape.size());
      load_any_rank<bool>(f, name, info.shape.size());
    }
    (void)f.info("no such tensor");
  } catch (const dp::Error&) {
  }
  return 0;
}
