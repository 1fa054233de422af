// Region backends: the DRAM fake's power-loss model and the libpmem2 backend
// on real files (ordinary file, emulated pmem on tmpfs, error paths).
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "media/region_dram.h"
#include "media/region_pmem2.h"
#include "support/log_capture.h"
#include "util/log.h"

namespace sealfs {
class RegionTestAccess {
 public:
  static RegionWriteKey key() { return {}; }
};

namespace {

using CrashMode = RegionDram::CrashMode;
using TraceEvent = RegionDram::TraceEvent;

std::vector<std::byte> pattern(size_t len, uint8_t seed) {
  std::vector<std::byte> v(len);
  for (size_t i = 0; i < len; ++i) {
    // Never zero, so "written" and "zero-filled" can't be confused.
    v[i] = static_cast<std::byte>(((i * 31 + seed) % 255) + 1);
  }
  return v;
}

bool all_zero(const std::byte* p, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (p[i] != std::byte{0}) return false;
  }
  return true;
}

// ---------------------------------------------------------------- RegionDram

TEST(RegionDram, CrashDropKeepsOnlyDrainedBytes) {
  auto r = RegionDram::create(64 * 1024);
  auto key = RegionTestAccess::key();
  auto a = pattern(300, 1), b = pattern(300, 2), c = pattern(300, 3);
  r->copy_flush(key, r->writable(key), a.data(), a.size());
  r->drain();
  r->copy_flush(key, r->writable(key) + 4096, b.data(), b.size());  // flushed, not drained
  std::memcpy(r->writable(key) + 8192, c.data(), c.size());          // not even flushed

  auto img = r->crash(CrashMode::kDrop);
  ASSERT_EQ(img.size(), 64u * 1024);
  EXPECT_EQ(std::memcmp(img.data(), a.data(), a.size()), 0);
  EXPECT_TRUE(all_zero(img.data() + 4096, 300));
  EXPECT_TRUE(all_zero(img.data() + 8192, 300));
  // What the CPU sees is everything.
  auto vis = r->image();
  EXPECT_EQ(std::memcmp(vis.data() + 4096, b.data(), b.size()), 0);
  EXPECT_EQ(std::memcmp(vis.data() + 8192, c.data(), c.size()), 0);

  r->drain();
  img = r->crash(CrashMode::kDrop);
  EXPECT_EQ(std::memcmp(img.data() + 4096, b.data(), b.size()), 0);
  EXPECT_TRUE(all_zero(img.data() + 8192, 300));
}

TEST(RegionDram, FlushSnapshotsTheLineAtFlushTime) {
  auto r = RegionDram::create(4096);
  auto key = RegionTestAccess::key();
  uint64_t first = 0x1111111111111111, second = 0x2222222222222222;
  std::memcpy(r->writable(key) + 64, &first, 8);
  r->flush(r->data() + 64, 8);
  std::memcpy(r->writable(key) + 64, &second, 8);  // store after the flush
  r->drain();
  auto img = r->crash(CrashMode::kDrop);
  uint64_t got;
  std::memcpy(&got, img.data() + 64, 8);
  EXPECT_EQ(got, first);
}

TEST(RegionDram, CrashTearMixesWholeWordsDeterministically) {
  constexpr size_t kLen = 4096;
  auto r = RegionDram::create(16 * 1024);
  auto key = RegionTestAccess::key();
  auto durable = pattern(64, 9);
  r->copy_flush(key, r->writable(key) + 8192, durable.data(), durable.size());
  r->drain();
  auto fresh = pattern(kLen, 5);
  std::memcpy(r->writable(key), fresh.data(), kLen);

  auto t1 = r->crash(CrashMode::kTear, 7);
  auto t2 = r->crash(CrashMode::kTear, 7);
  auto t3 = r->crash(CrashMode::kTear, 8);
  EXPECT_EQ(t1, t2);
  EXPECT_NE(t1, t3);
  size_t kept_new = 0, kept_old = 0;
  for (size_t off = 0; off < kLen; off += 8) {
    if (std::memcmp(t1.data() + off, fresh.data() + off, 8) == 0) {
      ++kept_new;
    } else {
      ASSERT_TRUE(all_zero(t1.data() + off, 8)) << "word at " << off << " is a byte mix";
      ++kept_old;
    }
  }
  // 512 fair coins: both outcomes must occur.
  EXPECT_GT(kept_new, 100u);
  EXPECT_GT(kept_old, 100u);
  EXPECT_EQ(std::memcmp(t1.data() + 8192, durable.data(), durable.size()), 0);
  EXPECT_TRUE(all_zero(t1.data() + kLen, 8192 - kLen));
}

TEST(RegionDram, TraceRecordsFlushesAndDrains) {
  auto r = RegionDram::create(8192);
  r->flush(r->data() + 128, 100);
  r->drain();
  r->persist(r->data() + 4096, 8);
  auto trace = r->trace();
  ASSERT_EQ(trace.size(), 4u);
  EXPECT_EQ(trace[0].kind, TraceEvent::kFlush);
  EXPECT_EQ(trace[0].offset, 128u);
  EXPECT_EQ(trace[0].length, 100u);
  EXPECT_EQ(trace[1].kind, TraceEvent::kDrain);
  EXPECT_EQ(trace[2].kind, TraceEvent::kFlush);
  EXPECT_EQ(trace[2].offset, 4096u);
  EXPECT_EQ(trace[2].length, 8u);
  EXPECT_EQ(trace[3].kind, TraceEvent::kDrain);
  EXPECT_EQ(r->flush_count(), 2u);
  EXPECT_EQ(r->drain_count(), 2u);
  r->clear_trace();
  EXPECT_TRUE(r->trace().empty());
  EXPECT_EQ(r->flush_count(), 2u);  // counters are cumulative
}

TEST(RegionDram, CorruptIsVisibleAndDurable) {
  auto r = RegionDram::create(8192);
  const char junk[] = "garbage!";
  r->corrupt(100, junk, 8);
  EXPECT_EQ(std::memcmp(r->data() + 100, junk, 8), 0);
  auto img = r->crash(CrashMode::kDrop);
  EXPECT_EQ(std::memcmp(img.data() + 100, junk, 8), 0);
  EXPECT_TRUE(r->trace().empty());  // not a flush: the crash tier must not see it
}

TEST(RegionDram, FromImageIsDurable) {
  auto img = pattern(8192, 4);
  auto r = RegionDram::from_image(img, 4096, Granularity::kByte);
  EXPECT_EQ(r->size(), 8192u);
  EXPECT_EQ(r->granularity(), Granularity::kByte);
  EXPECT_EQ(r->crash(CrashMode::kDrop), img);
  EXPECT_EQ(r->image(), img);
}

// --------------------------------------------------------------- RegionPmem2

using testing_support::LogCapture;

class TempDir {
 public:
  explicit TempDir(const std::string& parent) {
    std::string tmpl = parent + "/sealfs-region-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name, uint64_t size, mode_t mode = 0644) const {
    std::string p = path_ + "/" + name;
    int fd = ::open(p.c_str(), O_CREAT | O_RDWR | O_TRUNC, mode);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
    ::fchmod(fd, mode);
    ::close(fd);
    return p;
  }

