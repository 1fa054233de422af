// Grants and refusals of direct mappings on a real mount, from a real
// holder process; no stale data through ALLOCATE; coherence between the
// mapping and the FUSE path.
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lease_fixture.h"
#include "pattern.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

class GrantTest : public LeaseFixture {};

constexpr uint64_t kFile = 1 * kMiB;

TEST_F(GrantTest, ReadWriteAndReadOnlyGrantsSeeTheFile) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  MapReply rw = h.map(path("f"), 0, kFile, "rw");
  ASSERT_EQ(rw.rc, 0) << rw.text;
  EXPECT_EQ(rw.length, kFile);
  h.send("check 0 0 " + std::to_string(kFile) + " 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  MapReply ro = h.map(path("f"), 0, kFile, "r", 0, "ro");
  ASSERT_EQ(ro.rc, 0) << ro.text;
  h.send("check 1 4096 8192 1");
  EXPECT_EQ(h.expect("check 1"), "check 1 ok");
}

TEST_F(GrantTest, WritableMappingOfReadOnlyDescriptorIsEacces) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, kFile, "rw", 0, "ro");
  EXPECT_EQ(r.rc, -EACCES) << r.text;
  EXPECT_NE(r.text.find("exceeds the descriptor's open mode"), std::string::npos) << r.text;
}

// A root daemon without dax_group trusts root only: another user, with a
// descriptor it may legitimately open, still gets EACCES.
TEST_F(GrantTest, UntrustedUserIsEacces) {
  auto user = test_user();
  ASSERT_TRUE(user.has_value());
  ASSERT_EQ(chmod(dir().c_str(), 0755), 0);  // let the user reach the mountpoint
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "allow_other"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(false, user);
  MapReply r = h.map(path("f"), 0, kFile, "rw");
  EXPECT_EQ(r.rc, -EACCES) << r.text;
  EXPECT_NE(r.text.find("not trusted"), std::string::npos) << r.text;
  // The same user keeps the ordinary file API.
  std::string out;
  EXPECT_EQ(run_command({"cmp", "-s", path("f"), path("f")}, &out, user->uid, user->gid), 0)
      << out;
}

TEST_F(GrantTest, DaxGroupMemberIsGranted) {
  auto user = test_user();
  ASSERT_TRUE(user.has_value());
  struct group* g = getgrgid(user->gid);
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(chmod(dir().c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(mount_with(2, std::string("allow_other,dax_group=") + g->gr_name));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(false, user);
  MapReply r = h.map(path("f"), 0, kFile, "rw");
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("store 0 8192 4096 9");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 4096, 9, 8192));
  EXPECT_TRUE(file_has_pattern("f", 8192, 1, 0));
}

TEST_F(GrantTest, HoleIsEnodata) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 0, 0));
  ASSERT_EQ(truncate(path("f").c_str(), kFile), 0) << std::strerror(errno);
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, kFile);
  EXPECT_EQ(r.rc, -ENODATA) << r.text;
  EXPECT_NE(r.text.find("hole"), std::string::npos) << r.text;
  // A partly written file: the hole after the data is refused as well.
  ASSERT_NO_FATAL_FAILURE(make_file("g", 64 * kKiB, 2));
  ASSERT_EQ(truncate(path("g").c_str(), kFile), 0) << std::strerror(errno);
  r = h.map(path("g"), 0, kFile);
  EXPECT_EQ(r.rc, -ENODATA) << r.text;
  r = h.map(path("g"), 0, 64 * kKiB);
  EXPECT_EQ(r.rc, 0) << r.text;
}

TEST_F(GrantTest, UnwrittenExtentIsEnodata) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 0, 0));
  int fd = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, static_cast<off_t>(kFile)), 0) << std::strerror(errno);
  close(fd);
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, kFile);
  EXPECT_EQ(r.rc, -ENODATA) << r.text;
  EXPECT_NE(r.text.find("unwritten"), std::string::npos) << r.text;
}

TEST_F(GrantTest, PastEndOfFileIsErange) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, 2 * kFile);
  EXPECT_EQ(r.rc, -ERANGE) << r.text;
  r = h.map(path("f"), 2 * kFile, 4096);
  EXPECT_EQ(r.rc, -ERANGE) << r.text;
  // A partial last block is mappable whole.
  ASSERT_NO_FATAL_FAILURE(make_file("g", 5000, 2));
  r = h.map(path("g"), 0, 8192);
  EXPECT_EQ(r.rc, 0) << r.text;
  r = h.map(path("g"), 0, 8192 + 4096);
  EXPECT_EQ(r.rc, -ERANGE) << r.text;
}

