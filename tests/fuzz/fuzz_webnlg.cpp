// WebNLG XML (tinyxml2), then linearisation of the triples, both spellings.
#include "deepprompt/tasks/data/webnlg.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  try {
    const auto ds = data::parse_webnlg(dp_fuzz::text(bytes, size), "fuzz.xml");
    (void)data::webnlg_pairs(ds);
    (void)data::webnlg_pairs(ds, {.readable = false});
  } catch (const dp::Error&) {
  }
  return 0;
}