 private:
  std::string path_;
};

std::vector<std::byte> read_file(const std::string& path, uint64_t off, size_t len) {
  std::vector<std::byte> out(len);
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, out.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
  ::close(fd);
  return out;
}

// The protection of the mapping that contains `addr`, from /proc/self/maps.
std::string mapping_perms(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  auto a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
      return perms;
    }
  }
  return "";
}

class RegionPmem2Test : public ::testing::Test {
 protected:
  TempDir dir_{std::filesystem::temp_directory_path().string()};
};

// The daemon asks for the "not DAX" warning (once per mount); every other
// open (mkfs, fsck) logs it at info level, which they do not show.
TEST_F(RegionPmem2Test, NotDaxWarningIsTheDaemons) {
  std::string path = dir_.file("region.img", 1 << 20);
  {
    LogCapture logs;
    auto r = RegionPmem2::open(path, {});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(logs.text().find("[warning]"), std::string::npos) << logs.text();
  }
  LogCapture logs;
  RegionOptions options;
  options.warn_if_not_dax = true;
  auto r = RegionPmem2::open(path, options);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_NE(logs.text().find("[warning] " + path + ": region is not DAX"), std::string::npos)
      << logs.text();
}

TEST_F(RegionPmem2Test, OrdinaryFileReportsPageGranularity) {
  std::string path = dir_.file("region.img", (1 << 20) + 100);  // rounds down
  LogCapture logs;
  auto r = RegionPmem2::open(path, {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto& region = **r;
  EXPECT_EQ(region.size(), 1u << 20);
  EXPECT_EQ(region.alignment(), 4096u);
  EXPECT_EQ(region.granularity(), Granularity::kPage);
  EXPECT_EQ(region.kind(), RegionKind::kFile);
  EXPECT_FALSE(region.emulated());
  EXPECT_FALSE(region.read_only());
  EXPECT_EQ(region.description(), "file " + path + " (page granularity, align 4 KiB)");
  // Said at info level: tools open regions too, and the warning is the
  // daemon's (NotDaxWarningIsTheDaemons below).
  EXPECT_NE(logs.text().find("[info] " + path + ": region is not DAX: direct mappings are "
                             "emulated, persistence uses msync"),
            std::string::npos)
      << logs.text();
  // The descriptor stays open for lease grants: read-write, blocking, cloexec.
  int fl = ::fcntl(region.fd(), F_GETFL);
  ASSERT_GE(fl, 0);
  EXPECT_EQ(fl & O_ACCMODE, O_RDWR);
  EXPECT_EQ(fl & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(region.fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(mapping_perms(region.data()), "rw-s");
}

TEST_F(RegionPmem2Test, WrittenBytesSurviveReopen) {
  std::string path = dir_.file("region.img", 256 * 1024);
  auto key = RegionTestAccess::key();
  auto big = pattern(5000, 1), small = pattern(40, 2);
  {
    auto r = RegionPmem2::open(path, {});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    auto& region = **r;
    std::memset(region.writable(key) + 100, 0xee, 300);
    region.copy_flush(key, region.writable(key) + 8192 + 3, big.data(), big.size());
    region.copy_flush(key, region.writable(key) + 20, small.data(), small.size());
    region.zero_flush(key, region.writable(key) + 100, 300);
    region.drain();
    *reinterpret_cast<uint64_t*>(region.writable(key) + 65536) = 0x0123456789abcdef;
    region.persist(region.data() + 65536, 8);
  }
  auto on_disk = read_file(path, 8192 + 3, big.size());
  EXPECT_EQ(on_disk, big);
  EXPECT_EQ(read_file(path, 20, small.size()), small);
  auto zeros = read_file(path, 100, 300);
  EXPECT_TRUE(all_zero(zeros.data(), zeros.size()));

  RegionOptions ro;
  ro.read_only = true;
  auto r = RegionPmem2::open(path, ro);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(std::memcmp((*r)->data() + 8192 + 3, big.data(), big.size()), 0);
  uint64_t word;
  std::memcpy(&word, (*r)->data() + 65536, 8);
  EXPECT_EQ(word, 0x0123456789abcdefu);
}

TEST_F(RegionPmem2Test, ReadOnlyOpensAndMapsReadOnly) {
  std::string path = dir_.file("region.img", 64 * 1024);
  RegionOptions ro;
  ro.read_only = true;
  auto r = RegionPmem2::open(path, ro);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto& region = **r;
  EXPECT_TRUE(region.read_only());
  EXPECT_EQ(::fcntl(region.fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(mapping_perms(region.data()), "r--s");
  auto key = RegionTestAccess::key();
  EXPECT_EXIT(*region.writable(key) = std::byte{1}, ::testing::KilledBySignal(SIGSEGV), "");
  char byte = 1;
  EXPECT_DEATH(region.copy_flush(key, region.writable(key), &byte, 1), "read-only");
}

TEST_F(RegionPmem2Test, LengthOptionMapsAPrefix) {
  std::string path = dir_.file("region.img", 64 * 1024);
  RegionOptions opt;
  opt.length = 8192;
  auto r = RegionPmem2::open(path, opt);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)->size(), 8192u);

  opt.length = 5000;
  EXPECT_EQ(RegionPmem2::open(path, opt).status().code(), Code::kInvalid);
  opt.length = 128 * 1024;
  EXPECT_EQ(RegionPmem2::open(path, opt).status().code(), Code::kInvalid);
}

// fsck skips what a sparse file never wrote (docs/fsck.md, "Scale"): the
// data ranges are the written blocks, clipped to the asked range.
TEST_F(RegionPmem2Test, DataRangesOfASparseFileAreItsWrittenBlocks) {
  std::string path = dir_.file("sparse.img", 64ull << 20);
  {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::vector<char> block(4096, 'x');
    ASSERT_EQ(::pwrite(fd, block.data(), block.size(), 8 << 20), 4096);
    ASSERT_EQ(::pwrite(fd, block.data(), block.size(), 40 << 20), 4096);
    ::close(fd);
  }
  auto r = RegionPmem2::open(path, RegionOptions{.read_only = true});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto ranges = (*r)->data_ranges(0, 64ull << 20);
  ASSERT_EQ(ranges.size(), 2u);
  // A filesystem may report data in larger units than a block; it must
  // cover the written block and not reach the other one.
  EXPECT_LE(ranges[0].offset, 8u << 20);
  EXPECT_GE(ranges[0].offset + ranges[0].length, (8u << 20) + 4096);
  EXPECT_LT(ranges[0].offset + ranges[0].length, 40u << 20);
  EXPECT_LE(ranges[1].offset, 40u << 20);
  EXPECT_GE(ranges[1].offset + ranges[1].length, (40u << 20) + 4096);
  // Clipped to the range asked for; nothing where nothing was written.
  auto inner = (*r)->data_ranges((8u << 20) + 1024, 1024);
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0].offset, (8u << 20) + 1024);
  EXPECT_EQ(inner[0].length, 1024u);
  EXPECT_TRUE((*r)->data_ranges(16u << 20, 16u << 20).empty());
  // A region that knows nothing (DRAM) answers the whole range.
  auto dram = RegionDram::create(1 << 20);
  auto all = dram->data_ranges(4096, 8192);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].offset, 4096u);
  EXPECT_EQ(all[0].length, 8192u);
}

