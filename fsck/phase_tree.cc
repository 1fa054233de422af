// Phase 6: directory blocks and entries, connectivity from the root, parent
// pointers and loops; disconnected inodes go to /lost+found.
#include <dirent.h>
#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <unordered_set>

#include "fsck/context.h"
#include "meta/directory.h"
#include "meta/inode.h"

namespace sealfs::fsck {

namespace {

constexpr const char* kLostFound = "lost+found";

uint8_t dtype_of(uint32_t mode) { return static_cast<uint8_t>(IFTODT(mode)); }

// 0 for "lost+found", n for "lost+found.n" (the name free_name gives when
// a user's own entry holds "lost+found"), -1 for any other name.
int lost_found_rank(std::string_view name) {
  const std::string_view base = kLostFound;
  if (name.substr(0, base.size()) != base) return -1;
  if (name.size() == base.size()) return 0;
  const std::string_view digits = name.substr(base.size());
  if (digits.size() < 2 || digits.size() > 6 || digits[0] != '.' || digits[1] == '0') return -1;
  int n = 0;
  for (char c : digits.substr(1)) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

std::string printable(std::string_view name) {
  std::string out;
  for (char c : name) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// Verifies (and repairs) one directory block; returns false when it had to
// be emptied.
using BlockReport = std::function<void(const char* kind, std::string detail)>;

void check_dir_block(Context& ctx, uint64_t rb, uint64_t dir, const BlockReport& report) {
  Status s = dir_block_verify(ctx.image.read_block(rb), dir);
  if (s.is_ok()) return;
  std::vector<std::byte> copy(ctx.image.read_block(rb), ctx.image.read_block(rb) + format::kBlockSize);
  dir_block_seal(copy.data());
  const char* kind = s.code() == Code::kBadCrc ? "dir_block_bad_crc" : "dir_block_corrupt";
  if (s.code() == Code::kBadCrc && dir_block_verify(copy.data(), dir).is_ok()) {
    // The entries still tile the block: keep them (each is checked below)
    // and rewrite the checksum.
    report(kind, ctx.fix(s.message() + " at block " + std::to_string(rb), "checksum rewritten",
                         "rewrite the checksum"));
    std::memcpy(ctx.image.edit_block(rb), copy.data(), copy.size());
    return;
  }
  report(kind, ctx.fix(s.message() + " at block " + std::to_string(rb),
                       "block emptied (its inodes go to lost+found)",
                       "empty the block (its inodes go to lost+found)"));
  dir_block_init(ctx.image.edit_block(rb), dir);
}

struct Tree {
  Context& ctx;
  uint64_t lost_found = 0;
  int lost_found_rank = 0;  // of its name (lost_found_rank())

  bool has_name(uint64_t dir, std::string_view name) {
    bool found = false;
    for (const Extent& e : ctx.inodes[dir].extents) {
      for (uint64_t i = 0; i < e.length && !found; ++i) {
        const std::byte* block = ctx.image.read_block(e.region_block + i);
        if (!dir_block_verify(block, dir).is_ok()) continue;
        dir_block_for_each(block, [&](const DirBlockEntry& de) { found = found || de.name == name; });
      }
    }
    return found;
  }
  // Whether root's `name` (lost+found.`rank`) is a lost+found an earlier run
  // made: a directory as ensure_lost_found makes it (root's, mode 0700),
  // beside entries lost+found, .1 ... .rank-1 (free_name took the first
  // free one). A user's own directory of that name does not qualify: what
  // fsck moves there must not become readable by its owner.
  bool made_by_fsck(std::string_view name, uint64_t ino, int rank) {
    const format::DiskInode slot = ctx.image.read_inode(ino);
    if (slot.mode.get() != (S_IFDIR | 0700) || slot.uid.get() != 0) return false;
    for (int n = 0; n < rank; ++n) {
      const std::string before =
          n == 0 ? std::string(kLostFound) : std::string(kLostFound) + "." + std::to_string(n);
      if (before == name || !has_name(format::kRootIno, before)) return false;
    }
    return true;
  }

  // `base`, or `base` with ".1", ".2"... after it when `dir` has that name
  // already (a user's own file called "lost+found" or "#12"): a second
  // entry of one name is damage the daemon refuses.
  std::string free_name(uint64_t dir, const std::string& base) {
    std::string name = base;
    for (int n = 1; has_name(dir, name); ++n) name = base + "." + std::to_string(n);
    return name;
  }

  bool add_entry(uint64_t dir, std::string_view name, uint64_t ino, uint8_t type) {
    InodeState& d = ctx.inodes[dir];
    uint32_t need = format::dir_entry_size(static_cast<uint32_t>(name.size()));
    uint64_t next_file_block = 0;
    for (const Extent& e : d.extents) {
      for (uint64_t i = 0; i < e.length; ++i) {
        uint64_t rb = e.region_block + i;
        if (dir_block_largest_free(ctx.image.read_block(rb)) < need) continue;
        std::byte* img = ctx.image.edit_block(rb);
        auto at = dir_block_insert(img, name, ino, type);
        if (!at) continue;
        dir_block_seal(img);
        return true;
      }
      next_file_block = e.file_end();
    }
    auto nb = ctx.image.allocate_block();
    if (!nb) return false;
    std::byte* img = ctx.image.edit_block(*nb);
    dir_block_init(img, dir);
    dir_block_insert(img, name, ino, type);
    dir_block_seal(img);
    std::vector<Extent> extents = d.extents;
    extents.push_back(Extent{next_file_block, *nb, 1, false});
    if (!store_layout(ctx, dir, extents, d.chain, true)) return false;
    format::DiskInode disk = ctx.image.read_inode(dir);
    disk.size.set((next_file_block + 1) * format::kBlockSize);
    ctx.image.write_inode(dir, disk);
    return true;
  }

  void remove_entry(const EntryRef& ref) {
    std::byte* img = ctx.image.edit_block(ref.region_block);
    dir_block_remove(img, ref.offset);
    dir_block_seal(img);
  }

  uint64_t find_free_inode() {
    const uint64_t n = ctx.geo().inode_count;
    for (uint64_t ino = 2; ino <= n; ++ino) {
      if (!ctx.used(ino)) return ino;
    }
    return 0;
  }

  // The lost+found directory, created in the root when missing.
  uint64_t ensure_lost_found() {
    if (lost_found != 0) return lost_found;
    uint64_t ino = find_free_inode();
    if (ino == 0) return 0;
    format::DiskInode old = ctx.image.read_inode(ino);
    format::DiskInode disk{};
    disk.mode.set(S_IFDIR | 0700);
    disk.nlink.set(2);
    disk.generation.set(old.generation.get() + 1);
    for (auto* t : {&disk.atime_ns, &disk.mtime_ns, &disk.ctime_ns, &disk.btime_ns}) {
      t->set(ctx.opt.now_ns);
    }
    ctx.image.write_inode(ino, disk);
    InodeState& st = ctx.inodes[ino];
    st = InodeState{};
    st.used = true;
    st.mode = S_IFDIR | 0700;
    st.nlink = 2;
    const std::string name = free_name(format::kRootIno, kLostFound);
    if (!add_entry(format::kRootIno, name, ino, DT_DIR)) {
      free_inode(ctx, ino);
      return 0;
    }
    ctx.problem(Phase::kDirectories, "lost_found_created", ino,
                ctx.repair() ? "created /" + name : "no /lost+found; would create /" + name);
    link(format::kRootIno, ino);
    ctx.dir_names[ino] = name;
    st.reachable = true;
    lost_found = ino;
    return ino;
  }

  void link(uint64_t dir, uint64_t ino) {
    InodeState& child = ctx.inodes[ino];
    ++child.refs;
    ctx.inodes[dir].children.push_back(ino);
    if (S_ISDIR(child.mode)) {
      child.parent = dir;
      ++ctx.inodes[dir].subdirs;
    }
  }

  void mark_reachable(uint64_t from) {
    std::vector<uint64_t> stack{from};
    ctx.inodes[from].reachable = true;
    while (!stack.empty()) {
      uint64_t d = stack.back();
      stack.pop_back();
      for (uint64_t c : ctx.inodes[d].children) {
        if (ctx.inodes[c].reachable) continue;
        ctx.inodes[c].reachable = true;
        if (S_ISDIR(ctx.inodes[c].mode)) stack.push_back(c);
      }
    }
  }

  // Moves a disconnected inode into lost+found as "#ino".
  void reconnect(uint64_t ino, const char* kind, const std::string& why) {
    uint64_t lf = ensure_lost_found();
    if (lf == 0) {
      ctx.problem(Phase::kDirectories, kind, ino, why + "; cannot create /lost+found", false);
      return;
    }
    const std::string name = free_name(lf, "#" + std::to_string(ino));
    InodeState& st = ctx.inodes[ino];
    if (!add_entry(lf, name, ino, dtype_of(st.mode))) {
      ctx.problem(Phase::kDirectories, kind, ino, why + "; no space in /lost+found", false);
      return;
    }
    const std::string where = ctx.dir_path(lf) + "/" + name;
    ctx.problem(Phase::kDirectories, kind, ino,
                ctx.fix(why, "moved to " + where, "move it to " + where));
    link(lf, ino);
    mark_reachable(ino);
  }
};

// A name whose type disagrees with the mode of an inode kept after a bad
// crc (phase 3): the entry's block passed its crc and the slot did not, so
// the mode is what changed, and the checks the inode passed were those of
// the wrong kind of file. It is cleared; its names then dangle (removed
// below). Blocks that fail their own checks are left to the pass below.
void clear_mistyped_salvaged(Context& ctx) {
  std::unordered_set<uint64_t> salvaged;
  for (uint64_t ino : ctx.inodes.numbers()) {
    if (ctx.inodes[ino].used && ctx.inodes[ino].salvaged) salvaged.insert(ino);
  }
  if (salvaged.empty()) return;
  for (uint64_t dir : ctx.inodes.numbers()) {
    const InodeState& d = ctx.inodes[dir];
    if (!d.used || !S_ISDIR(d.mode)) continue;
    const std::vector<Extent> extents = d.extents;  // a clear may reset `d`
    for (const Extent& e : extents) {
      for (uint64_t i = 0; i < e.length; ++i) {
        const std::byte* block = ctx.image.read_block(e.region_block + i);
        if (!dir_block_verify(block, dir).is_ok()) continue;
        dir_block_for_each(block, [&](const DirBlockEntry& de) {
          if (salvaged.count(de.ino) == 0) return;
          InodeState& child = ctx.inodes[de.ino];
          if (!child.used || de.type == dtype_of(child.mode)) return;
          ctx.problem(Phase::kDirectories, "inode_bad_crc", de.ino,
                      ctx.fix("kept after a bad crc, but its name '" + printable(de.name) +
                                  "' has type " + std::to_string(de.type) + " and its mode type " +
                                  std::to_string(dtype_of(child.mode)),
                              "inode cleared", "clear the inode"));
          clear_inode(ctx, de.ino);
        });
      }
    }
  }
}

}  // namespace

void check_directories(Context& ctx) {
  clear_mistyped_salvaged(ctx);
  Tree tree{ctx};
  // Entry problems are reported once every directory is read, when the
  // parent pointers give their directories' paths.
  struct Deferred {
    const char* kind;
    uint64_t dir;
    std::string name;  // the entry's; empty for a whole block
    std::string detail;
    uint64_t other_dir = 0;  // dir_hard_link: the directory that names it first
  };
  std::vector<Deferred> deferred;
  const std::vector<uint64_t> numbers = ctx.inodes.numbers();
  uint64_t dirs_done = 0;
  for (uint64_t dir : numbers) {
    InodeState& d = ctx.inodes[dir];
    ctx.progress(Phase::kDirectories, ++dirs_done, numbers.size());
    if (!d.used || !S_ISDIR(d.mode)) continue;
    std::unordered_set<std::string> names;
    // Copy: adding lost+found may grow this directory's map meanwhile.
    std::vector<Extent> extents = d.extents;
    for (const Extent& e : extents) {
      for (uint64_t i = 0; i < e.length; ++i) {
        uint64_t rb = e.region_block + i;
        check_dir_block(ctx, rb, dir, [&](const char* kind, std::string detail) {
          deferred.push_back({kind, dir, "", std::move(detail)});
        });
        std::vector<EntryRef> removals;
        struct Retype {
          uint16_t offset;
          uint64_t ino;
          uint8_t type;
        };
        std::vector<Retype> retypes;
        dir_block_for_each(ctx.image.read_block(rb), [&](const DirBlockEntry& de) {
          EntryRef ref{dir, rb, de.offset};
          std::string shown = printable(de.name);
          if (!dir_entry_name_valid(de.name)) {
            deferred.push_back({"bad_name", dir, shown,
                                ctx.fix("invalid name", "entry removed", "remove the entry")});
            removals.push_back(ref);
            return;
          }
          if (!ctx.used(de.ino)) {
            deferred.push_back({"dangling_entry", dir, shown,
                                ctx.fix("names free inode " + std::to_string(de.ino),
                                        "entry removed", "remove the entry")});
            removals.push_back(ref);
            return;
          }
          if (de.ino == format::kRootIno) {
            deferred.push_back({"entry_to_root", dir, shown,
                                ctx.fix("names the root", "entry removed", "remove the entry")});
            removals.push_back(ref);
            return;
          }
          if (ctx.inodes[de.ino].blocks_freed) {
            deferred.push_back({"entry_to_unlinked", dir, shown,
                                ctx.fix("names inode " + std::to_string(de.ino) +
                                            ", unlinked, whose blocks were freed",
                                        "entry removed", "remove the entry")});
            removals.push_back(ref);
            return;
          }
          if (!names.insert(std::string(de.name)).second) {
            deferred.push_back({"duplicate_name", dir, shown,
                                ctx.fix("second entry of this name", "entry removed",
                                        "remove the entry")});
            removals.push_back(ref);
            return;
          }
          InodeState& child = ctx.inodes[de.ino];
          if (S_ISDIR(child.mode) && child.parent != 0) {
            deferred.push_back({"dir_hard_link", dir, shown,
                                ctx.fix("names directory " + std::to_string(de.ino) +
                                            ", which already has a name in ",
                                        "entry removed", "remove the entry"),
                                child.parent});
            removals.push_back(ref);
            names.erase(std::string(de.name));
            return;
          }
          if (de.type != dtype_of(child.mode)) {
            deferred.push_back({"entry_type", dir, shown,
                                ctx.fix("has type " + std::to_string(de.type) + ", inode " +
                                            std::to_string(de.ino) + " is " +
                                            std::to_string(dtype_of(child.mode)),
                                        "fixed", "fix it")});
            retypes.push_back({de.offset, de.ino, dtype_of(child.mode)});
          }
          // The lowest of lost+found, lost+found.1...: a later run finds the
          // one an earlier run made beside a user's entry of the name.
          if (const int rank = lost_found_rank(de.name);
              dir == format::kRootIno && rank >= 0 && S_ISDIR(child.mode) &&
              (tree.lost_found == 0 || rank < tree.lost_found_rank) &&
              (rank == 0 || tree.made_by_fsck(de.name, de.ino, rank))) {
            tree.lost_found = de.ino;
            tree.lost_found_rank = rank;
          }
          tree.link(dir, de.ino);
          if (S_ISDIR(child.mode)) {
            child.parent_entry = ref;
            ctx.dir_names[de.ino] = shown;
          }
        });
        for (const EntryRef& r : removals) tree.remove_entry(r);
        for (const Retype& t : retypes) {
          std::byte* img = ctx.image.edit_block(rb);
          dir_block_retarget(img, t.offset, t.ino, t.type);
          dir_block_seal(img);
        }
      }
    }
  }

  for (const Deferred& p : deferred) {
    std::string where = ctx.dir_path(p.dir);
    std::string detail = p.detail;
    if (p.other_dir != 0) {
      // "..., which already has a name in ; entry removed": the path goes
      // before the action.
      size_t at = detail.find(" in ; ");
      if (at != std::string::npos) detail.insert(at + 4, ctx.dir_path(p.other_dir));
    }
    if (!p.name.empty()) {
      where = "'" + (where == "/" ? "" : where) + "/" + p.name + "'";
    } else {
      where = "directory '" + where + "'";
    }
    ctx.problem(Phase::kDirectories, p.kind, p.dir, where + ": " + detail);
  }

  tree.mark_reachable(format::kRootIno);
  // Disconnected directories: reconnect the top of each detached subtree
  // (the directory with no parent, or where a parent loop closes).
  for (uint64_t ino : numbers) {
    if (ino < 2) continue;
    InodeState& st = ctx.inodes[ino];
    if (!st.used || !S_ISDIR(st.mode) || st.reachable) continue;
    if (st.nlink == 0 && st.parent == 0 && st.children.empty()) continue;  // phase 8 frees it
    std::set<uint64_t> path;
    uint64_t top = ino;
    bool loop = false;
    while (ctx.inodes[top].parent != 0) {
      if (!path.insert(top).second) {
        loop = true;
        break;
      }
      uint64_t p = ctx.inodes[top].parent;
      if (ctx.inodes[p].reachable) break;  // cannot happen: we would be reachable
      top = p;
    }
    if (loop) {
      // Break the cycle at `top`: its entry in its parent goes away.
      InodeState& t = ctx.inodes[top];
      tree.remove_entry(t.parent_entry);
      InodeState& p = ctx.inodes[t.parent];
      --p.subdirs;
      std::erase(p.children, top);
      --t.refs;
      t.parent = 0;
      tree.reconnect(top, "dir_loop", "directory is part of a loop cut off from the root");
    } else {
      tree.reconnect(top, "disconnected_dir", "directory is not reachable from the root");
    }
  }
  for (uint64_t ino : numbers) {
    if (ino < 2) continue;
    InodeState& st = ctx.inodes[ino];
    if (!st.used || st.reachable || S_ISDIR(st.mode)) continue;
    if (st.refs == 0 && st.nlink == 0) continue;  // unlinked: phase 8
    // Unlinked with its blocks freed (the orphan flag says so even with a
    // link count): nothing to keep; phase 8 frees it.
    if (st.refs == 0 && st.blocks_freed) continue;
    if (st.refs == 0) tree.reconnect(ino, "disconnected_inode", "inode has no name");
  }
  for (uint64_t ino : ctx.inodes.numbers()) {
    if (ctx.inodes[ino].used) {
      ++ctx.report.counts.inodes_used;
      uint32_t m = ctx.inodes[ino].mode;
      if (S_ISREG(m)) {
        ++ctx.report.counts.regular_files;
      } else if (S_ISDIR(m)) {
        ++ctx.report.counts.directories;
      } else if (S_ISLNK(m)) {
        ++ctx.report.counts.symlinks;
      } else {
        ++ctx.report.counts.other_inodes;
      }
    }
  }
}

}  // namespace sealfs::fsck
