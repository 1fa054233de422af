// The inode cache's bound (MountOptions::inode_cache; src/meta/inode_cache.cc):
// inodes the kernel has forgotten are dropped from DRAM and read again from
// the media, identical, on their next use; operations racing with the
// trimmer stay correct.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

std::string describe(const Attr& a) {
  std::ostringstream out;
  out << "ino=" << a.ino << " gen=" << a.generation << " mode=" << std::oct << a.mode << std::dec
      << " nlink=" << a.nlink << " uid=" << a.uid << " gid=" << a.gid << " rdev=" << a.rdev
      << " size=" << a.size << " blocks=" << a.blocks << " atime=" << a.atime.tv_sec << "."
      << a.atime.tv_nsec << " mtime=" << a.mtime.tv_sec << "." << a.mtime.tv_nsec
      << " ctime=" << a.ctime.tv_sec << "." << a.ctime.tv_nsec;
  return out.str();
}

class InodeCacheTest : public MetaTest {
 protected:
  // A mount whose cache keeps `bound` inodes (0: a bound the test never
  // reaches, so the thread drops nothing and the test drops inodes itself,
  // with trim_inode_cache).
  void format_with_bound(uint64_t bound, AtimePolicy atime = AtimePolicy::kRelative) {
    format(64ull << 20, 8192);
    options_.inode_cache = bound == 0 ? uint64_t{1} << 40 : bound;
    options_.atime = atime;
    clean_remount(options_);
  }
  MountOptions options_;
  uint64_t cached() const { return fs_->work_counters().inodes_cached; }

  // Everything the filesystem answers about the tree under `dir`, by path:
  // attributes, bytes, symlink targets, xattrs, extent counts and directory
  // entries (names, numbers, types, cookies). Each lookup it makes is
  // forgotten again, so it leaves the lookup counts as it found them.
  void snapshot(Ino dir, const std::string& path, std::map<std::string, std::string>* out) {
    std::vector<DirEntry> entries;
    std::vector<std::string> names;
    ASSERT_TRUE(fs_->readdir(dir, 0, [&](const DirEntry& e) {
                      names.emplace_back(e.name);
                      entries.push_back(e);
                      return true;
                    }).is_ok());
    std::ostringstream listing;
    for (size_t i = 0; i < entries.size(); ++i) {
      listing << names[i] << ":" << entries[i].ino << ":" << entries[i].type << ":"
              << entries[i].next_cookie << " ";
    }
    (*out)[path + "/"] = listing.str();
    for (const std::string& name : names) {
      if (name == "." || name == "..") continue;
      auto a = fs_->lookup(dir, name);
      ASSERT_TRUE(a.is_ok()) << path << "/" << name << ": " << a.status().to_string();
      const std::string at = path + "/" + name;
      std::string d = describe(*a);
      auto xattrs = fs_->listxattr(a->ino);
      ASSERT_TRUE(xattrs.is_ok());
      for (const std::string& x : *xattrs) {
        auto v = fs_->getxattr(a->ino, x);
        ASSERT_TRUE(v.is_ok());
        d += " " + x + "=" + std::string(v->begin(), v->end());
      }
      auto extents = fs_->extent_count(a->ino);
      ASSERT_TRUE(extents.is_ok());
      d += " extents=" + std::to_string(*extents);
      if (S_ISLNK(a->mode)) {
        auto target = fs_->readlink(a->ino);
        ASSERT_TRUE(target.is_ok());
        d += " -> " + *target;
      } else if (S_ISREG(a->mode)) {
        std::string bytes(a->size, '\0');
        auto n = fs_->read_copy(a->ino, 0, bytes.data(), bytes.size());
        ASSERT_TRUE(n.is_ok());
        bytes.resize(*n);
        d += " bytes=" + bytes;
      }
      (*out)[at] = d;
      if (S_ISDIR(a->mode)) snapshot(a->ino, at, out);
      fs_->forget(a->ino, 1);
    }
  }
  std::map<std::string, std::string> snapshot() {
    std::map<std::string, std::string> out;
    snapshot(kRootIno, "", &out);
    return out;
  }

