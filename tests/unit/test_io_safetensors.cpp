// io/safetensors.hpp and io/file.hpp: reading the torch-made fixture, bit-exact round trips, the
// reference writer's byte layout, every malformed-file error, and atomic replacement.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <thread>

#include "deepprompt/io/safetensors.hpp"

namespace test_io_safetensors {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace fs = std::filesystem;
using doctest::Contains;
using nlohmann::json;

namespace {

const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA) / "io";

/// A fresh empty folder under the system temp folder, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() / ("dp_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void write_all(const fs::path& p, std::string_view bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}
/// A file: length, header, data (the length is the header's unless given).
std::string file_bytes(std::string_view header, std::size_t data_bytes, std::optional<std::uint64_t> n = {}) {
  return le64(n.value_or(header.size())) + std::string(header) + std::string(data_bytes, '\x01');
}
std::string tensor_json(std::string_view name, std::string_view dtype, std::string_view shape, std::uint64_t b,
                        std::uint64_t e) {
  return detail::cat("\"", name, "\":{\"dtype\":\"", dtype, "\",\"shape\":", shape, ",\"data_offsets\":[", b, ",", e, "]}");
}

/// Writes `bytes` to dir/name and checks that opening it throws FormatError whose message names
/// the file and contains every word (the first one through CHECK_THROWS_WITH_AS).
void expect_bad(const TempDir& dir, std::string_view name, std::string_view bytes, std::vector<std::string> words) {
  INFO("case ", name);
  const auto p = dir.path / (std::string(name) + ".safetensors");
  write_all(p, bytes);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), Contains(words.front().c_str()), FormatError);
  std::string msg;
  try {
    SafeTensorsFile::open(p, /*try_mmap=*/false);
  } catch (const FormatError& e) {
    msg = e.what();
  }
  words.push_back(p.string());
  for (const auto& w : words) CHECK_MESSAGE(msg.find(w) != std::string::npos, "'", w, "' not in: ", msg);
}

bool can_create_in(const fs::path& dir) {
  const auto probe = dir / ".dp_probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

std::uint64_t element_bits(std::span<const std::byte> bytes, std::size_t k, std::size_t size) {
  std::uint64_t v = 0;
  std::memcpy(&v, bytes.data() + k * size, size);
  return v;
}

}  // namespace

TEST_CASE("safetensors: the torch-made fixture reads back with torch's bits and values (mmap and read)") {
  const json expect = json::parse(read_all(kData / "valid_expected.json"));
  for (bool mmap : {true, false}) {
    CAPTURE(mmap);
    auto f = SafeTensorsFile::open(kData / "valid.safetensors", mmap);
    CHECK(f.is_mapped() == mmap);
    CHECK(f.names() == std::vector<std::string>{"dense.bias", "dense.weight", "emb.bf16", "emb.f16", "empty", "ids",
                                                "mask", "scalar", "\xc3\xbcn\xc3\xaf.flag"});
    CHECK(f.metadata() == expect["metadata"].get<std::map<std::string, std::string>>());
    for (const auto& item : expect["tensors"].items()) {
      const std::string name = item.key();
      const json& t = item.value();
      CAPTURE(name);
      const auto& info = f.info(name);
      CHECK(dtype_name(info.dtype) == t["dtype"].get<std::string>());
      CHECK(info.shape == t["shape"].get<std::vector<index_t>>());
      const auto bytes = f.bytes(name);
      const auto& bits = t["bits"];
      REQUIRE(bytes.size() == bits.size() * dtype_size(info.dtype));
      for (std::size_t k = 0; k < bits.size(); ++k)
        CHECK(element_bits(bytes, k, dtype_size(info.dtype)) == std::stoull(bits[k].get<std::string>(), nullptr, 16));
    }
    auto values = [&](const char* name) { return expect["tensors"][name]["values"].get<std::vector<double>>(); };

    auto w = f.load<float, 2>("dense.weight");
    CHECK(w.shape() == Shape<2>{2, 3});
    for (index_t k = 0; k < 6; ++k) CHECK(w.data()[k] == static_cast<float>(values("dense.weight")[k]));
    auto wd = f.load<double, 2>("dense.weight");  // F32 -> double is exact
    for (index_t k = 0; k < 6; ++k) CHECK(wd.data()[k] == values("dense.weight")[k]);
    auto bias = f.load<double, 1>("dense.bias");
    for (index_t k = 0; k < 3; ++k) CHECK(bias(k) == values("dense.bias")[k]);
    CHECK(f.load<float, 1>("dense.bias")(0) == static_cast<float>(1.0 / 3.0));

    // 16-bit floats: torch's rounding (in the file) widened by our conversions
    auto h = f.load<float, 1>("emb.f16");
    for (index_t k = 0; k < h.size(); ++k) CHECK(static_cast<double>(h(k)) == values("emb.f16")[k]);
    CHECK(std::signbit(h(4)));                               // -0.0 keeps its sign
    CHECK(f.load<fp16, 1>("emb.f16")(2).bits == 0x7bff);     // 65504, the largest half
    CHECK(f.load<double, 1>("emb.f16")(3) == values("emb.f16")[3]);  // a subnormal
    auto b = f.load<double, 2>("emb.bf16");
    for (index_t k = 0; k < 4; ++k) CHECK(b.data()[k] == values("emb.bf16")[k]);
    CHECK(f.load<bf16, 2>("emb.bf16")(0, 0).bits == bf16(0.1f).bits);

    auto ids = f.load<std::int64_t, 1>("ids");
    CHECK(std::vector<std::int64_t>(ids.begin(), ids.end()) == std::vector<std::int64_t>{0, -1, 1ll << 40, 7, -(1ll << 62)});
    auto mask = f.load<std::int64_t, 1>("mask");  // I32 -> int64
    CHECK(std::vector<std::int64_t>(mask.begin(), mask.end()) == std::vector<std::int64_t>{1, -2, 2147483647});
    CHECK(f.load<std::int32_t, 1>("mask")(1) == -2);
    auto flags = f.load<bool, 1>("\xc3\xbcn\xc3\xaf.flag");
    CHECK((flags(0) && !flags(1) && flags(2)));
    CHECK(f.load<std::int64_t, 1>("\xc3\xbcn\xc3\xaf.flag")(2) == 1);

    CHECK(f.load<float, 2>("empty").shape() == Shape<2>{0, 4});
    CHECK(f.load<float, 0>("scalar").item() == 2.5f);

    auto dst = Tensor<float, 2>::zeros({2, 3});
    f.load_into("dense.weight", dst);
    CHECK(dst(1, 0) == 3.0f);
  }
}

