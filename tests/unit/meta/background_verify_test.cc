// MountOptions::background_verify (mount_verifier.cc): the mount is live
// before every inode is read and cross-checked. While the verifier is held
// back, lookups of a deep path, getattr and reads are served from inodes read
// on demand; every metadata change waits for it; damage it finds makes the
// mount read-only for good with the region stamped "needs check", and an
// inode it could not read answers EIO; an unmount while it runs is clean.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "media/superblock.h"
#include "meta/directory.h"
#include "meta/inode.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;
using Bytes = std::vector<std::byte>;
using namespace std::chrono_literals;

// Holds the verifier thread at its start until released.
class Hold {
 public:
  void wait() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // For the next mount of the same test.
  void rearm() {
    std::lock_guard lock(mu_);
    entered_ = false;
    released_ = false;
  }
  bool wait_entered() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return entered_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

class BackgroundVerifyTest : public MetaTest {
 protected:
  void SetUp() override { format(16ull << 20, 1024); }
  void TearDown() override {
    hold_.release();  // never leave the verifier (and the unmount) waiting
    if (fs_) (void)fs_->unmount();
    fs_.reset();
  }

  // /a/b/c/d/leaf holding `data`, and /a/b/c/d/other.
  void make_tree() {
    Ino dir = kRootIno;
    for (const char* name : {"a", "b", "c", "d"}) {
      auto d = fs_->mkdir(dir, name, 0755, user());
      ASSERT_TRUE(d.is_ok()) << d.status().to_string();
      dir = d->ino;
    }
    deep_dir_ = dir;
    Attr leaf = make_file(dir, "leaf");
    write_str(leaf.ino, 0, data_);
    leaf_ = leaf.ino;
    Attr other = make_file(dir, "other");
    write_str(other.ino, 0, "other file");
    other_ = other.ino;
  }
  void unmount_to_image() {
    ASSERT_TRUE(fs_->unmount().is_ok());
    image_ = dram()->image();
    fs_.reset();
    auto sb = read_superblock(*RegionDram::from_image(image_));
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    geo_ = sb->geometry;
  }
  // Mounts image_ with the verifier in the background, held at its start.
  void mount_held(MountOptions options = {}) {
    options.background_verify = true;
    options.before_verify = [this] { hold_.wait(); };
    auto fs = Filesystem::mount(RegionDram::from_image(image_), options, &stats_);
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    fs_ = std::move(*fs);
    ASSERT_TRUE(hold_.wait_entered());
  }
  Result<Attr> walk(std::initializer_list<const char*> names) {
    Ino at = kRootIno;
    Attr a;
    for (const char* n : names) {
      auto r = fs_->lookup(at, n);
      if (!r.is_ok()) return r.status();
      a = *r;
      at = a.ino;
    }
    return a;
  }
  void flip(uint64_t offset) { image_[offset] ^= std::byte{0x5a}; }
  uint64_t slot_offset(Ino ino) const { return inode_offset(geo_, ino); }
  format::DiskInode inode(Ino ino) const {
    format::DiskInode d{};
    std::memcpy(&d, image_.data() + slot_offset(ino), sizeof(d));
    return d;
  }
  uint32_t state_on_media() {
    auto sb = read_superblock(*RegionDram::from_image(dram()->image()));
    EXPECT_TRUE(sb.is_ok());
    return sb.is_ok() ? sb->state : 0;
  }
  // After the verifier has finished (statfs waits for it): the mount is
  // read-only for good and says why, and the region is stamped.
  void expect_read_only_after_damage() {
    (void)fs_->statfs();
    auto made = fs_->create(kRootIno, "new", 0644, O_RDWR, user());
    ASSERT_FALSE(made.is_ok()) << "created a file on a damaged image";
    EXPECT_EQ(made.status().code(), Code::kReadOnly) << made.status().to_string();
    EXPECT_NE(made.status().message().find("mount verification found damage"), std::string::npos)
        << made.status().to_string();
    EXPECT_EQ(fs_->write(other_, 0, "x", 1, false).status().code(), Code::kReadOnly);
    EXPECT_EQ(state_on_media(), format::kStateNeedsCheck);
    // Not marked clean, and the next read-write mount is refused until fsck.
    EXPECT_FALSE(fs_->unmount().is_ok());
    auto image = dram()->image();
    fs_.reset();
    auto again = Filesystem::mount(RegionDram::from_image(image), {});
    ASSERT_FALSE(again.is_ok());
    EXPECT_NE(again.status().message().find("needing a check"), std::string::npos)
        << again.status().to_string();
  }