  // Ten directories (one inside another) of files of every kind: inline
  // bytes, several extents, short and long symlinks, xattrs, a device.
  // Every lookup and open is given back, as the kernel does after its
  // forgets and closes.
  void make_tree() {
    Ino parent = kRootIno;
    for (int d = 0; d < 10; ++d) {
      auto dir = fs_->mkdir(d == 5 ? parent : kRootIno, "d" + std::to_string(d), 0755, user());
      ASSERT_TRUE(dir.is_ok()) << dir.status().to_string();
      if (d == 4) parent = dir->ino;
      for (int i = 0; i < 60; ++i) {
        const std::string name = "f" + std::to_string(i);
        switch (i % 6) {
          case 0: {  // inline bytes
            Attr f = make_file(dir->ino, name);
            write_str(f.ino, 0, "inline " + std::to_string(d * 100 + i));
            fs_->release(f.ino);
            fs_->forget(f.ino, 1);
            break;
          }
          case 1: {  // blocks, three extents with holes between
            Attr f = make_file(dir->ino, name);
            for (int k = 0; k < 3; ++k) {
              write_str(f.ino, k * 3 * format::kBlockSize, std::string(5000, char('a' + k + i % 7)));
            }
            fs_->release(f.ino);
            fs_->forget(f.ino, 1);
            break;
          }
          case 2:
          case 3: {  // a short symlink in the slot, a long one in a block
            std::string target = i % 6 == 2 ? "t" + std::to_string(i) : std::string(300, 'L');
            auto s = fs_->symlink(dir->ino, name, target, user());
            ASSERT_TRUE(s.is_ok());
            fs_->forget(s->ino, 1);
            break;
          }
          case 4: {  // xattrs
            Attr f = make_file(dir->ino, name);
            std::string v = "value" + std::to_string(i);
            ASSERT_TRUE(fs_->setxattr(f.ino, "user.a", v.data(), v.size(), 0).is_ok());
            ASSERT_TRUE(fs_->setxattr(f.ino, "user.big", std::string(600, 'x').data(), 600, 0).is_ok());
            fs_->release(f.ino);
            fs_->forget(f.ino, 1);
            break;
          }
          default: {  // a device node
            auto n = fs_->mknod(dir->ino, name, S_IFCHR | 0600, makedev(1, 3), user());
            ASSERT_TRUE(n.is_ok());
            fs_->forget(n->ino, 1);
          }
        }
      }
      fs_->forget(dir->ino, 1);
    }
    // Reads set atimes in DRAM only; an fsync writes them, as the unmount would.
  }
};

TEST_F(InodeCacheTest, ForgottenInodesAreDroppedAndReadBackIdentical) {
  // noatime: the snapshots' reads would move atimes between them.
  format_with_bound(0, AtimePolicy::kNever);
  make_tree();
  const auto before = snapshot();
  ASSERT_EQ(before.size(), 10u * 61 + 11);  // entries, and a listing per directory
  ASSERT_GT(cached(), 600u);
  const uint64_t dropped = fs_->trim_inode_cache(0);
  // Only the root stays: the kernel forgot everything else.
  EXPECT_EQ(cached(), 1u);
  EXPECT_GE(dropped, 600u);
  EXPECT_EQ(fs_->work_counters().inodes_dropped, dropped);
  const auto after = snapshot();
  EXPECT_EQ(before, after);
  // Again, with every inode read back from the media once already.
  fs_->trim_inode_cache(0);
  EXPECT_EQ(snapshot(), after);
  // And what a remount reads (it checks link counts, parents, blocks).
  fs_->trim_inode_cache(0);
  clean_remount(options_);
  EXPECT_EQ(snapshot(), after);
}

TEST_F(InodeCacheTest, InodesTheKernelHoldsOrThatAreOpenStay) {
  format_with_bound(0);
  Attr held = make_file(kRootIno, "held");  // looked up, open
  Attr open_only = make_file(kRootIno, "open");
  fs_->forget(open_only.ino, 1);
  Attr looked_up = make_file(kRootIno, "looked");
  fs_->release(looked_up.ino);
  Attr unlinked = make_file(kRootIno, "gone");  // an orphan while open
  ASSERT_TRUE(fs_->unlink(kRootIno, "gone").is_ok());
  fs_->forget(unlinked.ino, 1);
  Attr idle = make_file(kRootIno, "idle");
  fs_->release(idle.ino);
  fs_->forget(idle.ino, 1);
  EXPECT_EQ(fs_->trim_inode_cache(0), 1u);  // idle only
  EXPECT_EQ(cached(), 5u);                  // root, held, open, looked, gone
  // The orphan is still freed at its last close.
  const uint64_t free_inodes = fs_->statfs().free_inodes;
  fs_->release(unlinked.ino);
  EXPECT_EQ(fs_->statfs().free_inodes, free_inodes + 1);
  EXPECT_EQ(fs_->getattr(unlinked.ino).status().code(), Code::kStale);
  EXPECT_TRUE(fs_->getattr(held.ino).is_ok());
}

