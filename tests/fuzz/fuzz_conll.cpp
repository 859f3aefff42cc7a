// CoNLL-2003 style column files, with and without IOB1-to-IOB2 conversion and skip_malformed;
// labels and tag ids are derived from what was read.
#include "deepprompt/tasks/data/conll.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const auto text = dp_fuzz::text(bytes, size);
  {
    const unsigned o = dp_fuzz::pick(size, 4);  // one option set per input
    try {
      const auto ds = data::parse_conll(text, "fuzz.conll", {.to_iob2 = (o & 1) != 0, .skip_malformed = (o & 2) != 0});
      const auto labels = data::conll_labels(ds.examples);
      for (const auto& s : ds.examples) {
        if (s.tokens.size() != s.tags.size()) __builtin_trap();
        (void)data::tag_ids(s, std::span<const std::string>(labels));
      }
    } catch (const dp::Error&) {
    }
  }
  return 0;
}
