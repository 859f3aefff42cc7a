// GLUE TSV files, read as one task's layout, strict or with skip_malformed (dp_fuzz::pick).
#include "deepprompt/tasks/data/glue.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const auto text = dp_fuzz::text(bytes, size);
  constexpr unsigned tasks = static_cast<unsigned>(data::GlueTask::wnli) + 1;
  const unsigned way = dp_fuzz::pick(size, 2 * tasks);  // one task layout and mode per input
  const auto task = static_cast<data::GlueTask>(way / 2);
  const bool skip = way % 2 != 0;
  try {
    const auto ds = data::parse_glue(task, text, "fuzz.tsv", {.skip_malformed = skip});
    (void)ds.stats.summary();
    if (skip && ds.stats.read != ds.examples.size()) __builtin_trap();
  } catch (const dp::Error&) {  // strict: any malformed row; skip_malformed: the header
  }
  (void)data::glue_task_from_name(text.substr(0, 16));
  return 0;
}