TEST_F(GrantTest, MisalignedOffsetIsEinval) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 1000, 4096);
  EXPECT_EQ(r.rc, -EINVAL) << r.text;
  r = h.map(path("f"), 4096 + 512, 4096);
  EXPECT_EQ(r.rc, -EINVAL) << r.text;
}

// With a 2 MiB device alignment, a small file packed after another one has
// extents off the alignment: refused, unless RELOCATE moves it (and keeps
// its bytes).
TEST_F(GrantTest, MisalignedExtentsNeedRelocate) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(make_file("pad", 12 * kKiB, 7));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 256 * kKiB, 1));
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, 256 * kKiB);
  ASSERT_EQ(r.rc, -EINVAL) << r.text;
  EXPECT_NE(r.text.find("aligned"), std::string::npos) << r.text;
  r = h.map(path("f"), 0, 256 * kKiB, "rw", SEALFS_MAP_RELOCATE);
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("check 0 0 262144 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  h.send("store 0 0 4096 5");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 4096, 5, 0));
  EXPECT_TRUE(file_has_pattern("f", 252 * kKiB, 1, 4096));
  EXPECT_TRUE(file_has_pattern("pad", 12 * kKiB, 7));
  // Relocated: a plain map of it is granted now.
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  r = h.map(path("f"), 0, 256 * kKiB);
  EXPECT_EQ(r.rc, 0) << r.text;
}

// ALLOCATE and RELOCATE change a file's blocks, as fallocate does: a
// descriptor open only for reading (anyone who may read the file) cannot
// ask for them, even for a read-only mapping. Before, a trusted reader
// could fill another user's sparse file or move it, breaking its holders.
TEST_F(GrantTest, AllocateAndRelocateNeedADescriptorOpenForWriting) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(make_file("pad", 12 * kKiB, 7));
  ASSERT_NO_FATAL_FAILURE(make_file("misaligned", 256 * kKiB, 1));
  ASSERT_NO_FATAL_FAILURE(make_file("sparse", 0, 0));
  ASSERT_EQ(truncate(path("sparse").c_str(), 2 * kMiB), 0);
  struct stat before {};
  ASSERT_EQ(stat(path("sparse").c_str(), &before), 0);
  HolderProcess& h = holder();
  MapReply r = h.map(path("sparse"), 0, 2 * kMiB, "r", SEALFS_MAP_ALLOCATE, "ro");
  EXPECT_EQ(r.rc, -EACCES) << r.text;
  r = h.map(path("misaligned"), 0, 256 * kKiB, "r", SEALFS_MAP_RELOCATE, "ro");
  EXPECT_EQ(r.rc, -EACCES) << r.text;
  struct stat after {};
  ASSERT_EQ(stat(path("sparse").c_str(), &after), 0);
  EXPECT_EQ(after.st_blocks, before.st_blocks) << "a reader's ALLOCATE filled the holes";
  // Through a descriptor open for both, a read-only mapping may ask.
  r = h.map(path("misaligned"), 0, 256 * kKiB, "r", SEALFS_MAP_RELOCATE, "rw");
  EXPECT_EQ(r.rc, 0) << r.text;
  EXPECT_TRUE(file_has_pattern("misaligned", 256 * kKiB, 1));
}

TEST_F(GrantTest, AllocateOnSparseFileReadsZeros) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 0, 0));
  ASSERT_EQ(truncate(path("f").c_str(), 2 * kMiB), 0);
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, 2 * kMiB, "rw", SEALFS_MAP_ALLOCATE);
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("zeros 0");
  EXPECT_EQ(h.expect("zeros 0"), "zeros 0 ok");
  struct stat st {};
  ASSERT_EQ(stat(path("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(2 * kMiB));
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 2 * kMiB) << "ALLOCATE allocated nothing";
  EXPECT_TRUE(file_is_zero("f", 0, 2 * kMiB));
  h.send("store 0 1048576 65536 4");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 64 * kKiB, 4, kMiB));
  EXPECT_TRUE(file_is_zero("f", 0, kMiB));
}

