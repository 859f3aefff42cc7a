#pragma once
// The one JSON parse of the library's readers: nlohmann-json with the nesting depth bounded by
// limits().json_depth (io/limits.hpp). config.json, tokenizer.json, adapter_config.json, the
// SuperGLUE and SQuAD readers and safetensors headers all parse through it.
//
// Two passes, both linear in the text: a SAX pass that builds nothing checks the depth (and hands
// the top-level keys to the caller when asked), then the plain DOM parse. (nlohmann's parser
// callback would do it in one pass, but its DOM builder then scans every finished object's parent
// for discarded values: quadratic in the number of objects inside one object or array -- 16 s for
// a 40k-tensor safetensors header, hours for a hostile one.)
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "limits.hpp"

namespace deepprompt::detail {

// The first pass: depth and top-level keys; stops at the first syntax error (the DOM pass then
// reports it in nlohmann's words).
class JsonDepthCheck : public nlohmann::json_sax<nlohmann::json> {
 public:
  JsonDepthCheck(std::string_view context, std::uint64_t max_depth,
                 const std::function<void(const std::string&)>* on_top_key)
      : context_(context), max_depth_(max_depth), on_top_key_(on_top_key) {}

  bool start_object(std::size_t) override { return enter(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_object() override { return --depth_, true; }
  bool end_array() override { return --depth_, true; }
  bool key(string_t& k) override {
    if (depth_ == 1 && on_top_key_ && *on_top_key_) (*on_top_key_)(k);
    return true;
  }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool enter() {
    check_limit(context_, "JSON nesting depth", ++depth_, max_depth_, "json_depth");
    return true;
  }
  std::string_view context_;
  std::uint64_t max_depth_;
  const std::function<void(const std::string&)>* on_top_key_;
  std::uint64_t depth_ = 0;
};

/// Parses JSON text with the nesting depth bounded by limits().json_depth (LimitError naming
/// `context` otherwise); syntax errors propagate as nlohmann::json::parse_error for the caller
/// to word; a number too large for a double (nlohmann's out_of_range 406) is a FormatError
/// naming `context`. `on_top_key`, when given, sees each key of the top-level object in text order,
/// duplicates included, before the DOM is built (it may throw to stop the parse).
inline nlohmann::json parse_json_limited(std::string_view text, std::string_view context,
                                         const std::function<void(const std::string&)>& on_top_key = nullptr) {
  JsonDepthCheck check(context, limits().json_depth, &on_top_key);
  if (!nlohmann::json::sax_parse(text.begin(), text.end(), &check)) {
    // a syntax error: the DOM parse throws it with its position
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond double's range (406)
    throw FormatError(cat(context, ": invalid JSON: ", e.what()));
  }
}

}  // namespace deepprompt::detail
