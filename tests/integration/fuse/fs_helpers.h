// Small POSIX helpers for the integration tests: whole reads and writes,
// deterministic content, directory listings, a tree digest.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace sealfs::itest {

// Deterministic bytes for (seed, offset): a file's content can be checked
// at any offset without keeping a copy.
inline uint8_t pattern_byte(uint64_t seed, uint64_t offset) {
  uint64_t x = (seed * 0x9E3779B97F4A7C15ull) ^ (offset / 8 * 0xBF58476D1CE4E5B9ull);
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<uint8_t>(x >> (8 * (offset % 8)));
}

inline std::vector<uint8_t> pattern(uint64_t seed, uint64_t offset, size_t length) {
  std::vector<uint8_t> out(length);
  for (size_t i = 0; i < length; ++i) out[i] = pattern_byte(seed, offset + i);
  return out;
}

// pwrite/pread until done; false (errno set) on failure or a zero return.
inline bool pwrite_all(int fd, const void* buf, size_t len, off_t off) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
    off += n;
  }
  return true;
}

inline ssize_t pread_all(int fd, void* buf, size_t len, off_t off) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, p + done, len - done, off + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

inline uint64_t fnv1a(const void* data, size_t len, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

// Names in a directory, without "." and "..". errno set and empty on error.
inline std::set<std::string> list_dir(const std::string& path, int* error = nullptr) {
  std::set<std::string> names;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) {
    if (error != nullptr) *error = errno;
    return names;
  }
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.insert(n);
  }
  if (error != nullptr) *error = errno;
  closedir(d);
  return names;
}

// path (relative to root) -> "type:size:digest" for every entry in a tree;
// fails (returns false) on any error while walking or reading.
bool digest_tree(const std::string& root, std::map<std::string, std::string>* out,
                 std::string* error);

}  // namespace sealfs::itest
