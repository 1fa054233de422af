// The documented examples (docs/examples/map_file.c, quoted by README.md,
// and its C++17 twin over sealfs.hpp) run against a real mount: each
// creates a file, sizes it, maps it with SEALFS_MAP_ALLOCATE and stores a
// record, which must then read back through the ordinary file API.
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "lease_fixture.h"

namespace sealfs::itest {
namespace {

constexpr char kRecord[] = "hello, persistent memory";
constexpr off_t kLength = 16 << 20;

std::string example(const char* variable) {
  const char* path = std::getenv(variable);
  return path != nullptr ? path : "";
}

class ExamplesTest : public MountFixture {
 protected:
  void run_example(const std::string& binary, const std::string& name) {
    ASSERT_FALSE(binary.empty()) << "the example's path is not set (meson sets it)";
    std::string output;
    int rc = run_command({binary, path(name)}, &output);
    ASSERT_EQ(rc, 0) << output;
    EXPECT_EQ(output, path(name) + ": " + std::to_string(sizeof kRecord) +
                          " bytes stored through a direct mapping of " +
                          std::to_string(kLength) + "\n");
    struct stat st {};
    ASSERT_EQ(stat(path(name).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, kLength);
    const std::string data = read_file(path(name));
    ASSERT_EQ(data.size(), static_cast<size_t>(kLength));
    EXPECT_EQ(data.substr(0, sizeof kRecord), std::string(kRecord, sizeof kRecord));
    // Allocated and zeroed, not left a hole.
    EXPECT_EQ(data.find_first_not_of('\0', sizeof kRecord), std::string::npos);
  }
};

TEST_F(ExamplesTest, CExampleWorksAsWritten) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(run_example(example("MAP_FILE_C"), "table.db"));
  // Again on the file it made: the same result, and the data survive a remount.
  ASSERT_NO_FATAL_FAILURE(run_example(example("MAP_FILE_C"), "table.db"));
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(read_file(path("table.db")).substr(0, sizeof kRecord),
            std::string(kRecord, sizeof kRecord));
}

TEST_F(ExamplesTest, Cxx17ExampleWorksAsWritten) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(run_example(example("MAP_FILE_CPP17"), "table.db"));
}

// A user who may not hold direct mappings (neither root, nor the daemon's
// user, nor in dax_group) gets -EACCES: the example reports it and fails,
// as every return it checks should, instead of using a mapping it lacks.
TEST_F(ExamplesTest, CExampleReportsARefusal) {
  auto user = test_user();
  ASSERT_TRUE(user.has_value()) << "no unprivileged test user";
  ASSERT_EQ(chmod(dir().c_str(), 0755), 0);  // let the user reach the mountpoint
  MountConfig config;
  config.options = "allow_other";
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  ASSERT_EQ(mkdir(path("shared").c_str(), 0777), 0);
  ASSERT_EQ(chmod(path("shared").c_str(), 0777), 0);
  std::string output;
  int rc = run_command({example("MAP_FILE_C"), path("shared/table.db")}, &output, user->uid,
                       user->gid);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_EQ(output.rfind("sealfs_map: Permission denied (", 0), 0u) << output;
}

}  // namespace
}  // namespace sealfs::itest
