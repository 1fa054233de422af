// Reading back what two trees must agree on after a step: stat fields,
// contents, directory listings and user xattrs. Never st_blocks, inode
// numbers, times or a directory's st_size: those legitimately differ between
// sealfs and tmpfs.
#pragma once

#include <sys/stat.h>

#include <string>

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
// The whole file through pread from offset 0 to EOF.
Outcome read_whole(int fd);

// Each returns "" when A and B agree, else what differs. `rel` names the
// path in messages.
std::string compare_node(const std::string& a, const std::string& b, const std::string& rel,
                         bool xattrs);
std::string compare_tree(const std::string& a, const std::string& b, const std::string& rel,
                         bool xattrs);
// An open file on each side: fstat fields and, through a read-only
// descriptor of the same inode, its contents.
std::string compare_open_files(int fd_a, int fd_b, int reader_a, int reader_b);

}  // namespace difftest
