#pragma once
// Command-line flags of the bench programs: "--name value" or "--name=value", each declared once
// with where its value goes and what it accepts. A bad flag prints the message and the program's
// usage text and exits with status 2 (these are command-line tools, not library code).
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace bench {

class Flags {
 public:
  /// program: the name in messages; usage_text: the lines after "usage: ".
  Flags(std::string program, std::string usage_text) : program_(std::move(program)), usage_(std::move(usage_text)) {}

  /// An integer >= lo.
  template <class I>
  Flags& integer(const std::string& name, I& out, long long lo) {
    return on(name, [this, name, &out, lo](const std::string& v) { out = static_cast<I>(to_int(name, v, lo)); });
  }
  /// A probability in [0, 1).
  Flags& fraction(const std::string& name, double& out) {
    return on(name, [this, name, &out](const std::string& v) {
      char* end = nullptr;
      out = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(out >= 0 && out < 1)) usage("flag " + name + ": bad value '" + v + "'");
    });
  }
  /// 0 or 1.
  Flags& boolean(const std::string& name, bool& out) {
    return on(name, [this, name, &out](const std::string& v) {
      if (v != "0" && v != "1") usage(name + " takes 0 or 1");
      out = v == "1";
    });
  }
  /// One of `allowed`.
  Flags& choice(const std::string& name, std::string& out, std::initializer_list<const char*> allowed) {
    std::vector<std::string> words(allowed.begin(), allowed.end());
    return on(name, [this, name, &out, words](const std::string& v) {
      for (const auto& w : words)
        if (v == w) return void(out = v);
      usage("unknown value '" + v + "' of " + name);
    });
  }
  /// Any text.
  Flags& text(const std::string& name, std::string& out) {
    return on(name, [&out](const std::string& v) { out = v; });
  }
  /// Comma-separated integers, each >= lo.
  template <class I>
  Flags& integers(const std::string& name, std::vector<I>& out, long long lo) {
    return on(name, [this, name, &out, lo](const std::string& v) {
      out.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) out.push_back(static_cast<I>(to_int(name, item, lo)));
      if (out.empty()) usage("flag " + name + ": no values");
    });
  }

  /// Reads argv[1..argc); every argument must be a declared flag with a valid value.
  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i], v;
      if (a.rfind("--", 0) != 0) usage("unexpected argument '" + a + "'");
      if (const auto eq = a.find('='); eq != std::string::npos) {
        v = a.substr(eq + 1), a = a.substr(0, eq);
      } else {
        if (i + 1 >= argc) usage("flag " + a + " needs a value");
        v = argv[++i];
      }
      const auto h = handlers_.find(a);
      if (h == handlers_.end()) usage("unknown flag " + a);
      h->second(v);
    }
  }

  [[noreturn]] void usage(const std::string& msg) const {
    std::fprintf(stderr, "%s: %s\nusage: %s\n", program_.c_str(), msg.c_str(), usage_.c_str());
    std::exit(2);
  }

 private:
  Flags& on(const std::string& name, std::function<void(const std::string&)> f) {
    handlers_[name] = std::move(f);
    return *this;
  }
  long long to_int(const std::string& name, const std::string& v, long long lo) const {
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || x < lo) usage("flag " + name + ": bad value '" + v + "'");
    return x;
  }

  std::string program_, usage_;
  std::map<std::string, std::function<void(const std::string&)>> handlers_;
};

/// The flags both bench programs share: the model's shape, the batch, the run. O has the fields
/// named after them.
template <class O>
void shape_flags(Flags& f, O& o) {
  f.integer("--batch", o.batch, 1).integer("--seq", o.seq, 2).integer("--layers", o.layers, 1);
  f.integer("--hidden", o.hidden, 1).integer("--heads", o.heads, 1).integer("--ffn", o.ffn, 1);
  f.integer("--vocab", o.vocab, 200).integer("--prefix", o.prefix, 1).integer("--labels", o.labels, 2);
  f.fraction("--dropout", o.dropout).integer("--runs", o.runs, 1).integer("--warmup", o.warmup, 0);
  f.integer("--threads", o.threads, 1).integer("--seed", o.seed, 0).boolean("--unpadded", o.unpadded);
}

}  // namespace bench
