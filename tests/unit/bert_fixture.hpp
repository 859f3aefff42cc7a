#pragma once
// The BERT fixture of tests/data/bert (tests/fixtures/gen_bert.py): its configuration, the
// expected outputs, and small comparisons; shared by test_bert.cpp and test_bert_checkpoints.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "deepprompt/io/safetensors.hpp"
#include "deepprompt/models/bert_config.hpp"

namespace bert_fixture {

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;

using FixtureCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json

inline const fs::path kDir = fs::path(DEEPPROMPT_TEST_DATA) / "bert";

inline const dp::SafeTensorsFile& expected() {
  static const dp::SafeTensorsFile f = dp::SafeTensorsFile::open(kDir / "expected.safetensors");
  return f;
}
template <std::size_t R>
Tensor<float, R> want(const std::string& name) {
  return expected().load<float, R>(name);
}
inline Tensor<std::int64_t, 2> ids(const std::string& name) { return expected().load<std::int64_t, 2>(name); }

template <std::size_t R>
double max_abs_diff(const Tensor<float, R>& a, const Tensor<float, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}
template <std::size_t R>
bool same_bits(const Tensor<float, R>& a, const Tensor<float, R>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * std::size_t(a.size())) == 0;
}

/// A fresh, empty directory under the system's temporary one, named after `tag` and this process.
inline fs::path temp_dir(const std::string& tag) {
  auto d = fs::temp_directory_path() / ("dp_test_bert_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace bert_fixture
