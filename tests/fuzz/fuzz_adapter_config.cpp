// PEFT adapter_config.json (peft/peft_io.hpp): parsing and the checked field accessors the
// baselines' loaders use.
#include "deepprompt/peft/peft_io.hpp"
#include "fuzz.hpp"

namespace dp = deepprompt;

DP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto c = dp::peft_io::AdapterConfig::parse(dp_fuzz::text(data, size), "fuzz/adapter_config.json");
    auto attempt = [](auto&& f) {
      try {
        f();
      } catch (const dp::FormatError&) {
      }
    };
    attempt([&] { (void)dp::peft_io::head_prefix(c.peft_type()); });
    attempt([&] { (void)c.task_type(); });
    attempt([&] { c.require_type("PROMPT_TUNING", "fuzz"); });
    attempt([&] { c.require_one_submodule(); });
    for (const char* f : {"num_virtual_tokens", "token_dim", "num_layers", "num_attention_heads", "r",
                          "lora_alpha", "encoder_hidden_size", "num_transformer_submodules"}) {
      attempt([&] { (void)c.positive(f); });
      attempt([&] { (void)c.number(f); });
      attempt([&] { (void)c.string(f); });
      attempt([&] { (void)c.boolean(f, false); });
    }
    attempt([&] { (void)c.boolean("inference_mode", true); });
    attempt([&] { (void)c.boolean("fan_in_fan_out", false); });
    attempt([&] { (void)c.string("prompt_tuning_init"); });
  } catch (const dp::Error&) {
  }
  return 0;
}
