// GLUE TSV files, read as every task's layout, strict and with skip_malformed.
#include "deepprompt/tasks/data/glue.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;
namespace data = deepprompt::data;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const auto text = dp_fuzz::text(bytes, size);
  for (int task = 0; task <= static_cast<int>(data::GlueTask::wnli); ++task) {
    for (bool skip : {false, true}) {
      try {
        const auto ds = data::parse_glue(static_cast<data::GlueTask>(task), text, "fuzz.tsv", {.skip_malformed = skip});
        (void)ds.stats.summary();
        if (skip && ds.stats.read != ds.examples.size()) __builtin_trap();
      } catch (const dp::Error&) {  // strict: any malformed row; skip_malformed: the header
      }
    }
  }
  (void)data::glue_task_from_name(text.substr(0, 16));
  return 0;
}
