// sealfs-layout against real mounts: what the tool prints is checked against
// what the test wrote (sizes, holes, the bytes at the reported region
// offsets), against the lease table the test's holders create, and against
// the region read offline after unmount.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <cstring>
#include <string>
#include <vector>

#include "../lease/pattern.h"
#include "json_value.h"
#include "wire/fd_passing.h"
#include "wire/wire.h"
#include "lease_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t k2M = 2 * kMiB;

const std::string& layout_bin() {
  static const std::string bin = [] {
    const char* v = std::getenv("LAYOUT_BIN");
    return std::string(v ? v : "sealfs-layout");
  }();
  return bin;
}

// Runs sealfs-layout (as `user` when given); its stdout+stderr in *out, the
// exit status returned.
int layout(const std::vector<std::string>& args, std::string* out,
           const std::optional<TestUser>& user = std::nullopt) {
  std::vector<std::string> argv{layout_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  if (user) return run_command(argv, out, user->uid, user->gid);
  return run_command(argv, out);
}

Json layout_json(const std::vector<std::string>& args, int want_status = 0,
                 const std::optional<TestUser>& user = std::nullopt) {
  std::string out;
  std::vector<std::string> with_json = args;
  with_json.push_back("--json");
  const int status = layout(with_json, &out, user);
  EXPECT_EQ(status, want_status) << out;
  auto parsed = Json::parse(out);
  EXPECT_TRUE(parsed) << "not JSON: " << out;
  return parsed ? *parsed : Json{};
}

// Writes `length` bytes of pattern `seed` at `offset` (pwrite, fsync).
// `preallocate`: fallocate the range first, in one request, so it is one
// allocation (aligned on a 2 MiB-aligned filesystem when >= 2 MiB).
void write_pattern(const std::string& file, uint64_t offset, uint64_t length, uint64_t seed,
                   bool preallocate = false) {
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  if (preallocate) {
    ASSERT_EQ(fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(length)), 0)
        << std::strerror(errno);
  }
  std::vector<uint8_t> buf(length);
  fill_lease_pattern(buf.data(), buf.size(), seed, offset);
  ASSERT_EQ(pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(length));
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
}