TEST_CASE("safetensors: data that is not aligned (unpadded header) loads correctly") {
  auto f = SafeTensorsFile::open(kData / "unaligned.safetensors");
  CHECK((read_all(kData / "unaligned.safetensors").size() - 28) % 8 == 3);  // 28 data bytes start at 8k+3
  auto a = f.load<float, 1>("a");
  CHECK((a(0) == 1.25f && a(1) == -2.0f && a(2) == 3.5f));
  auto b = f.load<double, 2>("b");
  CHECK((b(0, 0) == 0.1 && b(0, 1) == 0.2));
}

TEST_CASE("safetensors: load -> save -> load is bit-exact and the re-saved file is byte-identical") {
  TempDir dir;
  const auto src = kData / "valid.safetensors";
  auto f = SafeTensorsFile::open(src);
  auto entries_of = [](const SafeTensorsFile& g) {
    return std::vector<TensorEntry>{
        entry("dense.weight", g.load<float, 2>("dense.weight")), entry("dense.bias", g.load<double, 1>("dense.bias")),
        entry("emb.f16", g.load<fp16, 1>("emb.f16")),           entry("emb.bf16", g.load<bf16, 2>("emb.bf16")),
        entry("ids", g.load<std::int64_t, 1>("ids")),           entry("mask", g.load<std::int32_t, 1>("mask")),
        entry("empty", g.load<float, 2>("empty")),              entry("scalar", g.load<float, 0>("scalar")),
        entry("\xc3\xbcn\xc3\xaf.flag", g.load<bool, 1>("\xc3\xbcn\xc3\xaf.flag"))};
  };
  const auto out1 = dir.path / "out1.safetensors", out2 = dir.path / "out2.safetensors";
  save_safetensors(out1, entries_of(f), f.metadata());
  // the Python-layout fixture is reproduced exactly: same order, JSON, padding and data
  CHECK(read_all(out1) == read_all(src));
  auto g = SafeTensorsFile::open(out1);
  CHECK(g.names() == f.names());
  CHECK(g.metadata() == f.metadata());
  for (const auto& name : f.names()) {
    CAPTURE(name);
    CHECK(g.info(name).dtype == f.info(name).dtype);
    CHECK(g.info(name).shape == f.info(name).shape);
    CHECK(std::equal(g.bytes(name).begin(), g.bytes(name).end(), f.bytes(name).begin(), f.bytes(name).end()));
  }
  save_safetensors(out2, entries_of(g), g.metadata());
  CHECK(read_all(out2) == read_all(out1));
  CHECK(dir.listing() == std::vector<std::string>{"out1.safetensors", "out2.safetensors"});
}