// ALLOCATE fills the holes before the answer is decided: a request refused
// afterwards (here: the file's first block is not aligned) has still
// changed the file's block count, and stat must show it although the
// kernel keeps attributes for a day.
TEST_F(GrantTest, RefusedAllocateStillShowsItsBlocks) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(make_file("pad", 12 * kKiB, 7));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 1, 1));
  ASSERT_EQ(truncate(path("f").c_str(), 2 * kMiB), 0);
  struct stat before {};
  ASSERT_EQ(stat(path("f").c_str(), &before), 0);
  ASSERT_LT(static_cast<uint64_t>(before.st_blocks) * 512, kMiB);
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, 2 * kMiB, "rw", SEALFS_MAP_ALLOCATE);
  ASSERT_EQ(r.rc, -EINVAL) << r.text;
  struct stat after {};
  ASSERT_EQ(stat(path("f").c_str(), &after), 0);
  EXPECT_GE(static_cast<uint64_t>(after.st_blocks) * 512, 2 * kMiB - 4 * kKiB)
      << "the blocks ALLOCATE added are not shown";
}

// The only free space is the blocks of a deleted file full of a secret:
// whatever reuses them (ALLOCATE on a hole, fallocate, ALLOCATE of
// unwritten extents, extension) must show zeros, never the secret.
TEST_F(GrantTest, NoStaleDataFromFreedBlocks) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  constexpr uint64_t kSecret = 4 * kMiB;
  constexpr uint64_t kSecretSeed = 666;
  ASSERT_NO_FATAL_FAILURE(make_file("secret", kSecret, kSecretSeed));
  uint64_t filled = fill_filesystem("filler", 3);
  ASSERT_GT(filled, 0u);
  ASSERT_LT(free_blocks(), 64u) << "the filesystem is not full";
  ASSERT_EQ(unlink(path("secret").c_str()), 0);
  ASSERT_TRUE(wait_free_blocks(kSecret / 4096, 10s)) << free_blocks();

  HolderProcess& h = holder();
  // A hole, allocated for the mapping.
  ASSERT_NO_FATAL_FAILURE(make_file("hole", 0, 0));
  ASSERT_EQ(truncate(path("hole").c_str(), kMiB), 0);
  MapReply r = h.map(path("hole"), 0, kMiB, "rw", SEALFS_MAP_ALLOCATE);
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("zeros 0");
  EXPECT_EQ(h.expect("zeros 0"), "zeros 0 ok");
  EXPECT_TRUE(file_is_zero("hole", 0, kMiB));

  // Unwritten extents: zeros through read(2), refused without ALLOCATE,
  // zeros through the mapping with it.
  ASSERT_NO_FATAL_FAILURE(make_file("unwritten", 0, 0));
  int fd = open(path("unwritten").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, static_cast<off_t>(kMiB)), 0) << std::strerror(errno);
  close(fd);
  EXPECT_TRUE(file_is_zero("unwritten", 0, kMiB));
  r = h.map(path("unwritten"), 0, kMiB);
  EXPECT_EQ(r.rc, -ENODATA) << r.text;
  r = h.map(path("unwritten"), 0, kMiB, "rw", SEALFS_MAP_ALLOCATE);
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("zeros " + std::to_string(r.index));
  EXPECT_EQ(h.expect("zeros"), "zeros " + std::to_string(r.index) + " ok");

  // A file extended past its data, then allocated for a mapping.
  ASSERT_NO_FATAL_FAILURE(make_file("extended", 4096, 8));
  ASSERT_EQ(truncate(path("extended").c_str(), kMiB), 0);
  EXPECT_TRUE(file_is_zero("extended", 4096, kMiB - 4096));
  r = h.map(path("extended"), 0, kMiB, "rw", SEALFS_MAP_ALLOCATE);
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("check " + std::to_string(r.index) + " 0 4096 8");
  EXPECT_EQ(h.expect("check"), "check " + std::to_string(r.index) + " ok");
  h.send("zeros " + std::to_string(r.index) + " 4096 " + std::to_string(kMiB - 4096));
  EXPECT_EQ(h.expect("zeros"), "zeros " + std::to_string(r.index) + " ok");
  EXPECT_TRUE(file_is_zero("extended", 4096, kMiB - 4096));

  // The new files took the secret's blocks (nothing else was free).
  EXPECT_LT(free_blocks(), kSecret / 4096);
  EXPECT_TRUE(file_has_pattern("filler", filled, 3));
}