TEST_F(RegionPmem2Test, MissingPathIsNotFound) {
  auto r = RegionPmem2::open(dir_.path() + "/nope.img", {});
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST_F(RegionPmem2Test, DirectoryIsInvalid) {
  auto r = RegionPmem2::open(dir_.path(), {});
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("directory"), std::string::npos);
  RegionOptions ro;
  ro.read_only = true;  // O_RDONLY opens a directory fine: fstat must catch it
  EXPECT_EQ(RegionPmem2::open(dir_.path(), ro).status().code(), Code::kInvalid);
}

TEST_F(RegionPmem2Test, EmptyFileIsInvalid) {
  std::string path = dir_.file("empty.img", 0);
  auto r = RegionPmem2::open(path, {});
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("empty"), std::string::npos) << r.status().to_string();
}

TEST_F(RegionPmem2Test, FileSmallerThanABlockIsInvalid) {
  std::string path = dir_.file("tiny.img", 100);
  EXPECT_EQ(RegionPmem2::open(path, {}).status().code(), Code::kInvalid);
}

TEST_F(RegionPmem2Test, CharacterDeviceThatIsNotDaxIsInvalid) {
  auto r = RegionPmem2::open("/dev/null", {});
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("not a devdax device"), std::string::npos)
      << r.status().to_string();
}