TEST_CASE("safetensors: the writer produces the reference implementation's bytes") {
  TempDir dir;
  const auto p = dir.path / "ref.safetensors";
  // safetensors' own test vector: {"attn0": F32 (1, 1, 2, 3) = 0..5}, header padded to 72 bytes
  auto t = Tensor<float, 4>::from({1, 1, 2, 3}, {0, 1, 2, 3, 4, 5});
  save_safetensors(p, {entry("attn0", t)});
  const std::string hdr = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  std::string want = le64(72) + hdr + std::string(72 - hdr.size(), ' ');
  for (float v : {0.f, 1.f, 2.f, 3.f, 4.f, 5.f}) want.append(reinterpret_cast<const char*>(&v), 4);
  CHECK(read_all(p) == want);
  // no tensors, with and without metadata
  save_safetensors(p, {}, {{"framework", "pt"}});
  CHECK(read_all(p) == le64(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
  save_safetensors(p, {});
  CHECK(read_all(p) == le64(8) + "{}      ");
  CHECK(SafeTensorsFile::open(p).size() == 0);
  // dtype order first (I64 > F32 > BF16 in the library's enum), then names byte-wise
  save_safetensors(p, {entry("b", Tensor<bf16, 1>::zeros({1})), entry("z", Tensor<float, 1>::zeros({1})),
                       entry("a", Tensor<float, 1>::zeros({1})), entry("y", Tensor<std::int64_t, 1>::zeros({1}))});
  const auto text = read_all(p);
  CHECK(text.find("\"y\"") < text.find("\"a\""));
  CHECK(text.find("\"a\"") < text.find("\"z\""));
  CHECK(text.find("\"z\"") < text.find("\"b\""));
}

TEST_CASE("safetensors: every malformed file is rejected with a message naming the file, tensor and fault") {
  TempDir dir;
  const std::string valid = read_all(kData / "valid.safetensors");
  const std::string w16 = tensor_json("w", "F32", "[2,2]", 0, 16);

  expect_bad(dir, "tiny", "abcde", {"too short", "5 bytes"});
  expect_bad(dir, "empty", "", {"too short"});
  expect_bad(dir, "truncated_data", valid.substr(0, valid.size() - 4), {"truncated file", "emb.f16", "past the end"});
  expect_bad(dir, "truncated_header", valid.substr(0, 108), {"exceeds", "header length 648", "truncated"});
  expect_bad(dir, "length_past_file", file_bytes("{" + w16 + "}", 16, 1000), {"header length 1000 exceeds"});
  expect_bad(dir, "huge_length", file_bytes("{}", 0, 1ull << 60), {"1152921504606846976", "larger than the limit"});
  expect_bad(dir, "zero_length", file_bytes("", 0), {"not a JSON object"});
  expect_bad(dir, "invalid_json", file_bytes("{\"w\":{\"dtype\":", 0), {"invalid JSON"});
  expect_bad(dir, "trailing_garbage", file_bytes("{} x", 0), {"invalid JSON"});
  expect_bad(dir, "bad_utf8", file_bytes("{\"\xff\":{}}", 0), {"invalid JSON"});
  expect_bad(dir, "not_object", file_bytes("[1, 2]  ", 0), {"not a JSON object"});
  expect_bad(dir, "entry_not_object", file_bytes(R"({"w":[1]})", 0), {"not a JSON object", "\"w\""});
  expect_bad(dir, "unknown_dtype", file_bytes("{" + tensor_json("w", "F128", "[2]", 0, 32) + "}", 32),
             {"unknown dtype \"F128\"", "tensor \"w\""});
  expect_bad(dir, "missing_dtype", file_bytes(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), {"\"dtype\" is missing"});
  expect_bad(dir, "negative_shape", file_bytes("{" + tensor_json("w", "F32", "[-1,2]", 0, 8) + "}", 8),
             {"negative extent", "tensor \"w\"", "[-1,2]"});
  expect_bad(dir, "float_shape", file_bytes("{" + tensor_json("w", "F32", "[2.0]", 0, 8) + "}", 8), {"not an integer"});
  expect_bad(dir, "shape_bytes_mismatch", file_bytes("{" + tensor_json("w", "F32", "[2,2]", 0, 12) + "}", 12),
             {"needs 16 bytes", "hold 12", "tensor \"w\""});
  expect_bad(dir, "offsets_past_end", file_bytes("{" + tensor_json("w", "F32", "[100]", 0, 400) + "}", 16),
             {"past the end", "16-byte data section", "tensor \"w\""});
  expect_bad(dir, "offsets_reversed", file_bytes("{" + tensor_json("w", "F32", "[0]", 8, 0) + "}", 8), {"end before"});
  expect_bad(dir, "offsets_arity", file_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
             {"pair of non-negative integers"});
  expect_bad(dir, "overlap",
             file_bytes("{" + tensor_json("a", "F32", "[4]", 0, 16) + "," + tensor_json("b", "F32", "[4]", 8, 24) + "}", 24),
             {"overlap", "tensor \"b\"", "\"a\""});
  expect_bad(dir, "gap",
             file_bytes("{" + tensor_json("a", "F32", "[2]", 0, 8) + "," + tensor_json("b", "F32", "[2]", 12, 20) + "}", 20),
             {"gap", "tensor \"b\"", "[8, 12)"});
  expect_bad(dir, "trailing_bytes", file_bytes("{" + tensor_json("a", "F32", "[2]", 0, 8) + "}", 12),
             {"gap", "last 4 bytes"});
  expect_bad(dir, "shape_overflow",
             file_bytes("{" + tensor_json("w", "F32", "[4294967296,4294967296,4294967296]", 0, 0) + "}", 0),
             {"overflows", "tensor \"w\""});
  expect_bad(dir, "size_overflow", file_bytes("{" + tensor_json("w", "F64", "[4611686018427387904]", 0, 0) + "}", 0),
             {"overflows"});
  expect_bad(dir, "duplicate", file_bytes("{" + w16 + "," + w16 + "}", 16), {"appears twice", "tensor \"w\""});
  expect_bad(dir, "metadata_not_strings", file_bytes(R"({"__metadata__":{"epoch":3}})", 0), {"__metadata__", "epoch"});

  // a zero-size tensor may sit anywhere between the others, but not inside one
  {
    const auto ok = dir.path / "zero_size.safetensors";
    write_all(ok, file_bytes("{" + tensor_json("a", "F32", "[2]", 0, 8) + "," + tensor_json("e", "F32", "[0,3]", 8, 8) +
                                 "," + tensor_json("b", "F32", "[1]", 8, 12) + "}",
                             12));
    CHECK(SafeTensorsFile::open(ok).load<float, 2>("e").size() == 0);
    expect_bad(dir, "zero_inside",
               file_bytes("{" + tensor_json("a", "F32", "[2]", 0, 8) + "," + tensor_json("e", "F32", "[0]", 4, 4) + "}", 8),
               {"overlap", "tensor \"e\""});
  }

  // I/O errors are IoError and name the path
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(dir.path / "nope.safetensors"), Contains("nope.safetensors"), IoError);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(dir.path), Contains("not a regular file"), IoError);
}

