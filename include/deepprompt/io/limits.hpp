#pragma once
// Resource limits on what a file may ask for: the bounds every reader of the library (safetensors,
// config.json, tokenizer files, PEFT adapter configs, data sets) checks BEFORE it allocates for
// a file's contents, so that a hostile or corrupt file is an exception, not an out-of-memory kill,
// a stack overflow or an integer overflow.
//
// The bounds live in one struct with defaults generous enough for real checkpoints, tokenizers
// and data sets. A caller tightens them for one thread and one scope:
//
//   dp::Limits strict;
//   strict.json_depth = 32;
//   strict.file_bytes = 64 << 20;
//   dp::ScopedLimits guard(strict);   // this thread, until guard goes out of scope
//   auto cfg = dp::read_config(untrusted_path);
//
// Exceeding a bound throws LimitError (a FormatError) whose message names the source and the
// bound as "Limits::<field>", e.g.
//   "config 'x.json': JSON nesting depth 257 exceeds Limits::json_depth = 256".
//
// FormatError is declared here (file.hpp includes this header) because LimitError is one.
// The JSON helper that enforces json_depth is io/json.hpp.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../core/error.hpp"

namespace deepprompt {

/// A file's contents do not follow its format (safetensors, config.json...); the message names
/// the file, the entry (tensor or field) and what is wrong.
class FormatError : public Error {
 public:
  using Error::Error;
};

/// The bounds (see the file comment). Each one is documented with what it bounds and why its
/// default is safe for real files.
struct Limits {
  /// The JSON header of a safetensors file, in bytes. 100 MB, as the reference implementation
  /// (real headers are a few hundred kB).
  std::uint64_t safetensors_header_bytes = 100'000'000;
  /// Tensors in one safetensors file (real files: a few thousand at most).
  std::uint64_t safetensors_tensors = 1'000'000;
  /// Dimensions of one tensor's shape (PyTorch allows 64; models use 1 to 4).
  std::uint64_t tensor_rank = 64;
  /// Nesting of arrays and objects in any JSON file the library reads (config.json,
  /// tokenizer.json, adapter_config.json, SuperGLUE lines, SQuAD, safetensors headers). Real
  /// files nest less than 10 deep; the bound keeps recursive code (printing, nested normalizer
  /// sequences) far from the stack's end.
  std::uint64_t json_depth = 256;
  /// A file read whole into memory (config.json, tokenizer files, vocab.txt, data sets, adapter
  /// configs, SentencePiece models): 2 GiB. Safetensors files are memory-mapped and not bound by it.
  std::uint64_t file_bytes = 2ull << 30;
  /// Entries of a tokenizer vocabulary, and the largest token id + 1 a tokenizer file may use:
  /// 16 Mi (real vocabularies: 30k to 260k).
  std::uint64_t vocab_size = 16u << 20;
  /// Bytes of one token or piece in a vocabulary (real ones: under 100). Tokenisation tries
  /// every candidate up to the longest token at each position, so this bounds its cost too.
  std::uint64_t token_bytes = 1024;
  /// Parameters a config.json implies for its model: 10^12 (t5-11b has 1.1 * 10^10). Keeps the
  /// products of the dimensions far from integer overflow.
  std::uint64_t model_parameters = 1'000'000'000'000;
};

/// A bound of Limits was exceeded; the message names it ("Limits::json_depth").
class LimitError : public FormatError {
 public:
  using FormatError::FormatError;
};

namespace detail {
inline thread_local const Limits* current_limits = nullptr;
}

/// The limits in force on this thread: the innermost ScopedLimits, else the defaults.
inline const Limits& limits() {
  static const Limits defaults{};
  return detail::current_limits ? *detail::current_limits : defaults;
}

/// Puts `l` in force on this thread until destroyed (then the previous limits again).
class ScopedLimits {
 public:
  explicit ScopedLimits(const Limits& l) : mine_(l), previous_(detail::current_limits) { detail::current_limits = &mine_; }
  ScopedLimits(const ScopedLimits&) = delete;
  ScopedLimits& operator=(const ScopedLimits&) = delete;
  ~ScopedLimits() { detail::current_limits = previous_; }

 private:
  Limits mine_;
  const Limits* previous_;
};

/// Throws LimitError "<context>: <what> <value> exceeds Limits::<bound> = <limit>" when
/// value > limit. `context` names the source ("config 'x.json'", "vocab.txt:3").
inline void check_limit(std::string_view context, std::string_view what, std::uint64_t value, std::uint64_t limit,
                        std::string_view bound) {
  if (value > limit)
    throw LimitError(detail::cat(context, ": ", what, " ", value, " exceeds Limits::", bound, " = ", limit));
}

namespace detail {

/// `a * b`, or UINT64_MAX when it overflows (for sizes compared against a limit).
inline std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
inline std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

}  // namespace detail
}  // namespace deepprompt