// The trimmer looks at the inodes that were made or became idle since it
// last looked, not at the whole table: a forget in a table of thousands of
// inodes the kernel holds costs a look at one.
TEST_F(InodeCacheTest, TheTrimmersWorkFollowsWhatWasForgottenNotTheTablesSize) {
  format_with_bound(0);
  std::vector<Ino> files;
  for (int i = 0; i < 2000; ++i) {
    Attr f = make_file(kRootIno, "f" + std::to_string(i));
    fs_->release(f.ino);  // the kernel still holds each: a lookup
    files.push_back(f.ino);
  }
  // Each inode made was queued once: all looked at, none dropped.
  EXPECT_EQ(fs_->trim_inode_cache(0), 0u);
  const uint64_t visited = fs_->work_counters().inodes_trim_visited;
  EXPECT_GE(visited, 2000u);
  fs_->forget(files[1234], 1);
  EXPECT_EQ(fs_->trim_inode_cache(0), 1u);
  EXPECT_LE(fs_->work_counters().inodes_trim_visited - visited, 2u);
  EXPECT_EQ(fs_->trim_inode_cache(0), 0u);
  EXPECT_LE(fs_->work_counters().inodes_trim_visited - visited, 2u);
  EXPECT_TRUE(fs_->getattr(files[1234]).is_ok());  // read back from its slot
}

// The kernel forgets inodes it looked up since the thread's last pass (a
// scan, then memory pressure). Each was queued when it was made; the forget
// must still wake the thread, not leave the cache past its bound until the
// thread's pause ends (doubled after each pass that dropped nothing, up to
// 32 s). Found by the review of the queue (2026-12-07).
TEST_F(InodeCacheTest, ForgetsOfInodesMadeSinceTheLastPassWakeTheThread) {
  format_with_bound(64);
  for (int i = 0; i < 70; ++i) {
    Attr f = make_file(kRootIno, "held" + std::to_string(i));
    fs_->release(f.ino);  // the kernel keeps its lookup
  }
  // The thread's timed pass (1 s after the mount) finds every inode held:
  // nothing dropped, its pause doubles to 2 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (fs_->work_counters().inodes_trim_visited == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(fs_->work_counters().inodes_trim_visited, 0u);
  ASSERT_EQ(fs_->work_counters().inodes_dropped, 0u);
  for (int i = 0; i < 200; ++i) {
    Attr f = make_file(kRootIno, "scan" + std::to_string(i));
    fs_->release(f.ino);
    fs_->forget(f.ino, 1);
  }
  const auto forgotten_at = std::chrono::steady_clock::now();
  while (fs_->work_counters().inodes_dropped < 150 &&
         std::chrono::steady_clock::now() - forgotten_at < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - forgotten_at);
  EXPECT_GE(fs_->work_counters().inodes_dropped, 150u);
  EXPECT_LT(took.count(), 1000) << cached() << " inodes cached (bound 64) " << took.count()
                                << " ms after the forgets";
}

// A lookup by number (a file handle: open_by_handle_at, nfsd) of a slot
// never used makes an inode of zeros; it must be dropped like any free
// slot, or made-up handles would grow the cache past any bound (review of
// the queue, 2026-12-07).
TEST_F(InodeCacheTest, HandleLookupsOfSlotsNeverUsedDoNotStayCached) {
  format_with_bound(64);
  for (Ino ino = 100; ino < 2100; ++ino) {
    auto self = fs_->lookup(ino, ".");
    ASSERT_FALSE(self.is_ok());
    ASSERT_EQ(self.status().code(), Code::kStale) << self.status().to_string();
  }
  fs_->trim_inode_cache(0);
  EXPECT_LE(cached(), 64u);
  // Each reads back as the free slot it is: a create may take any of them.
  for (int i = 0; i < 50; ++i) {
    Attr f = make_file(kRootIno, "after" + std::to_string(i));
    ASSERT_NE(f.ino, 0u);
    write_str(f.ino, 0, "x" + std::to_string(i));
    ASSERT_EQ(read_all(f.ino), "x" + std::to_string(i));
  }
}