TEST_F(GrantTest, DirectStoresAndFusePathAreCoherent) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, kFile);
  ASSERT_EQ(r.rc, 0) << r.text;
  // Stores through the mapping, then read(2) through FUSE.
  h.send("store 0 4096 8192 7");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 8192, 7, 4096));
  EXPECT_TRUE(file_has_pattern("f", 4096, 1, 0));
  EXPECT_TRUE(file_has_pattern("f", kFile - 12288, 1, 12288));
  // Again at the same place: no stale page cache copy of the first stores.
  h.send("store 0 4096 8192 8");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 8192, 8, 4096));

  // pwrite(2) through FUSE, then loads through the mapping.
  int fd = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> buf(16 * kKiB);
  fill_lease_pattern(buf.data(), buf.size(), 9, 65536);
  ASSERT_EQ(pwrite(fd, buf.data(), buf.size(), 65536), static_cast<ssize_t>(buf.size()));
  h.send("check 0 65536 16384 9");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  // An unaligned write across a block boundary.
  fill_lease_pattern(buf.data(), 100, 10, 8190);
  ASSERT_EQ(pwrite(fd, buf.data(), 100, 8190), 100);
  h.send("check 0 8190 100 10");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  close(fd);
  h.sync();
  EXPECT_EQ(h.count("break "), 0) << h.transcript();
}


// Stores through a writable mapping reach no write(2), so the daemon moves
// the file's mtime and ctime for them, as POSIX asks of msync: at an fsync
// of the file while the mapping is held, and when the lease ends (release,
// or the holder's exit). A read-only lease moves nothing.
TEST_F(GrantTest, WritableMappingsMoveMtimeAtFsyncAndWhenTheyEnd) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  const std::string f = path("f");
  auto age = [&] {  // mtime one hour back
    struct timespec times[2] = {{0, UTIME_OMIT}, {time(nullptr) - 3600, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), times, 0), 0) << strerror(errno);
  };
  auto moved = [&] {  // mtime and ctime within the last minute, polled for 5 s
    for (int i = 0; i < 100; ++i) {
      struct stat st;
      if (stat(f.c_str(), &st) == 0 && st.st_mtime > time(nullptr) - 60 &&
          st.st_ctime > time(nullptr) - 60) {
        return true;
      }
      usleep(50'000);
    }
    return false;
  };
  auto old = [&] {
    struct stat st;
    return stat(f.c_str(), &st) == 0 && st.st_mtime < time(nullptr) - 3000;
  };
  HolderProcess& h = holder();
  // fsync while a writable mapping is held.
  ASSERT_NO_FATAL_FAILURE(age());
  ASSERT_EQ(h.map(f, 0, kFile).rc, 0);
  h.send("store 0 0 4096 5");
  ASSERT_TRUE(h.expect("stored 0"));
  ASSERT_TRUE(old());
  const int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fdatasync(fd), 0);
  EXPECT_TRUE(moved()) << "fdatasync with a writable mapping held";
  // The release of the lease.
  ASSERT_NO_FATAL_FAILURE(age());
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  EXPECT_TRUE(moved()) << "release of a writable lease";
  // A read-only lease, and an fsync while it is held: nothing moves.
  ASSERT_NO_FATAL_FAILURE(age());
  ASSERT_EQ(h.map(f, 0, kFile, "r", 0, "ro").rc, 0);
  ASSERT_EQ(fdatasync(fd), 0);
  h.send("unmap 1");
  ASSERT_TRUE(h.expect("unmapped 1 0"));
  ASSERT_TRUE(h.sync());
  usleep(200'000);
  EXPECT_TRUE(old()) << "a read-only lease moved mtime";
  // The holder's exit with a writable lease.
  ASSERT_EQ(h.map(f, 0, kFile).rc, 0);
  h.send("exit");
  ASSERT_TRUE(h.wait_exit(10s).has_value());
  EXPECT_TRUE(moved()) << "exit of the holder of a writable lease";
  close(fd);
}

// A read-only mount still serves read-only direct mappings; a writable one
// cannot be asked for (the kernel refuses the O_RDWR open with EROFS).
TEST_F(GrantTest, ReadOnlyMountGrantsReadOnlyMappings) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(unmount());
  config().options += ",ro";
  ASSERT_NO_FATAL_FAILURE(mount());
  HolderProcess& h = holder();
  MapReply ro = h.map(path("f"), 0, kFile, "r", 0, "ro");
  ASSERT_EQ(ro.rc, 0) << ro.text;
  h.send("check 0 0 " + std::to_string(kFile) + " 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  int fd = open(path("f").c_str(), O_RDWR);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS);
}

