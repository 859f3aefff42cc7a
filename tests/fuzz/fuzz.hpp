#pragma once
// Shared by the libFuzzer targets (tests/fuzz/fuzz_*.cpp, docs/robustness.md): the input as text,
// the limits the targets run under, and the fixed files some targets load once.
//
// The oracle of every target: a parser may throw deepprompt::Error (FormatError, LimitError,
// TokenizerError...) on bad input and nothing else. Any other exception escapes the target and
// libFuzzer reports it as a crash, as it does sanitizer reports, leaks, timeouts and
// out-of-memory.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "deepprompt/io/limits.hpp"

#ifndef DEEPPROMPT_FUZZ_DATA
#error "DEEPPROMPT_FUZZ_DATA (the tests/data folder) must be defined"
#endif

namespace dp_fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Which of `n` ways (task layout, option, tokenizer) this input is read: its size modulo n.
/// One way per execution instead of all of them makes a target up to n times faster; the seeds,
/// of many sizes, and the mutations that change the size reach every way.
inline unsigned pick(std::size_t size, unsigned n) { return static_cast<unsigned>(size % n); }

inline std::string data_path(std::string_view relative) { return std::string(DEEPPROMPT_FUZZ_DATA) + "/" + std::string(relative); }

/// The defaults, with vocab_size cut to 2^20 so that one input cannot make one execution fill a
/// 16 Mi-entry id table (the bound's checks run the same; only the number differs).
inline void use_fuzz_limits() {
  static deepprompt::Limits l = [] {
    deepprompt::Limits x;
    x.vocab_size = 1u << 20;
    return x;
  }();
  static deepprompt::ScopedLimits guard(l);
}

}  // namespace dp_fuzz

/// Every target calls this first: the limits above, once.
#define DP_FUZZ_INIT()                \
  extern "C" int LLVMFuzzerInitialize(int*, char***) { \
    dp_fuzz::use_fuzz_limits();       \
    return 0;                         \
  }
