#include "util/proc_file.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string_view>

namespace sealfs {
namespace {

// A process that exited between the open and the read answers ESRCH.
Status gone_or_error(int err, const std::string& what) {
  if (err == ESRCH) return Status(Code::kNotFound, what + ": no such process");
  return Status::from_errno(err, what);
}

}  // namespace

Result<std::string> read_kernel_file(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return gone_or_error(errno, "open " + path);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return gone_or_error(err, "read " + path);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() >= limit) {
      text.resize(limit);
      break;
    }
  }
  close(fd);
  return text;
}

namespace {

// Field 22 (start time) of a /proc .../stat file.
Result<uint64_t> start_time_in(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, read_kernel_file(path));
  const Status unparsable(Code::kCorruption, path + " does not parse");
  // The command name (field 2) may hold spaces, parentheses and newlines:
  // the fields after it start past the last ')'. Field 3 is the first.
  std::string_view rest(text);
  size_t close_paren = rest.rfind(')');
  if (close_paren == std::string_view::npos) return unparsable;
  rest.remove_prefix(close_paren + 1);
  for (int field = 3;; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    size_t end = rest.find(' ');
    std::string_view word = rest.substr(0, end);
    if (word.empty()) return unparsable;
    if (field == 22) {
      uint64_t value = 0;
      auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
      if (ec != std::errc() || ptr != word.data() + word.size()) return unparsable;
      return value;
    }
    if (end == std::string_view::npos) return unparsable;
    rest.remove_prefix(end);
  }
}

}  // namespace

Result<uint64_t> process_start_time(uint32_t pid) {
  return start_time_in("/proc/" + std::to_string(pid) + "/stat");
}

Result<uint64_t> thread_start_time(uint32_t pid, uint32_t tid) {
  return start_time_in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
}

uint64_t boot_ticks_now() {
  static const uint64_t hz = [] {
    const long v = sysconf(_SC_CLK_TCK);
    return v > 0 ? static_cast<uint64_t>(v) : 100;
  }();
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * hz +
         static_cast<uint64_t>(ts.tv_nsec) / (1'000'000'000ull / hz);
}

Result<std::string> process_command_name(uint32_t pid) {
  ASSIGN_OR_RETURN(std::string name, read_kernel_file("/proc/" + std::to_string(pid) + "/comm"));
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

std::optional<std::string_view> status_field(std::string_view status_text,
                                             std::string_view key) {
  while (!status_text.empty()) {
    const size_t newline = status_text.find('\n');
    std::string_view line = status_text.substr(0, newline);
    status_text.remove_prefix(newline == std::string_view::npos ? status_text.size()
                                                                : newline + 1);
    if (line.size() <= key.size() || line.substr(0, key.size()) != key ||
        line[key.size()] != ':') {
      continue;
    }
    line.remove_prefix(key.size() + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    return line;
  }
  return std::nullopt;
}

std::optional<uint64_t> status_mask(std::string_view status_text, std::string_view key) {
  std::optional<std::string_view> text = status_field(status_text, key);
  if (!text || text->empty()) return std::nullopt;
  uint64_t mask = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), mask, 16);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return mask;
}

std::vector<uint32_t> status_ids(std::string_view status_text, std::string_view key) {
  std::vector<uint32_t> ids;
  std::optional<std::string_view> text = status_field(status_text, key);
  if (!text) return ids;
  const char* p = text->data();
  const char* const end = p + text->size();
  while (p < end) {
    if (*p == ' ' || *p == '\t') {
      ++p;
      continue;
    }
    uint32_t id = 0;
    auto [next, ec] = std::from_chars(p, end, id);
    if (ec != std::errc()) break;
    ids.push_back(id);
    p = next;
  }
  return ids;
}

}  // namespace sealfs
