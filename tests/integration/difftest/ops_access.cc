// Access-control operations: chown, POSIX ACLs, inode flags (chattr), and
// writes by another user, which must clear set-id bits and obey ACLs the
// way the kernel does on tmpfs.
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <vector>

#include "runner.h"
#include "state.h"

namespace difftest {
namespace {

// The other user: nobody, which exists on every Debian system, though the
// ids alone are all the kernel needs.
constexpr uint32_t kOtherId = 65534;

std::string quoted(const std::string& path) { return "\"" + path + "\""; }

// One of the ACL entry permission sets, drawn.
uint16_t draw_perm(Rng& rng) { return static_cast<uint16_t>(rng.below(8)); }

// A valid ACL: the three base entries, sometimes named entries for the
// other user and group (which then need a mask), in the kernel's order.
std::vector<AclTriple> draw_acl(Rng& rng) {
  std::vector<AclTriple> acl;
  acl.push_back({0x01, draw_perm(rng), 0});
  bool named_user = rng.percent(60);
  bool named_group = rng.percent(30);
  if (named_user) acl.push_back({0x02, draw_perm(rng), kOtherId});
  acl.push_back({0x04, draw_perm(rng), 0});
  if (named_group) acl.push_back({0x08, draw_perm(rng), kOtherId});
  if (named_user || named_group || rng.percent(20)) acl.push_back({0x10, draw_perm(rng), 0});
  acl.push_back({0x20, draw_perm(rng), 0});
  return acl;
}

// Runs `body` in a child that has become the other user (no supplementary
// groups) and reports the syscall's outcome; the parent keeps its identity.
Outcome as_other_user(const std::function<long long()>& body) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return capture(-1);
  pid_t child = fork();
  if (child < 0) return capture(-1);
  if (child == 0) {
    close(pipe_fds[0]);
    Outcome out;
    if (setgroups(0, nullptr) != 0 || setresgid(kOtherId, kOtherId, kOtherId) != 0 ||
        setresuid(kOtherId, kOtherId, kOtherId) != 0) {
      out = capture(-1);
      out.data = "could not become the other user";
    } else {
      out = capture(body());
    }
    long long words[2] = {out.ret, out.err};
    (void)!write(pipe_fds[1], words, sizeof words);
    _exit(0);
  }
  close(pipe_fds[1]);
  long long words[2] = {0, 0};
  ssize_t n = read(pipe_fds[0], words, sizeof words);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (n != sizeof words) return Outcome{-1, 0, "the other user's process died"};
  return Outcome{words[0], static_cast<int>(words[1]), {}};
}

}  // namespace

Runner::Step Runner::op_chown() {
  std::string path = pick_path();
  const uint32_t ids[] = {0, kOtherId, static_cast<uint32_t>(-1)};
  uint32_t uid = ids[rng_.below(3)];
  uint32_t gid = ids[rng_.below(3)];
  // chown(path, -1, -1) clears set-id bits locally (the VFS asks for it on
  // every chown of a non-directory), but an NFS client sends no request
  // for it (nfs_setattr: nothing to change), so through NFS the bits stay
  // whatever the server does: --nfs names the owner instead.
  if (options_.nfs && uid == static_cast<uint32_t>(-1) && gid == static_cast<uint32_t>(-1)) uid = 0;
  Step step;
  step.text = "chown(" + quoted(path) + ", " + std::to_string(static_cast<int>(uid)) + ", " +
              std::to_string(static_cast<int>(gid)) + ")";
  step.paths = {path};
  step.run = [this, path, uid, gid](int side) {
    return capture(chown(at(side, path).c_str(), uid, gid));
  };
  return step;
}