TEST_CASE("safetensors: load errors name the tensor, the file, the rank and the dtype") {
  const auto p = kData / "valid.safetensors";
  auto f = SafeTensorsFile::open(p);
  CHECK_THROWS_WITH_AS((f.load<float, 2>("nope")), Contains("no tensor \"nope\""), FormatError);
  CHECK_THROWS_WITH_AS(f.info("nope"), Contains(p.string().c_str()), FormatError);
  CHECK_THROWS_WITH_AS((f.load<float, 3>("dense.weight")), Contains("\"dense.weight\" has shape (2, 3) (rank 2), expected rank 3"),
                       FormatError);
  CHECK_THROWS_WITH_AS((f.load<float, 1>("ids")), Contains("dtype I64 cannot be loaded as F32"), FormatError);
  CHECK_THROWS_WITH_AS((f.load<std::int64_t, 2>("dense.weight")), Contains("cannot be loaded as I64"), FormatError);
  CHECK_THROWS_WITH_AS((f.load<bf16, 2>("dense.weight")), Contains("cannot be loaded as BF16"), FormatError);
  CHECK_THROWS_WITH_AS((f.load_into("dense.weight", Tensor<float, 2>::zeros({3, 2}))),
                       Contains("shape (2, 3) but the destination has shape (3, 2)"), FormatError);
}

TEST_CASE("safetensors: invalid entries are refused before anything is written") {
  TempDir dir;
  const auto p = dir.path / "x.safetensors";
  auto t = Tensor<float, 1>::zeros({4});
  CHECK_THROWS_WITH_AS(save_safetensors(p, {entry("a", t), entry("a", t)}), Contains("\"a\": the name appears twice"),
                       FormatError);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {entry("__metadata__", t)}), Contains("reserved"), FormatError);
  TensorEntry bad = entry("w", t);
  bad.shape = {5};
  CHECK_THROWS_WITH_AS(save_safetensors(p, {bad}), Contains("16 bytes do not hold shape (5) of F32"), FormatError);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {entry("bad\xff", t)}), Contains("not valid UTF-8"), FormatError);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {entry("w", t)}, {{"k", "\xfe"}}), Contains("not valid UTF-8"), FormatError);
  CHECK(dir.listing().empty());
}

