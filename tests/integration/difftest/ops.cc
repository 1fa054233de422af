// The operation catalogue: each generator draws its arguments from the seeded
// generator first, then returns a step that replays them on either side.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <vector>

#include "runner.h"
#include "state.h"

namespace difftest {
namespace {

// Bounded name space so that operations collide: five names in each of three
// directories, two of which are themselves names that come and go.
const char* const kNames[] = {"n0", "n1", "n2", "n3", "n4"};
const char* const kDirs[] = {"", "da/", "db/"};
constexpr off_t kMaxOffset = 1 << 20;

std::string flag_names(int flags) {
  std::string text;
  switch (flags & O_ACCMODE) {
    case O_RDONLY: text = "O_RDONLY"; break;
    case O_WRONLY: text = "O_WRONLY"; break;
    default: text = "O_RDWR"; break;
  }
  const std::pair<int, const char*> known[] = {
      {O_CREAT, "O_CREAT"},   {O_EXCL, "O_EXCL"},           {O_TRUNC, "O_TRUNC"},
      {O_APPEND, "O_APPEND"}, {O_DIRECTORY, "O_DIRECTORY"}, {O_NOFOLLOW, "O_NOFOLLOW"}};
  for (const auto& [bit, name] : known) {
    if (flags & bit) text += std::string("|") + name;
  }
  return text;
}

std::string quoted(const std::string& path) { return "\"" + path + "\""; }

int inode_flags_of(int fd) {
  int flags = 0;
  return ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 ? flags : 0;
}

// ext4 refuses write(2) and ftruncate(2) through a descriptor opened before
// its file became immutable, and so does sealfs (docs/daemon.md "Inode
// flags"); tmpfs lets them through. B, the reference, answers as ext4 does.
bool reference_refuses_as_immutable(int side, bool emulate_a, int fd) {
  struct stat st {};
  if ((side != 1 && !emulate_a) || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY) return false;  // EBADF/EINVAL first
  if (!(inode_flags_of(fd) & FS_IMMUTABLE_FL)) return false;
  errno = EPERM;
  return true;
}

// Whether B must answer a write as sealfs does on an append-only file
// through a descriptor without O_APPEND (one opened before the flag was
// set), which the kernel lets write anywhere on tmpfs and ext4.
bool reference_keeps_append_only(int side, bool emulate_a, int fd) {
  struct stat st {};
  if ((side != 1 && !emulate_a) || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const int open_flags = fcntl(fd, F_GETFL);
  if ((open_flags & O_ACCMODE) == O_RDONLY || (open_flags & O_APPEND)) return false;
  return (inode_flags_of(fd) & FS_APPEND_FL) != 0;
}

// sealfs's rule (docs/daemon.md "Inode flags"): the write's bytes below EOF
// must equal the file's own and are skipped, the rest is appended; a write
// that would change a byte or starts past EOF is EPERM. The descriptor's
// position moves by the whole length, as the kernel moves it.
Outcome append_only_write(int fd, off_t pos, const std::string& data, bool positional) {
  if (!positional) pos = lseek(fd, 0, SEEK_CUR);
  struct stat st {};
  if (pos < 0 || fstat(fd, &st) != 0) return capture(-1);
  const off_t size = st.st_size;
  auto refuse = [] {
    errno = EPERM;
    return capture(-1);
  };
  if (pos > size) return refuse();
  const size_t overlap = std::min<size_t>(data.size(), static_cast<size_t>(size - pos));
  std::string own(overlap, '\0');
  // The descriptor may be write-only: read through a read-only reopen.
  int reader = open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC);
  if (reader < 0) return capture(-1);
  ssize_t got = pread(reader, own.data(), overlap, pos);
  close(reader);
  if (got != static_cast<ssize_t>(overlap) || own != data.substr(0, overlap)) return refuse();
  ssize_t added = pwrite(fd, data.data() + overlap, data.size() - overlap, size);
  if (added < 0) return capture(-1);
  if (!positional) lseek(fd, pos + static_cast<off_t>(overlap) + added, SEEK_SET);
  return capture(static_cast<long long>(overlap) + added);
}

// A mapping of a file that shrank under us, or a daemon that failed a page
// fault, raises SIGBUS: turn that into an outcome instead of dying.
sigjmp_buf g_fault_jump;
volatile sig_atomic_t g_fault_armed = 0;

void on_sigbus(int) {
  if (g_fault_armed) siglongjmp(g_fault_jump, 1);
  std::signal(SIGBUS, SIG_DFL);
  std::raise(SIGBUS);
}

Outcome touch_mapping(int fd, off_t offset, size_t length, bool writable, size_t sub_offset,
                      const std::string& data) {
  static bool installed = [] {
    struct sigaction action {};
    action.sa_handler = on_sigbus;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, nullptr);
    return true;
  }();
  (void)installed;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* map = mmap(nullptr, length, prot, MAP_SHARED, fd, offset);
  if (map == MAP_FAILED) return capture(-1);
  auto* bytes = static_cast<char*>(map);
  Outcome out;
  if (sigsetjmp(g_fault_jump, 1) == 0) {
    g_fault_armed = 1;
    if (writable) {
      std::memcpy(bytes + sub_offset, data.data(), data.size());
      out = capture(msync(map, length, MS_SYNC));
    }
    if (out.ret == 0) out.data.assign(bytes, length);
  } else {
    out = Outcome{-1, kSigbus, {}};
  }
  g_fault_armed = 0;
  munmap(map, length);
  return out;
}

}  // namespace

