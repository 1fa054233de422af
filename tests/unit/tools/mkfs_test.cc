// mkfs.sealfs as a user runs it: the built binary (path in $MKFS_SEALFS) on
// files in a temporary directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "media/superblock.h"

namespace sealfs {
namespace {

namespace fsys = std::filesystem;
constexpr uint64_t kMiB = 1ull << 20;

struct Outcome {
  int status = -1;
  std::string out, err;
};

std::string slurp(const fsys::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class MkfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* mkfs = std::getenv("MKFS_SEALFS");
    ASSERT_NE(mkfs, nullptr) << "MKFS_SEALFS must name the built mkfs.sealfs";
    mkfs_ = mkfs;
    char tmpl[] = "/tmp/mkfs_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fsys::remove_all(dir_); }

  Outcome mkfs(const std::vector<std::string>& args) {
    Outcome r;
    const fsys::path out = dir_ / ".out", err = dir_ / ".err";
    pid_t pid = fork();
    if (pid == 0) {
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv{const_cast<char*>(mkfs_.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // A file of `size` bytes of a pattern that looks like no filesystem.
  fsys::path pattern_file(const std::string& name, uint64_t size) {
    fsys::path p = dir_ / name;
    std::ofstream f(p, std::ios::binary);
    std::string block(4096, '\0');
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 23);
    for (uint64_t off = 0; off < size; off += block.size()) f.write(block.data(), block.size());
    return p;
  }

  void poke(const fsys::path& p, uint64_t offset, const void* bytes, size_t len) {
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, bytes, len, static_cast<off_t>(offset)), static_cast<ssize_t>(len));
    ::close(fd);
  }

  Result<Superblock> superblock_of(const fsys::path& p) {
    format::DiskSuperblock d;
    std::ifstream in(p, std::ios::binary);
    in.read(reinterpret_cast<char*>(&d), sizeof(d));
    if (!in) return Status(Code::kIoError, "short read of " + p.string());
    return decode_superblock(d, fsys::file_size(p));
  }

  std::string mkfs_;
  fsys::path dir_;
};

TEST_F(MkfsTest, FormatsASparseOneGiBFileInUnderASecond) {
  const fsys::path img = dir_ / "img";
  auto start = std::chrono::steady_clock::now();
  Outcome r = mkfs({"--size", "1G", img});
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  EXPECT_EQ(fsys::file_size(img), 1ull << 30);
  struct stat st;
  ASSERT_EQ(stat(img.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 64 * kMiB) << "the data area was written";
  for (const char* area : {"superblock", "journal", "holder table", "inode table", "bitmap",
                           "data", "backup superblock", "inodes: 65536", "alignment: 4 KiB",
                           "uuid: ", "offset"}) {
    EXPECT_NE(r.out.find(area), std::string::npos) << area << " missing in:\n" << r.out;
  }
  Result<Superblock> sb = superblock_of(img);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_EQ(sb->geometry.region_size, 1ull << 30);
  EXPECT_EQ(sb->geometry.inode_count, 65536u);
}

TEST_F(MkfsTest, LabelInodesJournalAndAlignmentAreHonoured) {
  const fsys::path img = dir_ / "img";
  Outcome r = mkfs({"--size", "256M", "-L", "scratch", "-N", "1000", "-J", "4M", "--align", "2M",
                img});
  ASSERT_EQ(r.status, 0) << r.err;
  Result<Superblock> sb = superblock_of(img);
  ASSERT_TRUE(sb.is_ok());
  EXPECT_EQ(sb->label, "scratch");
  EXPECT_EQ(sb->geometry.inode_count, 1008u);
  EXPECT_EQ(sb->geometry.journal_blocks, 1024u);
  EXPECT_EQ(sb->geometry.device_alignment, 2 * kMiB);
  EXPECT_EQ(block_offset(sb->geometry.data_start) % (2 * kMiB), 0u);
  EXPECT_NE(r.out.find("label: scratch"), std::string::npos);
  EXPECT_NE(r.out.find("alignment: 2 MiB"), std::string::npos);
}

TEST_F(MkfsTest, QuietPrintsNothing) {
  Outcome r = mkfs({"-q", "--size", "64M", dir_ / "img"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

// The region holds every file's bytes: a file mkfs creates is its owner's
// alone, whatever the umask lets through; an existing one open to all users
// is formatted with a warning.
TEST_F(MkfsTest, CreatesTheRegionReadableByItsOwnerOnly) {
  const mode_t old_umask = umask(022);
  Outcome r = mkfs({"--size", "64M", dir_ / "img"});
  umask(old_umask);
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat st;
  ASSERT_EQ(stat((dir_ / "img").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  fsys::path open_img = pattern_file("open", 64 * kMiB);
  ASSERT_EQ(chmod(open_img.c_str(), 0644), 0);
  Outcome warned = mkfs({open_img});
  ASSERT_EQ(warned.status, 0) << warned.err;
  EXPECT_NE(warned.err.find("accessible to all users (mode 0644)"), std::string::npos)
      << warned.err;
  ASSERT_EQ(chmod(open_img.c_str(), 0600), 0);
  Outcome closed = mkfs({"-f", open_img});
  ASSERT_EQ(closed.status, 0) << closed.err;
  EXPECT_EQ(closed.err.find("accessible to all users"), std::string::npos) << closed.err;
}

TEST_F(MkfsTest, DryRunWritesNothing) {
  fsys::path img = pattern_file("img", 64 * kMiB);
  const std::string before = slurp(img);
  Outcome r = mkfs({"-n", img});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("nothing written"), std::string::npos);
  EXPECT_NE(r.out.find("inode table"), std::string::npos);
  EXPECT_EQ(slurp(img), before);
  // Not even created, or grown.
  Outcome created = mkfs({"-n", "--size", "1G", dir_ / "new"});
  ASSERT_EQ(created.status, 0) << created.err;
  EXPECT_FALSE(fsys::exists(dir_ / "new"));
  Outcome grown = mkfs({"-n", "--size", "1G", img});
  ASSERT_EQ(grown.status, 0) << grown.err;
  EXPECT_EQ(slurp(img), before);
}

TEST_F(MkfsTest, RefusesAnExistingSealfsUnlessForced) {
  const fsys::path img = dir_ / "img";
  ASSERT_EQ(mkfs({"-L", "first", "--size", "64M", img}).status, 0);
  const std::string before = slurp(img);
  Outcome r = mkfs({"-L", "second", img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("sealfs"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("first"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
  // A damaged one is still refused: the magic is enough.
  poke(img, 200, "\xff", 1);
  EXPECT_EQ(mkfs({img}).status, 1);
  Outcome forced = mkfs({"-f", "-L", "second", img});
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_EQ(superblock_of(img)->label, "second");
}

TEST_F(MkfsTest, RefusesExtMagicUnlessForced) {
  fsys::path img = pattern_file("img", 64 * kMiB);
  const uint8_t magic[2] = {0x53, 0xef};
  poke(img, 1080, magic, 2);
  const std::string before = slurp(img);
  Outcome r = mkfs({img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("ext2/3/4"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
  EXPECT_EQ(mkfs({"-f", img}).status, 0);
  EXPECT_TRUE(superblock_of(img).is_ok());
}

TEST_F(MkfsTest, RefusesXfsMagicUnlessForced) {
  fsys::path img = pattern_file("img", 64 * kMiB);
  poke(img, 0, "XFSB", 4);
  const std::string before = slurp(img);
  Outcome r = mkfs({img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("XFS"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
  EXPECT_EQ(mkfs({"-f", img}).status, 0);
}

TEST_F(MkfsTest, RefusesARealExt4) {
  const char* mke2fs = "/sbin/mkfs.ext4";
  ASSERT_EQ(access(mke2fs, X_OK), 0) << mke2fs << " is needed (e2fsprogs)";
  fsys::path img = dir_ / "ext4.img";
  {
    std::ofstream f(img);
  }
  fsys::resize_file(img, 64 * kMiB);
  std::string cmd = std::string(mke2fs) + " -q -F " + img.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string before = slurp(img);
  Outcome r = mkfs({img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("ext2/3/4"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
  EXPECT_EQ(mkfs({"-f", img}).status, 0);
  EXPECT_TRUE(superblock_of(img).is_ok());
}

TEST_F(MkfsTest, BadArgumentsFailAndLeaveTheTargetAlone) {
  fsys::path img = pattern_file("img", 16 * kMiB);
  const std::string before = slurp(img);
  const std::vector<std::vector<std::string>> cases = {
      {"--size", "0"},       {"--size", "abc"},      {"--size", "1.5G"},
      {"--size", "-1G"},     {"--size", "64MB"},     {"--size", "1X"},
      {"-J", "4MB"},         {"--align", "2MB"},     {"-N", "0"},            {"-N", "-5"},
      {"-N", "12abc"},       {"-N", "4294967296"},   {"-N", "4000000000"},
      {"-J", "4K"},          {"-J", "0"},            {"-J", "xyz"},
      {"-J", "1G"},          {"--align", "12K"},     {"--align", "2048"},
      {"--align", "0"},      {"--bogus"},            {"-Z"},
      {"-L", std::string(64, 'x')},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c;
    args.push_back(img);
    Outcome r = mkfs(args);
    std::string joined;
    for (const auto& a : c) joined += a + " ";
    EXPECT_EQ(r.status, 1) << joined;
    EXPECT_NE(r.err.find("mkfs.sealfs: "), std::string::npos) << joined << ": " << r.err;
    EXPECT_EQ(slurp(img), before) << joined;
  }
  // An option missing its argument.
  Outcome r = mkfs({img, "-L"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("needs an argument"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
}

// "64MB" was taken for 64 MiB without a word (a new user's trial): to dd
// or parted it is 64,000,000 bytes. mkfs refuses it and says what to write.
TEST_F(MkfsTest, AnAmbiguousSizeSuffixIsRefusedWithWhatToWrite) {
  fsys::path img = dir_ / "img";
  Outcome r = mkfs({"--size", "64MB", img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("invalid size '64MB': ambiguous"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("write 64M or 64MiB"), std::string::npos) << r.err;
  EXPECT_FALSE(fsys::exists(img));
  Outcome unknown = mkfs({"--size", "64Q", img});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("K, M, G, T or P"), std::string::npos) << unknown.err;
  EXPECT_FALSE(fsys::exists(img));
  Outcome binary = mkfs({"-q", "--size", "64MiB", img});
  EXPECT_EQ(binary.status, 0) << binary.err;
  EXPECT_EQ(fsys::file_size(img), 64 * kMiB);
}

TEST_F(MkfsTest, BadTargets) {
  Outcome none = mkfs({});
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.err.find("no target"), std::string::npos);
  Outcome two = mkfs({dir_ / "a", dir_ / "b"});
  EXPECT_EQ(two.status, 1);
  Outcome missing = mkfs({dir_ / "missing"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
  EXPECT_FALSE(fsys::exists(dir_ / "missing"));
  Outcome directory = mkfs({dir_});
  EXPECT_EQ(directory.status, 1);
  EXPECT_NE(directory.err.find("directory"), std::string::npos) << directory.err;
  Outcome null_dev = mkfs({"/dev/null"});
  EXPECT_EQ(null_dev.status, 1);
  EXPECT_NE(null_dev.err.find("not a devdax device"), std::string::npos) << null_dev.err;
  Outcome null_size = mkfs({"--size", "1G", "/dev/null"});
  EXPECT_EQ(null_size.status, 1);
  EXPECT_NE(null_size.err.find("--size"), std::string::npos) << null_size.err;
}

TEST_F(MkfsTest, TooSmallTargetIsRefusedUntouched) {
  fsys::path img = pattern_file("small", 128 * 1024);
  const std::string before = slurp(img);
  Outcome r = mkfs({img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("too small"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
  Outcome empty = mkfs({"--size", "100K", dir_ / "new"});
  EXPECT_EQ(empty.status, 1);
  EXPECT_FALSE(fsys::exists(dir_ / "new"));
  {
    std::ofstream f(dir_ / "zero");
  }
  Outcome zero = mkfs({dir_ / "zero"});
  EXPECT_EQ(zero.status, 1);
  EXPECT_NE(zero.err.find("too small"), std::string::npos) << zero.err;
  EXPECT_EQ(fsys::file_size(dir_ / "zero"), 0u);
}

TEST_F(MkfsTest, SizeGrowsButNeverShrinks) {
  fsys::path img = pattern_file("img", 8 * kMiB);
  Outcome grow = mkfs({"--size", "64M", img});
  ASSERT_EQ(grow.status, 0) << grow.err;
  EXPECT_EQ(fsys::file_size(img), 64 * kMiB);
  EXPECT_EQ(superblock_of(img)->geometry.region_size, 64 * kMiB);

  // The old pattern is gone from every metadata area (inodes past the root,
  // bitmap), whether holes were punched or bytes zeroed.
  const std::string bytes = slurp(img);
  const Geometry g = superblock_of(img)->geometry;
  const uint64_t meta_begin = block_offset(g.inode_start) + format::kInodeSize;
  const uint64_t meta_end = block_offset(g.bitmap_start + g.bitmap_blocks);
  EXPECT_EQ(bytes.substr(meta_begin, meta_end - meta_begin),
            std::string(meta_end - meta_begin, '\0'));

  fsys::path big = pattern_file("big", 128 * kMiB);
  Outcome keep = mkfs({"--size", "64M", big});
  ASSERT_EQ(keep.status, 0) << keep.err;
  EXPECT_EQ(fsys::file_size(big), 128 * kMiB);
  EXPECT_EQ(superblock_of(big)->geometry.region_size, 128 * kMiB);
  // ...and says so: the user asked for less than what was formatted.
  EXPECT_NE(keep.err.find("formatted whole (mkfs never shrinks a file"), std::string::npos)
      << keep.err;
}

TEST_F(MkfsTest, HelpAndVersion) {
  Outcome help = mkfs({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Usage: mkfs.sealfs"), std::string::npos);
  Outcome version = mkfs({"-V"});
  EXPECT_EQ(version.status, 0);
  EXPECT_NE(version.out.find("mkfs.sealfs "), std::string::npos);
}

// --- The backing store (backing_store.h) ---------------------------------
//
// A small tmpfs plays the full disk. It is mounted in a private mount
// namespace of this test process (mkfs runs as its child and sees it), so
// nothing is left mounted if the test dies. Needs CAP_SYS_ADMIN, as the
// integration tests need root.
class MkfsBackingStoreTest : public MkfsTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MkfsTest::SetUp());
    static bool unshared = [] {
      return unshare(CLONE_NEWNS) == 0 &&
             ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    }();
    ASSERT_TRUE(unshared) << "a private mount namespace needs CAP_SYS_ADMIN: "
                          << std::strerror(errno);
    small_ = dir_ / "small";
    fsys::create_directory(small_);
    ASSERT_EQ(::mount("sealfs-test", small_.c_str(), "tmpfs", 0, "size=16m"), 0)
        << std::strerror(errno);
  }
  void TearDown() override {
    umount2(small_.c_str(), MNT_DETACH);
    MkfsTest::TearDown();
  }
  uint64_t free_bytes() {
    struct statvfs v;
    EXPECT_EQ(statvfs(small_.c_str(), &v), 0);
    return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  }
  uint64_t allocated(const fsys::path& p) {
    struct stat st;
    EXPECT_EQ(stat(p.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  // A sparse file of `size` whose first MiB holds a pattern.
  fsys::path sparse_pattern_file(const std::string& name, uint64_t size) {
    fsys::path p = small_ / name;
    fsys::copy_file(pattern_file(name, kMiB), p);
    fsys::resize_file(p, size);
    return p;
  }
  fsys::path small_;
};

TEST_F(MkfsBackingStoreTest, RefusesASparseRegionItsFilesystemCannotHold) {
  // A new file: refused before it is created.
  Outcome fresh = mkfs({"--size", "64M", small_ / "new"});
  EXPECT_EQ(fresh.status, 1);
  EXPECT_FALSE(fsys::exists(small_ / "new"));
  for (const char* word : {"sparse", "64 MiB", "--allocate", "--sparse-ok", "EIO"}) {
    EXPECT_NE(fresh.err.find(word), std::string::npos) << word << " missing in: " << fresh.err;
  }
  // An existing sparse file: refused byte for byte unchanged.
  fsys::path img = sparse_pattern_file("img", 64 * kMiB);
  const std::string before = slurp(img);
  const uint64_t blocks_before = allocated(img);
  Outcome existing = mkfs({img});
  EXPECT_EQ(existing.status, 1);
  EXPECT_NE(existing.err.find("sparse"), std::string::npos) << existing.err;
  EXPECT_EQ(slurp(img), before);
  EXPECT_EQ(allocated(img), blocks_before);
}

TEST_F(MkfsBackingStoreTest, SparseOkFormatsAnywayWithAWarning) {
  fsys::path img = small_ / "img";
  Outcome r = mkfs({"--sparse-ok", "--size", "64M", img});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("WARNING"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("short of the whole region"), std::string::npos) << r.err;
  Result<Superblock> sb = superblock_of(img);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_EQ(sb->geometry.region_size, 64 * kMiB);
}

TEST_F(MkfsBackingStoreTest, SparseOkStillFailsCleanlyWhenTheFormatItselfCannotFit) {
  // Fill the tmpfs but for 1 MiB: the 16 MiB journal cannot be allocated.
  fsys::path filler = small_ / "filler";
  int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, static_cast<off_t>(free_bytes() - kMiB)), 0)
      << std::strerror(errno);
  ::close(fd);
  fsys::path img = sparse_pattern_file("img", 64 * kMiB);
  const std::string before = slurp(img);
  Outcome r = mkfs({"--sparse-ok", img});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("nothing written"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(img), before);
  EXPECT_EQ(fsys::file_size(img), 64 * kMiB);
}

TEST_F(MkfsBackingStoreTest, AllocateReservesTheWholeRegion) {
  fsys::path img = small_ / "img";
  Outcome r = mkfs({"--allocate", "--size", "8M", img});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("WARNING"), std::string::npos) << r.err;
  EXPECT_GE(allocated(img), 8 * kMiB) << "the region is still sparse";
  Result<Superblock> sb = superblock_of(img);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_EQ(sb->geometry.region_size, 8 * kMiB);
}

TEST_F(MkfsBackingStoreTest, AllocateFailsCleanlyWhenTheRegionCannotFit) {
  const uint64_t free_before = free_bytes();
  Outcome fresh = mkfs({"--allocate", "--size", "64M", small_ / "new"});
  EXPECT_EQ(fresh.status, 1);
  EXPECT_NE(fresh.err.find("nothing written"), std::string::npos) << fresh.err;
  EXPECT_FALSE(fsys::exists(small_ / "new"));
  EXPECT_EQ(free_bytes(), free_before) << "the failed allocation was not given back";

  fsys::path img = sparse_pattern_file("img", 32 * kMiB);
  const std::string before = slurp(img);
  Outcome grow = mkfs({"--allocate", "--size", "64M", img});
  EXPECT_EQ(grow.status, 1);
  EXPECT_EQ(fsys::file_size(img), 32 * kMiB) << "the file kept the size mkfs gave it";
  EXPECT_EQ(slurp(img), before);
}

TEST_F(MkfsBackingStoreTest, AllocateAndSparseOkExcludeEachOther) {
  Outcome r = mkfs({"--allocate", "--sparse-ok", "--size", "8M", small_ / "img"});
  EXPECT_EQ(r.status, 1);
  EXPECT_FALSE(fsys::exists(small_ / "img"));
}

TEST_F(MkfsTest, ASparseRegionThatFitsIsFormattedWithAWarning) {
  Outcome r = mkfs({"--size", "64M", dir_ / "img"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("WARNING"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sparse"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("short of"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sealfs
