// /proc/self/fdinfo/FD of a descriptor this process holds: its inode, open
// flags and mount id, read without a request to any filesystem. Shared by
// the daemon's lease server (the capability check on a received descriptor)
// and the client library (which mount a descriptor is on), like
// fd_passing.h, so both read the file the same way.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sealfs::wire {

struct FdInfoFields {
  uint64_t ino = 0;
  uint32_t flags = 0;  // octal in the file
  uint64_t mnt_id = 0;
  bool has_ino = false, has_flags = false, has_mnt_id = false;
};

// False when the file cannot be read (errno set); fields not in it stay unset.
inline bool read_fdinfo(int fd, FdInfoFields* out) {
  char name[64];
  std::snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", fd);
  int info = open(name, O_RDONLY | O_CLOEXEC);
  if (info < 0) return false;
  char text[1024];
  ssize_t n = read(info, text, sizeof(text) - 1);
  close(info);
  if (n <= 0) return false;
  text[n] = '\0';
  *out = FdInfoFields{};
  for (char* line = text; line != nullptr && *line != '\0';) {
    char* next = std::strchr(line, '\n');
    if (next != nullptr) *next++ = '\0';
    auto field = [&](const char* key, int base, uint64_t* value) {
      const size_t len = std::strlen(key);
      if (std::strncmp(line, key, len) != 0) return false;
      char* end = nullptr;
      *value = std::strtoull(line + len, &end, base);
      return end != line + len;
    };
    uint64_t v = 0;
    if (field("flags:", 8, &v)) {
      out->flags = static_cast<uint32_t>(v);
      out->has_flags = true;
    } else if (field("mnt_id:", 10, &v)) {
      out->mnt_id = v;
      out->has_mnt_id = true;
    } else if (field("ino:", 10, &v)) {
      out->ino = v;
      out->has_ino = true;
    }
    line = next;
  }
  return true;
}

}  // namespace sealfs::wire
