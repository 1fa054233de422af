// Reading back what two trees must agree on after a step: stat fields
// (set-id bits included), contents, directory listings, user xattrs, POSIX
// ACLs and inode flags. Never st_blocks, inode
// numbers, times or a directory's st_size: those legitimately differ between
// sealfs and tmpfs.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "outcome.h"

namespace difftest {

// "mode=0100644 nlink=1 uid=0 gid=0 size=12" (size only for files and links).
std::string describe_stat(const struct stat& st);
// Sorted "name type" lines of a directory, without "." and "..".
Outcome list_directory(const std::string& path);
// Sorted "name=value-in-hex" lines of the user.* xattrs, without sealfs's
// virtual "user.sealfs." names. Does not follow a final symlink.
Outcome list_user_xattrs(const std::string& path);
// Sorted user.* names only (as listxattr(2) would give them), following links.
Outcome list_user_xattr_names(const std::string& path);
// POSIX ACLs and inode flags (access_state.cc).
struct AclTriple {
  uint16_t tag;   // ACL_USER_OBJ (0x01) .. ACL_OTHER (0x20)
  uint16_t perm;  // rwx bits
  uint32_t id;    // uid or gid for ACL_USER / ACL_GROUP
};
// The system.posix_acl_* xattr value holding `entries`.
std::string encode_acl(const std::vector<AclTriple>& entries);
// The ACL in xattr `name` of `path` (following links) as getfacl-like text.
Outcome read_acl(const std::string& path, const char* name);
// FS_IOC_GETFLAGS of a file or directory, only the bits both sides keep.
Outcome read_inode_flags(const std::string& path);
// All of FS_IOC_GETFLAGS of a file or directory (`follow`: also through a
// final symlink); 0 if it cannot be read.
int inode_flag_bits(const std::string& path, bool follow);
int compared_flag_bits();
// Clears every inode flag under `path` (immutable files cannot be removed).
void clear_inode_flags_under(const std::string& path);
// The whole file through pread from offset 0 to EOF.
Outcome read_whole(int fd);

// Each returns "" when A and B agree, else what differs. `rel` names the
// path in messages.
// `acls`, `inode_flags`: POSIX ACLs and inode flags too.
std::string compare_node(const std::string& a, const std::string& b, const std::string& rel,
                         bool xattrs, bool acls, bool inode_flags);
std::string compare_tree(const std::string& a, const std::string& b, const std::string& rel,
                         bool xattrs, bool acls, bool inode_flags);
// An open file on each side: fstat fields and, through a read-only
// descriptor of the same inode, its contents.
std::string compare_open_files(int fd_a, int fd_b, int reader_a, int reader_b);

}  // namespace difftest