  const std::string data_ = std::string(3 * format::kBlockSize + 17, 'L');
  Hold hold_;
  Bytes image_;
  Geometry geo_;
  Ino deep_dir_ = 0, leaf_ = 0, other_ = 0;
};

TEST_F(BackgroundVerifyTest, DeepPathIsServedWhileTheVerifierIsHeldBack) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  ASSERT_NO_FATAL_FAILURE(mount_held());
  auto leaf = walk({"a", "b", "c", "d", "leaf"});
  ASSERT_TRUE(leaf.is_ok()) << leaf.status().to_string();
  EXPECT_EQ(leaf->ino, leaf_);
  EXPECT_EQ(leaf->size, data_.size());
  ASSERT_TRUE(fs_->getattr(leaf_).is_ok());
  ASSERT_TRUE(fs_->open(leaf_, O_RDONLY).is_ok());
  EXPECT_TRUE(read_all(leaf_) == data_);
  fs_->release(leaf_);
  std::vector<std::string> names;
  ASSERT_TRUE(fs_->readdir(deep_dir_, 0, [&](const DirEntry& e) {
                   names.emplace_back(e.name);
                   return true;
                 }).is_ok());
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "leaf", "other"}));
  // ".." of a directory looked up by name is known before the verifier runs.
  auto up = fs_->lookup(deep_dir_, "..");
  ASSERT_TRUE(up.is_ok()) << up.status().to_string();
  EXPECT_EQ(up->ino, walk({"a", "b", "c"})->ino);
  hold_.release();
  const StatFs counts = fs_->statfs();  // root, 4 directories, 2 files
  EXPECT_EQ(counts.inodes - counts.free_inodes, 7u);
}

TEST_F(BackgroundVerifyTest, CreateAndAllocatingWriteWaitForTheVerifier) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  ASSERT_NO_FATAL_FAILURE(mount_held());
  std::atomic<bool> finished{false};
  Result<Attr> made = Status(Code::kInvalid, "not run");
  std::thread creator([&] {
    made = fs_->create(deep_dir_, "new", 0644, O_RDWR, user());
    finished = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(finished.load()) << "a create ran before the image was verified";
  hold_.release();
  creator.join();
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  EXPECT_NE(made->ino, leaf_);
  EXPECT_NE(made->ino, other_);
  const std::string fresh(2 * format::kBlockSize, 'n');
  write_str(made->ino, 0, fresh);
  fs_->release(made->ino);
  EXPECT_TRUE(read_all(leaf_) == data_) << "the new file took the old one's blocks";
  ASSERT_TRUE(fs_->unmount().is_ok());
  auto image = dram()->image();
  fs_.reset();
  owned_ = RegionDram::from_image(std::move(image));
  ASSERT_NO_FATAL_FAILURE(mount_region());  // the synchronous checks pass
  EXPECT_TRUE(read_all(made->ino) == fresh);
  EXPECT_TRUE(read_all(leaf_) == data_);
}

TEST_F(BackgroundVerifyTest, DamagedInodeSlotAnswersEioAndTurnsTheMountReadOnly) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(leaf_) + 40);  // the size field: only the CRC tells
  ASSERT_NO_FATAL_FAILURE(mount_held());
  // Looked up before the verifier gets to it: refused, never served.
  auto leaf = walk({"a", "b", "c", "d", "leaf"});
  ASSERT_FALSE(leaf.is_ok());
  EXPECT_EQ(leaf.status().code(), Code::kIoError) << leaf.status().to_string();
  EXPECT_EQ(fs_->getattr(leaf_).status().code(), Code::kIoError);
  auto other = walk({"a", "b", "c", "d", "other"});
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  hold_.release();
  ASSERT_NO_FATAL_FAILURE(expect_read_only_after_damage());
}

