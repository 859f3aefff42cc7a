// SuperGLUE JSONL, read as each task's records (RTE, CB, BoolQ, COPA, WiC, WSC), strict and
// with skip_malformed; the WiC spans are taken from what was read.
#include "deepprompt/tasks/data/superglue.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

namespace {
template <class Example, class Use>
void read(std::string_view text, Use use) {
  for (bool skip : {false, true}) {
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
  read<data::RteExample>(text, none);
  read<data::CbExample>(text, none);
  read<data::BoolqExample>(text, none);
  read<data::CopaExample>(text, none);
  read<data::WicExample>(text, [](const data::WicExample& e) { (void)(e.span1().size() + e.span2().size()); });
  read<data::WscExample>(text, none);
  return 0;
}
