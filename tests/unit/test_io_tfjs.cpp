// io/tfjs.hpp: reading the generated TF.js fixture (tests/data/tfjs/make_fixtures.py), shards
// that do not add up, and every malformed-manifest error.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>

#include "deepprompt/io/tfjs.hpp"

namespace test_io_tfjs {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace fs = std::filesystem;
using doctest::Contains;
using nlohmann::json;

namespace {

const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA) / "tfjs";

/// A fresh empty folder under the system temp folder, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() / ("dp_tfjs_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_all(const fs::path& p, std::string_view bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

// A one-group manifest with the given weight entries.
std::string manifest(const json& weights, const json& paths = json::array({"w.bin"})) {
  return json{{"weightsManifest", json::array({json{{"paths", paths}, {"weights", weights}}})}}.dump();
}
json weight(std::string name, json shape, std::string dtype = "float32") {
  return json{{"name", std::move(name)}, {"shape", std::move(shape)}, {"dtype", std::move(dtype)}};
}

// parse_tfjs_model_json(text) must throw FormatError whose message contains every part.
void expect_format_error(std::string_view text, std::initializer_list<std::string_view> parts) {
  try {
    parse_tfjs_model_json(text, "m.json");
    FAIL("no error for: ", text);
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find("tfjs model 'm.json'") != std::string::npos, msg);
    for (auto p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, msg, " lacks ", p);
  }
}

}  // namespace

TEST_CASE("tfjs: the valid fixture loads every weight as the generator wrote it") {
  const auto m = TfjsModel::open(kData / "valid" / "model.json");
  const json expected = read_json(kData / "valid_expected.json");
  REQUIRE(m.size() == expected.size());
  CHECK(m.names().front() == "dense/kernel");
  CHECK(m.manifest().format == "graph-model");
  CHECK(m.manifest().generated_by == "make_fixtures.py");
  CHECK(m.manifest().groups.size() == 2);
  CHECK(m.manifest().groups[0].bytes == 72);
  for (const auto& [name, e] : expected.items()) {
    CAPTURE(name);
    const auto& w = m.info(name);
    CHECK(std::vector<index_t>(w.shape) == e["shape"].get<std::vector<index_t>>());
    CHECK(tfjs_dtype_name(w.dtype) == e["dtype"].get<std::string>());
    if (w.dtype == TfjsDtype::Float32) {
      const auto got = m.values<float>(name);
      const auto want = e["values"].get<std::vector<double>>();
      REQUIRE(got.size() == want.size());
      for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == static_cast<float>(want[i]));
    } else {
      CHECK(m.values<std::int32_t>(name) == e["values"].get<std::vector<std::int32_t>>());
    }
  }
  // A weight that straddles the two shards, as a tensor; a scalar; an empty weight.
  const auto bias = m.load<float, 1>("dense/bias");
  CHECK(bias.extent(0) == 7);
  CHECK(bias(2) == 3.0e8f);
  CHECK(m.load<float, 2>("dense/kernel")(1, 2) == 1.25f);
  CHECK(m.scalar<float>("scale") == 0.125f);
  CHECK(m.load<float, 2>("empty").shape() == Shape<2>{0, 5});
  CHECK(m.load<std::int32_t, 1>("mask")(3) == 1);
  CHECK(m.info("q/uint8").quant == TfjsQuant::Uint8);
  // The same through the read fallback.
  const auto r = TfjsModel::open(kData / "valid" / "model.json", /*try_mmap=*/false);
  CHECK(r.values<float>("dense/bias") == m.values<float>("dense/bias"));
}

TEST_CASE("tfjs: the graph nodes") {
  const auto m = TfjsModel::open(kData / "valid" / "model.json");
  REQUIRE(m.nodes().size() == 5);
  CHECK(m.nodes()[3].name == "MatMul");
  CHECK(m.nodes()[3].op == "MatMul");
  CHECK(m.nodes()[3].inputs == std::vector<std::string>{"x", "dense/kernel"});
  CHECK(m.nodes()[3].attr["transpose_a"]["b"] == false);
  CHECK(m.nodes()[4].attr.is_null());
  CHECK(m.manifest().topology["versions"]["producer"] == 1);
}