TEST_F(BackgroundVerifyTest, DamagedExtentBlockAnswersEioAndTurnsTheMountReadOnly) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  // A sparse file: one extent per written block, more than fit in the slot.
  Attr sparse = make_file(deep_dir_, "sparse");
  for (int i = 0; i < 40; i += 2) write_str(sparse.ino, uint64_t(i) * format::kBlockSize, "z");
  fs_->release(sparse.ino);
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  const uint64_t overflow = inode(sparse.ino).extent_block.get();
  ASSERT_NE(overflow, 0u);
  flip(overflow * format::kBlockSize + 100);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  hold_.release();
  (void)fs_->statfs();
  EXPECT_EQ(fs_->getattr(sparse.ino).status().code(), Code::kIoError);
  EXPECT_EQ(fs_->lookup(deep_dir_, "sparse").status().code(), Code::kIoError);
  std::string buf(16, '\0');
  EXPECT_EQ(fs_->read_copy(sparse.ino, 0, buf.data(), buf.size()).status().code(),
            Code::kIoError);
  EXPECT_TRUE(read_all(leaf_) == data_);  // the rest is still served
  ASSERT_NO_FATAL_FAILURE(expect_read_only_after_damage());
}

TEST_F(BackgroundVerifyTest, DamagedDirectoryBlockTurnsTheMountReadOnly) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  const uint64_t dir_block = inode(deep_dir_).u.extents[0].region_block.get();
  flip(dir_block * format::kBlockSize + 200);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  hold_.release();
  (void)fs_->statfs();
  auto leaf = fs_->lookup(deep_dir_, "leaf");
  ASSERT_FALSE(leaf.is_ok()) << "served a name from a damaged directory block";
  EXPECT_TRUE(leaf.status().code() == Code::kBadCrc || leaf.status().code() == Code::kCorruption)
      << leaf.status().to_string();
  ASSERT_NO_FATAL_FAILURE(expect_read_only_after_damage());
}

TEST_F(BackgroundVerifyTest, BitmapMissingAReferencedBlockTurnsTheMountReadOnly) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  const uint64_t block = inode(leaf_).u.extents[0].region_block.get() + 1;
  const uint64_t bit = block - geo_.data_start;
  image_[geo_.bitmap_start * format::kBlockSize + bit / 8] &=
      ~std::byte{static_cast<unsigned char>(1u << (bit % 8))};
  ASSERT_NO_FATAL_FAILURE(mount_held());
  // A create waiting for the verifier is refused, never handed that block.
  Result<Attr> made = Status(Code::kInvalid, "not run");
  std::thread creator([&] { made = fs_->create(kRootIno, "waiting", 0644, O_RDWR, user()); });
  std::this_thread::sleep_for(50ms);
  hold_.release();
  creator.join();
  EXPECT_EQ(made.status().code(), Code::kReadOnly) << made.status().to_string();
  EXPECT_TRUE(read_all(leaf_) == data_);
  ASSERT_NO_FATAL_FAILURE(expect_read_only_after_damage());
}

// After damage nothing more is written: not even a direct-mapping pin of
// blocks a file already owns (every free is refused, so it protects nothing).
TEST_F(BackgroundVerifyTest, NoPinIsWrittenAfterDamage) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(other_) + 40);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  hold_.release();
  (void)fs_->statfs();
  const uint64_t block = inode(leaf_).u.extents[0].region_block.get();
  const Holder holder{4242, 7};
  ASSERT_TRUE(fs_->pin_pieces(holder, leaf_,
                              {{0, block * format::kBlockSize, format::kBlockSize}})
                  .is_ok());
  EXPECT_FALSE(fs_->unmount().is_ok());
  auto image = dram()->image();
  fs_.reset();
  MountOptions ro;
  ro.read_only = true;  // stamped: read-only until fsck
  ro.holder_alive = [](uint32_t, uint64_t) { return true; };
  auto again = Filesystem::mount(RegionDram::from_image(image), ro);
  ASSERT_TRUE(again.is_ok() || again.status().code() == Code::kBadCrc)
      << again.status().to_string();
  // The synchronous read-only mount refuses the damaged slot; the holder
  // table is read before, by the allocator: look at it through a mount of
  // the image with the slot repaired.
  if (!again.is_ok()) {
    auto fixed = image;
    fixed[slot_offset(other_) + 40] ^= std::byte{0x5a};
    again = Filesystem::mount(RegionDram::from_image(fixed), ro);
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  }
  EXPECT_TRUE((*again)->restored_holders().empty()) << "a pin was written after the damage";
}