// Whether the region file holds pattern `seed` (file offset `file_offset`)
// at `region_offset` for `length` bytes.
::testing::AssertionResult region_holds(const std::string& region, uint64_t region_offset,
                                        uint64_t length, uint64_t seed, uint64_t file_offset) {
  int fd = open(region.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ::testing::AssertionFailure() << "open region: " << std::strerror(errno);
  std::vector<uint8_t> buf(length);
  const ssize_t n = pread(fd, buf.data(), length, static_cast<off_t>(region_offset));
  close(fd);
  if (n != static_cast<ssize_t>(length)) return ::testing::AssertionFailure() << "short read";
  const size_t bad = lease_pattern_mismatch(buf.data(), length, seed, file_offset);
  if (bad != length) {
    return ::testing::AssertionFailure()
           << "region offset " << region_offset + bad << " is not file byte " << file_offset + bad;
  }
  return ::testing::AssertionSuccess();
}

class LayoutTest : public LeaseFixture {
 protected:
  // 2 MiB device alignment, so large allocations land on 2 MiB boundaries.
  void mount_aligned(unsigned break_time = 2) {
    ASSERT_NO_FATAL_FAILURE(mount_with(break_time, "", 64 * kMiB, {"--align", "2097152"}));
  }
};

// A sequential 6 MiB file, a small file, and a sparse file with an
// unwritten tail: extents tile what was written, holes are shown where
// nothing was, every extent's region bytes are the file's bytes, and the
// aligned flag is right for each.
TEST_F(LayoutTest, ExtentsMatchWhatWasWritten) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("big"), 0, 6 * kMiB, 1, /*preallocate=*/true));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("small"), 0, 8 * kKiB, 2));
  // sparse: [0, 1M) data, [1M, 5M) hole, [5M, 6M) data, [6M, 7M) unwritten.
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("sparse"), 0, kMiB, 3));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("sparse"), 5 * kMiB, kMiB, 3));
  {
    int fd = open(path("sparse").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fallocate(fd, 0, 6 * kMiB, kMiB), 0) << std::strerror(errno);
    close(fd);
  }
  Json all = layout_json({"extents", path("big"), path("small"), path("sparse")});
  ASSERT_EQ(all["files"].size(), 3u);
  EXPECT_EQ(all["source"].text, "daemon");

  const Json& big = all["files"][0];
  EXPECT_EQ(big["size"].u(), 6 * kMiB);
  uint64_t sum = 0;
  for (const Json& e : big["extents"].items) {
    sum += e["length"].u();
    EXPECT_TRUE(region_holds(region_path(), e["region_offset"].u(), e["length"].u(), 1,
                             e["file_offset"].u()));
    const bool aligned = e["file_offset"].u() % k2M == 0 && e["region_offset"].u() % k2M == 0 &&
                         e["length"].u() >= k2M;
    EXPECT_EQ(e["aligned"].boolean, aligned);
    EXPECT_FALSE(e["unwritten"].boolean);
  }
  EXPECT_EQ(sum, 6 * kMiB);
  EXPECT_EQ(big["holes"].size(), 0u);
  EXPECT_EQ(big["summary"]["extents"].u(), big["extents"].size());
  // One 6 MiB allocation on an empty, 2 MiB-aligned filesystem: aligned space.
  ASSERT_GE(big["extents"].size(), 1u);
  EXPECT_TRUE(big["extents"][0]["aligned"].boolean);
  EXPECT_EQ(big["summary"]["aligned_bytes"].u(), big["summary"]["mapped_bytes"].u());

  const Json& small = all["files"][1];
  ASSERT_EQ(small["extents"].size(), 1u);
  EXPECT_EQ(small["extents"][0]["length"].u(), 8 * kKiB);
  EXPECT_FALSE(small["extents"][0]["aligned"].boolean);  // shorter than 2 MiB
  EXPECT_TRUE(region_holds(region_path(), small["extents"][0]["region_offset"].u(), 8 * kKiB, 2, 0));

  const Json& sparse = all["files"][2];
  EXPECT_EQ(sparse["size"].u(), 7 * kMiB);
  ASSERT_EQ(sparse["holes"].size(), 1u);
  EXPECT_EQ(sparse["holes"][0]["file_offset"].u(), kMiB);
  EXPECT_EQ(sparse["holes"][0]["length"].u(), 4 * kMiB);
  uint64_t written = 0, unwritten = 0;
  for (const Json& e : sparse["extents"].items) {
    (e["unwritten"].boolean ? unwritten : written) += e["length"].u();
    if (e["unwritten"].boolean) {
      EXPECT_GE(e["file_offset"].u(), 6 * kMiB);
    } else {
      EXPECT_TRUE(region_holds(region_path(), e["region_offset"].u(), e["length"].u(), 3,
                               e["file_offset"].u()));
    }
  }
  EXPECT_EQ(written, 2 * kMiB);
  EXPECT_EQ(unwritten, kMiB);
  EXPECT_EQ(written + unwritten + 4 * kMiB, 7 * kMiB);  // extents and holes tile the file

  // The human form shows the hole and the summary line.
  std::string text;
  ASSERT_EQ(layout({"extents", path("sparse")}, &text), 0) << text;
  EXPECT_NE(text.find("hole"), std::string::npos) << text;
  EXPECT_NE(text.find("1 hole,"), std::string::npos) << text;
  EXPECT_NE(text.find("unwritten"), std::string::npos) << text;
  // Ranges are exact: the small file's 8K extent lies inside a megabyte and
  // once printed as "[62M, 62M)"-like rounded ends; in K both ends are whole.
  const uint64_t small_at = small["extents"][0]["region_offset"].u();
  text.clear();
  ASSERT_EQ(layout({"extents", path("small")}, &text), 0) << text;
  const std::string want = "[" + std::to_string(small_at / kKiB) + "K, " +
                           std::to_string(small_at / kKiB + 8) + "K)";
  EXPECT_NE(text.find(want), std::string::npos) << want << " in\n" << text;

  // Offline, after unmount, the region says the same.
  ASSERT_NO_FATAL_FAILURE(unmount());
  Json offline = layout_json({"extents", "--image", region_path(), "/big", "/small", "sparse"});
  EXPECT_EQ(offline["source"].text, "image");
  ASSERT_EQ(offline["files"].size(), 3u);
  for (size_t f = 0; f < 3; ++f) {
    const Json& a = all["files"][f];
    const Json& b = offline["files"][f];
    EXPECT_EQ(a["size"].u(), b["size"].u());
    ASSERT_EQ(a["extents"].size(), b["extents"].size()) << f;
    for (size_t i = 0; i < a["extents"].size(); ++i) {
      EXPECT_EQ(a["extents"][i]["region_offset"].u(), b["extents"][i]["region_offset"].u());
      EXPECT_EQ(a["extents"][i]["length"].u(), b["extents"][i]["length"].u());
      EXPECT_EQ(a["extents"][i]["unwritten"].boolean, b["extents"][i]["unwritten"].boolean);
    }
  }
}

