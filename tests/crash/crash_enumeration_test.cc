// Crash-point enumeration: at every drain of a seeded workload, the images a
// power loss just before that fence could leave (durable bytes only, and
// durable bytes with any newer 8-byte word torn in) must mount, show a
// consistent tree in which every operation is all there or not at all, and
// keep working. Reproduce one failure with SEALFS_CRASH_SEED=<seed> and
// SEALFS_CRASH_POINT=<drain>; SEALFS_CRASH_LONG=1 runs the long mode.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "crash/fs_state.h"
#include "crash/workload.h"
#include "media/formatter.h"
#include "media/region_dram.h"
#include "meta/filesystem.h"

namespace sealfs::crash {
namespace {

struct Config {
  std::vector<uint64_t> seeds;
  int steps = 0;
  int tears = 0;              // torn images per crash point
  int64_t only_point = -1;    // SEALFS_CRASH_POINT
};

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

Config config() {
  Config c;
  bool long_mode = env_u64("SEALFS_CRASH_LONG", 0) != 0;
  c.steps = long_mode ? 160 : 55;
  c.tears = long_mode ? 6 : 2;
  if (const char* s = std::getenv("SEALFS_CRASH_SEED"); s != nullptr && *s != '\0') {
    c.seeds = {std::strtoull(s, nullptr, 0)};
  } else {
    int n = long_mode ? 12 : 4;
    for (int i = 0; i < n; ++i) c.seeds.push_back(0x5ea1f500 + i);
  }
  c.only_point = static_cast<int64_t>(env_u64("SEALFS_CRASH_POINT", UINT64_MAX));
  return c;
}

RegionDram& dram_of(Filesystem& fs) {
  return const_cast<RegionDram&>(static_cast<const RegionDram&>(fs.region()));
}

// Odd seeds mount each crash image with the verifier in the background
// (MountOptions::background_verify): recovery's orphan frees and trims then
// run on its thread while the image is read, and the clean remounts after
// it verify synchronously what it left.
bool background_first_mount = false;

std::unique_ptr<Filesystem> mount_image(std::vector<std::byte> image, const char* stage,
                                        std::vector<std::string>& problems,
                                        bool background = false) {
  MountOptions options;
  options.background_verify = background;
  auto fs = Filesystem::mount(RegionDram::from_image(std::move(image)), options);
  if (!fs.is_ok()) {
    problems.push_back(std::string("mount ") + stage + ": " + fs.status().to_string());
    return nullptr;
  }
  return std::move(*fs);
}

std::unique_ptr<Filesystem> remount(std::unique_ptr<Filesystem> fs, const char* stage,
                                    std::vector<std::string>& problems) {
  Status s = fs->unmount();
  if (!s.is_ok()) {
    problems.push_back(std::string("unmount before ") + stage + ": " + s.to_string());
    return nullptr;
  }
  auto image = dram_of(*fs).image();
  fs.reset();
  return mount_image(std::move(image), stage, problems);
}

// What one crash image recovered to, checked as far as possible without
// knowing the state after the operation the crash interrupted.
struct Recovered {
  std::string label;
  FsState state;
  std::vector<std::string> problems;
};

Recovered recover(std::vector<std::byte> image, std::string label) {
  Recovered r;
  r.label = std::move(label);
  auto& problems = r.problems;
  auto fs = mount_image(std::move(image), "of the crash image", problems, background_first_mount);
  if (fs == nullptr) return r;
  if (background_first_mount) {
    // A walk while the verifier runs (inodes read on demand), then wait for
    // it (statfs does): the blocks it trims beyond EOF change the counts
    // that the checks below compare.
    std::vector<std::string> early;
    (void)capture(*fs, early);
    for (auto& p : early) problems.push_back("while verifying: " + p);
    (void)fs->statfs();
  }
  r.state = capture(*fs, problems);
  check_space(*fs, r.state, problems);

  // Recovery is finished after one mount: a clean remount shows the same.
  fs = remount(std::move(fs), "after recovery", problems);
  if (fs == nullptr) return r;
  std::vector<std::string> again_problems;
  FsState again = capture(*fs, again_problems);
  for (auto& p : again_problems) problems.push_back("after remount: " + p);
  check_space(*fs, again, problems);
  if (std::string d = metadata_diff(again, r.state); !d.empty()) {
    problems.push_back("remount changed the tree: " + d);
  } else if (std::string c = content_diff(again, r.state, nullptr); !c.empty()) {
    problems.push_back("remount changed data: " + c);
  }

  // And it keeps working.
  Cred cred{1000, 1000, 022, 1};
  std::string payload(10000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + 3);
  auto f = fs->create(1, "after_crash", 0644, O_RDWR, cred);
  if (!f.is_ok()) {
    problems.push_back("create after recovery: " + f.status().to_string());
    return r;
  }
  auto w = fs->write(f->ino, 0, payload.data(), payload.size(), false);
  if (!w.is_ok()) problems.push_back("write after recovery: " + w.status().to_string());
  fs->release(f->ino);
  fs->forget(f->ino, 1);
  auto d = fs->mkdir(1, "after_crash_dir", 0755, cred);
  if (!d.is_ok()) problems.push_back("mkdir after recovery: " + d.status().to_string());
  else fs->forget(d->ino, 1);
  std::string removed;
  for (const auto& [path, ino] : r.state.paths) {
    if (path.rfind('/') == 0 && S_ISREG(r.state.nodes.at(ino).mode)) {
      removed = path;
      Status s = fs->unlink(1, path.substr(1));
      if (!s.is_ok()) problems.push_back("unlink after recovery: " + s.to_string());
      break;
    }
  }
  fs = remount(std::move(fs), "after new operations", problems);
  if (fs == nullptr) return r;
  std::vector<std::string> later_problems;
  FsState later = capture(*fs, later_problems);
  for (auto& p : later_problems) problems.push_back("after new operations: " + p);
  check_space(*fs, later, problems);
  auto it = later.paths.find("/after_crash");
  if (it == later.paths.end() || later.nodes.at(it->second).content != payload) {
    problems.push_back("file written after recovery is missing or wrong after remount");
  }
  if (!later.paths.count("/after_crash_dir")) problems.push_back("mkdir after recovery lost");
  if (!removed.empty() && later.paths.count(removed)) problems.push_back("unlink after recovery lost");
  return r;
}

struct Point {
  uint64_t drain = 0;
  Recovered recovered;
};

class Enumerator {
 public:
  Enumerator(const Config& c, uint64_t seed) : config_(c), seed_(seed), workload_(seed, c.steps) {}