std::string Runner::Slot::label() const {
  return "#fd[" + quoted(path) + " " + flag_names(flags) + "]";
}

std::string Runner::pick_path() {
  uint64_t i = rng_.below(17);
  if (i == 15) return "da";
  if (i == 16) return "db";
  return std::string(kDirs[i / 5]) + kNames[i % 5];
}

std::string Runner::pick_dir() {
  uint64_t choice = rng_.below(10);
  if (choice < 3) return "da";
  if (choice < 6) return "db";
  return pick_path();
}

int Runner::pick_used_slot() {
  int used[kSlots];
  int count = 0;
  for (int i = 0; i < kSlots; ++i) {
    if (slots_[i].used) used[count++] = i;
  }
  return count == 0 ? -1 : used[rng_.below(static_cast<uint64_t>(count))];
}

off_t Runner::pick_offset(off_t size) {
  uint64_t kind = rng_.below(10);
  if (kind < 5) return static_cast<off_t>(rng_.below(64 * 1024));
  if (kind < 7) return static_cast<off_t>(rng_.below(512 * 1024));
  if (kind < 8) return static_cast<off_t>(rng_.below(kMaxOffset)) & ~off_t{4095};
  // Around the current end of file, either side of it.
  return std::max<off_t>(0, size - 4096 + static_cast<off_t>(rng_.below(8192)));
}

size_t Runner::pick_length() {
  uint64_t kind = rng_.below(100);
  if (kind < 2) return 0;
  if (kind < 52) return rng_.between(1, 4096);
  if (kind < 87) return rng_.between(1, 64 * 1024);
  return rng_.between(1, 256 * 1024);
}

off_t Runner::current_size(int slot) {
  struct stat st {};
  return fstat(slots_[slot].fd[1], &st) == 0 ? st.st_size : 0;
}

