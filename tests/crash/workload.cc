#include "crash/workload.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>

namespace sealfs::crash {

namespace {

constexpr uint64_t kBlock = 4096;
constexpr int kBigExtents = 135;  // more than one free transaction (128)

Cred user() { return Cred{1000, 1000, 022, 1}; }

std::string result(const Status& s) { return s.is_ok() ? "ok" : s.to_string(); }
template <typename T>
std::string result(const Result<T>& r) { return r.is_ok() ? "ok" : r.status().to_string(); }

bool is_file(uint32_t mode) { return S_ISREG(mode); }
bool is_dir(uint32_t mode) { return S_ISDIR(mode); }
bool is_not_dir(uint32_t mode) { return !S_ISDIR(mode); }
bool is_any(uint32_t) { return true; }

void must(const Status& s, const char* what) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "crash workload setup: %s: %s\n", what, s.to_string().c_str());
    std::abort();
  }
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string Workload::data(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = rng_();
    std::memcpy(s.data() + i, &w, std::min<size_t>(8, n - i));
  }
  return s;
}

std::string Workload::fresh_name() { return "n" + std::to_string(++names_); }

void Workload::setup(Filesystem& fs) {
  // Stale pattern: whoever gets these blocks next must never show it.
  std::string stale(256 * kBlock, '\0');
  for (size_t i = 0; i < stale.size(); i += 8) std::memcpy(stale.data() + i, kStaleWord, 8);
  uint64_t budget = fs.statfs().free_blocks * 6 / 10;
  std::vector<std::string> names;
  for (uint64_t used = 0; used + 256 <= budget; used += 256) {
    std::string name = "stale" + std::to_string(names.size());
    auto a = fs.create(1, name, 0644, O_RDWR, user());
    must(a.status(), "create stale file");
    auto w = fs.write(a->ino, 0, stale.data(), stale.size(), false);
    must(w.status(), "write stale file");
    fs.release(a->ino);
    fs.forget(a->ino, 1);
    names.push_back(name);
  }
  for (const auto& name : names) must(fs.unlink(1, name), "unlink stale file");

  // Two fragmented files: alternating one-block writes at every other file
  // block keep their extents from merging, in file space and on media.
  auto b1 = fs.create(1, "big1", 0644, O_RDWR, user());
  auto b2 = fs.create(1, "big2", 0644, O_RDWR, user());
  must(b1.status(), "create big1");
  must(b2.status(), "create big2");
  big1_ = b1->ino;
  big2_ = b2->ino;
  for (int i = 0; i < kBigExtents; ++i) {
    for (Ino ino : {big1_, big2_}) {
      std::string block = data(kBlock);
      must(fs.write(ino, 2 * i * kBlock, block.data(), block.size(), false).status(), "big");
    }
  }
  for (Ino ino : {big1_, big2_}) {
    fs.release(ino);
    fs.forget(ino, 1);
  }
  for (const char* d : {"d1", "d2"}) {
    auto a = fs.mkdir(1, d, 0755, user());
    must(a.status(), "mkdir");
    fs.forget(a->ino, 1);
  }
}

bool Workload::pick(const FsState& now, bool (*pred)(uint32_t mode), Target& out) {
  std::vector<const std::pair<const std::string, Ino>*> candidates;
  for (const auto& entry : now.paths) {
    if (entry.first == "/" || entry.second == big1_ || entry.second == big2_) continue;
    if (pred(now.nodes.at(entry.second).mode)) candidates.push_back(&entry);
  }
  if (candidates.empty()) return false;
  const auto* c = candidates[below(candidates.size())];
  out.path = c->first;
  out.ino = c->second;
  out.parent = now.paths.at(parent_of(c->first));
  out.name = c->first.substr(c->first.rfind('/') + 1);
  return true;
}

Workload::Target Workload::place_new(const FsState& now) {
  Target t;
  Target dir;
  if (below(3) == 0 || !pick(now, is_dir, dir)) dir = Target{1, "", "/", 1};
  t.parent = dir.ino;
  t.name = fresh_name();
  t.path = (dir.path == "/" ? "" : dir.path) + "/" + t.name;
  return t;
}

