// fsck as an admin meets it (issue 9): what -n says it would do (and never
// that it did), directory problems named by path, an unformatted target
// called that, preen (-p) repairing only what is safe unattended, and the
// progress callback and meter.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>

#include "fsck/preen.h"
#include "fsck/progress.h"
#include "fsck_fixture.h"

namespace sealfs::fsck::testing {
namespace {

class FsckAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = populated().image;
    geo_ = populated().geo;
  }
  const Populated& p() const { return populated(); }

  // Frees a named inode's slot: its entries dangle, its blocks leak.
  void zero_inode(uint64_t ino) { put_inode(image_, geo_, ino, format::DiskInode{}, false); }

  std::string details(const Report& r) {
    std::string out;
    for (const Problem& pr : r.problems) out += pr.kind + ": " + pr.detail + "\n";
    return out;
  }

  Bytes image_;
  Geometry geo_;
};

// Past-tense repair words: -n made none of those changes.
const std::regex kDone("\\b(cleared|removed|freed|dropped|rewritten|emptied|moved|recreated|"
                       "fixed|reset|created|restored|taken off|cut there|marked used|set to)\\b");

TEST_F(FsckAdminTest, CheckOnlySaysWouldNeverDone) {
  // Several kinds at once: a cleared inode (dangling entry, leaked blocks),
  // a bad crc, a wrong link count, a leaked block.
  zero_inode(p().sparse);
  auto d = get_inode(image_, geo_, p().file2);
  d.mtime_ns.set(d.mtime_ns.get() ^ 1);
  put_inode(image_, geo_, p().file2, d, /*seal=*/false);
  auto l = get_inode(image_, geo_, p().link_long);
  l.nlink.set(3);
  put_inode(image_, geo_, p().link_long, l);
  set_bit(image_, geo_, geo_.data_start + geo_.data_blocks - 1, true);

  FsckRun check = run(image_, false);
  ASSERT_EQ(check.report.exit_code, kExitUncorrected) << details(check.report);
  ASSERT_GE(check.report.problems.size(), 5u) << details(check.report);
  for (const Problem& pr : check.report.problems) {
    EXPECT_FALSE(std::regex_search(pr.detail, kDone)) << pr.kind << ": " << pr.detail;
    EXPECT_NE(pr.detail.find("would "), std::string::npos) << pr.kind << ": " << pr.detail;
  }
  std::string text = render_text(check.report, false);
  EXPECT_EQ(text.find("FIXED"), std::string::npos) << text;

  // -y says what it did.
  FsckRun fix = run(image_, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << details(fix.report);
  for (const Problem& pr : fix.report.problems) {
    EXPECT_EQ(pr.detail.find("would "), std::string::npos) << pr.kind << ": " << pr.detail;
  }
  EXPECT_TRUE(has_kind(fix.report, "leaked_blocks"));
}

TEST_F(FsckAdminTest, DirectoryProblemsNamePaths) {
  // /a/b/sparse loses its inode: the entry in /a/b dangles.
  zero_inode(p().sparse);
  FsckRun check = run(image_, false);
  bool found = false;
  for (const Problem& pr : check.report.problems) {
    if (pr.kind != "dangling_entry") continue;
    found = true;
    EXPECT_NE(pr.detail.find("'/a/b/sparse'"), std::string::npos) << pr.detail;
    EXPECT_NE(pr.detail.find("free inode " + std::to_string(p().sparse)), std::string::npos)
        << pr.detail;
  }
  EXPECT_TRUE(found) << details(check.report);
}

TEST_F(FsckAdminTest, DirectoryLinkCountNamesThePath) {
  auto d = get_inode(image_, geo_, p().dir_b);
  d.nlink.set(7);
  put_inode(image_, geo_, p().dir_b, d);
  FsckRun check = run(image_, false);
  ASSERT_TRUE(has_kind(check.report, "wrong_nlink")) << details(check.report);
  EXPECT_NE(details(check.report).find("directory '/a/b': link count 7, should be 2"),
            std::string::npos)
      << details(check.report);
}

TEST_F(FsckAdminTest, UnformattedTargetIsNotCalledCorruption) {
  Bytes zeros(image_.size());
  FsckRun check = run(zeros, false);
  EXPECT_EQ(check.report.exit_code, kExitOperational);
  EXPECT_EQ(check.report.operational_error,
            "not a sealfs filesystem (bad magic); run mkfs.sealfs to create one");
  EXPECT_EQ(check.report.problem_count, 0u) << details(check.report);
  std::string text = render_text(check.report, false);
  EXPECT_EQ(text.find("corruption"), std::string::npos) << text;
}

TEST_F(FsckAdminTest, DamagedSuperblocksAreStillCorruption) {
  // The magic is there, the crc is not: damage, not a blank target.
  image_[12] ^= std::byte{1};
  image_[(geo_.region_blocks - 1) * format::kBlockSize + 12] ^= std::byte{1};
  FsckRun check = run(image_, false);
  EXPECT_EQ(check.report.exit_code, kExitOperational);
  EXPECT_TRUE(has_kind(check.report, "no_superblock")) << details(check.report);
  EXPECT_EQ(check.report.operational_error.find("not a sealfs"), std::string::npos);
  // No counts from phases that never ran ("0/0 inodes used" read like an
  // empty filesystem), and no advice fsck cannot follow.
  std::string text = render_text(check.report, false);
  EXPECT_EQ(text.find("inodes used"), std::string::npos) << text;
  EXPECT_NE(text.find("keep a copy of the region"), std::string::npos) << text;
}

TEST_F(FsckAdminTest, ARefusalBeforeAnyPhaseListsNoPhases) {
  Bytes zeros(image_.size());
  FsckRun check = run(zeros, false);
  ASSERT_FALSE(check.report.operational_error.empty());
  std::string text = render_text(check.report, false);
  EXPECT_EQ(text.find("Phase "), std::string::npos) << text;
  EXPECT_NE(text.find("error: not a sealfs filesystem"), std::string::npos) << text;
}

FsckRun run_preen(const Bytes& image) {
  auto region = RegionDram::from_image(image);
  FsckOptions o;
  o.repair = true;
  o.preen = true;
  o.target = "dram";
  o.holder_alive = [](uint32_t, uint64_t) { return false; };
  FsckRun r;
  r.report = run_fsck(*region, o);
  r.image = region->image();
  return r;
}

TEST_F(FsckAdminTest, PreenRepairsWhatIsSafe) {
  set_bit(image_, geo_, geo_.data_start + geo_.data_blocks - 1, true);  // a leak
  auto f = get_inode(image_, geo_, p().file2);
  f.nlink.set(4);
  put_inode(image_, geo_, p().file2, f);
  FsckRun preen = run_preen(image_);
  EXPECT_EQ(preen.report.exit_code, kExitCorrected) << details(preen.report);
  EXPECT_TRUE(preen.report.preen);
  EXPECT_EQ(preen.report.preen_unsafe, 0u);
  EXPECT_TRUE(has_kind(preen.report, "leaked_blocks"));
  EXPECT_TRUE(has_kind(preen.report, "wrong_nlink"));
  EXPECT_EQ(run(preen.image, false).report.exit_code, kExitClean);
}

TEST_F(FsckAdminTest, PreenChangesNothingWhenAPersonMustDecide) {
  set_bit(image_, geo_, geo_.data_start + geo_.data_blocks - 1, true);  // safe
  auto d = get_inode(image_, geo_, p().file2);                          // not safe:
  d.mtime_ns.set(d.mtime_ns.get() ^ 1);                                 // clearing an
  put_inode(image_, geo_, p().file2, d, /*seal=*/false);                // inode loses data
  FsckRun preen = run_preen(image_);
  EXPECT_EQ(preen.report.exit_code, kExitUncorrected) << details(preen.report);
  EXPECT_EQ(preen.image, image_) << "preen wrote to an image that needs a person";
  EXPECT_GE(preen.report.preen_unsafe, 1u);
  EXPECT_EQ(preen.report.repaired_count, 0u);
  std::string text = render_text(preen.report, false);
  EXPECT_NE(text.find("UNEXPECTED INCONSISTENCY"), std::string::npos) << text;
  EXPECT_NE(text.find("fsck.sealfs -y"), std::string::npos) << text;
  EXPECT_NE(render_json(preen.report).find("\"mode\":\"preen\""), std::string::npos);
}

TEST(FsckPreenTable, SafeKindsLoseNothing) {
  for (const char* kind : {"leaked_blocks", "used_but_free", "wrong_nlink", "orphan_pending",
                           "journal_replayed", "stale_holder", "block_count"}) {
    EXPECT_TRUE(preen_safe(kind)) << kind;
  }
  // Keeping an inode whose crc failed is a guess that its fields are right.
  for (const char* kind : {"inode_bad_crc", "inode_bad_crc_salvaged", "inode_corrupt",
                           "dangling_entry", "cross_linked", "extent_bad", "disconnected_inode",
                           "dir_block_corrupt", "journal_corrupt", "xattr_bad", "inode_flags",
                           "no_such_kind"}) {
    EXPECT_FALSE(preen_safe(kind)) << kind;
  }
}

TEST_F(FsckAdminTest, ProgressReachesTheEndOfEachLongPhase) {
  struct Seen {
    uint64_t calls = 0, last_done = 0, total = 0;
  };
  std::array<Seen, kPhaseCount> seen{};
  bool monotonic = true;
  auto region = RegionDram::from_image(image_);
  FsckOptions o;
  o.target = "dram";
  o.progress = [&](Phase phase, uint64_t done, uint64_t total) {
    Seen& s = seen[static_cast<int>(phase)];
    if (done < s.last_done || done > total) monotonic = false;
    ++s.calls;
    s.last_done = done;
    s.total = total;
  };
  Report r = run_fsck(*region, o);
  ASSERT_EQ(r.exit_code, kExitClean);
  EXPECT_TRUE(monotonic);
  for (Phase phase : {Phase::kInodes, Phase::kExtents, Phase::kDirectories}) {
    const Seen& s = seen[static_cast<int>(phase)];
    EXPECT_GT(s.calls, 0u) << phase_name(phase);
    EXPECT_EQ(s.last_done, s.total) << phase_name(phase);
  }
  // Phase 4 counts inodes in use, not slots.
  EXPECT_EQ(seen[static_cast<int>(Phase::kExtents)].total, r.counts.inodes_used);
}

TEST(FsckProgressMeter, TerminalLineNamesPhasePercentAndRate) {
  std::string line = ProgressMeter::line(Phase::kExtents, 50000, 200000, 0.25);
  EXPECT_EQ(line, "Phase 4/8 extents:  25.0% (50000 of 200000 inodes, 200k/s)");
}

std::string drain(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(FsckProgressMeter, MachineStyleWritesOneLinePerUpdate) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  {
    ProgressMeter meter(fds[1], ProgressMeter::Style::kMachine, "/r");
    meter.update(Phase::kInodes, 1, 4);
    meter.update(Phase::kInodes, 4, 4);  // the end of a phase is always written
  }
  ::close(fds[1]);
  EXPECT_EQ(drain(fds[0]), "3 1 4 /r\n3 4 4 /r\n");
  ::close(fds[0]);
}

TEST(FsckProgressMeter, TerminalStyleRewritesOneLineAndErasesIt) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  {
    ProgressMeter meter(fds[1], ProgressMeter::Style::kTerminal, "/r");
    meter.update(Phase::kDirectories, 2, 2);
    meter.finish();
  }
  ::close(fds[1]);
  std::string out = drain(fds[0]);
  ::close(fds[0]);
  EXPECT_EQ(out.rfind("\rPhase 6/8 directories: 100.0% (2 of 2 inodes, ", 0), 0u) << out;
  EXPECT_EQ(out.find('\n'), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\r\33[K")) << out;
}

}  // namespace
}  // namespace sealfs::fsck::testing