// An unlinked file whose free waits for a lease on its blocks is idle with
// nlink 0: the thread puts it back for later. That must not wake the thread
// again at once, or it spins (a whole core) for as long as the lease is
// held while the kernel holds more inodes than the bound (review of the
// queue, 2026-12-07: 13 million looks in a second).
TEST_F(InodeCacheTest, AnInodeWaitingForItsFreeDoesNotKeepTheThreadSpinning) {
  format(64ull << 20, 8192);
  SealedInodeGate gate;
  options_.inode_cache = 8;
  options_.gate = &gate;
  clean_remount(options_);
  for (int i = 0; i < 20; ++i) {
    Attr f = make_file(kRootIno, "held" + std::to_string(i));
    fs_->release(f.ino);  // the kernel keeps its lookup: past the bound for good
  }
  Attr mapped = make_file(kRootIno, "mapped");
  write_str(mapped.ino, 0, std::string(8192, 'm'));
  gate.sealed_ino = mapped.ino;  // a lease holds its blocks
  ASSERT_TRUE(fs_->unlink(kRootIno, "mapped").is_ok());
  fs_->release(mapped.ino);
  fs_->forget(mapped.ino, 1);  // its free is deferred: nlink 0, idle
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const uint64_t visited_before = fs_->work_counters().inodes_trim_visited;
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const uint64_t visits = fs_->work_counters().inodes_trim_visited - visited_before;
  // A pass per timed wake-up (1 s, doubling) looks at it once or twice.
  EXPECT_LE(visits, 5u) << visits << " looks in one second with nothing to drop";
  gate.sealed_ino = 0;
}

TEST_F(InodeCacheTest, TimesChangedInDramAreWrittenBeforeTheInodeIsDropped) {
  format_with_bound(0);
  Attr f = make_file(kRootIno, "f");
  write_str(f.ino, 0, "some bytes");
  fs_->release(f.ino);
  fs_->forget(f.ino, 1);
  fs_->trim_inode_cache(0);
  // relatime: the first read after the write moves atime, in DRAM only.
  ASSERT_EQ(read_all(f.ino), "some bytes");
  const auto atime = fs_->getattr(f.ino)->atime;
  EXPECT_EQ(fs_->trim_inode_cache(0), 1u);
  EXPECT_EQ(cached(), 1u);
  auto reread = fs_->getattr(f.ino);
  ASSERT_TRUE(reread.is_ok());
  EXPECT_EQ(reread->atime.tv_sec, atime.tv_sec);
  EXPECT_EQ(reread->atime.tv_nsec, atime.tv_nsec);
}

TEST_F(InodeCacheTest, ADroppedDirectoryKeepsItsParent) {
  format_with_bound(0);
  auto a = fs_->mkdir(kRootIno, "a", 0755, user());
  ASSERT_TRUE(a.is_ok());
  auto b = fs_->mkdir(a->ino, "b", 0755, user());
  ASSERT_TRUE(b.is_ok());
  fs_->forget(a->ino, 1);
  fs_->forget(b->ino, 1);
  EXPECT_EQ(fs_->trim_inode_cache(0), 2u);
  // ".." by number (NFS) and rename's loop check follow parent links.
  auto up = fs_->lookup(b->ino, "..");
  ASSERT_TRUE(up.is_ok());
  EXPECT_EQ(up->ino, a->ino);
  fs_->forget(up->ino, 1);
  fs_->trim_inode_cache(0);
  EXPECT_EQ(fs_->rename(kRootIno, "a", b->ino, "a2", 0).code(), Code::kInvalid);
}

TEST_F(InodeCacheTest, TheThreadKeepsTheCacheNearItsBound) {
  format_with_bound(64);
  for (int i = 0; i < 400; ++i) {
    Attr f = make_file(kRootIno, "f" + std::to_string(i));
    fs_->release(f.ino);
    fs_->forget(f.ino, 1);
  }
  // The thread is woken past the bound and drops down to 7/8 of it.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (cached() > 64 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_LE(cached(), 64u);
  EXPECT_GE(fs_->work_counters().inodes_dropped, 400u - 64u);
}