TEST_F(BackgroundVerifyTest, UnmountWhileTheVerifierRunsIsClean) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  ASSERT_NO_FATAL_FAILURE(mount_held());
  ASSERT_TRUE(walk({"a", "b", "c", "d", "leaf"}).is_ok());
  Result<Attr> made = Status(Code::kInvalid, "not run");
  std::thread creator([&] { made = fs_->create(kRootIno, "late", 0644, O_RDWR, user()); });
  std::atomic<bool> unmounted{false};
  Status result;
  std::thread unmounter([&] {
    result = fs_->unmount();
    unmounted = true;
  });
  std::this_thread::sleep_for(100ms);
  hold_.release();  // the verifier starts, sees the unmount, stops
  unmounter.join();
  creator.join();
  EXPECT_TRUE(result.is_ok()) << result.to_string();
  EXPECT_EQ(made.status().code(), Code::kReadOnly) << made.status().to_string();
  EXPECT_EQ(state_on_media(), format::kStateClean);
  auto image = dram()->image();
  fs_.reset();
  owned_ = RegionDram::from_image(std::move(image));
  ASSERT_NO_FATAL_FAILURE(mount_region());
  EXPECT_TRUE(read_all(leaf_) == data_);
  EXPECT_EQ(fs_->lookup(kRootIno, "late").status().code(), Code::kNotFound);
}

// An orphan (unlinked while open when the daemon died) is freed by the
// verifier, after the checks, as the synchronous mount frees it.
TEST_F(BackgroundVerifyTest, OrphansAreFreedByTheVerifier) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  Attr gone = make_file(kRootIno, "gone");
  write_str(gone.ino, 0, std::string(format::kBlockSize * 4, 'g'));
  ASSERT_TRUE(fs_->unlink(kRootIno, "gone").is_ok());
  const uint64_t free_before = fs_->statfs().free_blocks;
  image_ = dram()->crash(RegionDram::CrashMode::kDrop, 0);
  fs_.reset();
  auto sb = read_superblock(*RegionDram::from_image(image_));
  ASSERT_TRUE(sb.is_ok());
  geo_ = sb->geometry;
  ASSERT_NO_FATAL_FAILURE(mount_held());
  hold_.release();
  const StatFs after = fs_->statfs();
  EXPECT_EQ(after.free_blocks, free_before + 4);
  EXPECT_EQ(fs_->getattr(gone.ino).status().code(), Code::kStale);
}

// Damage the verifier finds while an unmount is already waiting for it is
// still damage: logged, stamped, not marked clean. (The unmount asks the
// thread to stop before joining it; the damage here is returned by the
// inode pass, which a small table finishes without looking at the request.)
TEST_F(BackgroundVerifyTest, DamageFoundWhileAnUnmountWaitsIsNotMarkedClean) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(other_) + 40);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  Status result;
  std::thread unmounter([&] { result = fs_->unmount(); });
  std::this_thread::sleep_for(100ms);  // the unmount has asked the thread to stop
  hold_.release();
  unmounter.join();
  EXPECT_EQ(result.code(), Code::kCorruption) << result.to_string();
  EXPECT_EQ(state_on_media(), format::kStateNeedsCheck);
}

// A read-only mount writes nothing, but damage its verifier found still
// fails the unmount (the daemon exits 1), as the synchronous mount refuses.
TEST_F(BackgroundVerifyTest, ReadOnlyMountReportsDamageAtUnmount) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(other_) + 40);
  MountOptions ro;
  ro.read_only = true;
  ASSERT_NO_FATAL_FAILURE(mount_held(ro));
  hold_.release();
  (void)fs_->statfs();
  EXPECT_TRUE(read_all(leaf_) == data_);
  const Status result = fs_->unmount();
  EXPECT_EQ(result.code(), Code::kCorruption) << result.to_string();
  EXPECT_NE(result.message().find("inode " + std::to_string(other_)), std::string::npos)
      << result.to_string();
}

