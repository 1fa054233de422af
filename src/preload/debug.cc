#include "preload/debug.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "client/persist_stats.h"

namespace sealfs::preload {

namespace {

// -1: not looked at yet; 0: off; else the descriptor lines go to.
std::atomic<int> g_sink{-1};

int sink() {
  int fd = g_sink.load(std::memory_order_acquire);
  if (fd != -1) return fd;
  const char* value = getenv("SEALFS_PRELOAD_DEBUG");
  int chosen = 0;
  if (value != nullptr && value[0] == '/') {
    chosen = open(value, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (chosen < 0) chosen = 0;
  } else if (value != nullptr && value[0] != '\0' && value[0] != '0') {
    chosen = STDERR_FILENO;
  }
  int expected = -1;
  if (!g_sink.compare_exchange_strong(expected, chosen) && chosen > STDERR_FILENO) {
    close(chosen);  // another thread opened it first
    return expected;
  }
  return chosen;
}

}  // namespace

Counters& counters() {
  static Counters c;
  return c;
}

bool debug_enabled() { return sink() > 0; }

void debug(const char* format, ...) {
  const int fd = sink();
  if (fd <= 0) return;
  char line[512];
  int n = snprintf(line, sizeof(line), "sealfs-preload[%d]: ", static_cast<int>(getpid()));
  va_list args;
  va_start(args, format);
  int m = vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1, format, args);
  va_end(args);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
  if (len > sizeof(line) - 2) len = sizeof(line) - 2;
  line[len++] = '\n';
  ssize_t ignored = write(fd, line, len);
  (void)ignored;
}

void write_stats() {
  Counters& c = counters();
  const auto& p = sealfs::client::persist_stats();
  debug("stats direct=%llu refused=%llu demoted=%llu resealed=%llu persists=%llu released=%llu "
        "flushed_lines=%llu scanned=%llu whole=%llu windows=%llu windows_closed=%llu "
        "window_writes=%llu window_reads=%llu syncs_answered=%llu",
        static_cast<unsigned long long>(c.direct.load()),
        static_cast<unsigned long long>(c.refused.load()),
        static_cast<unsigned long long>(c.demoted.load()),
        static_cast<unsigned long long>(c.resealed.load()),
        static_cast<unsigned long long>(c.persists.load()),
        static_cast<unsigned long long>(c.released.load()),
        static_cast<unsigned long long>(p.lines.load()),
        static_cast<unsigned long long>(p.scanned.load()),
        static_cast<unsigned long long>(p.whole.load()),
        static_cast<unsigned long long>(c.window_made.load()),
        static_cast<unsigned long long>(c.window_closed.load()),
        static_cast<unsigned long long>(c.window_writes.load()),
        static_cast<unsigned long long>(c.window_reads.load()),
        static_cast<unsigned long long>(c.syncs_answered.load()));
}

}  // namespace sealfs::preload