// chattr's flags and the project id show in the file's header, from the
// daemon and offline alike.
TEST_F(LayoutTest, ExtentsShowInodeFlags) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("f"), 0, 8 * kKiB, 2));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("plain"), 0, 8 * kKiB, 2));
  std::string out;
  ASSERT_EQ(run_command({"chattr", "+a", "+d", "-p", "31", path("f")}, &out), 0) << out;
  for (bool offline : {false, true}) {
    SCOPED_TRACE(offline ? "offline" : "daemon");
    if (offline) {
      ASSERT_NO_FATAL_FAILURE(unmount());
    }
    Json all = offline ? layout_json({"extents", "--image", region_path(), "/f", "/plain"})
                       : layout_json({"extents", path("f"), path("plain")});
    ASSERT_EQ(all["files"].size(), 2u);
    const Json& f = all["files"][0];
    ASSERT_EQ(f["inode_flags"].size(), 2u);
    EXPECT_EQ(f["inode_flags"][0].text, "append-only");
    EXPECT_EQ(f["inode_flags"][1].text, "nodump");
    EXPECT_EQ(f["project_id"].u(), 31u);
    EXPECT_EQ(all["files"][1]["inode_flags"].size(), 0u);
    EXPECT_EQ(all["files"][1]["project_id"].u(), 0u);
  }
  std::string text;
  ASSERT_EQ(layout({"extents", "--image", region_path(), "/f"}, &text), 0) << text;
  EXPECT_NE(text.find("flags append-only,nodump, project 31"), std::string::npos) << text;
}

// A file kept in its inode slot has no extent and no hole: the tool says
// how many bytes the slot holds, from the daemon and offline alike.
TEST_F(LayoutTest, ExtentsShowAnInlineFile) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  write_file(path("tiny"), std::string(100, 't'));
  for (bool offline : {false, true}) {
    SCOPED_TRACE(offline ? "offline" : "daemon");
    if (offline) {
      ASSERT_NO_FATAL_FAILURE(unmount());
    }
    Json all = offline ? layout_json({"extents", "--image", region_path(), "/tiny"})
                       : layout_json({"extents", path("tiny")});
    ASSERT_EQ(all["files"].size(), 1u);
    const Json& f = all["files"][0];
    EXPECT_EQ(f["size"].u(), 100u);
    EXPECT_EQ(f["inline_bytes"].u(), 100u);
    EXPECT_EQ(f["extents"].size(), 0u);
    EXPECT_EQ(f["holes"].size(), 0u);
    EXPECT_EQ(f["inode_flags"].size(), 0u);
  }
  std::string text;
  ASSERT_EQ(layout({"extents", "--image", region_path(), "/tiny"}, &text), 0) << text;
  EXPECT_NE(text.find("inline 100 bytes in the inode slot, no extents"), std::string::npos)
      << text;
}

// A symbolic link is not followed, and the refusal says so (it said "Too
// many levels of symbolic links", which sent a new user looking for a loop).
TEST_F(LayoutTest, ExtentsOfASymbolicLinkSaysItIsOne) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  write_file(path("target"), std::string(100, 't'));
  ASSERT_EQ(symlink("target", path("link").c_str()), 0);
  std::string text;
  EXPECT_NE(layout({"extents", path("link")}, &text), 0) << text;
  EXPECT_NE(text.find("is a symbolic link, which is not followed"), std::string::npos) << text;
}