Runner::Step Runner::draw() {
  int slot = pick_used_slot();
  uint64_t roll = rng_.below(1000);
  // Operations on open files, weighted towards data movement.
  if (roll < 520) {
    if (slot < 0) return op_open();
    uint64_t which = rng_.below(100);
    if (which < 14) return op_write(slot, false);
    if (which < 36) return op_write(slot, true);
    if (which < 44) return op_read(slot, false);
    if (which < 54) return op_read(slot, true);
    if (which < 58) return op_lseek(slot);
    if (which < 66) return op_ftruncate(slot);
    if (which < 78) return options_.fallocate ? op_fallocate(slot) : op_ftruncate(slot);
    if (which < 82) return op_fsync(slot);
    if (which < 86) return op_fstat(slot);
    if (which < 94) return options_.mmap ? op_mmap(slot) : op_write(slot, true);
    return op_close(slot);
  }
  if (roll < 640) return op_open();
  if (roll < 660) return op_truncate();
  if (roll < 700) return op_unlink();
  if (roll < 760) return op_rename();
  if (roll < 780) return op_link();
  if (roll < 810) return op_mkdir();
  if (roll < 830) return op_rmdir();
  if (roll < 850) return op_symlink();
  if (roll < 860) return op_readlink();
  if (roll < 885) return op_stat();
  if (roll < 905) return op_readdir();
  if (roll < 915) return op_chmod();
  if (options_.access && roll < 960) {
    uint64_t which = rng_.below(100);
    if (which < 25 && options_.acls) return op_setacl();
    if (which < 40) return op_chown();
    if (which < 55 && options_.inode_flags) return op_setflags();
    return op_as_other_user(slot);
  }
  if (!options_.xattrs) return op_stat();
  if (roll < 970) return op_setxattr();
  if (roll < 982) return op_getxattr();
  if (roll < 991) return op_listxattr();
  return op_removexattr();
}

Runner::Step Runner::op_open() {
  int free_slot = -1;
  for (int i = 0; i < kSlots && free_slot < 0; ++i) {
    if (!slots_[i].used) free_slot = i;
  }
  if (free_slot < 0) return op_close(pick_used_slot());
  std::string path = pick_path();
  const int modes[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDWR};
  int flags = modes[rng_.below(4)];
  if (rng_.percent(70)) flags |= O_CREAT;
  if (rng_.percent(10)) flags |= O_EXCL;
  // O_TRUNC with O_RDONLY truncates on Linux; an NFSv4 client opens for
  // reading and then fails the size change (EACCES), so --nfs asks for it
  // only with a mode that can write.
  if (rng_.percent(10) && !(options_.nfs && (flags & O_ACCMODE) == O_RDONLY)) flags |= O_TRUNC;
  if (rng_.percent(15)) flags |= O_APPEND;
  if (rng_.percent(3)) flags |= O_DIRECTORY;
  if (rng_.percent(5)) flags |= O_NOFOLLOW;
  mode_t mode = rng_.percent(80) ? 0644 : 0600;

  Step step;
  step.text = "open(" + quoted(path) + ", " + flag_names(flags) + ", 0" +
              std::to_string(mode == 0644 ? 644 : 600) + ")";
  step.paths = {path};
  step.run = [this, free_slot, path, flags, mode](int side) {
    int fd = open(at(side, path).c_str(), flags | O_CLOEXEC, mode);
    Outcome out = capture(fd);
    slots_[free_slot].fd[side] = fd;
    if (fd >= 0) out.ret = 0;  // descriptor numbers differ; success is what counts
    return out;
  };
  step.after = [this, free_slot, path, flags](const Outcome& a, const Outcome& b) {
    Slot& slot = slots_[free_slot];
    slot.path = path;
    slot.flags = flags;
    if (a.ret == 0 && b.ret == 0) {
      slot.used = true;
      open_readers(slot);
    } else {
      close_slot(slot);  // closes whichever side did open, on a divergence
    }
  };
  step.slot = free_slot;
  return step;
}

Runner::Step Runner::op_close(int slot) {
  Step step;
  step.text = "close(" + slots_[slot].label() + ")";
  step.paths = {slots_[slot].path};
  step.run = [this, slot](int side) {
    Slot& s = slots_[slot];
    if (s.reader[side] >= 0) close(s.reader[side]);
    s.reader[side] = -1;
    Outcome out = capture(close(s.fd[side]));
    s.fd[side] = -1;
    return out;
  };
  step.after = [this, slot](const Outcome&, const Outcome&) { slots_[slot].used = false; };
  return step;
}