TEST_F(InodeCacheTest, NoBoundKeepsEveryInode) {
  format_with_bound(0);
  for (int i = 0; i < 100; ++i) {
    Attr f = make_file(kRootIno, "f" + std::to_string(i));
    fs_->release(f.ino);
    fs_->forget(f.ino, 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(cached(), 101u);
  EXPECT_EQ(fs_->work_counters().inodes_dropped, 0u);
}

// Writers, renames, unlinks and lookups in four directories while another
// thread drops every idle inode as fast as it can; each worker keeps a model
// of its directory, checked at the end and after a remount.
TEST_F(InodeCacheTest, OperationsRacingWithTheTrimmerStayCorrect) {
  format_with_bound(8);
  constexpr int kWorkers = 4;
  std::vector<Ino> dirs;
  for (int w = 0; w < kWorkers; ++w) {
    auto d = fs_->mkdir(kRootIno, "w" + std::to_string(w), 0755, user());
    ASSERT_TRUE(d.is_ok());
    dirs.push_back(d->ino);
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> trims{0};
  std::thread trimmer([&] {
    while (!stop.load()) {
      fs_->trim_inode_cache(0);
      trims.fetch_add(1);
    }
  });
  std::vector<std::map<std::string, std::string>> models(kWorkers);
  std::vector<std::string> failures(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(1000 + w);
      auto& model = models[w];
      const Ino dir = dirs[w];
      auto fail = [&](const std::string& what) {
        if (failures[w].empty()) failures[w] = what;
      };
      for (int step = 0; step < 1500 && failures[w].empty(); ++step) {
        const std::string name = "n" + std::to_string(rng() % 24);
        switch (rng() % 5) {
          case 0: {  // create or overwrite, then close and forget
            auto f = fs_->create(dir, name, 0644, O_RDWR, user());
            if (!f.is_ok()) return fail("create " + f.status().to_string());
            std::string bytes(rng() % 9000, char('a' + rng() % 26));
            auto n = fs_->write(f->ino, 0, bytes.data(), bytes.size(), false);
            if (!n.is_ok()) return fail("write " + n.status().to_string());
            std::string& kept = model[name];
            if (bytes.size() >= kept.size()) kept = bytes;
            else kept.replace(0, bytes.size(), bytes);
            fs_->release(f->ino);
            fs_->forget(f->ino, 1);
            break;
          }
          case 1: {  // rename within the directory
            const std::string to = "n" + std::to_string(rng() % 24);
            Status s = fs_->rename(dir, name, dir, to, 0);
            if (model.count(name) == 0) {
              if (s.code() != Code::kNotFound) return fail("rename of nothing " + s.to_string());
              break;
            }
            if (!s.is_ok()) return fail("rename " + s.to_string());
            std::string moved = model[name];
            model.erase(name);
            model[to] = moved;
            break;
          }
          case 2: {  // unlink
            Status s = fs_->unlink(dir, name);
            if (model.erase(name) == 0) {
              if (s.code() != Code::kNotFound) return fail("unlink of nothing " + s.to_string());
            } else if (!s.is_ok()) {
              return fail("unlink " + s.to_string());
            }
            break;
          }
          default: {  // look up, read, forget
            auto a = fs_->lookup(dir, name);
            if (model.count(name) == 0) {
              if (a.is_ok()) return fail("lookup found " + name);
              break;
            }
            if (!a.is_ok()) return fail("lookup " + a.status().to_string());
            std::string bytes(a->size, '\0');
            auto n = fs_->read_copy(a->ino, 0, bytes.data(), bytes.size());
            fs_->forget(a->ino, 1);
            if (!n.is_ok() || bytes != model[name]) return fail("bytes of " + name);
          }
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  stop = true;
  trimmer.join();
  for (int w = 0; w < kWorkers; ++w) ASSERT_EQ(failures[w], "") << "worker " << w;
  EXPECT_GT(trims.load(), 0u);
  EXPECT_GT(fs_->work_counters().inodes_dropped, 0u);
  auto check = [&] {
    for (int w = 0; w < kWorkers; ++w) {
      std::map<std::string, std::string> seen;
      std::vector<std::string> names;
      ASSERT_TRUE(fs_->readdir(dirs[w], 0, [&](const DirEntry& e) {
                        if (e.name != "." && e.name != "..") names.emplace_back(e.name);
                        return true;
                      }).is_ok());
      for (const std::string& name : names) {
        auto a = fs_->lookup(dirs[w], name);
        ASSERT_TRUE(a.is_ok());
        seen[name] = read_all(a->ino, 0, a->size + 1);
        fs_->forget(a->ino, 1);
      }
      EXPECT_EQ(seen, models[w]) << "worker " << w;
    }
  };
  check();
  fs_->trim_inode_cache(0);
  clean_remount(options_);
  check();
}

}  // namespace
}  // namespace sealfs::testing_meta