// A read-write daemon owns the region: reading it offline is refused
// (exit 4) rather than showing a picture that changes underneath.
TEST_F(LayoutTest, ImageOfAMountedRegionIsRefused) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("f"), 0, 4096, 1));
  std::string out;
  EXPECT_EQ(layout({"extents", "--image", region_path(), "/f"}, &out), 4) << out;
  EXPECT_NE(out.find("in use"), std::string::npos) << out;
  EXPECT_EQ(layout({"super", region_path()}, &out), 4) << out;
}

// A lease is listed while held (and flags its extents), shows as breaking
// with its reason and time left during a break, and is gone once released.
TEST_F(LayoutTest, LeasesHeldBreakingAndGone) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned(5));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("mapped"), 0, 4 * kMiB, 1, /*preallocate=*/true));
  Json none = layout_json({"leases", mountpoint()});
  EXPECT_EQ(none["leases"].size(), 0u);

  HolderProcess& h = holder(/*coop=*/false);
  ASSERT_EQ(h.map(path("mapped"), 0, 4 * kMiB).rc, 0) << h.transcript();
  Json held = layout_json({"leases", mountpoint()});
  ASSERT_EQ(held["leases"].size(), 1u);
  const Json& l = held["leases"][0];
  EXPECT_EQ(l["pid"].u(), static_cast<uint64_t>(h.pid()));
  EXPECT_EQ(l["path"].text, path("mapped"));
  EXPECT_EQ(l["state"].text, "held");
  EXPECT_EQ(l["kind"].text, "map");
  EXPECT_FALSE(l["exclusive"].boolean);
  EXPECT_EQ(l["prot"].text, "rw");
  EXPECT_EQ(l["offset"].u(), 0u);
  EXPECT_EQ(l["length"].u(), 4 * kMiB);
  EXPECT_EQ(l["command"].text, "lease_it_holder");
  EXPECT_EQ(held["hidden"].u(), 0u);
  Json ext = layout_json({"extents", path("mapped")});
  for (const Json& e : ext["files"][0]["extents"].items) EXPECT_TRUE(e["leased"].boolean);

  // A truncate breaks the lease; the holder (manual) does not let go yet.
  TimedOp op([&] { return truncate(path("mapped").c_str(), 0); });
  ASSERT_TRUE(h.expect("break ", 5s)) << h.transcript();
  Json breaking = layout_json({"leases", mountpoint()});
  ASSERT_EQ(breaking["leases"].size(), 1u);
  EXPECT_EQ(breaking["leases"][0]["state"].text, "breaking");
  EXPECT_EQ(breaking["leases"][0]["reason"].text, "truncate");
  EXPECT_GT(breaking["leases"][0]["time_left_ns"].u(), 0u);
  EXPECT_LE(breaking["leases"][0]["time_left_ns"].u(), 5'000'000'000ull);

  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0")) << h.transcript();
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0);
  Json gone = layout_json({"leases", mountpoint()});
  EXPECT_EQ(gone["leases"].size(), 0u);
}

// An exclusive lease (SEALFS_MAP_EXCLUSIVE, what sealfs-run asks for) says
// so, and listing the leases opens no file, so it does not break one.
TEST_F(LayoutTest, AnExclusiveLeaseIsMarkedAndListingDoesNotBreakIt) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned(5));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("db"), 0, 2 * kMiB, 1, /*preallocate=*/true));
  HolderProcess& h = holder(/*coop=*/false);
  ASSERT_EQ(h.map(path("db"), 0, 2 * kMiB, "rw", SEALFS_MAP_EXCLUSIVE).rc, 0) << h.transcript();
  Json held = layout_json({"leases", mountpoint()});
  ASSERT_EQ(held["leases"].size(), 1u);
  EXPECT_EQ(held["leases"][0]["kind"].text, "map");
  EXPECT_TRUE(held["leases"][0]["exclusive"].boolean);
  std::string out;
  ASSERT_EQ(layout({"leases", mountpoint()}, &out), 0) << out;
  EXPECT_NE(out.find(" excl "), std::string::npos) << out;
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 0) << h.transcript();
  EXPECT_EQ(layout_json({"leases", mountpoint()})["leases"][0]["state"].text, "held");
}