Runner::Step Runner::op_write(int slot, bool positional) {
  off_t offset = pick_offset(current_size(slot));
  std::string data = rng_.bytes(pick_length());
  Step step;
  step.text = (positional ? "pwrite(" : "write(") + slots_[slot].label() +
              (positional ? ", off=" + std::to_string(offset) : std::string()) +
              ", len=" + std::to_string(data.size()) + ")";
  step.slot = slot;
  step.run = [this, slot, positional, offset, data](int side) {
    int fd = slots_[slot].fd[side];
    // FUSE never passes an empty write to the daemon.
    if (!data.empty() && reference_refuses_as_immutable(side, options_.emulate_a, fd)) {
      return capture(-1);
    }
    if (!data.empty() && reference_keeps_append_only(side, options_.emulate_a, fd)) {
      return append_only_write(fd, offset, data, positional);
    }
    return capture(positional ? pwrite(fd, data.data(), data.size(), offset)
                              : write(fd, data.data(), data.size()));
  };
  return step;
}

Runner::Step Runner::op_read(int slot, bool positional) {
  off_t offset = pick_offset(current_size(slot));
  size_t length = pick_length();
  Step step;
  step.text = (positional ? "pread(" : "read(") + slots_[slot].label() +
              (positional ? ", off=" + std::to_string(offset) : std::string()) +
              ", len=" + std::to_string(length) + ")";
  step.slot = slot;
  step.run = [this, slot, positional, offset, length](int side) {
    std::string buf(length, '\0');
    int fd = slots_[slot].fd[side];
    ssize_t n = positional ? pread(fd, buf.data(), length, offset) : read(fd, buf.data(), length);
    Outcome out = capture(n);
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    out.data = std::move(buf);
    return out;
  };
  return step;
}

Runner::Step Runner::op_lseek(int slot) {
  const int whences[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  const char* const names[] = {"SEEK_SET", "SEEK_CUR", "SEEK_END"};
  uint64_t which = rng_.below(3);
  struct stat st {};
  fstat(slots_[slot].fd[1], &st);
  // A directory's end depends on its st_size, which is not comparable.
  if (S_ISDIR(st.st_mode) && which == 2) which = 0;
  off_t offset = static_cast<off_t>(rng_.below(2 * 64 * 1024)) - (which == 0 ? 0 : 64 * 1024);
  if (which == 0 && rng_.percent(5)) offset = -1;
  Step step;
  step.text = "lseek(" + slots_[slot].label() + ", " + std::to_string(offset) + ", " +
              names[which] + ")";
  step.slot = slot;
  int whence = whences[which];
  step.run = [this, slot, offset, whence](int side) {
    return capture(lseek(slots_[slot].fd[side], offset, whence));
  };
  return step;
}

Runner::Step Runner::op_ftruncate(int slot) {
  off_t size = current_size(slot);
  off_t length = rng_.percent(50) ? static_cast<off_t>(rng_.below(static_cast<uint64_t>(size) + 1))
                                  : pick_offset(size) + static_cast<off_t>(pick_length());
  Step step;
  step.text = "ftruncate(" + slots_[slot].label() + ", " + std::to_string(length) + ")";
  step.slot = slot;
  step.run = [this, slot, length](int side) {
    if (reference_refuses_as_immutable(side, options_.emulate_a, slots_[slot].fd[side])) {
      return capture(-1);
    }
    return capture(ftruncate(slots_[slot].fd[side], length));
  };
  return step;
}

Runner::Step Runner::op_truncate() {
  std::string path = pick_path();
  off_t length = rng_.percent(30) ? 0 : pick_offset(64 * 1024) + static_cast<off_t>(pick_length());
  Step step;
  step.text = "truncate(" + quoted(path) + ", " + std::to_string(length) + ")";
  step.paths = {path};
  step.run = [this, path, length](int side) {
    return capture(truncate(at(side, path).c_str(), length));
  };
  return step;
}

Runner::Step Runner::op_fallocate(int slot) {
  const int modes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
  const char* const names[] = {"0", "KEEP_SIZE", "PUNCH_HOLE|KEEP_SIZE", "ZERO_RANGE",
                               "ZERO_RANGE|KEEP_SIZE"};
  uint64_t which = rng_.below(5);
  int mode = modes[which];
  off_t offset = pick_offset(current_size(slot));
  auto length = static_cast<off_t>(pick_length());
  Step step;
  step.text = "fallocate(" + slots_[slot].label() + ", " + names[which] +
              ", off=" + std::to_string(offset) + ", len=" + std::to_string(length) + ")";
  step.slot = slot;
  bool emulate_a = options_.emulate_a;
  step.run = [this, slot, mode, offset, length, emulate_a](int side) {
    int fd = slots_[slot].fd[side];
    Outcome out = capture(fallocate(fd, mode, offset, length));
    bool emulate = side == 1 || emulate_a;
    if (out.ret < 0 && out.err == EOPNOTSUPP && (mode & FALLOC_FL_ZERO_RANGE) && emulate) {
      // ZERO_RANGE is "the range reads as zeros; without KEEP_SIZE the file
      // grows to cover it": a punched hole plus an extension says the same.
      struct stat st {};
      fstat(fd, &st);
      out = capture(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length));
      if (out.ret == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && offset + length > st.st_size) {
        out = capture(ftruncate(fd, offset + length));
      }
    }
    return out;
  };
  return step;
}

