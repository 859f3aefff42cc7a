// SQuAD v1.1 / v2.0 JSON with each offset check (count, fail, relocate); byte_start is checked
// against the context.
#include "deepprompt/tasks/data/squad.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const auto text = dp_fuzz::text(bytes, size);
  constexpr data::OffsetCheck checks[] = {data::OffsetCheck::count, data::OffsetCheck::fail, data::OffsetCheck::relocate};
  {
    const auto check = checks[dp_fuzz::pick(size, 3)];  // one offset policy per input
    try {
      const auto ds = data::parse_squad(text, "fuzz.json", {.offsets = check});
      for (const auto& ex : data::squad_examples(ds))
        for (const auto& a : ex.answers)
          if (a.byte_start && ex.context.compare(*a.byte_start, a.text.size(), a.text) != 0) __builtin_trap();
      (void)ds.stats.summary();
    } catch (const dp::Error&) {
    }
  }
  return 0;
}