// A revoked lease (revoke=quarantine, a stopped holder): the table shows it
// revoked, the file's remaining extent is flagged quarantined, and the
// blocks the truncate took from the file are quarantined space held by the
// holder's pid, until it dies.
TEST_F(LayoutTest, RevokedLeaseAndQuarantinedSpace) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1, "revoke=quarantine", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("f"), 0, 4 * kMiB, 1, /*preallocate=*/true));
  struct stat st {};
  ASSERT_EQ(stat(path("f").c_str(), &st), 0);
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, 4 * kMiB).rc, 0) << h.transcript();
  ASSERT_TRUE(h.stop());
  // Blocks until the 1 s deadline revokes the stopped holder's lease.
  ASSERT_EQ(truncate(path("f").c_str(), 2 * kMiB), 0) << std::strerror(errno);
  Json leases = layout_json({"leases", mountpoint()});
  ASSERT_EQ(leases["leases"].size(), 1u);
  EXPECT_EQ(leases["leases"][0]["state"].text, "revoked");
  EXPECT_EQ(leases["leases"][0]["pid"].u(), static_cast<uint64_t>(h.pid()));
  Json ext = layout_json({"extents", path("f")});
  ASSERT_GE(ext["files"][0]["extents"].size(), 1u);
  for (const Json& e : ext["files"][0]["extents"].items) {
    EXPECT_TRUE(e["quarantined"].boolean);
    EXPECT_FALSE(e["leased"].boolean);
  }
  Json free_space = layout_json({"free", mountpoint()});
  EXPECT_EQ(free_space["quarantined_bytes"].u(), 2 * kMiB);
  ASSERT_EQ(free_space["holders"].size(), 1u);
  EXPECT_EQ(free_space["holders"][0]["pid"].u(), static_cast<uint64_t>(h.pid()));
  EXPECT_EQ(free_space["holders"][0]["bytes"].u(), 2 * kMiB);
  EXPECT_EQ(free_space["holders"][0]["command"].text, "lease_it_holder");
  ASSERT_EQ(free_space["holders"][0]["inos"].size(), 1u);
  EXPECT_EQ(free_space["holders"][0]["inos"][0].u(), st.st_ino);

  const uint64_t before = free_blocks();
  h.signal(SIGKILL);
  ASSERT_TRUE(h.wait_exit(5s));
  ASSERT_TRUE(wait_free_blocks(before + 2 * kMiB / 4096, 5s)) << free_blocks();
  Json after = layout_json({"free", mountpoint()});
  EXPECT_EQ(after["quarantined_bytes"].u(), 0u);
  EXPECT_EQ(layout_json({"leases", mountpoint()})["leases"].size(), 0u);
}

// Offline, the quarantine of a holder that has exited since the unmount is
// shown as it is on media (a read-only mount cannot release it), naming the
// holder, instead of failing to read the region.
TEST_F(LayoutTest, QuarantineOfAnExitedHolderShowsOffline) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1, "revoke=quarantine", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("f"), 0, 4 * kMiB, 1, /*preallocate=*/true));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, 4 * kMiB).rc, 0) << h.transcript();
  ASSERT_TRUE(h.stop());
  ASSERT_EQ(truncate(path("f").c_str(), 2 * kMiB), 0) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(unmount());
  const pid_t pid = h.pid();
  h.signal(SIGKILL);
  ASSERT_TRUE(h.wait_exit(5s));
  Json cold = layout_json({"free", region_path()});
  EXPECT_EQ(cold["quarantined_bytes"].u(), 2 * kMiB);
  ASSERT_EQ(cold["holders"].size(), 1u);
  EXPECT_EQ(cold["holders"][0]["pid"].u(), static_cast<uint64_t>(pid));
  EXPECT_EQ(cold["holders"][0]["command"].text, "");  // gone
}