Runner::Step Runner::op_fsync(int slot) {
  bool data_only = rng_.percent(40);
  Step step;
  step.text = std::string(data_only ? "fdatasync(" : "fsync(") + slots_[slot].label() + ")";
  step.slot = slot;
  step.run = [this, slot, data_only](int side) {
    int fd = slots_[slot].fd[side];
    return capture(data_only ? fdatasync(fd) : fsync(fd));
  };
  return step;
}

Runner::Step Runner::op_fstat(int slot) {
  Step step;
  step.text = "fstat(" + slots_[slot].label() + ")";
  step.run = [this, slot](int side) {
    struct stat st {};
    Outcome out = capture(fstat(slots_[slot].fd[side], &st));
    if (out.ret == 0) out.data = describe_stat(st);
    return out;
  };
  return step;
}

Runner::Step Runner::op_mmap(int slot) {
  struct stat st {};
  fstat(slots_[slot].fd[1], &st);
  if (!S_ISREG(st.st_mode) || st.st_size == 0) return op_write(slot, true);
  // A window inside EOF only: touching past it is SIGBUS on any filesystem.
  off_t page = 4096;
  off_t offset = static_cast<off_t>(rng_.below(static_cast<uint64_t>(st.st_size))) & ~(page - 1);
  auto length = static_cast<size_t>(
      rng_.between(1, static_cast<uint64_t>(std::min<off_t>(st.st_size - offset, 64 * 1024))));
  bool writable = rng_.percent(60);
  size_t sub_offset = writable ? rng_.below(length) : 0;
  std::string data = writable ? rng_.bytes(rng_.between(1, length - sub_offset)) : std::string();
  // The kernel refuses a shared mapping of an append-only file through a
  // writable descriptor, and stores to an immutable one, by flags a FUSE
  // inode does not carry: sealfs can refuse the stores only at writeback
  // (docs/daemon.md "Inode flags"). Such a file is only loaded from,
  // through its read-only descriptor.
  const bool flagged =
      (inode_flags_of(slots_[slot].fd[1]) & (FS_APPEND_FL | FS_IMMUTABLE_FL)) != 0;
  if (flagged) writable = false;
  Step step;
  step.text = "mmap(" + slots_[slot].label() + ", off=" + std::to_string(offset) +
              ", len=" + std::to_string(length) + (writable ? ", PROT_READ|PROT_WRITE" : ", PROT_READ") +
              ")" +
              (writable ? " store " + std::to_string(data.size()) + " bytes at +" +
                              std::to_string(sub_offset) + ", msync"
                        : std::string(" load"));
  step.slot = slot;
  step.run = [this, slot, offset, length, writable, sub_offset, data, flagged](int side) {
    const Slot& s = slots_[slot];
    int fd = flagged && s.reader[side] >= 0 ? s.reader[side] : s.fd[side];
    return touch_mapping(fd, offset, length, writable, sub_offset, data);
  };
  return step;
}

