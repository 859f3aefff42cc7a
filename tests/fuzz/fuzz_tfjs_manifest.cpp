// libFuzzer target: io/tfjs.hpp's model.json parser on arbitrary bytes. A FormatError is the
// parser's answer to bad input; anything else (a crash, a sanitizer report, another exception)
// is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "deepprompt/io/tfjs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto m = deepprompt::parse_tfjs_model_json(std::string_view(reinterpret_cast<const char*>(data), size));
    // What the parser ensures about a manifest it accepts.
    for (const auto& w : m.weights) {
      if (w.name.empty() || w.group >= m.groups.size() || w.offset + w.bytes > m.groups[w.group].bytes) __builtin_trap();
      std::uint64_t count = 1;
      for (auto e : w.shape) {
        if (e < 0) __builtin_trap();
        count *= static_cast<std::uint64_t>(e);
      }
      if (count != w.count) __builtin_trap();
    }
  } catch (const deepprompt::FormatError&) {
  }
  return 0;
}
