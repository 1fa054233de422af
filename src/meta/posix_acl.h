// POSIX ACLs in their xattr form (system.posix_acl_access and
// system.posix_acl_default; the kernel's include/uapi/linux/posix_acl_xattr.h):
// a little-endian version word (2) and 8-byte entries {tag, perm, id}.
//
// The daemon mounts with FUSE_CAP_POSIX_ACL: the kernel checks permissions
// against the ACLs it reads back through getxattr, and leaves to the
// filesystem what a local filesystem does in fs/posix_acl.c: keeping the
// mode and the access ACL in step (on chmod and on setting the ACL), and
// inheriting the parent's default ACL on create (docs/daemon.md "POSIX
// ACLs"). These are those rules, on the xattr bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace sealfs {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

struct AclEntry {
  enum Tag : uint16_t {
    kUserObj = 0x01,
    kUser = 0x02,
    kGroupObj = 0x04,
    kGroup = 0x08,
    kMask = 0x10,
    kOther = 0x20,
  };
  uint16_t tag = 0;
  uint16_t perm = 0;  // rwx: 4, 2, 1
  uint32_t id = 0;    // uid or gid for kUser / kGroup, otherwise unused
};
using Acl = std::vector<AclEntry>;

// Parses and validates an xattr value as posix_acl_from_xattr and
// posix_acl_valid would: kInvalid for a wrong version or size, unknown tags
// or permission bits, entries out of order, a missing or repeated
// owner/group/other entry, named entries without a mask, or an unmapped id.
// An empty ACL (the header alone) parses to an empty vector.
Result<Acl> parse_acl(const void* value, size_t size);
std::vector<uint8_t> encode_acl(const Acl& acl);

// The permission bits (0777) the ACL stands for: the owner from USER_OBJ,
// the group class from MASK (GROUP_OBJ without a mask), others from OTHER.
uint32_t acl_mode_bits(const Acl& acl);
// True when the ACL says no more than a mode does (the three base entries
// only): it is then stored as the mode alone (posix_acl_equiv_mode).
bool acl_is_mode(const Acl& acl);
// chmod: the owner, group class and other entries take the new mode's bits
// (posix_acl_chmod).
void acl_apply_mode(Acl& acl, uint32_t mode);
// A new inode's access ACL from its parent's default ACL (posix_acl_create):
// each class is limited by the mode asked for and the mode by the ACL.
// Returns the mode; `acl` becomes the access ACL.
uint32_t acl_create_masq(Acl& acl, uint32_t mode);

}  // namespace sealfs