// chattr +i / +a (docs/protocol.md, "Sealed files"): a writable mapping
// held when the flag is set is broken first; after it, writable grants are
// refused with EPERM by the engine (an append-only file can still be
// opened O_RDWR|O_APPEND, so its refusal is the engine's own), while
// read-only grants of an immutable file are granted and never broken for
// its layout (whose changes are all refused).
TEST_F(GrantTest, ImmutableFileBreaksWritableGrantThenGrantsReadOnly) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(/*coop=*/true);
  MapReply rw = h.map(path("f"), 0, kFile, "rw");
  ASSERT_EQ(rw.rc, 0) << rw.text;
  std::string out;
  ASSERT_EQ(run_command({"chattr", "+i", path("f")}, &out), 0) << out;
  auto line = h.expect("break ", 1s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_NE(line->find(" reason " + std::to_string(SEALFS_BREAK_OTHER) + " "), std::string::npos)
      << *line;
  ASSERT_TRUE(h.expect("released ", 1s)) << h.transcript();

  MapReply again = h.map(path("f"), 0, kFile, "rw");
  EXPECT_EQ(again.rc, -EPERM) << again.text;  // open(O_RDWR) of an immutable file
  MapReply ro = h.map(path("f"), 0, kFile, "r", 0, "ro");
  ASSERT_EQ(ro.rc, 0) << ro.text;
  // Every layout change is refused without touching the read-only lease.
  EXPECT_EQ(truncate(path("f").c_str(), 0), -1);
  EXPECT_EQ(errno, EPERM);
  h.send("check " + std::to_string(ro.index) + " 0 " + std::to_string(kFile) + " 1");
  EXPECT_EQ(h.expect("check " + std::to_string(ro.index)),
            "check " + std::to_string(ro.index) + " ok");
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  ASSERT_EQ(run_command({"chattr", "-i", path("f")}, &out), 0) << out;
}

TEST_F(GrantTest, AppendOnlyFileRefusesWritableGrant) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  std::string out;
  ASSERT_EQ(run_command({"chattr", "+a", path("f")}, &out), 0) << out;
  HolderProcess& h = holder();
  MapReply rw = h.map(path("f"), 0, kFile, "rw", 0, "rwa");
  EXPECT_EQ(rw.rc, -EPERM) << rw.text;
  EXPECT_NE(rw.text.find("immutable or append-only"), std::string::npos) << rw.text;
  MapReply ro = h.map(path("f"), 0, kFile, "r", 0, "rwa");
  EXPECT_EQ(ro.rc, 0) << ro.text;
  ASSERT_EQ(run_command({"chattr", "-a", path("f")}, &out), 0) << out;
}

// A layout lease (no mapping) on a real mount: the extents tile the range
// and lie in the data area, and a truncate breaks it like a mapping lease
// (ev.map == NULL) and waits for the release. Held by this test process.
TEST_F(GrantTest, LayoutLeaseIsBrokenByTruncateAndReleased) {
  ASSERT_NO_FATAL_FAILURE(mount_with(5));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  int fd = open(path("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  struct sealfs_layout* layout = nullptr;
  ASSERT_EQ(sealfs_layout_lease(fd, 0, kFile, 0, &layout), 0) << sealfs_last_error();
  close(fd);
  sealfs_extent extents[64];
  size_t n = sealfs_layout_extents(layout, extents, 64);
  ASSERT_GE(n, 1u);
  uint64_t covered = 0;
  for (size_t i = 0; i < n && i < 64; ++i) {
    EXPECT_EQ(extents[i].file_offset, covered);
    EXPECT_EQ(extents[i].region_offset % 4096, 0u);
    covered += extents[i].length;
  }
  EXPECT_EQ(covered, kFile);

  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  struct pollfd p {sealfs_break_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "no break for the layout lease";
  sealfs_break_event ev{};
  ASSERT_EQ(sealfs_next_break(&ev), 0);
  EXPECT_EQ(ev.map, nullptr);
  EXPECT_EQ(ev.reason, SEALFS_BREAK_TRUNCATE);
  EXPECT_EQ(ev.lease_id, sealfs_layout_lease_id(layout));
  EXPECT_FALSE(op.done()) << "truncate did not wait for the layout lease";
  ASSERT_EQ(sealfs_layout_release(layout), 0);
  auto r = op.wait(3s);
  ASSERT_TRUE(r) << "truncate still waiting after the release";
  EXPECT_EQ(r->rc, 0);
  EXPECT_LT(r->seconds, 3.0);
  EXPECT_EQ(file_size("f"), 0u);
}

}  // namespace
}  // namespace sealfs::itest