// A read while the verifier runs changes atime in DRAM only. Once damage is
// found it can never be written: fsync says so (EROFS, as ext4 once an
// error made it read-only), and reads no longer change atime at all.
TEST_F(BackgroundVerifyTest, FsyncAfterDamageReportsTimesItCannotWrite) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  Attr victim = make_file(kRootIno, "victim");
  fs_->release(victim.ino);
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(victim.ino) + 40);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  ASSERT_TRUE(walk({"a", "b", "c", "d", "leaf"}).is_ok());
  ASSERT_TRUE(walk({"a", "b", "c", "d", "other"}).is_ok());
  auto atime_of = [&](Ino ino) {
    const Attr a = *fs_->getattr(ino);
    return int64_t{a.atime.tv_sec} * 1000000000 + a.atime.tv_nsec;
  };
  const int64_t leaf_atime = atime_of(leaf_);
  EXPECT_TRUE(read_all(leaf_) == data_);  // relatime: due, mtime is later
  ASSERT_NE(atime_of(leaf_), leaf_atime) << "the read changed no atime";
  hold_.release();
  (void)fs_->statfs();
  const Status synced = fs_->fsync(leaf_, false);
  EXPECT_EQ(synced.code(), Code::kReadOnly) << synced.to_string();
  EXPECT_TRUE(fs_->fsync(leaf_, true).is_ok()) << "fdatasync: the data is durable";
  const int64_t other_atime = atime_of(other_);
  EXPECT_EQ(read_all(other_), "other file");
  EXPECT_EQ(atime_of(other_), other_atime) << "atime changed on a mount read-only for good";
  EXPECT_TRUE(fs_->fsync(other_, false).is_ok()) << "nothing of it was lost";
}

// A writable direct mapping is a write: refused once the verifier found
// damage, even over blocks the file owns (no allocation); a read-only one
// is still granted.
TEST_F(BackgroundVerifyTest, WritableMappingIsRefusedAfterDamage) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(other_) + 40);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  hold_.release();
  auto lock = fs_->lock_layout(leaf_);
  ASSERT_TRUE(lock.is_ok()) << lock.status().to_string();
  auto writable = fs_->layout_extents(**lock, 0, format::kBlockSize, kLayoutWritable);
  ASSERT_FALSE(writable.is_ok()) << "a writable mapping granted on a read-only mount";
  EXPECT_EQ(writable.status().code(), Code::kReadOnly) << writable.status().to_string();
  auto readable = fs_->layout_extents(**lock, 0, format::kBlockSize, 0);
  EXPECT_TRUE(readable.is_ok()) << readable.status().to_string();
}

// A name pointing at an inode with link count 0 is damage (the verifier's
// link-count check refuses it): a lookup before the verifier gets there
// refuses it too, rather than telling the kernel a named file has no links.
TEST_F(BackgroundVerifyTest, NamedInodeWithNoLinksIsRefusedByLookup) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  format::DiskInode disk = inode(leaf_);
  disk.nlink.set(0);
  seal_inode_crc(disk);
  std::memcpy(image_.data() + slot_offset(leaf_), &disk, sizeof(disk));
  ASSERT_NO_FATAL_FAILURE(mount_held());
  auto leaf = walk({"a", "b", "c", "d", "leaf"});
  ASSERT_FALSE(leaf.is_ok()) << "served a named inode with link count 0";
  EXPECT_EQ(leaf.status().code(), Code::kCorruption) << leaf.status().to_string();
  EXPECT_TRUE(walk({"a", "b", "c", "d", "other"}).is_ok());
  hold_.release();
  ASSERT_NO_FATAL_FAILURE(expect_read_only_after_damage());
}