  void run() {
    std::printf("crash tier: seed %#llx, %d steps, %d torn images per point\n",
                static_cast<unsigned long long>(seed_), config_.steps, config_.tears);
    auto region = RegionDram::create(4ull << 20);
    FormatOptions options;
    options.layout.inode_count = 256;
    options.layout.journal_bytes = 256ull << 10;
    auto sb = Formatter::format(*region, options);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    RegionDram* dram = region.get();
    auto mounted = Filesystem::mount(std::move(region), MountOptions{});
    ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
    fs_ = std::move(*mounted);
    workload_.setup(*fs_);
    std::vector<std::string> problems;
    FsState before = capture(*fs_, problems);
    ASSERT_TRUE(problems.empty()) << problems.front();

    dram->set_drain_observer([this, dram](uint64_t drain) {
      if (armed_) observe(*dram, drain);
    });
    for (int i = 1; i <= config_.steps && failures_ < 5; ++i) {
      armed_ = true;
      std::string what = workload_.step(*fs_, before, i);
      armed_ = false;
      FsState after = capture(*fs_, problems);
      ASSERT_TRUE(problems.empty()) << "live filesystem after step " << i << " (" << what
                                    << "): " << problems.front();
      if (what.find("Corruption") != std::string::npos || what.find("BadCrc") != std::string::npos) {
        ADD_FAILURE() << "seed " << seed_ << " step " << i << ": " << what;
      }
      judge(i, what, before, after);
      before = std::move(after);
    }
    // After the last step: nothing in flight.
    observe(*dram, dram->drain_count());
    judge(config_.steps + 1, "(after the last step)", before, before);
    dram->set_drain_observer(nullptr);
    ASSERT_TRUE(fs_->unmount().is_ok());
    std::printf("crash tier: seed %#llx: %llu crash points, %llu images checked\n",
                static_cast<unsigned long long>(seed_),
                static_cast<unsigned long long>(points_),
                static_cast<unsigned long long>(images_));
  }

