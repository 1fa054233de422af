// Mounts sealfs on a fresh file-backed region and runs difftest against a
// tmpfs directory; then unmounts, mounts again and checks the tree survived
// the remount unchanged. Knobs: DIFFTEST_OPS (default 10000), DIFFTEST_SEED
// (replaces each case's fixed seed), DIFFTEST_FLAGS (more difftest options,
// split on spaces).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <linux/magic.h>
#include <sstream>
#include <string>
#include <vector>

#include "mount_fixture.h"

namespace difftest {
namespace {

struct Case {
  const char* name;
  uint64_t seed;
  const char* mount_options;  // -o for the daemon
  std::vector<std::string> difftest_flags;
};

// One entry per cache configuration the daemon offers; the default mount is
// what users get. Add a no-cache entry when the daemon grows that option.
const Case kCases[] = {
    {"default", 1001, "", {}},
    {"default_second_seed", 2002, "", {}},
};

void PrintTo(const Case& c, std::ostream* out) { *out << c.name << " seed " << c.seed; }

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string make_temp_dir(const std::string& parent, const std::string& stem) {
  std::string pattern = parent + "/" + stem + "-XXXXXX";
  char* made = mkdtemp(pattern.data());
  return made != nullptr ? made : "";
}

// The reference tree must be tmpfs (that is the point); /dev/shm is one on
// every Debian machine.
bool is_tmpfs(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

class DifftestMount : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    bins_ = locate_binaries();
    std::string missing = bins_.missing();
    if (!missing.empty()) GTEST_SKIP() << "binaries not built: " << missing;
    int fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fuse < 0) GTEST_SKIP() << "/dev/fuse is not usable: " << std::strerror(errno);
    close(fuse);
    ASSERT_TRUE(is_tmpfs("/dev/shm")) << "/dev/shm is not tmpfs; the reference must be";

    work_ = make_temp_dir(env_or("TMPDIR", "/tmp"), "sealfs-difftest");
    ASSERT_FALSE(work_.empty()) << std::strerror(errno);
    reference_ = make_temp_dir("/dev/shm", "sealfs-difftest-ref");
    ASSERT_FALSE(reference_.empty()) << std::strerror(errno);
    region_ = work_ + "/region";
    mountpoint_ = work_ + "/mnt";
    ASSERT_EQ(mkdir(mountpoint_.c_str(), 0755), 0);

    int fd = open(region_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 512LL << 20), 0);
    close(fd);
    std::string log = work_ + "/mkfs.log";
    ASSERT_EQ(run_process({bins_.mkfs, "-f", "--size", "512M", region_}, log, 120), 0)
        << "mkfs.sealfs failed:\n" << tail_of(log);
  }

  void TearDown() override {
    mount_.unmount();
    // Kept on failure so the trees and the daemon log can be read.
    if (HasFailure()) {
      std::fprintf(stderr, "kept for inspection: %s %s\n", work_.c_str(), reference_.c_str());
      return;
    }
    if (!work_.empty()) remove_tree(work_);
    if (!reference_.empty()) remove_tree(reference_);
  }

  std::string mount_sealfs(const char* options, const char* log_name) {
    return mount_.mount(bins_.sealfs, region_, mountpoint_, options, work_ + "/" + log_name);
  }

  Binaries bins_;
  std::string work_, reference_, region_, mountpoint_;
  SealfsMount mount_;
};

TEST_P(DifftestMount, AgreesWithTmpfsAndSurvivesRemount) {
  const Case& c = GetParam();
  std::string seed = env_or("DIFFTEST_SEED", std::to_string(c.seed));
  std::string ops = env_or("DIFFTEST_OPS", "10000");

  std::string error = mount_sealfs(c.mount_options, "sealfs-1.log");
  ASSERT_EQ(error, "") << "mounting sealfs";
  std::vector<std::string> argv = {bins_.difftest, "--a", mountpoint_, "--b", reference_,
                                   "--seed", seed, "--ops", ops, "--keep"};
  argv.insert(argv.end(), c.difftest_flags.begin(), c.difftest_flags.end());
  std::istringstream extra(env_or("DIFFTEST_FLAGS", ""));
  for (std::string flag; extra >> flag;) argv.push_back(flag);
  EXPECT_EQ(run_process(argv, "", 1500), 0)
      << "difftest found a divergence (report above); daemon log " << work_ << "/sealfs-1.log";
  error = mount_.unmount();
  ASSERT_EQ(error, "") << "unmounting after difftest";
  if (HasFailure()) return;

  // Everything difftest left must come back from the region as it was.
  error = mount_sealfs(c.mount_options, "sealfs-2.log");
  ASSERT_EQ(error, "") << "mounting sealfs again";
  EXPECT_EQ(run_process({bins_.difftest, "--a", mountpoint_, "--b", reference_, "--compare-only"},
                        "", 300),
            0)
      << "the tree changed across unmount and mount";
  EXPECT_EQ(mount_.unmount(), "") << "unmounting after the remount check";
}

INSTANTIATE_TEST_SUITE_P(Mounts, DifftestMount, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace difftest