TEST_CASE("tfjs: loading errors name the file and the weight") {
  const auto m = TfjsModel::open(kData / "valid" / "model.json");
  CHECK_THROWS_WITH_AS(m.info("nope"), Contains("no weight \"nope\""), FormatError);
  CHECK_THROWS_WITH_AS((m.load<float, 1>("dense/kernel")), Contains("\"dense/kernel\" has shape (2, 3) (rank 2), expected rank 1"), FormatError);
  CHECK_THROWS_WITH_AS(m.values<float>("const/shape"), Contains("\"const/shape\" of dtype int32 cannot be loaded as float"), FormatError);
  CHECK_THROWS_WITH_AS(m.values<std::int32_t>("dense/bias"), Contains("of dtype float32 cannot be loaded as int32"), FormatError);
  CHECK_THROWS_WITH_AS(m.scalar<float>("dense/bias"), Contains("not a single value"), FormatError);
}

TEST_CASE("tfjs: shards that are missing or do not add up") {
  CHECK_THROWS_WITH_AS(TfjsModel::open(kData / "missing_shard" / "model.json"),
                       Contains("shard \"group1-shard2of2.bin\" of weight group 0 (first weight \"dense/kernel\"): cannot open"),
                       IoError);
  CHECK_THROWS_WITH_AS(TfjsModel::open(kData / "short_shard" / "model.json"),
                       Contains("the shards of weight group 0 hold 68 bytes but its weights need 72; weight \"scale\" (bytes 68 to 72)"),
                       FormatError);
  CHECK_THROWS_WITH_AS(TfjsModel::open(kData / "long_shard" / "model.json"),
                       Contains("weight group 1 hold 21 bytes but its weights need 18; 3 bytes follow the last weight \"q/float16\""),
                       FormatError);
  CHECK_THROWS_WITH_AS(TfjsModel::open(kData / "no_such_folder" / "model.json"), Contains("cannot open"), IoError);
  TempDir d;
  fs::create_directories(d.path / "dir.bin");
  write_all(d.path / "model.json", manifest(json::array({weight("w", {1})}), {"dir.bin"}));
  CHECK_THROWS_WITH_AS(TfjsModel::open(d.path / "model.json"), Contains("not a regular file"), IoError);
  write_all(d.path / "model.json", "{\"weightsManifest\": 3}");
  const std::string want = "tfjs model '" + (d.path / "model.json").string() + "': \"weightsManifest\" is missing";
  CHECK_THROWS_WITH_AS(TfjsModel::open(d.path / "model.json"), Contains(want.c_str()), FormatError);
}

TEST_CASE("tfjs: a manifest without topology and a weight in two groups' worth of shards") {
  TempDir d;
  const std::string text = json{{"weightsManifest", json::array({
      json{{"paths", {"a", "sub/b"}}, {"weights", {weight("x", {3}, "int32")}}},
      json{{"paths", json::array()}, {"weights", {weight("e", {0})}}}})}}.dump();
  fs::create_directories(d.path / "sub");
  const std::int32_t v[3] = {7, -8, 9};
  write_all(d.path / "a", std::string_view(reinterpret_cast<const char*>(v), 5));
  write_all(d.path / "sub" / "b", std::string_view(reinterpret_cast<const char*>(v) + 5, 7));
  write_all(d.path / "model.json", text);
  const auto m = TfjsModel::open(d.path / "model.json");
  CHECK(m.nodes().empty());
  CHECK(m.manifest().topology.is_null());
  CHECK(m.values<std::int32_t>("x") == std::vector<std::int32_t>{7, -8, 9});
  CHECK(m.values<float>("e").empty());
}