// Another user sees its own leases only (the others are counted as hidden)
// and the extents of files it may read, not of files it may not.
TEST_F(LayoutTest, OtherUsersSeeTheirsOnly) {
  auto user = test_user();
  ASSERT_TRUE(user.has_value());
  ASSERT_EQ(chmod(dir().c_str(), 0755), 0);  // let the user reach the mountpoint
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "allow_other", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("open"), 0, 2 * kMiB, 1, /*preallocate=*/true));
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("secret"), 0, 4096, 2));
  ASSERT_EQ(chmod(path("open").c_str(), 0644), 0);
  ASSERT_EQ(chmod(path("secret").c_str(), 0600), 0);
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("open"), 0, 2 * kMiB).rc, 0) << h.transcript();

  Json theirs = layout_json({"leases", mountpoint()}, 0, user);
  EXPECT_EQ(theirs["leases"].size(), 0u);
  EXPECT_EQ(theirs["hidden"].u(), 1u);
  Json root = layout_json({"leases", mountpoint()});
  EXPECT_EQ(root["leases"].size(), 1u);
  EXPECT_EQ(root["hidden"].u(), 0u);

  Json readable = layout_json({"extents", path("open")}, 0, user);
  ASSERT_EQ(readable["files"].size(), 1u);
  EXPECT_EQ(readable["files"][0]["summary"]["mapped_bytes"].u(), 2 * kMiB);
  std::string out;
  EXPECT_EQ(layout({"extents", path("secret")}, &out, user), 4) << out;
  EXPECT_NE(out.find("ermission denied"), std::string::npos) << out;
}

// The superblock through the daemon names the live mount; offline it is
// clean, with the same identity, and both copies agree.
TEST_F(LayoutTest, SuperOnlineAndOffline) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  Json live = layout_json({"super", mountpoint()});
  EXPECT_EQ(live["source"].text, "daemon");
  EXPECT_EQ(live["state"].text, "mounted");
  EXPECT_EQ(live["mount"]["pid"].u(), static_cast<uint64_t>(daemon_pid()));
  EXPECT_EQ(live["region_size"].u(), 64 * kMiB);
  EXPECT_EQ(live["device_alignment"].u(), k2M);
  EXPECT_EQ(live["backup"]["agreement"].text, "agrees");
  const uint64_t mounts = live["mount_count"].u();
  EXPECT_GE(mounts, 1u);
  ASSERT_NO_FATAL_FAILURE(unmount());
  Json cold = layout_json({"super", region_path()});
  EXPECT_EQ(cold["source"].text, "region");
  EXPECT_EQ(cold["state"].text, "clean");
  EXPECT_EQ(cold["uuid"].text, live["uuid"].text);
  EXPECT_EQ(cold["mount_count"].u(), mounts);
  EXPECT_EQ(cold["backup"]["agreement"].text, "agrees");
  EXPECT_EQ(cold["state_source"].text, "primary");
  std::string text;
  ASSERT_EQ(layout({"super", region_path()}, &text), 0) << text;
  EXPECT_NE(text.find("state             clean"), std::string::npos) << text;
}

// With the primary bad, the state shown is the backup's, and the tool says
// so instead of presenting it as how the daemon last stopped (the backup is
// written at mkfs and while mounted, never at unmount).
TEST_F(LayoutTest, SuperSaysWhenTheStateIsTheBackupCopys) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  ASSERT_NO_FATAL_FAILURE(unmount());
  int fd = open(region_path().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  uint8_t byte = 0;
  ASSERT_EQ(pread(fd, &byte, 1, 20), 1);
  byte ^= 0x40;  // inside the primary's crc coverage
  ASSERT_EQ(pwrite(fd, &byte, 1, 20), 1);
  close(fd);
  Json cold = layout_json({"super", region_path()}, 1);
  EXPECT_EQ(cold["backup"]["agreement"].text, "primary_bad");
  EXPECT_EQ(cold["state_source"].text, "backup");
  std::string text;
  EXPECT_EQ(layout({"super", region_path()}, &text), 1) << text;
  EXPECT_NE(text.find("in the backup copy (the primary is bad"), std::string::npos) << text;
  EXPECT_NE(text.find("never at unmount"), std::string::npos) << text;
}