std::string Workload::step(Filesystem& fs, const FsState& now, int i) {
  if (i == steps_) {
    for (Ino ino : open_orphans_) fs.release(ino);
    open_orphans_.clear();
    return "release every open orphan";
  }
  if (i == steps_ / 3 && now.nodes.count(big1_)) {
    SetAttr set;
    set.valid = SetAttr::kSize;
    set.size = 1000 + below(5 * kBlock);
    return "truncate big1 (135 extents) to " + std::to_string(set.size) + ": " +
           result(fs.setattr(big1_, set));
  }
  if (i == 2 * steps_ / 3 && now.paths.count("/big2")) {
    return "unlink big2 (135 extents): " + result(fs.unlink(1, "big2"));
  }
  return random_step(fs, now);
}

std::string Workload::random_step(Filesystem& fs, const FsState& now) {
  Target t, u;
  switch (below(20)) {
    case 0:
    case 1: {
      t = place_new(now);
      auto a = fs.create(t.parent, t.name, 0644, O_RDWR, user());
      if (a.is_ok()) {
        fs.release(a->ino);
        fs.forget(a->ino, 1);
      }
      return "create " + t.path + ": " + result(a);
    }
    case 2: {
      t = place_new(now);
      auto a = fs.mkdir(t.parent, t.name, 0755, user());
      if (a.is_ok()) fs.forget(a->ino, 1);
      return "mkdir " + t.path + ": " + result(a);
    }
    case 3: {
      t = place_new(now);
      std::string target(1 + below(below(2) ? 60 : 400), 'x');
      auto a = fs.symlink(t.parent, t.name, target, user());
      if (a.is_ok()) fs.forget(a->ino, 1);
      return "symlink " + t.path + " (" + std::to_string(target.size()) + "): " + result(a);
    }
    case 4: {
      if (!pick(now, is_file, u)) return "link: no file";
      t = place_new(now);
      auto a = fs.link(u.ino, t.parent, t.name);
      if (a.is_ok()) fs.forget(a->ino, 1);
      return "link " + u.path + " " + t.path + ": " + result(a);
    }
    case 5:
      if (!pick(now, is_not_dir, t)) return "unlink: nothing";
      return "unlink " + t.path + ": " + result(fs.unlink(t.parent, t.name));
    case 6:
      if (!pick(now, is_dir, t)) return "rmdir: nothing";
      return "rmdir " + t.path + ": " + result(fs.rmdir(t.parent, t.name));
    case 7:
    case 8:
      return rename_step(fs, now);
    case 9:
    case 10:
    case 11:
    case 12:
      return write_step(fs, now);
    case 13:
    case 14:
      return layout_step(fs, now);
    case 15: {
      if (!pick(now, is_any, t)) return "setxattr: nothing";
      std::string name = "user.k" + std::to_string(below(3));
      // Small, ~1.5 KiB, or a value that takes a chain of 2 to 5 xattr
      // blocks, so a cut lands between the blocks of one chain.
      const uint64_t kind = below(3);
      const uint64_t size = kind == 0 ? 1 + below(40) : kind == 1 ? 1 + below(1500)
                                                                  : 5000 + below(12000);
      std::string value = data(size);
      return "setxattr " + t.path + " " + name + ": " +
             result(fs.setxattr(t.ino, name, value.data(), value.size(), 0));
    }
    case 16: {
      if (!pick(now, is_any, t)) return "removexattr: nothing";
      std::string name = "user.k" + std::to_string(below(3));
      return "removexattr " + t.path + " " + name + ": " + result(fs.removexattr(t.ino, name));
    }
    case 17: {
      // Unlink of an open file: the inode goes on the orphan list.
      if (!pick(now, is_file, t) || now.nodes.at(t.ino).nlink != 1) return "orphan: no file";
      Status o = fs.open(t.ino, O_RDWR);
      if (!o.is_ok()) return "open " + t.path + ": " + result(o);
      open_orphans_.push_back(t.ino);
      return "unlink open " + t.path + ": " + result(fs.unlink(t.parent, t.name));
    }
    case 18: {
      if (open_orphans_.empty()) return "release: nothing open";
      Ino ino = open_orphans_.back();
      open_orphans_.pop_back();
      fs.release(ino);
      return "release orphan " + std::to_string(ino);
    }
    default: {
      if (!pick(now, is_any, t)) return "chmod: nothing";
      SetAttr set;
      set.valid = SetAttr::kMode;
      set.mode = (now.nodes.at(t.ino).mode & S_IFMT) | (0600 | below(0100));
      return "chmod " + t.path + ": " + result(fs.setattr(t.ino, set));
    }
  }
}

