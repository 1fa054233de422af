// Files the kernel makes on demand (/proc, /sys): read with plain open/read,
// never iostreams. A process can die between our open of /proc/PID/x and
// the read, which then fails with ESRCH; std::istreambuf_iterator over an
// std::ifstream turns such a read error into an exception that nothing
// catches, and a holder killed at the wrong moment aborted the daemon that
// way (found by the VM tier's lease stress, docs/vm.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace sealfs {

// The whole file, at most `limit` bytes of it; any failure is a Status,
// kNotFound exactly when the file or its process is gone (ENOENT, ESRCH).
Result<std::string> read_kernel_file(const std::string& path, size_t limit = 1 << 20);

// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with
// the pid it names one process for good, as pids are reused. kNotFound
// when the process is gone; another code when /proc could not tell (out of
// descriptors or memory, hidepid=1, a file that does not parse): callers
// deciding that a holder is dead must not take that for "gone".
Result<uint64_t> process_start_time(uint32_t pid);

// The same field for thread `tid` of process `pid` (/proc/PID/task/TID/stat):
// kNotFound when no such thread of that process exists now.
Result<uint64_t> thread_start_time(uint32_t pid, uint32_t tid);

// Now, in the unit of the start times above: clock ticks since boot
// (CLOCK_BOOTTIME, as /proc counts them, in the daemon's time namespace).
uint64_t boot_ticks_now();

// /proc/PID/comm without its newline: the command name, at most 15 bytes,
// which a process can set to anything (prctl PR_SET_NAME). kNotFound when
// the process is gone.
Result<std::string> process_command_name(uint32_t pid);

// The value on the "key:" line of /proc/PID/status text
// (proc_pid_status(5)), without the white space after the colon; nullopt
// when no line has that key. status_field(text, "CapEff") -> "000001ff...".
std::optional<std::string_view> status_field(std::string_view status_text, std::string_view key);

// A status field that is a hexadecimal mask (CapEff, SigPnd, SigBlk, ...);
// nullopt when it is missing or does not parse.
std::optional<uint64_t> status_mask(std::string_view status_text, std::string_view key);

// A status field that lists decimal ids (Groups); empty when it is missing
// or lists none. Stops at the first word that is not a number.
std::vector<uint32_t> status_ids(std::string_view status_text, std::string_view key);

}  // namespace sealfs