// Free space: the histogram adds up to what statfs says is free, online and
// offline; a fragmented free space shows its small extents.
TEST_F(LayoutTest, FreeSpaceAddsUp) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  // Fragment: 16 small files, every other one removed.
  for (int i = 0; i < 16; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_pattern(path("f" + std::to_string(i)), 0, 64 * kKiB, 1));
  }
  const uint64_t before = free_blocks();
  for (int i = 0; i < 16; i += 2) ASSERT_EQ(unlink(path("f" + std::to_string(i)).c_str()), 0);
  // An unlinked file is freed once the kernel forgets it: wait for all 8.
  ASSERT_TRUE(wait_free_blocks(before + 8 * 16, 5s)) << free_blocks();
  struct statvfs sv {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &sv), 0);
  const uint64_t free_bytes = sv.f_bfree * sv.f_frsize;
  Json live = layout_json({"free", mountpoint()});
  EXPECT_EQ(live["free_bytes"].u(), free_bytes);
  uint64_t sum = 0, extents = 0, small_holes = 0;
  for (const Json& b : live["histogram"].items) {
    sum += b["bytes"].u();
    extents += b["extents"].u();
    if (b["from"].u() == 64 * kKiB) small_holes += b["extents"].u();
  }
  EXPECT_EQ(sum, free_bytes);
  EXPECT_EQ(extents, live["free_extents"].u());
  EXPECT_GE(small_holes, 7u);  // the gaps the removed files left (the last may merge)
  EXPECT_GE(live["aligned_2m_runs"].u(), 1u);
  EXPECT_EQ(live["quarantined_bytes"].u(), 0u);
  ASSERT_NO_FATAL_FAILURE(unmount());
  Json cold = layout_json({"free", region_path()});
  EXPECT_EQ(cold["free_bytes"].u(), free_bytes);
  EXPECT_EQ(cold["free_extents"].u(), live["free_extents"].u());
  EXPECT_EQ(cold["aligned_2m_runs"].u(), live["aligned_2m_runs"].u());
}

// The picture is an SVG that parses and names the files in its legend, for
// a region and for a mount; a PNG of it is written beside it (rsvg-convert
// is installed by scripts/install-deps.sh: its absence fails the test).
TEST_F(LayoutTest, MapIsSvgNamingTheFiles) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("database"), 0, 6 * kMiB, 1));
  ASSERT_EQ(mkdir(path("logs").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("logs/app.log"), 0, 3 * kMiB, 2));
  const std::string check =
      "import sys, xml.etree.ElementTree as ET\n"
      "root = ET.parse(sys.argv[1]).getroot()\n"
      "assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag\n"
      "texts = [t.text or '' for t in root.iter('{http://www.w3.org/2000/svg}text')]\n"
      "for name in sys.argv[2:]:\n"
      "    assert any(name in t for t in texts), (name, texts)\n"
      "print('ok', len(list(root.iter('{http://www.w3.org/2000/svg}rect'))))\n";
  const std::string live_svg = dir() + "/live.svg";
  std::string out;
  ASSERT_EQ(layout({"map", mountpoint(), "-o", live_svg}, &out), 0) << out;
  ASSERT_EQ(run_command({"python3", "-c", check, live_svg, "/database", "/logs/app.log"}, &out),
            0)
      << out;
  const std::string png = dir() + "/live.png";
  std::string bytes = read_file(png);
  ASSERT_GT(bytes.size(), 1000u) << "no PNG beside the SVG (is rsvg-convert installed?)";
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  ASSERT_NO_FATAL_FAILURE(unmount());
  const std::string cold_svg = dir() + "/cold.svg";
  ASSERT_EQ(layout({"map", region_path(), "-o", cold_svg}, &out), 0) << out;
  ASSERT_EQ(run_command({"python3", "-c", check, cold_svg, "/database", "/logs/app.log"}, &out),
            0)
      << out;
}

