// difftest checked against itself on tmpfs: two tmpfs trees agree for a long
// run, a seed replays the same sequence, and a planted difference is found.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

// Runs a shell command line; its combined output into *output, exit status back.
int run(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output->append(buf, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class DifftestSelf : public testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("DIFFTEST_BIN");
    ASSERT_NE(bin, nullptr) << "DIFFTEST_BIN is not set (meson sets it)";
    difftest_ = bin;
    std::string pattern = "/dev/shm/sealfs-difftest-self-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    top_ = pattern;
    a_ = top_ + "/a";
    b_ = top_ + "/b";
    ASSERT_EQ(mkdir(a_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(b_.c_str(), 0755), 0);
  }
  void TearDown() override {
    if (top_.empty()) return;
    // Through difftest, which clears the immutable and append-only flags
    // that stop a plain removal.
    std::string output;
    EXPECT_EQ(run(difftest_ + " --a " + a_ + " --b " + b_ + " --remove", &output), 0) << output;
    std::error_code ec;
    std::filesystem::remove_all(top_, ec);
    EXPECT_FALSE(std::filesystem::exists(top_)) << "left behind: " << top_;
  }
  std::string command(const std::string& args) const {
    // tmpfs as A lacks ZERO_RANGE just as B does: emulate it on both sides.
    return difftest_ + " --a " + a_ + " --b " + b_ + " --emulate-a " + args;
  }

  std::string difftest_, top_, a_, b_;
};

TEST_F(DifftestSelf, TmpfsAgreesWithTmpfs) {
  std::string output;
  EXPECT_EQ(run(command("--seed 11 --ops 10000"), &output), 0) << output;
  EXPECT_NE(output.find("10000 ops, no divergence"), std::string::npos) << output;
}

TEST_F(DifftestSelf, SeedReplaysTheSameSequence) {
  std::string first, second, other;
  ASSERT_EQ(run(command("--seed 77 --ops 2000 --trace"), &first), 0) << first;
  ASSERT_EQ(run(command("--seed 77 --ops 2000 --trace"), &second), 0) << second;
  ASSERT_EQ(run(command("--seed 78 --ops 2000 --trace"), &other), 0) << other;
  auto steps = [](const std::string& out) { return out.substr(0, out.rfind("\ndifftest:")); };
  EXPECT_EQ(steps(first), steps(second));
  EXPECT_NE(steps(first).substr(first.find('\n')), steps(other).substr(other.find('\n')));
}

TEST_F(DifftestSelf, FindsAPlantedDifference) {
  std::string output;
  ASSERT_EQ(run(command("--seed 5 --ops 300 --keep"), &output), 0) << output;
  ASSERT_EQ(run(command("--compare-only"), &output), 0) << output;
  // One byte more on A in a file of the tree difftest left.
  std::ofstream(a_ + "/difftest.work/planted", std::ios::binary) << "x";
  std::ofstream(b_ + "/difftest.work/planted", std::ios::binary) << "y";
  output.clear();
  EXPECT_EQ(run(command("--compare-only"), &output), 1) << output;
  EXPECT_NE(output.find("\"planted\" content differs"), std::string::npos) << output;
}

TEST_F(DifftestSelf, ReportsAResultDivergenceWithAReproduction) {
  // A without ZERO_RANGE emulation: tmpfs refuses it with EOPNOTSUPP while B
  // emulates it, which is exactly a result divergence.
  std::string output;
  std::string cmd = difftest_ + " --a " + a_ + " --b " + b_ + " --seed 3 --ops 20000";
  EXPECT_EQ(run(cmd, &output), 1) << output;
  EXPECT_NE(output.find("DIVERGENCE at step"), std::string::npos) << output;
  EXPECT_NE(output.find("EOPNOTSUPP"), std::string::npos) << output;
  EXPECT_NE(output.find("reproduce: difftest --a '" + a_ + "' --b '" + b_ + "' --seed 3 --ops "),
            std::string::npos)
      << output;
}

}  // namespace
