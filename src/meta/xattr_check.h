// What an inode's stored attributes must not hold, whatever their crcs say:
// the daemon refuses to serve such a store (kCorruption) and fsck.sealfs
// drops the offending attributes. A crc covers damage in flight, not a
// well-formed block written with bad contents (a crafted image, a bug).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meta/xattr.h"

namespace sealfs {

struct XattrProblem {
  size_t index;      // into the list
  std::string what;  // "name 'x': ..." for a report
};

// Names setxattr would refuse (namespace, empty, too long, an embedded
// NUL), a name stored twice (the later copies), a value longer than
// kXattrValueMax, an ACL value that does not parse, a default ACL on a
// non-directory, any ACL on a symlink. `mode` is the owner's.
std::vector<XattrProblem> check_xattr_list(const XattrList& list, uint32_t mode);

}  // namespace sealfs
