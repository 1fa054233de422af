// Directory listing and extended attribute handlers.
#include <dirent.h>
#include <sys/stat.h>

#include <string>
#include <string_view>
#include <vector>

#include "fuse/caller_privilege.h"
#include "fuse/ops_internal.h"

namespace sealfs::fuse {
namespace {

struct stat stat_of(const DirEntry& entry) {
  struct stat st {};
  st.st_ino = entry.ino;
  st.st_mode = DTTOIF(entry.type);
  return st;
}

bool is_dot_or_dotdot(std::string_view name) { return name == "." || name == ".."; }

}  // namespace

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  handle(req, "opendir", ino, [&](Reply& r) {
    // Cookies are stable across calls; nothing to keep per open directory.
    auto attr = r.ctx().fs->getattr(ino);
    if (!attr.is_ok()) return r.error(attr.status());
    if (!S_ISDIR(attr->mode)) return r.error(ENOTDIR);
    r.open(fi);
  });
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  (void)fi;
  handle(req, "readdir", ino, [&](Reply& r) {
    std::vector<char> buf(size);
    size_t used = 0;
    std::string name;
    Status st = r.ctx().fs->readdir(ino, static_cast<uint64_t>(off), [&](const DirEntry& e) {
      name.assign(e.name);
      struct stat st = stat_of(e);
      size_t need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st,
                                      static_cast<off_t>(e.next_cookie));
      if (need > size - used) return false;  // the kernel asks again from here
      used += need;
      return true;
    });
    if (!st.is_ok() && used == 0) return r.error(st);
    r.buf(buf.data(), used);
  });
}

// Each entry other than "." and ".." hands the kernel a lookup reference,
// as a lookup would. The names are gathered first and looked up after
// readdir returns, so no lookup runs under the directory's lock; sizes are
// computed up front so every looked-up entry fits.
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    fuse_file_info* fi) {
  (void)fi;
  handle(req, "readdirplus", ino, [&](Reply& r) {
    struct Pending {
      std::string name;
      struct stat st;
      uint64_t cookie;
    };
    std::vector<Pending> pending;
    size_t planned = 0;
    Status st = r.ctx().fs->readdir(ino, static_cast<uint64_t>(off), [&](const DirEntry& e) {
      Pending p{std::string(e.name), stat_of(e), e.next_cookie};
      size_t need = fuse_add_direntry_plus(req, nullptr, 0, p.name.c_str(), nullptr, 0);
      if (need > size - planned) return false;
      planned += need;
      pending.push_back(std::move(p));
      return true;
    });
    if (!st.is_ok() && pending.empty()) return r.error(st);

    std::vector<char> buf(size);
    size_t used = 0;
    std::vector<Ino> referenced;
    referenced.reserve(pending.size());
    for (const auto& p : pending) {
      fuse_entry_param e{};
      if (is_dot_or_dotdot(p.name)) {
        e.attr = p.st;  // ino 0: the kernel takes no reference for these
      } else {
        auto attr = r.ctx().fs->lookup(ino, p.name);
        if (!attr.is_ok()) {
          // Removed since readdir saw it; its cookie is still a valid place
          // to resume from, so the entry can simply be left out.
          if (attr.status().code() == Code::kNotFound) continue;
          for (Ino i : referenced) r.ctx().fs->forget(i, 1);
          return r.error(attr.status());
        }
        referenced.push_back(attr->ino);
        e = entry_of(r.ctx(), *attr);
      }
      used += fuse_add_direntry_plus(req, buf.data() + used, size - used, p.name.c_str(), &e,
                                     static_cast<off_t>(p.cookie));
    }
    if (r.buf(buf.data(), used) != 0) {
      for (Ino i : referenced) r.ctx().fs->forget(i, 1);
    }
  });
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)fi;
  handle(req, "releasedir", ino, [&](Reply& r) { r.ok(); });
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  (void)fi;
  handle(req, "fsyncdir", ino,
         [&](Reply& r) { r.error(r.ctx().fs->fsync(ino, datasync != 0)); });
}

namespace {

// Where libsealfs finds the lease engine: answered by the daemon for every
// inode, never stored, not listed (so copying tools do not carry a stale
// socket path to other filesystems), and not settable.
constexpr std::string_view kControlXattr = "user.sealfs.control";

}  // namespace

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                 size_t size, int flags) {
  handle(req, "setxattr", ino, [&](Reply& r) {
    if (name == kControlXattr) return r.error(EPERM);
    // Setting an access ACL may clear S_ISGID, by the caller's groups and
    // capabilities (read from /proc only when the file has the bit).
    const fuse_ctx* c = fuse_req_ctx(req);
    CallerPrivilege caller(c->uid, c->gid, c->pid);
    r.error(r.ctx().fs->setxattr(ino, name, value, size, flags, &caller));
  });
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  handle(req, "getxattr", ino, [&](Reply& r) {
    if (name == kControlXattr) {
      const lease::LeaseEngine* leases = r.ctx().leases;
      if (leases == nullptr || leases->control_socket().empty()) {
        return r.expected_error(ENODATA);  // the engine is not running
      }
      const std::string& path = leases->control_socket();
      if (size == 0) return (void)r.xattr_size(path.size());
      if (path.size() > size) return r.error(ERANGE);
      return (void)r.buf(path.data(), path.size());
    }
    auto value = r.ctx().fs->getxattr(ino, name);
    if (!value.is_ok()) {
      // Without HANDLE_KILLPRIV_V2 the kernel asks for security.capability
      // before every write; its absence is the normal answer, logged at
      // debug level only (tests count these probes).
      if (value.status().code() == Code::kNoData) {
        log().debug("getxattr inode {}: no {}", ino, name);
        return r.expected_error(ENODATA);
      }
      return r.error(value.status());
    }
    if (size == 0) return (void)r.xattr_size(value->size());
    if (value->size() > size) return r.error(ERANGE);
    r.buf(value->data(), value->size());
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  handle(req, "listxattr", ino, [&](Reply& r) {
    auto names = r.ctx().fs->listxattr(ino);
    if (!names.is_ok()) return r.error(names.status());
    std::string list;
    for (const auto& n : *names) {
      list += n;
      list += '\0';
    }
    if (size == 0) return (void)r.xattr_size(list.size());
    if (list.size() > size) return r.error(ERANGE);
    r.buf(list.data(), list.size());
  });
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  handle(req, "removexattr", ino, [&](Reply& r) {
    if (name == kControlXattr) return r.error(EPERM);
    r.error(r.ctx().fs->removexattr(ino, name));
  });
}

}  // namespace sealfs::fuse