// The inspection messages from a hostile or careless peer: a write-only
// descriptor is refused (EACCES), a descriptor of another filesystem too
// (EXDEV), a non-zero reserved word is EINVAL, and EXTENTS without a
// descriptor is a protocol error that closes the connection; the daemon
// keeps serving.
class InspectWireTest : public LayoutTest {
 protected:
  int connect_control() {
    char path[108] = {};
    const ssize_t n = getxattr(mountpoint().c_str(), "user.sealfs.control", path, sizeof(path) - 1);
    EXPECT_GT(n, 0) << std::strerror(errno);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path, sizeof(path));
    EXPECT_EQ(connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    struct timeval tv {5, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return sock;
  }
  // Sends one inspection request; returns the answer's type and InspectReply.
  std::pair<uint16_t, wire::InspectReply> ask(int sock, wire::Type type, int fd,
                                              uint64_t reserved = 0) {
    wire::InspectRequest req{0, reserved};
    uint8_t out[sizeof(wire::Header) + sizeof(req)];
    const wire::Header h = wire::make_header(type, sizeof(out), 7);
    std::memcpy(out, &h, sizeof(h));
    std::memcpy(out + sizeof(h), &req, sizeof(req));
    EXPECT_EQ(wire::send_with_fd(sock, out, sizeof(out), fd, MSG_NOSIGNAL),
              static_cast<ssize_t>(sizeof(out)));
    wire::Header in{};
    if (recv(sock, &in, sizeof(in), MSG_WAITALL) != static_cast<ssize_t>(sizeof(in))) {
      return {0, {}};
    }
    std::vector<uint8_t> body(in.length - sizeof(in));
    EXPECT_EQ(recv(sock, body.data(), body.size(), MSG_WAITALL),
              static_cast<ssize_t>(body.size()));
    wire::InspectReply reply{};
    if (in.type == static_cast<uint16_t>(wire::Type::kInspectReply)) {
      reply = wire::load<wire::InspectReply>(body.data());
    }
    return {in.type, reply};
  }
};

TEST_F(InspectWireTest, RefusalsAndProtocolErrors) {
  ASSERT_NO_FATAL_FAILURE(mount_aligned());
  ASSERT_NO_FATAL_FAILURE(write_pattern(path("f"), 0, 8192, 1));
  int sock = connect_control();
  const auto reply_type = static_cast<uint16_t>(wire::Type::kInspectReply);

  int wronly = open(path("f").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(wronly, 0);
  auto [t1, r1] = ask(sock, wire::Type::kExtents, wronly);
  close(wronly);
  EXPECT_EQ(t1, reply_type);
  EXPECT_EQ(r1.error, EACCES);
  EXPECT_EQ(r1.count, 0u);

  int elsewhere = open(region_path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(elsewhere, 0);
  auto [t2, r2] = ask(sock, wire::Type::kExtents, elsewhere);
  close(elsewhere);
  EXPECT_EQ(t2, reply_type);
  EXPECT_EQ(r2.error, EXDEV);

  auto [t3, r3] = ask(sock, wire::Type::kLeaseTable, -1, /*reserved=*/1);
  EXPECT_EQ(t3, reply_type);
  EXPECT_EQ(r3.error, EINVAL);

  int rdonly = open(path("f").c_str(), O_RDONLY | O_CLOEXEC);
  auto [t4, r4] = ask(sock, wire::Type::kExtents, rdonly);
  close(rdonly);
  EXPECT_EQ(t4, reply_type);
  EXPECT_EQ(r4.error, 0);
  EXPECT_EQ(r4.count, 1u);
  EXPECT_EQ(r4.size, 8192u);

  auto [t5, r5] = ask(sock, wire::Type::kExtents, -1);
  EXPECT_EQ(t5, static_cast<uint16_t>(wire::Type::kError));
  char byte;
  EXPECT_EQ(recv(sock, &byte, 1, 0), 0) << "the connection should be closed";
  close(sock);
  // The daemon still answers.
  Json still = layout_json({"extents", path("f")});
  EXPECT_EQ(still["files"].size(), 1u);
}

TEST(LayoutCli, UsageAndVersion) {
  std::string out;
  EXPECT_EQ(layout({"--version"}, &out), 0);
  EXPECT_EQ(out.rfind("sealfs-layout ", 0), 0u) << out;
  EXPECT_EQ(layout({"--help"}, &out), 0);
  EXPECT_NE(out.find("exit:"), std::string::npos);
  EXPECT_EQ(layout({"nonsense"}, &out), 2) << out;
  EXPECT_EQ(layout({"extents"}, &out), 2) << out;
  EXPECT_EQ(layout({"extents", "/nonexistent/file"}, &out), 4) << out;
  // A region without a sealfs superblock is named as such.
  char zeros[] = "/tmp/sealfs-layout-zeros.XXXXXX";
  int fd = mkstemp(zeros);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 1 << 20), 0);
  close(fd);
  EXPECT_EQ(layout({"super", zeros}, &out), 4) << out;
  EXPECT_NE(out.find("not a sealfs filesystem (bad magic)"), std::string::npos) << out;
  EXPECT_EQ(layout({"free", zeros}, &out), 4) << out;
  EXPECT_NE(out.find("not a sealfs filesystem (bad magic)"), std::string::npos) << out;
  unlink(zeros);
}

}  // namespace
}  // namespace sealfs::itest