Runner::Step Runner::op_unlink() {
  std::string path = pick_path();
  close_before_removal(path);
  Step step;
  step.text = "unlink(" + quoted(path) + ")";
  step.paths = {path};
  step.run = [this, path](int side) { return capture(unlink(at(side, path).c_str())); };
  return step;
}

Runner::Step Runner::op_rename() {
  std::string from = rng_.percent(25) ? pick_dir() : pick_path();
  std::string to = pick_path();
  close_before_removal(to);
  unsigned flags = 0;
  std::string flag_text = "0";
  if (options_.rename_flags) {
    uint64_t which = rng_.below(10);
    if (which < 2) {
      flags = RENAME_NOREPLACE;
      flag_text = "RENAME_NOREPLACE";
    } else if (which < 4) {
      flags = RENAME_EXCHANGE;
      flag_text = "RENAME_EXCHANGE";
    }
  }
  Step step;
  step.text = "renameat2(" + quoted(from) + ", " + quoted(to) + ", " + flag_text + ")";
  step.paths = {from, to};
  step.run = [this, from, to, flags](int side) {
    return capture(syscall(SYS_renameat2, AT_FDCWD, at(side, from).c_str(), AT_FDCWD,
                           at(side, to).c_str(), flags));
  };
  return step;
}

Runner::Step Runner::op_link() {
  std::string from = pick_path();
  std::string to = pick_path();
  Step step;
  step.text = "link(" + quoted(from) + ", " + quoted(to) + ")";
  step.paths = {from, to};
  step.run = [this, from, to](int side) {
    return capture(link(at(side, from).c_str(), at(side, to).c_str()));
  };
  return step;
}

Runner::Step Runner::op_mkdir() {
  std::string path = pick_dir();
  Step step;
  step.text = "mkdir(" + quoted(path) + ", 0755)";
  step.paths = {path};
  step.run = [this, path](int side) { return capture(mkdir(at(side, path).c_str(), 0755)); };
  return step;
}

Runner::Step Runner::op_rmdir() {
  std::string path = pick_dir();
  close_before_removal(path);
  Step step;
  step.text = "rmdir(" + quoted(path) + ")";
  step.paths = {path};
  step.run = [this, path](int side) { return capture(rmdir(at(side, path).c_str())); };
  return step;
}

Runner::Step Runner::op_symlink() {
  std::string path = pick_path();
  std::string target;
  uint64_t kind = rng_.below(10);
  if (kind == 0) {
    target = "missing";
  } else if (kind == 1) {
    target = path.substr(path.rfind('/') + 1);  // points at itself: ELOOP when followed
  } else {
    // Relative to the link's own directory, so it resolves inside the tree.
    target = (path.find('/') == std::string::npos ? "" : "../") + pick_path();
  }
  Step step;
  step.text = "symlink(" + quoted(target) + ", " + quoted(path) + ")";
  step.paths = {path};
  step.run = [this, path, target](int side) {
    return capture(symlink(target.c_str(), at(side, path).c_str()));
  };
  return step;
}

Runner::Step Runner::op_readlink() {
  std::string path = pick_path();
  Step step;
  step.text = "readlink(" + quoted(path) + ")";
  step.run = [this, path](int side) {
    char buf[4096];
    ssize_t n = readlink(at(side, path).c_str(), buf, sizeof buf);
    return capture(n, n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string());
  };
  return step;
}

