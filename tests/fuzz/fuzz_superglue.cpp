// SuperGLUE JSONL, read as one task's records (RTE, CB, BoolQ, COPA, WiC, WSC), strict or
// with skip_malformed (dp_fuzz::pick); the WiC spans are taken from what was read.
#include "deepprompt/tasks/data/superglue.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

namespace {
template <class Example, class Use>
void read(std::string_view text, bool skip, Use use) {
  {
    try {
      const auto ds = data::parse_superglue<Example>(text, "fuzz.jsonl", {.skip_malformed = skip});
      for (const auto& e : ds.examples) use(e);
      (void)ds.stats.summary();
    } catch (const dp::Error&) {
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const auto text = dp_fuzz::text(bytes, size);
  auto none = [](const auto&) {};
  const unsigned way = dp_fuzz::pick(size, 12);  // one task and mode per input
  const bool skip = way % 2 != 0;
  switch (way / 2) {
    case 0: read<data::RteExample>(text, skip, none); break;
    case 1: read<data::CbExample>(text, skip, none); break;
    case 2: read<data::BoolqExample>(text, skip, none); break;
    case 3: read<data::CopaExample>(text, skip, none); break;
    case 4: read<data::WicExample>(text, skip, [](const data::WicExample& e) { (void)(e.span1().size() + e.span2().size()); }); break;
    default: read<data::WscExample>(text, skip, none); break;
  }
  return 0;
}