// open(2) for writing before the verifier is done waits for it (before the
// inode lock, which the verifier takes) and is then refused when it found
// damage: no descriptor open for writing exists on a damaged image, so no
// write(2) and no writable direct mapping can come through one. Opening for
// reading is served at once.
TEST_F(BackgroundVerifyTest, OpenForWritingWaitsAndIsRefusedAfterDamage) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  flip(slot_offset(other_) + 40);
  ASSERT_NO_FATAL_FAILURE(mount_held());
  ASSERT_TRUE(walk({"a", "b", "c", "d", "leaf"}).is_ok());
  ASSERT_TRUE(fs_->open(leaf_, O_RDONLY).is_ok());
  fs_->release(leaf_);
  std::atomic<bool> finished{false};
  Status opened = Status(Code::kInvalid, "not run");
  std::thread opener([&] {
    opened = fs_->open(leaf_, O_RDWR);
    finished = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(finished.load()) << "opened for writing before the image was verified";
  hold_.release();
  opener.join();
  EXPECT_EQ(opened.code(), Code::kReadOnly) << opened.to_string();
  EXPECT_EQ(fs_->open(leaf_, O_WRONLY | O_TRUNC).code(), Code::kReadOnly);
  EXPECT_TRUE(read_all(leaf_) == data_);
}

// Directory entries the daemon could not have written, each in a block
// whose crc is resealed (a structurally valid lie): a synchronous mount
// refuses each; with the verifier held back, none is served, and the
// verifier then turns the mount read-only. Names with '/', ".", ".." or a
// NUL, and names listed twice, used to be served (adversarial campaign of
// 2026-12-07): a readdir handed the kernel "a/b" and two "a1".
TEST_F(BackgroundVerifyTest, DirectoryEntriesTheDaemonCouldNotHaveWrittenAreNotServed) {
  ASSERT_NO_FATAL_FAILURE(make_tree());
  Attr fifo_like = make_file(deep_dir_, "typed");
  fs_->release(fifo_like.ino);
  for (const char* name : {"a_b", "xy", "q", "a1", "b1"}) {
    Attr f = make_file(deep_dir_, name);
    fs_->release(f.ino);
  }
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  const Bytes pristine = image_;
  const uint64_t block_at = inode(deep_dir_).u.extents[0].region_block.get() * format::kBlockSize;
  struct Damage {
    const char* what;      // expected in the refusal
    const char* entry;     // the entry edited
    std::string new_name;  // same length; empty: keep the name
    uint64_t new_ino;      // 0: keep
    uint8_t new_type;      // 0: keep
    bool readdir_refused;  // refused before the verifier (else its to find)
  };
  const std::vector<Damage> damages = {
      {"invalid name", "a_b", "a/b", 0, 0, true},
      {"invalid name", "xy", "..", 0, 0, true},
      {"invalid name", "q", ".", 0, 0, true},
      {"invalid name", "a_b", std::string("a\0b", 3), 0, 0, true},
      {"names the root", "q", "", kRootIno, DT_DIR, true},
      {"past the table", "q", "", geo_.inode_count + 1, 0, true},
      {"unknown type", "q", "", 0, 3, true},
      {"has type", "typed", "", 0, DT_FIFO, false},
      {"a second entry of this name", "b1", "a1", 0, 0, false},
  };
  for (const Damage& d : damages) {
    SCOPED_TRACE(std::string(d.what) + " (" + d.entry + ")");
    image_ = pristine;
    std::byte* block = image_.data() + block_at;
    bool edited = false;
    dir_block_for_each(block, [&](const DirBlockEntry& e) {
      if (e.name != d.entry) return;
      if (!d.new_name.empty()) {
        std::memcpy(block + e.offset + sizeof(format::DiskDirEntry), d.new_name.data(),
                    d.new_name.size());
      }
      dir_block_retarget(block, e.offset, d.new_ino != 0 ? d.new_ino : e.ino,
                         d.new_type != 0 ? d.new_type : e.type);
      edited = true;
    });
    ASSERT_TRUE(edited);
    dir_block_seal(block);

    auto refused = Filesystem::mount(RegionDram::from_image(image_), {});
    ASSERT_FALSE(refused.is_ok()) << "mounted an image with a bad entry";
    EXPECT_EQ(refused.status().code(), Code::kCorruption) << refused.status().to_string();
    EXPECT_NE(refused.status().message().find(d.what), std::string::npos)
        << refused.status().to_string();

    hold_.rearm();
    ASSERT_NO_FATAL_FAILURE(mount_held());
    ASSERT_TRUE(walk({"a", "b", "c", "d"}).is_ok());  // so ".." need not wait
    std::vector<std::string> listed;
    Status listing = fs_->readdir(deep_dir_, 0, [&](const DirEntry& e) {
      listed.emplace_back(e.name);
      return true;
    });
    if (d.readdir_refused) {
      EXPECT_EQ(listing.code(), Code::kCorruption) << listing.to_string();
    }
    // Every lookup in the directory is refused (its index is not built) or,
    // for a retyped entry, the lookup of that entry.
    auto looked = fs_->lookup(deep_dir_, d.entry == std::string("typed") ? "typed" : "other");
    ASSERT_FALSE(looked.is_ok()) << "served a name of a damaged directory";
    EXPECT_EQ(looked.status().code(), Code::kCorruption) << looked.status().to_string();
    hold_.release();
    ASSERT_NO_FATAL_FAILURE(expect_read_only_after_damage());
    fs_.reset();
  }
}

}  // namespace
}  // namespace sealfs::testing_meta
