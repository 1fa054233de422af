// A minimal JSON reader for checking sealfs-layout --json output in tests:
// objects, arrays, strings (simple escapes), integers, true/false/null.
// Anything else makes parse() return nullopt, which fails the test.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealfs::itest {

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool boolean = false;
  int64_t number = 0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  // Missing keys and wrong kinds give a null value, so a test's EXPECT on
  // the result fails instead of crashing.
  const Json& operator[](const std::string& key) const {
    static const Json kMissing;
    auto it = fields.find(key);
    return it == fields.end() ? kMissing : it->second;
  }
  const Json& operator[](size_t i) const {
    static const Json kMissing;
    return i < items.size() ? items[i] : kMissing;
  }
  uint64_t u() const { return static_cast<uint64_t>(number); }
  size_t size() const { return items.size(); }

  static std::optional<Json> parse(std::string_view in) {
    size_t pos = 0;
    Json v;
    if (!value(in, pos, v, 0)) return std::nullopt;
    skip(in, pos);
    if (pos != in.size()) return std::nullopt;
    return v;
  }

 private:
  static void skip(std::string_view in, size_t& pos) {
    while (pos < in.size() && (in[pos] == ' ' || in[pos] == '\n' || in[pos] == '\t' ||
                               in[pos] == '\r')) {
      ++pos;
    }
  }
  static bool literal(std::string_view in, size_t& pos, std::string_view word) {
    if (in.substr(pos, word.size()) != word) return false;
    pos += word.size();
    return true;
  }
  static bool string(std::string_view in, size_t& pos, std::string& out) {
    if (pos >= in.size() || in[pos] != '"') return false;
    ++pos;
    while (pos < in.size() && in[pos] != '"') {
      char c = in[pos++];
      if (c == '\\') {
        if (pos >= in.size()) return false;
        char e = in[pos++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'u':
            if (pos + 4 > in.size()) return false;
            out += static_cast<char>(std::stoi(std::string(in.substr(pos, 4)), nullptr, 16));
            pos += 4;
            break;
          default: out += e;
        }
      } else {
        out += c;
      }
    }
    if (pos >= in.size()) return false;
    ++pos;
    return true;
  }
  static bool value(std::string_view in, size_t& pos, Json& v, int depth) {
    if (depth > 32) return false;
    skip(in, pos);
    if (pos >= in.size()) return false;
    const char c = in[pos];
    if (c == '{') {
      v.kind = kObject;
      ++pos;
      skip(in, pos);
      if (pos < in.size() && in[pos] == '}') return ++pos, true;
      for (;;) {
        skip(in, pos);
        std::string key;
        if (!string(in, pos, key)) return false;
        skip(in, pos);
        if (pos >= in.size() || in[pos++] != ':') return false;
        if (!value(in, pos, v.fields[key], depth + 1)) return false;
        skip(in, pos);
        if (pos >= in.size()) return false;
        if (in[pos] == ',') { ++pos; continue; }
        if (in[pos] == '}') return ++pos, true;
        return false;
      }
    }
    if (c == '[') {
      v.kind = kArray;
      ++pos;
      skip(in, pos);
      if (pos < in.size() && in[pos] == ']') return ++pos, true;
      for (;;) {
        v.items.emplace_back();
        if (!value(in, pos, v.items.back(), depth + 1)) return false;
        skip(in, pos);
        if (pos >= in.size()) return false;
        if (in[pos] == ',') { ++pos; continue; }
        if (in[pos] == ']') return ++pos, true;
        return false;
      }
    }
    if (c == '"') {
      v.kind = kString;
      return string(in, pos, v.text);
    }
    if (literal(in, pos, "true")) return v.kind = kBool, v.boolean = true, true;
    if (literal(in, pos, "false")) return v.kind = kBool, true;
    if (literal(in, pos, "null")) return v.kind = kNull, true;
    size_t end = pos;
    if (end < in.size() && in[end] == '-') ++end;
    while (end < in.size() && in[end] >= '0' && in[end] <= '9') ++end;
    if (end < in.size() && in[end] == '.') {  // fractions: kept as their integer part
      const size_t int_end = end;
      ++end;
      while (end < in.size() && in[end] >= '0' && in[end] <= '9') ++end;
      v.kind = kNumber;
      v.number = std::stoll(std::string(in.substr(pos, int_end - pos)));
      pos = end;
      return true;
    }
    if (end == pos) return false;
    v.kind = kNumber;
    v.number = std::stoll(std::string(in.substr(pos, end - pos)));
    pos = end;
    return true;
  }
};

}  // namespace sealfs::itest