Runner::Step Runner::op_stat() {
  std::string path = pick_path();
  bool follow = rng_.percent(50);
  Step step;
  step.text = std::string(follow ? "stat(" : "lstat(") + quoted(path) + ")";
  step.run = [this, path, follow](int side) {
    struct stat st {};
    std::string full = at(side, path);
    Outcome out = capture(follow ? stat(full.c_str(), &st) : lstat(full.c_str(), &st));
    if (out.ret == 0) out.data = describe_stat(st);
    return out;
  };
  return step;
}

Runner::Step Runner::op_readdir() {
  std::string path = rng_.percent(30) ? std::string() : pick_dir();
  Step step;
  step.text = "readdir(" + quoted(path) + ")";
  step.run = [this, path](int side) { return list_directory(at(side, path)); };
  return step;
}

Runner::Step Runner::op_chmod() {
  std::string path = pick_path();
  // With set-id bits and modes another user may write through, so that
  // op_as_other_user and chown show whether they are cleared as on tmpfs.
  const mode_t modes[] = {0600, 0644, 0755, 0700, 01777, 0666, 02755, 04755, 06777, 02777};
  mode_t mode = modes[rng_.below(10)];
  Step step;
  char octal[16];
  std::snprintf(octal, sizeof octal, "0%o", mode);
  step.text = "chmod(" + quoted(path) + ", " + octal + ")";
  step.paths = {path};
  step.run = [this, path, mode](int side) { return capture(chmod(at(side, path).c_str(), mode)); };
  return step;
}

Runner::Step Runner::op_setxattr() {
  std::string path = pick_path();
  std::string name = "user.k" + std::to_string(rng_.below(4));
  // Four names of at most 700 bytes fit the one 4 KiB xattr block sealfs
  // (like ext4) gives an inode; tmpfs would take far more.
  std::string value = rng_.bytes(rng_.percent(90) ? rng_.below(257) : rng_.between(257, 700));
  const int flag_values[] = {0, XATTR_CREATE, XATTR_REPLACE};
  const char* const flag_names_[] = {"0", "XATTR_CREATE", "XATTR_REPLACE"};
  uint64_t which = rng_.percent(70) ? 0 : rng_.between(1, 2);
  int flags = flag_values[which];
  Step step;
  step.text = "setxattr(" + quoted(path) + ", " + name + ", " + std::to_string(value.size()) +
              " bytes, " + flag_names_[which] + ")";
  step.paths = {path};
  step.run = [this, path, name, value, flags](int side) {
    return capture(
        setxattr(at(side, path).c_str(), name.c_str(), value.data(), value.size(), flags));
  };
  return step;
}

Runner::Step Runner::op_getxattr() {
  std::string path = pick_path();
  std::string name = "user.k" + std::to_string(rng_.below(4));
  Step step;
  step.text = "getxattr(" + quoted(path) + ", " + name + ")";
  step.run = [this, path, name](int side) {
    std::string buf(64 * 1024, '\0');
    ssize_t n = getxattr(at(side, path).c_str(), name.c_str(), buf.data(), buf.size());
    Outcome out = capture(n);
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    out.data = std::move(buf);
    return out;
  };
  return step;
}

Runner::Step Runner::op_listxattr() {
  std::string path = pick_path();
  Step step;
  step.text = "listxattr(" + quoted(path) + ") (user.* names, sorted)";
  step.run = [this, path](int side) { return list_user_xattr_names(at(side, path)); };
  return step;
}

Runner::Step Runner::op_removexattr() {
  std::string path = pick_path();
  std::string name = "user.k" + std::to_string(rng_.below(4));
  Step step;
  step.text = "removexattr(" + quoted(path) + ", " + name + ")";
  step.paths = {path};
  step.run = [this, path, name](int side) {
    return capture(removexattr(at(side, path).c_str(), name.c_str()));
  };
  return step;
}

}  // namespace difftest