TEST_CASE("tfjs: every malformed manifest is a FormatError naming the fault") {
  expect_format_error("", {"invalid JSON"});
  expect_format_error("{\"weightsManifest\": [", {"invalid JSON"});
  expect_format_error("{\"a\": \"\xff\"}", {"invalid JSON"});
  expect_format_error("[]", {"not a JSON object"});
  expect_format_error("{}", {"\"weightsManifest\" is missing or not an array"});
  expect_format_error("{\"weightsManifest\": [], \"weightsManifest\": []}", {"key \"weightsManifest\" appears twice"});
  expect_format_error("{\"weightsManifest\": [{\"paths\": [], \"weights\": [{\"name\": \"w\", \"name\": \"v\"}]}]}",
                      {"key \"name\" appears twice"});
  expect_format_error(std::string(300, '[') + std::string(300, ']'), {"JSON nesting depth 257 exceeds Limits::json_depth = 256"});
  expect_format_error("{\"format\": 3, \"weightsManifest\": []}", {"\"format\" is not a string"});
  expect_format_error("{\"weightsManifest\": [3]}", {"weightsManifest[0] is not a JSON object"});
  expect_format_error("{\"weightsManifest\": [{\"weights\": []}]}", {"weightsManifest[0]: \"paths\" is missing"});
  expect_format_error("{\"weightsManifest\": [{\"paths\": []}]}", {"weightsManifest[0]: \"weights\" is missing"});
  expect_format_error(manifest(json::array(), {3}), {"a shard path is not a string"});
  expect_format_error(manifest(json::array(), {""}), {"shard path \"\" is empty"});
  expect_format_error(manifest(json::array(), {std::string("a\0b", 3)}), {"contains a NUL character"});
  expect_format_error(manifest(json::array(), {"/etc/passwd"}), {"\"/etc/passwd\" is absolute"});
  expect_format_error(manifest(json::array(), {"x/../../secret"}), {"leaves the model's folder"});
  expect_format_error(manifest(json::array(), {"a.bin", "./a.bin"}), {"shard path \"./a.bin\" is listed twice"});
  expect_format_error(manifest(json::array({weight("w", {2})}), json::array()),
                      {"weightsManifest[0]: 8 bytes of weights but no shard paths"});
  expect_format_error(manifest(json::array({3})), {"weightsManifest[0]: a weight entry is not a JSON object"});
  expect_format_error(manifest(json::array({weight("", {1})})), {"weight 0 has no name"});
  expect_format_error(manifest(json::array({json{{"shape", {1}}, {"dtype", "float32"}}})), {"weight 0 has no name"});
  expect_format_error(manifest(json::array({json{{"name", "w"}, {"shape", {1}}}})), {"weight \"w\": \"dtype\" is missing"});
  expect_format_error(manifest(json::array({weight("w", {1}, "float64")})), {"weight \"w\": unknown dtype \"float64\""});
  expect_format_error(manifest(json::array({weight("w", {1}, "string")})), {"dtype \"string\" is not supported"});
  expect_format_error(manifest(json::array({weight("w", {1}, "complex64")})), {"dtype \"complex64\" is not supported"});
  expect_format_error(manifest(json::array({json{{"name", "w"}, {"dtype", "int32"}}})), {"\"shape\" is missing or not an array"});
  expect_format_error(manifest(json::array({weight("w", json::array({2, 1.5}))})), {"shape [2,1.5] has an entry that is not an integer"});
  expect_format_error(manifest(json::array({weight("w", json::array({2, -1}))})), {"shape [2,-1] has a negative extent"});
  expect_format_error(manifest(json::array({weight("w", json::array({1ull << 62, 4}))})), {"weight \"w\": the size of shape", "overflows"});
  expect_format_error(manifest(json::array({weight("w", json::array({1ull << 62}))})), {"overflows"});  // * 4 bytes
  expect_format_error(manifest(json::array({weight("w", json::array({1ull << 61}))})), {"would need 2^63 bytes or more"});
  expect_format_error(manifest(json::array({weight("w", json::array({9223372036854775808ull}))})), {"overflows"});
  expect_format_error(manifest(json::array({weight("a", json::array({1ull << 60})), weight("b", json::array({1ull << 60}))})),
                      {"weight \"b\": weight group 0 would need 2^63 bytes or more"});
  expect_format_error(manifest(json::array({weight("w", json::array()), weight("v", {2}), weight("w", {1})})),
                      {"weight \"w\": the name appears twice"});
  expect_format_error(manifest(json::array({weight("w", std::vector<int>(65, 1))})), {"weight \"w\": rank 65 exceeds Limits::tensor_rank = 64"});

  auto quant = [](json q, std::string dtype = "float32") {
    auto w = weight("w", {2}, std::move(dtype));
    w["quantization"] = std::move(q);
    return manifest(json::array({w}));
  };
  expect_format_error(quant(3), {"weight \"w\": \"quantization\" is not a JSON object"});
  expect_format_error(quant(json::object()), {"quantization \"dtype\" is missing"});
  expect_format_error(quant(json{{"dtype", "int4"}}), {"quantization dtype \"int4\" is not supported"});
  expect_format_error(quant(json{{"dtype", "uint8"}, {"scale", 1}}), {"quantization uint8 needs numbers \"scale\" and \"min\""});
  expect_format_error(quant(json{{"dtype", "uint16"}, {"scale", "1"}, {"min", 0}}), {"needs numbers"});
  expect_format_error(quant(json{{"dtype", "uint8"}, {"scale", 1}, {"min", 0}}, "int32"),
                      {"quantized int32 weights are not supported"});
  CHECK(parse_tfjs_model_json(quant(json{{"dtype", "float16"}})).weights[0].bytes == 4);
  CHECK(parse_tfjs_model_json(quant(nullptr)).weights[0].bytes == 8);

  auto graph = [](json nodes) { return json{{"modelTopology", {{"node", std::move(nodes)}}}, {"weightsManifest", json::array()}}.dump(); };
  expect_format_error("{\"modelTopology\": 3, \"weightsManifest\": []}", {"\"modelTopology\" is not a JSON object"});
  expect_format_error(graph(3), {"\"modelTopology\".\"node\" is not an array"});
  expect_format_error(graph({3}), {"graph node 0 is not a JSON object"});
  expect_format_error(graph({json{{"op", "Const"}}}), {"graph node 0 has no name"});
  expect_format_error(graph({json{{"name", "a"}}}), {"graph node \"a\": \"op\" is missing"});
  expect_format_error(graph({json{{"name", "a"}, {"op", "Add"}, {"input", "b"}}}), {"graph node \"a\": \"input\" is not an array"});
  expect_format_error(graph({json{{"name", "a"}, {"op", "Add"}, {"input", {1}}}}), {"graph node \"a\": an input is not a string"});
  expect_format_error(graph({json{{"name", "a"}, {"op", "Add"}, {"attr", {1}}}}), {"graph node \"a\": \"attr\" is not a JSON object"});
  expect_format_error(graph({json{{"name", "a"}, {"op", "X"}}, json{{"name", "a"}, {"op", "Y"}}}),
                      {"graph node name \"a\" appears twice"});
  // Control characters of a name are shown as '?'.
  expect_format_error(manifest(json::array({weight("bad\x01name", {1}, "half")})), {"weight \"bad?name\""});
}

TEST_CASE("tfjs: the size limits") {
  {
    Limits small;
    small.file_bytes = 100;
    ScopedLimits guard(small);
    expect_format_error(std::string(101, ' '), {"model.json size 101 exceeds Limits::file_bytes = 100"});
    CHECK_THROWS_WITH_AS(TfjsModel::open(kData / "valid" / "model.json"), Contains("exceeds Limits::file_bytes = 100"), LimitError);
  }
  // Counted before anything per weight is allocated: a million-and-one empty objects.
  std::string many = "{\"weightsManifest\": [{\"paths\": [], \"weights\": [";
  for (std::size_t i = 0; i <= kTfjsMaxWeights; ++i) many += i ? ",{}" : "{}";
  many += "]}]}";
  expect_format_error(many, {"more than 1000000 weights"});
  std::string values = "[";
  for (std::size_t i = 0; i <= kTfjsMaxJsonValues; ++i) values += i ? ",0" : "0";
  expect_format_error(values + "]", {"more than 4000000 JSON values"});
}

}  // namespace test_io_tfjs
