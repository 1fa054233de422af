// Mounts sealfs on a fresh 512 MiB file-backed region and runs difftest
// against a tmpfs directory; then unmounts, mounts again and checks that the
// tree survived the remount unchanged, once per case of kCases. Knobs: DIFFTEST_OPS (default 10000),
// DIFFTEST_SEED (replaces each case's fixed seed), DIFFTEST_FLAGS (more
// difftest options, split on spaces).
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

struct Case {
  const char* name;
  uint64_t seed;
  const char* mount_options;  // -o for the daemon
  const char* difftest_flags;
};

void PrintTo(const Case& c, std::ostream* out) { *out << c.name << " seed " << c.seed; }

// One entry per cache configuration the daemon offers: the default, and an
// inode cache so small that every inode the kernel forgets (its caches are
// dropped every 200 steps) is dropped by the daemon and read again from the
// region; a second seed on the default mount widens the search each run.
// allow_other: difftest writes as uid 65534 too (set-id clearing, ACLs).
const Case kCases[] = {
    {"default", 1001, "allow_other", ""},
    {"default_second_seed", 2002, "allow_other", ""},
    {"small_inode_cache", 3003, "allow_other,inode_cache=16", "--drop-caches-every 200"},
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

class DifftestMount : public MountFixture, public testing::WithParamInterface<Case> {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    difftest_ = env_or("DIFFTEST_BIN", "");
    ASSERT_FALSE(difftest_.empty()) << "DIFFTEST_BIN is not set (meson sets it)";
    // The reference must be tmpfs: that is the point of the comparison.
    struct statfs fs {};
    ASSERT_EQ(statfs("/dev/shm", &fs), 0);
    ASSERT_EQ(fs.f_type, TMPFS_MAGIC) << "/dev/shm is not tmpfs";
    std::string pattern = "/dev/shm/sealfs-difftest-ref-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    reference_ = pattern;
  }

  void TearDown() override {
    if (!reference_.empty()) {
      if (HasFailure()) {
        std::fprintf(stderr, "reference tree kept: %s\n", reference_.c_str());
      } else {
        std::error_code ec;
        std::filesystem::remove_all(reference_, ec);
      }
    }
    MountFixture::TearDown();
  }

  std::string difftest_, reference_;
};

TEST_P(DifftestMount, AgreesWithTmpfsAndSurvivesRemount) {
  const Case& c = GetParam();
  MountConfig config;
  config.region_size = 512ull << 20;
  config.options = c.mount_options;
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));

  std::vector<std::string> argv = {difftest_, "--a", mountpoint(), "--b", reference_,
                                   "--seed", env_or("DIFFTEST_SEED", std::to_string(c.seed)),
                                   "--ops", env_or("DIFFTEST_OPS", "10000"), "--keep"};
  std::istringstream extra(std::string(c.difftest_flags) + " " + env_or("DIFFTEST_FLAGS", ""));
  for (std::string flag; extra >> flag;) argv.push_back(flag);
  ASSERT_EQ(run_command(argv), 0) << "difftest found a divergence (report above)";

  // Everything difftest left must come back from the region as it was.
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(run_command({difftest_, "--a", mountpoint(), "--b", reference_, "--compare-only"}), 0)
      << "the tree changed across unmount and mount";
  // difftest clears immutable and append-only flags, which would stop a
  // plain removal of the reference tree.
  EXPECT_EQ(run_command({difftest_, "--a", mountpoint(), "--b", reference_, "--remove"}), 0);
  ASSERT_NO_FATAL_FAILURE(unmount());
}

INSTANTIATE_TEST_SUITE_P(Mounts, DifftestMount, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace sealfs::itest