  uint64_t points() const { return points_; }
  uint64_t images() const { return images_; }

 private:
  void observe(RegionDram& dram, uint64_t drain) {
    if (config_.only_point >= 0 && static_cast<uint64_t>(config_.only_point) != drain) return;
    ++points_;
    pending_.push_back({drain, recover(dram.crash(RegionDram::CrashMode::kDrop), "drop")});
    for (int t = 0; t < config_.tears; ++t) {
      uint64_t tear_seed = seed_ * 1000003 + drain * 131 + t;
      pending_.push_back({drain, recover(dram.crash(RegionDram::CrashMode::kTear, tear_seed),
                                         "tear seed " + std::to_string(tear_seed))});
    }
  }

  // Every image cut inside step i shows the state before it or after it.
  void judge(int i, const std::string& what, const FsState& before, const FsState& after) {
    for (auto& p : pending_) {
      ++images_;
      std::string verdict;
      const Recovered& r = p.recovered;
      if (!r.problems.empty()) {
        verdict = r.problems.front();
      } else if (metadata_diff(r.state, before, Times::kFileTimesMayLag).empty()) {
        verdict = content_diff(r.state, before, &after);
        if (!verdict.empty() && metadata_diff(r.state, after, Times::kFileTimesMayLag).empty()) {
          verdict = content_diff(r.state, after, &before);
        }
      } else if (metadata_diff(r.state, after, Times::kFileTimesMayLag).empty()) {
        verdict = content_diff(r.state, after, &before);
      } else {
        verdict = "neither before nor after the step: vs before: " +
                  metadata_diff(r.state, before, Times::kFileTimesMayLag) + "; vs after: " +
                  metadata_diff(r.state, after, Times::kFileTimesMayLag);
      }
      if (!verdict.empty() || config_.only_point >= 0) {
        std::printf("seed %llu (%#llx) drain %llu %s, step %d: %s\n  -> %s\n",
                    static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_),
                    static_cast<unsigned long long>(p.drain), r.label.c_str(), i, what.c_str(),
                    verdict.empty() ? "ok" : verdict.c_str());
      }
      if (!verdict.empty()) {
        ++failures_;
        ADD_FAILURE() << "SEALFS_CRASH_SEED=" << seed_ << " SEALFS_CRASH_POINT=" << p.drain
                      << " (" << r.label << "), step " << i << " [" << what << "]: " << verdict;
      }
    }
    pending_.clear();
  }

  const Config& config_;
  uint64_t seed_;
  Workload workload_;
  std::unique_ptr<Filesystem> fs_;
  bool armed_ = false;
  std::vector<Point> pending_;
  uint64_t points_ = 0;
  uint64_t images_ = 0;
  int failures_ = 0;
};

TEST(CrashEnumeration, EveryDrainOfSeededWorkloads) {
  Config c = config();
  uint64_t points = 0, images = 0;
  for (uint64_t seed : c.seeds) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Enumerator e(c, seed);
    background_first_mount = (seed & 1) != 0;
    e.run();
    points += e.points();
    images += e.images();
  }
  std::printf("crash tier: %llu crash points, %llu images, all checked\n",
              static_cast<unsigned long long>(points), static_cast<unsigned long long>(images));
  EXPECT_GT(points, c.only_point >= 0 ? 0u : 100u);
}

}  // namespace
}  // namespace sealfs::crash
