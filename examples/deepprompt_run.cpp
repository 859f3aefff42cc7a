// deepprompt-run: runs a Hugging Face checkpoint directory on integer inputs, for parity checks.
//
//   deepprompt-run --model DIR --input INPUT.json --out OUT.safetensors [--adapter ADAPTER_DIR]
//                  [--generate N] [--beams K]
//
// DIR holds config.json and model.safetensors as Hugging Face writes them; config.json's
// model_type chooses the architecture:
//   "bert": INPUT.json {"input_ids" [B,T], "attention_mask" [B,T] (optional), "token_type_ids"
//           [B,T] (optional)} -> OUT.safetensors (F32) last_hidden_state [B,T,C],
//           pooler_output [B,C] (when the checkpoint has a pooler). See models/bert_run.hpp.
//           --adapter ADAPTER_DIR: a PEFT adapter directory (adapter_config.json +
//           adapter_model.safetensors: PREFIX_TUNING, PROMPT_TUNING, P_TUNING or LORA) applied to
//           the model; a SEQ_CLS adapter with a classification head also gives logits [B,labels].
//           Input-layer prompts make last_hidden_state [B,P+T,C]. See peft/adapter_run.hpp.
//   "t5", "mt5": deepprompt::run_t5 from models/t5_run.hpp (logits, encoder_last_hidden_state,
//           loss with labels, generated with --generate N, beam search with --beams K > 1);
//           built when that header exists, unless DEEPPROMPT_RUN_NO_T5 is defined.
// Any bad input exits non-zero with one line on stderr: 2 for a usage error, 1 otherwise.
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <variant>

#include "deepprompt/io/config.hpp"
#include "deepprompt/models/bert_run.hpp"
#include "deepprompt/peft/adapter_run.hpp"
#if __has_include("deepprompt/models/t5_run.hpp") && !defined(DEEPPROMPT_RUN_NO_T5)
#include "deepprompt/models/t5_run.hpp"
#define DEEPPROMPT_RUN_HAS_T5 1
#endif

namespace dp = deepprompt;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage =
    "usage: deepprompt-run --model DIR --input INPUT.json --out OUT.safetensors [--adapter DIR] [--generate N] "
    "[--beams K]";

struct UsageError {
  std::string what;
};

struct Args {
  std::string model, input, out, adapter;
  long long generate = 0;  // 0: not asked
  long long beams = 1;
  bool beams_given = false;
};

long long positive(std::string_view flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < 1 || n > 1000000)
    throw UsageError{std::string(flag) + " must be a positive integer, got \"" + v + "\""};
  return n;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{std::string(arg) + " needs a value"};
      return argv[++i];
    };
    if (arg == "--model")
      a.model = value();
    else if (arg == "--input")
      a.input = value();
    else if (arg == "--out")
      a.out = value();
    else if (arg == "--adapter")
      a.adapter = value();
    else if (arg == "--generate")
      a.generate = positive(arg, value());
    else if (arg == "--beams")
      a.beams = positive(arg, value()), a.beams_given = true;
    else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << "\n";
      std::exit(0);
    } else {
      throw UsageError{"unknown argument \"" + std::string(arg) + "\""};
    }
  }
  if (a.model.empty() || a.input.empty() || a.out.empty()) throw UsageError{"--model, --input and --out are required"};
  if (a.beams_given && a.generate == 0) throw UsageError{"--beams K needs --generate N"};
  return a;
}

// One line: the library's multi-line reports (the list of a strict load) joined with "; ".
std::string one_line(std::string s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n') {
      while (i + 1 < s.size() && s[i + 1] == ' ') ++i;
      out += !out.empty() && out.back() == ':' ? " " : "; ";
    } else {
      out += s[i];
    }
  }
  return out;
}

void run(const Args& a) {
  const fs::path dir = a.model;
  if (!fs::is_directory(dir)) throw dp::IoError("--model '" + a.model + "' is not a directory");
  if (!fs::exists(a.input)) throw dp::IoError("--input '" + a.input + "' does not exist");
  if (!a.adapter.empty() && !fs::is_directory(a.adapter))
    throw dp::IoError("--adapter '" + a.adapter + "' is not a directory");
  const auto config = dp::read_config(dir / "config.json");
  if (std::holds_alternative<dp::HfBertConfig>(config)) {
    if (a.generate > 0)
      throw UsageError{"--generate and --beams apply to t5 models; '" + a.model + "' is a bert model"};
    if (!a.adapter.empty())
      dp::run_bert_adapter(dir, a.adapter, a.input, a.out);
    else
      dp::run_bert(dir, a.input, a.out);
    return;
  }
  if (!a.adapter.empty())
    throw UsageError{"--adapter applies to bert models; '" + a.model + "' is not one"};
#ifdef DEEPPROMPT_RUN_HAS_T5
  dp::run_t5(dir.string(), dp::run_detail::read_input(a.input), a.out, static_cast<int>(a.generate),
             static_cast<int>(a.beams));
#else
  throw dp::Error("t5 support not built: '" + a.model + "' is a " + std::get<dp::HfT5Config>(config).model_type +
                  " model but this deepprompt-run was compiled without deepprompt/models/t5_run.hpp");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  try {
    run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "deepprompt-run: " << e.what << " (" << kUsage << ")\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "deepprompt-run: " << one_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}
