// util/proc_file.h: reading kernel-made files without exceptions, and the
// process start time that names a holder for good.
#include "util/proc_file.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/descriptors.h"

namespace sealfs {
namespace {

// A read that fails after a successful open (a directory here; a process
// that died between the open and the read of its /proc file in the daemon)
// is a Status, not an exception: through std::ifstream and
// std::istreambuf_iterator the same failure threw and aborted the daemon.
TEST(ProcFileTest, AReadErrorAfterTheOpenIsAStatus) {
  Result<std::string> text = read_kernel_file("/proc/self");
  ASSERT_FALSE(text.is_ok());
  EXPECT_NE(text.status().to_string().find("read /proc/self"), std::string::npos)
      << text.status().to_string();
  EXPECT_FALSE(read_kernel_file("/proc/self/no-such-file").is_ok());
}

TEST(ProcFileTest, ReadsTheWholeFileUpToTheLimit) {
  Result<std::string> whole = read_kernel_file("/proc/self/maps");
  ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
  EXPECT_GT(whole->size(), 4096u);  // more than one read(2) of the loop
  Result<std::string> cut = read_kernel_file("/proc/self/maps", 100);
  ASSERT_TRUE(cut.is_ok());
  EXPECT_EQ(*cut, whole->substr(0, 100));
}

// The command name may contain ") " and digits: fields are counted after
// the last ')'. The start time must not change with the name.
TEST(ProcFileTest, StartTimeSurvivesACommandNameThatLooksLikeFields) {
  char saved[17] = {};
  ASSERT_EQ(prctl(PR_GET_NAME, saved), 0);
  Result<uint64_t> before = process_start_time(static_cast<uint32_t>(getpid()));
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  ASSERT_EQ(prctl(PR_SET_NAME, "x) 1 2\n(3) 4 5"), 0);
  Result<uint64_t> during = process_start_time(static_cast<uint32_t>(getpid()));
  ASSERT_EQ(prctl(PR_SET_NAME, saved), 0);
  ASSERT_TRUE(during.is_ok()) << during.status().to_string();
  EXPECT_EQ(*during, *before);
}

TEST(ProcFileTest, AReapedChildHasNoStartTime) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  Result<uint64_t> alive_or_zombie = process_start_time(static_cast<uint32_t>(child));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(alive_or_zombie.is_ok());  // a zombie still has its /proc entry
  Result<uint64_t> reaped = process_start_time(static_cast<uint32_t>(child));
  ASSERT_FALSE(reaped.is_ok());
  EXPECT_EQ(reaped.status().code(), Code::kNotFound) << reaped.status().to_string();
}

// "Gone" and "cannot tell" differ: out of descriptors, the start time of a
// live process is an error other than kNotFound, which holder liveness
// (meta/holder_liveness.h) takes for alive.
TEST(ProcFileTest, OutOfDescriptorsIsNotGone) {
  std::optional<Result<uint64_t>> started;
  testing_support::with_no_free_descriptor(
      [&] { started = process_start_time(static_cast<uint32_t>(getpid())); });
  ASSERT_TRUE(started.has_value());
  ASSERT_FALSE(started->is_ok());
  EXPECT_NE(started->status().code(), Code::kNotFound) << started->status().to_string();
}

// The command name comes without its newline, spaces and all.
TEST(ProcFileTest, CommandNameIsCommWithoutTheNewline) {
  char saved[17] = {};
  ASSERT_EQ(prctl(PR_GET_NAME, saved), 0);
  ASSERT_EQ(prctl(PR_SET_NAME, "a name here"), 0);
  Result<std::string> name = process_command_name(static_cast<uint32_t>(getpid()));
  ASSERT_EQ(prctl(PR_SET_NAME, saved), 0);
  ASSERT_TRUE(name.is_ok()) << name.status().to_string();
  EXPECT_EQ(*name, "a name here");
  EXPECT_EQ(process_command_name(0x3fffffff).status().code(), Code::kNotFound);
}

// A status text in the kernel's shape: "Key:" then a tab. The Name line
// shows a name that looks like another key; only a key at the start of a
// line counts (the kernel escapes a newline in the name).
constexpr const char* kStatus =
    "Name:\tCapEff: ffff\\nGroups: 1\n"
    "Umask:\t0022\n"
    "CapInh:\t0000000000000000\n"
    "CapEff:\t000001ffffffffff\n"
    "Groups:\t4 24 27 \n"
    "SigBlk:\tnot-hex\n";

TEST(ProcFileTest, StatusFieldsByKeyAtTheStartOfALine) {
  EXPECT_EQ(status_field(kStatus, "Umask"), std::optional<std::string_view>("0022"));
  EXPECT_EQ(status_mask(kStatus, "CapEff"), std::optional<uint64_t>(0x1ffffffffffull));
  EXPECT_EQ(status_mask(kStatus, "CapInh"), std::optional<uint64_t>(0));
  EXPECT_EQ(status_mask(kStatus, "SigBlk"), std::nullopt);   // does not parse
  EXPECT_EQ(status_mask(kStatus, "CapPrm"), std::nullopt);   // missing
  EXPECT_EQ(status_field(kStatus, "Cap"), std::nullopt);     // a prefix of a key is not a key
  EXPECT_EQ(status_ids(kStatus, "Groups"), (std::vector<uint32_t>{4, 24, 27}));
  EXPECT_TRUE(status_ids("Groups:\t\n", "Groups").empty());
  EXPECT_TRUE(status_ids(kStatus, "Nothing").empty());
}

// The live file parses: a process has an effective capability mask.
TEST(ProcFileTest, ThisProcessStatusHasACapabilityMask) {
  Result<std::string> status = read_kernel_file("/proc/self/status");
  ASSERT_TRUE(status.is_ok()) << status.status().to_string();
  EXPECT_TRUE(status_mask(*status, "CapEff").has_value());
}

}  // namespace
}  // namespace sealfs