TEST_F(RegionPmem2Test, FifoIsInvalidAndDoesNotBlock) {
  std::string path = dir_.path() + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  RegionOptions ro;
  ro.read_only = true;  // an O_RDONLY open of a FIFO would block without O_NONBLOCK
  EXPECT_EQ(RegionPmem2::open(path, ro).status().code(), Code::kInvalid);
}

TEST_F(RegionPmem2Test, PermissionDeniedIsAccess) {
  std::string path = dir_.file("secret.img", 64 * 1024, 0600);
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod(path.c_str(), 0), 0);
    EXPECT_EQ(RegionPmem2::open(path, {}).status().code(), Code::kAccess);
    return;
  }
  // root bypasses mode bits: ask as nobody, in a child, and read the code
  // from its exit status.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(100);
    }
    auto r = RegionPmem2::open(path, {});
    ::_exit(static_cast<int>(r.status().code()));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 100) << "could not drop privileges";
  EXPECT_EQ(static_cast<Code>(WEXITSTATUS(status)), Code::kAccess);
}

class RegionEmulatedTest : public ::testing::Test {
 protected:
  TempDir dir_{"/dev/shm"};
};

TEST_F(RegionEmulatedTest, TmpfsReportsCacheLineAndPersists) {
  std::string path = dir_.file("region.img", 1 << 20);
  auto key = RegionTestAccess::key();
  auto data = pattern(70000, 3);
  {
    LogCapture logs;
    RegionOptions opt;
    opt.emulate_pmem = true;
    auto r = RegionPmem2::open(path, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    auto& region = **r;
    EXPECT_TRUE(region.emulated());
    EXPECT_EQ(region.kind(), RegionKind::kFile);
    EXPECT_EQ(region.granularity(), Granularity::kCacheLine);
    EXPECT_EQ(region.size(), 1u << 20);
    EXPECT_EQ(region.description(),
              "file " + path + " (emulated cache-line granularity, align 4 KiB)");
    EXPECT_NE(logs.text().find("NOT durable"), std::string::npos) << logs.text();
    EXPECT_EQ(logs.text().find("region is not DAX"), std::string::npos) << logs.text();

    region.copy_flush(key, region.writable(key) + 4096 + 5, data.data(), data.size());
    region.zero_flush(key, region.writable(key) + 4096 + 1000, 2000);
    region.drain();
  }
  std::memset(data.data() + 995, 0, 2000);
  EXPECT_EQ(read_file(path, 4096 + 5, data.size()), data);
}

// The streaming copy splits each range into a cached head, whole streamed
// lines and a cached tail; every split must land exactly.
void check_copy_and_zero_at_every_split(RegionPmem2& region) {
  auto key = RegionTestAccess::key();
  auto src = pattern(4200, 7);
  const size_t lengths[] = {0, 1, 8, 63, 64, 65, 255, 256, 257, 1000, 4096 + 13};
  for (size_t len : lengths) {
    for (size_t dst_off = 0; dst_off < 72; dst_off += 3) {
      for (size_t src_off : {size_t{0}, size_t{5}}) {
        std::byte* base = region.writable(key);
        std::memset(base, 0xaa, 8192);
        region.copy_flush(key, base + 256 + dst_off, src.data() + src_off, len);
        region.drain();
        ASSERT_EQ(std::memcmp(base + 256 + dst_off, src.data() + src_off, len), 0)
            << "len " << len << " dst " << dst_off << " src " << src_off;
        ASSERT_EQ(base[255 + dst_off], std::byte{0xaa}) << "len " << len << " dst " << dst_off;
        ASSERT_EQ(base[256 + dst_off + len], std::byte{0xaa})
            << "len " << len << " dst " << dst_off;
      }
      std::byte* base = region.writable(key);
      std::memset(base, 0xaa, 8192);
      region.zero_flush(key, base + 256 + dst_off, len);
      region.drain();
      ASSERT_TRUE(all_zero(base + 256 + dst_off, len)) << "len " << len << " dst " << dst_off;
      ASSERT_EQ(base[255 + dst_off], std::byte{0xaa});
      ASSERT_EQ(base[256 + dst_off + len], std::byte{0xaa});
    }
  }
}

TEST_F(RegionEmulatedTest, CopyAndZeroAreExactAtEveryAlignment) {
  std::string path = dir_.file("region.img", 64 * 1024);
  RegionOptions opt;
  opt.emulate_pmem = true;
  auto r = RegionPmem2::open(path, opt);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)->emulated());
  check_copy_and_zero_at_every_split(**r);
}

TEST_F(RegionEmulatedTest, PageGranularityCopyIsExactToo) {
  std::string path = dir_.file("region.img", 64 * 1024);
  auto r = RegionPmem2::open(path, {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)->granularity(), Granularity::kPage);
  check_copy_and_zero_at_every_split(**r);
}

}  // namespace
}  // namespace sealfs