Runner::Step Runner::op_setacl() {
  std::string path = pick_path();
  bool is_default = rng_.percent(30);
  bool remove = rng_.percent(20);
  const char* name = is_default ? "system.posix_acl_default" : "system.posix_acl_access";
  std::vector<AclTriple> acl = draw_acl(rng_);
  std::string value = encode_acl(acl);
  Step step;
  step.paths = {path};
  if (remove) {
    step.text = "removexattr(" + quoted(path) + ", " + name + ")";
    step.run = [this, path, name, is_default](int side) {
      // On a FUSE file the kernel answers this removal itself, with success
      // (a non-directory has no default ACL to remove), before the flag
      // check it cannot make; tmpfs checks the flags first.
      struct stat st {};
      if (is_default && (side == 1 || options_.emulate_a) &&
          stat(at(side, path).c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        return Outcome{};
      }
      return capture(removexattr(at(side, path).c_str(), name));
    };
    return step;
  }
  step.text = "setxattr(" + quoted(path) + ", " + name + ", ";
  for (const AclTriple& e : acl) {
    char entry[32];
    std::snprintf(entry, sizeof entry, "%x:%u:%o ", e.tag, e.id, e.perm);
    step.text += entry;
  }
  step.text += ")";
  step.run = [this, path, name, value](int side) {
    return capture(setxattr(at(side, path).c_str(), name, value.data(), value.size(), 0));
  };
  return step;
}

Runner::Step Runner::op_setflags() {
  std::string path = pick_path();
  // Mostly clearing, so that immutable and append-only files come and go.
  const int choices[] = {0, 0, 0, FS_NODUMP_FL, FS_NOATIME_FL, FS_APPEND_FL,
                         FS_APPEND_FL | FS_NODUMP_FL, FS_IMMUTABLE_FL};
  int flags = choices[rng_.below(8)];
  Step step;
  char text[32];
  std::snprintf(text, sizeof text, "0x%x", flags);
  step.text = "ioctl(" + quoted(path) + ", FS_IOC_SETFLAGS, " + text + ")";
  step.paths = {path};
  step.run = [this, path, flags](int side) {
    int fd = open(at(side, path).c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return capture(-1);
    int value = flags;
    Outcome out = capture(ioctl(fd, FS_IOC_SETFLAGS, &value));
    close(fd);
    return out;
  };
  return step;
}

Runner::Step Runner::op_as_other_user(int slot) {
  // A file that exists, more often than a drawn name would be.
  std::string path = slot >= 0 && rng_.percent(60) ? slots_[slot].path : pick_path();
  uint64_t kind = rng_.below(4);
  // --no-fallocate covers this punch too: NFSv3 has no fallocate at all
  // (EOPNOTSUPP; the VM tier, seed 1900000047, step 135).
  if (kind == 2 && !options_.fallocate) kind = 0;
  off_t offset = static_cast<off_t>(rng_.below(8192));
  std::string data = rng_.bytes(rng_.between(1, 64));
  // Half the time root first makes the file writable by anyone, set-id
  // bits included, so that the clearing is exercised often.
  const mode_t opened_modes[] = {0, 0, 0, 0, 0666, 02666, 04666, 06666, 02676};
  mode_t opened = opened_modes[rng_.below(9)];
  const char* const names[] = {"write", "truncate", "fallocate PUNCH_HOLE", "open O_RDONLY"};
  Step step;
  char prefix[64] = "";
  if (opened != 0) std::snprintf(prefix, sizeof prefix, "chmod 0%o, then ", opened);
  step.text = std::string(prefix) + "as uid " + std::to_string(kOtherId) + ": " + names[kind] +
              "(" + quoted(path) + ", offset " + std::to_string(offset) + ")";
  step.paths = {path};
  step.run = [this, path, kind, offset, data, opened](int side) {
    std::string full = at(side, path);
    if (opened != 0 && chmod(full.c_str(), opened) != 0) return capture(-1);
    Outcome out = as_other_user([&]() -> long long {
      if (kind == 1) return truncate(full.c_str(), offset);
      int fd = open(full.c_str(), (kind == 3 ? O_RDONLY : O_WRONLY) | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return -1;
      long long ret = 0;
      if (kind == 0) ret = pwrite(fd, data.data(), data.size(), offset);
      if (kind == 2) ret = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, 4096);
      int err = errno;
      close(fd);
      errno = err;
      return ret;
    });
    // An NFS client forgets the mode it cached after its own write or
    // fallocate only for a set-uid or group-executable set-gid file (the
    // kernel's nfs_should_remove_suid): a set-gid file without group
    // execute, which the server's kernel now clears too, would read with
    // the bit for the attribute timeout. NFS promises fresh attributes at
    // open (close-to-open), so the state is compared after one.
    if (options_.nfs && side == 0 && (kind == 0 || kind == 2)) {
      int fd = open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) close(fd);
    }
    return out;
  };
  return step;
}

}  // namespace difftest