std::string Workload::write_step(Filesystem& fs, const FsState& now) {
  Target t;
  if (!pick(now, is_file, t)) return "write: no file";
  uint64_t size = now.nodes.at(t.ino).size;
  // A third are small, so files stay in their inode slot (format.h
  // kInlineDataMax, 144 bytes) and some cross out of it.
  uint64_t length = below(3) == 0 ? 1 + below(100) : 1 + below(3 * kBlock);
  uint64_t offset = 0;
  std::string kind;
  switch (below(3)) {
    case 0:
      kind = "in place";
      if (size > length) {
        offset = below(size - length);
        break;
      }
      [[fallthrough]];
    case 1:
      kind = "append";
      offset = size;
      break;
    default:
      kind = "beyond EOF";
      offset = size + 1 + below(3 * kBlock);
  }
  if (offset + length > 96 * kBlock) {
    kind = "in place (capped)";
    offset = 0;
  }
  std::string bytes = data(length);
  return "write " + kind + " " + t.path + " [" + std::to_string(offset) + ", +" +
         std::to_string(length) + "): " +
         result(fs.write(t.ino, offset, bytes.data(), bytes.size(), false));
}

std::string Workload::layout_step(Filesystem& fs, const FsState& now) {
  Target t;
  if (!pick(now, is_file, t)) return "layout: no file";
  uint64_t size = now.nodes.at(t.ino).size;
  uint64_t offset = below(size + 2 * kBlock);
  uint64_t length = 1 + below(3 * kBlock);
  static constexpr int kModes[] = {0,
                                   FALLOC_FL_KEEP_SIZE,
                                   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   FALLOC_FL_ZERO_RANGE,
                                   FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
  uint64_t choice = below(7);
  if (choice >= 5) {
    SetAttr set;
    set.valid = SetAttr::kSize;
    // Down (to 0 a third of the time: a file in blocks goes back inline),
    // or up, past the inline capacity or not.
    if (choice == 5) {
      set.size = below(3) == 0 ? 0 : below(size + 1);
    } else {
      set.size = size + (below(2) == 0 ? below(200) : below(4 * kBlock));
    }
    return "truncate " + t.path + " " + std::to_string(size) + " -> " +
           std::to_string(set.size) + ": " + result(fs.setattr(t.ino, set));
  }
  int mode = kModes[choice];
  return "fallocate mode " + std::to_string(mode) + " " + t.path + " [" +
         std::to_string(offset) + ", +" + std::to_string(length) + "): " +
         result(fs.fallocate(t.ino, mode, offset, length));
}

std::string Workload::rename_step(Filesystem& fs, const FsState& now) {
  Target from, to;
  if (!pick(now, is_any, from)) return "rename: nothing";
  unsigned flags = 0;
  std::string kind;
  switch (below(4)) {
    case 0:
      kind = "replace";
      if (pick(now, S_ISDIR(now.nodes.at(from.ino).mode) ? is_dir : is_not_dir, to)) break;
      [[fallthrough]];
    case 1:
      kind = "to a new name";
      to = place_new(now);
      break;
    case 2:
      // overlayfs's rename: the old name becomes a 0/0 character device in
      // the same transaction.
      kind = "with a whiteout";
      flags = RENAME_WHITEOUT;
      to = place_new(now);
      break;
    default:
      kind = "exchange";
      flags = RENAME_EXCHANGE;
      if (!pick(now, is_any, to)) return "rename exchange: nothing";
  }
  return "rename " + kind + " " + from.path + " " + to.path + ": " +
         result(fs.rename(from.parent, from.name, to.parent, to.name, flags));
}

}  // namespace sealfs::crash
