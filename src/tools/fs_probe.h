// Recognises filesystems already present on a target, so mkfs can refuse to
// destroy one unless forced (what mke2fs and mkfs.xfs do).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace sealfs {

// `head` is the start of the target (at least 4096 bytes for every probe to
// run; shorter input runs the probes that fit). Returns a description of what
// was found ("sealfs (label 'x', uuid ...)", "ext2/3/4", "XFS"), or nullopt.
std::optional<std::string> probe_filesystem(const std::byte* head, size_t length);

// Bytes probe_filesystem wants to see.
inline constexpr size_t kProbeBytes = 4096;

}  // namespace sealfs