TEST_CASE("atomic write: a missing or read-only folder throws and leaves nothing behind") {
  TempDir dir;
  auto t = Tensor<float, 1>::full({3}, 1.f);
  CHECK_THROWS_WITH_AS(save_safetensors(dir.path / "missing" / "x.safetensors", {entry("t", t)}), Contains("missing"),
                       IoError);
  CHECK(!fs::exists(dir.path / "missing"));
  write_all(dir.path / "plain", "x");
  CHECK_THROWS_AS(save_safetensors(dir.path / "plain" / "x.safetensors", {entry("t", t)}), IoError);

  const auto ro = dir.path / "ro";
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  fs::path target = ro / "x.safetensors";
  if (can_create_in(ro)) target = "/sys/deepprompt_io_test.safetensors";  // root ignores modes; sysfs does not
  if (can_create_in(target.parent_path())) {
    MESSAGE("no read-only folder available to this user; skipped");
  } else {
    CHECK_THROWS_WITH_AS(save_safetensors(target, {entry("t", t)}), Contains(target.string().c_str()), IoError);
    CHECK(!fs::exists(target));
    if (target.parent_path() == ro) CHECK(fs::is_empty(ro));
  }
}

TEST_CASE("atomic write: a failure while writing keeps the old file and removes the temporary") {
  TempDir dir;
  const auto p = dir.path / "model.safetensors";
  save_safetensors(p, {entry("t", Tensor<float, 1>::full({4}, 1.f))}, {{"version", "old"}});
  const std::string old = read_all(p);
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);

  // a file size limit makes write() fail with EFBIG half-way through the new file
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* prev = ::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  bool threw = false;
  try {
    save_safetensors(p, {entry("t", Tensor<float, 1>::full({100000}, 2.f))}, {{"version", "new"}});
  } catch (const IoError& e) {
    threw = std::string(e.what()).find("cannot write") != std::string::npos;
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, prev);
  CHECK(threw);
  CHECK(read_all(p) == old);
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});

  // a file object opened before a replacement keeps reading the old contents (its own inode)
  auto before = SafeTensorsFile::open(p);
  save_safetensors(p, {entry("t", Tensor<float, 1>::full({8}, 5.f))});
  CHECK(before.load<float, 1>("t")(3) == 1.f);
  CHECK(SafeTensorsFile::open(p).load<float, 1>("t")(7) == 5.f);

  // a successful replacement keeps the old file's permission bits
  save_safetensors(p, {entry("t", Tensor<float, 1>::full({4}, 3.f))});
  CHECK((fs::status(p).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));

  // a symbolic link is followed: the file it names is replaced, the link stays
  fs::create_symlink(p.filename(), dir.path / "link.safetensors");
  save_safetensors(dir.path / "link.safetensors", {entry("t", Tensor<float, 1>::full({2}, 4.f))});
  CHECK(fs::is_symlink(dir.path / "link.safetensors"));
  CHECK(SafeTensorsFile::open(p).load<float, 1>("t").size() == 2);
  CHECK(dir.listing() == std::vector<std::string>{"link.safetensors", "model.safetensors"});
}

TEST_CASE("atomic write: a reader never sees a partial file while it is replaced again and again") {
  TempDir dir;
  const auto p = dir.path / "ckpt.safetensors";
  auto a = Tensor<float, 1>::full({1 << 16}, 1.f), b = Tensor<float, 1>::full({1 << 16}, 2.f);
  save_safetensors(p, {entry("w", a)}, {{"version", "1"}});
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad{0};
  std::thread reader([&] {
    while (!done.load() || reads.load() < 5) {
      try {
        auto f = SafeTensorsFile::open(p);
        const float want = f.metadata().at("version") == "1" ? 1.f : 2.f;
        auto w = f.load<float, 1>("w");
        if (w.size() != (1 << 16) || std::any_of(w.begin(), w.end(), [&](float v) { return v != want; })) ++bad;
      } catch (...) {
        ++bad;
      }
      ++reads;
    }
  });
  for (int k = 0; k < 30; ++k)
    save_safetensors(p, {entry("w", k % 2 ? a : b)}, {{"version", k % 2 ? "1" : "2"}});
  done = true;
  reader.join();
  CHECK(bad.load() == 0);
  CHECK(reads.load() >= 5);
  CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
}

}  // namespace test_io_safetensors
